"""Table I's [8] rows: CLAP zero-shot ranks exactly as CLAP's own joint space does, and the
fine-tuned row trains CLAP's heads with a pairwise binary cross-entropy (footnote 10). On a tiny
random-weight ClapModel saved in the Hugging Face layout by the test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from orchestrator.encoders.base import build_encoder
from orchestrator.encoders.text import build_text_encoder
from tests.test_clap_encoder import save_tiny_clap
from workloads.speaker_text.clap_heads import ClapHeads, pair_bce
from workloads.speaker_text.config import SpeakerTextConfig
from workloads.speaker_text.workload import SpeakerTextWorkload


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory) -> str:
    return save_tiny_clap(tmp_path_factory.mktemp("clap"))


def test_clap_rows_read_both_clap_towers(tiny_clap: str) -> None:
    wl = SpeakerTextWorkload()
    for system in ("CLAP", "CLAP_ft"):
        cfg = SpeakerTextConfig(system=system, clap_model=tiny_clap)
        views = wl.data_spec(cfg, "paper").views
        assert (views["audio"].encoder, views["audio"].encoder_params) == ("clap_audio", {"model": tiny_clap, "output": "pooled"})
        assert (views["text"].encoder, views["text"].encoder_params) == ("clap_text", {"model": tiny_clap, "output": "pooled"})
    assert wl.epochs(SpeakerTextConfig(system="CLAP")) == 0 and wl.epochs(SpeakerTextConfig(system="CLAP_ft")) == 40
    assert wl.data_spec(SpeakerTextConfig(system="B03"), "paper").views["text"].encoder == "hf"


def test_zero_shot_is_clap_as_released(tiny_clap: str) -> None:
    """The untrained heads over the pooled views rank with CLAP's own (normalised) joint-space
    embeddings."""
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(int(48000 * d)).astype(np.float32) * 0.1 for d in (0.5, 0.8, 1.0)]
    texts = ["a deep male voice", "a woman speaking quickly", "a hoarse voice"]
    cfg = SpeakerTextConfig(system="CLAP", clap_model=tiny_clap)
    heads = ClapHeads(cfg).eval()
    pooled_a = build_encoder("clap_audio", model=tiny_clap, output="pooled").embed(waves)
    pooled_t = build_text_encoder("clap_text", model=tiny_clap, output="pooled").embed_texts(texts)
    s, t = heads.search_space(pooled_a, pooled_t, cfg)
    ref_a = build_encoder("clap_audio", model=tiny_clap, output="projected", normalize=True).embed(waves)
    ref_t = build_text_encoder("clap_text", model=tiny_clap, output="projected", normalize=True).embed_texts(texts)
    np.testing.assert_allclose(s, ref_a, atol=1e-5)
    np.testing.assert_allclose(t, ref_t, atol=1e-5)


def test_pair_bce_by_hand() -> None:
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    labels = torch.tensor([3, 3])  # one speaker: every pair is a target
    got = pair_bce(s, t, labels, torch.tensor(2.0), torch.tensor(-1.0))
    logits = [2 * 1 - 1, 2 * 0.6 - 1, 2 * 0 - 1, 2 * 0.8 - 1]
    want = np.mean([math.log1p(math.exp(-z)) for z in logits])  # -log sigmoid(z)
    assert got.item() == pytest.approx(want, rel=1e-6)
    labels = torch.tensor([3, 4])  # two speakers: the off-diagonal pairs are non-targets
    got = pair_bce(s, t, labels, torch.tensor(2.0), torch.tensor(-1.0))
    want = np.mean([math.log1p(math.exp(-logits[0])), math.log1p(math.exp(logits[1])),
                    math.log1p(math.exp(logits[2])), math.log1p(math.exp(-logits[3]))])
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_fine_tuning_trains_the_heads_with_bce(tiny_clap: str) -> None:
    cfg = SpeakerTextConfig(system="CLAP_ft", clap_model=tiny_clap, lr=1e-2)
    wl = SpeakerTextWorkload()
    model = wl.build_model(cfg, {"speaker": 16, "text": 24, "n_speakers": 4})
    assert isinstance(model, ClapHeads)
    opt, _ = wl.configure_optimizer(model, cfg, None)
    g = torch.Generator().manual_seed(0)
    batch = {"speaker": torch.randn(8, 16, generator=g), "text": torch.randn(8, 24, generator=g),
             "labels": torch.arange(4).repeat(2)}
    losses = []
    for _ in range(30):
        loss = wl.loss(model(batch), batch, cfg, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert model.bias.item() != 0.0  # the bias and the scale learn too


def test_cts_systems_has_the_clap_rows_on_the_paper_profile_only(tmp_path) -> None:
    from orchestrator.plan import Invocation, resolve

    local = resolve(Invocation(sweep="cts_systems"))
    assert local.space.param_space["system"].values == ["B00", "B01", "B02", "B03", "C01", "C02"]
    assert local.n_trials == 18 and "no CLAP weights ship" in local.profile.substitutions["clap_rows"]
    paper = resolve(Invocation(sweep="cts_systems", profile="paper", data_root=str(tmp_path)))
    assert paper.space.param_space["system"].values[:2] == ["CLAP", "CLAP_ft"] and paper.n_trials == 24
    assert "binary cross-entropy" in paper.profile.choices["clap_rows"]


@pytest.mark.slow
def test_clap_rows_end_to_end(ray_local, tmp_path, tiny_clap: str) -> None:
    """[8] zero-shot and fine-tuned through extraction (both CLAP towers), Train, Tune and MLflow:
    Table I names them as the paper does."""
    from orchestrator.sweep import main
    from tests.test_e2e_sweep import common, runs, table
    from tests.test_speaker_text_e2e import TINY

    spec = tmp_path / "tiny_clap_rows.yaml"
    spec.write_text(f"""
workload: speaker_text
fixed: {{corpus_options: {TINY}, epochs: 2, eval_every: 1, batch_size: 8, tsne_speakers: 0, clap_model: {tiny_clap}}}
param_space:
  system: {{type: grid, values: [CLAP, CLAP_ft]}}
searcher: grid
scheduler: {{type: none}}
metric: val/map10
mode: max
seeds: [0]
""")
    assert main([str(spec), *common(tmp_path)]) == 0
    client, parents, children = runs(tmp_path, "tiny_clap_rows")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    by_system = {c.data.params["system"]: c for c in children}
    zs = [h.step for h in client.get_metric_history(by_system["CLAP"].info.run_id, "val/map10")]
    ft = [h.step for h in client.get_metric_history(by_system["CLAP_ft"].info.run_id, "val/map10")]
    assert zs == [0] and ft == [0, 1]  # zero-shot is validated once, untrained
    t1 = table(client, parents[0].info.run_id, "table_1")
    rows = {r[0]: dict(zip(t1["columns"], r)) for r in t1["data"]}
    assert list(rows) == ["[8] CLAP", "[8] CLAP (fine-tuned)", "chance"]
    assert rows["[8] CLAP"]["Speaker/Audio enc."] == "HTSAT [13] (CLAP)"
    assert rows["[8] CLAP (fine-tuned)"]["Loss"].startswith("BCE")
