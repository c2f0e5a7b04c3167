"""The speaker-text workload end to end on a tiny synthetic corpus: a Table I grid (B00's LDA,
C02's SupCon) and a fusion-N evaluation sweep of the trained C02 model (--from-run), through Ray
Data (GE2E + MiniLM views), Ray Train, Tune (grid, then Optuna) and MLflow; asserts on what MLflow
holds. Trials cost ~15-30 s of start-up each on 2 cores, so the test runs as few as cover the
paths: one closed-form fit, one trained model, three evaluation-only trials."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.sweep import main
from tests.test_e2e_sweep import common, runs, table

TINY = "{n_train: 8, n_val: 4, n_test: 5, utts_per_speaker: 3, n_descriptions: 3, seed: 0}"
FIXED = (f"corpus_options: {TINY}, epochs: 2, eval_every: 1, proj_dim: 32, batch_size: 8, pk_speakers: 4, "
         "pk_utterances: 2, tsne_speakers: 3")




@pytest.mark.slow
def test_table_one_grid_and_fusion_n_evaluation_sweep(ray_local, tmp_path: Path) -> None:
    spec = tmp_path / "tiny_cts.yaml"
    spec.write_text(f"""
workload: speaker_text
fixed: {{{FIXED}}}
param_space:
  system: {{type: grid, values: [B00, C02]}}
searcher: grid
scheduler: {{type: none}}
metric: val/map10
mode: max
seeds: [0]
""")
    assert main([str(spec), *common(tmp_path)]) == 0
    client, parents, children = runs(tmp_path, "tiny_cts")
    assert len(parents) == 1 and len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    parent = parents[0]
    assert "GE2E" in parent.data.tags["substitution.speaker_encoder"]
    assert parent.data.tags["choice.fusion"].startswith("fused query = the similarity-weighted average")
    assert {"choice.table_layout", "choice.aam_softmax", "choice.sampler"} <= set(parent.data.tags)
    for c in children:
        m = c.data.metrics
        for p in ("", "utt/"):  # speaker items (the paper's layout), utterances x descriptions
            for d in ("s2t", "t2s", "s2t_fused", "t2s_fused"):
                assert 0 <= m[f"test/{p}{d}/map10"] <= 1 and m[f"test/{p}{d}/meanr"] >= 1
        # one item per test speaker: a random ranking's MeanR is (5 + 1) / 2
        assert m["test/chance/s2t/meanr"] == m["test/chance/t2s/meanr"] == 3.0
        assert m["test/n_speakers"] == 5 and m["test/n_utterances"] == 15 and m["test/n_descriptions"] == 15
        assert not client.list_artifacts(c.info.run_id, "figures")  # Fig. 3 is drawn on the parent
        assert "tables/table_1.json" in {a.path for a in client.list_artifacts(c.info.run_id, "tables")}
        history = client.get_metric_history(c.info.run_id, "val/map10")
        if c.data.params["system"] == "B00":  # fitted, not trained: validated once
            assert [h.step for h in history] == [0] and m["test/lda_dim"] == 7  # 8 speakers -> 7 components
        else:
            assert [h.step for h in history] == [0, 1]
    assert 0 <= children[0].data.metrics["test/text_eer"] <= 1
    # Fig. 3 once per system, from its first seed's best weights
    for system in ("B00", "C02"):
        assert [a.path for a in client.list_artifacts(parent.info.run_id, f"figures/{system}")] == \
            [f"figures/{system}/tsne.png"]
    t1 = table(client, parent.info.run_id, "table_1")
    rows = {r[0]: dict(zip(t1["columns"], r)) for r in t1["data"]}
    assert list(rows) == ["B00", "C02", "chance"] and rows["C02"]["seeds"] == 1
    assert rows["chance"]["s→t MeanR"] == rows["chance"]["t→s (fusion) MeanR"] == "3.000"
    assert rows["B00"]["Speaker/Audio enc."] == "ECAPA-TDNN [ge2e]" and rows["C02"]["Loss"].startswith("L_CTS,tot^sup")
    by_system = {c.data.params["system"]: c for c in children}
    assert rows["B00"]["s→t mAP10 (%)"] == f"{100 * by_system['B00'].data.metrics['test/s2t/map10']:.3f}"
    assert rows["C02"]["t→s (fusion) MeanR"] == f"{by_system['C02'].data.metrics['test/t2s_fused/meanr']:.3f}"
    assert rows["C02"]["t→s MeanR [utt]"] == f"{by_system['C02'].data.metrics['test/utt/t2s/meanr']:.3f}"

    # fusion N on the trained C02 model (--from-run: nothing is trained again), evaluated per N;
    # the curve against N on the parent
    spec = tmp_path / "tiny_fusion.yaml"
    spec.write_text(f"""
workload: speaker_text
fixed: {{corpus_options: {TINY}, tsne_speakers: 3}}
param_space:
  fusion_n: {{type: randint, low: 1, high: 8}}
searcher: optuna
num_samples: 3
metric: val/utt/t2s_fused/map10
mode: max
""")
    source = by_system["C02"].info.run_id
    assert main([str(spec), "--from-run", source, *common(tmp_path)]) == 0
    client, parents, evals = runs(tmp_path, "tiny_fusion")
    parent = parents[0]
    assert len(evals) == 3 and parent.data.tags["sweep_kind"] == "evaluation"
    assert all(c.data.tags["source_run_id"] == source and c.data.params["system"] == "C02" for c in evals)
    assert "figures/fusion_curve.png" in {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    curve = table(client, parent.info.run_id, "fusion_n")
    ns = [r[curve["columns"].index("fusion_n")] for r in curve["data"]]
    assert ns == sorted(ns) and set(ns) == {int(c.data.params["fusion_n"]) for c in evals}
    # the unfused metrics do not depend on N: they are the source trial's
    assert {round(c.data.metrics["test/t2s/map10"], 9) for c in evals} == \
        {round(by_system["C02"].data.metrics["test/t2s/map10"], 9)}
