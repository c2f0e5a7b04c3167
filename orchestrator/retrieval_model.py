"""A trained trial as a retrieval model: its head, the frozen encoders it reads, and a FAISS index
over a corpus split in the head's output space, queried by text or audio.

Layout of a retrieval model directory (what ``orchestrator.register`` writes and logs as the
``retrieval`` artifact of an MLflow ``pyfunc`` model):

* ``retrieval.json``: workload, profile, the trial's run id, the sweep and its selection metric,
  the encoders of every view (id and parameters), which index side each query modality searches,
  and where the head is (``head/model.pt``, or the URI of a fine-tuned checkpoint);
* ``head/config.json`` (the trial's config) and ``head/model.pt`` (its best weights);
* ``index/<side>.faiss`` (``IndexFlatIP``) and ``index/<side>.parquet`` (one metadata row per
  vector: id, the manifest item it belongs to, audio path/offset/duration, caption, word, speaker,
  sentence, as the workload names them).

A query is embedded by the same code the workload's evaluation uses: the frozen encoder of the
view (built from its registered id and parameters, as extraction builds it; audio decoded and
resampled by extraction's own decoder) and then the head (``Workload.embed_queries``). The index
vectors come from ``Workload.index_sides``, which evaluates through the same functions, so a query
of the test split scores exactly as the trial's test pass did. Vectors are stored as the workload
returns them: their inner product is the workload's score (cosine for every workload here).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODALITIES = ("text", "audio")
RETRIEVAL_FILE = "retrieval.json"
HEAD_DIR = "head"
INDEX_DIR = "index"
FORMAT_VERSION = 1


class QueryError(ValueError):
    """A query the model cannot take (a modality the workload does not retrieve with, unreadable
    audio); the message is one line for the user."""


class ModelLoadError(RuntimeError):
    """A retrieval model directory that cannot be loaded (a missing checkpoint, a bad file)."""


@dataclass
class IndexSide:
    """One side of the index: ``vectors`` ``[N, D]`` float32 in the head's output space (inner
    product = the workload's score) and one metadata row per vector. Each row has ``id`` (unique
    within the side) and ``item`` (the manifest item id whose audio it is, or None for a text-only
    row such as a speaker description); the workload adds what a reader needs (caption, word, ...)."""

    vectors: np.ndarray
    rows: list[dict[str, Any]]
    description: str = "items"

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.rows):
            raise ValueError(f"index side: {self.vectors.shape} vectors for {len(self.rows)} rows")


# ------------------------------------------------------------------------------------------------
# queries


@dataclass
class AudioQuery:
    """One audio query: a file (with the segment a manifest names) or the bytes of an audio file
    (base64 WAV over HTTP). Decoded at the rate an encoder asks for by extraction's own decoder
    (``orchestrator.audio.load_audio``: mono mix, soxr resampling), so a test item queried by its
    file gives the waveform its view was extracted from."""

    path: str | None = None
    data: bytes | None = None
    offset: float = 0.0
    duration: float | None = None
    label: str = ""

    @classmethod
    def from_base64(cls, text: str, label: str) -> "AudioQuery":
        import base64
        import binascii

        try:
            return cls(data=base64.b64decode(text, validate=True), label=label)
        except (binascii.Error, ValueError):
            raise QueryError(f"{label}: not base64 (send the audio file's bytes, base64-encoded)") from None

    def at(self, sr: int) -> np.ndarray:
        from orchestrator.audio import BadAudioError, load_audio

        try:
            if self.path is not None:
                return load_audio(self.label or self.path, self.path, sr, self.offset, self.duration)
            return _decode_bytes(self.data or b"", sr, self.label or "audio query")
        except BadAudioError as e:
            raise QueryError(f"cannot read the audio query: {e.reason}") from None


def _decode_bytes(data: bytes, sr: int, label: str) -> np.ndarray:
    """``load_audio`` for bytes: the same mono mix and resampling."""
    import soundfile as sf
    import soxr

    try:
        wav, file_sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors
        raise QueryError(f"cannot read the audio query {label}: not a readable audio file ({_one_line(e)})") from None
    wav = wav.mean(axis=1)
    if wav.size == 0:
        raise QueryError(f"the audio query {label} is empty")
    if not np.isfinite(wav).all():
        raise QueryError(f"the audio query {label} has non-finite samples")
    if file_sr != sr:
        wav = soxr.resample(wav, file_sr, sr).astype(np.float32, copy=False)
    return wav


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


class QueryEncoders:
    """The frozen encoders of a trial's views, built from their ids and parameters on first use
    (a text query never loads the audio encoder), with the time spent in them."""

    def __init__(self, views: dict[str, Any], in_dim: Any = None) -> None:
        self.views = views  # view name -> orchestrator.views.ViewSpec
        self.in_dim = in_dim  # the head's input dims (the checkpoint's ``in_dim``)
        self._built: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timer(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def _encoder(self, view: str) -> Any:
        if view not in self._built:
            import torch

            spec = self.views[view]
            if spec.modality == "text":
                from orchestrator.encoders.text import build_text_encoder

                enc = build_text_encoder(spec.encoder, **spec.encoder_params)
            else:
                from orchestrator.encoders.base import build_encoder

                enc = build_encoder(spec.encoder, **spec.encoder_params)
            self._built[view] = enc.to("cuda" if torch.cuda.is_available() else "cpu")
        return self._built[view]

    def embed_texts(self, view: str, texts: Sequence[str]) -> np.ndarray:
        """Texts through the view's frozen text encoder, as extraction embeds them."""
        enc = self._encoder(view)
        with self.timer("text encoder"):
            return np.asarray(enc.embed_texts([str(t) for t in texts]), dtype=np.float32)

    def embed_audio(self, view: str, queries: Sequence[AudioQuery]) -> np.ndarray:
        """Audio through the view's frozen audio encoder (pooled), as extraction embeds it."""
        enc = self._encoder(view)
        waves = [q.at(enc.sample_rate) for q in queries]
        with self.timer("audio encoder"):
            return np.asarray(enc.embed(waves), dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# writing a model directory


def write_model_dir(root: Path, *, meta: dict[str, Any], config: dict[str, Any], sides: dict[str, IndexSide],
                    state_file: Path | None, checkpoint_uri: str | None) -> Path:
    """The directory layout of the module docstring; ``meta`` goes into ``retrieval.json`` with
    the head's location and the sides' sizes added."""
    import faiss
    import pandas as pd

    root.mkdir(parents=True, exist_ok=True)
    (root / HEAD_DIR).mkdir(exist_ok=True)
    (root / INDEX_DIR).mkdir(exist_ok=True)
    (root / HEAD_DIR / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    if state_file is not None:
        import shutil

        shutil.copy(state_file, root / HEAD_DIR / "model.pt")
        head = {"file": f"{HEAD_DIR}/model.pt"}
    elif checkpoint_uri:
        head = {"checkpoint": checkpoint_uri}
    else:
        raise ValueError("a retrieval model needs the head's weights or its checkpoint's URI")
    for name, side in sides.items():
        index = faiss.IndexFlatIP(side.vectors.shape[1])
        index.add(side.vectors)
        faiss.write_index(index, str(root / INDEX_DIR / f"{name}.faiss"))
        pd.DataFrame(side.rows).to_parquet(root / INDEX_DIR / f"{name}.parquet", index=False)
    full = {**meta, "format": FORMAT_VERSION, "head": head,
            "sides": {n: {"n": int(s.vectors.shape[0]), "dim": int(s.vectors.shape[1]), "description": s.description}
                      for n, s in sides.items()}}
    (root / RETRIEVAL_FILE).write_text(json.dumps(full, indent=2, sort_keys=True, default=str))
    return root


# ------------------------------------------------------------------------------------------------
# loading and searching


@dataclass
class SearchResult:
    query: str
    modality: str
    side: str
    ids: list[str]
    scores: list[float]
    items: list[dict[str, Any]] = field(default_factory=list)
    ranking: str = ""  # how the query was ranked (RetrievalEngine.ranking)

    def as_dict(self) -> dict[str, Any]:
        return {"query": self.query, "modality": self.modality, "searched": self.side, "ranking": self.ranking,
                "ids": self.ids, "scores": self.scores, "items": self.items}


class RetrievalEngine:
    """A loaded retrieval model directory: ``search(queries, modality, k)``."""

    def __init__(self, root: str | Path) -> None:
        import faiss
        import pandas as pd
        import torch

        from orchestrator.registry import load_workload
        from orchestrator.train import build_loaded

        self.root = Path(root)
        try:
            self.meta = json.loads((self.root / RETRIEVAL_FILE).read_text())
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{self.root} is not a retrieval model ({_one_line(e)})") from None
        self.wl = load_workload(self.meta["workload"])
        config = json.loads((self.root / HEAD_DIR / "config.json").read_text())
        self.cfg = self.wl.config_cls.model_validate(config)
        state = torch.load(self._head_file(), map_location="cpu", weights_only=True)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = build_loaded(self.wl, self.cfg, None, state).to(device)
        views = self.wl.data_spec(self.cfg, self.meta["profile"]).views
        self.encoders = QueryEncoders(views, state.get("in_dim"))
        self.indexes: dict[str, Any] = {}
        self.rows: dict[str, list[dict[str, Any]]] = {}
        for side in self.meta["sides"]:
            self.indexes[side] = faiss.read_index(str(self.root / INDEX_DIR / f"{side}.faiss"))
            frame = pd.read_parquet(self.root / INDEX_DIR / f"{side}.parquet")
            self.rows[side] = [{k: _plain(v) for k, v in r.items() if not _missing(v)}
                               for r in frame.to_dict(orient="records")]
        # ranked as the workload's evaluation ranked for the metric the model was selected by
        self.fusion = self.wl.query_fusion(self.cfg, self.meta.get("selection_metric") or "")
        self.raw: dict[str, np.ndarray] = {}
        if self.fusion is not None:
            self.raw = {side: index.reconstruct_n(0, index.ntotal) for side, index in self.indexes.items()}
            for side, vectors in self.fusion.index(dict(self.raw)).items():
                if vectors is not self.raw[side]:
                    self.indexes[side] = faiss.IndexFlatIP(vectors.shape[1])
                    self.indexes[side].add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.last_timings: dict[str, float] = {}

    def ranking(self, modality: str) -> str:
        """How queries of ``modality`` are ranked, for the reader of the results."""
        return self.fusion.describe(modality) if self.fusion is not None else "as embedded"

    def _head_file(self) -> Path:
        head = self.meta["head"]
        if "file" in head:
            return self.root / head["file"]
        from orchestrator import storage

        uri = head["checkpoint"]
        try:
            path = storage.local_copy(uri) if storage.is_uri(uri) else Path(uri)
        except (OSError, FileNotFoundError) as e:
            raise ModelLoadError(f"the fine-tuned checkpoint {uri} cannot be read ({_one_line(e)})") from None
        if not Path(path).exists():
            raise ModelLoadError(f"the fine-tuned checkpoint {uri} no longer exists (Tune storage cleaned?)")
        return Path(path)

    @property
    def query_modalities(self) -> list[str]:
        return list(self.wl.query_sides)

    def side_for(self, modality: str) -> str:
        if modality not in self.wl.query_sides:
            takes = " or ".join(f"{m} ({m} -> {self.meta['sides'][s]['description']})"
                                for m, s in self.wl.query_sides.items())
            raise QueryError(f"a {self.wl.name} model takes {takes} queries, not {modality}")
        return self.wl.query_sides[modality]

    def embed(self, queries: Sequence[Any], modality: str) -> np.ndarray:
        import torch

        self.side_for(modality)
        with torch.no_grad():
            return np.ascontiguousarray(self.wl.embed_queries(self.model, self.cfg, modality, list(queries),
                                                              self.encoders), dtype=np.float32)

    def search(self, queries: Sequence[Any], modality: str = "text", k: int = 10) -> list[SearchResult]:
        """The top ``k`` of the side ``modality`` searches, per query (``str`` texts or
        :class:`AudioQuery`); ``last_timings``: seconds spent embedding (of which in the frozen
        encoders) and searching."""
        side = self.side_for(modality)
        if k < 1:
            raise QueryError(f"k must be >= 1, got {k}")
        if not queries:
            return []
        self.encoders.seconds.clear()
        t0 = time.perf_counter()
        vectors = self.embed(queries, modality)
        t1 = time.perf_counter()
        scores, idx = self.rank(vectors, modality, k)
        t2 = time.perf_counter()
        self.last_timings = {"embed_s": t1 - t0, "search_s": t2 - t1, "total_s": t2 - t0,
                             "encoder_s": sum(self.encoders.seconds.values())}
        out = []
        for q, srow, irow in zip(queries, scores, idx):
            keep = irow >= 0
            rows = [self.rows[side][i] for i in irow[keep]]
            out.append(SearchResult(query=_label(q), modality=modality, side=side, ids=[str(r["id"]) for r in rows],
                                    scores=[float(s) for s in srow[keep]], items=rows, ranking=self.ranking(modality)))
        return out

    def rank(self, vectors: np.ndarray, modality: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, row indexes) of the top ``k`` of the side ``modality`` searches, for embedded
        queries."""
        side = self.side_for(modality)
        if self.fusion is not None:
            vectors = np.ascontiguousarray(self.fusion.queries(modality, vectors, self.raw[side]), dtype=np.float32)
        index = self.indexes[side]
        return index.search(vectors, min(k, index.ntotal))


def _label(q: Any) -> str:
    if isinstance(q, AudioQuery):
        return q.label or q.path or "<audio>"
    return str(q)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _plain(v: Any) -> Any:
    """Parquet values as JSON-able Python (numpy scalars and arrays)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    return v
