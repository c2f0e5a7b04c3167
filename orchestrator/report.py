"""The sweep's result tables: one row per trial, mean ± std over seeds, and the workload's own
tables aggregated over seeds; logged on the parent run and printed at the end of a sweep."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.config import SearchSpace
from orchestrator.tracking import SweepTracker, read_table_json


@dataclass
class Summary:
    text: str
    n_ok: int
    trials: pd.DataFrame


def mean_std(values: pd.Series) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if v.size == 0:
        return ""
    if v.size == 1:
        return f"{v[0]:.3f}"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def aggregate_over_seeds(trials: pd.DataFrame, group_cols: list[str], metric_cols: list[str]) -> pd.DataFrame:
    """mean ± std (sample std, as the thesis reports over 3 runs) of each metric per group."""
    ok = trials[trials["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame()
    if not group_cols:
        ok = ok.assign(_all="all")
        group_cols = ["_all"]
    rows = []
    for key, g in ok.groupby(group_cols, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(group_cols, key))
        row["n_seeds"] = int(g["seed"].nunique()) if "seed" in g else len(g)
        row.update({m: mean_std(g[m]) for m in metric_cols if m in g})
        rows.append(row)
    return pd.DataFrame(rows).drop(columns=["_all"], errors="ignore")


def aggregate_tables(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Cell-wise mean ± std of same-shaped tables (first column = row labels)."""
    base = tables[0].copy()
    for col in base.columns[1:]:
        stacked = [pd.to_numeric(t[col], errors="coerce").to_numpy(dtype=float) for t in tables]
        arr = np.vstack(stacked)
        base[col] = [mean_std(pd.Series(arr[:, i])) for i in range(arr.shape[1])]
    return base


def summarise(results: Any, space: SearchSpace, wl: Any, tracker: SweepTracker, profile: Any,
              args: argparse.Namespace) -> Summary:
    varied = [k for k in space.param_space]
    rows, tables_by_trial = [], {}
    for r in results:
        cfg = r.config or {}
        metrics = r.metrics or {}
        trial_id = metrics.get("trial_id", cfg.get("trial_id", "?"))
        status = "failed" if r.error else ("ok" if any(k.startswith("test/") for k in metrics) else "no-test")
        row = {"trial_id": trial_id, "status": status, "seed": cfg.get("seed")}
        row.update({k: cfg.get(k) for k in varied})
        row.update({k: v for k, v in metrics.items() if k.startswith("test/")})
        row[space.metric] = metrics.get(space.metric)
        if r.error:
            row["error"] = str(r.error).strip().splitlines()[-1][:200]
        rows.append(row)
        if r.checkpoint is not None and status == "ok":
            tdir = Path(r.checkpoint.path) / "tables"
            if tdir.exists():
                tables_by_trial[trial_id] = {p.stem: read_table_json(p) for p in tdir.glob("*.json")}
    trials = pd.DataFrame(rows)
    metric_cols = sorted(c for c in trials.columns if c.startswith("test/"))
    parent = tracker.parent_id
    tracker.log_table(parent, "trials", trials.astype(object).where(trials.notna(), None))

    group_cols = [k for k in varied if trials[k].astype(str).nunique() > 1 and space.searcher == "grid"]
    # mean ± std only means something over seeds of one config: grid sweeps (Optuna trials differ)
    agg = aggregate_over_seeds(trials, group_cols, metric_cols) if space.searcher == "grid" else pd.DataFrame()
    if not agg.empty:
        tracker.log_table(parent, "mean_std_over_seeds", agg)
    # workload tables (e.g. the paper's Table 4.3) aggregated over seeds, per group
    ok_trials = trials[trials["status"] == "ok"]
    for name in wl.table_groups() if space.searcher == "grid" else []:
        groups = ok_trials.groupby(group_cols) if group_cols else [((), ok_trials)]
        for key, g in groups:
            tabs = [tables_by_trial[t][name] for t in g["trial_id"] if name in tables_by_trial.get(t, {})]
            if not tabs:
                continue
            key = key if isinstance(key, tuple) else (key,)
            suffix = "_".join(f"{c}={v}" for c, v in zip(group_cols, key))
            tracker.log_table(parent, f"{name}_mean_std{('_' + suffix) if suffix else ''}", aggregate_tables(tabs))
    best = ok_trials.sort_values(space.metric, ascending=space.mode == "min").head(1)
    if not best.empty:
        tracker.log_metrics(parent, {f"best/{k}": v for k, v in best.iloc[0].items()
                                     if k.startswith("test/") and isinstance(v, int | float)})
    tracker.log_metrics(parent, {"trials/ok": int((trials["status"] == "ok").sum()),
                                 "trials/failed": int((trials["status"] == "failed").sum())})

    header = [f"== {space.name} ({wl.name}, profile {args.profile}) =="]
    if profile.substitutions:
        header.append("substitutions: " + "; ".join(f"{k}: {v}" for k, v in profile.substitutions.items()))
    if profile.shortened:
        header.append("shortened: " + "; ".join(f"{k}: {v}" for k, v in profile.shortened.items()))
    headline = [m for m in wl.headline_metrics() if m in trials] or metric_cols[:6]
    show = ["trial_id", "status", "seed", *varied, space.metric, *headline]
    if "error" in trials:
        show.append("error")
    with pd.option_context("display.max_columns", 30, "display.width", 200, "display.float_format", "{:.4g}".format):
        text = "\n".join(header) + "\n" + trials[[c for c in show if c in trials]].to_string(index=False)
        if not agg.empty and (group_cols or len(ok_trials) > 1):
            cols = [c for c in agg.columns if not c.startswith("test/") or c in headline]
            text += "\n\nmean ± std over seeds:\n" + agg[cols].to_string(index=False)
    return Summary(text=text, n_ok=int((trials["status"] == "ok").sum()), trials=trials)
