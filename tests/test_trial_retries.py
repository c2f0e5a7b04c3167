"""Trials that fail: a trial whose process dies is retried from its newest checkpoint (bounded by
``--max-retries``, and again with ``--resume --retry-failed``); a trial that fails by itself is
final. Real sweeps of the toy two-view workload (``tests/toy_views.py``), whose config can make the
trial process exit (``os._exit``, as under the OOM killer or with its node) or raise mid-epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.sweep import main
from tests.toy_views import build_toy  # noqa: F401  (registers the toy corpus)

GRID = "param_space:\n  lr: {type: grid, values: [3.0e-2]}\nsearcher: grid\nscheduler: {type: none}\n"


def space(tmp: Path, name: str, fixed: str, body: str = GRID) -> str:
    path = tmp / f"{name}.yaml"
    path.write_text(f"workload: tests.toy_views:INFO\nfixed: {{epochs: 6, eval_every: 1, {fixed}}}\n"
                    f"metric: val/t2a/mrr\nmode: max\n{body}")
    return str(path)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("retries")


def common(work: Path) -> list[str]:
    return ["--tracking-uri", f"sqlite:///{work}/mlflow.db", "--cache-dir", str(work / "cache"),
            "--storage-path", str(work / "ray_results")]


def children(work: Path, experiment: str) -> tuple[MlflowClient, list]:
    client = MlflowClient(f"sqlite:///{work}/mlflow.db")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return client, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def steps(client: MlflowClient, run_id: str, key: str = "val/t2a/mrr") -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


@pytest.mark.slow
def test_a_trial_whose_process_dies_resumes_from_its_newest_checkpoint(ray_local, work: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    marker = work / "died"
    assert main([space(work, "toy_undisturbed", "fail_at_epoch: null"), *common(work)]) == 0
    assert main([space(work, "toy_dies", f"fail_at_epoch: 3, fail_marker: '{marker}'"), *common(work)]) == 0
    out = capsys.readouterr().out
    assert marker.read_text() == "died at epoch 3\n"
    assert "retry 1 from its newest checkpoint" in out
    client, (calm,) = children(work, "toy_undisturbed")
    _, (hit,) = children(work, "toy_dies")
    assert hit.info.status == "FINISHED" and hit.data.tags["retries"] == "1"
    assert hit.data.tags["retry.1.reason"]
    # each validation round reported once: the retry started after epoch 2's checkpoint, so only
    # the part of epoch 3 before the process died was done twice
    assert steps(client, hit.info.run_id) == list(range(6)) == steps(client, calm.info.run_id)
    # the weights, optimiser and RNG streams came back with it: the same training as without a failure
    for key in ("test/t2a/mrr", "best/val/t2a/mrr", "val/t2a/mrr"):
        assert hit.data.metrics[key] == pytest.approx(calm.data.metrics[key], abs=1e-6), key


@pytest.mark.slow
def test_a_trial_that_raises_is_final_and_the_sweep_goes_on(ray_local, work: Path) -> None:
    marker = work / "raised"
    body = "param_space:\n  fail_at_epoch: {type: grid, values: [1, null]}\nsearcher: grid\nscheduler: {type: none}\n"
    assert main([space(work, "toy_raises", f"fail_how: raise, fail_marker: '{marker}'", body), *common(work)]) == 0
    client, runs = children(work, "toy_raises")
    by = {r.data.params["fail_at_epoch"]: r for r in runs}
    assert marker.read_text() == "attempt\n"  # not retried: it would raise again
    failed = by["1"]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["failure_reason"] == "RuntimeError: toy failure at epoch 1"
    assert "retries" not in failed.data.tags and steps(client, failed.info.run_id) == [0]
    assert by["None"].info.status == "FINISHED" and "test/t2a/mrr" in by["None"].data.metrics


@pytest.mark.slow
def test_out_of_retries_then_resume_retry_failed(ray_local, work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = work / "died-no-retries"
    spec = space(work, "toy_no_retries", f"fail_at_epoch: 4, fail_marker: '{marker}'")
    assert main([spec, "--max-retries", "0", *common(work)]) == 1  # its only trial failed
    client, (run,) = children(work, "toy_no_retries")
    assert run.info.status == "FAILED" and run.data.tags["failure_reason"]
    assert main([spec, "--retry-failed", *common(work)]) == 2
    assert "give it with --resume" in capsys.readouterr().err
    assert main([spec, "--resume", "--retry-failed", *common(work)]) == 0
    _, (again,) = children(work, "toy_no_retries")
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert "failure_reason" not in again.data.tags and again.data.tags["retry.failed_reason"]
    assert steps(client, run.info.run_id) == list(range(6)) and "test/t2a/mrr" in again.data.metrics
