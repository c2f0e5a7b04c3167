"""CLASP's evaluation (paper sec. 3.3): retrieval ranks in the two candidate regimes, and Macro-F1
of the "relevant" decision at a cosine threshold.

Retrieval: queries are texts, the database is speech embeddings in the same space, scores are
cosines (``s2t/...``: the reverse, each speech item against all distinct sentences). Ranks are 1-based with the core's tie rule (``orchestrator.retrieval``: equal scores are
ordered by database index, or by list position in the sampled regime, where the relevant item's
position is itself random). With several readings of one sentence (Common Voice), a query is one
distinct sentence and its rank is that of its best-ranked reading.

Classification: a (text, speech) pair is predicted relevant when their cosine is >= the threshold;
positives are the true pairs, negatives the sampled candidates of each query (the same seeded
negatives in both regimes, so Macro-F1 does not depend on how many items the test split has).
Macro-F1 is the mean of the F1 of the two classes. In the all-items regime the headline Macro-F1 scores
every (query, item) pair instead (:func:`macro_f1_all_pairs`), as the notebooks' all-items
evaluation does; the sampled-pairs value stays as ``sampled/macro_f1_*``. The paper's fixed threshold is 0.5, which suits
LaBSE's cosine band; a local text encoder's cosines live elsewhere (multilingual-e5-small: matched
~0.9, unmatched ~0.76), so a threshold chosen on the validation split is reported as well.
"""

from __future__ import annotations

import numpy as np

from orchestrator import retrieval


def ranks_sampled(queries: np.ndarray, speech: np.ndarray, cands: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rank of each query's relevant item within its own candidate list (``cands[i]`` indexes
    ``speech``; ``target[i]`` is the list position of the relevant item). Inputs L2-normalised."""
    scores = np.einsum("nd,nkd->nk", queries, speech[cands], optimize=True)
    return retrieval.ranks_from_scores(scores, target)


def ranks_all(queries: np.ndarray, speech: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Rank of the relevant speech among ALL items, one query per distinct sentence.

    ``queries[i]`` is item i's text embedding; items of one group say the same sentence. When every
    sentence is read once this is the core's chunked single-relevant ranking (a counting pass per
    chunk of queries, never a full sort); otherwise each distinct sentence is one query whose
    relevant items are all its readings, ranked by the core's multi-relevant path (first hit).
    """
    g = np.asarray(groups).reshape(-1)
    uniq, first = np.unique(g, return_index=True)
    if uniq.size == g.size:
        return retrieval.single_relevant_ranks(queries, speech, np.arange(g.size))
    per_query = retrieval.multi_relevant_per_query(queries[first], speech, g[first], g, exclude_self=False, ks=(1,))
    return per_query["first_rank"].astype(np.int64)


def ranks_speech_to_text(speech: np.ndarray, texts: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The other direction (the notebooks' stage 3): rank of each speech item's sentence among ALL
    distinct sentences of the split (one text per group, its first item's). Inputs L2-normalised."""
    _, first, inverse = np.unique(np.asarray(groups).reshape(-1), return_index=True, return_inverse=True)
    return retrieval.single_relevant_ranks(speech, texts[first], inverse.reshape(-1))


def retrieval_metrics(ranks: np.ndarray) -> dict[str, float]:
    """HITS@1, MRR, meanR (the paper's three) plus R@5, R@10 and the median rank."""
    m = retrieval.single_relevant_metrics(ranks, ks=(1, 5, 10))
    return {"hits1": m["r1"], "mrr": m["mrr"], "mean_rank": m["mean_rank"], "r5": m["r5"], "r10": m["r10"],
            "median_rank": m["median_rank"], "n_queries": float(len(ranks))}


def pair_scores(queries: np.ndarray, speech: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, labels)`` of the classification pairs: each query with its own item (label 1)
    and with each of its sampled negatives (label 0). Inputs L2-normalised."""
    pos = np.einsum("nd,nd->n", queries, speech)
    neg = np.einsum("nd,nkd->nk", queries, speech[negatives], optimize=True).reshape(-1)
    return np.concatenate([pos, neg]), np.concatenate([np.ones(pos.size, np.int8), np.zeros(neg.size, np.int8)])


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=np.float64), where=denom > 0)


def macro_f1(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Mean F1 of the classes "relevant" (score >= threshold) and "not relevant"; a class with
    no true and no predicted member has F1 = 0 (scikit-learn's ``zero_division=0``)."""
    s = np.asarray(scores, np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(bool)
    pred = s >= threshold
    tp = np.array([(pred & y).sum(), (~pred & ~y).sum()], np.float64)  # per class: relevant, not relevant
    fp = np.array([(pred & ~y).sum(), (~pred & y).sum()], np.float64)
    fn = np.array([(~pred & y).sum(), (pred & ~y).sum()], np.float64)
    return float(_f1(tp, fp, fn).mean())


def macro_f1_all_pairs(queries: np.ndarray, speech: np.ndarray, groups: np.ndarray, thresholds: list[float],
                       chunk: int = 1024) -> list[float]:
    """:func:`macro_f1` at each threshold over ALL N x N (query, speech) pairs, as the notebooks'
    all-items evaluation scores them: query i (item i's text) with every item j, relevant when both
    say the same sentence, so positives are ~1 in N rather than 1 in ``n_candidates``. Counted per
    chunk of queries (``chunk x N`` float32 scores at a time, never N x N). Inputs L2-normalised."""
    g = np.asarray(groups).reshape(-1)
    counts = np.zeros((len(thresholds), 4), np.float64)  # per threshold: tp, fp, fn, tn of "relevant"
    for start in range(0, len(queries), chunk):
        scores = queries[start:start + chunk] @ speech.T
        pos = g[start:start + chunk, None] == g[None, :]
        n_pos = pos.sum()
        for k, t in enumerate(thresholds):
            pred = scores >= t
            tp, n_pred = (pred & pos).sum(), pred.sum()
            counts[k] += [tp, n_pred - tp, n_pos - tp, pred.size - n_pred - n_pos + tp]
    tp, fp, fn, tn = counts.T
    return (0.5 * (_f1(tp, fp, fn) + _f1(tn, fn, fp))).tolist()


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(threshold, macro_f1)`` maximising Macro-F1 on these pairs (the validation split).

    Every cut between two consecutive distinct scores is tried at once from cumulative counts
    (pairs sorted by score, descending); the threshold returned is the midpoint of the best cut,
    so a test score equal to neither neighbour is classified as the cut intends.
    """
    s = np.asarray(scores, np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(bool)
    if s.size == 0:
        raise ValueError("no pairs to choose a threshold on")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[s[1:] != s[:-1], True]  # end of each run of equal scores: a valid cut
    tp = np.cumsum(y)[last].astype(np.float64)  # predicted relevant = everything up to the cut
    fp = np.cumsum(~y)[last].astype(np.float64)
    n_pos, n_neg = float(y.sum()), float((~y).sum())
    fn, tn = n_pos - tp, n_neg - fp
    macro = 0.5 * (_f1(tp, fp, fn) + _f1(tn, fn, fp))
    # the cut that predicts nothing relevant (threshold above every score)
    none = 0.5 * (_f1(np.zeros(1), np.zeros(1), np.full(1, n_pos)) + _f1(np.full(1, n_neg), np.full(1, n_pos),
                                                                            np.zeros(1)))[0]
    cut_scores = s[last]
    best = int(np.argmax(macro))
    if none > macro[best]:
        return float(cut_scores[0] + 1e-6), float(none)
    below = cut_scores[best + 1] if best + 1 < cut_scores.size else cut_scores[best] - 1e-6
    return float(0.5 * (cut_scores[best] + below)), float(macro[best])
