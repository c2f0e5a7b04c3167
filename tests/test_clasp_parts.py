"""CLASP's parts on hand-made inputs: the fusion encoder network (shapes, gating weights), the two
losses (Huber; contrastive with the temperature dividing the logits), the seeded candidate
sampler, Macro-F1 and its validation threshold, the ranking in both regimes, the config's
checks and the Table 2 layouts built from trial rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from sklearn.metrics import f1_score

from workloads.clasp.candidates import negatives_of, sample_candidates
from workloads.clasp.config import ClaspConfig
from workloads.clasp.fusion import FusionEncoder
from workloads.clasp.losses import Temperature, contrastive_loss, huber_loss
from workloads.clasp.metrics import best_threshold, macro_f1, pair_scores, ranks_all, ranks_sampled
from workloads.clasp.tables import summary_tables

# ------------------------------------------------------------------------------------------------
# fusion encoder network


BOTH = {"ssl": 12, "spectrogram": 20}


@pytest.mark.parametrize("fusion,dims", [("concat", BOTH), ("gating", BOTH), ("gating_lstm", BOTH),
                                         ("concat", {"ssl": 12}), ("concat", {"spectrogram": 20})])
def test_fusion_output_shapes(fusion: str, dims: dict[str, int]) -> None:
    torch.manual_seed(0)
    net = FusionEncoder(dims, out_dim=7, fusion=fusion, width=16)
    inputs = {m: torch.randn(5, d) for m, d in dims.items()}
    out, weights = net.forward_with_weights(inputs)
    assert out.shape == (5, 7) and torch.isfinite(out).all()
    assert net.modalities == [m for m in ("ssl", "spectrogram") if m in dims]
    if fusion.startswith("gating"):
        assert weights is not None and weights.shape == (5, 2, 7)
    else:
        assert weights is None
    with pytest.raises(KeyError, match="missing"):
        net({})


def test_gating_weights_sum_to_one_and_respond_to_inputs() -> None:
    torch.manual_seed(0)
    net = FusionEncoder({"ssl": 6, "spectrogram": 9}, out_dim=4, fusion="gating", width=8).eval()
    a = {"ssl": torch.randn(16, 6), "spectrogram": torch.randn(16, 9)}
    with torch.no_grad():
        out, w = net.forward_with_weights(a)
        h = [net.fusion.mix(net.branches[m](a[m])) for m in ("ssl", "spectrogram")]
        cands = torch.stack([c(x) for c, x in zip(net.fusion.candidates, h)], dim=1)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(16, 4))
    assert bool(((w > 0) & (w < 1)).all())
    # the output is the weighted average of the two candidates, per dimension
    torch.testing.assert_close(out, (w * cands).sum(dim=1))
    # the weights depend on the item (gates read both inputs), not one global mix
    assert float(w[:, 0].std(dim=0).mean()) > 1e-3


def test_lstm_gating_hand_case() -> None:
    """The notebook's gating on numbers worked by hand: candidates = the branch outputs (identity
    maps), every gate's weights 0 and bias 0 (input and forget gates 0.5), cell = tanh(x), weight
    logits = their bias (0, 0, ln 2, ln 2) -> one softmax over all four entries: 1/6, 1/6, 1/3, 1/3.
    x1 = (1, 0): x1' = 0.5 tanh(x1) + 0.5 x1 = (0.5 * 0.761594 + 0.5, 0) = (0.880797, 0);
    x2 = (0, 2): x2' = (0, 0.5 * 0.964028 + 1) = (0, 1.482014);
    out = (0.880797 / 6, 1.482014 / 3) = (0.146800, 0.494005)."""
    from workloads.clasp.fusion import LSTMGatingFusion

    f = LSTMGatingFusion(2, width=2, out_dim=2, dropout=0.0, activation="relu").eval()
    with torch.no_grad():
        for lin in [*f.candidates, *f.cells]:
            lin.weight.copy_(torch.eye(2))
            lin.bias.zero_()
        for lin in [*f.input_gates, *f.forget_gates, f.weight]:
            lin.weight.zero_()
            lin.bias.zero_()
        f.weight.bias.copy_(torch.tensor([0.0, 0.0, math.log(2), math.log(2)]))
        out, w = f([torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])])
    torch.testing.assert_close(w, torch.tensor([[[1 / 6, 1 / 6], [1 / 3, 1 / 3]]]))
    torch.testing.assert_close(out, torch.tensor([[0.146800, 0.494005]]), atol=1e-6, rtol=0)


def test_lstm_gating_weights_sum_to_one_over_everything() -> None:
    from workloads.clasp.workload import ClaspNet

    torch.manual_seed(0)
    cfg = ClaspConfig(fusion="gating_lstm", width=8)
    net = ClaspNet(cfg, {"ssl": 6, "spectrogram": 9}, 4).eval()
    a = {"ssl": torch.randn(16, 6), "spectrogram": torch.randn(16, 9)}
    with torch.no_grad():
        _, w = net.encoder.forward_with_weights(a)
    torch.testing.assert_close(w.sum(dim=(1, 2)), torch.ones(16))  # one softmax over 2 x 4 entries
    rng = np.random.default_rng(0)
    data = _tiny_split(rng.standard_normal((16, 4)).astype(np.float32))
    data.ssl, data.spectrogram = a["ssl"].numpy(), a["spectrogram"].numpy()
    _, share = net.embed(data)
    # the per-modality share of all weight, averaged over items (not the ~1/8 mean entry)
    np.testing.assert_allclose(share, w.sum(dim=2).mean(dim=0).numpy(), rtol=1e-5)
    assert share.sum() == pytest.approx(1.0)


def test_gating_needs_two_modalities_and_config_says_so() -> None:
    with pytest.raises(ValueError, match="two"):
        FusionEncoder({"ssl": 4}, 3, fusion="gating")
    with pytest.raises(ValidationError, match="gating"):
        ClaspConfig(fusion="gating", modality="ssl")
    with pytest.raises(ValidationError, match="gating_lstm"):
        ClaspConfig(fusion="gating_lstm", modality="spectrogram")
    with pytest.raises(ValidationError, match="ssl_encoders"):
        ClaspConfig(ssl="wav2vec2", ssl_encoders={})


def test_inputs_are_standardised_with_fitted_statistics() -> None:
    net = FusionEncoder({"ssl": 3}, 2, width=4)
    x = np.array([[1.0, 10.0, 5.0], [3.0, 30.0, 5.0]], np.float32)
    net.fit_input_statistics({"ssl": x})
    z = net.branches["ssl"].norm(torch.from_numpy(x))
    torch.testing.assert_close(z[:, :2], torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
    assert torch.all(z[:, 2] == 0)  # a constant dimension maps to 0, not to NaN
    assert {"branches.ssl.norm.mean", "branches.ssl.norm.std"} <= set(net.state_dict())  # in the checkpoint


# ------------------------------------------------------------------------------------------------
# losses


def test_huber_hand_case() -> None:
    speech = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    text = torch.tensor([[0.5, 0.0], [0.0, 0.0]])
    # elementwise with delta 1: 0.5 * 0.5^2 = 0.125 (quadratic); 1 * (2 - 0.5) = 1.5 (linear); two zeros
    assert float(huber_loss(speech, text, delta=1.0)) == pytest.approx((0.125 + 1.5) / 4)
    # delta 3: both quadratic: 0.125 + 0.5 * 4 = 2.125
    assert float(huber_loss(speech, text, delta=3.0)) == pytest.approx(2.125 / 4)
    with pytest.raises(ValueError, match="shape"):
        huber_loss(speech, text[:1])


def test_contrastive_divides_logits_by_the_temperature() -> None:
    e = torch.eye(2)  # two orthogonal unit items: cosine 1 with itself, 0 with the other
    # logits = cos / 0.5: diagonal 2, off-diagonal 0; each row's loss is log(1 + e^-2)
    expected = math.log(1 + math.exp(-2.0))
    assert float(contrastive_loss(e, e, 0.5)) == pytest.approx(expected, abs=1e-6)
    # the notebooks' defect, multiplying by 0.07, would give log(1 + e^-0.07) ~ 0.66 at T = 0.07;
    # dividing gives log(1 + e^-1/0.07) ~ 6e-7
    assert float(contrastive_loss(e, e, 0.07)) == pytest.approx(math.log(1 + math.exp(-1 / 0.07)), abs=1e-6)
    assert float(contrastive_loss(e, e, 0.07)) < 1e-5
    # scale does not matter (cosine) and the loss is symmetric in its two directions
    speech = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logits = torch.tensor([[1.0, 1 / math.sqrt(2)], [0.0, 1 / math.sqrt(2)]]) / 0.5  # [text, speech]
    rows = -(logits.diag() - torch.logsumexp(logits, 1)).mean()
    cols = -(logits.diag() - torch.logsumexp(logits, 0)).mean()
    assert float(contrastive_loss(speech, text, 0.5)) == pytest.approx(float(0.5 * (rows + cols)), abs=1e-6)


def test_contrastive_counts_other_readings_of_a_sentence_as_positives() -> None:
    speech = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    diagonal = contrastive_loss(speech, text, 0.1)
    grouped = contrastive_loss(speech, text, 0.1, groups=torch.tensor([7, 7, 9]))
    # items 0 and 1 say the same sentence: with groups neither is the other's negative
    assert float(grouped) < 1e-4 < float(diagonal)


def test_learned_temperature_gets_a_gradient_and_stays_clamped() -> None:
    t = Temperature(0.07, learn=True)
    loss = contrastive_loss(torch.randn(4, 3), torch.randn(4, 3), t())
    loss.backward()
    assert t.log_t.grad is not None and float(t.log_t.grad) != 0.0
    with torch.no_grad():
        t.log_t.fill_(math.log(1e-4))
    assert float(t().detach()) == pytest.approx(0.01)
    fixed = Temperature(0.07)
    assert not list(fixed.parameters()) and float(fixed()) == pytest.approx(0.07)


# ------------------------------------------------------------------------------------------------
# the seeded 5-candidate sampler


def test_sampler_is_seeded_and_lists_are_valid() -> None:
    groups = np.repeat(np.arange(40), 2)  # every sentence read twice
    cands, target = sample_candidates(groups, 5, seed=3)
    again, target2 = sample_candidates(groups, 5, seed=3)
    other, _ = sample_candidates(groups, 5, seed=4)
    assert np.array_equal(cands, again) and np.array_equal(target, target2) and not np.array_equal(cands, other)
    assert cands.shape == (80, 5)
    assert np.array_equal(cands[np.arange(80), target], np.arange(80))  # the relevant item where target says
    neg = negatives_of(cands, target)
    assert neg.shape == (80, 4)
    assert not (groups[neg] == groups[:, None]).any()  # never the same sentence as the query
    assert all(len(set(row)) == 5 for row in cands)  # distinct items
    # the relevant item's position is spread over the list (it would win every exact tie in front)
    assert set(np.unique(target)) == set(range(5))
    with pytest.raises(ValueError, match="other sentences"):
        sample_candidates(np.arange(4), 5, seed=0)


def test_constant_scores_rank_like_chance_in_the_sampled_regime() -> None:
    n = 2000
    q = np.ones((n, 2), np.float32) / np.sqrt(2)
    s = np.ones((n, 2), np.float32) / np.sqrt(2)  # every score ties
    cands, target = sample_candidates(np.arange(n), 5, seed=0)
    ranks = ranks_sampled(q, s, cands, target)
    assert np.array_equal(ranks, target + 1)  # ties broken by list position
    assert abs((ranks == 1).mean() - 0.2) < 0.03


def test_ranks_all_single_and_several_readings() -> None:
    s = np.eye(4, dtype=np.float32)
    q = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0.6, 0, 0, 0.8]], np.float32)
    # query 1 scores 0 for its item, 1 for item 2 and ties item 0 (lower index first): rank 3
    assert ranks_all(q, s, np.arange(4)).tolist() == [1, 3, 1, 1]
    # items 1 and 2 read the same sentence: one query for it, relevant = both; its best reading is 1st
    ranks = ranks_all(q, s, np.array([0, 5, 5, 3]))
    assert ranks.tolist() == [1, 1, 1]


# ------------------------------------------------------------------------------------------------
# Macro-F1


def test_macro_f1_hand_case() -> None:
    scores = np.array([0.9, 0.6, 0.4, 0.2])
    labels = np.array([1, 0, 1, 0])
    # at 0.5: predicted relevant = {0.9, 0.6}; relevant class TP 1 FP 1 FN 1 -> F1 0.5; the other
    # class TP 1 (0.2) FP 1 (0.4) FN 1 (0.6) -> 0.5
    assert macro_f1(scores, labels, 0.5) == pytest.approx(0.5)
    # at 0.3: relevant TP 2 FP 1 FN 0 -> 0.8; other TP 1 FP 0 FN 1 -> 2/3
    assert macro_f1(scores, labels, 0.3) == pytest.approx((0.8 + 2 / 3) / 2)
    rng = np.random.default_rng(0)
    s, y = rng.random(500), rng.random(500) < 0.2
    for thr in (0.1, 0.5, 0.93):
        assert macro_f1(s, y, thr) == pytest.approx(f1_score(y, s >= thr, average="macro", zero_division=0))


def test_best_threshold_is_the_best_cut_and_separates_separable_pairs() -> None:
    thr, f = best_threshold(np.array([0.9, 0.8, 0.3, 0.2, 0.1]), np.array([1, 1, 0, 0, 0]))
    assert f == 1.0 and 0.3 < thr < 0.8
    rng = np.random.default_rng(1)
    s, y = rng.random(300), rng.random(300) < 0.3
    thr, f = best_threshold(s, y)
    brute = max(f1_score(y, s >= c, average="macro", zero_division=0) for c in np.r_[s, 2.0])
    assert f == pytest.approx(brute) and macro_f1(s, y, thr) == pytest.approx(f)


def test_pair_scores_are_true_pairs_and_sampled_negatives() -> None:
    s = np.eye(3, dtype=np.float32)
    q = np.array([[1, 0, 0], [0, 0.6, 0.8], [0, 0, 1]], np.float32)
    negatives = np.array([[1, 2], [0, 2], [0, 1]])
    scores, labels = pair_scores(q, s, negatives)
    assert labels.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(scores, [1, 0.6, 1, 0, 0, 0, 0.8, 0, 0], atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Table 2 layouts


def test_stage_tables_from_trial_rows() -> None:
    rows = []
    for seed, (a, b) in enumerate([(0.8, 0.5), (0.9, 0.7)]):
        rows.append({"system": "clasp", "seed": seed, "test/hits1": a, "test/mrr": a, "test/mean_rank": 2.0,
                     "test/macro_f1_at_fixed": 0.5, "test/macro_f1_at_val": 0.6})
        rows.append({"system": "lasp", "seed": seed, "test/hits1": b, "test/mrr": b, "test/mean_rank": 5.0,
                     "test/macro_f1_at_fixed": 0.4, "test/macro_f1_at_val": 0.5})
        rows.append({"system": "asr", "seed": seed, "test/asr/whisper/hits1": 0.95, "test/asr/whisper/mrr": 0.96,
                     "test/asr/whisper/mean_rank": 1.5, "test/asr/whisper/macro_f1_at_fixed": 0.3,
                     "test/asr/whisper/macro_f1_at_val": 0.9, "test/asr/whisper/wer": 0.1})
    tables = summary_tables(pd.DataFrame(rows))
    t = tables["table2_stage3_loss_and_asr"]
    assert t["Model"].tolist() == ["LASP (ours)", "ASR baseline: whisper", "CLASP (ours)"]
    assert t.loc[2, "HITS@1"] == "0.850 ± 0.071" and t.loc[1, "HITS@1"] == "0.950 ± 0.000"
    assert t.loc[1, "WER"] == "0.100 ± 0.000" and t.loc[0, "seeds"] == 2
    assert "s→t HITS@1" in t.columns and t.loc[0, "s→t HITS@1"] == ""  # rows without the metric: blank
    lang = summary_tables(pd.DataFrame([{"query_language": "fa", "seed": 0, "test/hits1": 0.5,
                                         "test/query_language_covered": 0.0}]))["table2_stage4_multilingual"]
    assert lang.loc[0, "Language"] == "Persian" and "no Persian" in lang.loc[0, "note"]
    mod = summary_tables(pd.DataFrame([{"modality": m, "seed": 0, "test/hits1": h, "test_last/hits1": h - 0.1}
                                       for m, h in (("combined", 0.9), ("spectrogram", 0.4))]))
    assert mod["table2_stage1_modality"]["HITS@1 (last epoch)"].tolist() == ["0.300", "0.800"]
    assert mod["table2_stage1_modality"]["Model"].tolist() == ["Spectrogram-Based Model",
                                                               "Combined Audio-Spectrogram Model"]


# ------------------------------------------------------------------------------------------------
# search spaces and views


@pytest.mark.parametrize("profile", ["local", "paper"])
def test_the_five_search_spaces_resolve(profile: str, tmp_path) -> None:
    from orchestrator.plan import Invocation, new_experiment, resolve

    extra = {"data_root": str(tmp_path)} if profile == "paper" else {}
    plans = {s: resolve(new_experiment(Invocation(sweep=s, profile=profile, **extra)))
             for s in ("clasp_modality", "clasp_backbone", "clasp_loss", "clasp_multilingual", "clasp_lr")}
    assert plans["clasp_modality"].n_trials == 9 and plans["clasp_backbone"].n_trials == (8 if profile == "local" else 24)
    assert plans["clasp_multilingual"].is_eval and not plans["clasp_loss"].is_eval  # query language: inference only
    assert plans["clasp_loss"].n_trials == 27  # (LASP, ASR, CLASP) x (raw, centred, z-scored targets) x 3 seeds
    assert all(p.base["candidates"] == ("sampled" if s in ("clasp_modality", "clasp_backbone") else "all")
               for s, p in plans.items())
    # stage 1 trains all 50 epochs; the later stages stop early (the config's patience)
    from workloads.clasp.config import ClaspConfig

    patience = {s: ClaspConfig.model_validate({k: v for k, v in p.base.items()}).patience for s, p in plans.items()}
    assert patience == {"clasp_modality": None, "clasp_backbone": 5, "clasp_loss": 5, "clasp_multilingual": 5,
                        "clasp_lr": 5}


def test_views_per_system_and_query_language() -> None:
    from workloads.clasp.workload import ClaspWorkload

    wl = ClaspWorkload()
    paper = ClaspConfig(query_language="fa")
    spec = wl.data_spec(paper, "paper")
    assert set(spec.views) == {"text", "query", "ssl", "spectrogram"} and spec.corpus == "clasp_combined"
    assert spec.views["query"].text_source == "meta:translations.fa"
    assert spec.views["ssl"].encoder_params == {"model": "facebook/hubert-large-ls960-ft"}
    assert spec.views["text"].encoder_params["model"] == "sentence-transformers/LaBSE"
    assert set(wl.data_spec(paper.model_copy(update={"modality": "spectrogram"}), "paper").views) == \
        {"text", "query", "spectrogram"}
    asr = wl.data_spec(ClaspConfig(system="asr"), "paper")
    assert asr.corpus == "clasp_asr" and set(asr.views) == {"text"}  # the transcripts travel in the manifest
    assert asr.corpus_options["base"] == "clasp_combined"
    assert set(asr.corpus_options["transcribers"]) == {"hubert", "wav2vec2"}
    # the text view of the ASR corpus is the trained systems' one (same encoder, same texts)
    assert asr.views["text"] == spec.views["text"]


def test_validation_loss_uses_the_learned_temperature() -> None:
    """With learn_temperature the checkpoint is chosen by the loss at the temperature the model
    learned, not at the configured starting value."""
    from workloads.clasp.workload import ClaspData, ClaspWorkload

    rng = np.random.default_rng(0)
    n = 12
    text = rng.standard_normal((n, 8)).astype(np.float32)
    val = ClaspData(ids=[f"i{i}" for i in range(n)], categories=["c"] * n, references=[f"s{i}" for i in range(n)],
                    groups=np.arange(n, dtype=np.int64), text=text, query=text,
                    ssl=rng.standard_normal((n, 6)).astype(np.float32),
                    spectrogram=rng.standard_normal((n, 5)).astype(np.float32))
    wl = ClaspWorkload()
    cfg = ClaspConfig(system="clasp", learn_temperature=True, temperature=0.07, batch_size=8)
    torch.manual_seed(0)
    model = wl.build_model(cfg, wl.input_dim(val))
    with torch.no_grad():
        model.temperature.log_t.fill_(math.log(0.5))  # as if training had moved it
    speech = model.embed(val)[0]
    expected = [contrastive_loss(torch.from_numpy(speech[s:s + 8]), torch.from_numpy(text[s:s + 8]), 0.5,
                                 torch.arange(s, min(s + 8, n))) for s in (0, 8)]
    want = (float(expected[0]) * 8 + float(expected[1]) * 4) / n
    assert wl.validate(model, val, cfg)["val/loss"] == pytest.approx(want, rel=1e-5)
    at_start = (float(contrastive_loss(torch.from_numpy(speech[:8]), torch.from_numpy(text[:8]), 0.07,
                                       torch.arange(8))) * 8
                + float(contrastive_loss(torch.from_numpy(speech[8:]), torch.from_numpy(text[8:]), 0.07,
                                         torch.arange(8, n))) * 4) / n
    assert want != pytest.approx(at_start, rel=1e-2)


def test_stage2_rows_in_the_papers_order() -> None:
    rows = []
    for text in ("labse", "xlmr"):
        for ssl in ("hubert", "wav2vec2"):
            for fusion in ("concat", "gating"):
                rows.append({"text": text, "ssl": ssl, "fusion": fusion, "seed": 0, "status": "ok",
                             "test/hits1": 0.5, "test/mrr": 0.6})
    table = summary_tables(pd.DataFrame(rows))["table2_stage2_backbone_fusion"]
    assert table["Model Architecture"].tolist() == [
        "XLM-RoBERTa + Wav2Vec2 - Gating", "XLM-RoBERTa + Wav2Vec2 - Concatenation",
        "LaBSE + Wav2Vec2 - Gating", "LaBSE + Wav2Vec2 - Concatenation",
        "XLM-RoBERTa + HuBERT - Gating", "XLM-RoBERTa + HuBERT - Concatenation",
        "LaBSE + HuBERT - Gating", "LaBSE + HuBERT - Concatenation"]


def test_speech_to_text_ranks_each_item_against_all_distinct_sentences() -> None:
    from workloads.clasp.metrics import ranks_speech_to_text

    # items 0 and 2 read sentence A, item 1 sentence B; texts are per item (A's two copies equal)
    texts = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
    speech = np.array([[0.6, 0.8], [0.0, 1.0], [1.0, 0.0]], np.float32)
    # item 0: A 0.6 < B 0.8 -> rank 2; item 1: B first; item 2: A first. Two candidates, not three
    assert ranks_speech_to_text(speech, texts, np.array([7, 3, 7])).tolist() == [2, 1, 1]


def test_macro_f1_over_all_pairs_equals_sklearn_on_the_full_matrix() -> None:
    from workloads.clasp.metrics import macro_f1_all_pairs

    rng = np.random.default_rng(3)
    groups = np.array([0, 1, 1, 2, 3, 3, 3, 4, 5, 6])  # several readings of some sentences
    q = rng.standard_normal((10, 4)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    s = q[np.argsort(rng.random(10))] * 0.5 + rng.standard_normal((10, 4)).astype(np.float32) * 0.5
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    full = (q @ s.T).reshape(-1)
    labels = (groups[:, None] == groups[None, :]).reshape(-1)
    got = macro_f1_all_pairs(q, s, groups, [0.0, 0.3, 2.0], chunk=3)  # chunks of 3 queries: 3, 3, 3, 1
    for t, value in zip([0.0, 0.3, 2.0], got):
        assert value == pytest.approx(f1_score(labels, full >= t, average="macro", zero_division=0), abs=1e-12)
    # 1 in 10 pairs is positive here: a classifier that says "relevant" to everything scores low
    assert got[0] < 0.6


# ------------------------------------------------------------------------------------------------
# text targets (issue 18, item 7): raw / centred / z-scored text space


def _tiny_split(text: np.ndarray, query: np.ndarray | None = None, seed: int = 0):
    from workloads.clasp.workload import ClaspData

    rng = np.random.default_rng(seed)
    n = len(text)
    return ClaspData(ids=[f"i{i}" for i in range(n)], categories=["c"] * n, references=[f"s{i}" for i in range(n)],
                     groups=np.arange(n, dtype=np.int64), text=text.astype(np.float32),
                     query=(text if query is None else query).astype(np.float32),
                     ssl=rng.standard_normal((n, 6)).astype(np.float32),
                     spectrogram=rng.standard_normal((n, 5)).astype(np.float32))


def test_text_targets_hand_case() -> None:
    from workloads.clasp.targets import TextTargets

    train = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]], np.float32)  # mean (3, 2); std (sqrt(8/3), 0)
    x = torch.tensor([[4.0, 3.0]])
    raw, centred, z = TextTargets("raw", 2), TextTargets("centred", 2), TextTargets("zscore", 2)
    for t in (raw, centred, z):
        t.fit(train)
    torch.testing.assert_close(raw(x), x)
    torch.testing.assert_close(centred(x), torch.tensor([[1.0, 1.0]]))
    # a constant training dimension keeps its centred value over the 1e-6 floor (not inf / NaN)
    torch.testing.assert_close(z(x), torch.tensor([[1.0 / math.sqrt(8 / 3), 1.0 / 1e-6]]))
    assert set(raw.state_dict()) == set() and set(centred.state_dict()) == {"mean"}
    assert set(z.state_dict()) == {"mean", "std"}
    np.testing.assert_allclose(centred.numpy(train), train - [3.0, 2.0])
    with pytest.raises(ValueError, match="raw"):
        TextTargets("whitened", 2)


def test_lasp_huber_targets_are_the_centred_text() -> None:
    """The Huber target is the training-centred text embedding: with the model predicting exactly
    that, the loss is 0 (with raw targets the same prediction costs the shared mean's Huber)."""
    from workloads.clasp.workload import ClaspWorkload

    text = np.array([[0.9, 0.1], [0.8, 0.3], [0.7, 0.2], [1.0, 0.0]], np.float32)  # mean (0.85, 0.15)
    train = _tiny_split(text)
    wl = ClaspWorkload()
    for mode, want in (("centred", 0.0), ("raw", 0.5 * (0.85 ** 2 + 0.15 ** 2) / 2)):
        cfg = ClaspConfig(system="lasp", text_targets=mode)
        model = wl.build_model(cfg, wl.input_dim(train))
        wl.fit_closed_form(model, train, cfg)
        batch = {"text": torch.from_numpy(text), "ssl": torch.from_numpy(train.ssl),
                 "spectrogram": torch.from_numpy(train.spectrogram)}
        out = model(batch)
        centred = torch.from_numpy(text - np.array([0.85, 0.15], np.float32))
        torch.testing.assert_close(out["text"], centred if mode == "centred" else torch.from_numpy(text))
        # a prediction equal to the centred text
        out["speech"] = centred
        assert float(wl.loss(out, batch, cfg, 0)) == pytest.approx(want, abs=1e-6)
    centred_cfg = ClaspConfig(system="lasp", text_targets="centred")
    m = wl.build_model(centred_cfg, wl.input_dim(train))
    wl.fit_closed_form(m, train, centred_cfg)
    torch.testing.assert_close(m.state_dict()["targets.mean"], torch.tensor([0.85, 0.15]))  # in the checkpoint


def test_ranking_and_macro_f1_use_the_same_centring_as_the_targets(monkeypatch) -> None:
    """Queries are centred with the TRAINING mean before the cosines; the speech side (the model's
    output) is taken as is. Hand case: training mean m = (2, 0); test queries q1 = (1, 1),
    q2 = (3, 1); the model outputs exactly the centred targets, s1 = q1 - m = (-1, 1),
    s2 = q2 - m = (1, 1).
    raw cosines: (q1, s1) 0, (q1, s2) 1, (q2, s1) -0.447, (q2, s2) 0.894: q1 ranks s2 first
    (rank 2), q2 ranks s2 first (rank 1) -> HITS@1 0.5, MRR 0.75; at cos >= 0.5 the pairs
    (q1, s2) (a negative) and (q2, s2) are called relevant: tp 1, fp 1, fn 1, tn 1 -> Macro-F1 0.5.
    centred cosines: 1, 0, 0, 1 -> HITS@1 1, MRR 1, Macro-F1 1."""
    from workloads.clasp.workload import ClaspNet, ClaspWorkload

    train = _tiny_split(np.array([[2.0, 1.0], [2.0, -1.0]], np.float32))
    test = _tiny_split(np.array([[1.0, 1.0], [3.0, 1.0]], np.float32), seed=1)
    speech = np.array([[-1.0, 1.0], [1.0, 1.0]], np.float32)
    monkeypatch.setattr(ClaspNet, "embed", lambda self, data, chunk=4096: (speech, None))
    wl = ClaspWorkload()
    got = {}
    for mode in ("raw", "centred"):
        cfg = ClaspConfig(system="lasp", text_targets=mode, n_candidates=2)
        model = wl.build_model(cfg, wl.input_dim(train))
        wl.fit_closed_form(model, train, cfg)
        metrics, _, _ = wl.evaluate(model, test, cfg, figures=False)
        got[mode] = (metrics["test/hits1"], metrics["test/mrr"], metrics["test/macro_f1_at_fixed"])
    assert got["raw"] == pytest.approx((0.5, 0.75, 0.5))
    assert got["centred"] == pytest.approx((1.0, 1.0, 1.0))


def test_stage3_table_labels_the_text_space() -> None:
    rows = [{"system": system, "text_targets": space, "seed": 0, "test/hits1": h, "test/asr/w/hits1": h}
            for system in ("lasp", "clasp") for space, h in (("raw", 0.2), ("centred", 0.6))]
    rows += [{"system": "asr", "text_targets": space, "seed": 0, "test/asr/w/hits1": 0.9}
             for space in ("centred", "raw")]
    t = summary_tables(pd.DataFrame(rows))["table2_stage3_loss_and_asr"]
    assert t["Model"].tolist() == ["LASP (ours)", "LASP (ours), centred targets", "ASR baseline: w",
                                   "ASR baseline: w, centred text space", "CLASP (ours)",
                                   "CLASP (ours), centred targets"]
    assert t["HITS@1"].tolist()[:2] == ["0.200", "0.600"]  # one seed: no ± part


def test_stage2_names_the_notebooks_gating() -> None:
    rows = [{"fusion": f, "seed": 0, "test/hits1": 0.5} for f in ("concat", "gating_lstm", "gating")]
    table = summary_tables(pd.DataFrame(rows))["table2_stage2_backbone_fusion"]
    assert table["Model Architecture"].tolist() == ["Gating", "Gating (notebook's LSTM gates)", "Concatenation"]
