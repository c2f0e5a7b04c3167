"""Small files beside the Tune experiment (the invocation, MLflow run ids, the latest run name),
read and written through ``pyarrow.fs`` so the same code serves a local directory and a bucket
(``s3://...``) that every node of a cluster and a later ``--resume`` can reach.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs


def is_uri(path: str) -> bool:
    return "://" in str(path)


def resolve(path: str | Path) -> str:
    """A URI unchanged; a local path made absolute (Tune and other processes resolve it alike)."""
    return str(path) if is_uri(str(path)) else str(Path(path).expanduser().resolve())


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def _fs(path: str) -> tuple[pafs.FileSystem, str]:
    if is_uri(path):
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), os.path.abspath(path)


def exists(path: str) -> bool:
    fs, p = _fs(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def read_text(path: str) -> str:
    fs, p = _fs(path)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


def write_text(path: str, text: str) -> None:
    """Write through a temporary name and move it into place where the filesystem can (local);
    object stores replace an object atomically on their own."""
    fs, p = _fs(path)
    parent = p.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{p}.tmp{os.getpid()}"
        with fs.open_output_stream(tmp) as f:
            f.write(text.encode())
        os.replace(tmp, p)
        return
    with fs.open_output_stream(p) as f:
        f.write(text.encode())
