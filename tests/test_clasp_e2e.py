"""End to end: a tiny stage-3 sweep (LASP vs the ASR baseline vs CLASP) and a stage-4 evaluation
sweep (query languages, --from-run the CLASP trial) through Ray Data, Ray Train, Tune and MLflow
on a 60-sentence local corpus with the local profile's real encoders, asserting on what MLflow
holds: the Table 2 layouts on the parent runs, per-trial metrics, transcripts and source links."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.sweep import main
from tests.test_e2e_sweep import common, runs, table

FIXED = ("corpus_options: {n_sentences: 60, n_speakers: 4}, epochs: 6, eval_every: 2, width: 64, lr: 3.0e-3, "
         "modality: combined, fusion: concat, ssl: hubert, text: labse, candidates: all")


def space(tmp: Path, name: str, body: str) -> str:
    path = tmp / f"{name}.yaml"
    path.write_text(f"workload: clasp\nfixed: {{{FIXED}}}\nmetric: val/loss\nmode: min\nsearcher: grid\n"
                    f"scheduler: {{type: none}}\nseeds: [0]\n{body}")
    return str(path)




@pytest.mark.slow
def test_stage3_and_stage4_sweeps(ray_local, tmp_path: Path) -> None:
    stage3 = space(tmp_path, "tiny_clasp_loss", "param_space:\n  system: {type: grid, values: [lasp, asr, clasp]}\n")
    assert main([stage3, *common(tmp_path)]) == 0
    client, parents, children = runs(tmp_path, "tiny_clasp_loss")
    assert len(parents) == 1 and len(children) == 3 and all(c.info.status == "FINISHED" for c in children)
    by_system = {c.data.params["system"]: c for c in children}
    for system, child in by_system.items():
        m = child.data.metrics
        assert 0 <= m["test/hits1"] <= 1 and 1 <= m["test/mean_rank"] <= 6  # 6 test items, all candidates
        assert 0 <= m["test/macro_f1_at_fixed"] <= 1 and 0 <= m["test/macro_f1_at_val"] <= 1
        s2t = "test/s2t/mean_rank" if system != "asr" else "test/asr/whisper_tiny_en/s2t/mean_rank"
        assert 1 <= m[s2t] <= 6  # each speech item against the 6 distinct test sentences
        assert "val/loss" in m and child.data.tags["data.dropped_items"] == "0"
    asr = by_system["asr"]
    assert 0 <= asr.data.metrics["test/asr/whisper_tiny_en/wer"] < 0.8  # eSpeak voices: WER ~0.3
    transcripts = table(client, asr.info.run_id, "asr_transcripts_whisper_tiny_en")
    assert len(transcripts["data"]) == 6 and all(row[2] for row in transcripts["data"])  # every test clip heard
    assert "model/model.pt" in {a.path for a in client.list_artifacts(by_system["clasp"].info.run_id, "model")}
    stage_table = table(client, parents[0].info.run_id, "table2_stage3_loss_and_asr")
    assert [row[0] for row in stage_table["data"]] == ["LASP (ours)", "ASR baseline: whisper_tiny_en", "CLASP (ours)"]
    assert {"meanR", "s→t HITS@1", "s→t meanR", "WER"} <= set(stage_table["columns"])
    assert "substitution.asr" in parents[0].data.tags

    # stage 4: the CLASP trial's model queried in German and Chinese, nothing trained again
    stage4 = space(tmp_path, "tiny_clasp_multilingual",
                   "param_space:\n  query_language: {type: grid, values: [de, zh]}\n")
    n_train = len(list((tmp_path / "ray_results" / "train").glob("train-*")))
    assert main([stage4, "--from-run", by_system["clasp"].info.run_id, *common(tmp_path)]) == 0
    assert len(list((tmp_path / "ray_results" / "train").glob("train-*"))) == n_train
    client, parents, children = runs(tmp_path, "tiny_clasp_multilingual")
    assert len(children) == 2 and {c.data.params["query_language"] for c in children} == {"de", "zh"}
    assert all(c.data.tags["source_run_id"] == by_system["clasp"].info.run_id for c in children)
    langs = table(client, parents[0].info.run_id, "table2_stage4_multilingual")
    assert [row[0] for row in langs["data"]] == ["German", "Chinese"]
