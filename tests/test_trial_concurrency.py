"""Two multi-worker-style trials on a 2-CPU Ray train at the same time.

Each trial's Tune function builds a TorchTrainer with one 1-CPU Train worker, as ``run_trial``
does for ``train_workers > 1`` (one-worker trials train in the trial process itself). With a 0.01-CPU sliver per Tune function the two Train workers needed 2.02 CPUs, so the
second waited for the first to finish and ``max_concurrent_trials: 2`` trained one trial at a time.
Here each Train worker marks that it started and then waits for the other's mark: the test passes
only if both Train workers run at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from orchestrator.trials import TRIAL_FN_RESOURCES

WAIT_S = 120.0


def _worker(config: dict[str, Any]) -> None:
    import ray.train

    marks = Path(config["dir"])
    (marks / f"started-{config['x']}").touch()
    deadline = time.monotonic() + WAIT_S
    while len(list(marks.glob("started-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    ray.train.report({"both_running": float(len(list(marks.glob("started-*"))) == 2)})


def _trial(config: dict[str, Any]) -> None:
    from ray import tune
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    TorchTrainer(_worker, train_loop_config=config,
                 scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1.0}),
                 run_config=RunConfig(name=f"w{config['x']}-{tune.get_context().get_trial_id()}",
                                      storage_path=config["storage"], callbacks=[TuneReportCallback()])).fit()


def test_two_trials_train_at_once_on_two_cpus(ray_local, tmp_path: Path) -> None:
    from ray import tune

    assert ray_local.cluster_resources()["CPU"] == 2
    marks = tmp_path / "marks"
    marks.mkdir()
    tuner = tune.Tuner(
        tune.with_resources(_trial, TRIAL_FN_RESOURCES),
        param_space={"x": tune.grid_search([0, 1]), "dir": str(marks), "storage": str(tmp_path / "train")},
        tune_config=tune.TuneConfig(max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), name="concurrency", verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    assert sorted(r.metrics["both_running"] for r in results) == [1.0, 1.0]
