"""Contrastive losses of the TAR thesis (section 3.5): symmetric NT-Xent and the sigmoid loss.

Both take a score matrix laid out ``[texts, audios]`` (``*_from_scores``) or the two embedding
sets (cosine similarity is computed inside), plus the clip id of every audio and of the audio
every text describes. Positives come from those ids, not from the diagonal, so:

* the 5 captions of one Clotho clip are all positives of that clip;
* a clip sampled twice into one batch (common: every clip appears 5 times per epoch, once per
  caption) has both copies as positives of each of its captions, instead of one copy being a
  false negative of the other's caption.

Multi-worker training: gather embeddings with :func:`orchestrator.distributed.gather_with_grad`
and ids with ``gather_no_grad`` and call these functions on the gathered (global) batch on every
worker. Every worker then computes the same loss as one worker with the whole batch, and after
DDP's gradient averaging every parameter gradient equals the single-worker one (see the
``orchestrator.distributed`` docstring for the bookkeeping; ``tests/test_tar_losses.py`` checks
it on 2 gloo processes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SIGMOID_PARAM_LR = 0.1  # thesis 3.9: the sigmoid loss' t and b train with their own, high LR


def positive_mask(audio_ids: torch.Tensor, text_audio_ids: torch.Tensor) -> torch.Tensor:
    """``[Nt, Na]`` bool: text i and audio j are a positive pair iff they share the clip id.

    Raises if a text has no positive audio or an audio no positive text: the loss would be
    ``-log 0`` there, which always means a batching bug (a caption whose clip was dropped).
    """
    if audio_ids.dim() != 1 or text_audio_ids.dim() != 1:
        raise ValueError("audio_ids and text_audio_ids must be 1-D id tensors")
    pos = text_audio_ids.reshape(-1, 1) == audio_ids.reshape(1, -1)
    if not bool(pos.any(dim=1).all()):
        bad = torch.nonzero(~pos.any(dim=1)).flatten().tolist()[:5]
        raise ValueError(f"texts without a positive audio in the batch (first indices {bad})")
    if not bool(pos.any(dim=0).all()):
        bad = torch.nonzero(~pos.any(dim=0)).flatten().tolist()[:5]
        raise ValueError(f"audios without a positive text in the batch (first indices {bad})")
    return pos


def cosine_scores(audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``[Nt, Na]`` cosine similarities: both sides L2-normalised, then ``text @ audio.T``."""
    return F.normalize(text, dim=-1) @ F.normalize(audio, dim=-1).T


def nt_xent_from_scores(
    scores: torch.Tensor, audio_ids: torch.Tensor, text_audio_ids: torch.Tensor, tau: float
) -> torch.Tensor:
    """Symmetric multi-positive NT-Xent on a ``[Nt, Na]`` similarity matrix ``s``.

    With ``l = s / tau`` and P the positive mask (:func:`positive_mask`)::

        L_t2a = -(1/Nt) sum_i log( sum_{j in P(i,.)} exp(l_ij) / sum_j exp(l_ij) )
        L_a2t = -(1/Na) sum_j log( sum_{i in P(.,j)} exp(l_ij) / sum_i exp(l_ij) )
        L     = (L_t2a + L_a2t) / 2

    With exactly one positive per row and column (a batch of N distinct (clip, caption) pairs,
    P = identity) this is the thesis' eq. (3.2),
    ``-1/(2N) (sum_i log softmax_row(l)_ii + sum_i log softmax_col(l)_ii)``.
    The salsa / PR-Text-To-Audio-Retrieval code instead averages ``log softmax`` over every
    positive *entry* (``-0.5 (mean_{P} log_softmax(l, 0) + mean_{P} log_softmax(l, 1))``): it is
    identical when P is a permutation, but with duplicates it treats each copy as a separate
    target (loss floor log 2 for a row with two positives), while the form here lets the row put
    its probability mass on either copy (floor 0) and weights every row equally.
    Computed with ``logsumexp`` in float32 or wider.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [Nt, Na], got shape {tuple(scores.shape)}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    pos = positive_mask(audio_ids.to(scores.device), text_audio_ids.to(scores.device))
    logits = scores.float() / tau if scores.dtype in (torch.float16, torch.bfloat16) else scores / tau
    neg_inf = torch.finfo(logits.dtype).min
    pos_logits = logits.masked_fill(~pos, neg_inf)
    t2a = torch.logsumexp(logits, dim=1) - torch.logsumexp(pos_logits, dim=1)  # [Nt]
    a2t = torch.logsumexp(logits, dim=0) - torch.logsumexp(pos_logits, dim=0)  # [Na]
    return 0.5 * (t2a.mean() + a2t.mean())


def nt_xent_per_positive_from_scores(
    scores: torch.Tensor, audio_ids: torch.Tensor, text_audio_ids: torch.Tensor, tau: float
) -> torch.Tensor:
    """The salsa / thesis-code form of multi-positive NT-Xent: ``log_softmax`` averaged over every
    positive *entry* of the batch's pair layout, ``-0.5 (mean_I log_softmax(C, 0) + mean_I
    log_softmax(C, 1))`` with ``C = s / tau`` and ``I`` = same clip.

    That code scores one audio per (clip, caption) pair, so a clip sampled twice fills two
    identical columns. Here a clip appears once among the audios, so the columns are first
    expanded back to that layout (``C[:, k]`` = the column of text k's clip): the value is then
    exactly the code's for any batch. It equals :func:`nt_xent_from_scores` when every clip has
    one caption in the batch (``I`` a permutation) and is larger with duplicates (each copy is a
    separate target; a row with two positives has floor log 2).
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [Nt, Na], got shape {tuple(scores.shape)}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    audio_ids, text_audio_ids = audio_ids.to(scores.device), text_audio_ids.to(scores.device)
    pos = positive_mask(audio_ids, text_audio_ids)
    column = pos.float().argmax(dim=1)  # the (first) column of each text's clip
    logits = scores.float() if scores.dtype in (torch.float16, torch.bfloat16) else scores
    pairs = logits[:, column] / tau  # [Nt, Nt]: text i vs the clip of text k
    same = text_audio_ids.reshape(-1, 1) == text_audio_ids.reshape(1, -1)
    return -0.5 * (F.log_softmax(pairs, dim=0)[same].mean() + F.log_softmax(pairs, dim=1)[same].mean())


def nt_xent(
    audio: torch.Tensor,
    text: torch.Tensor,
    audio_ids: torch.Tensor,
    text_audio_ids: torch.Tensor,
    tau: float,
) -> torch.Tensor:
    """NT-Xent of audio ``[Na, D]`` and text ``[Nt, D]`` embeddings (L2-normalised inside).

    See :func:`nt_xent_from_scores` for the formula; the thesis uses a fixed ``tau = 0.05``.
    """
    return nt_xent_from_scores(cosine_scores(audio, text), audio_ids, text_audio_ids, tau)


class SigmoidLoss(nn.Module):
    """SigLIP's pairwise sigmoid loss, thesis eq. (3.3), with learnable log-temperature and bias.

    For every (text i, audio j) pair, ``z_ij = +1`` if positive (:func:`positive_mask`) else -1::

        L = -(1/Nt) sum_i sum_j log sigmoid( z_ij * (exp(t) * c * s_ij + b) )

    * ``t`` is a *log*-temperature (the scale is ``exp(t)``), as in SigLIP and the thesis' code
      (``t = exp(self.t)``); "initialised with t = 1 and b = -10" (thesis 3.9) therefore means a
      starting scale of e ~ 2.72 and a bias of -10 (a prior that almost all pairs are negatives).
    * The thesis prints eq. (3.3) as ``log 1/(1 + exp(z_ij(-t x.y + b)))``, which flips the
      bias' sign with respect to SigLIP's own pseudo-code and the thesis' code (``logits =
      s * t + b``); the code's sign is used here (with b = -10 it is the one that makes sense).
    * Normalisation: the double sum is divided by the number of texts ``Nt`` (the ``|N|`` of
      eq. 3.3 and ``logits.size(0)`` in the thesis' code), not by the number of pairs.
    * ``c`` (``input_scale``) is 1 in eq. (3.3). The thesis' code applies the sigmoid loss to
      similarities already divided by the NT-Xent temperature (``C / tau``, tau = 0.05), i.e.
      ``c = 20``; the workload's ``sigmoid_input_scale`` defaults to that, the code's setting.
    * The thesis' code uses diagonal labels only (``2 * eye - 1``); the id-based mask here is the
      same for distinct clips and treats a duplicated clip's copies as positives.

    ``t`` and ``b`` are ordinary parameters of this module: give them their own optimizer group
    (``param_group()``, LR 0.1 in the thesis).
    """

    def __init__(self, init_t: float = 1.0, init_b: float = -10.0, input_scale: float = 1.0) -> None:
        super().__init__()
        self.t = nn.Parameter(torch.tensor(float(init_t)))
        self.b = nn.Parameter(torch.tensor(float(init_b)))
        self.input_scale = float(input_scale)

    @property
    def scale(self) -> torch.Tensor:
        """The effective temperature ``exp(t)``."""
        return self.t.exp()

    def param_group(self, lr: float = SIGMOID_PARAM_LR) -> dict:
        """An optimizer parameter group for ``t`` and ``b`` with their own learning rate."""
        return {"params": list(self.parameters()), "lr": lr}

    def from_scores(
        self, scores: torch.Tensor, audio_ids: torch.Tensor, text_audio_ids: torch.Tensor
    ) -> torch.Tensor:
        """The loss on a ``[Nt, Na]`` similarity matrix (e.g. TAP scores)."""
        if scores.dim() != 2:
            raise ValueError(f"scores must be [Nt, Na], got shape {tuple(scores.shape)}")
        pos = positive_mask(audio_ids.to(scores.device), text_audio_ids.to(scores.device))
        s = scores.float() if scores.dtype in (torch.float16, torch.bfloat16) else scores
        logits = self.scale * (self.input_scale * s) + self.b
        z = pos.to(logits.dtype) * 2 - 1
        return -F.logsigmoid(z * logits).sum() / scores.shape[0]

    def forward(
        self,
        audio: torch.Tensor,
        text: torch.Tensor,
        audio_ids: torch.Tensor,
        text_audio_ids: torch.Tensor,
    ) -> torch.Tensor:
        """The loss of audio ``[Na, D]`` and text ``[Nt, D]`` embeddings (cosine inside)."""
        return self.from_scores(cosine_scores(audio, text), audio_ids, text_audio_ids)

    def extra_repr(self) -> str:
        return f"t={self.t.item():.4g} (scale {math.exp(self.t.item()):.4g}), b={self.b.item():.4g}, input_scale={self.input_scale:g}"
