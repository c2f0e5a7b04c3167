"""CNN14 from PANNs (Kong et al. 2020, "PANNs: Large-scale pretrained audio neural networks for audio
pattern recognition"): the speaker–text retrieval paper's general-purpose audio encoder ("PANN",
III-B, footnote 2: ``qiuqiangkong/panns_inference``; 32 kHz, clips up-sampled from 16 kHz).

Why not panns_inference: it downloads its checkpoint and a label CSV at import/initialisation time
(``panns_inference/config.py`` runs ``wget`` when imported) and pulls librosa and matplotlib. The
network is a plain VGG-like CNN, so it is written here in the parameter layout of the released
``Cnn14_mAP=0.431.pth`` (state dict under ``model``) and checked in
``tests/test_speaker_encoders.py`` against ``panns_inference.models.Cnn14`` + torchlibrosa.

Layout and computation (``audioset_tagging_cnn`` ``pytorch/models.py`` ``Cnn14``, eval mode):

* ``spectrogram_extractor.stft.conv_real`` / ``conv_imag``: torchlibrosa's STFT as two Conv1d
  (513 x 1 x 1024, stride 320, no bias) holding the periodic-Hann-windowed DFT; the input is first
  padded by 512 samples each side by reflection (``center=True, pad_mode='reflect'``); power =
  real^2 + imag^2. A wave of n samples gives ``1 + n // 320`` frames.
* ``logmel_extractor.melW`` (513 x 64): librosa's Slaney mel filters, 50 Hz - 14 kHz; then
  ``10 log10(max(x, 1e-10))`` (ref 1, no top_db).
* ``bn0``: BatchNorm over the 64 mel bins; six ``conv_block``s (two 3x3 conv + BN + ReLU each,
  64 -> 2048 channels), average pooling 2x2 after blocks 1-5 and none after block 6.
* mean over frequency, then max + mean over time, ``fc1`` + ReLU: the 2048-d ``embedding`` output
  (dropout is inactive in eval). ``fc_audioset`` (the AudioSet classifier) is not part of the
  encoder and is not loaded.

The front-end tensors are loaded from the checkpoint like every other weight (strictly, with
``torch.load(weights_only=True)``), so the released file's own DFT and mel matrices are used; a
freshly built model initialises them to the same definitions.

Batches: max pooling over time sees padding, so only clips of identical length share a pass; a
clip's embedding never depends on its batch. ``frames()`` returns one vector per clip. Clips must
give at least 32 frames (5 poolings by 2 in time): 9,920 samples, 0.31 s.
"""

from __future__ import annotations

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
    read_checkpoint_tensors,
    register_encoder,
)
from orchestrator.encoders.ecapa import check_shapes

RELEASE_URL = "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth"
SAMPLE_RATE = 32000
N_FFT = 1024
HOP = 320
N_MELS = 64
FMIN = 50.0
FMAX = 14000.0
AMIN = 1e-10
CHANNELS = (64, 128, 256, 512, 1024, 2048)
EMBED_DIM = 2048
MIN_FRAMES = 32  # 2 ** 5 time poolings


class _STFT(nn.Module):
    """torchlibrosa's ``STFT`` module: DFT as strided convolutions (its parameter names)."""

    def __init__(self, n_fft: int = N_FFT, hop: int = HOP) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        k, t = torch.arange(bins, dtype=torch.float64), torch.arange(n_fft, dtype=torch.float64)
        angle = -2 * np.pi * torch.outer(k, t) / n_fft
        with torch.no_grad():
            self.conv_real.weight.copy_((torch.cos(angle) * window)[:, None].float())
            self.conv_imag.weight.copy_((torch.sin(angle) * window)[:, None].float())

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(wave[:, None], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        return self.conv_real(x), self.conv_imag(x)  # [B, bins, T]


class Spectrogram(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stft = _STFT()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(wave)
        return (real.square() + imag.square()).transpose(1, 2)  # [B, T, bins] power


class LogmelFilterBank(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        fb = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=N_MELS, min_frequency=FMIN,
                             max_frequency=FMAX, sampling_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney")
        self.melW = nn.Parameter(torch.from_numpy(fb.astype(np.float32)), requires_grad=False)  # [bins, mels]

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=AMIN))  # ref 1.0: no offset


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14(nn.Module):
    """Waves ``[B, n]`` at 32 kHz -> ``embedding`` ``[B, 2048]`` (the released encoder, no classifier)."""

    def __init__(self) -> None:
        super().__init__()
        self.spectrogram_extractor = Spectrogram()
        self.logmel_extractor = LogmelFilterBank()
        for p in self.spectrogram_extractor.parameters():
            p.requires_grad_(False)  # fixed DSP, as PANNs freezes it
        self.bn0 = nn.BatchNorm2d(N_MELS)
        ins = (1,) + CHANNELS[:-1]
        for i, (c_in, c_out) in enumerate(zip(ins, CHANNELS), start=1):
            self.add_module(f"conv_block{i}", ConvBlock(c_in, c_out))
        self.fc1 = nn.Linear(CHANNELS[-1], EMBED_DIM)

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` -> ``[B, 1 + n // 320, 64]`` log-mel (dB)."""
        return self.logmel_extractor(self.spectrogram_extractor(wave))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.logmel(wave)[:, None]  # [B, 1, T, mels]
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"{x.shape[2]} frames; CNN14 needs at least {MIN_FRAMES} (9920 samples at 32 kHz)")
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # normalise per mel bin
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, pool=2 if i < 6 else 1)
            x = F.dropout(x, 0.2, self.training)
        x = x.mean(dim=3)
        x = x.amax(dim=2) + x.mean(dim=2)
        x = F.dropout(x, 0.5, self.training)
        return F.relu(self.fc1(x))


_IGNORED = ("fc_audioset.",)


def load_cnn14_checkpoint(path: str | Path) -> Cnn14:
    """A :class:`Cnn14` (eval mode) from a released PANNs checkpoint, strictly (classifier left out).

    Raises :class:`EncoderUnavailableError` (one line) when the file is missing, unreadable with
    ``weights_only=True``, or not CNN14.
    """
    path = Path(path).expanduser()
    sd = read_checkpoint_tensors(path, "CNN14", hint=f" (the released Cnn14_mAP=0.431.pth: {RELEASE_URL})")
    if sd and all(k.startswith("module.") for k in sd):  # saved from DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    w = sd.get("conv_block6.conv1.weight")
    if w is None or tuple(w.shape) != (2048, 1024, 3, 3):
        raise EncoderUnavailableError(
            f"{path} is not a CNN14 checkpoint: no conv_block6.conv1.weight [2048, 1024, 3, 3]")
    model = Cnn14()
    sd = {k: v for k, v in sd.items() if not k.startswith(_IGNORED)}
    what = "CNN14 (32 kHz, n_fft 1024, 64 mels)"
    check_shapes(model, sd, path, what)
    load_strict(model, sd, path, what)
    return model.eval()


@register_encoder("cnn14")
class Cnn14Encoder(AudioEncoder):
    """PANNs CNN14 ``embedding`` (2048-d, one vector per clip) from a released checkpoint file."""

    encoder_id = "panns-cnn14"
    sample_rate = SAMPLE_RATE
    dim = EMBED_DIM

    def __init__(self, checkpoint: str | None = None, batch_size: int = 4) -> None:
        super().__init__()
        if not checkpoint:
            raise EncoderUnavailableError(
                f"encoder 'cnn14' needs a checkpoint file: download {RELEASE_URL} and pass "
                "audio_encoder_params='{checkpoint: /path/Cnn14_mAP=0.431.pth}'"
            )
        self.checkpoint = checkpoint_file(checkpoint)
        self.model = load_cnn14_checkpoint(self.checkpoint)
        self.batch_size = batch_size
        self._hash: str | None = None

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = hash_files([self.checkpoint])
        return self._hash

    def params(self) -> dict[str, Any]:
        return {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop_length": HOP, "n_mels": N_MELS, "fmin": FMIN,
                "fmax": FMAX, "output": "embedding (fc1 after max+mean pooling)"}

    def to(self, device: str | torch.device) -> Cnn14Encoder:
        super().to(device)
        self.model.to(self.device)
        return self

    @torch.inference_mode()
    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        arrays = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waves]
        min_samples = (MIN_FRAMES - 1) * HOP
        for i, a in enumerate(arrays):
            if a.size < min_samples:
                raise ValueError(f"wave {i} ({a.size} samples) is shorter than CNN14's minimum ({min_samples} "
                                 "samples at 32 kHz, 0.31 s)")
        out = np.zeros((len(arrays), self.dim), np.float32)
        by_len: dict[int, list[int]] = {}
        for i, a in enumerate(arrays):
            by_len.setdefault(a.size, []).append(i)
        for idx in by_len.values():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s : s + self.batch_size]
                batch = torch.from_numpy(np.stack([arrays[i] for i in chunk])).to(self.device)
                out[chunk] = self.model(batch).float().cpu().numpy()
        return out

    def frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        return [e[None] for e in self.embed(waves)]
