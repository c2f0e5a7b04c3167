"""The text space a CLASP system is trained towards and scored in: raw, centred or z-scored text
embeddings (issue 18, item 7).

Why: a frozen sentence encoder's unit vectors share one large common component (multilingual-e5
cosines between unrelated sentences are 0.7-0.9, so about 80 % of every target is the same
vector). LASP regresses the speech output onto the raw target with a Huber loss; a prediction
pulled towards that shared mean already scores well on every target and matches every query about
equally, so the loss barely rewards what tells sentences apart. Removing the training split's mean
(``centred``), and optionally dividing by its per-dimension standard deviation (``zscore``), leaves
the part that differs between sentences.

``raw`` is the paper's reading and the default. With ``centred`` / ``zscore``:

* the statistics are the mean (and std) of the TRAINING split's English text embeddings, fitted
  once before training and kept as buffers, so the checkpoint carries them and evaluation uses the
  same transform on validation and test (never statistics of the split being evaluated);
* the training targets become ``T(text) = (text - mean) [/ std]``: the Huber target of LASP and
  the text side of CLASP's contrastive loss (which then L2-normalises ``T(text)``);
* ranking and Macro-F1 use ``T`` on the text side too: queries (in whatever language; the English
  training statistics apply to translations as well) are ``T(query)``. The trained speech side is
  NOT transformed: the network's output already lives in the transformed space, since that is what
  it was trained to match. The ASR baseline's "speech" side is itself text-encoder output (the
  transcripts' embeddings), so it gets the same ``T``;
* cosines are taken between ``T(query)`` and the speech side, so Macro-F1's fixed threshold (0.5)
  and the threshold chosen on validation are thresholds on cosines in the transformed space, whose
  spread differs from the raw one (unrelated pairs move from ~0.8 towards 0).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

TextTargetsMode = Literal["raw", "centred", "zscore"]
MODES: tuple[str, ...] = ("raw", "centred", "zscore")
MIN_STD = 1e-6  # a constant dimension carries nothing; dividing by ~0 would blow it up


class TextTargets(nn.Module):
    """``T``: the identity (``raw``), or the training mean removed (``centred``), or a per-dimension
    z-score (``zscore``). Buffers exist only for the two fitted modes, so a ``raw`` model's state
    dict (and every checkpoint written before this option) is unchanged."""

    def __init__(self, mode: str, dim: int) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"text targets must be one of {MODES}, got {mode!r}")
        self.mode = mode
        if mode != "raw":
            self.register_buffer("mean", torch.zeros(dim))
        if mode == "zscore":
            self.register_buffer("std", torch.ones(dim))

    def fit(self, text: np.ndarray) -> None:
        """Statistics of the training split's text embeddings ``[N, D]`` (float64 sums)."""
        if self.mode == "raw":
            return
        x = np.asarray(text, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"fit needs a non-empty [N, D] array, got shape {x.shape}")
        self.mean.copy_(torch.from_numpy(x.mean(axis=0)).to(self.mean))
        if self.mode == "zscore":
            self.std.copy_(torch.from_numpy(np.maximum(x.std(axis=0), MIN_STD)).to(self.std))

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        if self.mode == "raw":
            return text
        out = text - self.mean.to(text.dtype)
        return out / self.std.to(text.dtype) if self.mode == "zscore" else out

    @torch.no_grad()
    def numpy(self, text: np.ndarray) -> np.ndarray:
        """``T`` on a float32 array (evaluation side)."""
        if self.mode == "raw":
            return text
        x = torch.from_numpy(np.asarray(text, np.float32)).to(self.mean.device)
        return self(x).cpu().numpy()
