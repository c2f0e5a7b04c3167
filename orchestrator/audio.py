"""Decoding one manifest item to a mono float32 waveform at the encoder's rate.

Every failure becomes a :class:`BadAudioError` naming the item, so the extraction stage can
either fail with one line or quarantine the item (``--skip-bad-items``). ``path`` is a local path
or a URI (``s3://...``: read through ``pyarrow.fs`` into memory, then decoded the same way), so an
extraction actor on any node of a cluster reads the audio from the shared cache.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr


class BadAudioError(ValueError):
    def __init__(self, item_id: str, reason: str):
        super().__init__(f"item {item_id!r}: {reason}")
        self.item_id = item_id
        self.reason = reason


MIN_SAMPLES = 160  # 10 ms at 16 kHz: anything shorter cannot be framed by any encoder here


def load_audio(
    item_id: str,
    path: str,
    target_sr: int,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Read ``[offset, offset+duration)`` of ``path``, mix to mono and resample to ``target_sr``."""
    src: str | io.BytesIO = _fetch(item_id, path) if "://" in path else path
    try:
        info = sf.info(src)
    except FileNotFoundError:
        raise BadAudioError(item_id, f"missing audio file {path}") from None
    except Exception as e:  # libsndfile's errors are RuntimeError/LibsndfileError
        if not _exists(src):
            raise BadAudioError(item_id, f"missing audio file {path}") from None
        raise BadAudioError(item_id, f"unreadable audio file {path} ({e})") from None
    sr = info.samplerate
    start = int(round(offset * sr))
    stop = None if duration is None or duration <= 0 else start + int(round(duration * sr))
    if isinstance(src, io.BytesIO):
        src.seek(0)
    try:
        wav, sr = sf.read(src, start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as e:
        raise BadAudioError(item_id, f"corrupt audio file {path} ({e})") from None
    wav = wav.mean(axis=1)
    if wav.size == 0:
        raise BadAudioError(item_id, f"empty audio ({path}, offset {offset:.3f}s)")
    if not np.isfinite(wav).all():
        raise BadAudioError(item_id, f"non-finite samples in {path}")
    if sr != target_sr:
        wav = soxr.resample(wav, sr, target_sr).astype(np.float32, copy=False)
    if wav.size < MIN_SAMPLES * target_sr // 16000:
        raise BadAudioError(item_id, f"audio too short ({wav.size} samples at {target_sr} Hz) in {path}")
    return np.ascontiguousarray(wav, dtype=np.float32)


def _exists(path: object) -> bool:
    import os

    return not isinstance(path, str) or os.path.exists(path)


def _fetch(item_id: str, uri: str) -> io.BytesIO:
    """The file's bytes from a URI (clips are small; a long file is read whole once per item)."""
    from orchestrator import storage

    try:
        data = storage.read_bytes(uri)
    except (FileNotFoundError, OSError) as e:
        raise BadAudioError(item_id, f"missing audio file {uri} ({str(e).splitlines()[0][:120]})") from None
    buf = io.BytesIO(data)
    buf.name = uri  # soundfile infers the format from the extension when the header is ambiguous
    return buf
