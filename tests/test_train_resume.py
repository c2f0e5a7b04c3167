"""A retried trial continues from its newest checkpoint (``orchestrator.train.train_model``, no Ray):
every validation round leaves ``resume.pt``, and training resumed from round r reports the rounds
after r only, with the same numbers and final weights as the training that was never interrupted.
The toy workload (``tests/toy_views.py``) on random in-memory rows stands in for a trial's views."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from orchestrator.train import MODEL_FILE, RESUME_FILE, Host, train_model

LOOP = {"workload": "tests.toy_views:INFO", "metric": "val/t2a/mrr", "mode": "max", "max_epochs": None,
        "cfg": {"epochs": 6, "eval_every": 1, "batch_size": 8, "lr": 3e-2}}


def rows(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    audio = rng.normal(size=(n, 48)).astype(np.float32)
    text = (audio @ rng.normal(size=(48, 384)).astype(np.float32))[:, None, :] + rng.normal(size=(n, 2, 384))
    return pa.table({"id": [f"c{i:02d}" for i in range(n)], "audio": audio.tolist(),
                     "text": text.astype(np.float32).tolist()})


class RecordingHost(Host):
    """Keeps every round's metrics and a copy of its checkpoint; resumes from ``resume`` if given."""

    def __init__(self, tmp: Path, resume: Path | None = None) -> None:
        self.tables = {"train": rows(24, 0), "val": rows(12, 1)}
        self.tmp, self.resume = tmp, resume
        self.reports: list[dict[str, Any]] = []
        self.ckpts: list[Path] = []

    def rows(self, split: str) -> pa.Table:
        return self.tables[split]

    def report(self, metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        self.reports.append(metrics)
        assert ckpt_dir is not None  # every round checkpoints
        kept = self.tmp / f"round-{len(self.ckpts)}"
        shutil.move(ckpt_dir, kept)
        self.ckpts.append(kept)

    def resume_dir(self) -> str | None:
        if self.resume is None:
            return None
        return shutil.copytree(self.resume, tempfile.mkdtemp(prefix="resume-test-"), dirs_exist_ok=True)


@pytest.mark.parametrize("round_", [0, 2, 4])
def test_training_resumed_from_a_round_equals_the_uninterrupted_one(tmp_path: Path, round_: int) -> None:
    whole = RecordingHost(tmp_path / "whole")
    (tmp_path / "whole").mkdir()
    train_model(whole, LOOP)
    assert [m["epoch"] for m in whole.reports] == list(range(6))
    assert [os.path.exists(c / RESUME_FILE) for c in whole.ckpts] == [True] * 5 + [False]  # the final round needs none

    resumed = RecordingHost(tmp_path / "resumed", resume=whole.ckpts[round_])
    (tmp_path / "resumed").mkdir()
    train_model(resumed, LOOP)
    assert [m["epoch"] for m in resumed.reports] == list(range(round_ + 1, 6))
    for a, b in zip(whole.reports[round_ + 1:], resumed.reports, strict=True):
        for key in ("train/loss", "val/t2a/mrr", "best/val/t2a/mrr"):
            assert b[key] == pytest.approx(a[key], abs=1e-7), (b["epoch"], key)
    final_a = torch.load(whole.ckpts[-1] / MODEL_FILE, weights_only=True)
    final_b = torch.load(resumed.ckpts[-1] / MODEL_FILE, weights_only=True)
    assert final_a["epoch"] == final_b["epoch"]
    for name, w in final_a["model"].items():
        assert torch.allclose(w, final_b["model"][name], atol=1e-7), name
