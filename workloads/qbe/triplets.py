"""Triplet sampling for the QbE head (thesis sections 3.3.4 and 3.4.2).

Each triplet is (anchor, positive, negative). Following 3.3.4 ("(1) randomly sampling an anchor
word, (2) selecting a random positive sample among anchor class samples, (3) selecting a
negative ..."), the anchor *word* is drawn uniformly among words with at least two clips and the
anchor clip uniformly within it, so a word with 15 clips is not 7x more often an anchor than one
with 2; the positive is another clip of that word, the negative a clip of a different word.

A share of the negatives (40 % in the thesis) are *semi-hard*: their cosine similarity to the
anchor, measured on the ORIGINAL (untransformed) embeddings, lies in a band (0.5-0.8). Those are
the confusable words the head must learn to push apart; random negatives alone are mostly easy
once the head has learnt a coarse structure.

When an anchor has no other-word item inside the band, its negative stays the uniformly random
one the non-semi-hard triplets get. Picking the item *closest to the band* instead looks harmless
but inverts the intent when every cosine lies above the band, as it does for raw mean-pooled
wav2vec 2.0 (the thesis' Tables 4.5/4.6 list neighbours at 0.93-0.997): the item closest to the
band is then the anchor's *least* similar word, and "semi-hard" training silently becomes
easiest-negative training. A fallback must never be easier than a random negative. How often it
happens is counted (``last_fallback_share``, logged per epoch as
``train/semi_hard_fallback_share``), and for encoders whose cosines are all high the band can be
given relative to each anchor's own similarity distribution (``band_mode="percentile"``: the
band's ends are quantiles of the anchor's cosines to all other-word items), which always holds
candidates.

Memory: the full N x N cosine matrix (400 MB at 10k items) is never held; similarities are
computed only for the anchors that need a semi-hard negative, a chunk of anchors at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from orchestrator.retrieval import l2_normalize

BandMode = Literal["cosine", "percentile"]


class TripletSampler:
    """Draws index triplets; deterministic given ``seed`` and the sequence of ``sample`` calls.

    ``band_mode="cosine"``: ``band`` is an absolute cosine range in [-1, 1].
    ``band_mode="percentile"``: ``band`` is a quantile range in [0, 1] of each anchor's cosines
    to the other-word items (e.g. (0.9, 0.99): the anchor's top 10 % most similar words, minus
    the top 1 %).

    ``stats`` counts, over all calls, the triplets drawn, how many were meant to be semi-hard and
    ``fallbacks`` (semi-hard slots whose anchor had no candidate in the band and kept a random
    negative); ``last_fallback_share`` is that share for the latest call only. ``last_semi_hard``
    marks which triplets of the latest call were semi-hard *and* got an in-band negative (their
    positions are random, so any slice of a batch keeps the mix).
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        labels: Sequence,
        semi_hard_share: float = 0.4,
        band: tuple[float, float] = (0.5, 0.8),
        seed: int = 0,
        chunk: int = 512,
        band_mode: BandMode = "cosine",
    ) -> None:
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"embeddings must be [n, dim], got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("embeddings contain NaN/inf")
        y = np.asarray(labels)
        if y.ndim != 1 or y.size != x.shape[0]:
            raise ValueError("labels must have one entry per embedding")
        if band_mode not in ("cosine", "percentile"):
            raise ValueError(f"band_mode must be 'cosine' or 'percentile', got {band_mode!r}")
        self.band_mode: BandMode = band_mode
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
        self._anchor_words = np.flatnonzero(self._counts >= 2)
        if self._anchor_words.size == 0:
            raise ValueError("no label has two or more items; anchors need a positive")
        self._chunk = int(chunk)
        self._rng = np.random.default_rng(seed)
        self._stats = {"triplets": 0, "semi_hard": 0, "fallbacks": 0}
        self.last_semi_hard = np.zeros(0, dtype=bool)
        self.last_fallback_share = 0.0

    def _check_params(self, share: float, band: tuple[float, float]) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"semi_hard_share must be in [0, 1], got {share}")
        if len(band) != 2 or band[0] > band[1]:
            raise ValueError(f"band must be (low, high) with low <= high, got {band}")
        if self.band_mode == "percentile" and not (0.0 <= band[0] and band[1] <= 1.0):
            raise ValueError(f"a percentile band is a quantile range within [0, 1], got {band}")

    @property
    def stats(self) -> dict[str, float]:
        out: dict[str, float] = dict(self._stats)
        out["fallback_share"] = self._stats["fallbacks"] / self._stats["semi_hard"] if self._stats["semi_hard"] else 0.0
        return out

    def rng_state(self) -> dict:
        """Where this sampler's random stream is (saved with a trial's checkpoint)."""
        return self._rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state

    def sample(
        self, n: int, semi_hard_share: float | None = None, band: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` triplets as (anchor_idx, positive_idx, negative_idx) int64 arrays.

        ``semi_hard_share`` / ``band`` override the constructor's values for this call, so a
        training loop can anneal them (thesis sections 4.1 and 4.4.3).
        """
        share = self.semi_hard_share if semi_hard_share is None else float(semi_hard_share)
        lo, hi = self.band if band is None else (float(band[0]), float(band[1]))
        self._check_params(share, (lo, hi))
        rng = self._rng
        n_items = self._codes.size

        # Anchor word uniform over words with a positive, then a clip uniform within that word.
        la = self._anchor_words[rng.integers(0, self._anchor_words.size, size=n)]
        anchors = self._order[self._start[la] + rng.integers(0, self._counts[la])]
        # Positive: one of the other count-1 members of the anchor's group (skip the anchor's slot).
        r = rng.integers(0, self._counts[la] - 1)
        r = r + (r >= self._pos_in_group[anchors])
        positives = self._order[self._start[la] + r]
        # Random negative: uniform over the n_items - count items outside the anchor's group.
        r = rng.integers(0, n_items - self._counts[la])
        negatives = self._order[np.where(r < self._start[la], r, r + self._counts[la])]

        n_semi = int(round(share * n))
        semi = np.zeros(n, dtype=bool)
        fallbacks = 0
        if n_semi:
            pos = rng.choice(n, size=n_semi, replace=False)
            picks = self._semi_hard_negatives(anchors[pos], lo, hi)
            found = picks >= 0
            negatives[pos[found]] = picks[found]  # the others keep their random negative
            semi[pos[found]] = True
            fallbacks = int((~found).sum())
        self.last_semi_hard = semi
        self.last_fallback_share = fallbacks / n_semi if n_semi else 0.0
        self._stats["triplets"] += n
        self._stats["semi_hard"] += n_semi
        self._stats["fallbacks"] += fallbacks
        return anchors, positives, negatives

    def _semi_hard_negatives(self, anchors: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """For each anchor: a uniform random different-label item inside the band, or -1 when
        the band holds none (the caller then keeps the random negative)."""
        out = np.empty(anchors.size, dtype=np.int64)
        n_items = self._codes.size
        for start in range(0, anchors.size, self._chunk):
            a = anchors[start : start + self._chunk]
            sims = self._x[a] @ self._x.T  # [c, N]
            other = self._codes[None, :] != self._codes[a][:, None]
            if self.band_mode == "percentile":
                # the band's ends are quantiles of each anchor's own other-word cosines (lower /
                # higher order statistic, so the band always holds an item): a row sort with the
                # same-word items pushed to the end is ~3x faster than np.nanquantile
                ranked = np.sort(np.where(other, sims, np.inf), axis=1)
                last = other.sum(axis=1) - 1
                lo_v = np.take_along_axis(ranked, np.floor(lo * last).astype(np.int64)[:, None], axis=1)
                hi_v = np.take_along_axis(ranked, np.ceil(hi * last).astype(np.int64)[:, None], axis=1)
            else:
                lo_v, hi_v = np.float32(lo), np.float32(hi)
            in_band = other & (sims >= lo_v) & (sims <= hi_v)
            # Uniform choice among each row's candidates: the u-th of its cnt in-band items, read
            # from the row-major list of in-band positions (no per-item random numbers needed).
            cnt = in_band.sum(axis=1)
            flat = np.flatnonzero(in_band)
            row_start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
            u = np.floor(self._rng.random(a.size) * cnt).astype(np.int64)
            has = cnt > 0
            pick = np.full(a.size, -1, dtype=np.int64)
            pick[has] = flat[row_start[has] + u[has]] % n_items
            out[start : start + a.size] = pick
        return out
