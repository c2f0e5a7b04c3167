"""The linking objectives of sections II-A and II-B, as functions of L2-normalised embeddings.

All contrastive terms take ``scale`` = 1 / tau (a tensor, so a learned temperature gets its
gradient) and average over the anchors of the batch (the paper's eq. 5 writes a sum over i; the
mean only rescales the learning rate and keeps the loss comparable across batch sizes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Eq. 1, L_{s<->t}(a, b): row i of ``a`` against all rows of ``b``; its positive is row i.

    Every other row is a negative, also one of the same speaker: the unlabelled systems know
    nothing better (see :func:`workloads.speaker_text.data.random_batches`)."""
    logits = scale * (a @ b.T)
    return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))


def cts(xs: torch.Tensor, xt: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Eq. 2: L_CTS = (L_{s<->t}(x_s, x_t) + L_{s<->t}(x_t, x_s)) / 2."""
    return 0.5 * (info_nce(xs, xt, scale) + info_nce(xt, xs, scale))


def supcon(a: torch.Tensor, b: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor,
           scale: torch.Tensor) -> torch.Tensor:
    """Eq. 5, L^sup_{s<->t}(a, b): for anchor i of ``a``, the mean over its positives p (rows of
    ``b`` with i's speaker label) of -log softmax_j(scale * a_i . b_j)[p].

    How several utterances and descriptions of one speaker become positives of each other, not
    negatives: the P x K sampler (:func:`workloads.speaker_text.data.pk_batches`) puts K
    utterances of each of P speakers in a batch, each paired with a description of its speaker;
    the mask ``labels_a[:, None] == labels_b[None, :]`` then marks, for utterance i, all K
    descriptions of its speaker (its own pair's and the K - 1 others') as P(i), and the same for a
    description against the K utterances. They stay in the softmax's denominator, as in eq. 5;
    only the other speakers' items are pure negatives. An anchor without any positive (impossible
    with paired batches) would be skipped rather than divide by zero.
    """
    log_p = F.log_softmax(scale * (a @ b.T), dim=1)
    pos = (labels_a[:, None] == labels_b[None, :]).to(log_p.dtype)
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    per_anchor = -(pos * log_p).sum(dim=1)[has] / n_pos[has]
    return per_anchor.mean()


def supcon_cts(xs: torch.Tensor, xt: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The symmetric form of eq. 6's terms: (L^sup(x_s, x_t) + L^sup(x_t, x_s)) / 2; row i of both
    sides belongs to speaker ``labels[i]`` (pairs)."""
    return 0.5 * (supcon(xs, xt, labels, labels, scale) + supcon(xt, xs, labels, labels, scale))


def aam_softmax(cosine: torch.Tensor, labels: torch.Tensor, margin: float, scale: float) -> torch.Tensor:
    """Additive angular margin softmax (L_spk of eq. 4): cross-entropy of ``scale * cos(theta_y + m)``
    for the true class and ``scale * cos(theta_j)`` for the others.

    ``cosine``: [B, C] cosines between normalised embeddings and normalised class weights. Where
    theta_y + m would pass pi, cos stops decreasing with the angle, so a sample far from its class
    would be pushed the wrong way; there the target logit is ``cos(theta_y) - m sin(m)`` instead
    (ArcFace's usual linear continuation, monotonic in theta_y)."""
    cos = cosine.clamp(-1.0, 1.0)
    sin = torch.sqrt((1.0 - cos * cos).clamp(min=0.0))
    phi = cos * math.cos(margin) - sin * math.sin(margin)  # cos(theta + m)
    phi = torch.where(cos > math.cos(math.pi - margin), phi, cos - math.sin(math.pi - margin) * margin)
    onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
    logits = scale * (onehot * phi + (1.0 - onehot) * cos)
    return F.cross_entropy(logits, labels)


def am_softmax(cosine: torch.Tensor, labels: torch.Tensor, margin: float, scale: float) -> torch.Tensor:
    """Additive margin softmax (Wang et al., the paper's reference [18]): cross-entropy of
    ``scale * (cos(theta_y) - m)`` for the true class and ``scale * cos(theta_j)`` for the others.
    The paper names AAM-softmax but cites this one; ``aam_variant="additive"`` selects it."""
    cos = cosine.clamp(-1.0, 1.0)
    onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
    return F.cross_entropy(scale * (cos - margin * onehot), labels)
