"""CLASP's fusion encoder network (paper sec. 3.2.1, Fig. 2): speech embeddings -> the text space.

Inputs are the frozen, mean-pooled SSL embedding and the spectrogram-CNN embedding of a clip.
Each is standardised with training-set statistics (the authors' inference notebook warns that the
embeddings must be normalised before the fusion network; a z-score per dimension keeps the two
inputs on one scale however different their encoders' ranges are), then transformed by its own
feed-forward branch, then fused:

* ``concat``: the branch outputs are concatenated and passed through an encoder of linear, batch
  normalisation, dropout and activation layers, ending in a linear map to the text dimension;
* ``gating``: LSTM-inspired gates. Each branch proposes a candidate in the text space; gate
  logits for both modalities are computed from the two branch outputs together (as an LSTM's
  gates read the input and the state jointly), and a softmax across the modalities (the
  "modification": a convex combination instead of independent sigmoid gates) gives per-dimension
  weights that sum to 1, so the output is their weighted average.
* ``gating_lstm``: the authors' notebook's reading (``HubertLabseGating``, Training-Evaluation
  notebook). Each modality's candidate ``x`` (as in ``gating``) is updated like an LSTM cell with
  gates that read that modality alone: ``x' = sigmoid(W_i x) * tanh(W_c x) + sigmoid(W_f x) * x``;
  then ONE softmax over all modalities x dimensions (1,536 entries for two 768-d candidates) gives
  the weights, ``out = sum_m w_m * x'_m``. The weights sum to 1 over everything, not per
  dimension, so each is ~1/(M*D) on average and the output's scale is that much smaller than the
  candidates' (the network has to learn large candidates or peaked weights to reach a unit-norm
  target; cosine-based losses do not see the scale). Up to the gates it shares ``gating``'s layers,
  so the two readings differ only in the gating itself.

With one modality (stage 1's spectrogram-only / SSL-only models) the same concat encoder runs on
that single branch, so the three stage-1 models differ only in what they see.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MODALITIES = ("ssl", "spectrogram")  # the fusion inputs, in the order they are concatenated


def make_activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01)
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown activation {name!r}")


class Standardize(nn.Module):
    """Per-dimension z-score with statistics fitted on training data; kept as buffers so the
    checkpoint carries them to evaluation (a model fitted on one split is applied to another)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: np.ndarray) -> None:
        x64 = np.asarray(x, dtype=np.float64)
        self.mean.copy_(torch.from_numpy(x64.mean(axis=0)).to(self.mean))
        # a constant dimension would divide by zero; it carries no information, so it maps to 0
        self.std.copy_(torch.from_numpy(np.maximum(x64.std(axis=0), 1e-6)).to(self.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Branch(nn.Module):
    """The feed-forward transform of one input embedding (Fig. 2, "initial transformations")."""

    def __init__(self, in_dim: int, width: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.norm = Standardize(in_dim)
        self.net = nn.Sequential(nn.Linear(in_dim, width), nn.BatchNorm1d(width), make_activation(activation),
                                 nn.Dropout(dropout), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(x))


class ConcatFusion(nn.Module):
    """Concatenated branch outputs -> linear, batch norm, dropout, activation -> linear."""

    def __init__(self, n_inputs: int, width: int, out_dim: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_inputs * width, width), nn.BatchNorm1d(width), nn.Dropout(dropout),
                                 make_activation(activation), nn.Linear(width, out_dim))

    def forward(self, branches: list[torch.Tensor]) -> tuple[torch.Tensor, None]:
        return self.net(torch.cat(branches, dim=-1)), None


class GatingFusion(nn.Module):
    """Softmax-gated average of per-modality candidates (see the module docstring).

    ``forward`` returns the fused embedding ``[B, out]`` and the weights ``[B, M, out]`` (M
    modalities; they sum to 1 over M for every item and dimension).
    """

    def __init__(self, n_inputs: int, width: int, out_dim: int, dropout: float, activation: str) -> None:
        super().__init__()
        if n_inputs < 2:
            raise ValueError("gating fuses at least two modalities")
        self.n_inputs, self.out_dim = n_inputs, out_dim
        self.mix = nn.Sequential(nn.Dropout(dropout), make_activation(activation))
        self.gates = nn.Linear(n_inputs * width, n_inputs * out_dim)
        self.candidates = nn.ModuleList(nn.Linear(width, out_dim) for _ in range(n_inputs))

    def forward(self, branches: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h = [self.mix(b) for b in branches]
        logits = self.gates(torch.cat(h, dim=-1)).view(-1, self.n_inputs, self.out_dim)
        weights = torch.softmax(logits, dim=1)
        cands = torch.stack([c(x) for c, x in zip(self.candidates, h)], dim=1)  # [B, M, out]
        return (weights * cands).sum(dim=1), weights


class LSTMGatingFusion(nn.Module):
    """The notebook's LSTM-style gating (see the module docstring).

    ``forward`` returns the fused embedding ``[B, out]`` and the weights ``[B, M, out]``, which
    sum to 1 over BOTH modalities and dimensions for every item (one softmax over ``M * out``).
    """

    def __init__(self, n_inputs: int, width: int, out_dim: int, dropout: float, activation: str) -> None:
        super().__init__()
        if n_inputs < 2:
            raise ValueError("gating fuses at least two modalities")
        self.n_inputs, self.out_dim = n_inputs, out_dim
        self.mix = nn.Sequential(nn.Dropout(dropout), make_activation(activation))
        self.candidates = nn.ModuleList(nn.Linear(width, out_dim) for _ in range(n_inputs))
        # per modality: input gate, forget gate, new cell content (each reads its own candidate)
        self.input_gates = nn.ModuleList(nn.Linear(out_dim, out_dim) for _ in range(n_inputs))
        self.forget_gates = nn.ModuleList(nn.Linear(out_dim, out_dim) for _ in range(n_inputs))
        self.cells = nn.ModuleList(nn.Linear(out_dim, out_dim) for _ in range(n_inputs))
        self.weight = nn.Linear(n_inputs * out_dim, n_inputs * out_dim)

    def update(self, m: int, x: torch.Tensor) -> torch.Tensor:
        """Modality ``m``'s candidate after its cell update: ``i * c + f * x``."""
        i = torch.sigmoid(self.input_gates[m](x))
        f = torch.sigmoid(self.forget_gates[m](x))
        return i * torch.tanh(self.cells[m](x)) + f * x

    def forward(self, branches: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        states = [self.update(m, c(self.mix(b))) for m, (c, b) in enumerate(zip(self.candidates, branches))]
        flat = torch.cat(states, dim=-1)  # [B, M * out]
        weights = torch.softmax(self.weight(flat), dim=-1).view(-1, self.n_inputs, self.out_dim)
        return (weights * flat.view(-1, self.n_inputs, self.out_dim)).sum(dim=1), weights


FUSIONS = {"concat": ConcatFusion, "gating": GatingFusion, "gating_lstm": LSTMGatingFusion}


class FusionEncoder(nn.Module):
    """Speech embeddings of the present modalities -> one embedding in the text space.

    ``in_dims``: input size per modality (``ssl`` and/or ``spectrogram``); ``out_dim``: the frozen
    text encoder's dimension. ``forward`` takes the raw (unstandardised) inputs by modality name.
    """

    def __init__(self, in_dims: dict[str, int], out_dim: int, fusion: str = "concat", width: int = 768,
                 dropout: float = 0.15, activation: str = "leaky_relu") -> None:
        super().__init__()
        self.modalities = [m for m in MODALITIES if m in in_dims]
        if not self.modalities:
            raise ValueError(f"no fusion input among {sorted(in_dims)}; expected some of {MODALITIES}")
        self.branches = nn.ModuleDict({m: Branch(in_dims[m], width, dropout, activation) for m in self.modalities})
        n = len(self.modalities)
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; known: {sorted(FUSIONS)}")
        self.fusion: nn.Module = FUSIONS[fusion](n, width, out_dim, dropout, activation)
        self.out_dim = out_dim

    def fit_input_statistics(self, inputs: dict[str, np.ndarray]) -> None:
        for m in self.modalities:
            self.branches[m].norm.fit(inputs[m])

    def forward_with_weights(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        missing = [m for m in self.modalities if m not in inputs]
        if missing:
            raise KeyError(f"fusion inputs missing: {missing}")
        return self.fusion([self.branches[m](inputs[m]) for m in self.modalities])

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.forward_with_weights(inputs)[0]
