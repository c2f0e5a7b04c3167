"""Keep the head node's MLflow run store (a sqlite file) in the experiment bucket.

On a cluster, ``mlflow server`` on the head writes artifacts straight to the bucket, but its run
metadata (params, metrics, tags) is a sqlite file on the head's disk, which ``ray down`` deletes.
``restore`` fetches the last backup before the server starts; ``loop`` copies a consistent
snapshot (sqlite's online backup, safe while the server writes) to the bucket every N seconds.

    python -m orchestrator.mlflow_backup restore --db ~/mlflow/mlflow.db --to s3://bucket/mlflow/mlflow.db
    python -m orchestrator.mlflow_backup loop --db ~/mlflow/mlflow.db --to s3://bucket/mlflow/mlflow.db --every 300
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from orchestrator import storage


def backup(db: Path, dest: str) -> bool:
    """Upload a consistent copy of ``db``; False when there is no database yet."""
    if not db.exists():
        return False
    with tempfile.TemporaryDirectory() as d:
        snap = Path(d) / "snapshot.db"
        src, out = sqlite3.connect(str(db)), sqlite3.connect(str(snap))
        try:
            src.backup(out)
        finally:
            out.close()
            src.close()
        storage.write_bytes(dest, snap.read_bytes())
    return True


def restore(db: Path, src: str) -> bool:
    """Fetch the backup into ``db`` unless a database is already there (never overwrite)."""
    if db.exists() or not storage.exists(src):
        return False
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(storage.read_bytes(src))
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m orchestrator.mlflow_backup", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["restore", "backup", "loop"], help="what to do")
    p.add_argument("--db", type=Path, required=True, help="the MLflow sqlite file on this node")
    p.add_argument("--to", required=True, help="its copy in the bucket (s3://...)")
    p.add_argument("--every", type=float, default=300.0, help="seconds between backups (loop)")
    args = p.parse_args(argv)
    db = args.db.expanduser()
    if args.action == "restore":
        print("restored" if restore(db, args.to) else "nothing to restore", flush=True)
        return 0
    while True:
        backup(db, args.to)
        if args.action == "backup":
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
