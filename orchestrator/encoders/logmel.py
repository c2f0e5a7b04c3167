"""Log-mel statistics: a weight-free baseline every workload can run, and a sanity floor for the
learned encoders (a head that cannot beat mean+std of log-mels has learned nothing).

Frames are ``[T, n_mels]`` log-mel vectors (25 ms window, 10 ms hop); the pooled embedding is
``concat(mean, std)`` over frames, so the pooled size (``dim`` = 2 * n_mels) differs from the
per-frame size (``frame_dim`` = n_mels). Frame-level consumers (attention pooling) must read
``frame_dim``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

from orchestrator.encoders.base import AudioEncoder, register_encoder


@register_encoder("logmel_stats")
class LogMelStatsEncoder(AudioEncoder):
    """Log-mel spectrogram with ``torch.stft``; the embedding is per-band mean and std over frames.

    Frames are centred on multiples of the hop (zero-padded edges), so a wave of ``n`` samples has
    ``1 + n // hop`` frames and every sample is covered. Padding is zeros, the same as a lone wave
    sees, so a batch gives each wave exactly the frames it would get alone.
    """

    encoder_id = "logmel-stats"

    def __init__(
        self,
        n_mels: int = 40,
        sample_rate: int = 16000,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        fmin: float = 20.0,
        fmax: float | None = None,
        log_floor: float = 1e-10,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.frame_dim = n_mels
        self.dim = 2 * n_mels
        self.win_length = int(round(sample_rate * win_ms / 1000))
        self.hop_length = int(round(sample_rate * hop_ms / 1000))
        self.n_fft = 1 << (self.win_length - 1).bit_length()  # next power of two >= window
        self.fmin = fmin
        self.fmax = fmax if fmax is not None else sample_rate / 2
        self.log_floor = log_floor
        self.window = torch.hann_window(self.win_length)
        fb = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=n_mels,
            min_frequency=fmin,
            max_frequency=self.fmax,
            sampling_rate=sample_rate,
            norm=None,
            mel_scale="htk",
        )
        self.mel_fb = torch.from_numpy(fb.astype(np.float32))  # [n_freq, n_mels]

    def weights_hash(self) -> str:
        return "none"

    def params(self) -> dict[str, Any]:
        return {
            "n_mels": self.n_mels,
            "sample_rate": self.sample_rate,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "n_fft": self.n_fft,
            "fmin": self.fmin,
            "fmax": self.fmax,
            "mel_scale": "htk",
            "log_floor": self.log_floor,
            "pooling": "mean+std",
        }

    def frame_count(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length

    def to(self, device: str | torch.device) -> "LogMelStatsEncoder":
        super().to(device)
        self.window = self.window.to(self.device)
        self.mel_fb = self.mel_fb.to(self.device)
        return self

    @torch.inference_mode()
    def frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        if not waves:
            return []
        lens = [int(np.asarray(w).size) for w in waves]
        if min(lens) == 0:
            raise ValueError(f"wave {lens.index(0)} is empty")
        batch = torch.zeros(len(waves), max(lens), device=self.device)
        for i, w in enumerate(waves):
            batch[i, : lens[i]] = torch.as_tensor(np.asarray(w, dtype=np.float32).reshape(-1), device=self.device)
        spec = torch.stft(
            batch,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # [B, n_freq, T]
        power = spec.real.square() + spec.imag.square()
        logmel = torch.log(torch.clamp(power.transpose(1, 2) @ self.mel_fb, min=self.log_floor))  # [B, T, n_mels]
        return [logmel[i, : self.frame_count(n)].cpu().numpy().astype(np.float32) for i, n in enumerate(lens)]

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """``[B, 2 * n_mels]``: per-band mean then per-band (population) std over each wave's frames."""
        # float64 statistics: in float32 a constant band (silence) shows a spurious std of ~1e-5
        stats = [f.astype(np.float64) for f in self.frames(waves)]
        out = [np.concatenate([f.mean(axis=0), f.std(axis=0)]) for f in stats]
        return np.stack(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)
