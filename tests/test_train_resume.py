"""A retried trial continues from its newest checkpoint (``orchestrator.train.train_model``, no Ray):
every validation round leaves ``resume.pt``, and training resumed from round r reports the rounds
after r only, with the same numbers and final weights as the training that was never interrupted.
Random in-memory rows stand in for a trial's views: the toy two-view workload
(``tests/toy_views.py``) and QbE, whose triplet sampler draws from an RNG of its own
(``Workload.training_state``)."""

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

TOY = {"workload": "tests.toy_views:INFO", "metric": "val/t2a/mrr", "mode": "max", "max_epochs": None,
       "cfg": {"epochs": 6, "eval_every": 1, "batch_size": 8, "lr": 3e-2}}
QBE = {"workload": "qbe", "metric": "val/silhouette_labels", "mode": "max", "max_epochs": None,
       "cfg": {"epochs": 6, "eval_every": 1, "batch_size": 16, "hidden_dim": 32, "out_dim": 16,
               "semi_hard_share": 0.5}}


def toy_rows(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    audio = rng.normal(size=(n, 48)).astype(np.float32)
    text = (audio @ rng.normal(size=(48, 384)).astype(np.float32))[:, None, :] + rng.normal(size=(n, 2, 384))
    return pa.table({"id": [f"c{i:02d}" for i in range(n)], "audio": audio.tolist(),
                     "text": text.astype(np.float32).tolist()})


def qbe_rows(n: int, seed: int) -> pa.Table:
    """Clips of 6 words: a word's centre plus noise, as a pooled 24-d audio view."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(7).normal(size=(6, 24))
    labels = [f"w{i % 6}" for i in range(n)]
    x = (centres[[i % 6 for i in range(n)]] + 0.8 * rng.normal(size=(n, 24))).astype(np.float32)
    audio = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 24)
    return pa.table({"id": [f"c{i:02d}" for i in range(n)], "label": labels, "audio": audio})


CASES = {"toy": (TOY, toy_rows, ("train/loss", "val/t2a/mrr", "best/val/t2a/mrr")),
         "qbe": (QBE, qbe_rows, ("train/loss", "val/silhouette_labels", "best/val/silhouette_labels"))}


class RecordingHost(Host):
    """Keeps every round's metrics and a copy of its checkpoint; resumes from ``resume`` if given."""

    def __init__(self, tmp: Path, rows: Any, resume: Path | None = None) -> None:
        self.tables = {"train": rows(36, 0), "val": rows(18, 1)}
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
@pytest.mark.parametrize("case", sorted(CASES))
def test_training_resumed_from_a_round_equals_the_uninterrupted_one(tmp_path: Path, case: str, round_: int) -> None:
    loop, rows, keys = CASES[case]
    whole = RecordingHost(tmp_path / "whole", rows)
    (tmp_path / "whole").mkdir()
    train_model(whole, loop)
    assert [m["epoch"] for m in whole.reports] == list(range(6))
    assert [os.path.exists(c / RESUME_FILE) for c in whole.ckpts] == [True] * 5 + [False]  # the final round needs none

    resumed = RecordingHost(tmp_path / "resumed", rows, resume=whole.ckpts[round_])
    (tmp_path / "resumed").mkdir()
    train_model(resumed, loop)
    assert [m["epoch"] for m in resumed.reports] == list(range(round_ + 1, 6))
    for a, b in zip(whole.reports[round_ + 1:], resumed.reports, strict=True):
        for key in keys:
            assert b[key] == pytest.approx(a[key], abs=1e-7), (b["epoch"], key)
    final_a = torch.load(whole.ckpts[-1] / MODEL_FILE, weights_only=True)
    final_b = torch.load(resumed.ckpts[-1] / MODEL_FILE, weights_only=True)
    assert final_a["epoch"] == final_b["epoch"]
    for name, w in final_a["model"].items():
        assert torch.allclose(w, final_b["model"][name], atol=1e-7), name


# ------------------------------------------------------------------------------------------------
# several Train workers: every rank's streams are kept, so a retried DDP trial is the undisturbed one


class _DDPHost(RecordingHost):
    """Rank ``rank`` of 2 in a gloo process group, DDP around the model (what
    ``ray.train.torch.prepare_model`` does on CPU); QbE shards its training words itself."""

    def __init__(self, tmp: Path, rows: Any, rank: int, resume: Path | None = None) -> None:
        super().__init__(tmp, rows, resume)
        self.rank, self.world_size = rank, 2

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return torch.nn.parallel.DistributedDataParallel(model)

    def report(self, metrics: dict[str, Any], ckpt_dir: str | None) -> None:
        if self.rank == 0:
            super().report(metrics, ckpt_dir)


def _ddp_worker(rank: int, case: str, tmp: str, resume: str | None) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp}/pg-{'resumed' if resume else 'whole'}",
                            rank=rank, world_size=2)
    try:
        loop, rows, _ = CASES[case]
        out = Path(tmp) / ("resumed" if resume else "whole")
        out.mkdir(exist_ok=True)
        host = _DDPHost(out, rows, rank, Path(resume) if resume else None)
        train_model(host, loop)
        if rank == 0:
            torch.save({"reports": host.reports, "ckpts": [str(c) for c in host.ckpts]}, out / "result.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("case", ["qbe"])
def test_a_resumed_two_worker_training_equals_the_uninterrupted_one(tmp_path: Path, case: str) -> None:
    """QbE draws triplets from per-rank RNGs (numpy and its sampler's): with only rank 0's streams
    kept, rank 1 resumed on fresh ones and the weights diverged from the undisturbed run's."""
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(case, str(tmp_path), None), nprocs=2)
    whole = torch.load(tmp_path / "whole" / "result.pt", weights_only=False)
    ckpt = Path(whole["ckpts"][2])
    assert len(torch.load(ckpt / RESUME_FILE, weights_only=True)["ranks"]) == 2
    mp.spawn(_ddp_worker, args=(case, str(tmp_path), str(ckpt)), nprocs=2)
    resumed = torch.load(tmp_path / "resumed" / "result.pt", weights_only=False)
    assert [m["epoch"] for m in resumed["reports"]] == [3, 4, 5]
    for a, b in zip(whole["reports"][3:], resumed["reports"], strict=True):
        assert b["train/loss"] == pytest.approx(a["train/loss"], abs=1e-9)
    final_a = torch.load(Path(whole["ckpts"][-1]) / MODEL_FILE, weights_only=True)
    final_b = torch.load(Path(resumed["ckpts"][-1]) / MODEL_FILE, weights_only=True)
    for name, w in final_a["model"].items():
        assert torch.allclose(w, final_b["model"][name], atol=1e-9), name
