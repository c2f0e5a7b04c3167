"""What a sweep costs beyond its compute: each named sweep through the orchestrator against an
in-process loop doing the same trainings, side by side in one run.

For each sweep this script

1. runs ``python -m orchestrator.sweep NAME ...`` in a subprocess (its own Ray instance, a
   temporary MLflow store and Tune storage, the shared view cache so no extraction is timed) and
   times the trials phase: from the sweep's first ``[sweep]`` line (data ready) to the process's
   end, so Ray start-up and extraction are left out and the summary and shutdown are in;
2. replays the trainings the sweep ran, in a plain process pool of the same size as the sweep's
   trials at once (its ``max_concurrent_trials`` tag; 1 for sweeps that predate it), each worker
   with a trial's CPU threads: each trial's
   config, trained for as many epochs as the sweep trained it (ASHA stops some early), validated at
   the same rounds, tested (best and last weights) as the sweep tests it; an evaluation sweep's
   model trained once, then one evaluation per trial and the selected trial's figures once. Pool
   workers load torch and the data before the clock starts (what a hand-written loop pays once);
3. prints, per sweep: trials, trials at once, orchestrated wall, in-process wall, their ratio and
   the fixed cost per trial, ``(orchestrated - in-process) x trials at once / trials``; and the same
   within the trials phase (from the first trial's start line to the last trial's end line against
   the replay's trainings, or evaluations), which leaves out what a sweep pays once (starting
   trial processes, an evaluation sweep's model training, the summary and Ray's shutdown); then
   where the orchestrated wall went: an evaluation sweep's model training, the time to its first
   trial, the trials, and the end (stopped trials' test passes, summary, figures, registration).

``--orchestrator-root DIR`` runs step 1 from another checkout (e.g. ``git worktree add /tmp/before
HEAD~5``) while the replay uses this one, for a before/after table from the same replay.

    python benchmarks/bench_sweep_overhead.py                       # qbe_margin 20x20, cts_systems, fusion_n
    python benchmarks/bench_sweep_overhead.py --sweeps fusion_n     # one of them
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from orchestrator.trials import TrialHost

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = {"qbe_margin": ["--num-samples", "20", "--max-epochs", "20"], "cts_systems": [], "fusion_n": []}


# ------------------------------------------------------------------------------------------------
# 1. the orchestrated sweep


def orchestrated(name: str, args: list[str], work: Path, cache: str, root: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "orchestrator.sweep", name, *args, "--cache-dir", cache,
           "--storage-path", str(work / "rr"), "--tracking-uri", f"sqlite:///{work}/mlflow.db"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    t0 = time.perf_counter()
    start = first_trial = last_trial = tuner = None
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:  # type: ignore[union-attr]
        lines.append(line)
        now = time.perf_counter()
        if start is None and line.startswith("[sweep]"):
            start = now
        if line.startswith("[sweep]") and " trial(s), " in line:  # the trials' Tuner (after a model's training)
            tuner = now
        if line.startswith("[trial "):  # the trials proper (not an evaluation sweep's model training)
            first_trial = first_trial or now
            last_trial = now
    rc = proc.wait()
    end = time.perf_counter()
    if rc != 0 or start is None:
        raise RuntimeError(f"{name} failed (rc {rc}):\n" + "".join(lines[-40:]))
    records = sorted((work / "rr" / name / "records").glob("*/tracking.json"))[-1]
    # where the orchestrated wall goes: an evaluation sweep's model training (Tuner, trial process,
    # training), the trials' Tuner and trial-process start, the trials, and the end (the stopped
    # trials' test passes, summary, figures, registration, Ray's shutdown)
    phases = {"model_s": (tuner or start) - start, "to_first_trial_s": (first_trial or end) - (tuner or start),
              "trials_s": (last_trial or end) - (first_trial or end), "end_s": end - (last_trial or end)}
    return {"wall": end - start, "total": end - t0, "trials_phase": (last_trial or end) - (first_trial or start),
            "phases": phases,
            "state": json.loads(records.read_text()),
            "tracking": f"sqlite:///{work}/mlflow.db"}


def trained_epochs(tracking: str, run_id: str) -> int:
    """Epochs a trial trained (its last logged training loss's step + 1)."""
    from mlflow.tracking import MlflowClient

    hist = MlflowClient(tracking).get_metric_history(run_id, "train/loss")
    return max((h.step for h in hist), default=-1) + 1


# ------------------------------------------------------------------------------------------------
# 2. the same trainings in a plain process pool


_CTX: dict[str, Any] = {}


def _warm(ctx: Any, configs: list[dict[str, Any]]) -> None:
    """A pool worker loads torch, the workload and every trial's data before the clock starts, and
    uses the threads a trial has (Ray sets a trial's OMP_NUM_THREADS to its CPUs: two 2-thread
    workers on 2 cores ran 1.5x slower than two 1-thread ones)."""
    from orchestrator.registry import load_workload
    from orchestrator.trials import cached_tables

    torch.set_num_threads(max(1, int(ctx.cpus_per_worker)))
    _CTX["ctx"] = ctx
    wl = load_workload(ctx.workload)
    for config in configs:
        cfg = wl.config_cls.model_validate(config)
        cached_tables(wl, cfg, ctx, ("train", "val"))
        cached_tables(wl, cfg, ctx, ("test",))
        cached_tables(wl, cfg, ctx, ("val",))


class _LocalHost(TrialHost):
    """A trial's host without Tune: reports are dropped, the newest checkpoint stays on disk."""

    def __init__(self, tables: dict[str, Any]) -> None:
        super().__init__(tables, torch.device("cpu"))

    def send(self, metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        pass

    def resume_dir(self) -> str | None:
        return None  # never a retry


def _train_and_test(config: dict[str, Any], epochs: int | None, keep: str | None = None) -> float:
    """One trial's training and test pass; ``keep``: where to copy its best weights (a trial whose
    figures the sweep draws onto its parent run afterwards)."""
    from orchestrator.registry import load_workload
    from orchestrator.train import MODEL_FILE, evaluate_states, load_states, split_of, train_model
    from orchestrator.trials import cached_tables

    ctx = _CTX["ctx"]
    t0 = time.perf_counter()
    wl = load_workload(ctx.workload)
    cfg = wl.config_cls.model_validate(config)
    table, _ = cached_tables(wl, cfg, ctx, ("train", "val"))
    test, report = cached_tables(wl, cfg, ctx, ("test",))
    host = _LocalHost({s: split_of(table, s) for s in ("train", "val")})
    train_model(host, {"workload": ctx.workload, "cfg": config, "metric": ctx.metric, "mode": ctx.mode,
                       "max_epochs": epochs})
    state, last = load_states(host.last_dir)
    evaluate_states(wl, cfg, wl.to_data(test), state, last, ctx.metric, len(report.dropped))
    if keep:
        shutil.copy(Path(host.last_dir) / MODEL_FILE, keep)
    host.discard()
    return time.perf_counter() - t0


def _draw(config: dict[str, Any], state_file: str) -> float:
    """The figures the sweep driver draws onto the parent run for one trial (``draw_figures``)."""
    from orchestrator.trials import draw_figures

    t0 = time.perf_counter()
    draw_figures(config, _CTX["ctx"], torch.load(state_file, map_location="cpu", weights_only=True))
    return time.perf_counter() - t0


def _evaluate(config: dict[str, Any], state_file: str, figures: bool) -> float:
    from orchestrator import trials
    from orchestrator.trials import evaluate_config

    t0 = time.perf_counter()
    if state_file not in _CTX:
        _CTX[state_file] = torch.load(state_file, map_location="cpu", weights_only=True)
    sources = {str(config.get("seed", 0)): {"run_id": state_file, "state": None}}
    trials._STATES[state_file] = _CTX[state_file]  # the trial process's cache of the trained weights
    evaluate_config(config, _CTX["ctx"], sources, figures=figures)
    return time.perf_counter() - t0


def in_process(ctx: Any, jobs: list[tuple[dict[str, Any], int]], evals: list[dict[str, Any]],
               selected: dict[str, Any] | None, concurrency: int, figures_per_trial: bool,
               parent_figures: list[int] | None = None) -> tuple[float, float]:
    """Wall of the same trainings (then evaluations) in a pool of ``concurrency`` processes, and of
    its trials proper (an evaluation sweep's evaluations, without the model training and figures).
    ``parent_figures``: the jobs whose figures the sweep drew onto its parent run, drawn once after
    the trainings as the sweep draws them."""
    configs = [c for c, _ in jobs] + evals
    with ProcessPoolExecutor(concurrency, mp_context=get_context("spawn"), initializer=_warm,
                             initargs=(ctx, configs)) as pool, tempfile.TemporaryDirectory() as kept:
        list(pool.map(time.sleep, [0.5] * concurrency))  # every worker initialised (data loaded)
        keep = [str(Path(kept) / f"{i}.pt") if i in (parent_figures or []) else None for i in range(len(jobs))]
        t0 = time.perf_counter()
        list(pool.map(_train_and_test, [c for c, _ in jobs], [e for _, e in jobs], keep))
        phase = time.perf_counter() - t0
        list(pool.map(_draw, [jobs[i][0] for i in parent_figures or []], [keep[i] for i in parent_figures or []]))
        if evals:
            with tempfile.TemporaryDirectory() as d:
                state_file = str(Path(d) / "source.pt")
                pool.submit(_train_source, evals[0], state_file).result()
                t1 = time.perf_counter()
                list(pool.map(_evaluate, evals, [state_file] * len(evals), [figures_per_trial] * len(evals)))
                phase = time.perf_counter() - t1
                if selected is not None:
                    pool.submit(_evaluate, selected, state_file, True).result()
        return time.perf_counter() - t0, phase


def _train_source(config: dict[str, Any], state_file: str) -> None:
    from orchestrator.registry import load_workload
    from orchestrator.train import MODEL_FILE, split_of, train_model
    from orchestrator.trials import cached_tables

    ctx = _CTX["ctx"]
    wl = load_workload(ctx.workload)
    cfg = wl.config_cls.model_validate(config)
    table, _ = cached_tables(wl, cfg, ctx, ("train", "val"))
    host = _LocalHost({s: split_of(table, s) for s in ("train", "val")})
    train_model(host, {"workload": ctx.workload, "cfg": config, "metric": ctx.metric, "mode": ctx.mode,
                       "max_epochs": None})
    shutil.copy(Path(host.last_dir) / MODEL_FILE, state_file)
    host.discard()


# ------------------------------------------------------------------------------------------------
# 3. side by side


def trial_context(name: str, args: list[str], cache: str) -> Any:
    """The trial context the sweep built (same views in the same cache), without Ray."""
    from orchestrator.plan import Invocation, new_experiment, resolve
    from orchestrator.registry import load_workload
    from orchestrator.sweep import prepare_data
    from orchestrator.train import TrialContext

    inv = new_experiment(Invocation(sweep=name, cache_dir=cache, max_epochs=_flag(args, "--max-epochs"),
                                    num_samples=_flag(args, "--num-samples")))
    plan = resolve(inv)
    wl = load_workload(plan.space.workload)
    data = prepare_data(plan, wl, plan.base)  # cache hits: the sweep extracted them
    return TrialContext(workload=plan.space.workload, profile="local", metric=plan.space.metric,
                        mode=plan.space.mode, data=data.view_dirs, manifests=data.manifests, storage_path="")


def parent_figure_jobs(ctx: Any, state: dict[str, Any], trials: list[dict[str, Any]]) -> list[int]:
    """Which of the replayed trainings the sweep drew parent-run figures for (a workload whose
    trials draw none, e.g. speaker-text's one t-SNE per system), as indices into ``trials``."""
    import pandas as pd

    from orchestrator.registry import load_workload

    wl = load_workload(ctx.workload)
    if wl.trial_figures or not trials:
        return []
    ids = {id(r): tid for tid, r in state.get("trials", {}).items()}
    rows = pd.DataFrame([{"trial_id": ids[id(r)], **r["config"]} for r in trials])
    chosen = set(wl.parent_figure_trials(rows, None).values())
    return [i for i, r in enumerate(trials) if ids[id(r)] in chosen]


def _flag(args: list[str], flag: str) -> int | None:
    return int(args[args.index(flag) + 1]) if flag in args else None


def bench(name: str, args: list[str], cache: str, root: Path) -> dict[str, Any]:
    import ray

    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as d:
        orch = orchestrated(name, args, Path(d), cache, root)
        state = orch["state"]
        from mlflow.tracking import MlflowClient

        run = MlflowClient(orch["tracking"]).get_run(state["parent"]).data
        parent = run.tags
        # sweeps that predate the tag ran the search space's max_concurrent_trials (default 1)
        old = run.params.get("space.max_concurrent_trials", "1")
        concurrency = int(parent.get("max_concurrent_trials", old if old.isdigit() else "1"))
        ray.shutdown()
        ctx = trial_context(name, args, cache)
        trials = [r for r in state.get("trials", {}).values() if r.get("status") in ("ok", "stopped-early")]
        if state.get("sources"):  # an evaluation sweep: the model trained once, then evaluations
            jobs: list[tuple[dict[str, Any], int]] = []
            evals = [r["config"] for r in trials]
            best = max(trials, key=lambda r: r["metrics"].get(f"best/{ctx.metric}", float("-inf")))
            # sweeps that predate trial_placement drew figures in every evaluation trial; now the
            # selected trial's are drawn once
            figures_per_trial = "trial_placement" not in parent
            selected = None if figures_per_trial else best["config"]
            parent_figures: list[int] = []  # its selected trial's figures are the ones drawn
        else:
            jobs = [(r["config"], trained_epochs(orch["tracking"], r["run_id"]) or None) for r in trials]
            evals, selected, figures_per_trial = [], None, False
            parent_figures = parent_figure_jobs(ctx, state, trials)
        inproc, inproc_phase = in_process(ctx, jobs, evals, selected, concurrency, figures_per_trial,
                                          parent_figures)
    n = len(trials)
    return {"sweep": name, "trials": n, "at_once": concurrency, "cli_total_s": orch["total"], "orchestrated_s": orch["wall"],
            "in_process_s": inproc, "ratio": orch["wall"] / inproc,
            "fixed_per_trial_s": (orch["wall"] - inproc) * concurrency / max(n, 1),
            # the same, between the first trial's start and the last one's end: what each trial
            # adds once trial processes are up (an evaluation sweep's model training left out)
            "per_trial_in_phase_s": (orch["trials_phase"] - inproc_phase) * concurrency / max(n, 1),
            "in_process_trials_s": inproc_phase, **orch["phases"]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sweeps", nargs="+", default=list(SWEEPS), choices=list(SWEEPS))
    p.add_argument("--cache-dir", default=str(ROOT / "cache"), help="the view cache the sweeps share")
    p.add_argument("--orchestrator-root", default=str(ROOT), help="checkout whose orchestrator runs the sweeps")
    a = p.parse_args(argv)
    rows = []
    for name in a.sweeps:
        rows.append(bench(name, SWEEPS[name], a.cache_dir, Path(a.orchestrator_root)))
        r = rows[-1]
        print(f"{r['sweep']:12s} trials {r['trials']:3d}  at once {r['at_once']}  orchestrated {r['orchestrated_s']:7.1f}s"
              f"  in-process {r['in_process_s']:7.1f}s  ratio {r['ratio']:5.2f}x  fixed cost/trial "
              f"{r['fixed_per_trial_s']:5.2f}s  of which in the trials phase {r['per_trial_in_phase_s']:5.2f}s",
              flush=True)
        print(f"{'':12s} orchestrated wall: model training {r['model_s']:5.1f}s, to the first trial "
              f"{r['to_first_trial_s']:4.1f}s, trials {r['trials_s']:5.1f}s (in-process {r['in_process_trials_s']:5.1f}s), "
              f"end {r['end_s']:4.1f}s", flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
