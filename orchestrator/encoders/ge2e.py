"""GE2E speaker encoder (Wan et al. 2018, "Generalized end-to-end loss for speaker verification"):
the ``local`` profile's speaker encoder, with the real weights that ship in the ``resemblyzer``
0.1.4 wheel (``resemblyzer/pretrained.pt``).

Why not import resemblyzer: ``import resemblyzer`` imports ``webrtcvad`` (whose 2.0.10 release
fails on ``pkg_resources`` unless ``webrtcvad-wheels`` overwrote it) and librosa (numba, llvmlite)
just to compute a mel spectrogram. Only the weight file is needed, so it is located through the
installed distribution's file list and read with ``torch.load(weights_only=True)`` into
:class:`GE2E`, a module in resemblyzer's parameter layout (``lstm.*``, ``linear.*``);
``tests/test_speaker_encoders.py`` checks it against resemblyzer's ``VoiceEncoder.embed_utterance``.

Pipeline (resemblyzer's ``preprocess_wav`` + ``embed_utterance``, re-implemented):

* 16 kHz input; the volume is raised (never lowered) to -30 dBFS RMS.
* optional silence trimming (``trim_silence``, off by default, see below).
* partial utterances: 160-frame (1.6 s) windows every ``round(16000 / rate / 160)`` frames (77 at
  resemblyzer's rate 1.3); a last window covering less than ``min_coverage`` (0.75) of real audio is
  dropped unless it is the only one; the wave is zero-padded to the last window's end.
* features: power mel spectrogram (no log) of the padded wave, as librosa 0.11's
  ``melspectrogram`` computes it: 400-sample (25 ms) periodic Hann window, 160-sample (10 ms) hop,
  centred frames with zero padding, 40 Slaney-normalised Slaney-scale mel bands, 0-8 kHz.
* model: 3-layer LSTM (40 -> 256), the last layer's final hidden state, Linear 256 -> 256, ReLU,
  L2 norm: one embedding per partial.
* utterance embedding: the L2-normalised mean of the partial embeddings.

``frames()`` returns the partial embeddings (one 256-d vector per 1.6 s window, each L2-normed);
``embed()`` returns the utterance embedding, which is *not* the plain frame mean: it is normalised
again, as resemblyzer does, so cosine and dot product agree on it.

Silence trimming (``trim_silence``): resemblyzer's ``preprocess_wav`` removes silences longer than
about 0.2 s with the WebRTC VAD (mode 3) before embedding. It is off by default here because (1) the
workloads' clips are already cut to utterances (corpus segments, synthesised sentences), so long
pauses are rare; (2) the aggressive VAD is a GMM tuned for natural telephone-band speech: on short
or synthetic clips it can remove voiced audio or everything, which makes a clip's embedding depend
on a C library's decisions rather than on the speaker; (3) it keeps the ``webrtcvad`` C extension out
of the runtime. ``trim_silence=True`` reproduces ``preprocess_wav`` (it needs the ``webrtcvad``
module, e.g. from ``webrtcvad-wheels``); if the VAD finds no speech at all, the untrimmed wave is
used instead of an empty one.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.audio_utils import mel_filter_bank

from orchestrator.encoders.base import (
    AudioEncoder,
    EncoderUnavailableError,
    hash_files,
    load_strict,
    one_line,
    register_encoder,
)
from orchestrator.encoders.ecapa import check_shapes

PIP_HINT = "pip install resemblyzer==0.1.4 webrtcvad-wheels"
SAMPLE_RATE = 16000
N_MELS = 40
WIN = 400  # 25 ms
HOP = 160  # 10 ms
PARTIAL_FRAMES = 160  # 1.6 s
NORM_TARGET_DBFS = -30.0
INT16_MAX = 2**15 - 1
# resemblyzer's VAD settings (hparams.py): 30 ms windows, moving average over 8, pauses of up to 6
VAD_WINDOW = 480
VAD_AVERAGE = 8
VAD_MAX_SILENCE = 6


class GE2E(nn.Module):
    """resemblyzer's ``VoiceEncoder`` network: mel partials ``[B, 160, 40]`` -> ``[B, 256]`` unit vectors."""

    def __init__(self, n_mels: int = N_MELS, hidden: int = 256, layers: int = 3, embedding: int = 256) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_mels, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, embedding)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(mels)
        # eps only matters for an all-zero ReLU output, where resemblyzer would return NaNs
        return F.normalize(F.relu(self.linear(h[-1])), dim=-1, eps=1e-12)


def resemblyzer_weights_path() -> Path:
    """``pretrained.pt`` of the installed resemblyzer distribution, found without importing it."""
    try:
        dist = importlib.metadata.distribution("resemblyzer")
    except importlib.metadata.PackageNotFoundError:
        raise EncoderUnavailableError(
            f"GE2E weights not found: the resemblyzer wheel is not installed ({PIP_HINT})"
        ) from None
    for f in dist.files or []:
        if f.name == "pretrained.pt" and f.parent.name == "resemblyzer":
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise EncoderUnavailableError(
        f"GE2E weights not found: resemblyzer {dist.version} is installed but has no resemblyzer/pretrained.pt "
        f"({PIP_HINT})"
    )


def load_ge2e(path: Path) -> GE2E:
    """The network with weights from a resemblyzer ``pretrained.pt`` (``model_state``); the GE2E
    loss's own scalars (``similarity_weight``/``similarity_bias``) are not part of the encoder."""
    if not path.is_file():
        raise EncoderUnavailableError(f"GE2E weights not found: {path} ({PIP_HINT})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise EncoderUnavailableError(
            f"cannot read GE2E weights {path} with torch.load(weights_only=True): {one_line(e)}"
        ) from None
    sd = obj.get("model_state", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or "lstm.weight_ih_l0" not in sd:
        raise EncoderUnavailableError(f"{path} is not a resemblyzer GE2E checkpoint (no model_state with lstm.*)")
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor) and not k.startswith("similarity_")}
    model = GE2E()
    what = "GE2E (LSTM 40->256 x3, Linear 256->256)"
    check_shapes(model, sd, path, what)
    load_strict(model, sd, path, what)
    return model.eval()


def normalize_volume(wave: np.ndarray, target_dbfs: float = NORM_TARGET_DBFS) -> np.ndarray:
    """Raise (never lower) the RMS level to ``target_dbfs``; a silent wave is returned as is
    (resemblyzer would multiply zeros by infinity)."""
    rms = float(np.sqrt(np.mean(np.square(wave.astype(np.float64) * INT16_MAX))))
    if rms == 0.0:
        return wave
    change = target_dbfs - 20.0 * np.log10(rms / INT16_MAX)
    if change < 0:
        return wave
    return (wave * np.float32(10.0 ** (change / 20.0))).astype(np.float32)


def trim_long_silences(wave: np.ndarray) -> np.ndarray:
    """resemblyzer's ``trim_long_silences``: WebRTC VAD (mode 3) on 30 ms windows, smoothed by a
    moving average of 8 and rounded, voiced runs dilated by 3 windows each side; the tail that
    does not fill a window is dropped. Samples are clipped to int16 for the VAD (resemblyzer's cast
    would wrap around). Returns the wave unchanged when no window is voiced."""
    try:
        import webrtcvad
    except ImportError:
        raise EncoderUnavailableError(
            "ge2e trim_silence=True needs the webrtcvad module (pip install webrtcvad-wheels)"
        ) from None
    wave = wave[: wave.size - wave.size % VAD_WINDOW]
    if wave.size == 0:
        return wave
    pcm = np.clip(np.round(wave * INT16_MAX), -INT16_MAX - 1, INT16_MAX).astype("<i2").tobytes()
    vad = webrtcvad.Vad(3)
    step = VAD_WINDOW * 2  # bytes per window
    flags = np.array([vad.is_speech(pcm[i : i + step], SAMPLE_RATE) for i in range(0, len(pcm), step)], float)
    padded = np.concatenate([np.zeros((VAD_AVERAGE - 1) // 2), flags, np.zeros(VAD_AVERAGE // 2)])
    smooth = np.round(np.convolve(padded, np.ones(VAD_AVERAGE), mode="valid") / VAD_AVERAGE).astype(bool)
    voiced = np.convolve(smooth, np.ones(VAD_MAX_SILENCE + 1), mode="same") > 0
    if not voiced.any():
        return wave
    return wave[np.repeat(voiced, VAD_WINDOW)]


def partial_starts(n_samples: int, rate: float, min_coverage: float) -> list[int]:
    """First mel frame of each 160-frame partial (resemblyzer's ``compute_partial_slices``)."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round(SAMPLE_RATE / rate / HOP))
    if not 0 < step <= PARTIAL_FRAMES:
        raise ValueError(f"rate {rate} gives a partial step of {step} frames; it must be 1..{PARTIAL_FRAMES}")
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    last = starts[-1] * HOP
    coverage = (n_samples - last) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(starts) > 1:
        starts.pop()
    return starts


class GE2EMel:
    """librosa 0.11 ``melspectrogram`` with resemblyzer's settings, on ``torch.stft``."""

    def __init__(self) -> None:
        self.window = torch.hann_window(WIN, periodic=True)
        fb = mel_filter_bank(num_frequency_bins=WIN // 2 + 1, num_mel_filters=N_MELS, min_frequency=0.0,
                             max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, norm="slaney",
                             mel_scale="slaney")
        self.filters = torch.from_numpy(fb.T.astype(np.float32))  # [40, 201]

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        """``[n]`` -> ``[1 + n // 160, 40]`` power mel frames."""
        spec = torch.stft(wave, WIN, HOP, WIN, self.window.to(wave.device), center=True, pad_mode="constant",
                          return_complex=True)
        power = spec.real.square() + spec.imag.square()
        return (self.filters.to(wave.device) @ power).T


@register_encoder("ge2e")
class GE2EEncoder(AudioEncoder):
    """GE2E speaker embeddings (resemblyzer's weights and pipeline); see the module docstring."""

    encoder_id = "ge2e-resemblyzer"
    sample_rate = SAMPLE_RATE
    dim = 256

    def __init__(
        self,
        weights: str | None = None,
        trim_silence: bool = False,
        rate: float = 1.3,
        min_coverage: float = 0.75,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        if not 0 < min_coverage <= 1:
            raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
        partial_starts(SAMPLE_RATE, rate, min_coverage)  # validates rate
        self.weights_path = Path(weights).expanduser() if weights else resemblyzer_weights_path()
        self.model = load_ge2e(self.weights_path)
        self.trim_silence = bool(trim_silence)
        if self.trim_silence:
            trim_long_silences(np.zeros(VAD_WINDOW, np.float32))  # fail now, in one line, without webrtcvad
        self.rate = float(rate)
        self.min_coverage = float(min_coverage)
        self.batch_size = batch_size
        self.mel = GE2EMel()
        self._hash: str | None = None

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = hash_files([self.weights_path])
        return self._hash

    def params(self) -> dict[str, Any]:
        return {
            "sample_rate": SAMPLE_RATE, "n_mels": N_MELS, "win_length": WIN, "hop_length": HOP,
            "mel": "power, slaney, centred zero-padded frames", "norm_target_dbfs": NORM_TARGET_DBFS,
            "trim_silence": self.trim_silence, "partial_frames": PARTIAL_FRAMES, "rate": self.rate,
            "min_coverage": self.min_coverage, "embed": "l2(mean(l2 partials))",
        }

    def to(self, device: str | torch.device) -> GE2EEncoder:
        super().to(device)
        self.model.to(self.device)
        return self

    def preprocess(self, wave: np.ndarray) -> np.ndarray:
        """Volume normalisation and, if asked, silence trimming (resemblyzer's ``preprocess_wav``
        for a wave already at 16 kHz)."""
        w = np.asarray(wave, dtype=np.float32).reshape(-1)
        if w.size == 0:
            raise ValueError("empty wave")
        w = normalize_volume(w)
        if self.trim_silence:
            trimmed = trim_long_silences(w)
            w = trimmed if trimmed.size else w
        return w

    def partial_mels(self, wave: np.ndarray) -> torch.Tensor:
        """``[n_partials, 160, 40]`` mel windows of one preprocessed wave."""
        starts = partial_starts(wave.size, self.rate, self.min_coverage)
        end = (starts[-1] + PARTIAL_FRAMES) * HOP
        w = torch.from_numpy(wave).to(self.device)
        if end >= w.numel():
            w = F.pad(w, (0, end - w.numel()))
        mel = self.mel(w)
        return torch.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])

    @torch.inference_mode()
    def partials(self, waves: list[np.ndarray]) -> list[torch.Tensor]:
        """Each wave's partial embeddings ``[n_i, 256]``; partials of all waves share LSTM passes
        (every partial is exactly 160 frames, so batching changes nothing)."""
        if not waves:
            return []
        mels = [self.partial_mels(self.preprocess(w)) for w in waves]
        flat = torch.cat(mels)
        out = torch.cat([self.model(flat[i : i + self.batch_size]) for i in range(0, flat.shape[0], self.batch_size)])
        return list(out.split([m.shape[0] for m in mels]))

    def frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        return [p.float().cpu().numpy() for p in self.partials(waves)]

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        if not waves:
            return np.zeros((0, self.dim), np.float32)
        means = torch.stack([p.mean(dim=0) for p in self.partials(waves)])
        return F.normalize(means, dim=-1, eps=1e-12).float().cpu().numpy()
