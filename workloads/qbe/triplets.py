"""Triplet sampling for the QbE head (thesis sections 3.3.4 and 3.4.2).

Each triplet is (anchor, positive, negative): anchor drawn uniformly from items whose word has at
least two clips, positive another clip of the same word, negative a clip of a different word.
A share of the negatives (40 % in the thesis) are *semi-hard*: their cosine similarity to the
anchor, measured on the ORIGINAL (untransformed) embeddings, lies in a band (0.5-0.8). Those
are the confusable words the head must learn to push apart; random negatives alone are mostly
easy once the head has learnt a coarse structure.

Memory: the full N x N cosine matrix (400 MB at 10k items) is never held; similarities are
computed only for the anchors that need a semi-hard negative, a chunk of anchors at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from orchestrator.retrieval import l2_normalize


class TripletSampler:
    """Draws index triplets; deterministic given ``seed`` and the sequence of ``sample`` calls.

    ``stats`` counts, over all calls, the triplets drawn, how many were meant to be semi-hard, and
    ``fallbacks``: semi-hard anchors with no different-word item inside the band, which then get
    the different-word item whose similarity is closest to the band (so the requested share of
    hard negatives is kept, as close to the band as the data allows). ``last_semi_hard`` marks
    which triplets of the latest call were semi-hard (their positions are random, so any slice of
    a batch keeps the mix).
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        labels: Sequence,
        semi_hard_share: float = 0.4,
        band: tuple[float, float] = (0.5, 0.8),
        seed: int = 0,
        chunk: int = 512,
    ) -> None:
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"embeddings must be [n, dim], got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("embeddings contain NaN/inf")
        y = np.asarray(labels)
        if y.ndim != 1 or y.size != x.shape[0]:
            raise ValueError("labels must have one entry per embedding")
        self._check_params(semi_hard_share, band)
        self.semi_hard_share = float(semi_hard_share)
        self.band = (float(band[0]), float(band[1]))
        self._x = l2_normalize(x)  # cosine = inner product
        _, codes = np.unique(y, return_inverse=True)
        self._codes = codes.reshape(-1).astype(np.int64)
        self._counts = np.bincount(self._codes)
        if self._counts.size < 2:
            raise ValueError("triplets need at least two distinct labels")
        # Items grouped by label: group g occupies _order[_start[g] : _start[g] + _counts[g]].
        self._order = np.argsort(self._codes, kind="stable")
        self._start = np.concatenate([[0], np.cumsum(self._counts)[:-1]])
        self._pos_in_group = np.empty_like(self._codes)
        self._pos_in_group[self._order] = np.arange(self._codes.size) - self._start[self._codes[self._order]]
        self._eligible = np.flatnonzero(self._counts[self._codes] >= 2)
        if self._eligible.size == 0:
            raise ValueError("no label has two or more items; anchors need a positive")
        self._chunk = int(chunk)
        self._rng = np.random.default_rng(seed)
        self._stats = {"triplets": 0, "semi_hard": 0, "fallbacks": 0}
        self.last_semi_hard = np.zeros(0, dtype=bool)

    @staticmethod
    def _check_params(share: float, band: tuple[float, float]) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"semi_hard_share must be in [0, 1], got {share}")
        if len(band) != 2 or band[0] > band[1]:
            raise ValueError(f"band must be (low, high) with low <= high, got {band}")

    @property
    def stats(self) -> dict[str, float]:
        out: dict[str, float] = dict(self._stats)
        out["fallback_share"] = self._stats["fallbacks"] / self._stats["semi_hard"] if self._stats["semi_hard"] else 0.0
        return out

    def sample(
        self, n: int, semi_hard_share: float | None = None, band: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` triplets as (anchor_idx, positive_idx, negative_idx) int64 arrays.

        ``semi_hard_share`` / ``band`` override the constructor's values for this call, so a
        training loop can anneal them (thesis section 4.4.3).
        """
        share = self.semi_hard_share if semi_hard_share is None else float(semi_hard_share)
        lo, hi = self.band if band is None else (float(band[0]), float(band[1]))
        self._check_params(share, (lo, hi))
        rng = self._rng
        n_items = self._codes.size

        anchors = self._eligible[rng.integers(0, self._eligible.size, size=n)]
        la = self._codes[anchors]
        # Positive: one of the other count-1 members of the anchor's group (skip the anchor's slot).
        r = rng.integers(0, self._counts[la] - 1)
        r = r + (r >= self._pos_in_group[anchors])
        positives = self._order[self._start[la] + r]
        # Random negative: uniform over the n_items - count items outside the anchor's group.
        r = rng.integers(0, n_items - self._counts[la])
        negatives = self._order[np.where(r < self._start[la], r, r + self._counts[la])]

        n_semi = int(round(share * n))
        semi = np.zeros(n, dtype=bool)
        if n_semi:
            pos = rng.choice(n, size=n_semi, replace=False)
            semi[pos] = True
            negatives[pos] = self._semi_hard_negatives(anchors[pos], lo, hi)
        self.last_semi_hard = semi
        self._stats["triplets"] += n
        self._stats["semi_hard"] += n_semi
        return anchors, positives, negatives

    def _semi_hard_negatives(self, anchors: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """For each anchor: a uniform random different-label item with cosine in [lo, hi], or the
        different-label item closest to the band when none is inside it."""
        out = np.empty(anchors.size, dtype=np.int64)
        n_items = self._codes.size
        for start in range(0, anchors.size, self._chunk):
            a = anchors[start : start + self._chunk]
            sims = self._x[a] @ self._x.T  # [c, N]
            other = self._codes[None, :] != self._codes[a][:, None]
            in_band = other & (sims >= lo) & (sims <= hi)
            # Uniform choice among each row's candidates: the u-th of its cnt in-band items, read
            # from the row-major list of in-band positions (no per-item random numbers needed).
            cnt = in_band.sum(axis=1)
            flat = np.flatnonzero(in_band)
            row_start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
            u = np.floor(self._rng.random(a.size) * cnt).astype(np.int64)
            has = cnt > 0
            pick = np.empty(a.size, dtype=np.int64)
            pick[has] = flat[row_start[has] + u[has]] % n_items
            missing = ~has
            if missing.any():
                # Every candidate of these rows is outside the band, so the distance to the band
                # is |s - centre| - half width: the closest one minimises |s - centre|.
                dev = np.abs(sims[missing] - np.float32((lo + hi) / 2))
                dev[~other[missing]] = np.inf
                pick[missing] = np.argmin(dev, axis=1)
                self._stats["fallbacks"] += int(missing.sum())
            out[start : start + a.size] = pick
        return out
