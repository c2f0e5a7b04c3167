"""PaSST (Koutini et al. 2022, "Efficient training of audio transformers with Patchout"), the
supervised AudioSet spectrogram transformer of the TAR thesis (3.3.1; its loss study, Table 4.1).

Why not hear21passt itself: it cannot be imported beside torch 2.13 (its mel front end needs
torchaudio, whose wheels pin an older torch; its model module imports timm, which imports
torchvision, whose extension fails to load against this torch). The model is a plain ViT, so it is
written here with the official parameter names and checked against hear21passt's own code:
``tests/fixtures/make_passt_reference.py`` ran hear21passt 0.0.26 (two unused imports stood in)
and ``tests/test_passt.py`` compares this module with its outputs.

Architecture (hear21passt ``models/passt.py``, ``PaSST`` with the released settings):

* input: 128-bin log-mel at 32 kHz, hop 320 (10 ms); see :class:`PaSSTLogMel`.
* ``patch_embed.proj``: Conv2d, 16 x 16 patches, stride 10 x 10 (the thesis' setting, overlapping
  patches): 12 frequency x ``(W - 16) // 10 + 1`` time patches; separate frequency and time
  positional embeddings (``freq_new_pos_embed``, ``time_new_pos_embed``, the latter cut to the
  input's width), then a class token and a distillation token with their own positions
  (``new_pos_embed``), 12 pre-norm blocks (qkv with bias), final ``norm``. No patchout (thesis).
* time positions cover 99 patches, 10 s: a clip is cut into 1000-frame (10 s) segments, encoded on
  their own (only same-width segments share a pass, so no padding reaches attention); a trailing
  piece shorter than one patch (16 frames, 0.15 s) is dropped. The thesis averages the segments'
  embeddings.

Outputs (``output``): ``"clip_tokens"`` (default, the thesis' use): one vector per 10 s segment,
the mean of the class and distillation tokens (hear21passt's ``features``), so mean pooling in the
workload averages segment embeddings as the thesis does; ``"time_frames"``: one vector per time
patch (100 ms hop), the mean over the 12 frequency patches' tokens, for frame-level pooling (TAP).

Checkpoints: the released files (e.g. ``passt-s-kd-ap.486.pt`` from the kkoutini/PaSST releases,
hear21passt's ``passt_s_kd_p16_128_ap486``) are plain state dicts; Lightning checkpoints of the
PaSST training code (``net.*`` under ``state_dict``) load too. The classifier heads (``head.*``,
``head_dist.*``) are not used and not loaded; everything else loads strictly, read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from orchestrator.encoders.base import (
    checkpoint_file,
    AudioEncoder,
    EncoderUnavailableError,
    hash_files,
    load_strict,
    one_line,
    read_checkpoint_tensors,
    register_encoder,
)
from orchestrator.encoders.vit import Block, init_linear_weights

Output = Literal["clip_tokens", "time_frames"]
RELEASE_URL = "https://github.com/kkoutini/PaSST/releases/download/v.0.0.9/passt-s-kd-ap.486.pt"


@dataclass(frozen=True)
class PaSSTConfig:
    """Sizes of a PaSST encoder. Defaults: the released PaSST-S (``passt_s_kd_p16_128_ap486``)."""

    n_mels: int = 128
    patch: int = 16
    fstride: int = 10
    tstride: int = 10
    time_positions: int = 99  # time patches the positional embedding covers (998 frames / 10)
    segment_frames: int = 1000  # 10 s at hop 320, as hear21passt's 10 s windows
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_hidden: int = 3072
    distilled: bool = True
    ln_eps: float = 1e-6
    dropout: float = 0.0
    output: Output = "clip_tokens"

    def __post_init__(self) -> None:
        if self.output not in ("clip_tokens", "time_frames"):
            raise ValueError(f"output must be 'clip_tokens' or 'time_frames', got {self.output!r}")
        if self.time_patches(self.segment_frames) > self.time_positions:
            raise ValueError(
                f"segments of {self.segment_frames} frames give {self.time_patches(self.segment_frames)} time "
                f"patches, more than the {self.time_positions} positions"
            )

    @property
    def freq_patches(self) -> int:
        return (self.n_mels - self.patch) // self.fstride + 1

    def time_patches(self, width: int) -> int:
        return (width - self.patch) // self.tstride + 1

    @property
    def num_tokens(self) -> int:
        return 2 if self.distilled else 1


class _PatchEmbed(nn.Module):
    def __init__(self, cfg: PaSSTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, cfg.embed_dim, kernel_size=cfg.patch, stride=(cfg.fstride, cfg.tstride))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.proj(mel[:, None])  # [B, D, F', T']


class PaSST(nn.Module):
    """PaSST encoder: log-mel segments ``[n, 128, W]`` (one width) -> tokens; see the module doc."""

    def __init__(self, config: PaSSTConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or PaSSTConfig()
        d = cfg.embed_dim
        self.patch_embed = _PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        if cfg.distilled:
            self.dist_token = nn.Parameter(torch.zeros(1, 1, d))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, d))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, d, cfg.freq_patches, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, d, 1, cfg.time_positions))
        self.blocks = nn.ModuleList(
            Block(d, cfg.num_heads, cfg.mlp_hidden, qkv_bias=True, ln_eps=cfg.ln_eps, dropout=cfg.dropout)
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(d, eps=cfg.ln_eps)
        for p in (self.cls_token, getattr(self, "dist_token", None), self.new_pos_embed,
                  self.freq_new_pos_embed, self.time_new_pos_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        init_linear_weights(self)

    @property
    def out_dim(self) -> int:
        return self.config.embed_dim

    def tokens(self, mel: torch.Tensor) -> torch.Tensor:
        """``[n, n_mels, W]`` -> ``[n, num_tokens + F' * T', D]`` after the final norm (time fastest)."""
        cfg = self.config
        if mel.dim() != 3 or mel.shape[1] != cfg.n_mels or mel.shape[2] < cfg.patch:
            raise ValueError(f"expected mel [n, {cfg.n_mels}, W >= {cfg.patch}], got {tuple(mel.shape)}")
        x = self.patch_embed(mel)
        t = x.shape[-1]
        if t > cfg.time_positions:
            raise ValueError(f"segment of {mel.shape[-1]} frames exceeds the {cfg.time_positions} time positions")
        x = x + self.time_new_pos_embed[..., :t] + self.freq_new_pos_embed
        x = x.flatten(2).transpose(1, 2)
        n = x.shape[0]
        special = [self.cls_token] + ([self.dist_token] if cfg.distilled else [])
        special = torch.cat(special, dim=1) + self.new_pos_embed
        x = torch.cat([special.expand(n, -1, -1), x], dim=1)
        x = F.dropout(x, cfg.dropout, self.training)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def encode_segments(self, mel: torch.Tensor) -> torch.Tensor:
        """Same-width segments ``[n, n_mels, W]`` -> outputs ``[n, k, D]``: k = 1 (clip tokens) or T'."""
        cfg = self.config
        x = self.tokens(mel)
        if cfg.output == "clip_tokens":
            return x[:, : cfg.num_tokens].mean(dim=1, keepdim=True)
        patches = x[:, cfg.num_tokens :]
        n, _, d = patches.shape
        return patches.reshape(n, cfg.freq_patches, -1, d).mean(dim=1)

    def segments(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """One clip's ``[n_mels, T]`` cut into 10 s segments; a tail shorter than a patch is dropped."""
        cfg = self.config
        if mel.shape[-1] < cfg.patch:
            raise ValueError(f"clip of {mel.shape[-1]} mel frames is shorter than one PaSST patch ({cfg.patch})")
        return [mel[:, s : s + cfg.segment_frames] for s in range(0, mel.shape[-1], cfg.segment_frames)
                if mel.shape[-1] - s >= cfg.patch]

    def forward(self, mels: list[torch.Tensor], max_batch: int | None = None) -> list[torch.Tensor]:
        """Clips' log-mels ``[n_mels, T_i]`` -> each clip's outputs ``[n_i, D]``, segments in order.

        Segments of equal width are encoded together (at most ``max_batch`` per pass), so a clip's
        outputs do not depend on the other clips of the batch.
        """
        pieces = [self.segments(m) for m in mels]
        by_width: dict[int, list[tuple[int, int]]] = {}
        for i, segs in enumerate(pieces):
            for j, s in enumerate(segs):
                by_width.setdefault(s.shape[-1], []).append((i, j))
        results: dict[tuple[int, int], torch.Tensor] = {}
        for keys in by_width.values():
            step = max_batch or len(keys)
            for start in range(0, len(keys), step):
                chunk = keys[start : start + step]
                out = self.encode_segments(torch.stack([pieces[i][j] for i, j in chunk]))
                results.update(zip(chunk, out))
        return [torch.cat([results[(i, j)] for j in range(len(segs))]) for i, segs in enumerate(pieces)]


# ---- checkpoint loading ----------------------------------------------------------------------

_PREFIXES = ("net.", "model.net.", "module.")
_IGNORED = ("head.", "head_dist.")  # AudioSet classifier heads: not part of the encoder


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    sd = read_checkpoint_tensors(path, "PaSST", hint=f" (the released PaSST-S: {RELEASE_URL})")
    for prefix in _PREFIXES:
        if any(k.startswith(prefix + "cls_token") for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
            break
    if "cls_token" not in sd or "time_new_pos_embed" not in sd:
        raise EncoderUnavailableError(f"{path} is not a PaSST checkpoint: no cls_token/time_new_pos_embed")
    return {k: v for k, v in sd.items() if not k.startswith(_IGNORED)}


def config_from_state_dict(sd: Mapping[str, torch.Tensor], num_heads: int | None = None, n_mels: int = 128,
                           fstride: int = 10, tstride: int = 10, **overrides: Any) -> PaSSTConfig:
    """Sizes from tensor shapes. Strides and the head count are not in the weights: the released
    PaSST-S uses stride 10 x 10 (the thesis' setting) and 64-dim heads, the defaults here."""
    d = sd["cls_token"].shape[-1]
    cfg = PaSSTConfig(
        n_mels=n_mels,
        patch=sd["patch_embed.proj.weight"].shape[-1],
        fstride=fstride,
        tstride=tstride,
        time_positions=sd["time_new_pos_embed"].shape[-1],
        embed_dim=d,
        depth=1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))),
        num_heads=num_heads or max(1, d // 64),
        mlp_hidden=sd["blocks.0.mlp.fc1.weight"].shape[0],
        distilled="dist_token" in sd,
        **overrides,
    )
    if cfg.freq_patches != sd["freq_new_pos_embed"].shape[2]:
        raise ValueError(
            f"{sd['freq_new_pos_embed'].shape[2]} frequency positions, but {n_mels} mels with fstride {fstride} "
            f"give {cfg.freq_patches}"
        )
    return cfg


def load_passt_checkpoint(path: str | Path, output: Output = "clip_tokens", num_heads: int | None = None,
                          fstride: int = 10, tstride: int = 10, dropout: float = 0.0) -> PaSST:
    """Build a :class:`PaSST` from a released checkpoint file (classifier heads left out), strictly.

    Raises :class:`EncoderUnavailableError` (one line) when the file is missing, unreadable with
    ``weights_only=True``, or does not match the architecture.
    """
    path = Path(path).expanduser()
    sd = _read_state_dict(path)
    try:
        cfg = config_from_state_dict(sd, num_heads=num_heads, fstride=fstride, tstride=tstride,
                                     output=output, dropout=dropout)
    except (KeyError, ValueError) as e:
        raise EncoderUnavailableError(f"{path} does not look like PaSST: {one_line(e)}") from None
    model = PaSST(cfg)
    load_strict(model, sd, path, f"PaSST {asdict(cfg)}")
    return model.eval()


# ---- log-mel front end -----------------------------------------------------------------------


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, f_min: float, f_max: float) -> np.ndarray:
    """Kaldi's triangular mel filters (``[n_mels, n_fft // 2 + 1]``, no normalisation): triangles
    equally spaced on the mel scale ``1127 ln(1 + f / 700)``, weights linear in mel, the Nyquist bin
    zero. What hear21passt takes from ``torchaudio.compliance.kaldi.get_mel_banks`` (no VTLN warp)."""

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    delta = (mel(f_max) - mel(f_min)) / (n_mels + 1)
    left = mel(f_min) + np.arange(n_mels, dtype=np.float64)[:, None] * delta
    centre, right = left + delta, left + 2 * delta
    bins = mel(sample_rate / n_fft * np.arange(n_fft // 2, dtype=np.float64))[None, :]
    banks = np.maximum(0.0, np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)))
    return np.pad(banks, ((0, 0), (0, 1))).astype(np.float32)


class PaSSTLogMel:
    """hear21passt's ``AugmentMelSTFT`` in evaluation mode (no masking, no filter jitter), with
    ``torch.stft`` and :func:`kaldi_mel_banks` instead of torchaudio: pre-emphasis (0.97), STFT
    (n_fft 1024, symmetric Hann window of 800, hop 320, centred, reflect padding), power, 128 Kaldi
    mel filters 0-15 kHz, ``log(x + 1e-5)``, then ``(x + 4.5) / 5``. A wave of n samples gives
    ``1 + (n - 1) // 320`` frames (pre-emphasis drops one sample)."""

    def __init__(self) -> None:
        self.sample_rate, self.n_fft, self.win_length, self.hop_length, self.n_mels = 32000, 1024, 800, 320, 128
        self.f_min, self.f_max = 0.0, 15000.0  # hear21passt: fmax = sr // 2 - fmax_aug_range // 2 (2000)
        self.preemphasis = 0.97
        self.window = torch.hann_window(self.win_length, periodic=False)
        self.mel_basis = torch.from_numpy(
            kaldi_mel_banks(self.n_mels, self.n_fft, self.sample_rate, self.f_min, self.f_max))

    def params(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate, "n_fft": self.n_fft, "win_length": self.win_length,
            "hop_length": self.hop_length, "n_mels": self.n_mels, "f_min": self.f_min, "f_max": self.f_max,
            "preemphasis": self.preemphasis, "log_offset": 1e-5, "normalise": "(x + 4.5) / 5",
        }

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        """``[n]`` float waveform at 32 kHz (n >= 2) -> ``[128, 1 + (n - 1) // 320]``."""
        if wave.shape[-1] < 2:
            raise ValueError("waveform shorter than 2 samples")
        x = wave.float()
        x = x[1:] - self.preemphasis * x[:-1]
        n = x.shape[-1]
        if n <= self.n_fft // 2:  # reflect padding needs more samples than half an FFT
            x = F.pad(x, (0, self.n_fft // 2 + 1 - n))
        spec = torch.stft(x, self.n_fft, self.hop_length, self.win_length, self.window.to(x.device),
                          center=True, pad_mode="reflect", return_complex=True)
        power = spec.real.square() + spec.imag.square()
        mel = self.mel_basis.to(x.device) @ power[:, : 1 + (n - 1) // self.hop_length]
        return ((mel + 1e-5).log() + 4.5) / 5.0


# ---- the registered AudioEncoder -------------------------------------------------------------


@register_encoder("passt")
class PaSSTEncoder(AudioEncoder):
    """PaSST from a released checkpoint file; fine-tunable (the ``finetune`` regime caches
    :meth:`features`, the log-mel, and trains :attr:`model` through :meth:`forward_features`)."""

    encoder_id = "passt"
    sample_rate = 32000

    def __init__(
        self,
        checkpoint: str | None = None,
        output: Output = "clip_tokens",
        batch_size: int = 8,
        num_heads: int | None = None,
        fstride: int = 10,
        tstride: int = 10,
    ) -> None:
        super().__init__()
        if not checkpoint:
            raise EncoderUnavailableError(
                f"encoder 'passt' needs a checkpoint file: download {RELEASE_URL} and pass "
                "audio_encoder_params='{checkpoint: /path/passt-s-kd-ap.486.pt}'"
            )
        self.checkpoint = checkpoint_file(checkpoint)
        self.model = load_passt_checkpoint(self.checkpoint, output=output, num_heads=num_heads,
                                           fstride=fstride, tstride=tstride)
        self.logmel = PaSSTLogMel()
        self.dim = self.model.out_dim
        self.batch_size = batch_size
        self._hash: str | None = None

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = hash_files([self.checkpoint])
        return self._hash

    def params(self) -> dict[str, Any]:
        cfg = self.model.config
        return {"mel": self.logmel.params(), "output": cfg.output, "num_heads": cfg.num_heads,
                "stride": [cfg.fstride, cfg.tstride], "segment_frames": cfg.segment_frames}

    def to(self, device: str | torch.device) -> PaSSTEncoder:
        super().to(device)
        self.model.to(self.device)
        return self

    def features(self, wave: np.ndarray) -> torch.Tensor:
        """Log-mel ``[128, 1 + (n - 1) // 320]`` of one 32 kHz wave (at least one patch, 0.15 s)."""
        w = np.asarray(wave, dtype=np.float32).reshape(-1)
        if 1 + (w.size - 1) // self.logmel.hop_length < self.model.config.patch:
            raise ValueError(f"wave of {w.size} samples is shorter than one PaSST patch (16 frames, 0.15 s)")
        return self.logmel(torch.from_numpy(w).to(self.device))

    def forward_features(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each clip's outputs ``[n_i, dim]`` from cached log-mels, with gradients."""
        return self.model([f.to(self.device) for f in feats])

    @torch.inference_mode()
    def frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        outs = self.model([self.features(w) for w in waves], max_batch=self.batch_size)
        return [np.ascontiguousarray(o.float().cpu().numpy(), dtype=np.float32) for o in outs]
