"""Corpus manifests (Parquet) and the registry of corpus builders.

A manifest is the single hand-off between "where the audio lives" (a synthesised local corpus,
FLEURS, Clotho, ...) and everything downstream. One row is one retrievable item: an audio file or a
segment of one (``offset``/``duration`` in seconds), its split, its texts and its label.
Workloads register builders by name; the core never imports a workload's corpus code directly.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # unique item id
        pa.field("split", pa.string(), nullable=False),  # train | val | test
        pa.field("audio_path", pa.string(), nullable=False),  # absolute, or relative to the manifest
        pa.field("sr", pa.int32(), nullable=False),  # native sample rate of the file
        pa.field("offset", pa.float64(), nullable=False),  # segment start in the file (s); 0 = start
        pa.field("duration", pa.float64(), nullable=False),  # segment length (s)
        pa.field("texts", pa.list_(pa.string()), nullable=False),  # transcripts / captions
        pa.field("label", pa.string(), nullable=False),  # class: word, speaker, clip id, ...
        pa.field("speaker", pa.string(), nullable=True),
        pa.field("language", pa.string(), nullable=True),
        # JSON object of per-item metadata a workload may need (speaker attributes, topic category,
        # translations of the texts: {"translations": {"de": [...]}}); text views can read lists
        # of strings from it by a dotted path (see ``orchestrator.views``)
        pa.field("meta", pa.string(), nullable=True),
    ]
)
REQUIRED_COLUMNS = tuple(f.name for f in MANIFEST_SCHEMA if not f.nullable)
SPLITS = ("train", "val", "test")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the problem."""


def manifest_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Build a schema-conformant table from row dicts (optional columns may be omitted)."""
    cols = {f.name: [r.get(f.name) for r in rows] for f in MANIFEST_SCHEMA}
    for r in rows:
        r.setdefault("offset", 0.0)
    cols["offset"] = [float(r.get("offset") or 0.0) for r in rows]
    return pa.Table.from_pydict(cols, schema=MANIFEST_SCHEMA)


def write_manifest(table: pa.Table, path: Path) -> Path:
    """Validate and write atomically (temp file + rename), so a killed build never leaves a
    manifest that a later run would trust."""
    path = Path(path)
    validate_manifest(table, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def validate_manifest(table: pa.Table, source: str = "manifest") -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ManifestError(f"{source}: missing required column(s) {', '.join(missing)}")
    ids = table.column("id").to_pylist()
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise ManifestError(f"{source}: duplicate item id {dup!r}")
    bad_split = sorted(set(table.column("split").to_pylist()) - set(SPLITS))
    if bad_split:
        raise ManifestError(f"{source}: unknown split value(s) {bad_split}; expected {SPLITS}")
    for col in REQUIRED_COLUMNS:
        if table.column(col).null_count:
            idx = table.column(col).is_null().to_pylist().index(True)
            raise ManifestError(f"{source}: item {ids[idx]!r} has no {col!r}")


def read_manifest(path: Path) -> pa.Table:
    """Read, conform to the schema (adding absent optional columns) and validate a manifest.
    Relative audio paths are resolved against the manifest's folder."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"manifest not found: {path}")
    table = pq.read_table(path)
    validate_manifest(table, source=str(path))
    for f in MANIFEST_SCHEMA:
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    table = table.select([f.name for f in MANIFEST_SCHEMA]).cast(MANIFEST_SCHEMA)
    base = path.parent
    paths = [p if os.path.isabs(p) else str(base / p) for p in table.column("audio_path").to_pylist()]
    return table.set_column(table.schema.get_field_index("audio_path"), "audio_path", pa.array(paths))


def fingerprint(table: pa.Table) -> str:
    """Content fingerprint of a corpus: the manifest rows plus each file's size and mtime.

    Hashing every audio byte would cost as much as decoding the corpus; size+mtime catches
    replaced or regenerated files at stat() cost. Deterministic synthesis writes files once, so
    its fingerprint is stable across runs.
    """
    h = hashlib.sha256()
    rows = table.select(["id", "split", "audio_path", "offset", "duration", "label"]).to_pylist()
    stat_cache: dict[str, tuple[int, int]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        p = r["audio_path"]
        if p not in stat_cache:
            try:
                st = os.stat(p)
                stat_cache[p] = (st.st_size, st.st_mtime_ns)
            except OSError:
                stat_cache[p] = (-1, -1)
        h.update(json.dumps([r, stat_cache[p]], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def seeded_rng(*key: Any) -> np.random.Generator:
    """A generator that depends only on ``key`` (stable across processes and Python versions,
    unlike seeding from Python's salted ``hash``): what deterministic corpus synthesis needs."""
    digest = hashlib.sha256(json.dumps(key, ensure_ascii=False).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the packages a built corpus depends on (part of its build key)."""
    from importlib import metadata

    out = {}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "?"
    return out


def build_dir(root: Path, key: dict[str, Any]) -> Path:
    """``root/<hash of key>``: one directory per distinct build, so a changed option, recipe
    version or package version builds anew instead of reusing a stale corpus."""
    return Path(root) / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class CorpusRequest:
    """What a builder gets: which corpus, for which profile, where to find or put data."""

    name: str
    profile: str  # "local" | "paper"
    data_root: Path | None  # paper datasets live here
    work_dir: Path  # where local corpora are synthesised / manifests are written
    options: dict[str, Any]


Builder = Callable[[CorpusRequest], Path]  # returns the manifest path
_BUILDERS: dict[str, Builder] = {}


def register_corpus(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _BUILDERS[name] = fn
        return fn

    return deco


def build_corpus(req: CorpusRequest) -> Path:
    if req.name not in _BUILDERS:
        raise ManifestError(f"unknown corpus {req.name!r}; known: {sorted(_BUILDERS)}")
    return _BUILDERS[req.name](req)
