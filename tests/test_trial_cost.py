"""Trials at the cost of their compute (issue 17), on a real tiny QbE sweep through Ray Tune,
Optuna's grid and MLflow.

A one-worker trial trains in its own Tune trial process and Tune reuses that process for the next
trial, which finds torch, the workload and the joined views already loaded. Before, every trial
started a Train controller, a worker group and a dataset coordinator, and a new worker process for
the test pass: 11-13 s passed before a trial's first report on an idle 2-core machine. Here the
time from a trial's start (its MLflow run is created when Tune starts it) to its first validation
report (5 epochs of a tiny head) is bounded by 4 s for every trial after the first, and
``--max-concurrent 1`` is recorded on the parent and obeyed (no two trials' runs overlap).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.test_e2e_sweep import common, runs, space_file

from orchestrator.sweep import main

FIRST_REPORT_BOUND_S = 4.0


def test_reused_trial_processes_start_training_at_once_and_max_concurrent_is_obeyed(ray_local, tmp_path: Path
                                                                                     ) -> None:
    spec = space_file(tmp_path, "tiny_cost", """
param_space:
  lr: {type: grid, values: [1.0e-3, 2.0e-3, 3.0e-3]}
searcher: grid
scheduler: {type: none}
""")
    assert main([spec, "--max-concurrent", "1", *common(tmp_path)]) == 0
    client, parents, children = runs(tmp_path, "tiny_cost")
    parent = parents[0]
    assert parent.data.tags["max_concurrent_trials"] == "1"
    assert parent.data.params["invocation.max_concurrent"] == "1"
    assert parent.data.tags["trial_placement"] == "in the trial process"
    assert "--max-concurrent 1" in parent.data.tags["command"]

    children = sorted(children, key=lambda r: r.info.start_time)
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children)
    for before, after in zip(children, children[1:]):  # one at a time
        assert after.info.start_time >= before.info.end_time, (before.info.run_name, after.info.run_name)
    to_first_report = []
    for child in children:
        first = min(h.timestamp for h in client.get_metric_history(child.info.run_id, "val/silhouette_labels"))
        to_first_report.append((first - child.info.start_time) / 1000)
    assert all(s < FIRST_REPORT_BOUND_S for s in to_first_report[1:]), to_first_report
    for child in children:  # the in-process test pass logged what the Ray-task one did
        m = child.data.metrics
        assert "test/transformed/map" in m and "test_last/transformed/map" in m
        assert {"tables/qbe_retrieval.json"} <= {a.path for a in client.list_artifacts(child.info.run_id, "tables")}
        assert "model/model.pt" in {a.path for a in client.list_artifacts(child.info.run_id, "model")}


def test_the_default_concurrency_fills_the_cluster_for_one_trials_request() -> None:
    from orchestrator.train import TrialContext
    from orchestrator.trials import fitting_trials, trial_request, tune_resources

    ctx = TrialContext(workload="qbe", profile="local", metric="m", mode="max", data={}, manifests={},
                       storage_path="")
    assert fitting_trials({"CPU": 16.0, "memory": 6e10}, trial_request(ctx)) == 16  # a 16-CPU box
    gpu = dataclasses.replace(ctx, gpus_per_worker=1.0)
    assert fitting_trials({"CPU": 64.0, "GPU": 8.0}, trial_request(gpu)) == 8  # an 8-GPU cluster
    assert fitting_trials({"CPU": 2.0}, trial_request(gpu)) == 0  # no GPU node yet: no limit
    assert fitting_trials({"CPU": 16.0, "memory": 10 * 2**30}, trial_request(dataclasses.replace(
        ctx, memory_per_worker=4 * 2**30))) == 2
    ddp = dataclasses.replace(ctx, train_workers=4, cpus_per_worker=2.0)
    assert trial_request(ddp) == {"CPU": 8.0} and fitting_trials({"CPU": 16.0}, trial_request(ddp)) == 2
    # where the CPUs are held: the trial process itself, or (DDP) its Train workers
    assert tune_resources(gpu) == {"cpu": 1.0, "gpu": 1.0} and tune_resources(ddp)["cpu"] == 0
