"""Silence trimming of synthesised speech, shared by the local corpora.

eSpeak NG pads its output with a fixed lead-in and lead-out; left in, that silence would be a
speaker- and word-independent constant in every clip. Kept in whole 10 ms frames so the cut is
deterministic for a given waveform (the corpora's content hashes depend on it).
"""

from __future__ import annotations

import numpy as np


def trim_silence(audio: np.ndarray, sr: int, threshold_db: float = -40.0, pad_s: float = 0.0) -> np.ndarray:
    """Cut to the 10 ms frames whose RMS is within ``-threshold_db`` dB of the loudest frame,
    keeping ``pad_s`` seconds of the original signal on each side; empty for silent input."""
    f = max(1, int(sr) // 100)
    n = len(audio) // f
    if n == 0:
        return audio[:0]
    energy = np.sqrt((audio[: n * f].reshape(n, f).astype(np.float64) ** 2).mean(axis=1))
    if energy.max() <= 0:
        return audio[:0]
    loud = np.flatnonzero(20 * np.log10(np.maximum(energy, 1e-12) / energy.max()) > threshold_db)
    pad = int(pad_s * sr)
    return audio[max(0, loud[0] * f - pad) : min(len(audio), (loud[-1] + 1) * f + pad)]
