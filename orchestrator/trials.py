"""Where a trial runs, how many run at once, and what one trial does, top to bottom.

**Placement.** A trial that trains on one worker (``train_workers: 1``, every frozen-encoder head
and, by default, fine-tuning) trains in its own Tune trial process: the process holds the CPUs and
GPU a Train worker would (``tune.with_resources``), so Ray places it where they are, and nothing
else is started for it. Tune reuses trial processes (``reuse_actors``), so the second trial of a
sweep finds torch, the workload and its joined views already loaded (a bounded per-process cache
keyed by the views' cache directories). A trial with ``train_workers > 1`` builds a TorchTrainer:
its Tune function holds no CPU, its Train workers hold theirs and train with DDP (gathered
batches where the workload gathers).

**How many at once.** ``--max-concurrent N``; by default as many as the cluster's resources fit
one trial's request (CPUs, GPUs, and memory where the search space asks for it), counted when
the sweep starts, so a 16-CPU box or an 8-GPU cluster is used whole.

**A training trial.** Validation reports go to Tune every ``eval_every`` epochs (ASHA decides on
them) with a checkpoint when validation improved; after training the trial tests the best and the
last weights in the same process, on data it already holds, and reports the final result with a
checkpoint of tables, figures and (small) model, which the driver's MLflow callback logs. A trial
the scheduler stopped is tested from its newest checkpoint by a Ray task (:func:`submit_test`), or,
for frozen-encoder heads on CPUs, in one long-lived process as trials stop (:class:`FrozenTestPasses`).

**An evaluation trial** (a sweep over inference fields only) evaluates the model trained once
per seed; the trained weights, the data and the built model stay in the trial process across
trials. Figures (a t-SNE costs seconds) are not drawn per trial: the sweep driver draws them for
the selected trial once (:func:`evaluate_selected`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from orchestrator import storage
from orchestrator.train import (
    Evaluation,
    Host,
    TrialContext,
    TrialFailed,
    build_loaded,
    evaluate_on_test,
    evaluate_states,
    figures_to_png,
    load_states,
    split_of,
    train_model,
    trial_tables,
    write_artifacts,
    write_checkpoint_artifacts,
)
from orchestrator.views import JoinReport
from orchestrator.workload import Workload, load_workload

# Ray Train V2's controller collects worker reports once per health-check interval (2 s by default)
# and a worker's report queue holds one result, so a worker reporting every epoch waits until the
# next poll: a 1-s epoch of a small head took 2 s. Polling every 0.2 s lifts that cap (Train
# propagates the variable from the process calling fit to its controller); a value the user set wins.
TRAIN_POLL_INTERVAL_S = "0.2"
# What the Tune function of a multi-worker trial holds: no CPU (it only waits in fit(); its Train
# workers and test task request their own), yet a non-empty bundle, as Tune requires one.
TRIAL_FN_RESOURCES = {"cpu": 0, "memory": 2**20}
# Joined views a trial process keeps for the next trial (pooled embeddings: megabytes; a paper-size
# frame-level view may be gigabytes, so the oldest are dropped past this).
TABLE_CACHE_BYTES = 2 * 2**30
# How often a trial whose process or node died is started again (``--max-retries``).
DEFAULT_RETRIES = 2


# ------------------------------------------------------------------------------------------------
# placement and concurrency


def trial_request(ctx: TrialContext) -> dict[str, float]:
    """What one trial holds while it runs, in Ray's resource names (all its workers together)."""
    n = ctx.train_workers
    req = {"CPU": n * ctx.cpus_per_worker}
    if ctx.gpus_per_worker:
        req["GPU"] = n * ctx.gpus_per_worker
    if ctx.memory_per_worker:
        req["memory"] = n * ctx.memory_per_worker
    return req


def fitting_trials(cluster: dict[str, float], request: dict[str, float]) -> int:
    """How many trials of ``request`` the ``cluster``'s resources hold at once (0: not one yet,
    e.g. GPU trials on an autoscaling cluster that has started no GPU node)."""
    fits = [math.floor(cluster.get(k, 0.0) / v + 1e-9) for k, v in request.items() if v > 0]
    return min(fits, default=1)


def tune_resources(ctx: TrialContext) -> dict[str, float]:
    """``tune.with_resources`` of a training trial: a one-worker trial trains in its own process,
    so that process holds the worker's CPUs and GPU; a multi-worker trial's Tune function only waits."""
    if ctx.train_workers > 1:
        return dict(TRIAL_FN_RESOURCES)
    res = {"cpu": ctx.cpus_per_worker}
    if ctx.gpus_per_worker:
        res["gpu"] = ctx.gpus_per_worker
    if ctx.memory_per_worker:
        res["memory"] = ctx.memory_per_worker
    return res


def training_trainable(ctx: TrialContext) -> Any:
    from ray import tune

    return tune.with_resources(tune.with_parameters(run_trial, ctx=ctx), tune_resources(ctx))


def evaluation_trainable(ctx: TrialContext, sources: dict[str, dict[str, Any]]) -> Any:
    from ray import tune

    one = dataclasses.replace(ctx, train_workers=1)  # evaluating takes one worker's share
    return tune.with_resources(tune.with_parameters(run_eval_trial, ctx=ctx, sources=sources), tune_resources(one))


def make_tuner(trainable: Any, param_space: dict[str, Any], *, name: str, storage_path: str, metric: str,
               mode: str, callbacks: list[Any], max_concurrent: int | None, regime: str, num_samples: int = 1,
               search_alg: Any = None, scheduler: Any = None, max_retries: int = DEFAULT_RETRIES) -> Any:
    """A Tuner over ``trainable`` whose trial processes are reused across trials.

    Checkpoints: a fine-tuning trial keeps its newest two (the newest training checkpoint, which
    holds the best weights so far and is what a stopped trial is tested from, and the final
    artifacts): each may be gigabytes. A frozen-regime trial keeps all (a head is kilobytes to
    megabytes): with ``num_to_keep`` Tune snapshots the experiment state each time a trial has
    checkpointed that many times, which for 1-s trials was a snapshot every few hundred ms.

    Retries: a trial whose process or node died is started again from its newest checkpoint, at
    most ``max_retries`` times; a trial that failed by itself is final (:func:`failures_reported`)."""
    from ray import tune

    # Tune's default JSON, CSV and TensorBoard loggers write every result to files nobody reads
    # (the sweep records trials in MLflow and tracking.json), in the driver, between trials: the
    # TensorBoard writer alone cost about 50 ms per evaluation trial
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # a trial's failure is one console line and an MLflow tag (MlflowTrialCallback), not Tune's traceback
    os.environ["TUNE_PRINT_ALL_TRIAL_ERRORS"] = "0"
    # a fine-tuning trial checkpoints every validation round, so with num_to_keep Tune snapshots the
    # experiment state every other round: a JSON file, cheap, but Tune warns when short rounds do
    # it often (the tiny test sweeps)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=scheduler,
                                    num_samples=num_samples, max_concurrent_trials=max_concurrent,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=storage_path, callbacks=callbacks,
                                  failure_config=tune.FailureConfig(max_failures=max_retries), verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(
                                      num_to_keep=None if regime == "frozen" else 2)),
    )


# ------------------------------------------------------------------------------------------------
# data a trial process keeps


_TABLES: OrderedDict[tuple, tuple[pa.Table, JoinReport]] = OrderedDict()


def cached_tables(wl: Workload, cfg: Any, ctx: TrialContext, splits: tuple[str, ...]) -> tuple[pa.Table, JoinReport]:
    """:func:`orchestrator.train.trial_tables`, kept for the next trial of this process: views are
    immutable once extracted (their cache directory names their content), so the key is safe."""
    spec = wl.data_spec(cfg, ctx.profile)
    key = (ctx.manifests.get(spec.corpus_key()), tuple(sorted((n, ctx.data.get(spec.view_key(n), ""))
                                                              for n in spec.views)), splits)
    if key in _TABLES:
        _TABLES.move_to_end(key)
        return _TABLES[key]
    out = trial_tables(wl, cfg, ctx, splits)
    _TABLES[key] = out
    while len(_TABLES) > 1 and sum(t.nbytes for t, _ in _TABLES.values()) > TABLE_CACHE_BYTES:
        _TABLES.popitem(last=False)
    return out


# ------------------------------------------------------------------------------------------------
# a training trial


class TrialHost(Host):
    """The trial's own process as the training host: reports go straight to Tune, and the final
    round's checkpoint stays on local disk for the test pass that follows."""

    def __init__(self, tables: dict[str, pa.Table], device: torch.device) -> None:
        self.tables = tables
        self.device = device
        self.last_dir: str | None = None

    def rows(self, split: str) -> pa.Table:
        return self.tables[split]

    def report(self, metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        self.send(metrics, ckpt_dir)
        if ckpt_dir:  # persisted in Tune storage by now; the newest stays here for the test pass
            self.discard()
            self.last_dir = ckpt_dir

    def send(self, metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        from ray import tune

        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None)

    def resume_dir(self) -> str | None:
        """Tune hands a retried trial the newest checkpoint its earlier attempt reported."""
        import tempfile

        from ray import tune

        ckpt = tune.get_checkpoint()
        return None if ckpt is None else str(ckpt.to_directory(tempfile.mkdtemp(prefix="resume-")))

    def discard(self) -> None:
        if self.last_dir:
            shutil.rmtree(self.last_dir, ignore_errors=True)
            self.last_dir = None


def run_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """Tune function trainable of a training trial (see the module docstring)."""
    with failures_reported(ctx):
        _run_trial(config, ctx)


def _run_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    wl = load_workload(ctx.workload)
    cfg = wl.config_cls.model_validate(config)
    loop_cfg = {"workload": ctx.workload, "cfg": cfg.model_dump(), "metric": ctx.metric, "mode": ctx.mode,
                "max_epochs": ctx.max_epochs}
    if ctx.train_workers > 1:
        ev, artifacts = _train_on_workers(wl, cfg, ctx, loop_cfg)
    else:
        ev, artifacts = _train_in_process(wl, cfg, ctx, loop_cfg)
    # the tested checkpoint is the best-validation one: its value is the trial's headline
    final = {**ev.metrics, ctx.metric: ev.best_value, f"best/{ctx.metric}": ev.best_value,
             "best_epoch": ev.best_epoch, "final": 1}
    report_final(final, artifacts)


def _train_in_process(wl: Workload, cfg: Any, ctx: TrialContext, loop_cfg: dict[str, Any]) -> tuple[Evaluation, Path]:
    from ray import tune

    table, _ = cached_tables(wl, cfg, ctx, ("train", "val"))
    test_table, test_report = cached_tables(wl, cfg, ctx, ("test",))
    use_gpu = ctx.gpus_per_worker > 0 and torch.cuda.is_available()
    host = TrialHost({split: split_of(table, split) for split in ("train", "val")},
                     torch.device("cuda") if use_gpu else torch.device("cpu"))
    try:
        train_model(host, loop_cfg)
        if host.last_dir is None:
            raise TrialFailed("training produced no checkpoint")
        state, last_state = load_states(host.last_dir)
        ev = evaluate_states(wl, cfg, wl.to_data(test_table), state, last_state, ctx.metric,
                             len(test_report.dropped))
        stored = tune.get_checkpoint()  # the final round's, as persisted (a fine-tuned encoder stays there)
        return ev, write_artifacts(ev, host.last_dir, storage.uri(stored.filesystem, str(stored.path)) if stored else None)
    finally:
        host.discard()


def _train_on_workers(wl: Workload, cfg: Any, ctx: TrialContext, loop_cfg: dict[str, Any]) -> tuple[Evaluation, Path]:
    import ray
    import ray.data
    from ray import tune
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from orchestrator.train import train_loop_per_worker

    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", TRAIN_POLL_INTERVAL_S)
    ray.data.DataContext.get_current().enable_progress_bars = ctx.progress_bars
    # The trial reads the cache with pyarrow and hands Ray Data in-memory blocks: read tasks would
    # need a free CPU, which the Train workers already hold on a small machine (Ray Data then
    # waits forever for its read budget). Pooled embeddings and local-profile features are small.
    table, _ = cached_tables(wl, cfg, ctx, ("train", "val"))
    datasets = {split: ray.data.from_arrow(split_of(table, split)) for split in ("train", "val")}
    gpu = {"GPU": ctx.gpus_per_worker} if ctx.gpus_per_worker else {}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_cfg,
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=[] if wl.splits_train_itself else ["train"]),
        scaling_config=ScalingConfig(num_workers=ctx.train_workers, use_gpu=ctx.gpus_per_worker > 0,
                                     resources_per_worker={"CPU": ctx.cpus_per_worker, **gpu}),
        run_config=RunConfig(
            name=f"train-{tune.get_context().get_trial_id()}",
            storage_path=ctx.storage_path,
            callbacks=[TuneReportCallback()],
            failure_config=FailureConfig(max_failures=0),  # the Tune trial is what is retried
            # every round's checkpoint holds the best weights so far and what a retry resumes from
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    try:
        result = trainer.fit()
    except Exception as e:  # TrainingFailedError wraps the worker's exception
        if is_infrastructure_failure(e):
            raise  # a worker's node or process died: Tune retries the trial (see run_trial)
        raise TrialFailed(_root_cause(e)) from None
    if result.checkpoint is None:
        raise TrialFailed("training produced no checkpoint")
    # this trial's Train workers are gone: the test pass asks for what one of them held
    ev = ray.get(submit_test(ctx, cfg.model_dump(), result.checkpoint))
    return ev, write_checkpoint_artifacts(ev, result.checkpoint)


def _root_cause(e: BaseException) -> str:
    """Ray wraps worker errors several times; surface the innermost TrialFailed/line."""
    text = str(e)
    for line in reversed(text.splitlines()):
        if "TrialFailed:" in line:
            return line.split("TrialFailed:", 1)[1].strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(e).__name__


def submit_test(ctx: TrialContext, config: dict[str, Any], ckpt: Any, tester: Any = None) -> Any:
    """The test pass of a checkpoint in storage (its ObjectRef): on ``tester`` (a
    :class:`FrozenTestPasses` actor) when given, else as a Ray task with one Train worker's CPUs and
    GPU, outside any trial's placement group: a trial the scheduler stopped (its process may
    already train the next trial), or a multi-worker trial's."""
    import ray

    if tester is not None:
        return tester.run.remote(ctx.workload, config, ctx, ckpt)
    task = ray.remote(evaluate_on_test).options(num_cpus=ctx.cpus_per_worker, num_gpus=ctx.gpus_per_worker,
                                                scheduling_strategy="DEFAULT")
    return task.remote(ctx.workload, config, ctx, ckpt)


class FrozenTestPasses:
    """One process for a sweep's stopped frozen-head trials' test passes, holding no CPU.

    As Ray tasks, those passes asked for a trial's CPU, which the running trials hold until the
    sweep's last ones end, so they waited and ran at its end, each in a new worker process (10 s
    of qbe_margin's 41 s on 2 cores). A frozen head's test pass is a fraction of a second on
    embeddings already extracted, so one long-lived process runs them as trials stop, briefly
    sharing a CPU, with torch, the workload and the test split loaded once. A sweep whose trials
    need a GPU or fine-tune an encoder keeps the tasks: there a test pass needs what a trial
    holds. Restarted (and the pass run again) if its process dies."""

    def run(self, workload: str, config: dict[str, Any], ctx: TrialContext, ckpt: Any) -> Evaluation:
        return evaluate_on_test(workload, config, ctx, ckpt, tables=cached_tables)


def test_passes_actor(ctx: TrialContext, regime: str) -> Any:
    """A :class:`FrozenTestPasses` actor for the sweep's stopped trials, or None where they must run
    as tasks (GPU trials, fine-tuning)."""
    import ray

    if regime != "frozen" or ctx.gpus_per_worker > 0:
        return None
    # a little memory, as a multi-worker trial's Tune function asks (TRIAL_FN_RESOURCES): a cluster's
    # head offers none, so the process runs where trials do, not beside the driver
    return ray.remote(FrozenTestPasses).options(num_cpus=0, memory=TRIAL_FN_RESOURCES["memory"], max_restarts=2,
                                                max_task_retries=2).remote()


def report_final(metrics: dict[str, Any], artifacts: Path) -> None:
    """Report the trial's final result; Tune copies the artifacts into its storage (local or a
    bucket) before ``report`` returns, so the node's temporary copy is removed."""
    from ray import tune

    try:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(artifacts)))
    finally:
        shutil.rmtree(artifacts, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# failures: final or retried


# Exceptions that say a process or node went away rather than that the trial's own computation
# failed: a retry on a healthy node can succeed.
def _infrastructure_errors() -> tuple[type[BaseException], ...]:
    from ray import exceptions as rx

    return (rx.RayActorError, rx.NodeDiedError, rx.WorkerCrashedError, rx.ObjectLostError, rx.OwnerDiedError,
            rx.RaySystemError, rx.LocalRayletDiedError)


def is_infrastructure_failure(e: BaseException) -> bool:
    """Whether ``e`` (or what it wraps: a task's cause, a Train worker group's failures) is a
    process or node that died."""
    from ray.exceptions import RayTaskError
    from ray.train import ControllerError, WorkerGroupError

    infra = _infrastructure_errors()
    todo, seen = [e], set()
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, infra):
            return True
        if isinstance(x, RayTaskError):
            todo.append(x.cause)
        if isinstance(x, WorkerGroupError):
            todo.extend(x.worker_failures.values())
        if isinstance(x, ControllerError):
            todo.append(x.controller_failure)
        todo += [x.__cause__, x.__context__]
    return False


@contextlib.contextmanager
def failures_reported(ctx: TrialContext) -> Iterator[None]:
    """A trial whose own computation fails (it diverged, a workload raised) ends with a final
    result that says so (``failed``, ``failure_reason``, the metric NaN, which Optuna records as
    a failed trial), so Tune does not retry it: a retry would fail the same way. A process or
    node that died is raised on, and Tune retries the trial from its newest checkpoint up to
    ``--max-retries`` times (:func:`make_tuner`)."""
    from ray import tune

    try:
        yield
    except Exception as e:
        if is_infrastructure_failure(e):
            raise
        reason = str(e) if isinstance(e, TrialFailed) else f"{type(e).__name__}: {e}"
        if not isinstance(e, TrialFailed):
            traceback.print_exc()  # the trial's log (--verbose) keeps where it failed
        nan = float("nan")
        tune.report({ctx.metric: nan, f"best/{ctx.metric}": nan, "final": 1, "failed": 1,
                     "failure_reason": reason[:5000]})


# ------------------------------------------------------------------------------------------------
# an evaluation trial


_STATES: dict[str, Any] = {}  # source run id -> trained weights (one entry per seed of the sweep)


def _source_state(source: dict[str, Any], sources: dict[str, Any]) -> dict[str, Any]:
    import ray

    if source["run_id"] not in _STATES:
        current = {s["run_id"] for s in sources.values()}
        for run_id in [r for r in _STATES if r not in current]:  # an earlier sweep's weights
            del _STATES[run_id]
        _STATES[source["run_id"]] = ray.get(source["state"])
    return _STATES[source["run_id"]]


def evaluate_config(config: dict[str, Any], ctx: TrialContext, sources: dict[str, Any],
                    figures: bool) -> tuple[dict[str, float], Evaluation]:
    """Validation metrics and the test evaluation of one inference setting on the trained model
    of its seed (from this process's cache after the first trial)."""
    wl = load_workload(ctx.workload)
    cfg = wl.config_cls.model_validate(config)
    source = sources[str(getattr(cfg, "seed", 0))]
    state = _source_state(source, sources)
    val_table, _ = cached_tables(wl, cfg, ctx, ("val",))
    test_table, test_report = cached_tables(wl, cfg, ctx, ("test",))
    val, test = wl.to_data(val_table), wl.to_data(test_table)
    model = build_loaded(wl, cfg, val, state).to("cuda" if torch.cuda.is_available() else "cpu")
    with torch.no_grad():
        val_metrics = wl.validate(model, val, cfg)
        metrics, tables, figs = wl.evaluate(model, test, cfg, figures=figures)
    value = float(val_metrics[ctx.metric])
    metrics = {**metrics, "data/test_dropped_items": len(test_report.dropped)}
    return val_metrics, Evaluation.of(metrics, tables, figs, cfg, value, int(state.get("epoch", -1)))


def run_eval_trial(config: dict[str, Any], ctx: TrialContext, sources: dict[str, Any]) -> None:
    """Tune function trainable of an evaluation sweep: no training. The trained model of this
    seed (``sources[str(seed)]``: its MLflow run id and its state in the object store) is
    evaluated with the trial's inference fields on validation (what the sweep selects on) and on
    test (what is reported for the selected value), without figures."""
    with failures_reported(ctx):
        _run_eval_trial(config, ctx, sources)


def _run_eval_trial(config: dict[str, Any], ctx: TrialContext, sources: dict[str, Any]) -> None:
    val_metrics, ev = evaluate_config(config, ctx, sources, figures=False)
    report_final({**val_metrics, **ev.metrics, f"best/{ctx.metric}": ev.best_value, "final": 1, "eval_only": 1},
                 write_artifacts(ev))


def draw_figures(config: dict[str, Any], ctx: TrialContext, state: dict[str, Any]) -> dict[str, bytes]:
    """The test figures of a trained trial (its best weights ``state``), as PNGs, drawn in the
    calling process: what the sweep driver draws onto the parent run for the trials a workload
    names (``Workload.parent_figure_trials``) when its trials draw none."""
    wl = load_workload(ctx.workload)
    cfg = wl.config_cls.model_validate(config)
    test_table, _ = cached_tables(wl, cfg, ctx, ("test",))
    test = wl.to_data(test_table)
    model = build_loaded(wl, cfg, test, state).to("cuda" if torch.cuda.is_available() else "cpu")
    with torch.no_grad():
        _, _, figs = wl.evaluate(model, test, cfg, figures=True)
    return figures_to_png(figs)


def evaluate_selected(config: dict[str, Any], ctx: TrialContext, sources: dict[str, Any]) -> dict[str, bytes]:
    """The figures of one evaluation trial (the sweep's selected one), as PNGs. Drawn in the
    calling process (the sweep driver): one evaluation of a trained head on data the driver
    reads anyway, where a Ray task would first start a worker process (about 5 s on 2 cores)."""
    return evaluate_config(config, ctx, sources, figures=True)[1].figures
