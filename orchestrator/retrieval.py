"""Ranking metrics for embedding retrieval: one tested module shared by every workload.

Why it exists: the papers' evaluation code computed ~11k x 11k cosines in Python double loops and
took hours; here scores come from chunked matrix products (or an exact FAISS index), so the
same evaluation takes seconds and memory stays bounded by ``chunk x N`` scores.

Conventions (all functions):

* Inputs are ``float32`` arrays, one row per item. Similarity is the inner product; callers pass
  L2-normalised rows (see :func:`l2_normalize`) so the inner product is the cosine.
* Ranks are 1-based.
* **Tie rule**: among database items with exactly equal scores, the item with the lower database
  index ranks first. The rule is applied to the float32 scores as computed, so "equal" means
  bit-equal; near-ties that differ in the last bit are ordered by score. It makes every metric a
  deterministic function of the scores, independent of the chunk size, thread count or FAISS's
  internal order. (Different BLAS kernels may round a score differently in the last bit, e.g. a
  1-row chunk vs a 512-row chunk, so only exactly representable scores are bit-identical across
  code paths; tests use such scores.)
* Non-finite inputs are rejected: a NaN score has no rank, and silently ranking it first or last
  would make a broken embedding look merely bad.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its AVX2 probe logs a benign ImportError
import faiss  # noqa: E402
import numpy as np
from threadpoolctl import threadpool_limits

__all__ = [
    "l2_normalize",
    "faiss_topk",
    "single_relevant_ranks",
    "single_relevant_metrics",
    "multi_relevant_per_query",
    "multi_relevant_metrics",
    "naive_multi_relevant_ap",
    "clustering_metrics",
]


# --------------------------------------------------------------------------- helpers


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    """C-contiguous float32 2-D view/copy, refusing NaN/inf (see module docstring)."""
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n, dim], got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise ValueError(f"{name} has {bad.size} rows with NaN/inf values (first: {bad[:10].tolist()})")
    return arr


def _check_pair(queries: np.ndarray, database: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = _as_matrix(queries, "queries")
    db = _as_matrix(database, "database")
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"queries have dim {q.shape[1]} but database has dim {db.shape[1]}")
    if db.shape[0] == 0:
        raise ValueError("database is empty")
    return q, db


def _check_self(q: np.ndarray, db: np.ndarray) -> None:
    # exclude_self identifies a query with the database row of the same index; that only makes
    # sense when the queries are the database.
    if q.shape != db.shape:
        raise ValueError(
            "exclude_self=True needs queries to be the database (same array); "
            f"got shapes {q.shape} and {db.shape}"
        )


def _encode_labels(query_labels: Sequence, db_labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary hashable labels (str or int) to shared integer codes, so relevance is a
    vectorised integer comparison."""
    ql = np.asarray(query_labels)
    dl = np.asarray(db_labels)
    if ql.ndim != 1 or dl.ndim != 1:
        raise ValueError("labels must be 1-D sequences")
    if ql.dtype.kind != dl.dtype.kind and {ql.dtype.kind, dl.dtype.kind} & {"U", "S", "O"}:
        ql, dl = ql.astype(str), dl.astype(str)
    _, inv = np.unique(np.concatenate([ql, dl]), return_inverse=True)
    inv = inv.reshape(-1)
    return inv[: ql.size], inv[ql.size :]


def _default_workers() -> int:
    """Threads for ranking: the cores this process may use, capped at 4 to bound memory
    (each worker holds about ``chunk x N x 13`` bytes of scores, order and relevance)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32), so inner product = cosine similarity.

    All-zero rows stay zero (their norm is clamped to ``eps``) instead of becoming NaN. A 1-D
    vector is treated as one row and comes back as a [1, dim] matrix.
    """
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return np.ascontiguousarray(arr / np.maximum(norms, eps), dtype=np.float32)


# --------------------------------------------------------------------------- FAISS top-k


def _order_by_rule(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by (score descending, id ascending): FAISS's own order on ties is arbitrary."""
    order = np.lexsort((ids, -scores), axis=-1)
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def faiss_topk(
    queries: np.ndarray, database: np.ndarray, k: int, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product with a FAISS ``IndexFlatIP``: ``(scores [Nq,k], indices [Nq,k])``.

    The tie rule holds here too, including at the k-th place: when the last returned score is
    tied with the next one, the search is widened (doubling) for those rows only, until the whole
    tie group is in hand, and then rows are re-sorted by (score desc, index asc).

    With ``exclude_self=True`` the queries *are* the database and each query's own row is removed
    from its list (one extra neighbour is searched so k results remain).
    """
    q, db = _check_pair(queries, database)
    if exclude_self:
        _check_self(q, db)
    n = db.shape[0]
    kk = k + 1 if exclude_self else k
    if k < 1 or kk > n:
        raise ValueError(f"k={k} is out of range for a database of {n} items (exclude_self={exclude_self})")

    index = faiss.IndexFlatIP(db.shape[1])
    index.add(db)
    out_s = np.empty((q.shape[0], kk), dtype=np.float32)
    out_i = np.empty((q.shape[0], kk), dtype=np.int64)

    rows = np.arange(q.shape[0])
    width = min(n, kk + 1)  # one extra reveals whether the k-th score is tied with the next
    while rows.size:
        s, i = index.search(q[rows], width)
        s, i = _order_by_rule(s, i)
        unresolved = (s[:, -1] == s[:, kk - 1]) if width < n else np.zeros(rows.size, dtype=bool)
        done = ~unresolved
        out_s[rows[done]] = s[done, :kk]
        out_i[rows[done]] = i[done, :kk]
        rows = rows[unresolved]
        width = min(n, width * 2)

    if not exclude_self:
        return out_s, out_i
    # Drop each query's own index; if it was not among the first k+1 (duplicates at lower
    # indices outrank it), the first k non-self entries are still the right answer.
    not_self = out_i != np.arange(q.shape[0])[:, None]
    keep = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(out_s, keep, axis=1), np.take_along_axis(out_i, keep, axis=1)


# --------------------------------------------------------------------------- one relevant item


def single_relevant_ranks(
    queries: np.ndarray, database: np.ndarray, target: np.ndarray, chunk: int = 1024
) -> np.ndarray:
    """1-based rank of the single relevant database item of each query.

    rank = 1 + #(scores strictly higher) + #(scores equal at a lower index). Counting instead of
    sorting keeps this O(N) per query; memory is ``chunk x N`` scores.
    """
    q, db = _check_pair(queries, database)
    tgt = np.asarray(target, dtype=np.int64).reshape(-1)
    if tgt.size != q.shape[0]:
        raise ValueError(f"target has {tgt.size} entries for {q.shape[0]} queries")
    if tgt.size and (tgt.min() < 0 or tgt.max() >= db.shape[0]):
        raise ValueError("target indices must lie in [0, len(database))")
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    ranks = np.empty(q.shape[0], dtype=np.int64)
    for start in range(0, q.shape[0], chunk):
        stop = min(start + chunk, q.shape[0])
        ranks[start:stop] = ranks_from_scores(q[start:stop] @ db.T, tgt[start:stop])
    return ranks


def ranks_from_scores(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1-based rank of ``target[i]`` in row i of a score matrix (same tie rule as above).

    For scorers that are not an inner product of two embedding sets, e.g. text-aware attention
    pooling, where each (text, clip) score depends on the pair.
    """
    scores = np.asarray(scores)
    t = np.asarray(target, dtype=np.int64).reshape(-1)
    s_t = scores[np.arange(scores.shape[0]), t][:, None]
    higher = (scores > s_t).sum(axis=1)
    tied_before = ((scores == s_t) & (np.arange(scores.shape[1])[None, :] < t[:, None])).sum(axis=1)
    return (1 + higher + tied_before).astype(np.int64)


def single_relevant_metrics(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@k, mAP@10 (DCASE: 1/rank if rank <= 10 else 0), MRR, mean and median rank.

    With one relevant item AP@10 reduces to 1/rank inside the top 10, which is why ``map10`` is
    not 1/rank everywhere (that is ``mrr``).
    """
    r = np.asarray(ranks, dtype=np.float64).reshape(-1)
    if r.size == 0:
        raise ValueError("no ranks given")
    if (r < 1).any():
        raise ValueError("ranks are 1-based; got a rank < 1")
    out = {f"r{k}": float((r <= k).mean()) for k in ks}
    out["map10"] = float(np.where(r <= 10, 1.0 / r, 0.0).mean())
    out["mrr"] = float((1.0 / r).mean())
    out["mean_rank"] = float(r.mean())
    out["median_rank"] = float(np.median(r))
    return out


# --------------------------------------------------------------------------- several relevant items


def _select_queries(n_queries: int, query_indices: Sequence[int] | None) -> np.ndarray:
    if query_indices is None:
        return np.arange(n_queries)
    sel = np.asarray(query_indices, dtype=np.int64).reshape(-1)
    if sel.size and (sel.min() < 0 or sel.max() >= n_queries):
        raise ValueError("query_indices must lie in [0, n_queries)")
    return sel


def multi_relevant_per_query(
    queries: np.ndarray,
    database: np.ndarray,
    query_labels: Sequence,
    db_labels: Sequence,
    exclude_self: bool,
    ks: Sequence[int] = (1, 5, 10, 20),
    ap_k: int | None = None,
    chunk: int = 512,
    query_indices: Sequence[int] | None = None,
    workers: int | None = None,
) -> dict[str, np.ndarray]:
    """Per-query quantities behind :func:`multi_relevant_metrics` (arrays over the selected
    queries): ``n_relevant`` (R_q), ``ap``, ``ap@K`` (if ``ap_k``), ``first_rank`` and
    ``hits@k`` (relevant items in the top k). Rows with R_q = 0 hold NaN / 0.
    ``workers`` threads rank chunks in parallel (default: usable cores, at most 4).

    Each chunk of queries is fully ranked with a stable argsort of the negated scores (stable =>
    lower index first on ties); with ``exclude_self`` the query's own score is set to -inf so it
    sorts last and is cut off. Only the positions of relevant items are then kept
    (``np.nonzero`` of the relevance matrix, row-major), which is all AP, MRR and recall need.
    """
    q, db = _check_pair(queries, database)
    if exclude_self:
        _check_self(q, db)
    q_codes, db_codes = _encode_labels(query_labels, db_labels)
    if q_codes.size != q.shape[0] or db_codes.size != db.shape[0]:
        raise ValueError("query_labels / db_labels must have one entry per row")
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    if ap_k is not None and ap_k < 1:
        raise ValueError("ap_k must be >= 1")
    ks = tuple(int(k) for k in ks)
    if any(k < 1 for k in ks):
        raise ValueError("ks must be >= 1")
    sel = _select_queries(q.shape[0], query_indices)

    n_db = db.shape[0]
    m = n_db - 1 if exclude_self else n_db  # length of each ranked list
    q_sel_codes = q_codes[sel]

    def rank_chunk(start: int) -> tuple[slice, dict[str, np.ndarray]]:
        rows = sel[start : start + chunk]
        c = rows.size
        scores = q[rows] @ db.T
        if exclude_self:
            scores[np.arange(c), rows] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :m]
        rel = db_codes[order] == q_sel_codes[start : start + c, None]
        r_idx, pos = np.nonzero(rel)  # row-major: per row, relevant positions in rank order
        n_rel = np.bincount(r_idx, minlength=c)
        row_start = np.concatenate([[0], np.cumsum(n_rel)[:-1]]).astype(np.int64)
        hit_no = np.arange(r_idx.size) - row_start[r_idx] + 1  # j-th relevant item of its row
        rank = pos + 1
        prec = hit_no / rank  # P(k) at each relevant position k
        has = n_rel > 0
        res: dict[str, np.ndarray] = {"n_relevant": n_rel}
        ap = np.bincount(r_idx, weights=prec, minlength=c)
        res["ap"] = np.where(has, ap / np.maximum(n_rel, 1), np.nan)
        first = np.full(c, np.nan)
        first[has] = rank[row_start[has]]
        res["first_rank"] = first
        if ap_k is not None:
            in_k = rank <= ap_k
            ap_at = np.bincount(r_idx[in_k], weights=prec[in_k], minlength=c)
            res[f"ap@{ap_k}"] = np.where(has, ap_at / np.maximum(np.minimum(n_rel, ap_k), 1), np.nan)
        for k in ks:
            res[f"hits@{k}"] = np.bincount(r_idx[rank <= k], minlength=c)
        return slice(start, start + c), res

    nq = sel.size
    out: dict[str, np.ndarray] = {
        "n_relevant": np.zeros(nq, dtype=np.int64),
        "ap": np.full(nq, np.nan),
        "first_rank": np.full(nq, np.nan),
    }
    if ap_k is not None:
        out[f"ap@{ap_k}"] = np.full(nq, np.nan)
    for k in ks:
        out[f"hits@{k}"] = np.zeros(nq, dtype=np.int64)

    def store(results) -> None:
        for sl, res in results:
            for key, values in res.items():
                out[key][sl] = values

    starts = range(0, nq, chunk)
    n_workers = max(1, min(workers or _default_workers(), len(starts)))
    if n_workers == 1:
        store(map(rank_chunk, starts))
    else:
        # The sort dominates and NumPy releases the GIL while sorting, so threads over chunks
        # scale with cores; every chunk is independent, so results equal the sequential loop.
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            store(pool.map(rank_chunk, starts))
    return out


def _aggregate(per_query: dict[str, np.ndarray], ks: Sequence[int], ap_k: int | None) -> dict[str, float]:
    n_rel = per_query["n_relevant"]
    has = n_rel > 0
    n = int(has.sum())

    def mean(values: np.ndarray) -> float:
        return float(values[has].mean()) if n else math.nan

    out: dict[str, float] = {"map": mean(per_query["ap"])}
    if ap_k is not None:
        out[f"map@{ap_k}"] = mean(per_query[f"ap@{ap_k}"])
    first = per_query["first_rank"]
    out["mrr"] = mean(1.0 / np.where(has, first, 1.0))
    out["mean_rank"] = mean(first)
    for k in ks:
        hits = per_query[f"hits@{k}"].astype(np.float64)
        out[f"recall@{k}"] = mean(hits / np.maximum(n_rel, 1))
        out[f"precision@{k}"] = mean(hits / k)
    out["n_queries"] = float(n)
    out["n_queries_without_relevant"] = float(n_rel.size - n)
    return out


def multi_relevant_metrics(
    queries: np.ndarray,
    database: np.ndarray,
    query_labels: Sequence,
    db_labels: Sequence,
    exclude_self: bool,
    ks: Sequence[int] = (1, 5, 10, 20),
    ap_k: int | None = None,
    chunk: int = 512,
    query_indices: Sequence[int] | None = None,
    workers: int | None = None,
) -> dict[str, float]:
    """Retrieval metrics when every database item sharing the query's label is relevant.

    Definitions (R_q = number of relevant items of query q in its ranked list):

    * ``map``: mean over queries of AP = (1/R_q) * sum_k P(k) rel(k) over the full ranking.
    * ``map@K`` (only if ``ap_k``): AP@K = (1/min(R_q, K)) * sum_{k<=K} P(k) rel(k).
    * ``mrr``: mean 1/rank of the first relevant item; ``mean_rank``: mean of that rank.
    * ``recall@k``: share of the query's relevant items within the top k; ``precision@k``:
      relevant items in the top k divided by k (also when k exceeds the list length).
    * ``n_queries``: queries that entered the means; queries with R_q = 0 have no defined AP and
      are left out of every mean and counted in ``n_queries_without_relevant`` instead. If no
      query has a relevant item, all means are NaN.

    With ``exclude_self`` the queries are the database and a query's own row is removed from its
    ranking (so it is neither relevant nor counted in ranks). ``query_indices`` restricts the
    evaluation to some query rows (used to check the naive reference on a subset). ``chunk``
    bounds memory (``chunk x N`` scores per worker); ``workers`` threads share the chunks.
    """
    per_query = multi_relevant_per_query(
        queries, database, query_labels, db_labels, exclude_self, ks, ap_k, chunk, query_indices, workers
    )
    return _aggregate(per_query, ks, ap_k)


def naive_multi_relevant_ap(
    queries: np.ndarray,
    database: np.ndarray,
    query_labels: Sequence,
    db_labels: Sequence,
    exclude_self: bool,
    ks: Sequence[int] = (1, 5, 10, 20),
    ap_k: int | None = None,
    query_indices: Sequence[int] | None = None,
) -> dict[str, float]:
    """Reference for :func:`multi_relevant_metrics`: a per-query Python double loop (one dot
    product per query/item pair, then a Python sort and walk), written for obviousness, not speed.

    Same signature (minus ``chunk``) and same output keys, so tests and the benchmark can compare
    the two dicts directly. It mirrors the notebook-style evaluation this project replaces.
    """
    q = np.asarray(queries, dtype=np.float32)
    db = np.asarray(database, dtype=np.float32)
    ql = list(np.asarray(query_labels).tolist())
    dl = list(np.asarray(db_labels).tolist())
    sel = range(len(q)) if query_indices is None else [int(i) for i in query_indices]

    sums: dict[str, float] = {"ap": 0.0, "ap_k": 0.0, "rr": 0.0, "first": 0.0}
    rec = {k: 0.0 for k in ks}
    prec = {k: 0.0 for k in ks}
    n_used = 0
    n_without = 0
    for qi in sel:
        scored = []
        for j in range(len(db)):
            if exclude_self and j == qi:
                continue
            scored.append((-float(np.dot(q[qi], db[j])), j))  # float32 dot, like the matmul
        scored.sort()  # by score descending, then index ascending: the tie rule
        rel = [1 if str(dl[j]) == str(ql[qi]) else 0 for _, j in scored]
        n_rel = sum(rel)
        if n_rel == 0:
            n_without += 1
            continue
        n_used += 1
        hits = 0
        ap = 0.0
        ap_at = 0.0
        first = None
        for pos, r in enumerate(rel, start=1):
            if r:
                hits += 1
                ap += hits / pos
                if ap_k is not None and pos <= ap_k:
                    ap_at += hits / pos
                if first is None:
                    first = pos
        sums["ap"] += ap / n_rel
        if ap_k is not None:
            sums["ap_k"] += ap_at / min(n_rel, ap_k)
        sums["rr"] += 1.0 / first
        sums["first"] += first
        for k in ks:
            in_top = sum(rel[:k])
            rec[k] += in_top / n_rel
            prec[k] += in_top / k

    def mean(total: float) -> float:
        return total / n_used if n_used else math.nan

    out: dict[str, float] = {"map": mean(sums["ap"])}
    if ap_k is not None:
        out[f"map@{ap_k}"] = mean(sums["ap_k"])
    out["mrr"] = mean(sums["rr"])
    out["mean_rank"] = mean(sums["first"])
    for k in ks:
        out[f"recall@{k}"] = mean(rec[k])
        out[f"precision@{k}"] = mean(prec[k])
    out["n_queries"] = float(n_used)
    out["n_queries_without_relevant"] = float(n_without)
    return out


# --------------------------------------------------------------------------- clustering


def clustering_metrics(
    embeddings: np.ndarray, labels: Sequence, seed: int = 0, n_init: int = 10
) -> dict[str, float]:
    """Structure of an embedding space against its word classes (thesis section 2.5.1, 4.2.1).

    K-means (k = number of distinct labels, ``n_init`` restarts, ``random_state=seed``) runs on
    the L2-normalised embeddings, so Euclidean k-means matches the cosine geometry used for
    search. It runs in float64: scikit-learn's float32 path upcasts distance blocks during
    k-means++ and is several times slower at k ~ 600. Cost grows with k x n x dim x n_init (about
    10 s per call for 2k clips, 600 words, 1024-d on 2 cores); lower ``n_init`` for frequent
    validation checks.

    * ``silhouette``: cosine silhouette of the **k-means assignment** — what the thesis reports
      ("assumes data has been clustered with k-means into k clusters"); it measures how cleanly
      the space splits into k groups, whatever the labels.
    * ``silhouette_labels``: cosine silhouette of the **true labels** — how well the word classes
      themselves are separated; usually lower, and the more telling number for retrieval.
    * ``ari`` / ``ami``: adjusted Rand index / adjusted mutual information between the k-means
      assignment and the labels.

    A silhouette is NaN where it is undefined (fewer than 2 or as many clusters as samples).
    """
    # sklearn takes 1.2 s to import; only the clustering metrics need it (not every trial process)
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, silhouette_score

    x = l2_normalize(_as_matrix(embeddings, "embeddings")).astype(np.float64)
    y = np.asarray(labels)
    if y.ndim != 1 or y.size != x.shape[0]:
        raise ValueError("labels must have one entry per embedding")
    _, y_codes = np.unique(y, return_inverse=True)
    y_codes = y_codes.reshape(-1)
    k = int(y_codes.max()) + 1 if y_codes.size else 0
    if k < 2:
        raise ValueError("clustering metrics need at least 2 distinct labels")
    # k-means++ issues thousands of tiny BLAS products; with multi-threaded BLAS on a busy machine
    # the threads' synchronisation dominates (measured 83 s -> 17 s at k=600, 2 cores, same
    # result). Lloyd iterations are parallelised by scikit-learn's OpenMP code, not BLAS.
    with threadpool_limits(limits=1, user_api="blas"):
        pred = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(x)

    def silhouette(assign: np.ndarray) -> float:
        n_clusters = np.unique(assign).size
        if not 2 <= n_clusters <= x.shape[0] - 1:
            return math.nan
        return float(silhouette_score(x, assign, metric="cosine"))

    return {
        "silhouette": silhouette(pred),
        "silhouette_labels": silhouette(y_codes),
        "ari": float(adjusted_rand_score(y_codes, pred)),
        "ami": float(adjusted_mutual_info_score(y_codes, pred)),
    }
