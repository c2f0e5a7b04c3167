"""LASP's and CLASP's training criteria (paper sec. 3.2): Huber regression onto the frozen text
embedding, and a symmetric contrastive loss whose logits are cosines DIVIDED by a temperature.

The authors' notebooks multiply the logits by 0.07 where CLIP divides by its temperature (0.07);
that flattens the softmax by a factor of ~200 instead of sharpening it, so nearly every batch item
looks alike to the loss. Here ``logits = cos / T`` with ``T`` fixed or learned (CLIP's
parametrisation: the log temperature is the parameter, clamped to [0.01, 1] so the scale stays
finite; CLIP caps its logit scale at 100 = 1 / 0.01).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 1.0


def huber_loss(speech: torch.Tensor, text: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """LASP: element-wise Huber loss between the speech output and the text embedding, averaged."""
    if speech.shape != text.shape:
        raise ValueError(f"speech {tuple(speech.shape)} and text {tuple(text.shape)} embeddings differ in shape")
    return F.huber_loss(speech, text, delta=delta, reduction="mean")


def contrastive_loss(speech: torch.Tensor, text: torch.Tensor, temperature: torch.Tensor | float,
                     groups: torch.Tensor | None = None) -> torch.Tensor:
    """CLASP: symmetric InfoNCE over the batch with ``logits[i, j] = cos(text_i, speech_j) / T``.

    ``groups`` (one id per item) marks items that say the same sentence (Common Voice has several
    readings of one sentence): all of them count as positives of each other instead of one being a
    false negative of the other's text. Without it, positives are the diagonal (CLIP's loss).
    Each direction is ``-log(sum of exp(logits) over positives / sum over all)``, averaged over rows.
    """
    if speech.shape != text.shape:
        raise ValueError(f"speech {tuple(speech.shape)} and text {tuple(text.shape)} embeddings differ in shape")
    t = torch.as_tensor(temperature, dtype=speech.dtype, device=speech.device)
    if bool((t <= 0).any()):
        raise ValueError(f"temperature must be > 0, got {float(t)}")
    logits = F.normalize(text, dim=-1) @ F.normalize(speech, dim=-1).T / t
    if groups is None:
        pos = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
    else:
        g = groups.to(logits.device).reshape(-1)
        pos = g[:, None] == g[None, :]
    masked = logits.masked_fill(~pos, float("-inf"))
    text_to_speech = torch.logsumexp(logits, dim=1) - torch.logsumexp(masked, dim=1)
    speech_to_text = torch.logsumexp(logits, dim=0) - torch.logsumexp(masked, dim=0)
    return 0.5 * (text_to_speech.mean() + speech_to_text.mean())


class Temperature(nn.Module):
    """The contrastive temperature: a constant, or learned through its logarithm."""

    def __init__(self, init: float = 0.07, learn: bool = False) -> None:
        super().__init__()
        if not MIN_TEMPERATURE <= init <= MAX_TEMPERATURE and learn:
            raise ValueError(f"a learned temperature starts in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}], got {init}")
        log_t = torch.tensor(math.log(init))
        if learn:
            self.log_t = nn.Parameter(log_t)
        else:
            self.register_buffer("log_t", log_t)
        self.learn = learn

    def forward(self) -> torch.Tensor:
        t = self.log_t.exp()
        return t.clamp(MIN_TEMPERATURE, MAX_TEMPERATURE) if self.learn else t
