"""End-to-end (Ray Train, Tune, MLflow) on the local QbE profile: what the paper comparison needs to
find in MLflow after a run -- the per-epoch semi-hard fallback share, the validation silhouette of
the word labels, the thesis' AP@20, the last-epoch test beside the best, and the declared choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.sweep import main
from tests.test_e2e_sweep import runs


def test_qbe_trial_logs_fallback_share_last_epoch_test_and_choices(ray_local, tmp_path: Path) -> None:
    # a band no cosine reaches: every semi-hard slot falls back to a random negative
    spec = tmp_path / "tiny_qbe.yaml"
    spec.write_text("""
workload: qbe
fixed: {dataset: swedish, n_words: 16, epochs: 10, eval_every: 5, batch_size: 64, semi_hard_share: 1.0,
        band_low: -1.0, band_high: -0.99}
param_space:
  lr: {type: grid, values: [1.0e-3]}
searcher: grid
scheduler: {type: none}
metric: val/silhouette_labels
mode: max
""")
    common = ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--cache-dir", str(tmp_path / "cache"),
              "--storage-path", str(tmp_path / "ray_results")]
    assert main([str(spec), *common]) == 0
    client, parents, children = runs(tmp_path, "tiny_qbe")
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    run_id = children[0].info.run_id
    share = client.get_metric_history(run_id, "train/semi_hard_fallback_share")
    assert [(h.step, h.value) for h in share] == [(4, 1.0), (9, 1.0)]
    assert [h.step for h in client.get_metric_history(run_id, "val/silhouette_labels")] == [4, 9]
    m = children[0].data.metrics
    for key in ("transformed/map", "transformed/map20", "transformed/recall20", "original/map20"):
        assert 0.0 <= m[f"test/{key}"] <= 1.0 and 0.0 <= m[f"test_last/{key}"] <= 1.0
    assert m["test_last/epoch"] == 9 and m["best_epoch"] in (4, 9)
    if m["best_epoch"] == 9:  # the last epoch was the best: the same weights were tested
        assert m["test_last/transformed/map"] == pytest.approx(m["test/transformed/map"])
    tags = parents[0].data.tags
    assert "random negative" in tags["choice.semi_hard_fallback"]
    assert "anchor word" in tags["choice.anchor_sampling"]
    assert children[0].data.params["band_mode"] == "cosine"
