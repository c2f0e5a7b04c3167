"""The sweep's result tables: one row per trial (best first), mean ± std over seeds, and the
workload's own tables aggregated over seeds; logged on the parent run and printed at the end.

Rows come from the outcomes the MLflow callback recorded (``tracking.json``), not from Tune's
result grid, so trials an interrupted sweep never ran are listed as pending, with their
parameters, instead of as empty rows.

Naming: the headline is the best validation value a trial reached (``best/<metric>``, what
selection and ASHA use and what the checkpoint that is tested scored); MLflow's ``<metric>``
history holds every validation round.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from orchestrator import storage
from orchestrator.plan import SweepPlan
if TYPE_CHECKING:  # MLflow takes 1.5 s to import: trial processes use mean_std, not the tracker
    from orchestrator.tracking import SweepTracker

WIDTH = 120
OK = ("ok", "stopped-early")


@dataclass
class Summary:
    text: str
    n_ok: int
    n_pending: int
    trials: pd.DataFrame
    best_trial: str | None


def mean_std(values: pd.Series) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if v.size == 0:
        return ""
    if v.size == 1:
        return f"{v[0]:.3f}"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def aggregate_over_seeds(trials: pd.DataFrame, group_cols: list[str], metric_cols: list[str]) -> pd.DataFrame:
    """mean ± std (sample std, as the thesis reports over 3 runs) of each metric per group."""
    ok = trials[trials["status"].isin(OK)]
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


def trial_rows(plan: SweepPlan, tracker: SweepTracker) -> pd.DataFrame:
    """One row per trial: number, status, searched params, seed, best validation value, test
    metrics; sorted best first (then the rest by trial number)."""
    metric = f"best/{plan.space.metric}"
    recs = tracker.state.get("trials", {})
    rows = []
    for trial_id, rec in recs.items():
        cfg, m = rec.get("config", {}), rec.get("metrics", {})
        row: dict[str, Any] = {"trial": rec.get("number", 0), "trial_id": trial_id, "status": rec.get("status"),
                               "seed": cfg.get("seed")}
        row.update({k: cfg.get(k) for k in plan.searched})
        row[metric] = m.get(metric)
        # the last epoch's test metrics too: tables that show both (CLASP's stage 1) read them here
        row.update({k: v for k, v in m.items() if k.startswith(("test/", "test_last/"))})
        if rec.get("error"):
            row["error"] = rec["error"][:200]
        row["run_id"] = rec.get("run_id")
        rows.append(row)
    missing = plan.n_trials - len(rows)  # Optuna trials not yet suggested when the sweep stopped
    for k in range(missing):
        rows.append({"trial": len(recs) + k + 1, "trial_id": "", "status": "pending", metric: None})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    ok = df["status"].isin(OK) & df[metric].notna()
    ranked = df[ok].sort_values([metric, "trial"], ascending=[plan.space.mode == "min", True])
    return pd.concat([ranked, df[~ok].sort_values("trial")], ignore_index=True)


_ABBREV = (("test/", ""), ("transformed/", "tr/"), ("original/", "or/"), ("best/val/", "best val/"))


def _short(col: str) -> str:
    for a, b in _ABBREV:
        col = col.replace(a, b)
    return col


def console_table(df: pd.DataFrame, cols: list[str], best_id: str | None = None) -> str:
    """The rows as text no wider than 120 columns: columns are dropped from the right until the
    table fits; the best trial (if given) is marked with '*'."""
    view = df[[c for c in cols if c in df]].copy()
    if best_id is not None:
        view.insert(0, " ", ["*" if t == best_id else "" for t in df["trial_id"]])
    view.columns = [_short(c) for c in view.columns]
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 10_000,
                           "display.max_columns", 100, "display.max_colwidth", 40):
        while True:
            text = view.to_string(index=False, na_rep="-")
            if max(len(line) for line in text.splitlines()) <= WIDTH or view.shape[1] <= 4:
                return text
            view = view.iloc[:, :-1]


def trials_text(trials: pd.DataFrame, searched: list[str], metric: str, headline: list[str], best_id: str) -> str:
    """The per-trial table: the selection metric and the headline test metrics come before the
    searched parameters, so that when 120 columns cannot hold everything, parameters are cut
    (the MLflow table has them all), never the numbers the sweep is run for."""
    cols = ["trial", "status", metric, *headline, *searched, "seed"]
    if "error" in trials:
        cols.append("error")
    return console_table(trials, cols, best_id)


def summarise(plan: SweepPlan, wl: Any, tracker: SweepTracker) -> Summary:
    space = plan.space
    metric = f"best/{space.metric}"
    trials = trial_rows(plan, tracker)
    parent = tracker.parent_id
    n_ok = int(trials["status"].isin(OK).sum()) if not trials.empty else 0
    n_pending = int((trials["status"] == "pending").sum()) if not trials.empty else 0
    best_id = None
    if n_ok and trials.iloc[0]["status"] in OK and pd.notna(trials.iloc[0][metric]):
        best = trials.iloc[0]
        best_id = str(best["trial_id"])
        tracker.log_tags(parent, {"best_trial": best_id, "best_trial_run_id": str(best.get("run_id")),
                                  "best_trial_metric": f"{metric}={best[metric]:.6g}"})
        tracker.log_metrics(parent, {f"best/{k}": v for k, v in best.items()
                                     if str(k).startswith("test/") and isinstance(v, int | float) and pd.notna(v)})
    if not trials.empty:
        tracker.log_table(parent, "trials", trials.astype(object).where(trials.notna(), None))
    tracker.log_metrics(parent, {"trials/ok": n_ok, "trials/pending": n_pending,
                                 "trials/failed": int((trials["status"] == "failed").sum()) if not trials.empty else 0})

    metric_cols = sorted(c for c in trials.columns if str(c).startswith("test/"))
    group_cols = [k for k in plan.searched if space.searcher == "grid" and k in trials
                  and trials[k].astype(str).nunique() > 1]
    # mean ± std only means something over seeds of one config: grid sweeps (Optuna trials differ)
    agg = aggregate_over_seeds(trials, group_cols, [metric, *metric_cols]) if space.searcher == "grid" else pd.DataFrame()
    if not agg.empty:
        tracker.log_table(parent, "mean_std_over_seeds", agg)
    _aggregate_workload_tables(plan, wl, tracker, trials, group_cols)
    summaries = wl.summary_tables(trials[trials["status"].isin(OK)]) if n_ok else {}
    for name, table in summaries.items():
        tracker.log_table(parent, name, table)
    if n_ok:
        _log_summary_figures(tracker, parent, wl.summary_figures(trials[trials["status"].isin(OK)]))
    search_line = ""
    if not trials.empty:  # parameter importance, parallel coordinates, validation curves; never raises
        from orchestrator.sweep_figures import log_parent_figures
        from orchestrator.sweep_inputs import log_child_inputs

        search_line = log_parent_figures(plan, tracker, trials, best_id)
        log_child_inputs(plan, wl, tracker)

    header = [f"== {space.name} ({plan.info.name}, profile {plan.inv.profile}): {n_ok} of {plan.n_trials} "
              f"trial(s) ok" + (f", {n_pending} pending" if n_pending else "") + " =="]
    if plan.profile.substitutions:
        header.append("substitutions: " + "; ".join(f"{k}: {v}" for k, v in plan.profile.substitutions.items()))
    shortened = dict(plan.profile.shortened)
    if plan.epochs_note:
        shortened["epochs"] = plan.epochs_note
    if shortened:
        header.append("shortened: " + "; ".join(f"{k}: {v}" for k, v in shortened.items()))
    if plan.pinned:
        header.append("pinned by --set (not searched): " + ", ".join(f"{k}={v}" for k, v in plan.pinned.items()))
    headline = [m for m in wl.headline_metrics() if m in trials] or metric_cols[:4]
    text = "\n".join(header) + "\n" + (trials_text(trials, list(plan.searched), metric, headline, best_id or "")
                                       if not trials.empty else "(no trials)")
    if best_id:
        text += f"\n* best trial by {metric} ({space.mode}); test metrics are of its best-validation checkpoint"
    shown: dict[str, tuple[pd.DataFrame, list[str]]] = {}  # what the console (and the run's page) shows
    if summaries:
        shown = {name: (table, list(table.columns)) for name, table in summaries.items()}
    elif not agg.empty and (group_cols or n_ok > 1):
        show = [c for c in agg.columns if not str(c).startswith(("test/", "best/"))] + \
            [c for c in [metric, *headline] if c in agg.columns]  # the trials table's order
        shown = {"mean ± std over seeds": (agg, show)}
    for name, (table, cols) in shown.items():
        text += f"\n\n{name}:\n" + console_table(table, cols)
    if search_line:
        text += f"\n\n{search_line}"
    if not trials.empty:
        tracker.set_note(parent, run_page_note(header + ([search_line] if search_line else []), trials,
                                               list(plan.searched), metric, headline, best_id, space.mode, shown))
    return Summary(text=text, n_ok=n_ok, n_pending=n_pending, trials=trials, best_trial=best_id)


def markdown_table(df: pd.DataFrame, columns: list[str] | None = None) -> str:
    """A DataFrame as a Markdown table (pandas' own needs ``tabulate``), numbers to 4 significant
    digits, ``|`` escaped: what the MLflow UI renders on a run's Overview and in its artifact view."""
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "" if v is None or np.isnan(v) else str(v)
        text = f"{v:.4g}" if isinstance(v, float | np.floating) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df[cols].itertuples(index=False)]
    return "\n".join(lines)


# MLflow keeps a tag value of at most 8,000 characters; the run page's description is one
NOTE_LIMIT = 7900


def run_page_note(header: list[str], trials: pd.DataFrame, searched: list[str], metric: str, headline: list[str],
                  best_id: str | None, mode: str, shown: dict[str, tuple[pd.DataFrame, list[str]]]) -> str:
    """The parent run's description (``mlflow.note.content``, Markdown on the run's Overview): the
    sweep's header, its result tables as the console prints them, then the trials (best first).
    What does not fit is named, with the artifact that holds it in full."""
    title, *declared = header
    parts = [f"### {title.strip('= ').strip()}"]
    if best_id:
        parts.append(f"Best trial `{best_id}` by `{metric}` ({mode}); its test metrics are of its "
                     "best-validation checkpoint.")
    for name, (table, cols) in shown.items():
        parts.append(f"**{name}** (`tables/{name}.md`)\n\n" + markdown_table(table, cols))
    cols = ["trial", "status", *[c for c in searched if c in trials], "seed", metric,
            *[c for c in headline if c in trials]]
    parts.append("**trials** (`tables/trials.md`)\n\n" + markdown_table(trials, cols))
    parts += [f"_{line}_" for line in declared]
    note, left_out = "", []
    for part in parts:
        if len(note) + len(part) + 2 <= NOTE_LIMIT:
            note += part + "\n\n"
        else:
            left_out.append(part.split("\n", 1)[0])
    if left_out:
        note += "Not shown here (too long for a run description): " + "; ".join(left_out)
    return note.strip()


def _log_summary_figures(tracker: SweepTracker, parent: str, figures: dict[str, Any]) -> None:
    """The workload's parent-run figures as PNG artifacts under ``figures/``."""
    if not figures:
        return
    import tempfile

    from orchestrator.train import figures_to_png

    with tempfile.TemporaryDirectory() as d:
        for name, png in figures_to_png(figures).items():
            path = Path(d) / f"{name}.png"
            path.write_bytes(png)
            tracker.log_artifact(parent, path, "figures")


def _aggregate_workload_tables(plan: SweepPlan, wl: Any, tracker: SweepTracker, trials: pd.DataFrame,
                               group_cols: list[str]) -> None:
    """The workload's tables (e.g. the paper's Table 4.3) aggregated over seeds, per group."""
    from orchestrator.tracking import table_from_json

    if plan.space.searcher != "grid" or trials.empty:
        return
    recs = tracker.state.get("trials", {})
    ok = trials[trials["status"].isin(OK)]
    groups = ok.groupby(group_cols) if group_cols else [((), ok)]
    for name in wl.table_groups():
        for key, g in groups:
            tabs = []
            for t in g["trial_id"]:
                art = recs.get(t, {}).get("artifacts")
                path = storage.join(art, "tables", f"{name}.json") if art else None
                if path is not None and storage.exists(path):
                    tabs.append(table_from_json(storage.read_text(path)))
            if not tabs:
                continue
            key = key if isinstance(key, tuple) else (key,)
            suffix = "_".join(f"{c}={v}" for c, v in zip(group_cols, key))
            tracker.log_table(tracker.parent_id, f"{name}_mean_std{('_' + suffix) if suffix else ''}",
                              aggregate_tables(tabs))
