"""Evaluation-only sweeps: a search space that varies only a workload's inference fields (fusion
N, LDA dimension, candidate regime, query language) trains the model once per seed, or takes it
from an earlier MLflow run (``--from-run``), and every trial only evaluates it: a fraction of a
second per trial.

The source training runs as an ordinary training trial (its own MLflow child run tagged
``role=source``), so it is recorded and checkpointed like any other; its outcome is kept in the
sweep's ``tracking.json``, so ``--resume`` does not train it again. Each evaluation trial gets the
trained weights through the object store (heads are small; a trial process keeps them for the
next trial) and is tagged with the source run id.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config import ConfigError, parse_set
from orchestrator.plan import SweepPlan

SOURCE_STATE_KEY = "source_trials"


class SourceTrainingFailed(RuntimeError):
    """The model an evaluation sweep evaluates could not be trained; the message says why."""


@dataclass
class Source:
    run_id: str
    seed: int
    base: dict[str, Any]  # the run's training config with the sweep's inference settings
    state: dict[str, Any]


def source_from_run(client: Any, run_id: str, plan: SweepPlan, wl: Any) -> Source:
    """The model and config an earlier MLflow run logged (``config.json`` and ``model/model.pt``,
    or the fine-tuned checkpoint its ``model_checkpoint`` tag points to)."""
    import torch
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"--from-run {run_id}: no such run in the MLflow store {client.tracking_uri}") from None
    if run.data.tags.get("workload") not in (None, wl.name):
        raise ConfigError(f"--from-run {run_id}: a {run.data.tags['workload']} run, not {wl.name}")
    with tempfile.TemporaryDirectory() as d:
        try:
            config = json.loads(Path(client.download_artifacts(run_id, "config.json", d)).read_text())
        except (MlflowException, OSError):
            raise ConfigError(f"--from-run {run_id}: the run logged no config.json (only finished trials do)") from None
        try:
            model_path = Path(client.download_artifacts(run_id, "model/model.pt", d))
        except (MlflowException, OSError):
            tagged = run.data.tags.get("model_checkpoint")
            if not tagged or not Path(tagged).exists():
                raise ConfigError(f"--from-run {run_id}: the run logged no model/model.pt and no readable "
                                  "model_checkpoint") from None
            model_path = Path(tagged)
        state = torch.load(model_path, map_location="cpu", weights_only=True)
    explicit = {**plan.space.fixed_for(plan.inv.profile), **parse_set(plan.inv.overrides)}
    clash = sorted(k for k, v in explicit.items()
                   if k not in wl.inference_fields and k in config and config[k] != v)
    if clash:
        raise ConfigError(f"--from-run {run_id}: the run was trained with "
                          + ", ".join(f"{k}={config[k]!r}" for k in clash)
                          + f"; the sweep sets {', '.join(f'{k}={explicit[k]!r}' for k in clash)}")
    inference = {k: v for k, v in plan.base.items() if k in wl.inference_fields}
    base = {**{k: v for k, v in config.items() if k != "seed"}, **inference}
    return Source(run_id, int(config.get("seed", 0)), base, state)


def sources(sweep: Any, source: Source | None) -> dict[str, dict[str, Any]] | None:
    """seed -> {"run_id", "state" (object ref)} of the models to evaluate; None if the source
    training was interrupted. ``sweep``: the running :class:`orchestrator.sweep.Sweep`."""
    import ray
    import torch

    if source is not None:
        return {str(source.seed): {"run_id": source.run_id, "state": ray.put(source.state)}}
    tracker = sweep.tracker
    seeds = sweep.plan.space.seeds_for(sweep.plan.inv.profile)
    done = tracker.state.get("sources", {})
    if not all(str(s) in done for s in seeds):
        outcome = _train_sources(sweep, seeds)
        if outcome is None:
            return None
        done = tracker.state["sources"] = outcome
        tracker.save()
    return {s: {"run_id": rec["run_id"],
                "state": ray.put(torch.load(rec["model"], map_location="cpu", weights_only=True))}
            for s, rec in done.items()}


def _train_sources(sweep: Any, seeds: list[int]) -> dict[str, Any] | None:
    """The model of each seed, trained as ordinary training trials (a plain grid over seeds)."""
    from ray import tune

    from orchestrator import storage
    from orchestrator.console import ConsolePrinter
    from orchestrator.tracking import MlflowTrialCallback
    from orchestrator.train import MODEL_FILE
    from orchestrator.trials import make_tuner, training_trainable

    plan, tracker = sweep.plan, sweep.tracker
    print(f"[sweep] {plan.space.name}: evaluation sweep; training the model once per seed ({len(seeds)})", flush=True)
    trainable = training_trainable(sweep.ctx)
    console = ConsolePrinter([], plan.space.metric, plan.space.mode, len(seeds), label="training")
    callbacks = [MlflowTrialCallback(tracker, {**sweep.child_tags, "role": "source"}, metric=plan.space.metric,
                                     state_key=SOURCE_STATE_KEY, console=console)]
    name = f"{plan.space.name}/{plan.inv.experiment}-source"
    path = storage.join(plan.inv.storage_path, name)
    if tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
    else:
        tuner = make_tuner(trainable, {**sweep.base, "seed": tune.grid_search(seeds)}, name=name,
                           storage_path=plan.inv.storage_path, metric=plan.space.metric, mode=plan.space.mode,
                           callbacks=callbacks, max_concurrent=sweep.max_concurrent, regime=sweep.wl.regime,
                           max_retries=sweep.max_retries)
    tuner.fit()
    tracker.reload()
    out: dict[str, Any] = {}
    for rec in tracker.state.get(SOURCE_STATE_KEY, {}).values():
        seed = str(rec["config"].get("seed", 0))
        if rec.get("status") == "pending":
            return None
        if rec.get("status") != "ok" or not rec.get("artifacts"):
            raise SourceTrainingFailed(f"training the model to evaluate (seed {seed}) failed: "
                                       f"{rec.get('error', rec.get('status'))}")
        out[seed] = {"run_id": rec["run_id"], "model": str(Path(rec["artifacts"]) / MODEL_FILE)}
    missing = [s for s in seeds if str(s) not in out]
    if missing:
        return None
    return out
