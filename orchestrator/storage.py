"""Paths and URIs through one door: everything the cache, the corpora and the run records read or
write goes through ``pyarrow.fs``, so the same code serves a local directory on one machine and a
bucket (``s3://...``, ``gs://...``) that every node of a cluster reaches.

S3 settings come from the standard AWS environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``/``AWS_REGION``), which pyarrow, Ray Data and Tune
all read, so a plain ``s3://bucket/prefix`` works everywhere once they are set.

Local writes go through a temporary name and a rename; an object store replaces an object
atomically on its own (a half-written object is never visible under its name).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow.fs as pafs


def is_uri(path: str | Path) -> bool:
    return "://" in str(path)


def resolve(path: str | Path) -> str:
    """A URI unchanged; a local path made absolute (Tune and other processes resolve it alike)."""
    return str(path) if is_uri(str(path)) else str(Path(path).expanduser().resolve())


def join(base: str | Path, *parts: str) -> str:
    return "/".join([str(base).rstrip("/"), *[p.strip("/") for p in parts if p]])


def parent(path: str) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[0]


def filesystem(path: str | Path) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) of a local path or a URI.

    Only ``scheme://bucket`` is parsed as a URI: object keys are taken verbatim, since corpus
    files are named by their words and captions ("från_00.wav", "Forest birds, morning.wav"),
    which a URI parser rejects unless percent-encoded, and the key must stay the file's name."""
    path = str(path)
    if is_uri(path):
        scheme, rest = path.split("://", 1)
        if scheme == "file":
            return pafs.LocalFileSystem(), os.path.abspath(rest)
        bucket = rest.split("/", 1)[0]
        return _bucket_filesystem(f"{scheme}://{bucket}"), rest.rstrip("/") if "/" in rest else bucket
    return pafs.LocalFileSystem(), os.path.abspath(path)


@functools.lru_cache(maxsize=16)
def _bucket_filesystem(root: str) -> pafs.FileSystem:
    """One filesystem object per bucket and process (S3 clients resolve regions and credentials)."""
    return pafs.FileSystem.from_uri(root)[0]


def uri(fs: pafs.FileSystem, path: str) -> str:
    """The URI of ``path`` inside ``fs`` (Tune hands out scheme-less bucket paths)."""
    if isinstance(fs, pafs.LocalFileSystem):
        return path
    scheme = {"s3": "s3", "gcs": "gs"}.get(fs.type_name, fs.type_name)
    return f"{scheme}://{path.lstrip('/')}"


def exists(path: str) -> bool:
    fs, p = filesystem(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def read_bytes(path: str) -> bytes:
    fs, p = filesystem(path)
    with fs.open_input_stream(p) as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode()


def write_bytes(path: str, data: bytes) -> None:
    fs, p = filesystem(path)
    fs.create_dir(parent(p), recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{p}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        return
    with fs.open_output_stream(p) as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode())


def list_files(path: str, prefix: str = "", suffix: str = "") -> list[str]:
    """Files directly in directory ``path`` whose names match, as full paths/URIs, sorted."""
    fs, p = filesystem(path)
    try:
        infos = fs.get_file_info(pafs.FileSelector(p, allow_not_found=True))
    except FileNotFoundError:
        return []
    names = sorted(i.base_name for i in infos if i.type == pafs.FileType.File)
    return [join(path, n) for n in names if n.startswith(prefix) and n.endswith(suffix)]


def upload_dir(local: str | Path, dest: str) -> None:
    """Copy a local directory tree to ``dest`` (a URI or another local directory)."""
    fs, p = filesystem(dest)
    fs.create_dir(p, recursive=True)
    pafs.copy_files(str(local), p, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def download_dir(src: str, local: str | Path) -> Path:
    fs, p = filesystem(src)
    Path(local).mkdir(parents=True, exist_ok=True)
    pafs.copy_files(p, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return Path(local)


def local_cache_dir() -> Path:
    """This node's own scratch cache (never shared: staging of corpora, copies of remote files)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "audio-retrieval-orchestrator"


def local_copy(path: str | Path) -> Path:
    """A local file for ``path``: itself when local, else a copy fetched once per node and kept
    under the node's cache, keyed by the URI and the object's size and modification time (so an
    encoder checkpoint given as ``s3://...`` is downloaded once, not per trial)."""
    if not is_uri(str(path)):
        return Path(path)
    fs, p = filesystem(str(path))
    info = fs.get_file_info(p)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(str(path))
    key = hashlib.sha256(f"{path}|{info.size}|{info.mtime_ns}".encode()).hexdigest()[:16]
    dest = local_cache_dir() / "remote" / key / info.base_name
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent)
        with os.fdopen(fd, "wb") as out, fs.open_input_stream(p) as src:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, dest)
    return dest
