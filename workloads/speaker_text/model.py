"""The linking network of Fig. 1 (sections II-A, III-B).

Per modality an FC projection to ``proj_dim`` (768 in the paper) and a stack of FC transform
layers of the same width; every output is L2-normalised, and the normalised projection output is
what the transform layers read ("all representations from the FC layers are length-normalized
before proceeding"). Training uses both levels (eq. 3); the search space is built from the
projection outputs only. The paper does not name an activation between the transform layers; a
ReLU between them keeps the stack from collapsing into one linear map.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workloads.speaker_text.config import SpeakerTextConfig

MAX_SCALE = 100.0  # 1 / tau >= 0.01: a learned temperature cannot run to zero (as CLIP clips it)


class Branch(nn.Module):
    def __init__(self, d_in: int, d: int, n_transform: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d_in, d)
        layers: list[nn.Module] = []
        for i in range(n_transform):
            layers += [nn.Linear(d, d)] + ([nn.ReLU()] if i < n_transform - 1 else [])
        self.transform = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = F.normalize(self.proj(x), dim=-1)
        return p, F.normalize(self.transform(p), dim=-1)


class LinkingNetwork(nn.Module):
    """Speaker and text branches, the temperature (fixed buffer or learned parameter) and, for C01,
    the AAM-softmax class weights over the training speakers."""

    def __init__(self, speaker_dim: int, text_dim: int, n_speakers: int, cfg: SpeakerTextConfig) -> None:
        super().__init__()
        self.speaker = Branch(speaker_dim, cfg.proj_dim, cfg.n_transform)
        self.text = Branch(text_dim, cfg.proj_dim, cfg.n_transform)
        log_scale = torch.tensor(math.log(1.0 / cfg.tau), dtype=torch.float32)
        if cfg.learn_tau:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        self.aam_weight = nn.Parameter(torch.randn(n_speakers, cfg.proj_dim) * 0.01) \
            if cfg.spec.loss == "cts_aam" else None
        self.aam_inputs = cfg.aam_inputs

    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=MAX_SCALE)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        s_p, s_t = self.speaker(batch["speaker"])
        t_p, t_t = self.text(batch["text"])
        out = {"s_p": s_p, "s_t": s_t, "t_p": t_p, "t_t": t_t, "scale": self.scale()}
        if self.aam_weight is not None:
            x = s_p if self.aam_inputs == "speaker" else torch.cat([s_p, t_p])
            out["spk_cos"] = x @ F.normalize(self.aam_weight, dim=-1).T
        return out

    @torch.no_grad()
    def search_space(self, speaker_x: np.ndarray, text_x: np.ndarray, cfg: SpeakerTextConfig
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Projection-layer embeddings (x_{s,p}, x_{t,p}) of utterances and descriptions."""
        device = next(self.parameters()).device

        def run(branch: Branch, x: np.ndarray) -> np.ndarray:
            out = [branch(torch.from_numpy(x[i:i + 4096]).to(device))[0].cpu().numpy() for i in range(0, len(x), 4096)]
            return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.speaker.proj.out_features),
                                                                              np.float32)

        return run(self.speaker, speaker_x), run(self.text, text_x)
