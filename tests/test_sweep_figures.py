"""The parent run's search figures (orchestrator.sweep_figures) from hand-built trial rows: the
importance table ranks what determines the metric, the figures have their axes, nothing raises."""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from orchestrator import sweep_figures as sf
from orchestrator.config import SearchSpace

METRIC = "best/val/score"


def space(param_space: dict, searcher: str = "optuna", mode: str = "max") -> SearchSpace:
    return SearchSpace(name="toy", workload="qbe", param_space=param_space, searcher=searcher,
                       metric="val/score", mode=mode)


def rows(n: int, make, statuses: dict[int, str] | None = None) -> pd.DataFrame:
    """Trial rows as orchestrator.report.trial_rows makes them (searched params as columns)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        params, value = make(rng, i)
        out.append({"trial": i + 1, "trial_id": f"t{i}", "status": (statuses or {}).get(i, "ok"), "seed": 0,
                    **params, METRIC: value, "run_id": f"run{i}"})
    df = pd.DataFrame(out)
    df.loc[df["status"] == "failed", METRIC] = None
    return df


SPACE3 = {"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
          "margin": {"type": "uniform", "low": 0.0, "high": 1.0},
          "pool": {"type": "choice", "values": ["mean", "max", "attn"]}}


def determined_by_margin(rng, i):
    m = float(rng.uniform())
    return {"lr": float(10 ** rng.uniform(-5, -2)), "margin": m, "pool": ["mean", "max", "attn"][i % 3]}, m


def test_the_parameter_that_determines_the_metric_ranks_first() -> None:
    imp = sf.parameter_importance(rows(20, determined_by_margin), space(SPACE3), METRIC, "max")
    t = imp.table
    assert t is not None and list(t.columns[:2]) == ["parameter", "rank"]
    assert t.iloc[0]["parameter"] == "margin" and t.iloc[0]["importance"] > 0.6
    assert t["importance"].sum() == pytest.approx(1.0)
    assert imp.n_trials == 20 and "PED-ANOVA: best 25% (5 of 20 trials)" in imp.method
    # minimising the same metric: what matters is still the margin
    imp_min = sf.parameter_importance(rows(20, determined_by_margin), space(SPACE3, mode="min"), METRIC, "min")
    assert imp_min.table.iloc[0]["parameter"] == "margin"  # type: ignore[union-attr]
    assert "margin" in sf.importance_line(imp) and sf.importance_line(imp).startswith("parameter importance")


def test_a_constant_parameter_gets_zero_and_failed_trials_are_left_out() -> None:
    def make(rng, i):
        m = float(rng.uniform())
        return {"lr": 1e-3, "margin": m, "pool": "max" if m > 0.5 else "mean"}, m

    df = rows(12, make, statuses={3: "failed", 7: "failed", 9: "stopped-early", 10: "pending"})
    imp = sf.parameter_importance(df, space(SPACE3), METRIC, "max")
    t = imp.table.set_index("parameter")  # type: ignore[union-attr]
    assert t.loc["lr", "importance"] == 0.0 and "one value" in t.loc["lr", "note"]
    assert t.loc["margin", "importance"] > 0 and t.loc["pool", "importance"] > 0
    assert imp.n_trials == 9  # 12 less 2 failed less 1 pending; the stopped one counts
    assert "left out: 2 failed" in imp.method


def test_single_parameter_categorical_and_too_few_trials() -> None:
    one = {"pool": {"type": "choice", "values": ["mean", "max", [1, 5]]}}
    df = rows(6, lambda rng, i: ({"pool": ["mean", "max", [1, 5]][i % 3]}, float(i % 3)))
    imp = sf.parameter_importance(df, space(one), METRIC, "max")
    assert imp.table is not None and list(imp.table["parameter"]) == ["pool"]
    assert imp.table.iloc[0]["importance"] == pytest.approx(1.0) and "by construction" in imp.table.iloc[0]["note"]
    fig = sf.parallel_coordinates_figure(df, space(one), METRIC, "max", "t2")
    cat = fig.axes[1]
    assert cat.get_title() == "pool" and [t.get_text() for t in cat.get_yticklabels()] == ["mean", "max", "[1, 5]"]

    few = sf.parameter_importance(rows(3, determined_by_margin, {1: "failed", 2: "failed"}), space(SPACE3),
                                  METRIC, "max")
    assert few.table is None and few.reason.startswith("1 finished trial(s)")
    flat = sf.parameter_importance(rows(4, lambda rng, i: ({"margin": i / 4, "lr": 1e-3, "pool": "max"}, 0.5)),
                                   space(SPACE3), METRIC, "max")
    assert flat.table is None and "every finished trial" in flat.reason


def test_figures_have_their_axes_scales_and_labels() -> None:
    df = rows(8, determined_by_margin, statuses={2: "stopped-early", 5: "failed"})
    imp = sf.parameter_importance(df, space(SPACE3), METRIC, "max")
    bars = sf.importance_figure(imp)
    assert len(bars.axes) == 1
    top = imp.table.iloc[0]["parameter"]  # type: ignore[union-attr]
    assert [t.get_text() for t in bars.axes[0].get_yticklabels()][-1] == top  # the top bar

    fig = sf.parallel_coordinates_figure(df, space(SPACE3), METRIC, "max", "t0")
    lines, *axes = fig.axes
    assert [a.get_title() for a in axes] == ["lr", "margin", "pool", METRIC]
    assert axes[0].get_yscale() == "log" and axes[0].get_ylim() == pytest.approx((1e-5, 1e-2))
    assert axes[1].get_yscale() == "linear"
    assert [t.get_text() for t in axes[2].get_yticklabels()] == ["mean", "max", "attn"]
    assert len(lines.get_lines()) == 7  # the failed trial has no metric: no line
    assert sum(ln.get_color() == "red" for ln in lines.get_lines()) == 1

    curves = [sf.Curve(1, "t0", "ok", [4, 9], [0.2, 0.5]), sf.Curve(2, "t1", "stopped-early", [4], [0.1]),
              sf.Curve(3, "t2", "failed", [4, 9], [0.1, float("nan")]), sf.Curve(4, "t3", "ok", [4, 9], [0.3, 0.4])]
    fig = sf.validation_curves_figure(curves[::-1], "val/score", "t0")
    ax, = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["trial 1 (best)", "trial 4", "trial 3 (failed)", "trial 2 (stopped)"]
    assert ax.get_ylabel() == "val/score"
    assert sum(ln.get_marker() == "x" for ln in ax.get_lines()) == 1
    for f in (bars, fig):
        assert sf.to_png(f)[:8] == b"\x89PNG\r\n\x1a\n"


class FakeTracker:
    """What log_parent_figures uses of SweepTracker: a client with metric histories and
    log_artifacts, log_table and log_tags."""

    def __init__(self, histories: dict[str, list[float]], fail_history: bool = False) -> None:
        self.parent_id = "parent"
        self.tables: dict[str, pd.DataFrame] = {}
        self.tags: dict[str, str] = {}
        self.figures: list[str] = []
        hist = {run: [SimpleNamespace(step=4 + 5 * k, value=v, timestamp=k) for k, v in enumerate(vals)]
                for run, vals in histories.items()}

        def get_metric_history(run_id: str, key: str) -> list:
            assert key == "val/score"
            if fail_history:
                raise RuntimeError("store down")
            return hist.get(run_id, [])

        def log_artifacts(run_id: str, d: str, path: str) -> None:
            from pathlib import Path

            self.figures += [f"{path}/{p.name}" for p in Path(d).iterdir()]

        self.client = SimpleNamespace(get_metric_history=get_metric_history, log_artifacts=log_artifacts)

    def log_table(self, run_id: str, name: str, df: pd.DataFrame) -> None:
        self.tables[name] = df

    def log_tags(self, run_id: str, tags: dict) -> None:
        self.tags.update(tags)


def plan(sp: SearchSpace, is_eval: bool = False) -> SimpleNamespace:
    return SimpleNamespace(space=sp, is_eval=is_eval)


def test_a_20_trial_sweep_gets_all_three_quickly_and_a_grid_sweep_only_curves() -> None:
    df = rows(20, determined_by_margin, statuses={4: "stopped-early", 6: "stopped-early", 11: "failed"})
    histories = {f"run{i}": [0.1 * i, 0.1 * i + 0.05][: 1 if i in (4, 6) else 2] for i in range(20)}
    # once to import what a sweep's driver has imported already (MLflow, sklearn under
    # optuna.importance, matplotlib's fonts: ~4 s on 2 cores), then timed
    sf.log_parent_figures(plan(space(SPACE3)), FakeTracker(histories), df, "t0")  # type: ignore[arg-type]
    tracker = FakeTracker(histories)
    t0 = time.process_time()  # CPU time: the other users of these 2 shared cores do not count
    line = sf.log_parent_figures(plan(space(SPACE3)), tracker, df, "t0")  # type: ignore[arg-type]
    took = time.process_time() - t0
    assert sorted(tracker.figures) == ["figures/parallel_coordinates.png", "figures/parameter_importance.png",
                                       "figures/validation_curves.png"]
    assert list(tracker.tables) == ["parameter_importance"] and line.startswith("parameter importance")
    assert "figures.skipped" not in tracker.tags
    assert took < 1.5, took  # ~0.45 s of CPU on this machine

    grid = FakeTracker({f"run{i}": [0.1, 0.2] for i in range(4)})
    gsp = space({"lr": {"type": "grid", "values": [1e-3, 1e-4]}}, searcher="grid")
    gdf = rows(4, lambda rng, i: ({"lr": [1e-3, 1e-4][i % 2]}, 0.1 * i))
    assert sf.log_parent_figures(plan(gsp), grid, gdf, "t3") == ""  # type: ignore[arg-type]
    assert grid.figures == ["figures/validation_curves.png"] and not grid.tables
    assert "parameter_importance: grid sweep" in grid.tags["figures.skipped"]


def test_drawing_failures_are_warnings_naming_the_figure(caplog: pytest.LogCaptureFixture) -> None:
    df = rows(5, determined_by_margin)
    tracker = FakeTracker({}, fail_history=True)
    with caplog.at_level(logging.WARNING, logger="orchestrator.sweep_figures"):
        sf.log_parent_figures(plan(space(SPACE3)), tracker, df, "t0")  # type: ignore[arg-type]
    assert "figure validation_curves not drawn: RuntimeError: store down" in caplog.text
    assert "figures/parameter_importance.png" in tracker.figures  # the others are still drawn
    evaluation = FakeTracker({})
    one = rows(1, determined_by_margin)
    sf.log_parent_figures(plan(space(SPACE3), is_eval=True), evaluation, one, "t0")  # type: ignore[arg-type]
    assert evaluation.figures == ["figures/parallel_coordinates.png"]
    skipped = evaluation.tags["figures.skipped"]
    assert "parameter_importance: 1 finished trial(s)" in skipped and "validation_curves: evaluation sweep" in skipped


def test_dataset_inputs_name_the_corpus_digest_its_view_cache_keys_and_count_splits(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from mlflow.tracking import MlflowClient

    from orchestrator.sweep import PreparedData
    from orchestrator.sweep_inputs import digest, log_child_inputs, log_parent_inputs
    from orchestrator.views import DataSpec, ViewSpec

    manifest = tmp_path / "manifest.parquet"
    pq.write_table(pa.table({"id": list("abcdef"), "split": ["train"] * 3 + ["val", "test", "test"]}), manifest)
    views = {"ssl": ViewSpec("audio", "enc_a"), "text": ViewSpec("text", "minilm")}
    wide = DataSpec("toy_corpus", views)
    narrow = DataSpec("toy_corpus", {"ssl": views["ssl"]})  # a trial that reads one view
    ck = wide.corpus_key()
    keys = {"ssl": "a" * 20, "text": "b" * 20}
    data = PreparedData(manifests={ck: str(manifest)}, results={
        wide.view_key(v): (wide, v, SimpleNamespace(key=keys[v], corpus_fingerprint="fp", encoder_id=f"e-{v}",
                                                    modality=views[v].modality, n_items=6, quarantined=[]))
        for v in views})
    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    exp = client.create_experiment("toy")
    parent, child_wide, child_narrow = (client.create_run(exp).info.run_id for _ in range(3))
    tracker = SimpleNamespace(client=client, parent_id=parent, state={"trials": {
        "t1": {"run_id": child_wide, "config": {"views": "both"}},
        "t2": {"run_id": child_narrow, "config": {"views": "ssl"}}, "t3": {"run_id": None, "config": {}}}})
    wl = SimpleNamespace(config_cls=SimpleNamespace(model_validate=lambda c: c),
                         data_spec=lambda cfg, profile: wide if cfg["views"] == "both" else narrow)
    log_parent_inputs(tracker, parent, data)  # type: ignore[arg-type]
    log_child_inputs(SimpleNamespace(inv=SimpleNamespace(profile="local")), wl, tracker)  # type: ignore[arg-type]
    log_child_inputs(SimpleNamespace(inv=SimpleNamespace(profile="local")), wl, tracker)  # type: ignore[arg-type]

    def inputs(run_id: str) -> list:
        return client.get_run(run_id).inputs.dataset_inputs

    (p,) = inputs(parent)
    assert p.dataset.name == "toy_corpus" and p.dataset.source_type == "local"
    assert p.dataset.digest == digest(list(keys.values())) and len(p.dataset.digest) == 20
    assert [(t.key, t.value) for t in p.tags] == [("mlflow.data.context", "train")]
    profile = json.loads(p.dataset.profile)
    assert profile["splits"] == {"test": 2, "train": 3, "val": 1}
    assert [v["cache_key"] for v in profile["views"]] == [keys["ssl"], keys["text"]]
    assert [i.dataset.digest for i in inputs(child_wide)] == [p.dataset.digest]  # once, though logged twice
    assert [i.dataset.digest for i in inputs(child_narrow)] == [keys["ssl"]]  # one view: its cache key
