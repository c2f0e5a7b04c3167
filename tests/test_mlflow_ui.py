"""The sweep's results as a person sees them: a real MLflow UI server on loopback, the parent run's
page rendered by headless Chromium (Debian's `chromium` package), and the result table's text in
the rendered DOM. Skipped where no Chromium is installed (CI has none)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from orchestrator.sweep import main
from tests.conftest import _free_port
from tests.test_e2e_sweep import common, runs, space_file

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium here (Debian: apt-get install chromium)")
def test_parent_run_page_shows_the_result_table_in_a_browser(ray_local, tmp_path: Path) -> None:
    spec = space_file(tmp_path, "tiny_ui", "searcher: grid\nscheduler: {type: none}\nseeds: [0]\n")
    assert main([spec, *common(tmp_path)]) == 0
    client, parents, children = runs(tmp_path, "tiny_ui")
    parent, trial_id = parents[0], children[0].data.tags["trial_id"]
    port = _free_port()
    ui = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{tmp_path}/mlflow.db",
                           "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert ui.poll() is None and time.time() < deadline, "mlflow ui did not come up"
                time.sleep(0.5)
        page = f"http://127.0.0.1:{port}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
        dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
                              "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
    # the description's header, the best trial and the trials table, rendered (not the raw Markdown)
    assert "tiny_ui (qbe, profile local): 1 of 1 trial(s) ok" in dom
    assert "Best trial" in dom and trial_id in dom
    assert "<table" in dom and "| trial |" not in dom
