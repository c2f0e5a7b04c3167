"""The seeded candidate lists of the paper's "five random speech candidates per query" regime
(stages 1-2), whose negatives also serve Macro-F1's "not relevant" pairs in every regime.

Each query (an item's text) gets its own speech item plus ``n - 1`` distinct others that do not
say the same sentence, drawn from a generator seeded by (seed, salt), so every model evaluated
with the same seed sees the same lists. The relevant item's position in the list is drawn too:
ranking breaks exact score ties by list position, and a relevant item always in front would win
every tie (a model with constant outputs would score HITS@1 = 1).
"""

from __future__ import annotations

import numpy as np

from orchestrator.corpus import seeded_rng


def sample_candidates(groups: np.ndarray, n_candidates: int, seed: int, salt: str = "test"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``(candidates [N, n] item indices, target [N] column of the relevant item)``.

    ``groups[i]``: the sentence id of item i (items of one group are relevant to each other's
    text and never drawn as negatives of it). Raises when some group has fewer than ``n - 1``
    items outside it.
    """
    g = np.asarray(groups).reshape(-1)
    n = g.size
    k = int(n_candidates) - 1
    if k < 1:
        raise ValueError(f"n_candidates must be >= 2, got {n_candidates}")
    _, codes, counts = np.unique(g, return_inverse=True, return_counts=True)
    codes = codes.reshape(-1)
    outside = n - counts[codes]
    if n and outside.min() < k:
        raise ValueError(f"{n_candidates} candidates need {k} items of other sentences per query; "
                         f"some query has only {int(outside.min())} (split of {n} items)")
    rng = seeded_rng("clasp_candidates", seed, salt)
    target = rng.integers(0, k + 1, size=n)
    neg = rng.integers(0, n, size=(n, k))
    todo = np.arange(n)
    # vectorised rejection sampling: a row is redrawn while it repeats an item or hits the query's
    # own sentence; other sentences are the vast majority, so few rows need a second draw
    while todo.size:
        rows = neg[todo]
        same = codes[rows] == codes[todo][:, None]
        srt = np.sort(rows, axis=1)
        dup = (srt[:, 1:] == srt[:, :-1]).any(axis=1) if k > 1 else np.zeros(todo.size, bool)
        bad = same.any(axis=1) | dup
        todo = todo[bad]
        neg[todo] = rng.integers(0, n, size=(todo.size, k))
    cands = np.empty((n, k + 1), dtype=np.int64)
    cols = np.arange(k + 1)[None, :]
    is_target = cols == target[:, None]
    cands[is_target] = np.arange(n)
    cands[~is_target] = neg.reshape(-1)
    return cands, target


def negatives_of(cands: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``[N, n - 1]`` the sampled non-relevant items of each query (the list without its target)."""
    keep = np.arange(cands.shape[1])[None, :] != np.asarray(target)[:, None]
    return cands[keep].reshape(cands.shape[0], cands.shape[1] - 1)
