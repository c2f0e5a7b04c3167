"""Speaker-text workload parts on hand-worked cases: the losses (InfoNCE / L_CTS, SupCon with
several positives, the AAM margin), fusion, the LDA baseline, the metric directions (s->t vs t->s
relevance), the data split into utterances and distinct descriptions, the batch samplers and the
parent tables. The whole sweep runs in tests/test_speaker_text_e2e.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from workloads.speaker_text import data as D
from workloads.speaker_text.config import SpeakerTextConfig
from workloads.speaker_text.figures import fusion_curve
from workloads.speaker_text.fusion import fuse
from workloads.speaker_text.lda import UnlinkedLDA
from workloads.speaker_text.losses import aam_softmax, am_softmax, cts, info_nce, supcon, supcon_cts
from workloads.speaker_text.metrics import (
    chance_metrics,
    equal_error_rate,
    retrieval_metrics,
    table_one,
    text_eer,
)
from workloads.speaker_text.model import LinkingNetwork
from workloads.speaker_text.workload import SpeakerTextWorkload


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def softplus(x: float) -> float:  # -log(e^a / (e^a + e^b)) = log(1 + e^(b - a))
    return math.log1p(math.exp(x))


# ------------------------------------------------------------------------------------------------
# losses


def test_info_nce_and_cts_by_hand() -> None:
    a, b = t([[1, 0], [0, 1]]), t([[0.6, 0.8], [1, 0]])
    scale = torch.tensor(2.0, dtype=torch.float64)
    # a @ b.T = [[0.6, 1], [0.8, 0]], x2; row i's positive is column i
    s2t = (softplus(2 * 1 - 2 * 0.6) + softplus(2 * 0.8 - 0)) / 2
    # b @ a.T = [[0.6, 0.8], [1, 0]], x2
    t2s = (softplus(2 * 0.8 - 2 * 0.6) + softplus(2 * 1 - 0)) / 2
    assert info_nce(a, b, scale).item() == pytest.approx(s2t, abs=1e-12)
    assert info_nce(b, a, scale).item() == pytest.approx(t2s, abs=1e-12)
    assert cts(a, b, scale).item() == pytest.approx((s2t + t2s) / 2, abs=1e-12)


def test_supcon_with_several_positives_by_hand() -> None:
    a = t([[1, 0], [0, 1], [-1, 0]])
    b = t([[1, 0], [0.6, 0.8], [0, -1]])
    labels = torch.tensor([0, 0, 1])
    one = torch.tensor(1.0, dtype=torch.float64)
    # scores a @ b.T: [[1, .6, 0], [0, .8, -1], [-1, -.6, 0]]; anchors 0 and 1 have 2 positives each
    lse = [math.log(math.e + math.exp(0.6) + 1), math.log(1 + math.exp(0.8) + math.exp(-1)),
           math.log(math.exp(-1) + math.exp(-0.6) + 1)]
    anchor0 = -((1 - lse[0]) + (0.6 - lse[0])) / 2
    anchor1 = -((0 - lse[1]) + (0.8 - lse[1])) / 2
    anchor2 = -(0 - lse[2])
    expected = (anchor0 + anchor1 + anchor2) / 3
    assert supcon(a, b, labels, labels, one).item() == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.81392, abs=1e-5)
    # the same batch under plain InfoNCE treats b[1] as anchor 0's negative: a different number
    assert abs(info_nce(a, b, one).item() - expected) > 1e-3
    # with one speaker per row, SupCon is InfoNCE (eq. 5 reduces to eq. 1)
    distinct = torch.tensor([0, 1, 2])
    assert supcon(a, b, distinct, distinct, one).item() == pytest.approx(info_nce(a, b, one).item(), abs=1e-12)
    sym = supcon_cts(a, b, labels, one).item()
    assert sym == pytest.approx((expected + supcon(b, a, labels, labels, one).item()) / 2, abs=1e-12)


def test_aam_softmax_margin_by_hand() -> None:
    cosine = t([[0.8, 0.6]])
    label = torch.tensor([0])
    target = math.cos(math.acos(0.8) + 0.2)  # cos(theta_y + m)
    expected = softplus(10 * 0.6 - 10 * target)
    assert aam_softmax(cosine, label, margin=0.2, scale=10.0).item() == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(0.4200, abs=1e-3)
    # no margin: plain scaled softmax cross-entropy
    assert aam_softmax(cosine, label, 0.0, 10.0).item() == pytest.approx(softplus(6 - 8), abs=1e-9)
    # the margin only ever makes the target harder
    assert aam_softmax(cosine, label, 0.2, 10.0) > aam_softmax(cosine, label, 0.0, 10.0)
    # past pi - m the target logit continues linearly: cos(theta) - m sin(m)
    far = t([[-0.99, 0.0]])
    cont = -0.99 - 0.2 * math.sin(0.2)
    assert aam_softmax(far, label, 0.2, 1.0).item() == pytest.approx(softplus(0.0 - cont), abs=1e-9)


def test_am_softmax_margin_by_hand() -> None:
    """AM-softmax (the paper's citation [18]): the target logit is s (cos(theta_y) - m)."""
    cosine, label = t([[0.8, 0.6]]), torch.tensor([0])
    assert am_softmax(cosine, label, margin=0.2, scale=10.0).item() == pytest.approx(softplus(6 - 6), abs=1e-9)
    assert am_softmax(cosine, label, 0.0, 10.0).item() == pytest.approx(aam_softmax(cosine, label, 0.0, 10.0).item())
    # the other class's logit carries no margin: class 1's target is 10 (0.6 - 0.2) against 8
    assert am_softmax(cosine, torch.tensor([1]), 0.2, 10.0).item() == pytest.approx(softplus(8 - 4), abs=1e-9)


# ------------------------------------------------------------------------------------------------
# fusion


def test_fusion_tiny_example_by_hand() -> None:
    q = np.array([[1.0, 0.0]], np.float32)
    others = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32)
    # top-2 by cosine: rows 0 (1.0) and 2 (0.6); weights 1/1.6, 0.6/1.6
    neighbours = np.array([0.625 + 0.375 * 0.6, 0.375 * 0.8])  # [0.85, 0.3]
    unit = neighbours / np.hypot(0.85, 0.3)
    # the literal reading (default): the neighbours' average alone
    np.testing.assert_allclose(fuse(q, others, 2), unit[None], atol=1e-6)
    # keep_query: the mean of the query and the neighbours' average
    fused = np.array([1.0, 0.0]) + unit
    fused /= np.linalg.norm(fused)
    np.testing.assert_allclose(fuse(q, others, 2, keep_query=True), fused[None], atol=1e-6)
    np.testing.assert_allclose(fused, [0.985636, 0.168834], atol=1e-5)
    # N = 1: the nearest item (literal), the mean of the query and it (keep_query); N beyond the set is capped
    np.testing.assert_allclose(fuse(q, others[1:], 1), [[0.6, 0.8]], atol=1e-6)
    np.testing.assert_allclose(fuse(q, others, 1, keep_query=True), [[1.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(fuse(q, others, 50), fuse(q, others, 3), atol=1e-7)
    # no neighbour with a positive cosine: uniform weights
    neg = np.array([[-1.0, 0.0], [-0.6, -0.8]], np.float32)
    mean = np.array([-0.8, -0.4]) / np.hypot(0.8, 0.4)
    np.testing.assert_allclose(fuse(q, neg, 2), mean[None], atol=1e-6)
    expected = (np.array([1.0, 0.0]) + mean) / np.linalg.norm(np.array([1.0, 0.0]) + mean)
    np.testing.assert_allclose(fuse(q, neg, 2, keep_query=True), expected[None], atol=1e-6)


# ------------------------------------------------------------------------------------------------
# LDA baseline (B00)


def _speakers(n_spk: int, per: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_spk, dim)) * 3
    y = np.repeat(np.arange(n_spk), per)
    return (centres[y] + rng.standard_normal((len(y), dim))).astype(np.float32), y


def test_lda_baseline_shapes_and_truncation() -> None:
    xs, ys = _speakers(6, 5, 8, 0)
    xt, yt = _speakers(6, 4, 12, 1)
    m = UnlinkedLDA(speaker_dim=8, text_dim=12, n_speakers=6)
    assert m.text_scalings.shape == (12, 5) and m.speaker_scalings.shape == (8, 5)
    m.fit(xs, ys, xt, yt)
    # 6 speakers: 5 components < the speaker size 8, so both sides go to 5 dims
    assert m.dims(None) == 5
    s, tt = m.search_space(xs, xt, SpeakerTextConfig(system="B00"))
    assert s.shape == (30, 5) and tt.shape == (24, 5)
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1, atol=1e-5)
    # lda_dim=3 is the first 3 columns of the fit: scikit-learn with n_components=3 gives the same
    s3, t3 = m.search_space(xs, xt, SpeakerTextConfig(system="B00", lda_dim=3))
    ref = LinearDiscriminantAnalysis(n_components=3).fit(xt.astype(np.float64), yt).transform(xt)
    np.testing.assert_allclose(t3, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-4)
    assert s3.shape == (30, 3)
    with pytest.raises(ValueError, match="lda_dim=6 exceeds the 5"):
        m.search_space(xs, xt, SpeakerTextConfig(system="B00", lda_dim=6))
    # enough speakers: the text side reaches the speaker size, the speaker side stays raw (the paper)
    xs, ys = _speakers(20, 3, 8, 2)
    xt, yt = _speakers(20, 2, 12, 3)
    m = UnlinkedLDA(8, 12, 20)
    m.fit(xs, ys, xt, yt)
    s, tt = m.search_space(xs, xt, SpeakerTextConfig(system="B00"))
    assert m.dims(None) == 8 and tt.shape == (40, 8)
    np.testing.assert_allclose(s, xs / np.linalg.norm(xs, axis=1, keepdims=True), atol=1e-6)
    # the fit lives in buffers: a state_dict round trip keeps it (checkpoint -> evaluation)
    m2 = UnlinkedLDA(8, 12, 20)
    m2.load_state_dict(m.state_dict())
    np.testing.assert_allclose(m2.search_space(xs, xt, SpeakerTextConfig(system="B00"))[1], tt)


# ------------------------------------------------------------------------------------------------
# metrics: the two directions have different queries, databases and relevant sets


def test_metric_directions_by_hand() -> None:
    # speakers A (0): utterances u1, u2, one description; B (1): utterance u3, two descriptions
    s = np.array([[1, 0], [0.8, 0.6], [0, 1]], np.float32)
    s_lab = np.array([0, 0, 1])
    tx = np.array([[1, 0], [0, 1], [0.8, 0.6]], np.float32)
    t_lab = np.array([0, 1, 1])
    m = retrieval_metrics(s, s_lab, tx, t_lab, fusion_n=1)
    # utterance layout, s->t: u1 ranks tA first (AP 1); u2 ranks tB2, tA (AP 1/2, first relevant
    # at 2); u3: tB1, tB2 (AP 1)
    assert m["utt/s2t/map10"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert m["utt/s2t/meanr"] == pytest.approx((1 + 2 + 1) / 3)
    # t->s: tA finds u1, u2 (AP 1); tB1 finds u3 first (AP 1); tB2 ranks u2, u1, u3 (AP 1/3, rank 3)
    assert m["utt/t2s/map10"] == pytest.approx((1 + 1 + 1 / 3) / 3)
    assert m["utt/t2s/meanr"] == pytest.approx((1 + 1 + 3) / 3)
    # speaker items: A = norm(u1 + u2) = [0.949, 0.316], B = u3; texts A = tA, B = norm(tB1 + tB2)
    # = [0.447, 0.894]. s->t: A: cos(tA) 0.949 > cos(tB) 0.707; B: 0 < 0.894. t->s: tA: 0.949 > 0;
    # tB: 0.707 < 0.894. Every item finds its speaker first.
    for d in ("s2t", "t2s"):
        assert m[f"{d}/map10"] == pytest.approx(1.0) and m[f"{d}/meanr"] == pytest.approx(1.0)
    keys = {f"{p}{d}/{k}" for p in ("", "utt/") for d in ("s2t", "t2s", "s2t_fused", "t2s_fused")
            for k in ("map10", "meanr")}
    assert set(m) >= keys
    assert all(0 <= m[f"{p}{d}/map10"] <= 1 for p in ("", "utt/") for d in ("s2t_fused", "t2s_fused"))
    # chance: 2 items, one relevant: AP@10 (1 + 1/2) / 2, rank 1.5. Utterances -> 3 descriptions:
    # u1, u2 have R = 1 (AP (1/3)(1 + 1/2 + 1/3), rank 2), u3 has R = 2 (AP (1/2)(2/3)(1 + 3/4 +
    # 2/3), rank 4/3)
    assert m["chance/s2t/map10"] == pytest.approx(0.75) and m["chance/t2s/meanr"] == pytest.approx(1.5)
    assert m["chance/utt/s2t/map10"] == pytest.approx((2 * 11 / 18 + (1 / 3) * (29 / 12)) / 3)
    assert m["chance/utt/s2t/meanr"] == pytest.approx((2 + 2 + 4 / 3) / 3)


def test_chance_by_enumerating_every_ranking() -> None:
    # 2 relevant among 4: the 6 placements give AP@10 1, 5/6, 3/4, 7/12, 1/2, 5/12 and first ranks
    # 1, 1, 1, 2, 2, 3
    c = chance_metrics(np.array([7]), np.array([7, 1, 7, 2]))
    assert c["map10"] == pytest.approx((1 + 5 / 6 + 3 / 4 + 7 / 12 + 1 / 2 + 5 / 12) / 6)
    assert c["meanr"] == pytest.approx(10 / 6)
    # one relevant among 40 (Table I's [8] and B00 rows): H_10 / 40 and 20.5
    c = chance_metrics(np.arange(40), np.arange(40))
    assert 100 * c["map10"] == pytest.approx(7.32, abs=0.005) and c["meanr"] == pytest.approx(20.5)
    # AP@10 caps R at 10 and ranks at 10: 12 relevant among 12 -> AP@10 = 1
    assert chance_metrics(np.array([0]), np.zeros(12))["map10"] == pytest.approx(1.0)
    assert np.isnan(chance_metrics(np.array([5]), np.array([1, 2]))["map10"])  # no relevant item


def test_equal_error_rate_by_hand() -> None:
    # scores 0.9 (target), 0.8, 0.7 (target), 0.6: at threshold 0.8 one target of two is rejected
    # and one impostor of two accepted -> EER 1/2
    assert equal_error_rate(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0])) == pytest.approx(0.5)
    assert equal_error_rate(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0])) == 0.0  # separated
    # 3 targets 0.9 0.6 0.3, 3 impostors 0.7 0.4 0.1: ROC (FAR, FRR) 0,1 -> 0,2/3 -> 1/3,2/3 ->
    # 1/3,1/3 -> ...; FRR meets FAR at the point (1/3, 1/3)
    assert equal_error_rate(np.array([0.9, 0.7, 0.6, 0.4, 0.3, 0.1]),
                            np.array([1, 0, 1, 0, 1, 0])) == pytest.approx(1 / 3)
    assert np.isnan(equal_error_rate(np.array([0.5, 0.4]), np.array([1, 1])))  # no impostor trial


def test_text_eer_of_descriptions() -> None:
    """Footnote 8: descriptions that name their speaker apart give 0 %, random ones about 50 %, and
    two speakers sharing a description word for word raise it."""
    labels = np.repeat(np.arange(4), 3)
    apart = np.repeat(np.eye(4, 8, dtype=np.float32), 3, axis=0)
    apart += 0.01 * np.random.default_rng(0).standard_normal(apart.shape).astype(np.float32)
    assert text_eer(apart, labels) == 0.0
    rng = np.random.default_rng(1)
    random = [text_eer(rng.standard_normal((40, 16)), np.repeat(np.arange(10), 4)) for _ in range(30)]
    assert np.mean(random) == pytest.approx(0.5, abs=0.03)
    shared = apart.copy()
    shared[3] = shared[0]  # speaker 1's first description is speaker 0's, word for word
    assert text_eer(shared, labels) > 0.0


def test_random_embeddings_score_chance_in_both_layouts() -> None:
    """40 speakers x 6 utterances and 5 descriptions of random 32-d embeddings, 150 draws: every
    direction's mean mAP@10 and MeanR land on the computed chance level."""
    rng = np.random.default_rng(0)
    s_lab, t_lab = np.repeat(np.arange(40), 6), np.repeat(np.arange(40), 5)
    draws = [retrieval_metrics(rng.standard_normal((240, 32)), s_lab, rng.standard_normal((200, 32)), t_lab, 10)
             for _ in range(150)]  # seeds 0-2: worst deviation 5 % (mAP@10), 1 % (MeanR)
    for p in ("", "utt/"):
        for d in ("s2t", "t2s"):
            chance = draws[0][f"chance/{p}{d}/map10"], draws[0][f"chance/{p}{d}/meanr"]
            for fused in ("", "_fused"):
                got = [np.mean([m[f"{p}{d}{fused}/{k}"] for m in draws]) for k in ("map10", "meanr")]
                assert got[0] == pytest.approx(chance[0], rel=0.1), (p, d, fused)
                assert got[1] == pytest.approx(chance[1], rel=0.05), (p, d, fused)
    assert 100 * draws[0]["chance/s2t/map10"] == pytest.approx(7.32, abs=0.005)
    assert draws[0]["chance/utt/t2s/meanr"] == pytest.approx(241 / 7)  # 6 relevant among 240


def _joined(rows: list[tuple[str, str, list[float], list[str], list[list[float]]]]) -> pa.Table:
    dim = len(rows[0][4][0])
    return pa.table({
        "id": [r[0] for r in rows], "label": [r[1] for r in rows],
        "audio": pa.array([r[2] for r in rows], pa.list_(pa.float32(), len(rows[0][2]))),
        "text": pa.array([r[4] for r in rows], pa.list_(pa.list_(pa.float32(), dim))),
        "text.text": [r[3] for r in rows],
    })


def test_from_table_makes_one_text_item_per_speaker_and_description() -> None:
    same = "A male speaker from the USA."
    table = _joined([
        ("a/0", "spkA", [1, 0], ["a one", same], [[1, 0, 0], [0, 1, 0]]),
        ("a/1", "spkA", [0, 1], ["a one", same], [[1, 0, 0], [0, 1, 0]]),
        ("b/0", "spkB", [1, 1], [same], [[0, 1, 0]]),
    ])
    d = D.from_table(table)
    assert d.speakers == ["spkA", "spkB"] and d.labels.tolist() == [0, 0, 1]
    # spkA's two descriptions once each (not once per utterance); spkB keeps its own copy of the
    # shared string, so every text item has one speaker
    assert d.texts == ["a one", same, same] and d.text_labels.tolist() == [0, 0, 1]
    assert d.text_x.shape == (3, 3) and d.speaker_x.shape == (3, 2)
    assert [x.tolist() for x in d.texts_of] == [[0, 1], [2]]


# ------------------------------------------------------------------------------------------------
# batches


def _toy(n_spk: int = 6, per: int = 5, n_txt: int = 3) -> D.SpeakerTextData:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(n_spk), per)
    text_labels = np.repeat(np.arange(n_spk), n_txt)
    return D.SpeakerTextData(ids=[f"u{i}" for i in range(len(labels))], speakers=[f"s{i}" for i in range(n_spk)],
                             labels=labels, speaker_x=rng.standard_normal((len(labels), 4)).astype(np.float32),
                             texts=[f"t{i}" for i in range(len(text_labels))], text_labels=text_labels,
                             text_x=rng.standard_normal((len(text_labels), 5)).astype(np.float32))


def _text_label(d: D.SpeakerTextData, emb: torch.Tensor) -> int:
    return int(d.text_labels[int(np.flatnonzero((d.text_x == emb.numpy()).all(axis=1))[0])])


def test_pk_batches_hold_k_utterances_and_own_descriptions_per_speaker() -> None:
    d = _toy()
    batches = list(D.pk_batches(d, speakers=3, utterances=2, rng=np.random.default_rng(1)))
    assert len(batches) == 5  # 30 utterances / (3 x 2)
    for b in batches:
        labels = b["labels"].numpy()
        assert len(labels) == 6 and sorted(np.unique(labels, return_counts=True)[1]) == [2, 2, 2]
        for i in range(6):  # the text of pair i describes pair i's speaker
            assert _text_label(d, b["text"][i]) == labels[i]
        for s in np.unique(labels):  # a speaker's K pairs carry different descriptions
            rows = b["text"][torch.from_numpy(labels == s)]
            assert not torch.equal(rows[0], rows[1])


def test_random_batches_cover_every_utterance_once_and_shards_keep_step() -> None:
    d = _toy()
    batches = list(D.random_batches(d, 8, np.random.default_rng(0)))
    assert [len(b["labels"]) for b in batches] == [8, 8, 8, 6]
    seen = np.concatenate([b["speaker"].numpy() for b in batches])
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, d.speaker_x.tolist()))
    shards = [D.shard(d, r, 2) for r in range(2)]
    assert set(shards[0].labels) & set(shards[1].labels) == set()  # speakers are not split
    steps = [len(list(D.random_batches(s, 8, np.random.default_rng(0)))) for s in shards]
    assert steps == [2, 2] and all(s.n_speakers_total == 6 for s in shards)


# ------------------------------------------------------------------------------------------------
# model and loss dispatch


def test_model_outputs_and_loss_per_system() -> None:
    torch.manual_seed(0)
    wl = SpeakerTextWorkload()
    d = _toy()
    batch = next(D.pk_batches(d, 3, 2, np.random.default_rng(0)))
    dims = wl.input_dim(d)
    assert dims == {"speaker": 4, "text": 5, "n_speakers": 6}
    cfgs = {s: SpeakerTextConfig(system=s, proj_dim=16) for s in ("B03", "C01", "C02")}
    net = wl.build_model(cfgs["C01"], dims)
    assert isinstance(net, LinkingNetwork) and net.aam_weight.shape == (6, 16)
    out = net(batch)
    for k in ("s_p", "s_t", "t_p", "t_t"):
        assert out[k].shape == (6, 16)
        torch.testing.assert_close(out[k].norm(dim=-1), torch.ones(6))
    scale = out["scale"]
    base = cts(out["s_p"], out["t_p"], scale) + cts(out["s_t"], out["t_t"], scale)
    torch.testing.assert_close(wl.loss(out, batch, cfgs["B03"], 0), base)
    aam = aam_softmax(out["spk_cos"], batch["labels"], 0.2, 30.0)
    torch.testing.assert_close(wl.loss(out, batch, cfgs["C01"], 0), base + 0.1 * aam)
    am = am_softmax(out["spk_cos"], batch["labels"], 0.2, 30.0)
    torch.testing.assert_close(wl.loss(out, batch, cfgs["C01"].model_copy(update={"aam_variant": "additive"}), 0),
                               base + 0.1 * am)
    sup = supcon_cts(out["s_p"], out["t_p"], batch["labels"], scale) + \
        supcon_cts(out["s_t"], out["t_t"], batch["labels"], scale)
    torch.testing.assert_close(wl.loss(out, batch, cfgs["C02"], 0), sup)
    # the temperature: a buffer unless learned; B00 is not trained
    assert "log_scale" not in dict(net.named_parameters())
    learned = wl.build_model(SpeakerTextConfig(proj_dim=16, learn_tau=True, tau=0.05), dims)
    assert "log_scale" in dict(learned.named_parameters()) and learned.scale().item() == pytest.approx(20.0)
    assert wl.epochs(SpeakerTextConfig(system="B00")) == 0 and wl.epochs(cfgs["B03"]) == 40
    assert cfgs["C02"].resolved_sampler() == "pk" and cfgs["B03"].resolved_sampler() == "random"


# ------------------------------------------------------------------------------------------------
# parent tables and figures


def test_table_one_is_mean_std_over_seeds_in_paper_order() -> None:
    rows = []
    for system, base in (("C02", 0.3), ("B00", 0.1)):
        for seed, delta in ((0, 0.0), (1, 0.02)):
            row = {"system": system, "seed": seed, "status": "ok", "test/text_eer": 0.01 + delta}
            for p, shift in (("", 0.0), ("utt/", 0.05)):
                for d in ("s2t", "t2s", "s2t_fused", "t2s_fused"):
                    row[f"test/{p}{d}/map10"] = base + delta + shift
                    row[f"test/{p}{d}/meanr"] = 10 + 10 * delta
                for d in ("s2t", "t2s"):
                    row[f"test/chance/{p}{d}/map10"] = 0.0732 if not p else 0.02
                    row[f"test/chance/{p}{d}/meanr"] = 20.5 if not p else 33.2
            rows.append(row)
    table = table_one(pd.DataFrame(rows), {"B00": "ge2e", "C02": "ecapa_tdnn"})
    assert table["System"].tolist() == ["B00", "C02", "chance"]
    # a stand-in is named beside the paper's encoder; the paper's own encoder is not repeated
    assert table["Speaker/Audio enc."].tolist()[:2] == ["ECAPA-TDNN [ge2e]", "ECAPA-TDNN"]
    assert table.loc[0, "s→t mAP10 (%)"] == "11.000 ± 1.414"  # percent, sample std
    assert table.loc[0, "s→t mAP10 (%) [utt]"] == "16.000 ± 1.414"  # the utterance layout after it
    assert table.loc[1, "t→s (fusion) MeanR"] == "10.100 ± 0.141"
    # chance: the same for the fused columns (same queries, same relevant items)
    assert table.loc[2, "s→t mAP10 (%)"] == table.loc[2, "s→t (fusion) mAP10 (%)"] == "7.320"
    assert table.loc[2, "t→s MeanR [utt]"] == "33.200"
    assert list(table.columns[:4]) == ["System", "Speaker/Audio enc.", "Loss", "seeds"]
    assert list(table.columns[4:12]) == [f"{d} {m}" for d in ("s→t", "t→s", "s→t (fusion)", "t→s (fusion)")
                                         for m in ("mAP10 (%)", "MeanR")]
    assert len(table.columns) == 4 + 16 + 1
    # footnote 8's text EER, in percent; a random score's is 50 %
    assert table.loc[0, "text EER (%)"] == "2.000 ± 1.414" and table.loc[2, "text EER (%)"] == "50.000"


def test_fusion_curve_only_for_fusion_sweeps() -> None:
    trials = pd.DataFrame({"fusion_n": [1, 10, 5], "best/val/t2s_fused/map10": [0.2, 0.3, 0.25],
                           "test/t2s_fused/map10": [0.2, 0.3, 0.2], "test/t2s/map10": [0.15] * 3})
    wl = SpeakerTextWorkload()
    figs = wl.summary_figures(trials)
    assert set(figs) == {"fusion_curve"}
    ax = figs["fusion_curve"].axes[0]
    xs = ax.lines[0].get_xdata()
    assert list(xs) == [1, 5, 10]  # sorted by N
    assert wl.summary_tables(trials)["fusion_n"]["fusion_n"].tolist() == [1, 5, 10]
    assert fusion_curve(trials.drop(columns="fusion_n")) is None


def test_fig3_is_drawn_once_per_system_on_the_parent() -> None:
    """Trials draw no t-SNE; the driver draws one per system, from the system's lowest seed, in
    Table I's order (or the selected trial's when the sweep is not over systems)."""
    from workloads.speaker_text.workload import SpeakerTextWorkload

    wl = SpeakerTextWorkload()
    assert wl.trial_figures is False
    trials = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "system": ["C02", "B03", "B03", "C02"],
                           "seed": [1, 1, 0, 0]})
    chosen = wl.parent_figure_trials(trials, best_trial="a")
    assert list(chosen.items()) == [("B03", "c"), ("C02", "d")]
    assert wl.parent_figure_trials(trials.drop(columns="system"), best_trial="a") == {"selected_trial": "a"}
