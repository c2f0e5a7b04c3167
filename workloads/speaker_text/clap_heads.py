"""Table I's [8] rows: CLAP (Elizalde et al.; HTSAT audio, RoBERTa text) zero-shot and fine-tuned.

The frozen views hold both CLAP towers' pooled outputs (``clap_audio`` / ``clap_text`` with
``output: pooled``); the model is CLAP's own two projection heads with the checkpoint's weights
(``orchestrator.encoders.clap.clap_projections``), so untrained it ranks exactly as CLAP does
("[8]", zero-shot), and "[8] (fine-tuned)" trains those heads on the training speakers with a
binary cross-entropy loss (footnote 10: "additional training using VoxCeleb1 training data with
binary cross-entropy loss"). The paper gives no more than that; declared here: the towers stay
frozen (only the heads train), every (utterance, description) pair of a batch is one binary
decision (same speaker or not), with logits = scale * cosine + bias, scale starting at CLAP's own
logit scale and the bias at 0, both learned.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workloads.speaker_text.config import SpeakerTextConfig
from workloads.speaker_text.model import MAX_SCALE


class ClapHeads(nn.Module):
    def __init__(self, cfg: SpeakerTextConfig) -> None:
        super().__init__()
        from orchestrator.encoders.clap import clap_projections

        self.audio, self.text, scale = clap_projections(cfg.clap_model)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale), dtype=torch.float32))
        self.bias = nn.Parameter(torch.zeros((), dtype=torch.float32))

    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=MAX_SCALE)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"s_p": F.normalize(self.audio(batch["speaker"]), dim=-1),
                "t_p": F.normalize(self.text(batch["text"]), dim=-1), "scale": self.scale(), "bias": self.bias}

    @torch.no_grad()
    def search_space(self, speaker_x: np.ndarray, text_x: np.ndarray, cfg: SpeakerTextConfig
                     ) -> tuple[np.ndarray, np.ndarray]:
        """CLAP's joint-space embeddings of utterances and descriptions, L2-normalised."""
        device = self.bias.device

        def run(head: nn.Module, x: np.ndarray) -> np.ndarray:
            out = [F.normalize(head(torch.from_numpy(x[i:i + 4096]).to(device)), dim=-1).cpu().numpy()
                   for i in range(0, len(x), 4096)]
            return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1), np.float32)

        return run(self.audio, speaker_x), run(self.text, text_x)


def pair_bce(s: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor,
             bias: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over every (utterance i, description j) pair of a batch: target 1
    when j describes i's speaker (also a description drawn for another utterance of that speaker)."""
    logits = scale * s @ t.T + bias
    target = (labels[:, None] == labels[None, :]).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, target)
