"""The QbE embedding transformation network (thesis section 3.4.1).

A shallow head on frozen, mean-pooled wav2vec 2.0 word embeddings: f(x) = g(x) / ||g(x)||_2 with
g(x) = W2 ReLU(W1 x + b1) + b2 (1024 -> 512 -> 256 in the thesis). The output lies on the unit
hypersphere, so retrieval by inner product (FAISS ``IndexFlatIP``) is cosine retrieval.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingHead(nn.Module):
    """Linear -> ReLU -> Linear -> L2 normalise (eq. in section 3.4.1)."""

    def __init__(self, in_dim: int, hidden: int = 512, out_dim: int = 256) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # eps keeps an all-zero pre-activation (possible after ReLU) from producing NaN.
        return F.normalize(self.fc2(F.relu(self.fc1(x))), p=2.0, dim=-1, eps=1e-12)
