"""One Tune trial = one Ray Train run (Train V2) + a final test evaluation.

The Tune function trainable builds a ``TorchTrainer`` over the cached embeddings (Ray Data shards:
the train split is split across workers, validation is given whole to every worker), the workers
report validation metrics every ``eval_every`` epochs (forwarded to Tune, and so to ASHA, by
``TuneReportCallback``) and checkpoint the model when validation improves. After ``fit`` the trial
reloads the best checkpoint, evaluates it on the test split and reports the test metrics with a
checkpoint holding the result tables and figures; the driver's MLflow callback logs those.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from orchestrator.corpus import read_manifest
from orchestrator.workload import Workload, load_workload

MODEL_FILE = "model.pt"


class TrialFailed(RuntimeError):
    """A trial that cannot finish (diverged, no checkpoint); the message is the reason."""


@dataclass
class TrialContext:
    """What every trial of a sweep shares (passed with ``tune.with_parameters``)."""

    workload: str
    profile: str
    metric: str
    mode: str
    data: dict[str, str]  # DataSpec.key() -> cache dir
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


def read_split_table(cache_dir: Path, splits: tuple[str, ...]) -> pa.Table:
    """The cached rows of some splits, with the manifest's ``texts`` joined on ``id``.

    Texts are not encoder outputs, so they are not part of the cache key; reading them from the
    manifest at trial time means edited captions are always the ones trained on.
    """
    meta = json.loads((cache_dir / "meta.json").read_text())
    table = pq.read_table(sorted(cache_dir.glob("part-*.parquet")))
    mask = pc.is_in(table.column("split"), value_set=pa.array(list(splits)))
    table = table.filter(mask)
    manifest = read_manifest(Path(meta["manifest"]))
    texts = dict(zip(manifest.column("id").to_pylist(), manifest.column("texts").to_pylist()))
    return table.append_column("texts", pa.array([texts[i] for i in table.column("id").to_pylist()],
                                                  pa.list_(pa.string())))


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
    val = _materialise(ray.train.get_dataset_shard("val"), wl)
    device = ray.train.torch.get_device()
    model = ray.train.torch.prepare_model(wl.build_model(cfg, wl.input_dim(train)))

    if loop_cfg.get("max_epochs") and loop_cfg["max_epochs"] < wl.epochs(cfg):
        cfg = wl.with_epochs(cfg, int(loop_cfg["max_epochs"]))
    epochs = wl.epochs(cfg)
    every = max(1, min(wl.eval_every(cfg), epochs))
    opt, scheduler = wl.configure_optimizer(model, cfg, train)
    metric, mode = loop_cfg["metric"], loop_cfg["mode"]
    best = -math.inf if mode == "max" else math.inf
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
        if (epoch + 1) % every and epoch + 1 != epochs:
            continue
        metrics: dict[str, Any] = {"epoch": epoch, "train/loss": total / max(n, 1)}
        checkpoint = None
        if rank == 0:
            model.eval()
            with torch.no_grad():
                metrics.update(wl.validate(_unwrap(model), val, cfg))
            value = metrics[metric]
            if not math.isfinite(value):
                raise TrialFailed(f"diverged: validation {metric} is {value} at epoch {epoch}")
            improved = value > best if mode == "max" else value < best
            if improved:
                best = value
                d = tempfile.mkdtemp(prefix="ckpt-")
                torch.save({"model": _unwrap(model).state_dict(), "epoch": epoch, metric: value},
                           os.path.join(d, MODEL_FILE))
                checkpoint = ray.train.Checkpoint.from_directory(d)
            metrics["best/" + metric] = best
        ray.train.report(metrics, checkpoint=checkpoint)


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
    spec = wl.data_spec(cfg, ctx.profile)
    cache_dir = Path(ctx.data[spec.key()])
    ray.data.DataContext.get_current().enable_progress_bars = ctx.progress_bars
    # The trial reads the cache with pyarrow and hands Ray Data in-memory blocks: read tasks would
    # need a free CPU, which the Train workers already hold on a small machine (Ray Data then
    # waits forever for its read budget). Pooled embeddings and local-profile features are small.
    table = read_split_table(cache_dir, ("train", "val"))
    datasets = {split: ray.data.from_arrow(table.filter(pc.equal(table.column("split"), split)))
                for split in ("train", "val")}
    trial_id = tune.get_context().get_trial_id()
    loop_cfg = {"workload": ctx.workload, "cfg": cfg.model_dump(), "metric": ctx.metric, "mode": ctx.mode,
                "max_epochs": ctx.max_epochs}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_cfg,
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["train"]),
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
    with ckpt.as_directory() as d:
        state = torch.load(os.path.join(d, MODEL_FILE), map_location="cpu", weights_only=True)
    metrics, out = evaluate_state(wl, cfg, cache_dir, state)
    final = {**metrics, ctx.metric: state[ctx.metric], "best_epoch": int(state["epoch"]), "final": 1}
    tune.report(final, checkpoint=tune.Checkpoint.from_directory(str(out)))


def evaluate_state(wl: Workload, cfg: Any, cache_dir: Path, state: dict[str, Any]) -> tuple[dict[str, float], Path]:
    """Load a trained head from its checkpoint state, evaluate it on the test split, and write
    metrics, tables, figures and the weights into a fresh artifacts directory."""
    test = wl.to_data(read_split_table(cache_dir, ("test",)).sort_by("id"))
    model = wl.build_model(cfg, wl.input_dim(test))
    model.load_state_dict(state["model"])
    model.eval()
    with torch.no_grad():
        metrics, tables, figures = wl.evaluate(model, test, cfg)
    out = Path(tempfile.mkdtemp(prefix="trial-artifacts-"))
    save_artifacts(out, metrics, tables, figures)
    torch.save(state, out / MODEL_FILE)
    return metrics, out


def evaluate_checkpoint_dir(wl: Workload, cfg: Any, cache_dir: Path, ckpt_dir: str) -> tuple[dict[str, float], Path]:
    """For trials stopped early by the scheduler: evaluate the best checkpoint they reported."""
    state = torch.load(os.path.join(ckpt_dir, MODEL_FILE), map_location="cpu", weights_only=True)
    return evaluate_state(wl, cfg, cache_dir, state)


def save_artifacts(out: Path, metrics: dict[str, float], tables: dict[str, Any], figures: dict[str, Any]) -> None:
    """Tables as pandas 'split' JSON and figures as PNG, for the driver to log to MLflow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    for name, df in tables.items():
        (out / "tables" / f"{name}.json").write_text(df.to_json(orient="split", index=False))
    for name, fig in figures.items():
        fig.savefig(out / "figures" / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
