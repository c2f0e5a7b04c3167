"""Content-addressed embedding cache.

``<root>/<key>/`` holds ``part-NNNNN.parquet`` shards (one per fixed slice of the manifest, so an
interrupted extraction resumes shard by shard) and ``meta.json``, written last: a directory without
it is unfinished and only its complete shards are trusted. Every file is written to a temporary
name and renamed, so a killed writer never leaves a half-written shard under a trusted name.

The key hashes everything that changes the embeddings: the corpus fingerprint, the encoder id,
the hash of the weights actually loaded, and the encoder/extraction parameters. A second trial,
sweep or user with the same key reuses the entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator import storage

META = "meta.json"


def cache_key(corpus_fingerprint: str, encoder_id: str, weights_hash: str, params: dict[str, Any]) -> str:
    blob = json.dumps(
        {"corpus": corpus_fingerprint, "encoder": encoder_id, "weights": weights_hash, "params": params},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


@dataclass
class CacheEntry:
    """One content-addressed entry under ``root``, a local directory or a URI (``s3://...``)."""

    root: Path | str
    key: str

    @property
    def dir(self) -> str:
        return storage.join(storage.resolve(self.root), self.key)

    @property
    def local(self) -> bool:
        return not storage.is_uri(self.dir)

    def path(self) -> Path | str:
        """The entry as the caller likes it: a ``Path`` when local, else its URI."""
        return Path(self.dir) if self.local else self.dir

    def shard_path(self, index: int) -> str:
        return storage.join(self.dir, f"part-{index:05d}.parquet")

    def done_shards(self) -> set[int]:
        return {int(p.rsplit("/", 1)[1][5:10]) for p in storage.list_files(self.dir, "part-", ".parquet")}

    def is_complete(self) -> bool:
        return storage.exists(storage.join(self.dir, META))

    def write_shard(self, index: int, table: pa.Table) -> None:
        if self.local:
            Path(self.dir).mkdir(parents=True, exist_ok=True)
            atomic_write_parquet(table, Path(self.shard_path(index)))
            return
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        storage.write_bytes(self.shard_path(index), sink.getvalue().to_pybytes())

    def write_meta(self, meta: dict[str, Any]) -> None:
        storage.write_text(storage.join(self.dir, META), json.dumps(meta, indent=2, sort_keys=True, default=str))

    def meta(self) -> dict[str, Any]:
        return json.loads(storage.read_text(storage.join(self.dir, META)))


@dataclass
class EmbeddingSet:
    """Pooled embeddings of one split, aligned with their ids and labels."""

    ids: list[str]
    labels: list[str]
    X: np.ndarray  # [N, D] float32
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def table_to_embeddings(table: pa.Table, column: str = "embedding") -> EmbeddingSet:
    """A joined split table (``orchestrator.views.read_joined``) -> the pooled vectors of one
    audio view (``column`` = the view's name), with the manifest's ids and labels."""
    col = table.column(column).combine_chunks()
    dim = col.type.list_size
    X = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32)  # writable copy
    return EmbeddingSet(ids=table.column("id").to_pylist(), labels=table.column("label").to_pylist(), X=X)


def load_embeddings(cache_dir: Path | str, split: str | None = None, manifest: Path | str | None = None) -> EmbeddingSet:
    """A complete audio cache entry joined with its manifest (by default the one it was extracted
    from), optionally one split, ordered by id."""
    from orchestrator.views import read_joined

    if not storage.exists(storage.join(str(cache_dir), META)):
        raise FileNotFoundError(f"embedding cache {cache_dir} is incomplete (no {META})")
    manifest = manifest or json.loads(storage.read_text(storage.join(str(cache_dir), META)))["manifest"]
    table, _ = read_joined(manifest, {"v": cache_dir}, (split,) if split else ("train", "val", "test"))
    return table_to_embeddings(table, "v")
