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
        # sha256 of the audio file's bytes, recorded when a corpus is published to shared storage,
        # so its fingerprint needs no second read of every object in the bucket
        pa.field("audio_sha256", pa.string(), nullable=True),
    ]
)
REQUIRED_COLUMNS = tuple(f.name for f in MANIFEST_SCHEMA if not f.nullable)
SPLITS = ("train", "val", "test")
PUBLISHED = "PUBLISHED"  # marker written after a corpus and its manifest reached shared storage


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the problem."""


def manifest_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Build a schema-conformant table from row dicts (optional columns may be omitted)."""
    cols = {f.name: [r.get(f.name) for r in rows] for f in MANIFEST_SCHEMA}
    for r in rows:
        r.setdefault("offset", 0.0)
    cols["offset"] = [float(r.get("offset") or 0.0) for r in rows]
    return pa.Table.from_pydict(cols, schema=MANIFEST_SCHEMA)


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename onto ``path``: a killed or concurrent build never leaves a
    half-written file that a later run would trust."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


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


def read_manifest(path: Path | str) -> pa.Table:
    """Read, conform to the schema (adding absent optional columns) and validate a manifest (a
    local path or a URI). Relative audio paths are resolved against the manifest's folder."""
    from orchestrator import storage

    path = str(path)
    if not storage.exists(path):
        raise ManifestError(f"manifest not found: {path}")
    fs, inner = storage.filesystem(path)
    table = pq.read_table(inner, filesystem=fs)
    validate_manifest(table, source=path)
    for f in MANIFEST_SCHEMA:
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    table = table.select([f.name for f in MANIFEST_SCHEMA]).cast(MANIFEST_SCHEMA)
    base = storage.parent(storage.resolve(path))
    paths = [p if os.path.isabs(p) or storage.is_uri(p) else storage.join(base, p)
             for p in table.column("audio_path").to_pylist()]
    return table.set_column(table.schema.get_field_index("audio_path"), "audio_path", pa.array(paths))


def publish_corpus(manifest: Path, dest: str, with_audio: bool) -> str:
    """Put a corpus the driver built or adapted where every node can read it (``dest``, a URI):
    the audio files (``with_audio``: synthesised corpora) and a manifest that names them by URI
    and records their content hashes. Paper datasets stay where ``--data-root`` has them (a
    filesystem every node mounts); only their manifest travels. Returns the published manifest."""
    from orchestrator import storage

    manifest = Path(manifest)
    target = storage.join(dest, "manifest.parquet")
    if storage.exists(storage.join(dest, PUBLISHED)):  # the build directory is content-addressed
        return target
    table = read_manifest(manifest)
    if with_audio:
        root = manifest.parent.resolve()
        paths, shas = [], []
        for p in table.column("audio_path").to_pylist():
            rel = Path(p).resolve().relative_to(root).as_posix()
            paths.append(storage.join(dest, rel))
            shas.append(hashlib.sha256(Path(p).read_bytes()).hexdigest())
        table = table.set_column(table.schema.get_field_index("audio_path"), "audio_path", pa.array(paths))
        table = table.set_column(table.schema.get_field_index("audio_sha256"), "audio_sha256", pa.array(shas))
        storage.upload_dir(root, dest)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    storage.write_bytes(target, sink.getvalue().to_pybytes())  # replaces the uploaded local one
    storage.write_text(storage.join(dest, PUBLISHED), "ok")  # last: the corpus is complete
    return target


class AudioCheck:
    """What a corpus build learns about its audio files from their headers, without decoding.

    A real corpus may lack a few of the files its tables list (one absent clip of a 1.7-million-row
    Common Voice release), or hold files whose header cannot be read. Neither stops the build:
    the row is kept with ``fallback_sr`` and duration 0 ("whole file"), named in the build log,
    and left to the core's bad-item check, which runs before any encoding (see
    :func:`missing_audio`): it stops with one line naming the items and files, or, with
    ``--skip-bad-items``, quarantines them and records them with their reason (the views'
    ``quarantine.json``, logged to MLflow as ``data/quarantine.json``). No row is dropped here, so
    nothing is dropped without a record.
    """

    def __init__(self, corpus: str):
        self.corpus = corpus
        self.missing: list[str] = []
        self.unreadable: list[str] = []
        self._seen: dict[str, tuple[int, float]] = {}  # a file read for several rows is noted once

    def info(self, path: Path | str, fallback_sr: int, where: str = "") -> tuple[int, float]:
        """``(sample rate, duration in s)`` from the header; a missing or unreadable file gives
        ``(fallback_sr, 0.0)`` and is noted (``where``: e.g. "line 4: ", for the log)."""
        import soundfile as sf

        key = str(path)
        if key in self._seen:
            return self._seen[key]
        out = (fallback_sr, 0.0)
        if not os.path.isfile(path):
            self.missing.append(f"{where}{path}")
        else:
            try:
                info = sf.info(key)
                out = (int(info.samplerate), float(info.frames) / info.samplerate)
            except Exception as e:  # noqa: BLE001  (libsndfile raises its own error types)
                self.unreadable.append(f"{where}{path} ({e})")
        self._seen[key] = out
        return out

    def log(self, show: int = 3, hint: str = "") -> None:
        """One warning line per kind of problem (counts and the first few files); ``hint`` is
        added to the missing files' line (e.g. which archive to extract)."""
        check = "kept for the extraction's bad-item check (fails, or quarantines with --skip-bad-items)"
        if self.missing:
            print(f"[{self.corpus}] warning: {len(self.missing)} audio file(s) not found, {check}: "
                  f"{'; '.join(self.missing[:show])}{hint}")  # fmt: skip
        if self.unreadable:
            print(f"[{self.corpus}] warning: {len(self.unreadable)} audio file(s) with an unreadable header, "
                  f"{check}: {'; '.join(self.unreadable[:show])}")  # fmt: skip


def input_stats(paths: list[Path]) -> list[tuple[str, int, int]]:
    """``(path, size, mtime)`` of a build's input files, its build key's cheap identity; a missing
    file gets ``(path, -1, -1)``, so the corpus is rebuilt once the file appears."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((str(p), st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append((str(p), -1, -1))
    return out


def missing_audio(table: pa.Table) -> dict[str, str]:
    """Items whose local audio file does not exist: ``id -> "missing audio file <path>"`` (the
    reason decoding would give). Checked before extraction, so a corpus built with absent files
    (:class:`AudioCheck`) stops before any encoding, or quarantines them up front. URIs are left to
    decoding (a stat per object would cost a request each)."""
    from orchestrator import storage

    out: dict[str, str] = {}
    exists: dict[str, bool] = {}
    for item, path in zip(table.column("id").to_pylist(), table.column("audio_path").to_pylist(), strict=True):
        if storage.is_uri(path):
            continue
        if path not in exists:
            exists[path] = os.path.isfile(path)
        if not exists[path]:
            out[item] = f"missing audio file {path}"
    return out


def check_splits(rows: list[dict[str, Any]], source: str, unit: str = "item", hint: str = "",
                 req: CorpusRequest | None = None) -> None:  # fmt: skip
    """One line naming the first of train/val/test that a build left empty (a grouped or
    speaker-disjoint split of a small corpus can): an empty split would give an empty table.
    Not for a part of a union (``req.part_of``): the union is checked."""
    if req is not None and req.part_of:
        return
    counts = {s: sum(1 for r in rows if r["split"] == s) for s in SPLITS}
    empty = [s for s in SPLITS if not counts[s]]
    if empty:
        have = ", ".join(f"{s} {n}" for s, n in counts.items())
        raise ManifestError(f"{source}: split {empty[0]!r} is empty ({have} {unit}s){hint}")


class FileHashMemo:
    """Content hashes of audio files, remembered by (path, size, mtime) in a small sqlite file.

    The corpus fingerprint must depend on what the files contain, not on where or when they were
    written (a cache shared by users or nodes, a corpus rebuilt byte-identically or copied
    elsewhere must hit). Hashing every byte on every run would cost a read of the corpus, so a
    file whose path, size and mtime are unchanged reuses its hash; a copied or touched file is
    re-read once, and since its bytes are the same, so is the fingerprint.
    """

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        self._db: Any = None

    def _conn(self) -> Any:
        if self._db is None and self.path is not None:
            import sqlite3

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=60)
            self._db.execute("CREATE TABLE IF NOT EXISTS h (path TEXT PRIMARY KEY, size INT, mtime INT, sha TEXT)")
        return self._db

    def digest(self, path: str) -> str:
        """sha256 of the file's bytes; ``missing`` when it cannot be read (extraction reports it)."""
        try:
            st = os.stat(path)
        except OSError:
            return "missing"
        db = self._conn()
        if db is not None:
            row = db.execute("SELECT size, mtime, sha FROM h WHERE path = ?", (path,)).fetchone()
            if row and row[0] == st.st_size and row[1] == st.st_mtime_ns:
                return str(row[2])
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            return "missing"
        sha = h.hexdigest()
        if db is not None:
            db.execute("INSERT OR REPLACE INTO h VALUES (?, ?, ?, ?)", (path, st.st_size, st.st_mtime_ns, sha))
        return sha

    def close(self) -> None:
        if self._db is not None:
            self._db.commit()
            self._db.close()
            self._db = None


def audio_fingerprint(table: pa.Table, memo: FileHashMemo | None = None) -> str:
    """Content fingerprint of a corpus' audio: item ids, segment bounds and each file's bytes.

    Not the paths, not modification times, not texts, labels or splits: an audio view's
    embeddings depend on none of those, so editing a caption or re-splitting reuses them.
    """
    memo = memo or FileHashMemo(None)
    h = hashlib.sha256()
    digests: dict[str, str] = {}
    cols = ["id", "audio_path", "offset", "duration"] + (["audio_sha256"] if "audio_sha256" in table.column_names else [])
    rows = table.select(cols).to_pylist()
    try:
        for r in sorted(rows, key=lambda r: r["id"]):
            p = r["audio_path"]
            if p not in digests:
                digests[p] = r.get("audio_sha256") or memo.digest(p)
            h.update(json.dumps([r["id"], r["offset"], r["duration"], digests[p]]).encode())
    finally:
        memo.close()
    return h.hexdigest()[:16]


def text_fingerprint(items: list[tuple[str, list[str]]]) -> str:
    """Content fingerprint of a text view: each item id with the texts it embeds, in order."""
    h = hashlib.sha256()
    for item_id, texts in sorted(items):
        h.update(json.dumps([item_id, texts], ensure_ascii=False).encode())
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
    # set when the corpus is built as one part of a union (e.g. "clasp_combined"): a split the part
    # leaves empty is then no error, the union's splits are checked (:func:`check_splits`)
    part_of: str | None = None


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
