"""Text-Aware Attention Pooling (TAP; Xin et al. 2023, thesis section 3.6).

Mean pooling summarises a clip the same way for every query, although a caption usually
describes only some of its frames. TAP lets each text attend to the frames of each clip and
pools them into a text-conditioned audio embedding ``z_{a|t}``; the retrieval score is the cosine
of the text with that embedding. Thesis 3.6.1::

    Q_t = LN(c_t) W_q,  K_a = LN(c_a) W_k,  V_a = LN(c_a) W_v           (W_q,k,v: D -> D_p)
    Attention(Q_t, K_a, V_a) = softmax(Q_t K_a^T / sqrt(D_p)) V_a
    z_{a|t} = LN(Attention(Q_t, K_a, V_a) W_O)                            (W_O: D_p -> D)

Details taken from the thesis' code (PR-Text-To-Audio-Retrieval ``TextAwareAttentionPooling``)
where the formula leaves them open:

* there is no residual connection; the three LN are *one shared* ``LayerNorm(D)`` module;
* all four projections are ``nn.Linear`` with bias;
* the dropout ("0.05 on the scaled dot product result", thesis 3.9) is applied to the
  attention weights (``scaled_dot_product_attention(dropout_p=...)`` in the code);
* the score is ``cos(c_t, z_{a|t})`` with the *un-normalised* text embedding ``c_t``;
* padded frames are excluded from the softmax by a key padding mask.

Everything is batched: one call scores every text against every clip (``[Nt, Na, T]`` attention
logits), no Python loop over clips or texts. ``scores_chunked`` bounds memory for evaluation
(e.g. 5k captions x 1k clips x 750 frames) by walking over blocks of texts and clips.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class TAP(nn.Module):
    """Text-aware attention pooling head. ``d_model`` = D (shared space), ``d_proj`` = D_p."""

    def __init__(self, d_model: int = 1024, d_proj: int = 2048, dropout: float = 0.05) -> None:
        super().__init__()
        self.d_model = d_model
        self.d_proj = d_proj
        self.dropout = float(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.w_q = nn.Linear(d_model, d_proj)
        self.w_k = nn.Linear(d_model, d_proj)
        self.w_v = nn.Linear(d_model, d_proj)
        self.w_o = nn.Linear(d_proj, d_model)

    # ---- pieces ------------------------------------------------------------------------------

    @staticmethod
    def _check(text: torch.Tensor, frames: torch.Tensor, frame_mask: torch.Tensor) -> None:
        if text.dim() != 2 or frames.dim() != 3 or frame_mask.shape != frames.shape[:2]:
            raise ValueError(
                "expected text [Nt, D], frames [Na, T, D], frame_mask [Na, T]; got "
                f"{tuple(text.shape)}, {tuple(frames.shape)}, {tuple(frame_mask.shape)}"
            )
        if frame_mask.dtype != torch.bool:
            raise ValueError("frame_mask must be bool (True = real frame)")
        if not bool(frame_mask.any(dim=1).all()):
            bad = torch.nonzero(~frame_mask.any(dim=1)).flatten().tolist()[:5]
            raise ValueError(f"clips without any real frame (first indices {bad})")

    def _queries(self, text: torch.Tensor) -> torch.Tensor:
        """``[Nt, D_p]``, pre-scaled by 1/sqrt(D_p)."""
        return self.w_q(self.norm(text)) / math.sqrt(self.d_proj)

    def _attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """Masked softmax attention of every query to every clip: ``[Nt, Na, values.shape[-1]]``."""
        logits = torch.einsum("nd,atd->nat", q, keys)  # [Nt, Na, T]
        logits = logits.masked_fill(~frame_mask.unsqueeze(0), float("-inf"))
        weights = torch.softmax(logits, dim=-1)
        weights = F.dropout(weights, p=self.dropout, training=self.training)
        return torch.einsum("nat,atd->nad", weights, values)

    # ---- API ---------------------------------------------------------------------------------

    def forward(self, text: torch.Tensor, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """Audio embeddings conditioned on each text: ``[Nt, Na, D]`` (``z_{a_j | t_i}``).

        ``text`` ``[Nt, D]``, ``frames`` ``[Na, T, D]``, ``frame_mask`` ``[Na, T]`` bool (True =
        real frame; every clip needs at least one).
        """
        self._check(text, frames, frame_mask)
        normed = self.norm(frames)
        pooled = self._attend(self._queries(text), self.w_k(normed), self.w_v(normed), frame_mask)
        return self.norm(self.w_o(pooled))

    def scores(self, text: torch.Tensor, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """``[Nt, Na]``: cosine similarity of text i with its own view of clip j, ``z_{a_j|t_i}``."""
        z = self(text, frames, frame_mask)
        return torch.einsum("nd,nad->na", F.normalize(text, dim=-1), F.normalize(z, dim=-1))

    def scores_chunked(
        self,
        text: torch.Tensor,
        frames: torch.Tensor,
        frame_mask: torch.Tensor,
        chunk: int = 256,
        audio_chunk: int = 256,
    ) -> torch.Tensor:
        """Same values as :meth:`scores` (eval mode), over blocks of ``chunk`` texts x ``audio_chunk`` clips.

        For evaluation (e.g. 5k captions x 1k clips x 750 frames, where :meth:`scores` would need
        ``Nt * Na * (T + D_p)`` floats at once). Nothing ``D_p``-wide is materialised, using two
        exact rewrites of the same formula:

        * keys folded into queries: ``q . (W_k x + b_k) = (q W_k) . x + q . b_k``; the last term is
          the same for every frame of a clip, and softmax ignores a per-row constant;
        * ``W_O`` folded into values: ``(sum_t w_t (W_v x_t + b_v)) W_O^T = sum_t w_t x_t (W_O W_v)^T
          + W_O b_v`` because the attention weights sum to 1 (no dropout, hence eval only).

        Peak memory per block: ``audio_chunk * T * 2D + chunk * audio_chunk * (T + D)`` floats.
        """
        if chunk < 1 or audio_chunk < 1:
            raise ValueError(f"chunk and audio_chunk must be >= 1, got {chunk}, {audio_chunk}")
        if self.training and self.dropout > 0:
            raise ValueError("scores_chunked is exact only without dropout: call .eval() first")
        self._check(text, frames, frame_mask)
        text_unit = F.normalize(text, dim=-1)
        q = self._queries(text) @ self.w_k.weight  # [Nt, D]
        w_ov = self.w_o.weight @ self.w_v.weight  # [D, D]
        b_ov = self.w_o.weight @ self.w_v.bias  # [D]
        columns = []
        for a0 in range(0, frames.shape[0], audio_chunk):
            normed = self.norm(frames[a0 : a0 + audio_chunk])
            values = F.linear(normed, w_ov, b_ov)  # [A, T, D]
            mask = frame_mask[a0 : a0 + audio_chunk]
            rows = []
            for t0 in range(0, text.shape[0], chunk):
                z = self.norm(self._attend(q[t0 : t0 + chunk], normed, values, mask) + self.w_o.bias)
                rows.append(torch.einsum("nd,nad->na", text_unit[t0 : t0 + chunk], F.normalize(z, dim=-1)))
            columns.append(torch.cat(rows, dim=0))
        return torch.cat(columns, dim=1)
