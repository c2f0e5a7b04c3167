"""A real tiny Optuna sweep (Ray Tune, ASHA, MLflow): its parent run holds the search figures and
the importance table, and the parent and child runs name the corpus as an MLflow dataset input
whose digest is the view's cache key."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.sweep import main
from tests.test_e2e_sweep import common, runs


def test_a_tiny_optuna_sweep_logs_figures_importance_and_its_dataset(ray_local, tmp_path: Path) -> None:
    spec = tmp_path / "tiny_figures.yaml"
    spec.write_text("""
workload: qbe
fixed: {dataset: swedish, n_words: 16, epochs: 4, eval_every: 2, batch_size: 64}
metric: val/silhouette_labels
mode: max
param_space:
  lr: {type: loguniform, low: 3.0e-4, high: 3.0e-3}
  margin_end: {type: uniform, low: 0.6, high: 1.0}
searcher: optuna
scheduler: {type: none}
num_samples: 2
""")
    # two validation rounds per trial (epochs 2 and 4): curves, not points
    assert main([str(spec), *common(tmp_path)]) == 0
    client, parents, children = runs(tmp_path, "tiny_figures")
    parent = parents[0]
    pid = parent.info.run_id
    figures = {a.path for a in client.list_artifacts(pid, "figures")}
    assert {"figures/parameter_importance.png", "figures/parallel_coordinates.png",
            "figures/validation_curves.png"} <= figures
    for f in figures:
        assert Path(client.download_artifacts(pid, f, str(tmp_path))).read_bytes()[:4] == b"\x89PNG"
    tables = {a.path for a in client.list_artifacts(pid, "tables")}
    assert {"tables/parameter_importance.json", "tables/parameter_importance.md"} <= tables
    imp = json.loads(Path(client.download_artifacts(pid, "tables/parameter_importance.json",
                                                    str(tmp_path))).read_text())
    assert sorted(r[0] for r in imp["data"]) == ["lr", "margin_end"]
    assert "figures.skipped" not in parent.data.tags
    assert "parameter importance (PED-ANOVA" in parent.data.tags["mlflow.note.content"]

    extraction = json.loads(Path(client.download_artifacts(pid, "data/extraction.json", str(tmp_path))).read_text())
    cache_key = Path(extraction[0]["cache_dir"]).name  # the view's content-addressed cache entry
    (dataset,) = client.get_run(pid).inputs.dataset_inputs
    assert (dataset.dataset.name, dataset.dataset.digest) == ("qbe_local_swedish", cache_key)
    profile = json.loads(dataset.dataset.profile)
    assert set(profile["splits"]) == {"train", "val", "test"} and profile["views"][0]["cache_key"] == cache_key
    for child in children:
        assert [d.dataset.digest for d in client.get_run(child.info.run_id).inputs.dataset_inputs] == [cache_key]
