"""Keep the head node's MLflow run store (a sqlite file) in the experiment bucket.

On a cluster, ``mlflow server`` on the head writes artifacts straight to the bucket, but its run
metadata (params, metrics, tags) is a sqlite file on the head's disk, which ``ray down`` deletes.
``restore`` fetches the last backup before the server starts; ``loop`` copies a consistent
snapshot (sqlite's online backup, safe while the server writes) to the bucket every N seconds. A
failed backup (S3 unreachable for a while, throttling, expired credentials) is logged and tried
again at the next round, never the end of the loop; on SIGTERM or SIGINT the loop takes a final
backup and exits (``deploy/head_services.sh stop`` does this before ``ray down``).

    python -m orchestrator.mlflow_backup restore --db ~/mlflow/mlflow.db --to s3://bucket/mlflow/mlflow.db
    python -m orchestrator.mlflow_backup loop --db ~/mlflow/mlflow.db --to s3://bucket/mlflow/mlflow.db --every 300
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import tempfile
import threading
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


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _backup_logged(db: Path, dest: str) -> bool:
    """One backup; an error is logged, not raised (the next round tries again)."""
    try:
        if backup(db, dest):
            _log(f"backed up {db} to {dest}")
        return True
    except Exception as e:  # any failure of one round; the loop must outlive it
        _log(f"backup of {db} to {dest} failed, trying again later: {type(e).__name__}: {e}")
        return False


class SignalStop:
    """Set by SIGTERM/SIGINT. Unlike ``threading.Event`` its ``set`` takes no lock, so a signal
    handler may call it at any point of ``wait`` (an Event could deadlock on its own lock)."""

    def __init__(self) -> None:
        self.flag = False

    def set(self, *_: object) -> None:
        self.flag = True

    def wait(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not self.flag and time.monotonic() < end:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        return self.flag


def loop(db: Path, dest: str, every: float, stop: threading.Event | SignalStop,
         final_attempts: int = 3, retry_after: float = 5.0) -> bool:
    """Back up every ``every`` seconds until ``stop`` is set, then once more (the final backup,
    tried ``final_attempts`` times). True when the final backup succeeded."""
    while True:
        _backup_logged(db, dest)
        if stop.wait(every):
            break
    for attempt in range(final_attempts):
        if attempt:
            time.sleep(retry_after)
        if _backup_logged(db, dest):
            return True
    return False


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
    if args.action == "backup":
        return 0 if _backup_logged(db, args.to) else 1
    stop = SignalStop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop.set)
    ok = loop(db, args.to, args.every, stop)
    _log("final backup " + ("taken" if ok else "FAILED") + "; stopped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
