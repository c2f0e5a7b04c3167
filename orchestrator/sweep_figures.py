"""What a sweep's parent run shows about the search itself (issue 20 item 6): which searched
parameters mattered, where the trials landed in the search space, and how every trial's
validation metric moved epoch by epoch.

- ``tables/parameter_importance.{json,md}`` and ``figures/parameter_importance.png``: Optuna's
  PED-ANOVA importance of each searched parameter for reaching the best quantile of the selection
  metric, over the finished trials (an in-memory Optuna study rebuilt from the trial records with
  the search space's distributions, so it works the same on a resumed sweep, whose Tune searcher
  state is not at hand).
- ``figures/parallel_coordinates.png``: one line per finished trial across one axis per searched
  parameter (log axes for log distributions, category names on categorical axes) and the
  selection metric; the best trial is drawn on top in red.
- ``figures/validation_curves.png``: the selection metric per validation round of every trial,
  read from its child run's MLflow history; the best trial first in the legend and drawn thick in black,
  trials the scheduler stopped end in an ``x``, failed ones are dotted.

Grid sweeps get the validation curves only: their trials are a designed comparison (a few grid
points, each over several seeds) that the parent's mean ± std table already states exactly; an
importance estimate over a handful of points mostly measures seed noise, and a parallel-
coordinates plot of them repeats the table less precisely. Evaluation sweeps report validation
once per trial, so they have no curves to draw.

Drawing never fails a sweep: an exception is logged as a warning naming the figure. What is
skipped, and why, is logged and kept on the parent run as the tag ``figures.skipped``.
Costs (2 shared cores, 20 trials): importance ~5 ms, the three PNGs ~0.3 s, the metric
histories one store read per trial.
"""

from __future__ import annotations

import io
import json
import logging
import math
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from orchestrator.config import ParamSpec, SearchSpace
    from orchestrator.plan import SweepPlan
    from orchestrator.tracking import SweepTracker

log = logging.getLogger(__name__)

OK = ("ok", "stopped-early")  # as orchestrator.report (imported from there would be circular)
IMPORTANCE_TABLE = "parameter_importance"
MIN_TRIALS = 2


# ------------------------------------------------------------------------------------------------
# the search space as Optuna distributions


def _categorical_value(v: Any) -> Any:
    """Optuna's categorical choices must be None, bool, int, float or str: anything else (a list
    value such as ``ks: [1, 5]``) is named by its JSON text, the same way for the space and trials."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return json.dumps(v, sort_keys=True, default=str)


def distribution(spec: ParamSpec) -> Any:
    """The Optuna distribution of one searched parameter (as orchestrator.sweep.tune_param_space
    samples it: ``randint`` includes ``high``)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if spec.type in ("choice", "grid"):
        return CategoricalDistribution([_categorical_value(v) for v in spec.values or []])
    if spec.type == "randint":
        return IntDistribution(int(spec.low), int(spec.high))  # type: ignore[arg-type]
    return FloatDistribution(float(spec.low), float(spec.high), log=spec.type == "loguniform")  # type: ignore[arg-type]


def _trial_param(dist: Any, value: Any) -> Any:
    """A trial's config value as its distribution holds it, or None where it does not fit (a record
    from before the search space changed)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(dist, CategoricalDistribution):
        v = _categorical_value(value)
        return v if v in dist.choices else None
    try:
        v = int(value) if isinstance(dist, IntDistribution) else float(value)
    except (TypeError, ValueError):
        return None
    return v if dist.low <= v <= dist.high else None


# ------------------------------------------------------------------------------------------------
# (a) parameter importance


@dataclass
class Importance:
    table: pd.DataFrame | None  # parameter, importance, rank, distribution, note
    reason: str = ""  # why there is no table
    n_trials: int = 0
    method: str = ""
    excluded: dict[str, int] = field(default_factory=dict)  # why trials were left out -> count


def finished(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Trials that count: finished (or stopped by the scheduler, which tested their best
    checkpoint) with a finite selection metric. Failed and pending trials are excluded."""
    if trials.empty or "status" not in trials or metric not in trials:
        return trials.iloc[0:0]
    values = pd.to_numeric(trials[metric], errors="coerce")
    return trials[trials["status"].isin(OK) & np.isfinite(values.astype(float))]


def target_quantile(n: int) -> float:
    """PED-ANOVA compares the best ``q`` of the trials with all of them; Optuna advises at least
    5 trials in that best share, so small sweeps take a larger share (half at most)."""
    return min(0.5, max(0.1, 5 / max(n, 1)))


def parameter_importance(trials: pd.DataFrame, space: SearchSpace, metric: str, mode: str) -> Importance:
    """PED-ANOVA importance of each searched parameter for the selection ``metric`` (``mode``
    max or min) over the finished trials. A parameter that took one value over them cannot explain
    anything: it gets 0 without asking the evaluator (its Parzen prior would give it a little)."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    dists = {k: distribution(s) for k, s in space.param_space.items()}
    if not dists:
        return Importance(None, "nothing is searched")
    done = finished(trials, metric)
    # failed trials (and stopped ones whose test pass failed) have no selection value to explain;
    # pending ones (an interrupted sweep) are not counted as left out
    excluded = {"failed": int((~trials["status"].isin([*OK, "pending"])).sum() + (trials["status"].isin(OK).sum()
                                                                                  - len(done)))} \
        if "status" in trials else {}
    rows: list[tuple[dict[str, Any], float]] = []
    for _, row in done.iterrows():
        params = {k: _trial_param(d, row.get(k)) for k, d in dists.items()}
        if any(v is None for v in params.values()):
            excluded["outside the search space"] = excluded.get("outside the search space", 0) + 1
            continue
        rows.append((params, float(row[metric])))
    excluded = {k: v for k, v in excluded.items() if v}
    if len(rows) < MIN_TRIALS:
        return Importance(None, f"{len(rows)} finished trial(s); importance needs {MIN_TRIALS} or more",
                          len(rows), excluded=excluded)
    values = np.array([v for _, v in rows])
    if np.ptp(values) == 0:
        return Importance(None, f"the selection metric is {values[0]:.6g} for every finished trial",
                          len(rows), excluded=excluded)
    varying = [k for k in dists if len({p[k] for p, _ in rows}) > 1]
    if not varying:
        return Importance(None, "every searched parameter took one value over the finished trials",
                          len(rows), excluded=excluded)

    q = target_quantile(len(rows))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line on the console
    try:
        study = optuna.create_study(direction="maximize" if mode == "max" else "minimize",
                                    sampler=optuna.samplers.RandomSampler(seed=0))  # never samples: no TPE set-up
    finally:
        optuna.logging.set_verbosity(verbosity)
    for params, value in rows:
        study.add_trial(optuna.trial.create_trial(
            params={k: params[k] for k in varying}, distributions={k: dists[k] for k in varying}, value=value))
    with warnings.catch_warnings():
        # Optuna warns on small samples ("importances will be equal"); the table states the trial
        # count and the share compared instead
        warnings.simplefilter("ignore")
        imp = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(target_quantile=q))
    n_top = max(1, math.ceil(q * len(rows)))
    method = f"PED-ANOVA: best {q:.0%} ({n_top} of {len(rows)} trials) against all, by {metric} ({mode})"
    if excluded:
        method += "; left out: " + ", ".join(f"{n} {why}" for why, n in excluded.items())
    out = []
    for k, spec in space.param_space.items():
        lo_hi = f"[{spec.low:g}, {spec.high:g}]" if spec.values is None else f"{spec.values}"
        note = "one value over the finished trials" if k not in varying else \
            "the only parameter that varied: its share is 1 by construction" if len(varying) == 1 else ""
        out.append({"parameter": k, "importance": float(imp.get(k, 0.0)), "distribution": f"{spec.type} {lo_hi}",
                    "note": note})
    table = pd.DataFrame(out).sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(1, "rank", np.arange(1, len(table) + 1))
    table["n_trials"] = len(rows)
    table["method"] = method
    return Importance(table, n_trials=len(rows), method=method, excluded=excluded)


def importance_line(imp: Importance) -> str:
    """One console line: the parameters by importance."""
    if imp.table is None:
        return ""
    parts = ", ".join(f"{r.parameter} {r.importance:.2f}" for r in imp.table.itertuples())
    return f"parameter importance ({imp.method}): {parts}"


# ------------------------------------------------------------------------------------------------
# figures (matplotlib Figure objects, no pyplot state: the driver may draw from any thread)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def importance_figure(imp: Importance) -> Figure:
    """Horizontal bars, the most important parameter on top."""
    table = imp.table
    assert table is not None
    import textwrap

    height = 1.3 + 0.3 * len(table)
    fig = _figure(6.0, height)
    fig.subplots_adjust(left=0.26, right=0.95, bottom=0.5 / height, top=1 - 0.6 / height)
    ax = fig.add_subplot(1, 1, 1)
    names = list(table["parameter"])[::-1]
    vals = list(table["importance"])[::-1]
    bars = ax.barh(names, vals, color=["0.6" if n.startswith("one value") else "C0" for n in list(table["note"])[::-1]])
    for bar, v in zip(bars, vals):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1.0, max(vals) * 1.15))
    ax.set_xlabel("importance (share of the total)")
    ax.set_title("\n".join(textwrap.wrap(imp.method, 80)), fontsize=8)
    ax.tick_params(labelsize=8)
    return fig


@dataclass
class _Axis:
    name: str
    kind: str  # linear | log | categorical
    low: float = 0.0
    high: float = 1.0
    choices: list[Any] = field(default_factory=list)

    def position(self, value: Any) -> float | None:
        """Where ``value`` sits on the axis, 0 (bottom) to 1 (top), matching the drawn scale."""
        if self.kind == "categorical":
            v = _categorical_value(value)
            if v not in self.choices:
                return None
            return (self.choices.index(v) + 0.5) / len(self.choices)
        try:
            x = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(x) or (self.kind == "log" and x <= 0):
            return None
        f = math.log10 if self.kind == "log" else float
        return (f(x) - f(self.low)) / (f(self.high) - f(self.low))

    def draw(self, ax: Any) -> None:
        ax.set_title(self.name, fontsize=8)
        if self.kind == "categorical":
            n = len(self.choices)
            ax.set_ylim(-0.5, n - 0.5)
            ax.set_yticks(range(n), [str(c) for c in self.choices])
        else:
            if self.kind == "log":
                from matplotlib.ticker import FuncFormatter, NullLocator

                ax.set_yscale("log")
                # plain labels and no minor ticks: the default 10^x labels go through mathtext,
                # which was half of this figure's drawing time
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_locator(NullLocator())
            else:
                from matplotlib.ticker import MaxNLocator

                ax.yaxis.set_major_locator(MaxNLocator(5, steps=[1, 2, 2.5, 5, 10]))  # fewer labels: text costs most
            ax.set_ylim(self.low, self.high)


def _param_axis(name: str, spec: ParamSpec) -> _Axis:
    if spec.type in ("choice", "grid"):
        return _Axis(name, "categorical", choices=[_categorical_value(v) for v in spec.values or []])
    kind = "log" if spec.type == "loguniform" else "linear"
    return _Axis(name, kind, float(spec.low), float(spec.high))  # type: ignore[arg-type]


def parallel_coordinates_figure(trials: pd.DataFrame, space: SearchSpace, metric: str, mode: str,
                                best_id: str | None) -> Figure:
    """One axis per searched parameter (over its search range) plus the selection metric; one line
    per finished trial coloured by the metric, the best in red on top, stopped trials dashed."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    done = finished(trials, metric)
    values = done[metric].astype(float)
    lo, hi = float(values.min()), float(values.max())
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 0.01
    axes = [_param_axis(k, s) for k, s in space.param_space.items()]
    axes.append(_Axis(metric, "linear", lo - pad, hi + pad))
    k = len(axes) - 1
    fig = _figure(max(5.0, 1.5 * (k + 1)), 4.5)
    left, bottom, width, height = 0.08, 0.1, 0.8, 0.78
    lines = fig.add_axes((left, bottom, width, height))  # the polylines, in axis positions 0..k x 0..1
    lines.set_xlim(0, k)
    lines.set_ylim(0, 1)
    lines.axis("off")
    for i, axis in enumerate(axes):
        ax = fig.add_axes((left + width * i / k, bottom, 1e-6, height))
        ax.set_xticks([])
        ax.tick_params(labelsize=7)
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
        if i == k:  # the metric: its labels right of its axis, clear of the lines
            ax.spines["left"].set_visible(False)
            ax.spines["right"].set_visible(True)
            ax.yaxis.tick_right()
        axis.draw(ax)
    cmap, norm = colormaps["viridis"], Normalize(lo, hi if hi > lo else lo + 1)
    best_line = None
    for _, row in done.iterrows():
        ys = [a.position(row.get(a.name)) for a in axes]
        if any(y is None for y in ys):
            continue
        is_best = best_id is not None and str(row.get("trial_id")) == best_id
        style = {"color": "red", "lw": 2.5, "zorder": 3} if is_best else \
            {"color": cmap(norm(float(row[metric]))), "lw": 1.2, "alpha": 0.8, "zorder": 2}
        line, = lines.plot(range(k + 1), ys, ls="--" if row.get("status") == "stopped-early" else "-", **style)
        if is_best:
            best_line = line
    if best_line is not None:
        lines.legend([best_line], [f"best trial ({mode} {metric})"], loc="upper center",
                     bbox_to_anchor=(0.5, -0.02), fontsize=7, frameon=False)
    fig.suptitle(f"{len(done)} finished trial(s) over the search space; dashed: stopped early", fontsize=9)
    return fig


@dataclass
class Curve:
    trial: int
    trial_id: str
    status: str
    steps: list[int]
    values: list[float]


def metric_histories(client: Any, trials: pd.DataFrame, metric: str) -> list[Curve]:
    """Each trial's validation history of ``metric`` from its child run (one store read per trial),
    in the trials table's order (best first)."""
    from orchestrator.tracking import metric_name

    out = []
    for _, row in trials.iterrows():
        run_id = row.get("run_id")
        if not isinstance(run_id, str) or not run_id or row.get("status") == "pending":
            continue
        hist = sorted(client.get_metric_history(run_id, metric_name(metric)), key=lambda m: (m.step, m.timestamp))
        if hist:
            out.append(Curve(int(row["trial"]), str(row["trial_id"]), str(row["status"]),
                             [m.step for m in hist], [m.value for m in hist]))
    return out


def validation_curves_figure(curves: list[Curve], metric: str, best_id: str | None) -> Figure:
    """The metric per validation round of every trial, best first in the legend and drawn thick
    in black (the others take tab20's colours, which include red)."""
    from matplotlib import colormaps

    curves = sorted(curves, key=lambda c: c.trial_id != best_id)  # stable: the table's order after the best
    two_columns = len(curves) > 16
    fig = _figure(8.5 if two_columns else 7.5, 4.5)
    fig.subplots_adjust(left=0.1, right=0.62 if two_columns else 0.76, bottom=0.12, top=0.9)
    ax = fig.add_subplot(1, 1, 1)
    cmap = colormaps["tab20"]
    for i, c in enumerate(curves):
        best = c.trial_id == best_id
        label = f"trial {c.trial}" + (" (best)" if best else " (stopped)" if c.status == "stopped-early"
                                      else " (failed)" if c.status == "failed" else "")
        color = "black" if best else cmap(i % 20)
        ax.plot(c.steps, c.values, marker="o", ms=5 if best else 3, label=label, color=color, lw=2.5 if best else 1.0,
                alpha=1.0 if best else 0.75, ls=":" if c.status == "failed" else "-", zorder=3 if best else 2)
        if c.status == "stopped-early":
            ax.plot(c.steps[-1:], c.values[-1:], marker="x", ms=9, mew=2, color=color, ls="none", zorder=4)
    from matplotlib.ticker import MaxNLocator

    steps = sorted({s for c in curves for s in c.steps})
    if len(steps) <= 12:  # the validation rounds themselves
        ax.set_xticks(steps)
        ax.set_xlim(steps[0] - 1, steps[-1] + 1)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (MLflow step of the validation round)")
    ax.set_ylabel(metric)
    once = ", one validation round each" if all(len(c.steps) == 1 for c in curves) else ""
    ax.set_title(f"validation {metric}: {len(curves)} trial(s){once}\nx: stopped by the scheduler", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, ncol=2 if two_columns else 1,
              frameon=False)
    return fig


def to_png(fig: Figure) -> bytes:
    """PNG bytes. No ``bbox_inches="tight"``: the figures lay themselves out, and a tight box
    costs a second full draw (a third of the drawing time)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# onto the parent run


def log_parent_figures(plan: SweepPlan, tracker: SweepTracker, trials: pd.DataFrame, best_id: str | None) -> str:
    """Draw and log what the sweep's search shows onto its parent run; returns the importance
    line for the console ('' when there is none). Never raises."""
    t0 = time.perf_counter()
    space = plan.space
    metric = f"best/{space.metric}"
    pngs: dict[str, bytes] = {}
    skipped: dict[str, str] = {}
    line = ""

    def attempt(name: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as e:  # a figure must never fail the sweep it describes
            log.warning("figure %s not drawn: %s: %s", name, type(e).__name__, e)
            return None

    if space.searcher == "grid":
        why = "grid sweep: the mean ± std table over seeds compares its grid points exactly"
        skipped.update({IMPORTANCE_TABLE: why, "parallel_coordinates": why})
    elif not space.param_space:
        skipped.update({IMPORTANCE_TABLE: "nothing is searched", "parallel_coordinates": "nothing is searched"})
    else:
        imp = attempt(IMPORTANCE_TABLE, lambda: parameter_importance(trials, space, metric, space.mode))
        if imp is not None and imp.table is None:
            skipped[IMPORTANCE_TABLE] = imp.reason
        elif imp is not None:
            table = imp.table
            assert table is not None
            if attempt(f"{IMPORTANCE_TABLE} (table)",
                       lambda: tracker.log_table(tracker.parent_id, IMPORTANCE_TABLE, table) or True):
                line = importance_line(imp)
            png = attempt(IMPORTANCE_TABLE, lambda: to_png(importance_figure(imp)))
            if png:
                pngs[IMPORTANCE_TABLE] = png
        if len(finished(trials, metric)) < 1:
            skipped["parallel_coordinates"] = "no finished trial"
        else:
            png = attempt("parallel_coordinates", lambda: to_png(
                parallel_coordinates_figure(trials, space, metric, space.mode, best_id)))
            if png:
                pngs["parallel_coordinates"] = png

    if plan.is_eval:
        skipped["validation_curves"] = "evaluation sweep: each trial reports validation once"
    else:
        curves = attempt("validation_curves", lambda: metric_histories(tracker.client, trials, space.metric))
        if curves is not None and not curves:
            skipped["validation_curves"] = "no trial's run has a validation history"
        elif curves:
            png = attempt("validation_curves", lambda: to_png(validation_curves_figure(curves, space.metric, best_id)))
            if png:
                pngs["validation_curves"] = png

    def write() -> bool:
        if pngs:
            with tempfile.TemporaryDirectory() as d:
                for name, png in pngs.items():
                    (Path(d) / f"{name}.png").write_bytes(png)
                tracker.client.log_artifacts(tracker.parent_id, d, "figures")
        if skipped:
            tracker.log_tags(tracker.parent_id, {"figures.skipped": "; ".join(f"{k}: {v}" for k, v in skipped.items())})
        return True

    attempt("figures (logging)", write)
    for name, why in skipped.items():
        log.info("parent run: no %s (%s)", name, why)
    log.info("parent-run sweep figures %s in %.2fs", sorted(pngs), time.perf_counter() - t0)
    return line
