"""Shared fixtures: one local Ray instance per test session (2 CPUs, like CI), tiny audio corpora."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def ray_local():
    import ray

    if not ray.is_initialized():
        # the dashboard serves the state API that Ray Train V2 uses to clean up stopped trials
        ray.init(num_cpus=2, logging_level="ERROR")
    yield ray
    ray.shutdown()


def write_tone(path: Path, freq: float, seconds: float = 0.6, sr: int = 16000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav.astype(np.float32), sr, subtype="PCM_16")
    return path


@pytest.fixture
def tone_manifest(tmp_path: Path):
    """A 3-split manifest of 24 tone clips (6 'words' = frequencies, 4 clips each)."""
    from orchestrator.corpus import manifest_table, write_manifest

    rows = []
    freqs = [220, 330, 440, 550, 660, 770]
    for w, f in enumerate(freqs):
        split = ["train", "train", "train", "train", "val", "test"][w]
        for k in range(4):
            p = write_tone(tmp_path / "audio" / f"w{w}_{k}.wav", f * (1 + 0.01 * k), seed=k)
            rows.append({"id": f"w{w}_{k}", "split": split, "audio_path": str(p), "sr": 16000, "offset": 0.0,
                         "duration": 0.6, "texts": [f"word{w}"], "label": f"word{w}"})
    return write_manifest(manifest_table(rows), tmp_path / "manifest.parquet"), rows
