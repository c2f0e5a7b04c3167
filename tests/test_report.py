"""The console's per-trial table keeps the numbers when the parameters do not fit in 120 columns."""

from __future__ import annotations

import pandas as pd

from types import SimpleNamespace

from orchestrator.report import WIDTH, trial_rows, trials_text


def test_metrics_survive_the_width_cut_parameters_go_first() -> None:
    searched = ["margin_start", "margin_end", "semi_hard_share", "band_low", "band_high", "lr"]
    metric = "best/val/silhouette_labels"
    headline = ["test/transformed/map", "test/transformed/recall20", "test/original/map", "test/gain/map_pct"]
    rows = [{"trial": k + 1, "trial_id": f"t{k}", "status": "ok", metric: 0.41 + k / 100,
             **{h: 0.5 + k / 10 for h in headline}, **{p: 0.123456 * (k + 1) for p in searched}, "seed": 0}
            for k in range(3)]
    text = trials_text(pd.DataFrame(rows), searched, metric, headline, "t2")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    head = lines[0]
    for name in ("best val/silhouette_labels", "tr/map", "tr/recall20", "or/map", "gain/map_pct"):
        assert name in head, name
    assert "lr" not in head.split()  # the last parameter is what the cut removed
    assert lines[3].startswith("*")  # trial t2 is marked best


def test_trial_rows_carry_best_and_last_epoch_test_metrics() -> None:
    """Workload tables that show the last epoch beside the best checkpoint (CLASP stage 1) read
    both from these rows; only test metrics come along, not validation ones."""
    plan = SimpleNamespace(space=SimpleNamespace(metric="val/loss", mode="min"), searched=["modality"], n_trials=1)
    tracker = SimpleNamespace(state={"trials": {"t1": {
        "number": 1, "status": "ok", "config": {"modality": "ssl", "seed": 0}, "run_id": "r1",
        "metrics": {"best/val/loss": 0.2, "test/hits1": 0.9, "test_last/hits1": 0.8, "val/hits1": 0.7}}}})
    row = trial_rows(plan, tracker).iloc[0]  # type: ignore[arg-type]
    assert (row["test/hits1"], row["test_last/hits1"], row["modality"]) == (0.9, 0.8, "ssl")
    assert "val/hits1" not in row
