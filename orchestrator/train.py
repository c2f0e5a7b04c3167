"""One Tune trial = one Ray Train run (Train V2) + a final test evaluation.

The Tune function trainable builds a ``TorchTrainer`` over the cached embeddings (Ray Data shards:
the train split is split across workers, validation is given whole to every worker), the workers
report validation metrics every ``eval_every`` epochs (forwarded to Tune, and so to ASHA, by
``TuneReportCallback``) and checkpoint the model when validation improves; the final round's
checkpoint also carries the last epoch's weights. After ``fit`` the trial evaluates the best
checkpoint on the test split (``test/...``, with the result tables and figures) and the last
epoch's weights too (``test_last/...``: papers that test after ``fit`` without reloading, as
Lightning's ``trainer.test(model)`` does, report those), and reports both with a checkpoint
holding the tables and figures; the driver's MLflow callback logs those.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from orchestrator.distributed import broadcast_decision
from orchestrator.views import JoinReport, read_joined
from orchestrator.workload import Workload, load_workload

MODEL_FILE = "model.pt"  # the best-validation weights
LAST_FILE = "last.pt"  # the last epoch's weights, in the final checkpoint when they are not the best
MAX_MODEL_COPY_BYTES = 50 * 2**20  # heads travel with the trial's artifacts into MLflow; fine-tuned encoders do not
# Ray Train V2's controller collects worker reports once per health-check interval (2 s by default)
# and a worker's report queue holds one result, so a worker reporting every epoch waits until the
# next poll: a 1-s epoch of a small head took 2 s. Polling every 0.2 s lifts that cap (Train
# propagates the variable from the process calling fit to its controller); a value the user set wins.
TRAIN_POLL_INTERVAL_S = "0.2"
# What a trial's Tune function holds: no CPU (it only waits in fit(); the Train workers and the
# test task request their own), yet a non-empty bundle, as Tune requires one. With a 0.01-CPU
# sliver per trial, two trials on a 2-CPU machine needed 2.02 CPUs for their Train workers, so the
# second waited for the first to finish: "2 concurrent trials" trained one at a time.
TRIAL_FN_RESOURCES = {"cpu": 0, "memory": 2**20}


class TrialFailed(RuntimeError):
    """A trial that cannot finish (diverged, no checkpoint); the message is the reason."""


@dataclass
class TrialContext:
    """What every trial of a sweep shares (passed with ``tune.with_parameters``)."""

    workload: str
    profile: str
    metric: str
    mode: str
    data: dict[str, str]  # DataSpec.view_key(view) -> the view's cache dir
    manifests: dict[str, str]  # DataSpec.corpus_key() -> manifest path
    storage_path: str
    train_workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_epochs: int | None = None
    progress_bars: bool = True


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _materialise(it: Any, wl: Workload) -> Any:
    tables = list(it.iter_batches(batch_size=None, batch_format="pyarrow"))
    if not tables:
        raise TrialFailed("a training worker received an empty data shard")
    return wl.to_data(pa.concat_tables(tables).sort_by("id"))


def trial_tables(wl: Workload, cfg: Any, ctx: TrialContext, splits: tuple[str, ...]) -> tuple[pa.Table, JoinReport]:
    """The views of ``cfg`` joined on item id for some splits (see ``orchestrator.views``)."""
    spec = wl.data_spec(cfg, ctx.profile)
    missing = [name for name in spec.views if spec.view_key(name) not in ctx.data]
    if missing or spec.corpus_key() not in ctx.manifests:
        raise TrialFailed(f"this trial asks for data the sweep did not prepare ({missing or spec.corpus}): a config "
                          f"field that decides it is missing from {wl.name}'s data_fields")
    views = {name: ctx.data[spec.view_key(name)] for name in spec.views}
    return read_joined(ctx.manifests[spec.corpus_key()], views, splits)


def split_of(table: pa.Table, split: str) -> pa.Table:
    return table.filter(pc.equal(table.column("split"), split))


def train_loop_per_worker(loop_cfg: dict[str, Any]) -> None:
    """Runs on each Train worker."""
    import ray.train
    import ray.train.torch

    wl: Workload = load_workload(loop_cfg["workload"])
    cfg = wl.config_cls.model_validate(loop_cfg["cfg"])
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    seed = int(getattr(cfg, "seed", 0))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed * 1000 + rank)

    train = _materialise(ray.train.get_dataset_shard("train"), wl)
    whole_train = train  # all training rows when the workload splits them itself, else this shard
    if wl.splits_train_itself:
        train = wl.shard_train(train, rank, ctx.get_world_size())
    val = _materialise(ray.train.get_dataset_shard("val"), wl)
    device = ray.train.torch.get_device()
    in_dim = wl.input_dim(train)
    model = wl.build_model(cfg, in_dim)
    wl.fit_closed_form(model, whole_train, cfg)  # e.g. an LDA baseline, the same fit on every worker
    model = ray.train.torch.prepare_model(model)

    if loop_cfg.get("max_epochs") and loop_cfg["max_epochs"] < wl.epochs(cfg):
        cfg = wl.with_epochs(cfg, int(loop_cfg["max_epochs"]))
    epochs = wl.epochs(cfg)
    every = max(1, min(wl.eval_every(cfg), epochs))
    opt, scheduler = wl.configure_optimizer(model, cfg, train) if epochs else (None, None)
    metric, mode = loop_cfg["metric"], loop_cfg["mode"]
    best = -math.inf if mode == "max" else math.inf
    patience = wl.patience(cfg)
    stale = 0  # validation rounds since the last improvement
    # rank 0 keeps the best weights on local disk, so the final checkpoint (the one Train always
    # keeps, and the one a stopped trial is tested from) holds the best and the last together
    keep = tempfile.mkdtemp(prefix="best-") if rank == 0 else ""

    def validate_and_report(epoch: int, train_loss: float, train_metrics: dict[str, float]) -> bool:
        """Validation on rank 0; the model is checkpointed (with the input dims it was built
        for, so evaluation rebuilds the same shapes) when validation improves, and at the final
        round in any case, with the last weights beside the best. Returns whether training
        stops here early (``patience`` rounds without improvement; the same on every worker)."""
        nonlocal best, stale
        metrics: dict[str, Any] = {"epoch": epoch, "train/loss": train_loss, **train_metrics}
        d = None
        stop = False
        if rank == 0:
            model.eval()
            with torch.no_grad():
                metrics.update(wl.validate(_unwrap(model), val, cfg))
            value = metrics[metric]
            if not math.isfinite(value):
                raise TrialFailed(f"diverged: validation {metric} is {value} at epoch {epoch}")
            improved = value > best if mode == "max" else value < best
            stale = 0 if improved else stale + 1
            stop = patience is not None and stale >= patience and epoch < epochs - 1
            if stop:
                metrics["early_stopped_epoch"] = epoch
            final = epoch >= epochs - 1 or stop
            state = {"model": _unwrap(model).state_dict(), "epoch": epoch, metric: value, "in_dim": in_dim}
            if improved:
                best = value
                torch.save(state, os.path.join(keep, MODEL_FILE))
            if improved or final:
                d = tempfile.mkdtemp(prefix="ckpt-")
                _link_or_copy(os.path.join(keep, MODEL_FILE), os.path.join(d, MODEL_FILE))
                if not improved:
                    torch.save(state, os.path.join(d, LAST_FILE))
            metrics["best/" + metric] = best
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d) if d else None)
        if d:  # report() has copied it into Train storage
            shutil.rmtree(d, ignore_errors=True)
        return broadcast_decision(stop, device) if patience is not None else False

    try:
        if epochs == 0:  # nothing to train (a closed-form or untrained baseline): validate it once
            validate_and_report(0, math.nan, {})
        train_metrics: dict[str, float] = {}
        for epoch in range(epochs):
            model.train()
            total, n = 0.0, 0
            for batch in wl.train_batches(train, cfg, epoch, rng):
                batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
                loss = wl.loss(model(batch), batch, cfg, epoch)
                if not torch.isfinite(loss):
                    raise TrialFailed(f"diverged: loss is {loss.item()} at epoch {epoch}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if scheduler is not None:  # schedules are stepped per batch (warm-up, cosine decay)
                    scheduler.step()
                total += float(loss.detach())
                n += 1
            train_metrics.update(wl.epoch_metrics(epoch))
            if (epoch + 1) % every and epoch + 1 != epochs:
                continue
            stop = validate_and_report(epoch, total / max(n, 1), train_metrics)
            train_metrics.clear()
            if stop:
                break
    finally:
        if keep:
            shutil.rmtree(keep, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link where the file system allows one (a fine-tuned encoder is gigabytes)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy(src, dst)


def _root_cause(e: BaseException) -> str:
    """Ray wraps worker errors several times; surface the innermost TrialFailed/line."""
    text = str(e)
    for line in reversed(text.splitlines()):
        if "TrialFailed:" in line:
            return line.split("TrialFailed:", 1)[1].strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(e).__name__


def run_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """Tune function trainable (wrap with ``tune.with_parameters(run_trial, ctx=...)``)."""
    import ray.data
    from ray import tune
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    wl = load_workload(ctx.workload)
    cfg = wl.config_cls.model_validate(config)
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", TRAIN_POLL_INTERVAL_S)
    ray.data.DataContext.get_current().enable_progress_bars = ctx.progress_bars
    # The trial reads the cache with pyarrow and hands Ray Data in-memory blocks: read tasks would
    # need a free CPU, which the Train workers already hold on a small machine (Ray Data then
    # waits forever for its read budget). Pooled embeddings and local-profile features are small.
    table, _ = trial_tables(wl, cfg, ctx, ("train", "val"))
    datasets = {split: ray.data.from_arrow(split_of(table, split)) for split in ("train", "val")}
    trial_id = tune.get_context().get_trial_id()
    loop_cfg = {"workload": ctx.workload, "cfg": cfg.model_dump(), "metric": ctx.metric, "mode": ctx.mode,
                "max_epochs": ctx.max_epochs}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_cfg,
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=[] if wl.splits_train_itself else ["train"]),
        scaling_config=ScalingConfig(num_workers=ctx.train_workers, use_gpu=ctx.gpus_per_worker > 0,
                                     resources_per_worker={"CPU": ctx.cpus_per_worker,
                                                           **({"GPU": ctx.gpus_per_worker} if ctx.gpus_per_worker else {})}),
        run_config=RunConfig(
            name=f"train-{trial_id}",
            storage_path=ctx.storage_path,
            callbacks=[TuneReportCallback()],
            failure_config=FailureConfig(max_failures=0),
            checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=ctx.metric,
                                               checkpoint_score_order=ctx.mode),
        ),
    )
    try:
        result = trainer.fit()
    except Exception as e:  # TrainingFailedError wraps the worker's exception
        raise TrialFailed(_root_cause(e)) from None
    ckpt = result.checkpoint
    if ckpt is None:
        raise TrialFailed("training produced no checkpoint")
    ev = evaluate_remote(ctx, cfg.model_dump(), ckpt)
    # the tested checkpoint is the best-validation one: its value is the trial's headline
    final = {**ev.metrics, ctx.metric: ev.best_value, f"best/{ctx.metric}": ev.best_value,
             "best_epoch": ev.best_epoch, "final": 1}
    _report_and_clean(final, write_artifacts(ev, ckpt))


def _report_and_clean(metrics: dict[str, Any], artifacts: Path) -> None:
    """Report the trial's final result; Tune copies the artifacts into its storage (local or a
    bucket) before ``report`` returns, so the node's temporary copy is removed."""
    from ray import tune

    try:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(artifacts)))
    finally:
        shutil.rmtree(artifacts, ignore_errors=True)


def _build_loaded(wl: Workload, cfg: Any, data: Any, state: dict[str, Any]) -> torch.nn.Module:
    # the dims the model was trained with (a classifier head sized by the training speakers, say)
    model = wl.build_model(cfg, state["in_dim"] if "in_dim" in state else wl.input_dim(data))
    model.load_state_dict(state["model"])
    model.eval()
    return model


@dataclass
class Evaluation:
    """A test evaluation, in plain data: it travels from the evaluating task to the trial."""

    metrics: dict[str, float]
    tables: dict[str, str]  # name -> pandas "split" JSON
    figures: dict[str, bytes]  # name -> PNG
    config: dict[str, Any]
    best_value: float
    best_epoch: int


def kept_checkpoint(ckpt: Any) -> Any:
    """The checkpoint a trial is tested from: ``ckpt`` while it still holds the model, else the
    newest checkpoint of the same Train run that does. Tune stops a trial on the report it has
    seen, but the Train run may already have registered a later, better checkpoint, and with
    ``num_to_keep=1`` Train then deletes the one Tune saw (seen with qbe's ASHA test on a loaded
    2-core machine: the epoch-4 checkpoint gone 60 ms after it was reported). Every checkpoint's
    model file holds the best weights up to its round, so the newest one left is the trial's best."""
    import pyarrow.fs as pafs
    from ray import tune

    fs, path = ckpt.filesystem, str(ckpt.path).rstrip("/")
    if fs.get_file_info(f"{path}/{MODEL_FILE}").type != pafs.FileType.NotFound:
        return ckpt
    run_dir = path.rsplit("/", 1)[0]
    infos = fs.get_file_info(pafs.FileSelector(run_dir, allow_not_found=True))
    names = sorted((i.base_name for i in infos if i.type == pafs.FileType.Directory
                    and i.base_name.startswith("checkpoint_")), reverse=True)  # names carry the time
    for name in names:
        if fs.get_file_info(f"{run_dir}/{name}/{MODEL_FILE}").type != pafs.FileType.NotFound:
            return tune.Checkpoint(f"{run_dir}/{name}", filesystem=fs)
    raise FileNotFoundError(f"no checkpoint with {MODEL_FILE} left in {run_dir} (reported: {path})")


def evaluate_on_test(workload: str, config: dict[str, Any], ctx: TrialContext, ckpt: Any) -> Evaluation:
    """Evaluate a trained checkpoint on the test split (runs as a Ray task with the trial's CPUs
    and GPU, on whichever node has them; the checkpoint comes from Train storage): the best
    weights as ``test/...`` with tables and figures, the last epoch's as ``test_last/...``."""
    wl = load_workload(workload)
    cfg = wl.config_cls.model_validate(config)
    with kept_checkpoint(ckpt).as_directory() as d:
        state = torch.load(os.path.join(d, MODEL_FILE), map_location="cpu", weights_only=True)
        last_path = os.path.join(d, LAST_FILE)
        last_state = torch.load(last_path, map_location="cpu", weights_only=True) if os.path.exists(last_path) else None
    table, report = trial_tables(wl, cfg, ctx, ("test",))
    test = wl.to_data(table)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = _build_loaded(wl, cfg, test, state).to(device)
    with torch.no_grad():
        metrics, tables, figures = wl.evaluate(model, test, cfg)
    del model
    last_metrics, last_epoch = metrics, int(state["epoch"])  # no last.pt: the last round was the best
    if last_state is not None:
        last_model = _build_loaded(wl, cfg, test, last_state).to(device)
        with torch.no_grad():
            last_metrics, _, _ = wl.evaluate(last_model, test, cfg)
        del last_model
        last_epoch = int(last_state["epoch"])
    metrics = {**metrics, **{"test_last/" + k.removeprefix("test/"): v for k, v in last_metrics.items()
                             if k.startswith("test/")},
               "test_last/epoch": last_epoch, "data/test_dropped_items": len(report.dropped)}
    return Evaluation(metrics, {n: df.to_json(orient="split", index=False) for n, df in tables.items()},
                      figures_to_png(figures), cfg.model_dump(mode="json"), float(state[ctx.metric]),
                      int(state["epoch"]))


def submit_evaluation(ctx: TrialContext, config: dict[str, Any], ckpt: Any) -> Any:
    """``evaluate_on_test`` where the trial's resources are, as a Ray task (its ObjectRef): a
    trial's own Tune function holds no CPU (its Train workers held them), so the test pass asks
    for what a Train worker had, a GPU included."""
    import ray

    # DEFAULT: outside the trial's placement group (a bundle holding only TRIAL_FN_RESOURCES)
    task = ray.remote(evaluate_on_test).options(num_cpus=ctx.cpus_per_worker, num_gpus=ctx.gpus_per_worker,
                                                scheduling_strategy="DEFAULT")
    return task.remote(ctx.workload, config, ctx, ckpt)


def evaluate_remote(ctx: TrialContext, config: dict[str, Any], ckpt: Any) -> Evaluation:
    """:func:`submit_evaluation`, waited for (a finished trial's Train workers are gone by then)."""
    import ray

    return ray.get(submit_evaluation(ctx, config, ckpt))


def write_artifacts(ev: Evaluation, ckpt: Any = None) -> Path:
    """The evaluation as files (metrics, tables, figures, config) plus the trained weights when
    they are small enough for MLflow; fine-tuned encoders stay in Train storage (referenced)."""
    out = Path(tempfile.mkdtemp(prefix="trial-artifacts-"))
    for sub in ("tables", "figures"):
        (out / sub).mkdir()
    (out / "metrics.json").write_text(json.dumps(ev.metrics, indent=2, sort_keys=True))
    (out / "config.json").write_text(json.dumps(ev.config, indent=2, sort_keys=True))
    for name, text in ev.tables.items():
        (out / "tables" / f"{name}.json").write_text(text)
    for name, png in ev.figures.items():
        (out / "figures" / f"{name}.png").write_bytes(png)
    if ckpt is not None:
        with ckpt.as_directory() as d:
            src = Path(d) / MODEL_FILE
            if src.stat().st_size <= MAX_MODEL_COPY_BYTES:
                shutil.copy(src, out / MODEL_FILE)
            else:
                (out / "model_checkpoint.txt").write_text(f"{ckpt.path}/{MODEL_FILE}")
    return out


def figures_to_png(figures: dict[str, Any]) -> dict[str, bytes]:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    for name, fig in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        out[name] = buf.getvalue()
    return out


def run_eval_trial(config: dict[str, Any], ctx: TrialContext, sources: dict[str, Any]) -> None:
    """Tune function trainable of an evaluation sweep: no training. The trained model of this
    seed (``sources[str(seed)]``: its MLflow run id and its state in the object store) is
    evaluated with the trial's inference fields on validation (what the sweep selects on) and on
    test (what is reported for the selected value). The trainable holds the trial's resources."""
    import ray

    wl = load_workload(ctx.workload)
    cfg = wl.config_cls.model_validate(config)
    source = sources[str(getattr(cfg, "seed", 0))]
    state = ray.get(source["state"])
    table, report = trial_tables(wl, cfg, ctx, ("val", "test"))
    val, test = wl.to_data(split_of(table, "val")), wl.to_data(split_of(table, "test"))
    model = _build_loaded(wl, cfg, val, state).to("cuda" if torch.cuda.is_available() else "cpu")
    with torch.no_grad():
        val_metrics = wl.validate(model, val, cfg)
        metrics, tables, figures = wl.evaluate(model, test, cfg)
    value = float(val_metrics[ctx.metric])
    metrics = {**metrics, "data/test_dropped_items": len(report.dropped)}
    ev = Evaluation(metrics, {n: df.to_json(orient="split", index=False) for n, df in tables.items()},
                    figures_to_png(figures), cfg.model_dump(mode="json"), value, int(state.get("epoch", -1)))
    _report_and_clean({**val_metrics, **metrics, f"best/{ctx.metric}": value, "final": 1, "eval_only": 1},
                      write_artifacts(ev))
