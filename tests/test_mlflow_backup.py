"""The head's MLflow run-store backup (orchestrator.mlflow_backup): a failed round does not end the
loop, and SIGTERM takes a final backup of what was written since the last round."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from orchestrator import mlflow_backup, storage

ROOT = Path(__file__).resolve().parent.parent


def rows(db: Path) -> list[int]:
    con = sqlite3.connect(str(db))
    try:
        return [r[0] for r in con.execute("select v from t order by v")]
    finally:
        con.close()


def write_rows(db: Path, *values: int) -> None:
    con = sqlite3.connect(str(db))
    with con:
        con.execute("create table if not exists t (v integer)")
        con.executemany("insert into t values (?)", [(v,) for v in values])
    con.close()


def test_loop_survives_failed_rounds_and_takes_a_final_backup(tmp_path: Path, monkeypatch) -> None:
    db, dest = tmp_path / "mlflow.db", str(tmp_path / "bucket" / "mlflow.db")
    write_rows(db, 1)
    real_write = storage.write_bytes
    calls: list[str] = []
    stop = threading.Event()

    def flaky_write(path: str, data: bytes) -> None:
        calls.append(path)
        if len(calls) in (1, 2):  # S3 unreachable for two rounds
            raise OSError("When uploading part for key 'mlflow/mlflow.db': AWS Error NETWORK_CONNECTION")
        real_write(path, data)
        if len(calls) == 3:
            write_rows(db, 2)  # the server writes after the last round ...
            stop.set()  # ... and then the loop is told to stop

    monkeypatch.setattr(storage, "write_bytes", flaky_write)
    assert mlflow_backup.loop(db, dest, every=0.01, stop=stop)
    assert len(calls) == 4  # three rounds (two failed) and the final backup
    restored = tmp_path / "restored.db"
    assert mlflow_backup.restore(restored, dest)
    assert rows(restored) == [1, 2]  # the final backup has what came after the last round


def test_final_backup_is_retried(tmp_path: Path, monkeypatch) -> None:
    db, dest = tmp_path / "mlflow.db", str(tmp_path / "bucket" / "mlflow.db")
    write_rows(db, 1)
    stop = threading.Event()
    stop.set()
    real_write, calls = storage.write_bytes, []

    def write(path: str, data: bytes) -> None:
        calls.append(path)
        if len(calls) <= 2:  # the round before stopping and the first final attempt fail
            raise OSError("SlowDown")
        real_write(path, data)

    monkeypatch.setattr(storage, "write_bytes", write)
    assert mlflow_backup.loop(db, dest, every=3600, stop=stop, final_attempts=3, retry_after=0)
    assert len(calls) == 3 and storage.exists(dest)


def test_sigterm_ends_the_loop_process_with_a_final_backup(tmp_path: Path) -> None:
    db, dest = tmp_path / "mlflow.db", tmp_path / "bucket" / "mlflow.db"
    write_rows(db, 1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.mlflow_backup", "loop", "--db", str(db), "--to", str(dest),
         "--every", "3600"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not dest.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert dest.exists(), "no first backup"
        write_rows(db, 2)  # written after the first round; the next round is an hour away
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "final backup taken" in err
    restored = tmp_path / "restored.db"
    assert mlflow_backup.restore(restored, str(dest))
    assert rows(restored) == [1, 2]


def test_one_shot_backup_fails_loudly(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "mlflow.db"
    write_rows(db, 1)

    def broken(path: str, data: bytes) -> None:
        raise OSError("AccessDenied")

    monkeypatch.setattr(storage, "write_bytes", broken)
    assert mlflow_backup.main(["backup", "--db", str(db), "--to", str(tmp_path / "b" / "x.db")]) == 1
    assert os.path.exists(db)
