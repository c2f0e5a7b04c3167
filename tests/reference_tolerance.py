"""How the encoders' re-implementations are compared with stored outputs of the original code.

The references were computed once, on one CPU; the tests run on any x86-64 CPU, whose kernels
(ATen's default / AVX2 / AVX512 paths, MKL's FFT, oneDNN's convolutions, the thread count) sum in
another order. A bound must therefore hold for float32 arithmetic in any order, yet stay far below
what a real implementation error changes. Each comparison returns its *excess*: the worst ratio of
the difference to its bound, so a test asserts ``excess <= 1`` and a mutation test asserts that a
real error (a shifted mel filter, a wrong window, a transposed layer) exceeds the bound at least 5
times (the ``*_fails_on_implementation_errors`` tests beside each stored-reference test).

Measured on a 2-core AVX2 machine across ``ATEN_CPU_CAPABILITY=default|avx2``, ``ONEDNN_MAX_CPU_ISA=
SSE41``, and 1 or 2 threads: the worst excess is 0.049 (``tests/fixtures/reference_excess.py``
prints them); the AVX512-vs-AVX2 difference reported for ECAPA's front end is 0.0085 of its bound.
"""

from __future__ import annotations

import numpy as np
import torch

# Why a log-power spectrum is compared as power, with a bound that grows as the band gets quieter:
# a float32 FFT's error is absolute, about eps * |frame| for every bin, so a band of power P in a
# frame whose loudest band is P_max is off by about 2 |X| eps |x| ~ eps sqrt(P * P_max). In dB that
# is small at the peak and large 60 dB below it (AVX512 vs AVX2: 3.7e-4 dB at -35 dB), so an
# absolute dB tolerance either fails on another CPU or is loose at the peak. 1e-5 is ~80 float32
# eps: room for the FFT's log2(n_fft) stages and the filter sums, not for a misplaced filter.
SPECTRUM_K = 1e-5

# Why network outputs are compared relative to the output's scale: a float32 result of a K-term
# dot product is off by ~sqrt(K) eps times the terms' size, and layer after layer these absolute
# errors propagate at the activations' scale, not at each element's own size (an element near
# zero has a large relative error). 3e-5 of the largest output is ~250 eps.
EMBEDDING_TOL = 3e-5


def _f64(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float64)


def db_to_power(db: torch.Tensor | np.ndarray) -> np.ndarray:
    """``10 log10(P)`` back to ``P`` (float64): the domain the reference's STFT computed in."""
    return 10.0 ** (_f64(db) / 10.0)


def spectrum_excess(ours_power: torch.Tensor | np.ndarray, ref_power: torch.Tensor | np.ndarray,
                    k: float = SPECTRUM_K) -> float:
    """Worst ``|P_ours - P_ref| / (k sqrt(P_ref P_max))`` over one utterance's bands and frames
    (``P_max``: the utterance's loudest band)."""
    ours, ref = _f64(ours_power), _f64(ref_power)
    if ours.shape != ref.shape:
        return float("inf")
    bound = k * np.sqrt(ref * ref.max())
    return float((np.abs(ours - ref) / np.maximum(bound, np.finfo(np.float64).tiny)).max())


def db_spectrum_excess(ours_db: torch.Tensor | np.ndarray, ref_db: torch.Tensor | np.ndarray,
                       k: float = SPECTRUM_K) -> float:
    """:func:`spectrum_excess` of two dB spectra (``10 log10(P)``, reference 1)."""
    return spectrum_excess(db_to_power(ours_db), db_to_power(ref_db), k)


def scale_excess(ours: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray,
                 tol: float = EMBEDDING_TOL) -> float:
    """Worst ``|ours - ref| / (tol max|ref|)``."""
    a, b = _f64(ours), _f64(ref)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max() / (tol * np.abs(b).max()))
