"""Tests for the QbE workload parts: head, loss, margin schedule, triplet sampler, evaluation."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
import torch

from workloads.qbe.evaluate import evaluate_qbe, percent_increase
from workloads.qbe.loss import annealed_margin, triplet_margin_loss
from workloads.qbe.model import EmbeddingHead
from workloads.qbe.triplets import TripletSampler

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


def test_sampler_fallback_to_closest_to_band():
    x, label = _ring()
    # no cross-label cosine reaches 0.95 (max ~0.755): every semi-hard anchor falls back to the
    # different-label clip with the highest cosine, i.e. the closest one below the band
    s = TripletSampler(x, label, semi_hard_share=1.0, band=(0.95, 0.99), seed=3)
    a, _, n = s.sample(300)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = u[a] @ u.T
    sims[label[None, :] == label[a][:, None]] = -np.inf
    np.testing.assert_array_equal(n, sims.argmax(axis=1))
    assert s.stats["fallbacks"] == 300 and s.stats["fallback_share"] == 1.0


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


def test_sampler_speed_10k_items():
    # Measured ~0.1 s on 2 cores for 256-d; the bound only catches a non-vectorised regression.
    rng = np.random.default_rng(7)
    label = rng.integers(0, 2000, size=10_000)
    x = rng.standard_normal((2000, 256)).astype(np.float32)[label] + rng.standard_normal((10_000, 256)).astype(
        np.float32
    )
    s = TripletSampler(x, label, seed=0)
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
        for key in ("map", "mrr", "recall20", "silhouette", "ari", "ami"):
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
    assert list(ret.columns) == ["Model", "mAP", "MRR", "Recall@20"] and ret.shape == (3, 4)
    assert ret["Model"].tolist() == ["Original", "Transformed", "percent increase"]
    for col in ("mAP", "MRR", "Recall@20"):
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
