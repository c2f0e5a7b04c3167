"""``python -m orchestrator.sweep NAME``: run a named sweep end to end.

Recipe: resolve the config (workload defaults < profile < search space < ``--set``), build the
corpora and extract embeddings once per (corpus, encoder) into the shared cache, then run Tune
(Optuna TPE or grid, ASHA) where every trial is a Ray Train run, with MLflow parent/child runs
written from this driver. Ends with the result table and where to look at it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from orchestrator.config import (
    ConfigError,
    SearchSpace,
    check_keys,
    discrete_combinations,
    list_search_spaces,
    load_search_space,
    parse_set,
    validate_workload_config,
)

log = logging.getLogger("orchestrator.sweep")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m orchestrator.sweep", description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", help="search space name (a file in search_spaces/)")
    p.add_argument("--list", action="store_true", help="list the named sweeps and exit")
    p.add_argument("--profile", choices=["local", "paper"], default="local")
    p.add_argument("--data-root", type=Path, help="root of the paper datasets (paper profile)")
    p.add_argument("--num-samples", type=int, help="override the number of Optuna trials")
    p.add_argument("--max-epochs", type=int, help="cap the epochs of every trial")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a workload config key (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the latest interrupted run of this sweep")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                   help="MLflow tracking URI (default sqlite:///mlruns/mlflow.db)")
    p.add_argument("--skip-bad-items", action="store_true",
                   help="quarantine unreadable/empty/NaN items (logged to MLflow) instead of failing")
    p.add_argument("--address", help="address of an existing Ray cluster (default: start a local one)")
    p.add_argument("--cache-dir", type=Path, default=Path("cache"), help="embedding cache and local corpora")
    p.add_argument("--storage-path", default="ray_results", help="Tune/Train results (shared storage on a cluster)")
    return p


def resolve_base_config(space: SearchSpace, wl: Any, profile: str, overrides: dict[str, Any]) -> dict[str, Any]:
    prof = wl.profile(profile)
    check_keys(wl.config_cls, list(prof.config), f"{wl.profiles_file}:{profile}")
    fixed = space.fixed_for(profile)
    check_keys(wl.config_cls, list(fixed), f"search space {space.name}: fixed")
    check_keys(wl.config_cls, list(space.param_space), f"search space {space.name}: param_space")
    check_keys(wl.config_cls, list(overrides), "--set")
    merged = {**prof.config, **fixed, **overrides}
    # validate now (with defaults) so a bad value fails before Ray starts
    validate_workload_config(wl.config_cls, {**merged, "seed": space.seeds_for(profile)[0]}, f"search space {space.name}")
    return merged


def tune_param_space(space: SearchSpace, base: dict[str, Any], profile: str) -> dict[str, Any]:
    from ray import tune

    out: dict[str, Any] = dict(base)
    for key, spec in space.param_space.items():
        if spec.type == "loguniform":
            out[key] = tune.loguniform(spec.low, spec.high)
        elif spec.type == "uniform":
            out[key] = tune.uniform(spec.low, spec.high)
        elif spec.type == "randint":
            out[key] = tune.randint(int(spec.low), int(spec.high))  # type: ignore[arg-type]
        elif spec.type == "choice":
            out[key] = tune.choice(spec.values)
        else:
            out[key] = tune.grid_search(spec.values)
    seeds = space.seeds_for(profile)
    out["seed"] = tune.grid_search(seeds) if space.searcher == "grid" else seeds[0]
    return out


def prepare_data(space: SearchSpace, wl: Any, base: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, str], list[Any]]:
    """Build corpora and extract embeddings for every data spec the trials can ask for."""
    from orchestrator.corpus import CorpusRequest, build_corpus
    from orchestrator.extract import extract

    cache_root = args.cache_dir.resolve()
    data, results, seen = {}, [], set()
    for combo in discrete_combinations(space, wl.data_fields, base):
        cfg = validate_workload_config(wl.config_cls, {**base, **combo, "seed": 0}, f"search space {space.name}")
        spec = wl.data_spec(cfg, args.profile)
        if spec.key() in seen:
            continue
        seen.add(spec.key())
        manifest = build_corpus(CorpusRequest(spec.corpus, args.profile, args.data_root, cache_root / "corpora",
                                              dict(spec.corpus_options)))
        res = extract(manifest, spec.encoder, dict(spec.encoder_params), cache_root / "embeddings",
                      skip_bad_items=args.skip_bad_items, level=spec.level)
        state = "cache hit" if res.cache_hit else "extracted"
        print(f"[data] {spec.corpus} x {res.encoder_id}: {state} ({res.n_items} items, "
              f"{len(res.quarantined)} quarantined) -> {res.cache_dir}", flush=True)
        data[spec.key()] = str(res.cache_dir)
        results.append((spec, res))
    return data, results


def run(args: argparse.Namespace) -> int:
    import ray
    from ray import tune

    from orchestrator import report
    from orchestrator.tracking import DEFAULT_TRACKING_URI, MlflowTrialCallback, SweepTracker, git_commit
    from orchestrator.train import TrialContext, evaluate_checkpoint_dir, run_trial
    from orchestrator.workload import load_workload

    space = load_search_space(args.name)
    wl = load_workload(space.workload)
    overrides = parse_set(args.overrides)
    base = resolve_base_config(space, wl, args.profile, overrides)
    profile = wl.profile(args.profile)
    tracking_uri = args.tracking_uri or DEFAULT_TRACKING_URI
    storage = args.storage_path if "://" in args.storage_path else str(Path(args.storage_path).resolve())
    sweep_root = Path(storage) / space.name if "://" not in storage else None

    if not ray.is_initialized():  # tests and notebooks may have started Ray already
        # the dashboard process serves the state API that Ray Train's placement-group cleaner polls
        ray.init(address=args.address, logging_level=logging.WARNING)
    progress = sys.stderr.isatty()  # bars for people at a terminal, not for logs and CI
    ray.data.DataContext.get_current().enable_progress_bars = progress
    res = ray.cluster_resources()
    gpus = space.resources.gpus_per_worker
    gpus_per_worker = (1.0 if res.get("GPU", 0) else 0.0) if gpus == "auto" else float(gpus)

    t0 = time.perf_counter()
    data, extractions = prepare_data(space, wl, base, args)
    t_data = time.perf_counter() - t0

    experiment_name = _experiment_dir(space.name, sweep_root, args.resume)
    tracker = SweepTracker(tracking_uri, space.name, (sweep_root or Path("ray_results")) / experiment_name / "tracking.json")
    tags = {
        "git_commit": git_commit(), "profile": args.profile, "workload": wl.name, "sweep": space.name,
        "regime": wl.regime, "profile_description": profile.description,
    }
    for key, val in profile.substitutions.items():
        tags[f"substitution.{key}"] = val
    for key, val in profile.shortened.items():
        tags[f"shortened.{key}"] = val
    for spec, r in extractions:
        tags[f"data.{spec.corpus}.fingerprint"] = r.corpus_fingerprint
        tags[f"encoder.{r.encoder_id}.weights_hash"] = r.weights_hash
        tags[f"data.{spec.corpus}.cache"] = "hit" if r.cache_hit else "extracted"
    parent = tracker.start_parent(experiment_name, {"space": space.model_dump(), "base_config": base,
                                                    "profile": args.profile}, tags)
    _log_data(tracker, parent, extractions)

    ctx = TrialContext(workload=wl.name, profile=args.profile, metric=space.metric, mode=space.mode, data=data,
                       storage_path=storage + "/train", train_workers=space.resources.train_workers,
                       cpus_per_worker=space.resources.cpus_per_worker, gpus_per_worker=gpus_per_worker,
                       max_epochs=args.max_epochs, progress_bars=progress)

    def on_stopped(trial: Any, ckpt_dir: str) -> tuple[dict[str, float], Path]:
        cfg = wl.config_cls.model_validate(trial.config)
        return evaluate_checkpoint_dir(wl, cfg, Path(data[wl.data_spec(cfg, args.profile).key()]), ckpt_dir)

    child_tags = {k: v for k, v in tags.items() if not k.startswith("profile_description")}
    callback = MlflowTrialCallback(tracker, child_tags, on_stopped=on_stopped)
    trainable = tune.with_resources(tune.with_parameters(run_trial, ctx=ctx), {"cpu": 0.01})
    exp_path = f"{storage}/{space.name}/{experiment_name}"
    if args.resume:
        if not tune.Tuner.can_restore(exp_path):
            raise ConfigError(f"nothing to resume at {exp_path}")
        tuner = tune.Tuner.restore(exp_path, trainable=trainable, resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
    else:
        tuner = _make_tuner(space, wl, base, args, trainable, callback, storage, experiment_name)
    print(f"[sweep] {space.name}: workload {wl.name}, profile {args.profile}, "
          f"{_trial_count(space, args)} trial(s); data ready in {t_data:.1f}s", flush=True)
    results = tuner.fit()

    summary = report.summarise(results, space, wl, tracker, profile, args)
    tracker.finish_parent("FINISHED" if summary.n_ok else "FAILED")
    print(summary.text, flush=True)
    uri_hint = tracking_uri if tracking_uri != DEFAULT_TRACKING_URI else "sqlite:///mlruns/mlflow.db"
    print(f"\nSee the runs: mlflow ui --backend-store-uri {uri_hint}   (experiment '{space.name}', "
          f"parent run {experiment_name})", flush=True)
    return 0 if summary.n_ok else 1


def _make_tuner(space: SearchSpace, wl: Any, base: dict[str, Any], args: argparse.Namespace, trainable: Any,
                callback: Any, storage: str, experiment_name: str) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    param_space = tune_param_space(space, base, args.profile)
    search_alg = None
    if space.searcher == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=space.seeds_for(args.profile)[0]))
    scheduler = None
    if space.scheduler.type == "asha":
        cfg = validate_workload_config(wl.config_cls, {**base, "seed": 0}, space.name)
        epochs = wl.epochs(cfg) if not args.max_epochs else min(wl.epochs(cfg), args.max_epochs)
        rounds = math.ceil(epochs / max(1, min(wl.eval_every(cfg), epochs)))
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=rounds + 1,
                                  grace_period=min(space.scheduler.grace_period, rounds),
                                  reduction_factor=space.scheduler.reduction_factor)
    num_samples = 1 if space.searcher == "grid" else (args.num_samples or space.num_samples_for(args.profile))
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=space.metric, mode=space.mode, search_alg=search_alg,
                                    scheduler=scheduler, num_samples=num_samples,
                                    max_concurrent_trials=space.max_concurrent_trials),
        run_config=tune.RunConfig(name=f"{space.name}/{experiment_name}", storage_path=storage,
                                  callbacks=[callback], failure_config=tune.FailureConfig(max_failures=0)),
    )


def _trial_count(space: SearchSpace, args: argparse.Namespace) -> int:
    if space.searcher == "grid":
        return space.grid_size(args.profile)
    return args.num_samples or space.num_samples_for(args.profile)


def _experiment_dir(name: str, sweep_root: Path | None, resume: bool) -> str:
    """A fresh ``<name>-<time>`` per invocation; ``--resume`` takes the latest one (LATEST file)."""
    latest = sweep_root / "LATEST" if sweep_root else None
    if resume:
        if latest is None or not latest.exists():
            raise ConfigError(f"--resume: no earlier run of sweep {name!r} under {sweep_root}")
        return latest.read_text().strip()
    exp = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if latest is not None:
        latest.parent.mkdir(parents=True, exist_ok=True)
        latest.write_text(exp)
    return exp


def _log_data(tracker: Any, run_id: str, extractions: list[Any]) -> None:
    import tempfile

    quarantined = {f"{spec.corpus}": r.quarantined for spec, r in extractions}
    n_q = sum(len(v) for v in quarantined.values())
    tracker.log_metrics(run_id, {"data/quarantined_items": n_q,
                                 "data/items": sum(r.n_items for _, r in extractions),
                                 "data/cache_hits": sum(1 for _, r in extractions if r.cache_hit)})
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "quarantine.json"
        path.write_text(json.dumps({k: [list(x) for x in v] for k, v in quarantined.items()}, indent=2))
        tracker.log_artifact(run_id, path, "data")
        ext = Path(d) / "extraction.json"
        ext.write_text(json.dumps([{**asdict(spec), "cache_dir": str(r.cache_dir), "cache_hit": r.cache_hit,
                                    "seconds": r.seconds, "n_items": r.n_items, "encoder": r.encoder_id,
                                    "weights_hash": r.weights_hash} for spec, r in extractions], indent=2))
        tracker.log_artifact(run_id, ext, "data")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # force: a second main() in one process (tests, notebooks) must log to the current stderr
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    if args.list:
        for name in list_search_spaces():
            try:
                s = load_search_space(name)
                print(f"{name:20s} {s.workload:8s} {s.description}")
            except ConfigError as e:
                print(f"{name:20s} INVALID: {e}")
        return 0
    if not args.name:
        build_parser().print_usage(sys.stderr)
        print("error: give a sweep name (see --list)", file=sys.stderr)
        return 2
    from orchestrator.corpus import ManifestError
    from orchestrator.encoders.base import EncoderUnavailableError
    from orchestrator.extract import BadItemsError

    try:
        return run(args)
    except (ConfigError, ManifestError, EncoderUnavailableError, BadItemsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
