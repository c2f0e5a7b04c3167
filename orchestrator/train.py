"""What one training does, wherever it runs (``orchestrator.trials`` decides where).

:func:`train_model` trains a workload on a :class:`Host`: the trial's own process (one worker,
the default) or each Ray Train worker of a TorchTrainer (``train_workers > 1``). Every
``eval_every`` epochs rank 0 validates; the model is checkpointed when validation improves, and
the final round's checkpoint also carries the last epoch's weights. The test pass
(:func:`evaluate_states`) evaluates the best weights (``test/...``, with the result tables and
figures) and the last epoch's (``test_last/...``: papers that test after training without
reloading, as Lightning's ``trainer.test(model)`` does, report those).
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

from orchestrator import storage
from orchestrator.distributed import broadcast_decision, gather_objects
from orchestrator.views import JoinReport, read_joined
from orchestrator.workload import Workload, load_workload

MODEL_FILE = "model.pt"  # the best-validation weights
LAST_FILE = "last.pt"  # the last epoch's weights, in the final checkpoint when they are not the best
# What a retried trial continues from (its process or node died): the round's weights, optimiser
# and LR schedule, the best value so far and the RNG streams. Every validation round's checkpoint
# holds one, so a retry loses at most the epochs since the last round.
RESUME_FILE = "resume.pt"
MAX_MODEL_COPY_BYTES = 50 * 2**20  # heads travel with the trial's artifacts into MLflow; fine-tuned encoders do not
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
    memory_per_worker: float = 0.0  # bytes a worker (or one-worker trial) reserves; 0: none
    max_epochs: int | None = None
    progress_bars: bool = True


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


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


class Host:
    """Where the training loop runs, as the loop sees it: which worker it is, its rows of a split,
    its device, and where a validation round's report (and checkpoint directory) goes."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    def rows(self, split: str) -> pa.Table:
        raise NotImplementedError

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device)

    def report(self, metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        """Hand the round's metrics (and checkpoint directory, which the host then owns) on."""
        raise NotImplementedError

    def resume_dir(self) -> str | None:
        """A local copy, made for this attempt and deleted after it, of the checkpoint an earlier
        attempt of this trial left (holding :data:`RESUME_FILE` unless it was the final round's),
        or None on a first attempt."""
        return None


class TrainWorkerHost(Host):
    """One Ray Train worker of a TorchTrainer (``train_workers > 1``: DDP, gathered batches)."""

    def __init__(self) -> None:
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.rank, self.world_size = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()

    def rows(self, split: str) -> pa.Table:
        import ray.train

        tables = list(ray.train.get_dataset_shard(split).iter_batches(batch_size=None, batch_format="pyarrow"))
        if not tables:
            raise TrialFailed("a training worker received an empty data shard")
        return pa.concat_tables(tables).sort_by("id")

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def report(self, metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        import ray.train

        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None)
        if ckpt_dir:  # report() has copied it into Train storage
            shutil.rmtree(ckpt_dir, ignore_errors=True)

    def resume_dir(self) -> str | None:
        """A retried trial builds its TorchTrainer under the same run name, so Train restores that
        run's newest checkpoint."""
        import ray.train

        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        return str(ckpt.to_directory(tempfile.mkdtemp(prefix="resume-")))


def train_loop_per_worker(loop_cfg: dict[str, Any]) -> None:
    """Runs on each Train worker."""
    train_model(TrainWorkerHost(), loop_cfg)


def train_model(host: Host, loop_cfg: dict[str, Any]) -> None:
    """Train ``loop_cfg["cfg"]`` on ``host``: validate every ``eval_every`` epochs on rank 0,
    checkpoint when validation improves (and at the final round, the last weights beside the
    best), stop early after ``patience`` rounds without improvement."""
    wl: Workload = load_workload(loop_cfg["workload"])
    cfg = wl.config_cls.model_validate(loop_cfg["cfg"])
    rank = host.rank
    seed = int(getattr(cfg, "seed", 0))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed * 1000 + rank)

    train = wl.to_data(host.rows("train"))
    whole_train = train  # all training rows when the workload splits them itself, else this shard
    if wl.splits_train_itself:
        train = wl.shard_train(train, rank, host.world_size)
    val = wl.to_data(host.rows("val"))
    device = host.device
    in_dim = wl.input_dim(train)
    model = wl.build_model(cfg, in_dim)
    wl.fit_closed_form(model, whole_train, cfg)  # e.g. an LDA baseline, the same fit on every worker
    resume_from = host.resume_dir()
    resumed = torch.load(os.path.join(resume_from, RESUME_FILE), map_location="cpu", weights_only=True) \
        if resume_from and os.path.exists(os.path.join(resume_from, RESUME_FILE)) else None
    # this worker's RNG streams (torch, numpy, the workload's own) as the earlier attempt left them
    # after the round: rank 0's at the top level, the other ranks' under "ranks" (several Train workers)
    streams = None
    if resumed is not None:
        weights = resumed["model"] if resumed["model"] is not None else torch.load(
            os.path.join(resume_from, MODEL_FILE), map_location="cpu", weights_only=True)["model"]
        model.load_state_dict(weights)
        ranks = resumed.get("ranks") or []
        streams = resumed if rank == 0 else (ranks[rank] if rank < len(ranks) else None)
    wl.load_training_state(streams.get("workload") if streams is not None else None)
    model = host.prepare(model)

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
    start = 0
    if resumed is not None:  # continue after the round the earlier attempt checkpointed last
        start, best, stale = int(resumed["epoch"]) + 1, float(resumed["best"]), int(resumed["stale"])
        if opt is not None:
            opt.load_state_dict(resumed["optimizer"])
        if scheduler is not None and resumed.get("scheduler") is not None:
            scheduler.load_state_dict(resumed["scheduler"])
        if streams is not None:
            torch.set_rng_state(streams["torch_rng"])
            rng.bit_generator.state = streams["numpy_rng"]
        else:  # a checkpoint from before every rank's streams were kept: fresh ones
            rng = np.random.default_rng([seed, rank, start])
        if rank == 0:
            shutil.copy(os.path.join(resume_from, MODEL_FILE), os.path.join(keep, MODEL_FILE))

    def validate_and_report(epoch: int, train_loss: float, train_metrics: dict[str, float]) -> bool:
        """Validation on rank 0, then a checkpoint: the best weights so far (with the input
        dims they were built for, so evaluation rebuilds the same shapes), what a retry resumes
        from, and at the final round the last weights beside the best. Returns whether training
        stops here early (``patience`` rounds without improvement; the same on every worker)."""
        nonlocal best, stale
        # the other workers' streams as their next epoch starts from them (they do not validate);
        # rank 0's are saved after its validation, below
        ranks = gather_objects(None if rank == 0 else {"torch_rng": torch.get_rng_state(),
                                                       "numpy_rng": rng.bit_generator.state,
                                                       "workload": wl.training_state()})
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
            if improved:  # a new file: earlier checkpoints hard-link the one it replaces
                best = value
                torch.save(state, os.path.join(keep, "new-" + MODEL_FILE))
                os.replace(os.path.join(keep, "new-" + MODEL_FILE), os.path.join(keep, MODEL_FILE))
            d = tempfile.mkdtemp(prefix="ckpt-")
            _link_or_copy(os.path.join(keep, MODEL_FILE), os.path.join(d, MODEL_FILE))
            if final and not improved:
                torch.save(state, os.path.join(d, LAST_FILE))
            if not final:
                # the round's weights; when they are the best, model.pt beside it already holds them
                torch.save({"model": None if improved else state["model"], "epoch": epoch, "best": best,
                            "stale": stale, "optimizer": opt.state_dict() if opt is not None else None,
                            "scheduler": scheduler.state_dict() if scheduler is not None else None,
                            "torch_rng": torch.get_rng_state(), "numpy_rng": rng.bit_generator.state,
                            "workload": wl.training_state(), "ranks": ranks},
                           os.path.join(d, RESUME_FILE))
            metrics["best/" + metric] = best
        host.report(metrics, d)
        return broadcast_decision(stop, device) if patience is not None else False

    try:
        if epochs == 0:  # nothing to train (a closed-form or untrained baseline): validate it once
            validate_and_report(0, math.nan, {})
        train_metrics: dict[str, float] = {}
        for epoch in range(start, epochs):
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
        for tmp in (keep, resume_from):  # the host's resume directory is a copy made for this attempt
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link where the file system allows one (a fine-tuned encoder is gigabytes)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy(src, dst)


def build_loaded(wl: Workload, cfg: Any, data: Any, state: dict[str, Any]) -> torch.nn.Module:
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

    @classmethod
    def of(cls, metrics: dict[str, float], tables: dict[str, Any], figures: dict[str, Any], cfg: Any,
           best_value: float, best_epoch: int) -> "Evaluation":
        """From what ``Workload.evaluate`` returns (DataFrames, matplotlib figures)."""
        return cls(metrics, {n: df.to_json(orient="split", index=False) for n, df in tables.items()},
                   figures_to_png(figures), cfg.model_dump(mode="json"), best_value, best_epoch)


def kept_checkpoint(ckpt: Any) -> Any:
    """The checkpoint a trial is tested from: ``ckpt`` while it still holds the model, else the
    newest checkpoint of the same Train run that does. Tune stops a trial on the report it has
    seen, but the Train run may already have registered later checkpoints, and past its
    ``num_to_keep`` Train then deletes the one Tune saw (seen with qbe's ASHA test on a loaded
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


def load_states(ckpt_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(best weights, last epoch's weights or None when the last round was the best) of a
    training checkpoint directory."""
    state = torch.load(os.path.join(ckpt_dir, MODEL_FILE), map_location="cpu", weights_only=True)
    last_path = os.path.join(ckpt_dir, LAST_FILE)
    last_state = torch.load(last_path, map_location="cpu", weights_only=True) if os.path.exists(last_path) else None
    return state, last_state


def evaluate_states(wl: Workload, cfg: Any, test: Any, state: dict[str, Any], last_state: dict[str, Any] | None,
                    metric: str, dropped: int) -> Evaluation:
    """The test pass of a trained trial: the best weights as ``test/...`` with tables and
    figures, the last epoch's as ``test_last/...``."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_loaded(wl, cfg, test, state).to(device)
    with torch.no_grad():
        metrics, tables, figures = wl.evaluate(model, test, cfg, figures=wl.trial_figures)
    del model
    last_metrics, last_epoch = metrics, int(state["epoch"])  # no last.pt: the last round was the best
    if last_state is not None:
        last_model = build_loaded(wl, cfg, test, last_state).to(device)
        with torch.no_grad():
            last_metrics, _, _ = wl.evaluate(last_model, test, cfg, figures=False)
        del last_model
        last_epoch = int(last_state["epoch"])
    metrics = {**metrics, **{"test_last/" + k.removeprefix("test/"): v for k, v in last_metrics.items()
                             if k.startswith("test/")},
               "test_last/epoch": last_epoch, "data/test_dropped_items": dropped}
    return Evaluation.of(metrics, tables, figures, cfg, float(state[metric]), int(state["epoch"]))


def evaluate_on_test(workload: str, config: dict[str, Any], ctx: TrialContext, ckpt: Any,
                     tables: Any = None) -> Evaluation:
    """Evaluate a checkpoint in storage on the test split (a stopped trial's test pass, and the
    test pass of a trial trained on Train workers); ``tables``: how the test split is read
    (:func:`trial_tables`, or a process's cache of it)."""
    wl = load_workload(workload)
    cfg = wl.config_cls.model_validate(config)
    with kept_checkpoint(ckpt).as_directory() as d:
        state, last_state = load_states(d)
    table, report = (tables or trial_tables)(wl, cfg, ctx, ("test",))
    return evaluate_states(wl, cfg, wl.to_data(table), state, last_state, ctx.metric, len(report.dropped))


def write_artifacts(ev: Evaluation, model_dir: str | Path | None = None, stored_at: str | None = None) -> Path:
    """The evaluation as files (metrics, tables, figures, config) plus the trained weights of
    ``model_dir`` when they are small enough for MLflow; a fine-tuned encoder stays where the
    checkpoint is stored (``stored_at``), referenced."""
    out = Path(tempfile.mkdtemp(prefix="trial-artifacts-"))
    for sub in ("tables", "figures"):
        (out / sub).mkdir()
    (out / "metrics.json").write_text(json.dumps(ev.metrics, indent=2, sort_keys=True))
    (out / "config.json").write_text(json.dumps(ev.config, indent=2, sort_keys=True))
    for name, text in ev.tables.items():
        (out / "tables" / f"{name}.json").write_text(text)
    for name, png in ev.figures.items():
        (out / "figures" / f"{name}.png").write_bytes(png)
    if model_dir is not None:
        src = Path(model_dir) / MODEL_FILE
        if src.stat().st_size <= MAX_MODEL_COPY_BYTES:
            shutil.copy(src, out / MODEL_FILE)
        else:
            (out / "model_checkpoint.txt").write_text(f"{stored_at or model_dir}/{MODEL_FILE}")
    return out


def write_checkpoint_artifacts(ev: Evaluation, ckpt: Any) -> Path:
    """:func:`write_artifacts` with the model of a checkpoint in storage."""
    with ckpt.as_directory() as d:
        return write_artifacts(ev, d, storage.uri(ckpt.filesystem, str(ckpt.path)))


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


