"""--resume and interruption: a sweep whose driver is killed continues with the same MLflow parent
run and the same invocation (the epoch cap it was started with), keeps the finished trials and
completes the rest; a finished sweep has nothing to resume; Ctrl-C marks the parent KILLED, lists
the trials that did not run as pending and prints the CLI's own resume command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.sweep import main
from tests.test_e2e_sweep import common, runs, space_file


def finished_children(db: str, experiment: str) -> int:
    try:
        client = MlflowClient(db)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return 0
        return sum(1 for r in client.search_runs([exp.experiment_id])
                   if "mlflow.parentRunId" in r.data.tags and r.info.status == "FINISHED")
    except Exception:  # the store may be mid-creation
        return 0


def start_and_stop(ray_local, tmp_path: Path, spec: str, sig: int, extra: list[str]) -> subprocess.CompletedProcess:
    """Run the sweep CLI in a subprocess and send ``sig`` to the driver once a trial finished."""
    address = ray_local.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "orchestrator.sweep", spec, "--address", address, *extra, *common(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    db = f"sqlite:///{tmp_path}/mlflow.db"
    deadline = time.time() + 400
    try:
        while finished_children(db, Path(spec).stem) < 1:
            assert proc.poll() is None, "sweep ended before it could be interrupted"
            assert time.time() < deadline, "no trial finished in time"
            time.sleep(0.25)  # trials take about a second: a slower poll saw the whole grid finished
    finally:
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver dies: no clean shutdown
        else:
            os.kill(proc.pid, sig)  # Ctrl-C reaches the driver
    out, _ = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def test_killed_sweep_resumes_with_its_invocation(ray_local, tmp_path: Path) -> None:
    # six trials, so some are still to run when the first finished one is seen
    spec = space_file(tmp_path, "tiny_resume", "searcher: grid\nscheduler: {type: none}\nseeds: [0, 1, 2, 3, 4, 5]\n")
    start_and_stop(ray_local, tmp_path, spec, signal.SIGKILL, ["--max-epochs", "5"])
    _, parents, children = runs(tmp_path, "tiny_resume")
    assert len(parents) == 1 and parents[0].info.status == "RUNNING"
    done_before = {c.info.run_id for c in children if c.info.status == "FINISHED"}
    assert 1 <= len(done_before) < 6

    # no flags but --resume: the cap of 5 epochs (not the space's 10) comes back with the run
    assert main([spec, "--resume", "--storage-path", str(tmp_path / "ray_results")]) == 0
    client, parents2, children2 = runs(tmp_path, "tiny_resume")
    assert [p.info.run_id for p in parents2] == [parents[0].info.run_id]  # same parent run
    assert parents2[0].info.status == "FINISHED"
    assert parents2[0].data.params["invocation.max_epochs"] == "5"
    assert len(children2) == 6 and all(c.info.status == "FINISHED" for c in children2)
    assert {c.data.params["epochs"] for c in children2} == {"5"}
    assert done_before <= {c.info.run_id for c in children2}
    assert all("test/transformed/map" in c.data.metrics for c in children2)
    trials = json.loads(Path(client.download_artifacts(parents2[0].info.run_id, "tables/trials.json",
                                                       str(tmp_path))).read_text())
    assert len(trials["data"]) == 6  # one row per trial

    # a finished sweep has nothing to resume: one line, nothing duplicated
    assert main([spec, "--resume", "--storage-path", str(tmp_path / "ray_results")]) == 2
    assert main([spec, "--resume", "--max-epochs", "7", "--storage-path", str(tmp_path / "ray_results")]) == 2
    _, parents3, children3 = runs(tmp_path, "tiny_resume")
    assert len(parents3) == 1 and len(children3) == 6


@pytest.mark.slow
def test_ctrl_c_marks_the_parent_killed_and_prints_the_resume_command(ray_local, tmp_path: Path) -> None:
    spec = space_file(tmp_path, "tiny_sigint", "searcher: grid\nscheduler: {type: none}\nseeds: [0, 1, 2, 3, 4, 5]\n")
    done = start_and_stop(ray_local, tmp_path, spec, signal.SIGINT, [])
    assert done.returncode == 130, done.stdout
    assert "python -m orchestrator.sweep" in done.stdout and "--resume" in done.stdout
    assert "Tuner.restore" not in done.stdout
    client, parents, _ = runs(tmp_path, "tiny_sigint")
    assert parents[0].info.status == "KILLED"
    trials = json.loads(Path(client.download_artifacts(parents[0].info.run_id, "tables/trials.json",
                                                       str(tmp_path))).read_text())
    status = [dict(zip(trials["columns"], row))["status"] for row in trials["data"]]
    assert "ok" in status and "pending" in status and len(status) == 6
