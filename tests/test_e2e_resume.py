"""--resume: a sweep whose driver is killed mid-way continues with the same MLflow parent run,
keeps the finished trials and completes the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def test_killed_sweep_resumes(ray_local, tmp_path: Path) -> None:
    spec = space_file(tmp_path, "tiny_resume", "searcher: grid\nscheduler: {type: none}\nseeds: [0, 1, 2]\n")
    address = ray_local.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "orchestrator.sweep", spec, "--address", address, *common(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    db = f"sqlite:///{tmp_path}/mlflow.db"
    deadline = time.time() + 400
    try:
        while finished_children(db, "tiny_resume") < 1:
            assert proc.poll() is None, "sweep ended before it could be interrupted"
            assert time.time() < deadline, "no trial finished in time"
            time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver dies: no clean shutdown
        proc.wait()
    _, parents, children = runs(tmp_path, "tiny_resume")
    assert len(parents) == 1 and parents[0].info.status == "RUNNING"
    done_before = {c.info.run_id for c in children if c.info.status == "FINISHED"}
    assert 1 <= len(done_before) < 3

    assert main([spec, "--resume", *common(tmp_path)]) == 0
    _, parents2, children2 = runs(tmp_path, "tiny_resume")
    assert [p.info.run_id for p in parents2] == [parents[0].info.run_id]  # same parent run
    assert parents2[0].info.status == "FINISHED"
    assert len(children2) == 3 and all(c.info.status == "FINISHED" for c in children2)
    assert done_before <= {c.info.run_id for c in children2}
    assert all("test/transformed/map" in c.data.metrics for c in children2)
