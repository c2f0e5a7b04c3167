"""The console's per-trial table keeps the numbers when the parameters do not fit in 120 columns."""

from __future__ import annotations

import pandas as pd

from types import SimpleNamespace

from orchestrator.report import NOTE_LIMIT, WIDTH, markdown_table, run_page_note, trial_rows, trials_text


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


def test_markdown_tables_and_the_run_page_note() -> None:
    df = pd.DataFrame({"System": ["B03", "a|b"], "mAP": [0.123456, float("nan")], "n": [3, 4]})
    assert markdown_table(df).splitlines() == ["| System | mAP | n |", "|---|---|---|", "| B03 | 0.1235 | 3 |",
                                               "| a\\|b |  | 4 |"]
    trials = pd.DataFrame({"trial": [1, 2], "status": ["ok", "ok"], "lr": [1e-3, 3e-4], "seed": [0, 0],
                           "best/val/x": [0.9, 0.8], "test/x": [0.85, 0.7]})
    note = run_page_note(["== s (w, profile local): 2 of 2 trial(s) ok ==", "substitutions: enc: A -> B"], trials,
                         ["lr"], "best/val/x", ["test/x"], "t1", "max", {"table_1": (df, ["System", "mAP"])})
    assert note.startswith("### s (w, profile local): 2 of 2 trial(s) ok\n\nBest trial `t1`")
    assert "**table_1** (`tables/table_1.md`)" in note and "| trial | status | lr | seed | best/val/x | test/x |" in note
    assert note.endswith("_substitutions: enc: A -> B_")
    huge = pd.DataFrame({"System": ["x" * 200] * 60})  # more than a tag holds: named, not cut mid-table
    note = run_page_note(["== s =="], trials, ["lr"], "best/val/x", [], None, "max", {"big": (huge, ["System"])})
    assert len(note) <= NOTE_LIMIT and note.endswith("Not shown here (too long for a run description): **big** "
                                                     "(`tables/big.md`)")
