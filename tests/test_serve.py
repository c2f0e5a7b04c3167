"""``mlflow models serve`` on a registered retrieval model: the real server on loopback (its own
process group, a free port, stopped by its pgid) answers a text query and a base64 WAV audio query
with the ids, scores and metadata the CLI prints for the same queries."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from orchestrator.sweep import main
from tests.tiny_specs import tiny_tar

SPEC = tiny_tar(n_test=6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, payload: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_served_model_answers_like_the_cli(ray_local, tmp_path: Path, capsys) -> None:
    from orchestrator import search

    spec = tmp_path / "tiny_tar_srv.yaml"
    spec.write_text(SPEC)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main([str(spec), "--tracking-uri", uri, "--cache-dir", str(tmp_path / "cache"),
                 "--storage-path", str(tmp_path / "ray_results")]) == 0
    model = "models:/tiny_tar_srv@champion"
    capsys.readouterr()
    assert search.main([model, "a dog barks", "-k", "3", "--json", "--tracking-uri", uri]) == 0
    cli_text = json.loads(capsys.readouterr().out)
    wav = Path(cli_text["items"][0]["audio_path"])
    assert search.main([model, "--audio", str(wav), "-k", "4", "--json", "--tracking-uri", uri]) == 0
    cli_audio = json.loads(capsys.readouterr().out)

    port = _free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model, "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "MLFLOW_TRACKING_URI": uri}, start_new_session=True)
    try:
        deadline = time.time() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(1)
        served = _post(port, {"inputs": ["a dog barks"], "params": {"k": 3}})["predictions"][0]
        assert served["ids"] == cli_text["ids"]
        assert served["scores"] == pytest.approx(cli_text["scores"], abs=1e-5)
        assert served["items"] == cli_text["items"]
        audio = base64.b64encode(wav.read_bytes()).decode()
        served = _post(port, {"inputs": [audio], "params": {"k": 4, "modality": "audio"}})["predictions"][0]
        assert served["ids"] == cli_audio["ids"] and served["searched"] == "text"
        assert served["scores"] == pytest.approx(cli_audio["scores"], abs=1e-5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
