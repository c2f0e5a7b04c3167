"""--resume against a tracking store older than the run records (tracking.json): a sqlite store
restored from a backup taken before the head was lost. What the store lacks is re-created from the
records, nothing is lost: missing child runs come back with their params, tags, final metrics and
tables; a finished trial whose run the older store still shows RUNNING is completed; a missing
parent run is re-created and its records point at the new ids."""

from __future__ import annotations

import json
import pickle
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.tracking import SweepTracker

EXPERIMENT = "older_store"
TEST = {"test/transformed/map": 0.61, "test/transformed/recall@20": 0.9}


def snapshot(db: Path, to: Path) -> None:
    """What the backup loop uploads: sqlite's online backup of the live store."""
    src, out = sqlite3.connect(db), sqlite3.connect(to)
    try:
        src.backup(out)
    finally:
        out.close()
        src.close()


def trial_artifacts(tmp: Path, trial_id: str) -> Path:
    """A trial's final checkpoint as the trial leaves it: tables in MLflow's split layout."""
    ckpt = tmp / "ckpt" / trial_id
    (ckpt / "tables").mkdir(parents=True)
    pd.DataFrame({"k": [1, 5], "map": [0.5, 0.6]}).to_json(ckpt / "tables" / "qbe_retrieval.json",
                                                           orient="split", index=False)
    return ckpt


def record(tracker: SweepTracker, trial_id: str, n: int, **fields) -> None:
    """The trial record MlflowTrialCallback keeps in tracking.json."""
    tracker.state.setdefault("trials", {})[trial_id] = {
        "number": n, "config": {"lr": 0.001 * n, "seed": n}, "run_id": tracker.state["children"].get(trial_id),
        **fields}
    tracker.save()


def finish_trial(tracker: SweepTracker, tmp: Path, trial_id: str, n: int) -> None:
    run = tracker.child_for(trial_id, {"lr": 0.001 * n, "seed": n}, {"workload": "qbe", "profile": "local"})
    art = trial_artifacts(tmp, trial_id)
    tracker.log_metrics(run, {"val/silhouette": 0.3}, step=4)
    tracker.log_final(run, {**TEST, "best/val/silhouette": 0.4}, art)
    tracker.finish(run, "FINISHED")
    record(tracker, trial_id, n, status="ok", artifacts=str(art),
           metrics={**TEST, "best/val/silhouette": 0.4, "val/silhouette": 0.3})


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path, str]:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "mlflow.db"
    return f"sqlite:///{db}", db, str(tmp_path / "records" / "tracking.json")


def interrupted_sweep(tmp: Path, uri: str, db: Path, state: str, backup_after: str) -> SweepTracker:
    """A sweep of four trials whose driver stopped: t1 and t2 finished, t3 failed, t4 pending.
    The store is backed up after the parent started ("parent"), or before anything ("nothing")."""
    if backup_after == "nothing":
        MlflowClient(uri).search_experiments()  # an empty store, as on a head that never backed up
        snapshot(db, tmp / "older.db")
    tracker = SweepTracker(uri, EXPERIMENT, state)
    tracker.start_parent("sweep-1", {"invocation": {"max_epochs": 5}}, {"profile": "local", "sweep": EXPERIMENT})
    t1 = tracker.child_for("t1", {"lr": 0.001, "seed": 1}, {"workload": "qbe", "profile": "local"})
    tracker.log_metrics(t1, {"val/silhouette": 0.2}, step=2)
    record(tracker, "t1", 1, status="running")
    if backup_after == "parent":
        snapshot(db, tmp / "older.db")  # t1 is RUNNING in it, with one validation round
    finish_trial(tracker, tmp, "t1", 1)
    finish_trial(tracker, tmp, "t2", 2)
    t3 = tracker.child_for("t3", {"lr": 0.003, "seed": 3}, {"workload": "qbe", "profile": "local"})
    tracker.log_tags(t3, {"failure_reason": "diverged: loss is nan at epoch 2"})
    tracker.finish(t3, "FAILED")
    record(tracker, "t3", 3, status="failed", error="diverged: loss is nan at epoch 2")
    tracker.child_for("t4", {"lr": 0.004, "seed": 4}, {"workload": "qbe", "profile": "local"})
    record(tracker, "t4", 4, status="pending")
    tracker.finish_parent("KILLED")
    return tracker


def restore_older(tmp: Path, db: Path) -> None:
    """The older backup in place of the store (in place: MLflow keeps its engine on this path)."""
    snapshot(tmp / "older.db", db)


def resume(uri: str, state: str) -> SweepTracker:
    tracker = SweepTracker(uri, EXPERIMENT, state)
    tracker.start_parent("sweep-1", {"invocation": {"max_epochs": 5}}, {"profile": "local", "sweep": EXPERIMENT})
    return tracker


def table(client: MlflowClient, run_id: str, name: str, dst: Path) -> dict:
    return json.loads(Path(client.download_artifacts(run_id, f"tables/{name}.json", str(dst))).read_text())


def assert_trials_complete(tracker: SweepTracker, tmp: Path) -> None:
    client = tracker.client
    recs = tracker.state["trials"]
    for tid in ("t1", "t2"):
        run = client.get_run(tracker.state["children"][tid])
        assert recs[tid]["run_id"] == run.info.run_id  # the records name the runs the store has
        assert run.info.status == "FINISHED", tid
        assert run.data.metrics["test/transformed/map"] == pytest.approx(0.61)
        assert run.data.metrics["test/transformed/recall20"] == pytest.approx(0.9)
        assert run.data.metrics["best/val/silhouette"] == pytest.approx(0.4)
        assert run.data.params["lr"] == str(0.001 * int(tid[1])) and run.data.tags["workload"] == "qbe"
        assert run.data.tags["mlflow.parentRunId"] == tracker.parent_id and run.data.tags["trial_id"] == tid
        assert table(client, run.info.run_id, "qbe_retrieval", tmp / tid)["columns"] == ["k", "map"]
        assert "tables/qbe_retrieval.json" in run.data.tags["mlflow.loggedArtifacts"]
    failed = client.get_run(tracker.state["children"]["t3"])
    assert failed.info.status == "FAILED" and failed.data.tags["failure_reason"].startswith("diverged")
    pending = client.get_run(tracker.state["children"]["t4"])
    assert pending.info.status != "FINISHED"  # Tune runs it; its run is the one child_for returns
    assert tracker.child_for("t4", {"lr": 0.004, "seed": 4}, {}) == pending.info.run_id
    children = client.search_runs([tracker.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{tracker.parent_id}'")
    assert sorted(r.data.tags["trial_id"] for r in children) == ["t1", "t2", "t3", "t4"]  # none twice


def test_resume_completes_and_recreates_what_an_older_store_lacks(store, tmp_path: Path) -> None:
    uri, db, state = store
    before = interrupted_sweep(tmp_path, uri, db, state, backup_after="parent")
    parent, t1 = before.parent_id, before.state["children"]["t1"]
    restore_older(tmp_path, db)

    tracker = resume(uri, state)
    assert tracker.parent_id == parent and not tracker.recreated_parent
    assert tracker.state["children"]["t1"] == t1  # still in the older store: completed, not re-created
    hist = tracker.client.get_metric_history(t1, "val/silhouette")
    assert [(h.step, h.value) for h in hist] == [(2, 0.2)]  # its validation history kept, not re-logged
    assert set(tracker.state["recreated_runs"]) == {before.state["children"][t] for t in ("t2", "t3", "t4")}
    assert_trials_complete(tracker, tmp_path)

    # a second resume finds nothing missing and changes nothing
    again = resume(uri, state)
    assert again.state["children"] == tracker.state["children"] and again.parent_id == parent


def test_resume_recreates_the_parent_when_the_store_predates_the_sweep(store, tmp_path: Path) -> None:
    uri, db, state = store
    before = interrupted_sweep(tmp_path, uri, db, state, backup_after="nothing")
    pickled = pickle.dumps(before)  # Tune keeps its callbacks (and their tracker) in a pickle
    restore_older(tmp_path, db)

    tracker = resume(uri, state)
    assert tracker.recreated_parent and tracker.parent_id != before.parent_id
    parent = tracker.client.get_run(tracker.parent_id)
    assert parent.data.tags["recreated_from_run_id"] == before.parent_id
    assert parent.data.params["invocation.max_epochs"] == "5" and parent.info.status == "RUNNING"
    assert_trials_complete(tracker, tmp_path)
    restored = pickle.loads(pickled)  # the store's experiment is a new one: the pickle's id is stale
    assert restored.experiment_id == tracker.experiment_id and restored.parent_id == tracker.parent_id


def finished_in(db: Path) -> int:
    """FINISHED runs in a sqlite store file, read directly (no MLflow engine kept on it)."""
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM runs WHERE status = 'FINISHED'").fetchone()[0]
    except sqlite3.OperationalError:  # no tables yet
        return -1
    finally:
        con.close()


@pytest.mark.slow
def test_killed_sweep_resumes_on_an_older_store_without_losing_a_trial(ray_local, tmp_path: Path) -> None:
    """The e2e resume test's tiny QbE grid: the store is backed up while no trial has finished,
    the driver is killed once one has, the head's store is lost and the older backup restored;
    ``--resume`` ends with every trial's run FINISHED with its test metrics and tables."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from orchestrator.sweep import main
    from tests.test_e2e_sweep import common, runs, space_file

    spec = space_file(tmp_path, "tiny_older", "searcher: grid\nscheduler: {type: none}\nseeds: [0, 1, 2]\n")
    db, older = tmp_path / "mlflow.db", tmp_path / "older.db"
    address = ray_local.get_runtime_context().gcs_address
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.sweep", spec, "--address", address,
                             "--max-epochs", "5", *common(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 400
    try:
        while not (older.exists() and finished_in(db) >= 1):
            assert proc.poll() is None, "sweep ended before it could be interrupted"
            assert time.time() < deadline, "no trial finished in time"
            if db.exists():
                snapshot(db, tmp_path / "candidate.db")
                if finished_in(tmp_path / "candidate.db") == 0:  # a backup from before any trial finished
                    (tmp_path / "candidate.db").replace(older)
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver (and the head with it) is gone
        proc.communicate(timeout=120)
    snapshot(older, db)  # the new head restores the older backup

    assert main([spec, "--resume", "--storage-path", str(tmp_path / "ray_results")]) == 0
    client, parents, children = runs(tmp_path, "tiny_older")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.tags["trial_id"] for c in children}) == 3  # no trial's run twice
    for c in children:
        assert c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert "test/transformed/map" in c.data.metrics and c.data.params["epochs"] == "5"
        assert "tables/qbe_retrieval.json" in {a.path for a in client.list_artifacts(c.info.run_id, "tables")}
    trials = json.loads(Path(client.download_artifacts(parents[0].info.run_id, "tables/trials.json",
                                                       str(tmp_path))).read_text())
    assert len(trials["data"]) == 3
