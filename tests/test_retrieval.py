"""Tests for orchestrator.retrieval: hand-computed cases first, then agreement with references.

Hand examples use scores that are exact in float32 (multiples of 1/8), so "equal" really means
equal and the tie rule (lower database index first) is what decides the order.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator import retrieval as rt

# --------------------------------------------------------------------------- fixtures

# Example 1: 1-D geometry in 2-D; two queries, database of 5 items.
DB1 = np.array([[0.5, 0], [1, 0], [0.25, 0], [0.75, 0], [-1, 0]], dtype=np.float32)
DB1_LABELS = ["A", "B", "A", "A", "B"]
Q1 = np.array([[1, 0], [-1, 0]], dtype=np.float32)
Q1_LABELS = ["A", "B"]

# Example 2 (exclude_self): 5 items in 3-D; labels A A B A C.
X2 = np.array(
    [[1, 0, 0], [0, 1, 0], [0.5, 0.5, 0], [0.25, 0, 1], [0, 0, 1]], dtype=np.float32
)
X2_LABELS = ["A", "A", "B", "A", "C"]

# Example 3 (ties): query (1,0); items 0,1,2 all score 0.5, item 3 scores 1.
DB3 = np.array([[0.5, 0.5], [0.5, -0.5], [0.5, 0], [1, 0]], dtype=np.float32)
DB3_LABELS = ["B", "A", "A", "B"]
Q3 = np.array([[1, 0]], dtype=np.float32)


# --------------------------------------------------------------------------- l2_normalize


def test_l2_normalize_unit_rows_and_zero_row():
    x = np.array([[3, 4], [0, 0]], dtype=np.float64)
    out = rt.l2_normalize(x)
    assert out.dtype == np.float32
    # (3,4)/5 = (0.6, 0.8); a zero row stays zero instead of NaN
    np.testing.assert_allclose(out, [[0.6, 0.8], [0, 0]], rtol=1e-7)


# --------------------------------------------------------------------------- multi relevant


def test_multi_relevant_hand_example():
    # Query 0 = (1,0), label A. Scores = first coordinate: [0.5, 1, 0.25, 0.75, -1]
    #   ranking: idx1 (1, B), idx3 (.75, A), idx0 (.5, A), idx2 (.25, A), idx4 (-1, B)
    #   rel = 0 1 1 1 0, R=3; P(2)=1/2, P(3)=2/3, P(4)=3/4
    #   AP = (1/2 + 2/3 + 3/4)/3 = 23/36; AP@2 = (1/min(3,2)) * 1/2 = 1/4
    #   first relevant at rank 2 -> RR = 1/2
    #   recall@1 = 0, recall@3 = 2/3, recall@5 = 1; precision@1 = 0, @3 = 2/3, @5 = 3/5
    # Query 1 = (-1,0), label B. Scores: [-.5, -1, -.25, -.75, 1]
    #   ranking: idx4 (1, B), idx2, idx0, idx3, idx1 (-1, B); rel = 1 0 0 0 1, R=2
    #   AP = (1/1 + 2/5)/2 = 0.7; AP@2 = (1/2) * 1 = 0.5; RR = 1, first rank 1
    #   recall@1 = 1/2, @3 = 1/2, @5 = 1; precision@1 = 1, @3 = 1/3, @5 = 2/5
    m = rt.multi_relevant_metrics(Q1, DB1, Q1_LABELS, DB1_LABELS, exclude_self=False, ks=(1, 3, 5), ap_k=2)
    expected = {
        "map": (23 / 36 + 0.7) / 2,
        "map@2": (0.25 + 0.5) / 2,
        "mrr": (0.5 + 1) / 2,
        "mean_rank": (2 + 1) / 2,
        "recall@1": (0 + 0.5) / 2,
        "recall@3": (2 / 3 + 0.5) / 2,
        "recall@5": (1 + 1) / 2,
        "precision@1": (0 + 1) / 2,
        "precision@3": (2 / 3 + 1 / 3) / 2,
        "precision@5": (3 / 5 + 2 / 5) / 2,
        "n_queries": 2,
        "n_queries_without_relevant": 0,
    }
    assert set(m) == set(expected)
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, abs=1e-12), key


def test_ap_at_k_larger_than_r_equals_full_ap():
    # Query 0 of example 1: R=3 < K=10, all relevant within top 10 -> AP@10 = AP = 23/36
    m = rt.multi_relevant_metrics(Q1[:1], DB1, Q1_LABELS[:1], DB1_LABELS, exclude_self=False, ap_k=10)
    assert m["map@10"] == pytest.approx(23 / 36)
    assert m["map"] == pytest.approx(23 / 36)


def test_tie_rule_lower_index_first():
    # Scores: [0.5, 0.5, 0.5, 1.0]. Rule: idx3, then ties 0.5 in index order idx0 (B), idx1 (A), idx2 (A)
    #   rel = 0 0 1 1, R=2 -> AP = (1/3 + 2/4)/2 = 5/12, first rank 3 -> MRR 1/3
    # (higher index first would give rel = 0 1 1 0 and AP = (1/2 + 2/3)/2 = 7/12)
    m = rt.multi_relevant_metrics(Q3, DB3, ["A"], DB3_LABELS, exclude_self=False)
    assert m["map"] == pytest.approx(5 / 12)
    assert m["mrr"] == pytest.approx(1 / 3)
    assert m["mean_rank"] == 3
    # single relevant item: rank = 1 + #higher + #equal at a lower index
    #   target 0: 1 + 1 + 0 = 2; target 1: 1 + 1 + 1 = 3; target 2: 1 + 1 + 2 = 4; target 3: 1
    q = np.repeat(Q3, 4, axis=0)
    ranks = rt.single_relevant_ranks(q, DB3, np.array([0, 1, 2, 3]))
    assert ranks.tolist() == [2, 3, 4, 1]


def test_exclude_self_and_queries_without_relevant():
    # Gram matrix (off-diagonal): x0.x1=0, x0.x2=.5, x0.x3=.25, x0.x4=0, x1.x2=.5, x1.x3=0, x1.x4=0,
    #   x2.x3=.125, x2.x4=0, x3.x4=1. Self scores (1, 1, .5, 1.0625, 1) would rank first; excluded.
    # q0 (A): x2 .5 (B), x3 .25 (A), ties at 0: x1 (A) before x4 (C) -> rel 0 1 1 0
    #   AP = (1/2 + 2/3)/2 = 7/12, first rank 2
    # q1 (A): x2 .5 (B), ties at 0: x0 (A), x3 (A), x4 (C) -> rel 0 1 1 0 -> AP 7/12, first 2
    # q2 (B) and q4 (C): no other item with their label -> R=0, excluded and counted
    # q3 (A): x4 1 (C), x0 .25 (A), x2 .125 (B), x1 0 (A) -> rel 0 1 0 1
    #   AP = (1/2 + 2/4)/2 = 1/2, first rank 2
    # map = (7/12 + 7/12 + 1/2)/3 = 5/9; mrr = 1/2; mean rank 2
    # recall@2: each query has 1 of 2 relevant in top 2 -> 1/2
    # recall@3: q0 2/2, q1 2/2, q3 1/2 -> (1 + 1 + 1/2)/3 = 5/6
    m = rt.multi_relevant_metrics(X2, X2, X2_LABELS, X2_LABELS, exclude_self=True, ks=(1, 2, 3))
    assert m["map"] == pytest.approx(5 / 9)
    assert m["mrr"] == pytest.approx(0.5)
    assert m["mean_rank"] == pytest.approx(2.0)
    assert m["recall@1"] == 0
    assert m["recall@2"] == pytest.approx(0.5)
    assert m["recall@3"] == pytest.approx(5 / 6)
    assert m["n_queries"] == 3
    assert m["n_queries_without_relevant"] == 2


def test_without_exclude_self_the_query_finds_itself():
    # Same data, no exclusion: q0's own row scores 1 (top) and has label A -> first rank 1.
    m = rt.multi_relevant_metrics(X2[:1], X2, X2_LABELS[:1], X2_LABELS, exclude_self=False)
    assert m["mrr"] == 1.0


def test_exclude_self_requires_same_shape():
    with pytest.raises(ValueError, match="exclude_self"):
        rt.multi_relevant_metrics(X2[:2], X2, X2_LABELS[:2], X2_LABELS, exclude_self=True)


def test_all_queries_without_relevant_gives_nan_not_warning():
    m = rt.multi_relevant_metrics(X2, X2, list("abcde"), list("abcde"), exclude_self=True)
    assert math.isnan(m["map"]) and math.isnan(m["mrr"]) and math.isnan(m["recall@1"])
    assert m["n_queries"] == 0 and m["n_queries_without_relevant"] == 5


def test_non_finite_input_is_rejected():
    bad = X2.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rt.multi_relevant_metrics(bad, bad, X2_LABELS, X2_LABELS, exclude_self=True)


def _integer_data(rng: np.random.Generator, n: int, dim: int, n_labels: int):
    # Small integer entries: every dot product is an exact small integer in float32, so scores are
    # identical whatever the summation order and ties are frequent (exercises the tie rule).
    x = rng.integers(-2, 3, size=(n, dim)).astype(np.float32)
    labels = rng.integers(0, n_labels, size=n)
    return x, labels


@pytest.mark.parametrize("chunk", [1, 7, 16, 53, 100])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_chunked_matches_naive_exactly_on_tied_integer_data(chunk, exclude_self):
    rng = np.random.default_rng(chunk + 10 * exclude_self)
    x, labels = _integer_data(rng, 53, 4, 6)
    ks = (1, 5, 10, 20, 60)  # 60 > list length: precision divides by k, recall saturates
    fast = rt.multi_relevant_metrics(x, x, labels, labels, exclude_self, ks=ks, ap_k=5, chunk=chunk)
    slow = rt.naive_multi_relevant_ap(x, x, labels, labels, exclude_self, ks=ks, ap_k=5)
    assert fast.keys() == slow.keys()
    for key in fast:
        assert fast[key] == pytest.approx(slow[key], rel=1e-12, abs=1e-12), key


@pytest.mark.parametrize("chunk", [3, 64])
def test_chunked_matches_naive_on_random_float_data(chunk):
    rng = np.random.default_rng(1)
    db = rt.l2_normalize(rng.standard_normal((120, 16)))
    q = rt.l2_normalize(rng.standard_normal((37, 16)))
    db_labels = rng.integers(0, 9, size=120).astype(str)
    q_labels = rng.integers(0, 10, size=37).astype(str)  # label "9" has no relevant items
    fast = rt.multi_relevant_metrics(q, db, q_labels, db_labels, False, ap_k=10, chunk=chunk)
    slow = rt.naive_multi_relevant_ap(q, db, q_labels, db_labels, False, ap_k=10)
    assert fast["n_queries_without_relevant"] == slow["n_queries_without_relevant"] > 0
    for key in fast:
        assert fast[key] == pytest.approx(slow[key], rel=1e-9), key


def test_query_indices_subset_matches_naive_subset():
    rng = np.random.default_rng(2)
    x, labels = _integer_data(rng, 40, 5, 4)
    sub = [3, 17, 39, 0]
    fast = rt.multi_relevant_metrics(x, x, labels, labels, True, ap_k=3, chunk=3, query_indices=sub)
    slow = rt.naive_multi_relevant_ap(x, x, labels, labels, True, ap_k=3, query_indices=sub)
    for key in fast:
        assert fast[key] == pytest.approx(slow[key], rel=1e-12), key


# --------------------------------------------------------------------------- single relevant


def test_single_relevant_metrics_hand_example():
    ranks = np.array([1, 2, 11, 4, 10])
    m = rt.single_relevant_metrics(ranks)
    # r1 = 1/5; r5: ranks 1,2,4 -> 3/5; r10: 1,2,4,10 -> 4/5
    assert m["r1"] == pytest.approx(0.2)
    assert m["r5"] == pytest.approx(0.6)
    assert m["r10"] == pytest.approx(0.8)
    # map10 (DCASE): (1 + 1/2 + 0 [rank 11] + 1/4 + 1/10)/5 = 1.85/5 = 0.37
    assert m["map10"] == pytest.approx(0.37)
    # mrr: (1 + 1/2 + 1/11 + 1/4 + 1/10)/5 ; rank 11 still counts here
    assert m["mrr"] == pytest.approx((1.85 + 1 / 11) / 5)
    # mean (1+2+11+4+10)/5 = 5.6; median of sorted [1,2,4,10,11] = 4
    assert m["mean_rank"] == pytest.approx(5.6)
    assert m["median_rank"] == 4
    # even count: median of [1, 3] = 2
    assert rt.single_relevant_metrics([1, 3])["median_rank"] == 2


def test_single_relevant_ranks_hand_and_chunked():
    # Example 1, query (1,0): scores [0.5, 1, 0.25, 0.75, -1] -> order idx1, idx3, idx0, idx2, idx4
    #   target 0 -> rank 3, target 4 -> rank 5; query (-1,0): scores [-.5,-1,-.25,-.75,1]
    #   -> order idx4, idx2, idx0, idx3, idx1: target 1 -> rank 5
    q = Q1[[0, 0, 1]]
    assert rt.single_relevant_ranks(q, DB1, np.array([0, 4, 1]), chunk=2).tolist() == [3, 5, 5]


@pytest.mark.parametrize("chunk", [1, 6, 1000])
def test_single_relevant_ranks_match_stable_argsort(chunk):
    rng = np.random.default_rng(3)
    x, _ = _integer_data(rng, 31, 3, 2)
    target = rng.integers(0, 31, size=31)
    order = np.argsort(-(x @ x.T), axis=1, kind="stable")
    expected = np.argmax(order == target[:, None], axis=1) + 1
    np.testing.assert_array_equal(rt.single_relevant_ranks(x, x, target, chunk=chunk), expected)


# --------------------------------------------------------------------------- FAISS


@pytest.mark.parametrize("seed", [0, 1])
def test_faiss_topk_matches_stable_argsort_with_ties(seed):
    rng = np.random.default_rng(seed)
    x, _ = _integer_data(rng, 200, 3, 2)  # many exact ties, including at the k-th place
    q = x[:60]
    scores, idx = rt.faiss_topk(q, x, k=25)
    s_np = q @ x.T
    order = np.argsort(-s_np, axis=1, kind="stable")[:, :25]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_array_equal(scores, np.take_along_axis(s_np, order, axis=1))


def test_faiss_topk_exclude_self():
    rng = np.random.default_rng(4)
    x = rt.l2_normalize(rng.standard_normal((50, 8)))
    x[10] = x[3]  # a duplicate ties with the query itself
    scores, idx = rt.faiss_topk(x, x, k=5, exclude_self=True)
    s_np = x @ x.T
    np.fill_diagonal(s_np, -np.inf)
    order = np.argsort(-s_np, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(idx, order)
    assert not (idx == np.arange(50)[:, None]).any()
    assert idx[3, 0] == 10 and idx[10, 0] == 3
    np.testing.assert_allclose(scores, np.take_along_axis(s_np, order, axis=1), atol=1e-6)


def test_faiss_topk_k_out_of_range():
    with pytest.raises(ValueError):
        rt.faiss_topk(X2, X2, k=5, exclude_self=True)


# --------------------------------------------------------------------------- clustering


def test_clustering_perfectly_separated():
    rng = np.random.default_rng(5)
    centres = np.eye(3, dtype=np.float32)
    x = np.repeat(centres, 6, axis=0) + 0.01 * rng.standard_normal((18, 3)).astype(np.float32)
    labels = np.repeat(["a", "b", "c"], 6)
    m = rt.clustering_metrics(x, labels, seed=0)
    assert m["ari"] == pytest.approx(1.0)
    assert m["ami"] == pytest.approx(1.0)
    assert m["silhouette"] > 0.95
    # k-means recovers the labels, so both silhouettes are the same number
    assert m["silhouette_labels"] == pytest.approx(m["silhouette"])


def test_clustering_known_case_labels_cross_the_clusters():
    # Points (1,0),(1,0),(0,1),(0,1); labels A B A B. K-means (k=2) finds {0,1},{2,3}.
    # silhouette (k-means assignment, cosine): a = 0, b = 1 for every point -> 1.
    # silhouette_labels: for point 0 (A): a = d(p0,p2) = 1; b = mean(d(p0,p1), d(p0,p3)) = (0+1)/2
    #   -> s = (0.5 - 1)/1 = -0.5, same for all points -> -0.5.
    # ARI: contingency all ones, n=4. sum C(nij,2)=0; sum C(ai,2)=sum C(bj,2)=2; C(4,2)=6
    #   expected = 2*2/6 = 2/3; max = 2 -> ARI = (0 - 2/3)/(2 - 2/3) = -0.5
    # AMI: MI = 0 (independent). E[MI]: per cell, n_ij=1 (p=2/3) contributes 1/4*log(1)=0,
    #   n_ij=2 (p=1/6) contributes 2/4*log(2) -> log2/12; 4 cells -> log2/3.
    #   H(U)=H(V)=log2 -> AMI = (0 - log2/3)/(log2 - log2/3) = -0.5
    x = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    m = rt.clustering_metrics(x, ["A", "B", "A", "B"], seed=0)
    assert m["silhouette"] == pytest.approx(1.0)
    assert m["silhouette_labels"] == pytest.approx(-0.5)
    assert m["ari"] == pytest.approx(-0.5)
    assert m["ami"] == pytest.approx(-0.5)


def test_ranks_from_scores_hand_case() -> None:
    from orchestrator.retrieval import ranks_from_scores

    # row 0: target 2 scores 0.5; one higher (0.9) -> rank 2
    # row 1: target 1 scores 0.7, tie with index 0 (0.7, lower index ranks first) -> rank 2
    # row 2: target 0 scores 0.7, tie with index 1 (higher index ranks after) -> rank 1
    scores = np.array([[0.9, 0.1, 0.5], [0.7, 0.7, 0.2], [0.7, 0.7, 0.2]])
    assert ranks_from_scores(scores, np.array([2, 1, 0])).tolist() == [2, 2, 1]
