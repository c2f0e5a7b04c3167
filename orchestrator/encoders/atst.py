"""ATST-Frame (Li, Shao & Li 2024, "Self-supervised audio teacher-student transformer for both
clip-level and frame-level tasks"), the frame-level audio encoder of the TAR thesis.

Architecture, as in the official code (Audio-WestlakeU/audiossl ``atstframe/audio_transformer.py``,
``FrameAST``), so that the official checkpoint loads key for key:

* input: log-mel, 64 bins at 16 kHz (``embedding.py``: ``MelSpectrogram(16000, f_min=60,
  f_max=7800, n_fft=1024, win_length=1024, hop_length=160, n_mels=64)``, ``AmplitudeToDB(power,
  top_db=80)``, then min-max scaling with the pretraining statistics (-79.6482, 50.6842) to
  [-1, 1]); see :class:`ATSTLogMel`.
* 4 consecutive frames x 64 bins = one 256-dim patch (flattened bin-major, then frame), a linear
  projection to D (768 base / 384 small), learnable positional embeddings (row 0 of
  ``pos_embed`` is a class-token slot that ATST-Frame never uses), pre-norm ViT blocks
  (qkv without bias, GELU MLP, LayerNorm eps 1e-6), a final LayerNorm ``norm_frame``; a key
  padding mask hides frames beyond a clip's length. One output frame per 40 ms.
* The thesis' figure 3.3 draws a prepended class token: that is ATST-*Clip*. ATST-Frame's
  equivalent ("prompt" tokens, ``nprompt``) is 0 in the released model and in the thesis' code,
  which loads the teacher encoder with ``strict=True`` into ``FrameAST(nprompt=0)``;
  ``ATSTConfig.n_prompt`` supports them for checkpoints that have ``prompt_embed``.
* Positions cover 10 s (1001 mel frames -> 250 patches). Longer inputs are cut into 1001-frame
  segments, encoded separately and their frames concatenated (the official
  ``get_timestamp_embedding``); each segment drops its trailing ``len % 4`` mel frames. The clip
  embedding is the mean of the segments' frame means (official ``get_scene_embedding``; the
  thesis: "obtained embeddings of audio segments are averaged").

Checkpoints: the official ``atstframe_base.ckpt`` is a PyTorch Lightning checkpoint whose
``state_dict`` holds ``model.teacher.encoder.<FrameAST keys>`` and ``model.student.*`` (plus
projector/predictor heads); the teacher encoder is the feature extractor (thesis 3.3.2).
:func:`load_atst_checkpoint` also accepts fine-tuned checkpoints keyed ``encoder.encoder.*`` (the
thesis' loader accepts both) and a bare ``FrameAST`` state dict. Files are read with
``torch.load(weights_only=True)``; one that needs arbitrary unpickling is refused with a one-line
error (re-save its ``state_dict`` with plain tensors).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.audio_utils import mel_filter_bank

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


@dataclass(frozen=True)
class ATSTConfig:
    """Sizes of an ATST-Frame encoder. Defaults: the released base model."""

    n_mels: int = 64
    patch_frames: int = 4  # mel frames stacked into one token (40 ms at hop 10 ms)
    segment_mel_frames: int = 1001  # positional limit: 10 s at 16 kHz, hop 160, centred frames
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_hidden: int = 3072
    qkv_bias: bool = False
    n_prompt: int = 0
    ln_eps: float = 1e-6
    dropout: float = 0.0  # after positions, attention projection and MLP (official drop_rate)
    output_blocks: int = 1  # concatenate the last n blocks' normed outputs (thesis code: 1)

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if not 1 <= self.output_blocks <= self.depth:
            raise ValueError(f"output_blocks must be in 1..{self.depth}, got {self.output_blocks}")
        if self.segment_mel_frames < self.patch_frames:
            raise ValueError("segment_mel_frames must be >= patch_frames")

    @property
    def tokens_per_segment(self) -> int:
        return self.segment_mel_frames // self.patch_frames

    @property
    def out_dim(self) -> int:
        return self.embed_dim * self.output_blocks


# ---- model -----------------------------------------------------------------------------------


class _PatchEmbed(nn.Module):
    """``[B, n_mels, n * P]`` -> ``[B, n, D]``; a patch is flattened bin-major then frame, as the
    official ``Rearrange('b c (h p1) (w p2) -> b (w h) (p1 p2 c)')`` with h = 1, c = 1."""

    def __init__(self, cfg: ATSTConfig) -> None:
        super().__init__()
        self.patch_frames = cfg.patch_frames
        self.patch_embed = nn.Linear(cfg.n_mels * cfg.patch_frames, cfg.embed_dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        b, n_mels, t = mel.shape
        n = t // self.patch_frames
        x = mel[:, :, : n * self.patch_frames].reshape(b, n_mels, n, self.patch_frames)
        return self.patch_embed(x.permute(0, 2, 1, 3).reshape(b, n, n_mels * self.patch_frames))


class ATSTFrame(nn.Module):
    """ATST-Frame encoder: log-mel ``[B, n_mels, T]`` -> 40 ms frames ``[B, T', D]``.

    Parameter names follow the official ``FrameAST`` (``patch_embed.patch_embed``, ``pos_embed``,
    ``mask_embed``, ``blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm_frame``,
    ``prompt_embed``) so a teacher-encoder state dict loads one to one. ``mask_embed`` is only
    used by masked pretraining; it is kept so that loading stays strict.
    """

    def __init__(self, config: ATSTConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ATSTConfig()
        self.patch_embed = _PatchEmbed(cfg)
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.tokens_per_segment + 1, cfg.embed_dim))
        if cfg.n_prompt > 0:
            self.prompt_embed = nn.Parameter(torch.zeros(1, cfg.n_prompt, cfg.embed_dim))
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_hidden, cfg.qkv_bias, cfg.ln_eps, cfg.dropout)
            for _ in range(cfg.depth)
        )
        self.norm_frame = nn.LayerNorm(cfg.embed_dim, eps=cfg.ln_eps)
        self._init_weights()

    def _init_weights(self) -> None:
        for p in (self.pos_embed, self.mask_embed, getattr(self, "prompt_embed", None)):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        init_linear_weights(self)

    @property
    def out_dim(self) -> int:
        return self.config.out_dim

    def encode_segments(self, mel: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
        """Encode segments of at most ``segment_mel_frames``: ``[n, n_mels, W]`` -> ``[n, W // P, out_dim]``.

        ``n_tokens`` ``[n]``: real tokens per segment (>= 1); later tokens are padding, hidden from
        attention, so real tokens do not depend on them.
        """
        cfg = self.config
        x = self.patch_embed(mel)
        t = x.shape[1]
        if t > cfg.tokens_per_segment:
            raise ValueError(f"segment of {mel.shape[-1]} mel frames exceeds the {cfg.segment_mel_frames}-frame limit")
        x = F.dropout(x + self.pos_embed[:, 1 : t + 1], cfg.dropout, self.training)
        key_mask = torch.arange(t, device=x.device)[None, :] < n_tokens.to(x.device)[:, None]
        if cfg.n_prompt > 0:
            x = torch.cat([self.prompt_embed.expand(x.shape[0], -1, -1), x], dim=1)
            key_mask = F.pad(key_mask, (cfg.n_prompt, 0), value=True)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x, key_mask)
            if i >= cfg.depth - cfg.output_blocks:
                outputs.append(self.norm_frame(x[:, cfg.n_prompt :]))
        return torch.cat(outputs, dim=-1)

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mel`` ``[B, n_mels, T]`` (zero-padded), ``lengths`` ``[B]`` real mel frames ->
        ``(frames [B, T', out_dim], frame_mask [B, T'] bool)``.

        Mel frames are cut into segments of ``segment_mel_frames`` (10 s), each encoded on its
        own; a segment contributes ``W // patch_frames`` frames (W its width) and item b's real
        frames are the first ``sum_s (min(max(len_b - s * S, 0), S) // P)``. All segments of the
        batch run in one padded forward pass; segments without a real token are skipped.
        """
        cfg = self.config
        if mel.dim() != 3 or mel.shape[1] != cfg.n_mels:
            raise ValueError(f"expected mel [B, {cfg.n_mels}, T], got {tuple(mel.shape)}")
        lengths = torch.as_tensor(lengths, device=mel.device).long()
        b, _, total = mel.shape
        if lengths.shape != (b,) or bool((lengths < 1).any()) or bool((lengths > total).any()):
            raise ValueError(f"lengths must be [B] in 1..{total}, got {lengths.tolist()}")
        seg, per = cfg.segment_mel_frames, cfg.tokens_per_segment
        n_seg = -(-total // seg)
        padded = F.pad(mel, (0, n_seg * seg - total))  # [B, F, n_seg * S]
        segments = padded.reshape(b, cfg.n_mels, n_seg, seg).permute(0, 2, 1, 3).reshape(b * n_seg, cfg.n_mels, seg)
        starts = torch.arange(n_seg, device=mel.device) * seg
        real = ((lengths[:, None] - starts[None, :]).clamp(0, seg) // cfg.patch_frames).reshape(-1)  # [B * n_seg]
        keep = torch.nonzero(real > 0).flatten()
        out = mel.new_zeros(b * n_seg, per, cfg.out_dim)
        out[keep] = self.encode_segments(segments[keep], real[keep]).to(out.dtype)
        # each segment's width in the input: the last one may be shorter than S
        widths = [min(seg, total - s * seg) // cfg.patch_frames for s in range(n_seg)]
        out = out.reshape(b, n_seg, per, cfg.out_dim)
        mask = torch.arange(per, device=mel.device)[None, None, :] < real.reshape(b, n_seg)[:, :, None]
        frames = torch.cat([out[:, s, :w] for s, w in enumerate(widths)], dim=1)
        frame_mask = torch.cat([mask[:, s, :w] for s, w in enumerate(widths)], dim=1)
        return frames, frame_mask

    def segment_mean(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """Clip embedding ``[B, out_dim]``: mean over 10 s segments of each segment's frame mean."""
        per = self.config.tokens_per_segment
        b, t, d = frames.shape
        n_seg = -(-t // per)
        f = F.pad(frames, (0, 0, 0, n_seg * per - t)).reshape(b, n_seg, per, d)
        m = F.pad(frame_mask, (0, n_seg * per - t)).reshape(b, n_seg, per, 1).to(frames.dtype)
        count = m.sum(dim=2)  # [B, n_seg, 1]
        seg_means = (f * m).sum(dim=2) / count.clamp(min=1)
        used = (count > 0).to(frames.dtype)
        return (seg_means * used).sum(dim=1) / used.sum(dim=1).clamp(min=1)


# ---- checkpoint loading ----------------------------------------------------------------------

_PREFIXES = ("model.teacher.encoder.", "encoder.encoder.")  # official pretraining ckpt, fine-tuned ckpt


def _encoder_state(sd: Mapping[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The teacher encoder's tensors under ``FrameAST`` names."""
    for prefix in _PREFIXES:
        sub = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if sub:
            break
    else:
        sub = dict(sd)
    if "pos_embed" not in sub:
        raise EncoderUnavailableError(
            f"{path} is not an ATST-Frame checkpoint: no pos_embed under {list(_PREFIXES)} or at top level"
        )
    out = {}
    for k, v in sub.items():
        if k.startswith("cls_token"):  # skipped by the thesis' loader too; ATST-Frame has no class token
            continue
        out[re.sub(r"^norm\.", "norm_frame.", k)] = v  # older checkpoints name the final LayerNorm "norm"
    return out


def config_from_state_dict(
    sd: Mapping[str, torch.Tensor], num_heads: int | None = None, n_mels: int = 64, **overrides: Any
) -> ATSTConfig:
    """Infer sizes from tensor shapes. The head count is not in the weights: every released
    ATST-Frame (small 384/6, base 768/12) uses 64-dim heads, the default here."""
    d = sd["pos_embed"].shape[-1]
    patch_in = sd["patch_embed.patch_embed.weight"].shape[1]
    if patch_in % n_mels:
        raise ValueError(f"patch size {patch_in} is not a multiple of n_mels={n_mels}")
    patch_frames = patch_in // n_mels
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k)))
    return ATSTConfig(
        n_mels=n_mels,
        patch_frames=patch_frames,
        segment_mel_frames=(sd["pos_embed"].shape[1] - 1) * patch_frames + 1,
        embed_dim=d,
        depth=depth,
        num_heads=num_heads or max(1, d // 64),
        mlp_hidden=sd["blocks.0.mlp.fc1.weight"].shape[0],
        qkv_bias="blocks.0.attn.qkv.bias" in sd,
        n_prompt=sd["prompt_embed"].shape[1] if "prompt_embed" in sd else 0,
        **overrides,
    )


def load_atst_checkpoint(
    path: str | Path, num_heads: int | None = None, output_blocks: int = 1, dropout: float = 0.0
) -> ATSTFrame:
    """Build an :class:`ATSTFrame` from the official checkpoint file (teacher encoder), strictly.

    Raises :class:`EncoderUnavailableError` (one line) when the file is missing, unreadable with
    ``weights_only=True``, or does not match the architecture.
    """
    path = Path(path).expanduser()
    sd = _encoder_state(read_checkpoint_tensors(path, "ATST-Frame"), path)
    try:
        cfg = config_from_state_dict(sd, num_heads=num_heads, output_blocks=output_blocks, dropout=dropout)
    except (KeyError, ValueError) as e:
        raise EncoderUnavailableError(f"{path} does not look like ATST-Frame: {one_line(e)}") from None
    model = ATSTFrame(cfg)
    load_strict(model, sd, path, f"ATST-Frame {asdict(cfg)}")
    return model.eval()


# ---- log-mel front end -----------------------------------------------------------------------


class ATSTLogMel:
    """The official ATST-Frame input: 64-bin log-mel in dB, top_db 80, min-max scaled.

    Equivalent to torchaudio's ``MelSpectrogram(16000, f_min=60, f_max=7800, n_fft=1024,
    win_length=1024, hop_length=160, n_mels=64)`` (periodic Hann window, centred frames with
    reflect padding, power 2, HTK mel scale without filter normalisation) followed by
    ``AmplitudeToDB("power", top_db=80)`` per clip and ``MinMax(-79.6482, 50.6842)``, written with
    ``torch.stft`` because torchaudio is not a dependency. ``db_clamp`` optionally clamps the dB
    values before scaling: the thesis' code uses ``(-50, 80)``; the official extractor none.
    A wave of n samples gives ``1 + n // 160`` frames; the whole clip is transformed at once
    (top_db relative to the clip's maximum) and segmented afterwards, as the official extractor does.
    """

    def __init__(self, db_clamp: Sequence[float] | None = None) -> None:
        self.sample_rate = 16000
        self.n_fft = self.win_length = 1024
        self.hop_length = 160
        self.f_min, self.f_max, self.n_mels = 60.0, 7800.0, 64
        self.top_db = 80.0
        self.db_min, self.db_max = -79.6482, 50.6842
        self.db_clamp = tuple(float(x) for x in db_clamp) if db_clamp is not None else None
        self.window = torch.hann_window(self.win_length)
        fb = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=self.n_mels,
            min_frequency=self.f_min,
            max_frequency=self.f_max,
            sampling_rate=self.sample_rate,
            norm=None,
            mel_scale="htk",
        )
        self.mel_fb = torch.from_numpy(fb.astype(np.float32))  # [n_freq, n_mels]

    def params(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate, "n_fft": self.n_fft, "win_length": self.win_length,
            "hop_length": self.hop_length, "f_min": self.f_min, "f_max": self.f_max, "n_mels": self.n_mels,
            "top_db": self.top_db, "minmax": [self.db_min, self.db_max], "db_clamp": self.db_clamp,
        }

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        """``[n]`` float waveform at 16 kHz -> ``[64, 1 + n // 160]``."""
        n = wave.shape[-1]
        if n < 1:
            raise ValueError("empty waveform")
        x = wave.float()
        if n <= self.n_fft // 2:  # reflect padding needs more samples than the half window
            x = F.pad(x, (0, self.n_fft // 2 + 1 - n))
        window = self.window.to(x.device)
        spec = torch.stft(x, self.n_fft, self.hop_length, self.win_length, window, center=True,
                          pad_mode="reflect", return_complex=True)
        power = spec.real.square() + spec.imag.square()  # [n_freq, frames]
        mel = self.mel_fb.to(x.device).T @ power[:, : 1 + n // self.hop_length]
        db = 10.0 * torch.log10(mel.clamp(min=1e-10))
        db = torch.maximum(db, db.max() - self.top_db)
        if self.db_clamp is not None:
            db = db.clamp(*self.db_clamp)
        return (db - self.db_min) / (self.db_max - self.db_min) * 2.0 - 1.0


# ---- the registered AudioEncoder -------------------------------------------------------------


@register_encoder("atst_frame")
class ATSTFrameEncoder(AudioEncoder):
    """ATST-Frame from an official checkpoint file: 40 ms frames; pooled = mean of 10 s segment means.

    Supports the ``finetune`` regime: :meth:`features` is the log-mel the cache stores and
    :meth:`forward_features` runs :attr:`model` on it with gradients.
    """

    encoder_id = "atst_frame"
    sample_rate = 16000

    def __init__(
        self,
        checkpoint: str,
        batch_size: int = 8,
        num_heads: int | None = None,
        output_blocks: int = 1,
        db_clamp: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.checkpoint = checkpoint_file(checkpoint)
        self.model = load_atst_checkpoint(self.checkpoint, num_heads=num_heads, output_blocks=output_blocks)
        self.logmel = ATSTLogMel(db_clamp)
        self.dim = self.model.out_dim
        self.batch_size = batch_size
        self._hash: str | None = None

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = hash_files([self.checkpoint])
        return self._hash

    def params(self) -> dict[str, Any]:
        cfg = self.model.config
        return {
            "mel": self.logmel.params(), "num_heads": cfg.num_heads, "output_blocks": cfg.output_blocks,
            "segment_mel_frames": cfg.segment_mel_frames, "pooling": "mean of 10 s segment means",
        }

    def to(self, device: str | torch.device) -> "ATSTFrameEncoder":
        super().to(device)
        self.model.to(self.device)
        return self

    def features(self, wave: np.ndarray) -> torch.Tensor:
        """Log-mel ``[64, 1 + n // 160]`` of one 16 kHz wave (at least one 40 ms frame long)."""
        w = np.asarray(wave, dtype=np.float32).reshape(-1)
        if w.size < self.logmel.hop_length * (self.model.config.patch_frames - 1):
            raise ValueError(f"wave of {w.size} samples is shorter than one ATST frame (40 ms)")
        return self.logmel(torch.from_numpy(w).to(self.device))

    def _batch(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = torch.tensor([f.shape[-1] for f in feats], device=self.device)
        mel = torch.zeros(len(feats), feats[0].shape[0], int(lengths.max()), device=self.device)
        for i, f in enumerate(feats):
            mel[i, :, : f.shape[-1]] = f.to(self.device)
        return self.model(mel, lengths)

    def forward_features(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """One padded forward pass over cached log-mels; each item's own frames (with grad)."""
        frames, mask = self._batch(feats)
        return [frames[i, : int(mask[i].sum())] for i in range(len(feats))]

    def _run(self, waves: list[np.ndarray], pooled: bool) -> list[np.ndarray]:
        feats = [self.features(w) for w in waves]
        order = sorted(range(len(feats)), key=lambda i: feats[i].shape[-1])  # similar lengths share a pass
        out: list[np.ndarray | None] = [None] * len(feats)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            frames, mask = self._batch([feats[i] for i in chunk])
            if pooled:
                res = self.model.segment_mean(frames, mask)
                for j, i in enumerate(chunk):
                    out[i] = res[j].float().cpu().numpy()
            else:
                for j, i in enumerate(chunk):
                    out[i] = frames[j, : int(mask[j].sum())].float().cpu().numpy()
        return [np.ascontiguousarray(o, dtype=np.float32) for o in out]  # type: ignore[arg-type]

    @torch.inference_mode()
    def frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        return self._run(waves, pooled=False)

    @torch.inference_mode()
    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """``[B, dim]``: per clip, the mean over its 10 s segments of each segment's frame mean."""
        if not waves:
            return np.zeros((0, self.dim), np.float32)
        return np.stack(self._run(waves, pooled=True)).astype(np.float32)
