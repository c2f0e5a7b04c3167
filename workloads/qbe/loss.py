"""Triplet margin loss and the thesis' margin annealing (sections 3.4.2 and 4.4.3).

The margin grows linearly during training (0.55 -> 0.8 in the thesis): a small margin first
lets a coarse global structure form, a larger one later asks for finer separation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def triplet_margin_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float
) -> torch.Tensor:
    """mean(max(0, ||a - p||_2 - ||a - n||_2 + margin)) over the batch.

    Uses PyTorch's implementation, whose pairwise distance adds eps=1e-6 inside the norm: that
    keeps the gradient finite when a == p (identical embeddings), at a cost of ~1e-6 in value.
    """
    return F.triplet_margin_loss(anchor, positive, negative, margin=float(margin), p=2.0, reduction="mean")


def linear_schedule(epoch: int, total_epochs: int, start: float, end: float) -> float:
    """Value at a 0-based ``epoch``: ``start`` at epoch 0, ``end`` at epoch ``total_epochs - 1``,
    linear in between (clamped outside). A single-epoch run uses ``start``. The thesis anneals
    the margin, the hard-triplet share and the hard-triplet similarity this way (4.1, 4.4.3)."""
    if total_epochs < 1:
        raise ValueError("total_epochs must be >= 1")
    if total_epochs == 1:
        return float(start)
    t = min(max(epoch, 0), total_epochs - 1) / (total_epochs - 1)
    return float(start + (end - start) * t)


def annealed_margin(epoch: int, total_epochs: int, start: float = 0.55, end: float = 0.8) -> float:
    """The triplet margin at ``epoch`` (thesis 3.4.2: 0.55 -> 0.8 over the whole training)."""
    return linear_schedule(epoch, total_epochs, start, end)
