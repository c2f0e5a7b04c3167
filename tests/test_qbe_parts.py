"""Tests for the QbE workload parts: head, loss, margin schedule, triplet sampler, evaluation."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
import torch

from orchestrator.cache import EmbeddingSet
from workloads.qbe.config import PAPER_ENCODERS, QbEConfig
from workloads.qbe.evaluate import evaluate_qbe, percent_increase
from workloads.qbe.loss import annealed_margin, linear_schedule, triplet_margin_loss
from workloads.qbe.model import EmbeddingHead
from workloads.qbe.triplets import TripletSampler
from workloads.qbe.workload import QbEWorkload

# --------------------------------------------------------------------------- model


def test_embedding_head_thesis_shapes_and_unit_norm():
    head = EmbeddingHead(1024)
    assert head.fc1.weight.shape == (512, 1024) and head.fc2.weight.shape == (256, 512)
    out = head(torch.randn(7, 1024))
    assert out.shape == (7, 256)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(7))


def test_embedding_head_hand_computed():
    # W1 = I, b1 = (0, -1); x = (3, 0.5): W1 x + b1 = (3, -0.5) -> ReLU -> (3, 0)
    # W2 = I, b2 = (0, 4): g = (3, 4); ||g|| = 5 -> f = (0.6, 0.8)
    head = EmbeddingHead(2, hidden=2, out_dim=2)
    with torch.no_grad():
        head.fc1.weight.copy_(torch.eye(2))
        head.fc1.bias.copy_(torch.tensor([0.0, -1.0]))
        head.fc2.weight.copy_(torch.eye(2))
        head.fc2.bias.copy_(torch.tensor([0.0, 4.0]))
    torch.testing.assert_close(head(torch.tensor([[3.0, 0.5]])), torch.tensor([[0.6, 0.8]]))


# --------------------------------------------------------------------------- loss


def test_triplet_margin_loss_hand_computed():
    # triplet 1: d(a,p) = ||(3,4)|| = 5, d(a,n) = ||(6,8)|| = 10 -> max(0, 5 - 10 + 1.5) = 0
    # triplet 2: d(a,p) = 1, d(a,n) = 2 -> max(0, 1 - 2 + 1.5) = 0.5 ; mean = 0.25
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    n = torch.tensor([[6.0, 8.0], [0.0, 2.0]])
    loss = triplet_margin_loss(a, p, n, margin=1.5)
    assert loss.ndim == 0
    # PyTorch adds eps=1e-6 inside the distance, hence the tolerance
    assert loss.item() == pytest.approx(0.25, abs=1e-5)
    # margin 6: (5 - 10 + 6) = 1 and (1 - 2 + 6) = 5 -> mean 3
    assert triplet_margin_loss(a, p, n, margin=6.0).item() == pytest.approx(3.0, abs=1e-5)


def test_triplet_loss_gradient_finite_when_anchor_equals_positive():
    a = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = triplet_margin_loss(a, a.detach().clone(), torch.tensor([[0.0, 1.0]]), margin=2.0)
    loss.backward()
    assert torch.isfinite(a.grad).all()


def test_annealed_margin_linear_schedule():
    assert annealed_margin(0, 1500) == pytest.approx(0.55)
    assert annealed_margin(1499, 1500) == pytest.approx(0.8)
    # 11 epochs: epoch 5 is half-way -> 0.55 + 0.25 * 5/10 = 0.675
    assert annealed_margin(5, 11) == pytest.approx(0.675)
    # custom ends: epoch 1 of 5 -> 0.1 + (0.5 - 0.1) * 1/4 = 0.2
    assert annealed_margin(1, 5, start=0.1, end=0.5) == pytest.approx(0.2)
    assert annealed_margin(20, 11) == pytest.approx(0.8)  # clamped past the end
    assert annealed_margin(0, 1) == pytest.approx(0.55)


# --------------------------------------------------------------------------- triplets


def _ring(n_labels: int = 8, per_label: int = 4, jitter_deg: float = 2.0, seed: int = 0):
    """Labels on a circle every 360/n_labels degrees (45 for 8), clips jittered by a few degrees.

    Cosine between adjacent labels ~ cos(45 +- 4 deg) in [0.656, 0.755] (inside band 0.5-0.8);
    labels 90 degrees apart have cos ~ 0 and farther ones are negative: the only in-band
    candidates of an anchor are the clips of its two neighbouring labels.
    """
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(n_labels), per_label)
    angle = np.deg2rad(label * 360.0 / n_labels + rng.uniform(-jitter_deg, jitter_deg, label.size))
    x = np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32) * 3.0  # not unit: sampler normalises
    return x, label


def _cos(x: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.sum(u[i] * u[j], axis=1)


def test_sampler_labels_positives_and_negatives():
    x, label = _ring()
    # add a singleton label: never an anchor or a positive, but a valid negative
    x = np.vstack([x, [[0.0, -5.0]]]).astype(np.float32)
    label = np.append(label, 99)
    s = TripletSampler(x, label, semi_hard_share=0.0, seed=1)
    a, p, n = s.sample(3000)
    assert a.dtype.kind == "i" and a.shape == p.shape == n.shape == (3000,)
    assert (label[p] == label[a]).all() and (p != a).all()
    assert (label[n] != label[a]).all()
    assert not (label[a] == 99).any()
    assert (n == x.shape[0] - 1).any()  # the singleton does appear as a negative
    # every other clip of the anchor's word is reachable as positive
    assert len(set(zip(a.tolist(), p.tolist()))) == 32 * 3


def test_sampler_semi_hard_share_and_band():
    x, label = _ring()
    s = TripletSampler(x, label, semi_hard_share=0.4, band=(0.5, 0.8), seed=2)
    a, p, n = s.sample(2000)
    semi = s.last_semi_hard
    assert semi.sum() == 800  # round(0.4 * 2000)
    cos = _cos(x, a, n)
    assert ((cos[semi] >= 0.5) & (cos[semi] <= 0.8)).all()
    # in-band negatives are exactly the neighbouring labels (label difference +-1 mod 8)
    diff = (label[n] - label[a]) % 8
    assert np.isin(diff[semi], [1, 7]).all()
    assert set(diff[semi].tolist()) == {1, 7}  # both neighbours are drawn
    # random negatives reach far labels too (5 of the 7 other labels are out of band)
    assert np.isin(diff[~semi], [2, 3, 4, 5, 6]).mean() > 0.5
    assert s.stats["fallbacks"] == 0 and s.stats["semi_hard"] == 800


def _all_similar(n_labels: int = 12, per_label: int = 4, seed: int = 0):
    """Every cosine above 0.85 (one shared direction plus small per-word and per-clip parts), like
    raw mean-pooled wav2vec 2.0 (thesis Tables 4.5/4.6: 0.93-0.997): the 0.5-0.8 band is empty."""
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(n_labels), per_label)
    common = rng.standard_normal(32)
    common *= 4.0 / np.linalg.norm(common)
    words = rng.standard_normal((n_labels, 32)) * 0.12
    x = (common + words[label] + rng.standard_normal((label.size, 32)) * 0.06).astype(np.float32)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert (u @ u.T).min() > 0.85
    return x, label


def test_semi_hard_fallback_is_a_random_negative_and_is_logged():
    """No other-word item in the band (all cosines > 0.85), semi_hard_share = 1: the picks must
    not be each anchor's least similar item (the old 'closest to the band' fallback, which made
    semi-hard training easiest-negative training), and the logged fallback share is 1.0."""
    x, label = _all_similar()
    s = TripletSampler(x, label, semi_hard_share=1.0, band=(0.5, 0.8), seed=3)
    a, _, n = s.sample(600)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = u[a] @ u.T
    sims[label[None, :] == label[a][:, None]] = np.inf
    least_similar = sims.argmin(axis=1)
    assert (label[n] != label[a]).all()
    assert (n == least_similar).mean() < 0.1  # 44 other-word candidates: ~1/44 by chance; the old code 1.0
    assert len(set(n.tolist())) > 30  # spread over the other words, like a random negative
    assert s.last_fallback_share == 1.0 and s.stats["fallbacks"] == 600 and not s.last_semi_hard.any()

    # through the workload: what train_loop_per_worker reports after the epoch
    wl = QbEWorkload()
    train = EmbeddingSet(ids=[f"c{i}" for i in range(label.size)], labels=[f"w{v}" for v in label], X=x)
    cfg = QbEConfig(encoder="whisper_tiny_en", semi_hard_share=1.0, batch_size=64, epochs=3)
    wl.shard_train(train, 0, 1)
    batches = list(wl.train_batches(train, cfg, 0, np.random.default_rng(0)))
    assert sum(len(b["anchor"]) for b in batches) == label.size
    m = wl.epoch_metrics(0)
    assert m["train/semi_hard_fallback_share"] == 1.0
    assert m["train/semi_hard_share"] == 1.0 and m["train/margin"] == pytest.approx(0.55)


def test_percentile_band_finds_hard_negatives_when_all_cosines_are_high():
    x, label = _all_similar(seed=1)
    s = TripletSampler(x, label, semi_hard_share=1.0, band=(0.9, 1.0), band_mode="percentile", seed=4)
    a, _, n = s.sample(400)
    assert s.last_fallback_share == 0.0 and s.last_semi_hard.all()
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = u[a] @ u.T
    other = label[None, :] != label[a][:, None]
    picked = sims[np.arange(a.size), n]
    # each negative is among the anchor's ~10 % most similar other-word clips (44 candidates)
    rank_from_top = (np.where(other, sims, -np.inf) > picked[:, None]).sum(axis=1)
    assert (rank_from_top <= 5).all() and (label[n] != label[a]).all()
    with pytest.raises(ValueError, match="quantile"):
        s.sample(10, band=(-0.5, 0.5))


def test_anchor_words_are_uniform_not_clips():
    """3.3.4 samples an anchor *word*: a word with 20 clips is no likelier than one with 2."""
    rng = np.random.default_rng(0)
    label = np.concatenate([np.zeros(20, int), np.repeat(np.arange(1, 10), 2)])  # word 0: 20 of 38 clips
    x = rng.standard_normal((label.size, 8)).astype(np.float32)
    a, p, _ = TripletSampler(x, label, semi_hard_share=0.0, seed=1).sample(20_000)
    share_word0 = (label[a] == 0).mean()
    assert share_word0 == pytest.approx(0.1, abs=0.015)  # 1 of 10 words; per clip it would be 20/38
    assert len(set(a[label[a] == 0].tolist())) == 20 and (label[p] == label[a]).all()


def test_hard_triplet_schedule_anneals_share_and_band():
    wl = QbEWorkload()
    constant = QbEConfig(encoder="x", epochs=11)
    assert wl.hard_triplet_schedule(constant, 5) == (0.4, (0.5, 0.8))
    cfg = QbEConfig(encoder="x", epochs=11, semi_hard_share_start=0.0, band_low_start=0.3, band_high_start=0.6)
    assert wl.hard_triplet_schedule(cfg, 0) == (0.0, (0.3, 0.6))
    share, (lo, hi) = wl.hard_triplet_schedule(cfg, 5)  # half-way
    assert (share, lo, hi) == pytest.approx((0.2, 0.4, 0.7))
    share, (lo, hi) = wl.hard_triplet_schedule(cfg, 10)
    assert (share, lo, hi) == pytest.approx((0.4, 0.5, 0.8))
    assert linear_schedule(5, 11, 0.0, 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        QbEConfig(encoder="x", band_low_start=0.7, band_high_start=0.6)
    with pytest.raises(ValueError):
        QbEConfig(encoder="x", band_mode="percentile", band_low=-0.2)


def test_shard_train_keeps_words_whole_and_steps_equal():
    rng = np.random.default_rng(0)
    label = np.repeat(np.arange(9), rng.integers(2, 7, size=9))
    train = EmbeddingSet(ids=[f"c{i}" for i in range(label.size)], labels=[f"w{v}" for v in label],
                         X=rng.standard_normal((label.size, 8)).astype(np.float32))
    cfg = QbEConfig(encoder="x", batch_size=8, semi_hard_share=0.4, band_low=-1.0, band_high=1.0)
    shards, steps = [], []
    for rank in range(2):
        wl = QbEWorkload()
        shard = wl.shard_train(train, rank, 2)
        shards.append(shard)
        batches = list(wl.train_batches(shard, cfg, 0, np.random.default_rng(rank)))
        assert all(len(b["anchor"]) <= 4 for b in batches)  # batch_size 8 is global: 4 per worker
        assert sum(len(b["anchor"]) for b in batches) == math.ceil(label.size / 2)
        steps.append(len(batches))
    assert steps[0] == steps[1]  # a DDP step is a collective: equal counts on every worker
    assert sorted(shards[0].ids + shards[1].ids) == sorted(train.ids)
    assert not set(shards[0].labels) & set(shards[1].labels)  # no word is split
    with pytest.raises(ValueError, match="divisible"):
        _two_worker_batches(train, cfg, 7)


def _two_worker_batches(train: EmbeddingSet, cfg: QbEConfig, batch_size: int) -> list:
    wl = QbEWorkload()
    shard = wl.shard_train(train, 0, 2)
    return list(wl.train_batches(shard, cfg.model_copy(update={"batch_size": batch_size}), 0,
                                 np.random.default_rng(0)))


def test_validation_silhouette_is_named_for_its_labels():
    rng = np.random.default_rng(0)
    label = np.repeat(np.arange(4), 3)
    val = EmbeddingSet(ids=[f"c{i}" for i in range(12)], labels=[f"w{v}" for v in label],
                       X=rng.standard_normal((12, 8)).astype(np.float32))
    wl = QbEWorkload()
    cfg = QbEConfig(encoder="x")
    m = wl.validate(wl.build_model(cfg, 8), val, cfg)
    assert set(m) == {"val/silhouette_labels", "val/map"}


def test_paper_encoder_is_the_ctc_voxrex_and_the_other_stays_selectable():
    wl = QbEWorkload()
    spec = wl.data_spec(QbEConfig(dataset="swedish"), "paper")
    assert spec.views["audio"].encoder_params["model"] == "KBLab/wav2vec2-large-voxrex-swedish"
    other = wl.data_spec(QbEConfig(dataset="swedish", encoder_model="KBLab/wav2vec2-large-voxrex"), "paper")
    assert other.views["audio"].encoder_params["model"] == "KBLab/wav2vec2-large-voxrex"
    assert PAPER_ENCODERS["multilingual"] == "facebook/wav2vec2-xls-r-300m"
    from workloads.qbe import INFO
    assert "wav2vec2-large-voxrex-swedish" in INFO.profile("paper").choices["encoder"]


def test_sampler_per_call_overrides():
    x, label = _ring()
    s = TripletSampler(x, label, semi_hard_share=0.0, seed=4)
    s.sample(100, semi_hard_share=0.5, band=(0.5, 0.8))
    assert s.last_semi_hard.sum() == 50
    with pytest.raises(ValueError):
        s.sample(10, band=(0.9, 0.1))


def test_sampler_deterministic_by_seed():
    x, label = _ring()
    t1 = TripletSampler(x, label, seed=5).sample(500)
    t2 = TripletSampler(x, label, seed=5).sample(500)
    t3 = TripletSampler(x, label, seed=6).sample(500)
    for u, v in zip(t1, t2):
        np.testing.assert_array_equal(u, v)
    assert any((u != v).any() for u, v in zip(t1, t3))


def test_sampler_rejects_unusable_labels():
    x = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="two or more"):
        TripletSampler(x, ["a", "b", "c"])
    with pytest.raises(ValueError, match="distinct"):
        TripletSampler(x, ["a", "a", "a"])


@pytest.mark.parametrize("band_mode,band", [("cosine", (0.5, 0.8)), ("percentile", (0.9, 0.99))])
def test_sampler_speed_10k_items(band_mode: str, band: tuple[float, float]):
    # Measured ~0.1 s (cosine) / ~0.3 s (percentile) on 2 cores for 256-d; the bound only catches
    # a non-vectorised regression.
    rng = np.random.default_rng(7)
    label = rng.integers(0, 2000, size=10_000)
    x = rng.standard_normal((2000, 256)).astype(np.float32)[label] + rng.standard_normal((10_000, 256)).astype(
        np.float32
    )
    s = TripletSampler(x, label, seed=0, band_mode=band_mode, band=band)  # type: ignore[arg-type]
    s.sample(2048)  # warm-up
    t0 = time.perf_counter()
    s.sample(2048)
    assert time.perf_counter() - t0 < 1.5


# --------------------------------------------------------------------------- evaluation


def _synthetic_split(seed: int = 0, n_words: int = 8, per_word: int = 5):
    rng = np.random.default_rng(seed)
    words = np.repeat([f"word{i}" for i in range(n_words)], per_word)
    codes = np.repeat(np.arange(n_words), per_word)
    centres = rng.standard_normal((n_words, 24))
    original = 0.3 * centres[codes] + rng.standard_normal((codes.size, 24))  # word barely visible
    transformed = centres[codes] + 0.05 * rng.standard_normal((codes.size, 24))  # tight clusters
    ids = [f"clip{i:03d}" for i in range(codes.size)]
    return original.astype(np.float32), transformed.astype(np.float32), list(words), ids


def test_percent_increase():
    # Table 4.3 style: 100 * (0.777 - 0.440) / 0.440 = 76.59...
    assert percent_increase(0.44, 0.777) == pytest.approx(100 * 0.337 / 0.44)
    assert math.isnan(percent_increase(0.0, 0.5)) and math.isnan(percent_increase(-0.1, 0.2))


def test_evaluate_qbe_tables_metrics_and_figure():
    original, transformed, words, ids = _synthetic_split()
    metrics, tables, figures = evaluate_qbe(original, transformed, words, ids, seed=0, n_example_queries=3, top_n=4)

    for space in ("original", "transformed"):
        for key in ("map", "map20", "mrr", "recall20", "silhouette", "ari", "ami"):
            assert math.isfinite(metrics[f"test/{space}/{key}"])
    assert metrics["test/transformed/map"] == pytest.approx(1.0)  # tight clusters: all same-word first
    assert metrics["test/transformed/ari"] == pytest.approx(1.0)
    assert metrics["test/transformed/map"] > metrics["test/original/map"]
    assert metrics["test/transformed/silhouette"] > metrics["test/original/silhouette"]
    o, t = metrics["test/original/map"], metrics["test/transformed/map"]
    assert metrics["test/gain/map_pct"] == pytest.approx(100 * (t - o) / o)

    clu = tables["qbe_clustering"]
    assert list(clu.columns) == ["Embedding", "Silhouette", "ARI", "AMI"] and clu.shape == (2, 4)
    assert clu["Embedding"].tolist() == ["Original", "Transformed"]
    assert clu.loc[1, "ARI"] == pytest.approx(metrics["test/transformed/ari"])

    ret = tables["qbe_retrieval"]
    assert list(ret.columns) == ["Model", "mAP", "mAP@20", "MRR", "Recall@20"] and ret.shape == (3, 5)
    assert ret["Model"].tolist() == ["Original", "Transformed", "percent increase"]
    for col in ("mAP", "mAP@20", "MRR", "Recall@20"):
        o, t = ret.loc[0, col], ret.loc[1, col]
        assert ret.loc[2, col] == pytest.approx(100 * (t - o) / o)

    nb = tables["qbe_neighbours"]
    assert nb.shape == (3 * 4, 9)
    assert nb["Rank"].tolist() == [1, 2, 3, 4] * 3
    assert nb["Query"].nunique() == 3
    id_to_word = dict(zip(ids, words))
    assert all(id_to_word[i] == w for i, w in zip(nb["Query id"], nb["Query"]))
    assert not (nb["Native id"] == nb["Query id"]).any()  # the query itself is excluded
    assert not (nb["Transformed id"] == nb["Query id"]).any()
    for _, group in nb.groupby("Query", sort=False):
        assert group["Cosine (Native)"].is_monotonic_decreasing
        # 5 clips per word -> the 4 other clips of the query word come first after transformation
        assert (group["Retrieved (Transformed)"] == group["Query"]).all()

    fig = figures["tsne_before_after"]
    axes = fig.get_axes()
    assert len(axes) == 2
    legend_words = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert len(legend_words) == 5 and set(legend_words) <= set(words)
    assert set(nb["Query"]) <= set(legend_words)  # same words as the plot, like the thesis


def test_map20_is_the_thesis_ap_over_the_top_20():
    """2.5.2: AP = (1/N) sum_{k<=K} P(k) rel(k), N = the word's other clips, K = 20; written out
    with a Python loop over the ranked lists. With 12 words x 5 clips and a noisy space, some
    relevant clips rank below 20, so it differs from the full-ranking mAP."""
    original, transformed, words, ids = _synthetic_split(seed=2, n_words=12)
    metrics, tables, _ = evaluate_qbe(original, transformed, words, ids, seed=0)
    lab = np.asarray(words)
    u = original / np.linalg.norm(original, axis=1, keepdims=True)
    aps = []
    for q in range(lab.size):
        sims = u @ u[q]
        order = [j for j in np.argsort(-sims, kind="stable") if j != q]
        rel = [lab[j] == lab[q] for j in order]
        hits, total = 0, 0.0
        for k, r in enumerate(rel[:20], start=1):
            if r:
                hits += 1
                total += hits / k
        aps.append(total / sum(rel))
    assert metrics["test/original/map20"] == pytest.approx(np.mean(aps), abs=1e-6)
    assert metrics["test/original/map20"] < metrics["test/original/map"]
    assert tables["qbe_retrieval"].loc[0, "mAP@20"] == pytest.approx(metrics["test/original/map20"])


def test_evaluate_qbe_deterministic_by_seed():
    original, transformed, words, ids = _synthetic_split(seed=1)
    m1, t1, _ = evaluate_qbe(original, transformed, words, ids, seed=3, n_plot_words=2)
    m2, t2, _ = evaluate_qbe(original, transformed, words, ids, seed=3, n_plot_words=2)
    assert m1 == m2
    pd.testing.assert_frame_equal(t1["qbe_neighbours"], t2["qbe_neighbours"])


def test_evaluate_qbe_rejects_mismatched_inputs():
    original, transformed, words, ids = _synthetic_split()
    with pytest.raises(ValueError):
        evaluate_qbe(original, transformed[:-1], words, ids)
