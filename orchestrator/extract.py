"""Embedding extraction with Ray Data: manifest -> decode/resample (CPU tasks) -> encoder actor pool
-> content-addressed cache.

The pipeline streams: decoding runs in stateless CPU tasks, the encoder lives in an
``ActorPoolStrategy`` stage (one GPU per actor on GPU clusters), and the driver writes each cache
shard as soon as all of its rows have come back, so a killed run keeps every finished shard and
the next run encodes only what is missing. Bad items never vanish: they either stop the run with
one line naming them or, with ``skip_bad_items``, are quarantined and listed in the cache's
metadata (and from there in MLflow).
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

from orchestrator.audio import BadAudioError, load_audio
from orchestrator.cache import CacheEntry, atomic_write_bytes, cache_key
from orchestrator.corpus import fingerprint, read_manifest
from orchestrator.encoders.base import AudioEncoder, build_encoder

log = logging.getLogger(__name__)

SHARD_SIZE = 256  # rows per cache shard: the unit of resumption


class BadItemsError(RuntimeError):
    """Items that cannot be decoded or encoded; the message names them (first few) in one line."""

    def __init__(self, bad: list[tuple[str, str]]):
        self.bad = bad
        shown = "; ".join(f"{i}: {r}" for i, r in bad[:3])
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        super().__init__(f"{len(bad)} bad item(s): {shown}{more}. Fix them or pass --skip-bad-items to quarantine them")


@dataclass
class ExtractionResult:
    cache_dir: Path
    key: str
    cache_hit: bool
    n_items: int
    quarantined: list[tuple[str, str]]
    seconds: float
    audio_seconds: float
    encoder_id: str
    weights_hash: str
    corpus_fingerprint: str
    meta: dict[str, Any] = field(default_factory=dict)


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
    out = {k: batch[k] for k in ("id", "split", "label", "shard")}
    out["wave"] = _object_array(waves)
    out["error"] = np.array(errors, dtype=object)
    return out


class _Encode:
    """Encoder stage, one model per actor; runs on a GPU when the actor was given one.

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
        return {
            "id": batch["id"], "split": batch["split"], "label": batch["label"], "shard": batch["shard"],
            "embedding": out, "error": np.array(errors, dtype=object), "audio_seconds": seconds,
        }


def _object_array(items: list[np.ndarray]) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


def _shard_table(rows: list[dict[str, Any]], dim: int, level: str = "pooled") -> pa.Table:
    rows = sorted(rows, key=lambda r: r["id"])
    cols: dict[str, Any] = {"id": [r["id"] for r in rows], "split": [r["split"] for r in rows],
                            "label": [r["label"] for r in rows]}
    if level == "features":  # variable-length [n_mels, T] per item, stored flat with its shape
        cols["features"] = pa.array([np.ravel(r["embedding"]) for r in rows], pa.list_(pa.float32()))
        cols["n_mels"] = pa.array([r["embedding"].shape[0] for r in rows], pa.int32())
        cols["n_frames"] = pa.array([r["embedding"].shape[1] for r in rows], pa.int32())
        return pa.table(cols)
    flat = np.concatenate([r["embedding"] for r in rows]).astype(np.float32) if rows else np.zeros(0, np.float32)
    cols["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(flat), dim)
    return pa.table(cols)


def actor_layout() -> tuple[int, float, float]:
    """(actors, GPUs per actor, CPUs per actor). One actor per GPU on GPU clusters; on CPU-only
    clusters one actor per two CPUs, each owning its two CPUs (Ray sets the actor's torch thread
    count from its CPU share, and the decode stage is fused into the same actor)."""
    import ray

    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    if gpus:
        return gpus, 1.0, 1.0
    cpus = max(1, int(res.get("CPU", 1)))
    return max(1, cpus // 2), 0.0, float(min(2, cpus))


def extract(
    manifest_path: Path,
    encoder_name: str,
    encoder_params: dict[str, Any],
    cache_root: Path,
    *,
    skip_bad_items: bool = False,
    batch_size: int = 16,
    num_actors: int | None = None,
    shard_size: int = SHARD_SIZE,
    level: str = "pooled",
) -> ExtractionResult:
    """Embed every item of a manifest once (``level="pooled"``), or compute its encoder input
    features (``level="features"``, finetune regime); reuse the cache entry when complete."""
    import ray

    t0 = time.perf_counter()
    table = read_manifest(manifest_path).sort_by("id")
    fp = fingerprint(table)
    probe = build_encoder(encoder_name, **encoder_params)  # cheap for the offline encoders
    enc_id, w_hash, dim, sr = probe.encoder_id, probe.weights_hash(), probe.dim, probe.sample_rate
    params = {"encoder_params": encoder_params, "encoder": probe.params(), "shard_size": shard_size,
              "level": level, **({"pooling": "mean"} if level == "pooled" else {})}
    del probe
    entry = CacheEntry(Path(cache_root), cache_key(fp, enc_id, w_hash, params))

    def result(hit: bool, meta: dict[str, Any]) -> ExtractionResult:
        quarantined = [tuple(x) for x in meta.get("quarantined", [])]
        if quarantined and not skip_bad_items:
            raise BadItemsError(quarantined)  # type: ignore[arg-type]
        return ExtractionResult(entry.dir, entry.key, hit, meta["n_items"], quarantined,  # type: ignore[arg-type]
                                time.perf_counter() - t0, meta.get("audio_seconds", 0.0), enc_id, w_hash, fp, meta)

    if entry.is_complete():
        log.info("embedding cache hit: %s (%s, %s)", entry.dir, enc_id, fp)
        return result(True, entry.meta())

    n = table.num_rows
    shard_of = np.arange(n) // shard_size
    n_shards = int(shard_of.max()) + 1 if n else 0
    done = entry.done_shards()
    pending = [s for s in range(n_shards) if s not in done]
    if done:
        log.info("resuming extraction into %s: %d/%d shards already done", entry.dir, len(done), n_shards)
    quarantine_file = entry.dir / "quarantine.json"
    # id -> reason; a dict so that re-encoding an unfinished shard after a kill records items once
    quarantined: dict[str, str] = {}
    if quarantine_file.exists():
        quarantined = dict(json.loads(quarantine_file.read_text()))

    audio_seconds = 0.0
    if pending:
        keep = np.isin(shard_of, pending)
        sub = table.filter(pa.array(keep)).append_column("shard", pa.array(shard_of[keep], pa.int64()))
        expected = {s: int((shard_of == s).sum()) for s in pending}
        actors, gpus, cpus = actor_layout()
        actors = num_actors or actors
        ds = (
            ray.data.from_arrow(sub)
            .map_batches(_decode, fn_kwargs={"target_sr": sr}, batch_size=batch_size, num_cpus=cpus)
            .map_batches(_Encode, fn_constructor_args=(encoder_name, encoder_params, level), batch_size=batch_size,
                         compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
                         num_gpus=gpus, num_cpus=cpus)
        )
        buffers: dict[int, list[dict[str, Any]]] = {s: [] for s in pending}
        counts = dict.fromkeys(pending, 0)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            bad_here = [(str(i), str(e)) for i, e in zip(batch["id"], batch["error"]) if e]
            if bad_here and not skip_bad_items:
                raise BadItemsError(bad_here)
            audio_seconds += float(batch["audio_seconds"].sum())
            for j in range(len(batch["id"])):
                s = int(batch["shard"][j])
                counts[s] += 1
                if batch["error"][j]:
                    quarantined[str(batch["id"][j])] = str(batch["error"][j])
                else:
                    buffers[s].append({"id": str(batch["id"][j]), "split": str(batch["split"][j]),
                                       "label": str(batch["label"][j]), "embedding": batch["embedding"][j]})
                if counts[s] == expected[s]:
                    _write_quarantine(quarantine_file, quarantined)  # before the shard that drops them
                    entry.write_shard(s, _shard_table(buffers.pop(s), dim, level))
        missing = [s for s, c in counts.items() if c != expected[s]]
        if missing:
            raise RuntimeError(f"extraction lost rows for shards {missing}; cache {entry.dir} left incomplete")

    meta = {
        "n_items": n - len(quarantined), "n_manifest_items": n, "quarantined": sorted(quarantined.items()),
        "encoder": enc_id, "encoder_name": encoder_name, "weights_hash": w_hash, "params": params,
        "corpus_fingerprint": fp, "manifest": str(manifest_path), "dim": dim, "level": level,
        "audio_seconds": audio_seconds,
        "seconds": time.perf_counter() - t0,
    }
    entry.write_meta(meta)
    log.info("extracted %d items (%d quarantined) into %s in %.1fs", n, len(quarantined), entry.dir, meta["seconds"])
    return result(False, meta)


def _write_quarantine(path: Path, quarantined: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(sorted(quarantined.items())).encode())
