"""View extraction with Ray Data: manifest -> (decode) -> encoder actor pool -> content-addressed cache.

Every view goes through this one path, audio and text alike. Audio views decode and resample in
CPU tasks fused into the encoder actors' stage (one GPU per actor on GPU clusters); text views send
the corpus' distinct strings through a text-encoder actor pool, batched and tokenised in the actor.
The driver writes each cache shard as soon as all of its rows have come back, so a killed run keeps
every finished shard and the next run encodes only what is missing.

Bad items never vanish: unreadable/empty audio, non-finite outputs, empty or whitespace-only texts
either stop the run with one line naming them or, with ``skip_bad_items``, are quarantined and
listed in the cache's metadata (and from there in MLflow). Missing audio files (a real corpus keeps
the rows its tables list, see ``orchestrator.corpus.AudioCheck``) are found before any encoding, by a
stat per file: without ``skip_bad_items`` such a run stops before Ray does any work.

Cache rows hold only what the encoder produced, keyed by item id (and text index): splits, labels
and texts come from the manifest when trials join the views (``orchestrator.views``), so
re-splitting or relabelling a corpus reuses every view.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.audio import BadAudioError, load_audio
from orchestrator import storage
from orchestrator.cache import CacheEntry, cache_key
from orchestrator.corpus import FileHashMemo, audio_fingerprint, missing_audio, read_manifest, text_fingerprint
from orchestrator.encoders.base import AudioEncoder, build_encoder
from orchestrator.encoders.text import FrozenTextEncoder, build_text_encoder
from orchestrator.progress import Progress
from orchestrator.views import ViewSpec, texts_of

log = logging.getLogger(__name__)

SHARD_SIZE = 256  # rows (audio items or distinct texts) per cache shard: the unit of resumption


class BadItemsError(RuntimeError):
    """Items that cannot be decoded or encoded; the message names them (first few) in one line."""

    def __init__(self, bad: list[tuple[str, str]]):
        self.bad = bad
        shown = "; ".join(f"{i}: {r}" for i, r in bad[:3])
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        super().__init__(f"{len(bad)} bad item(s): {shown}{more}. Fix them or pass --skip-bad-items to quarantine them")


@dataclass
class ExtractionResult:
    cache_dir: Path | str  # a Path for a local cache, the URI for a shared one
    key: str
    cache_hit: bool
    n_items: int  # manifest items with at least one row in the view
    quarantined: list[tuple[str, str]]  # (item id, reason); a text view's reason names the text index
    seconds: float
    audio_seconds: float
    encoder_id: str
    weights_hash: str
    corpus_fingerprint: str
    modality: str = "audio"
    missing_ids: list[str] = field(default_factory=list)  # manifest items without any row here
    meta: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# Ray Data stages


def _decode(batch: dict[str, np.ndarray], target_sr: int) -> dict[str, np.ndarray]:
    """CPU stage: file -> mono float32 at the encoder rate. Failures become an ``error`` string."""
    waves, errors = [], []
    for i, item_id in enumerate(batch["id"]):
        try:
            dur = float(batch["duration"][i])
            wav = load_audio(str(item_id), str(batch["audio_path"][i]), target_sr,
                             float(batch["offset"][i]), dur if dur > 0 else None)
            waves.append(wav)
            errors.append("")
        except BadAudioError as e:
            waves.append(np.zeros(0, dtype=np.float32))
            errors.append(e.reason)
    return {"id": batch["id"], "shard": batch["shard"], "wave": _object_array(waves),
            "error": np.array(errors, dtype=object)}


class _Encode:
    """Audio encoder stage, one model per actor; runs on a GPU when the actor was given one.

    ``level="pooled"``: one embedding per item (frozen regime). ``level="features"``: the encoder's
    input features per item (e.g. log-mel ``[n_mels, T]``) for the finetune regime, where the
    encoder itself runs inside the Train workers.
    """

    def __init__(self, encoder_name: str, encoder_params: dict[str, Any], level: str = "pooled"):
        import torch

        self.encoder: AudioEncoder = build_encoder(encoder_name, **encoder_params)
        self.encoder.to("cuda" if torch.cuda.is_available() else "cpu")
        self.level = level

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "wave" not in batch:  # CPU clusters: decoding runs in this actor (see extract_view)
            batch = _decode(batch, self.encoder.sample_rate)
        errors = list(batch["error"])
        ok = [i for i, e in enumerate(errors) if not e]
        seconds = np.array([len(w) / self.encoder.sample_rate for w in batch["wave"]], dtype=np.float64)
        if self.level == "features":
            vecs = [np.zeros((0, 0), np.float32)] * len(errors)
            for i in ok:
                vecs[i] = self.encoder.features(batch["wave"][i]).cpu().numpy().astype(np.float32)
            out = _object_array(vecs)
        else:
            out = np.zeros((len(errors), self.encoder.dim), dtype=np.float32)
            if ok:
                out[ok] = self.encoder.embed([batch["wave"][i] for i in ok])
        for i in ok:
            if not np.isfinite(out[i]).all():
                errors[i] = f"non-finite {'features' if self.level == 'features' else 'embedding'} (NaN/inf)"
        return {"id": batch["id"], "shard": batch["shard"], "embedding": out,
                "error": np.array(errors, dtype=object), "audio_seconds": seconds}


class _EncodeText:
    """Text encoder stage: tokenises and encodes a batch of distinct strings in the actor."""

    def __init__(self, encoder_name: str, encoder_params: dict[str, Any]):
        import torch

        self.encoder: FrozenTextEncoder = build_text_encoder(encoder_name, **encoder_params)
        self.encoder.to("cuda" if torch.cuda.is_available() else "cpu")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.encoder.embed_texts([str(t) for t in batch["text"]]).astype(np.float32)
        errors = ["" if np.isfinite(row).all() else "non-finite embedding (NaN/inf)" for row in out]
        return {"id": batch["id"], "shard": batch["shard"], "embedding": out,
                "error": np.array(errors, dtype=object), "audio_seconds": np.zeros(len(out))}


def _object_array(items: list[np.ndarray]) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


def actor_layout(use_gpus: bool | None = None) -> tuple[int, float, float]:
    """(actors, GPUs per actor, CPUs per actor). One actor per GPU on GPU clusters; on CPU-only
    clusters one actor per two CPUs, each owning its two CPUs (Ray sets the actor's torch thread
    count from its CPU share, and decoding runs inside the same actor).

    ``use_gpus=True`` asks for GPU actors even when no GPU node is up yet: on an autoscaling
    cluster the pending GPU request is what makes the autoscaler start one (deciding from the
    resources present at start would run everything on the CPU head)."""
    import ray

    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    if use_gpus or (use_gpus is None and gpus):
        return max(1, gpus), 1.0, 1.0
    cpus = max(1, int(res.get("CPU", 1)))
    return max(1, cpus // 2), 0.0, float(min(2, cpus))


# ------------------------------------------------------------------------------------------------
# what a view extracts: units (audio items or distinct texts) grouped into shards


@dataclass
class _Plan:
    """A view's work: ``units`` is the table sent through Ray Data (one row per audio item or per
    distinct text), ``rows_of`` maps a unit key to the cache rows it yields, ``bad`` lists items
    found bad before encoding (empty texts)."""

    units: pa.Table
    fingerprint: str
    rows_of: dict[str, list[dict[str, Any]]]
    bad: dict[str, str]
    all_ids: list[str]


def _audio_plan(table: pa.Table, memo: FileHashMemo) -> _Plan:
    """Items whose audio file is missing (a real corpus kept them, see ``AudioCheck``) are bad
    before encoding: the run stops before any Ray work, or they are quarantined up front."""
    ids = table.column("id").to_pylist()
    bad = missing_audio(table)
    units = table.select(["id", "audio_path", "offset", "duration"])
    if bad:
        units = units.filter(pc.invert(pc.is_in(units.column("id"), value_set=pa.array(sorted(bad), pa.string()))))
    return _Plan(units, audio_fingerprint(table, memo), {i: [{"id": i}] for i in ids}, bad, ids)


def _text_plan(table: pa.Table, source: str) -> _Plan:
    """Distinct strings of the view, each embedded once however many items share it (speaker
    descriptions repeat on every utterance of a speaker); cache rows stay one per (id, index)."""
    rows = table.select(["id", "texts", "meta"]).to_pylist()
    items = [(r["id"], texts_of(r, source)) for r in rows]
    bad: dict[str, str] = {}
    users: dict[str, list[dict[str, Any]]] = {}
    for item_id, texts in items:
        if not texts:
            bad[item_id] = f"no texts in {source}"
        for k, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                bad.setdefault(item_id, f"text {k}: empty or whitespace-only text")
                continue
            users.setdefault(t, []).append({"id": item_id, "text_index": k, "text": t})
    distinct = sorted(users)
    units = pa.table({"id": pa.array(distinct, pa.string()), "text": pa.array(distinct, pa.string())})
    return _Plan(units, text_fingerprint(items), users, bad, [i for i, _ in items])


def _shard_table(rows: list[dict[str, Any]], dim: int, level: str, modality: str) -> pa.Table:
    rows = sorted(rows, key=lambda r: (r["id"], r.get("text_index", 0)))
    cols: dict[str, Any] = {"id": pa.array([r["id"] for r in rows], pa.string())}
    if modality == "text":
        cols["text_index"] = pa.array([r["text_index"] for r in rows], pa.int32())
        cols["text"] = pa.array([r["text"] for r in rows], pa.string())
    if level == "features":  # variable-length [n_mels, T] per item, stored flat with its shape
        cols["features"] = pa.array([np.ravel(r["embedding"]) for r in rows], pa.list_(pa.float32()))
        cols["n_mels"] = pa.array([r["embedding"].shape[0] for r in rows], pa.int32())
        cols["n_frames"] = pa.array([r["embedding"].shape[1] for r in rows], pa.int32())
        return pa.table(cols)
    flat = np.concatenate([r["embedding"][None] for r in rows]).astype(np.float32).ravel() if rows \
        else np.zeros(0, np.float32)
    cols["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(flat), dim)
    return pa.table(cols)


# ------------------------------------------------------------------------------------------------
# the extraction


def extract_view(
    manifest_path: Path | str,
    view: ViewSpec,
    cache_root: Path | str,
    *,
    skip_bad_items: bool = False,
    batch_size: int = 16,
    num_actors: int | None = None,
    use_gpus: bool | None = None,
    shard_size: int = SHARD_SIZE,
    label: str | None = None,
    progress: bool = True,
) -> ExtractionResult:
    """Extract one view of a corpus once; reuse the cache entry when it is complete.

    ``label`` names the view in the progress line (default: its encoder); ``use_gpus``: see
    :func:`actor_layout` (None: GPUs if the cluster has them now).
    """
    import ray

    t0 = time.perf_counter()
    table = read_manifest(manifest_path).sort_by("id")
    if view.modality == "text":
        plan = _text_plan(table, view.text_source)
        probe_t = build_text_encoder(view.encoder, **view.encoder_params)
        enc_id, w_hash, dim, sr, enc_params = probe_t.encoder_id, probe_t.weights_hash(), probe_t.dim, 0, probe_t.params()
        del probe_t
    else:
        memo_dir = Path(cache_root) if not storage.is_uri(str(cache_root)) else storage.local_cache_dir()
        plan = _audio_plan(table, FileHashMemo(memo_dir / "file_hashes.sqlite"))
        probe_a = build_encoder(view.encoder, **view.encoder_params)  # cheap for the offline encoders
        enc_id, w_hash, dim, sr, enc_params = (probe_a.encoder_id, probe_a.weights_hash(), probe_a.dim,
                                               probe_a.sample_rate, probe_a.params())
        del probe_a
    params = {"modality": view.modality, "encoder_params": view.encoder_params, "encoder": enc_params,
              "shard_size": shard_size, "level": view.level,
              **({"pooling": "mean"} if view.level == "pooled" and view.modality == "audio" else {}),
              **({"text_source": view.text_source} if view.modality == "text" else {})}
    entry = CacheEntry(cache_root, cache_key(plan.fingerprint, enc_id, w_hash, params))

    def result(hit: bool, meta: dict[str, Any]) -> ExtractionResult:
        quarantined = [tuple(x) for x in meta.get("quarantined", [])]
        if quarantined and not skip_bad_items:
            raise BadItemsError(quarantined)  # type: ignore[arg-type]
        return ExtractionResult(entry.path(), entry.key, hit, meta["n_items"], quarantined,  # type: ignore[arg-type]
                                time.perf_counter() - t0, meta.get("audio_seconds", 0.0), enc_id, w_hash,
                                plan.fingerprint, view.modality, list(meta.get("missing_ids", [])), meta)

    if entry.is_complete():
        log.info("view cache hit: %s (%s, %s)", entry.dir, enc_id, plan.fingerprint)
        return result(True, entry.meta())
    if plan.bad and not skip_bad_items:
        raise BadItemsError(sorted(plan.bad.items()))

    units = plan.units
    n = units.num_rows
    shard_of = np.arange(n) // shard_size
    n_shards = int(shard_of.max()) + 1 if n else 0
    done = entry.done_shards()
    pending = [s for s in range(n_shards) if s not in done]
    if done:
        log.info("resuming extraction into %s: %d/%d shards already done", entry.dir, len(done), n_shards)
    quarantine_file = storage.join(entry.dir, "quarantine.json")
    # id -> reason; a dict so that re-encoding an unfinished shard after a kill records items once
    quarantined: dict[str, str] = dict(plan.bad)
    if storage.exists(quarantine_file):
        quarantined.update(dict(json.loads(storage.read_text(quarantine_file))))

    audio_seconds = 0.0
    if pending:
        keep = np.isin(shard_of, pending)
        sub = units.filter(pa.array(keep)).append_column("shard", pa.array(shard_of[keep], pa.int64()))
        expected = {s: int((shard_of == s).sum()) for s in pending}
        actors, gpus, cpus = actor_layout(use_gpus)
        actors = num_actors or actors
        encoder_stage = {"compute": ray.data.ActorPoolStrategy(min_size=1, max_size=actors), "num_gpus": gpus,
                         "num_cpus": cpus}
        ds = ray.data.from_arrow(sub)
        if view.modality == "text":
            ds = ds.map_batches(_EncodeText, fn_constructor_args=(view.encoder, view.encoder_params),
                                batch_size=max(batch_size, 64), **encoder_stage)
        else:
            if gpus:  # GPU actors encode while CPU tasks decode the next batches
                ds = ds.map_batches(_decode, fn_kwargs={"target_sr": sr}, batch_size=batch_size, num_cpus=1)
            # on CPU clusters the actor decodes too: it owns its CPUs, and a separate decode task
            # would wait for a CPU the actors hold
            ds = ds.map_batches(_Encode, fn_constructor_args=(view.encoder, view.encoder_params, view.level),
                                batch_size=batch_size, **encoder_stage)
        buffers: dict[int, list[dict[str, Any]]] = {s: [] for s in pending}
        counts = dict.fromkeys(pending, 0)
        bar = Progress(f"[data] {label or view.encoder}", int(keep.sum()),
                       "texts" if view.modality == "text" else "items") if progress else None
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                unit_ids = [str(i) for i in batch["id"]]
                bad_here = [(u, str(e)) for u, e in zip(unit_ids, batch["error"]) if e]
                if view.modality == "text":  # name the items that use a bad text
                    bad_here = [(r["id"], f"text {r['text_index']}: {e}") for u, e in bad_here for r in plan.rows_of[u]]
                if bad_here and not skip_bad_items:
                    raise BadItemsError(bad_here)
                audio_seconds += float(batch["audio_seconds"].sum())
                for j, u in enumerate(unit_ids):
                    s = int(batch["shard"][j])
                    counts[s] += 1
                    if batch["error"][j]:
                        for r in plan.rows_of[u]:
                            quarantined.setdefault(r["id"], f"text {r['text_index']}: {batch['error'][j]}"
                                                   if view.modality == "text" else str(batch["error"][j]))
                    else:
                        buffers[s].extend({**r, "embedding": batch["embedding"][j]} for r in plan.rows_of[u])
                    if counts[s] == expected[s]:
                        _write_quarantine(quarantine_file, quarantined)  # before the shard that drops them
                        entry.write_shard(s, _shard_table(buffers.pop(s), dim, view.level, view.modality))
                if bar:
                    bar.update(len(unit_ids))
        finally:
            if bar:
                bar.close()
        missing_shards = [s for s, c in counts.items() if c != expected[s]]
        if missing_shards:
            raise RuntimeError(f"extraction lost rows for shards {missing_shards}; cache {entry.dir} left incomplete")

    present = set(_cached_ids(entry))
    missing_ids = [i for i in plan.all_ids if i not in present]
    if plan.all_ids and not present:
        raise BadItemsError(sorted(quarantined.items()) or [("*", "every item failed")])
    meta = {
        "n_items": len(plan.all_ids) - len(missing_ids), "n_manifest_items": len(plan.all_ids),
        "n_rows": int(sum(len(v) for v in plan.rows_of.values())) if view.modality == "text" else None,
        "quarantined": sorted(quarantined.items()), "missing_ids": missing_ids,
        "modality": view.modality, "text_source": view.text_source if view.modality == "text" else None,
        "encoder": enc_id, "encoder_name": view.encoder, "weights_hash": w_hash, "params": params,
        "corpus_fingerprint": plan.fingerprint, "manifest": str(manifest_path), "dim": dim, "level": view.level,
        "audio_seconds": audio_seconds,
        "seconds": time.perf_counter() - t0,
    }
    entry.write_meta(meta)
    log.info("extracted %d units (%d quarantined) into %s in %.1fs", n, len(quarantined), entry.dir, meta["seconds"])
    return result(False, meta)


def extract(manifest_path: Path, encoder_name: str, encoder_params: dict[str, Any], cache_root: Path, *,
            level: str = "pooled", **kwargs: Any) -> ExtractionResult:
    """An audio view (the single-encoder case): see :func:`extract_view`."""
    return extract_view(manifest_path, ViewSpec("audio", encoder_name, dict(encoder_params), level),  # type: ignore[arg-type]
                        cache_root, **kwargs)


def _cached_ids(entry: CacheEntry) -> list[str]:
    import pyarrow.parquet as pq

    parts = storage.list_files(entry.dir, "part-", ".parquet")
    if not parts:
        return []
    fs, _ = storage.filesystem(entry.dir)
    return pq.read_table([storage.filesystem(p)[1] for p in parts], columns=["id"], filesystem=fs).column("id").to_pylist()


def _write_quarantine(path: str, quarantined: dict[str, str]) -> None:
    storage.write_text(path, json.dumps(sorted(quarantined.items())))
