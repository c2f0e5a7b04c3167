"""The trial's test checkpoints, on the QbE workload without a Ray cluster: ``test/...`` evaluates
the best-validation epoch and ``test_last/...`` the last epoch, whose weights the final checkpoint
carries beside the best (the TAR thesis tests the last epoch, the QbE thesis the best). The Ray
Train calls of ``train_loop_per_worker`` are replaced by an in-process stand-in that persists each
reported checkpoint as Train storage would."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from orchestrator import train as train_mod
from orchestrator.registry import WorkloadInfo
from orchestrator.views import JoinReport
from workloads.qbe import INFO
from workloads.qbe.workload import QbEWorkload

SCRIPT: list[float] = []  # validation values the scripted workload returns, in order
PATIENCE: list[int | None] = [None]  # the scripted workload's early-stopping patience


class ScriptedQbE(QbEWorkload):
    """QbE whose validation value is scripted, so which epoch is best is known in advance."""

    info = WorkloadInfo(name="qbe_scripted", config_cls=INFO.config_cls, regime="frozen",
                        profiles_file=INFO.profiles_file, impl="tests.test_qbe_checkpoints:ScriptedQbE")

    def validate(self, model: torch.nn.Module, val: Any, cfg: Any) -> dict[str, float]:
        return {**super().validate(model, val, cfg), "val/scripted": SCRIPT.pop(0)}

    def patience(self, cfg: Any) -> int | None:
        return PATIENCE[0]


SCRIPTED_INFO = ScriptedQbE.info


def _split_table(n_words: int, per_word: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    labels = np.repeat([f"w{seed}_{i}" for i in range(n_words)], per_word)
    x = rng.standard_normal((labels.size, 16)).astype(np.float32)
    return pa.table({"id": [f"s{seed}_{i:03d}" for i in range(labels.size)], "label": labels.tolist(),
                     "audio": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 16)})


class _Shard:
    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def iter_batches(self, batch_size: Any = None, batch_format: str = "pyarrow") -> list[pa.Table]:
        return [self.table]


class _Context:
    def get_world_rank(self) -> int:
        return 0

    def get_world_size(self) -> int:
        return 1


def _train(monkeypatch: pytest.MonkeyPatch, storage: Path, script: list[float], epochs: int) -> tuple[list, Any]:
    """Run the real train loop for ``epochs`` (validation every epoch); returns the reports as
    (metrics, persisted checkpoint dir or None) and the config."""
    import ray.train
    import ray.train.torch

    SCRIPT[:] = script
    shards = {"train": _Shard(_split_table(8, 4, 0)), "val": _Shard(_split_table(4, 3, 1))}
    reports: list[tuple[dict[str, Any], Path | None]] = []

    def report(metrics: dict[str, Any], checkpoint: Any = None) -> None:
        kept = None
        if checkpoint is not None:  # Train copies the directory into its storage
            kept = storage / f"checkpoint_{len(reports)}"
            shutil.copytree(checkpoint.path, kept)
        reports.append((dict(metrics), kept))

    monkeypatch.setattr(ray.train, "get_context", lambda: _Context())
    monkeypatch.setattr(ray.train, "get_dataset_shard", lambda name: shards[name])
    monkeypatch.setattr(ray.train, "report", report)
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: None)  # a first attempt, never a retry
    monkeypatch.setattr(ray.train.torch, "get_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(ray.train.torch, "prepare_model", lambda m: m)
    cfg = {"encoder": "whisper_tiny_en", "epochs": epochs, "eval_every": 1, "batch_size": 8, "seed": 0}
    train_mod.train_loop_per_worker({"workload": "tests.test_qbe_checkpoints:SCRIPTED_INFO", "cfg": cfg,
                                     "metric": "val/scripted", "mode": "max", "max_epochs": None})
    return reports, cfg


def _evaluate(monkeypatch: pytest.MonkeyPatch, ckpt_dir: Path, cfg: dict[str, Any]) -> train_mod.Evaluation:
    import ray.train

    monkeypatch.setattr(train_mod, "trial_tables", lambda wl, c, ctx, splits: (_split_table(5, 4, 2), JoinReport()))
    ctx = train_mod.TrialContext(workload="tests.test_qbe_checkpoints:SCRIPTED_INFO", profile="local",
                                 metric="val/scripted", mode="max", data={}, manifests={}, storage_path="")
    return train_mod.evaluate_on_test(ctx.workload, cfg, ctx, ray.train.Checkpoint.from_directory(str(ckpt_dir)))


def test_best_and_last_epoch_are_both_tested(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reports, cfg = _train(monkeypatch, tmp_path, [0.9, 0.5, 0.4], epochs=3)
    # every round checkpoints (what a retry resumes from); each holds the best weights so far
    assert all(r[1] is not None for r in reports)
    assert [torch.load(r[1] / train_mod.MODEL_FILE, weights_only=True)["epoch"] for r in reports] == [0, 0, 0]
    assert [(r[1] / train_mod.RESUME_FILE).exists() for r in reports] == [True, True, False]
    final = reports[-1][1]
    best = torch.load(final / train_mod.MODEL_FILE, weights_only=True)
    last = torch.load(final / train_mod.LAST_FILE, weights_only=True)
    assert (best["epoch"], best["val/scripted"], last["epoch"]) == (0, 0.9, 2)
    assert any(not torch.equal(best["model"][k], last["model"][k]) for k in best["model"])
    ev = _evaluate(monkeypatch, final, cfg)
    assert (ev.best_epoch, ev.best_value, ev.metrics["test_last/epoch"]) == (0, 0.9, 2)
    for key in ("transformed/map", "transformed/map20", "original/map"):
        assert f"test/{key}" in ev.metrics and f"test_last/{key}" in ev.metrics
    assert ev.metrics["test_last/original/map"] == ev.metrics["test/original/map"]  # same inputs
    assert ev.metrics["test_last/transformed/map"] != ev.metrics["test/transformed/map"]  # other weights
    assert "qbe_retrieval" in ev.tables  # tables and figures are the best checkpoint's


def test_last_epoch_best_is_tested_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reports, cfg = _train(monkeypatch, tmp_path, [0.1, 0.5, 0.7], epochs=3)
    assert all(r[1] is not None for r in reports)
    final = reports[-1][1]
    assert not (final / train_mod.LAST_FILE).exists()  # the last epoch is the best: one file
    ev = _evaluate(monkeypatch, final, cfg)
    assert ev.best_epoch == 2 and ev.metrics["test_last/epoch"] == 2
    assert ev.metrics["test_last/transformed/map"] == ev.metrics["test/transformed/map"]
    # the per-epoch triplet mix reached every report
    assert all("train/semi_hard_fallback_share" in m for m, _ in reports)


def test_early_stopping_ends_training_and_tests_the_best(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Patience 2: epochs 2 and 3 do not beat epoch 1, so training ends after epoch 3 of 8; the
    final checkpoint holds epoch 1 (best) and epoch 3 (last); values 4.. are never asked for."""
    monkeypatch.setattr(sys.modules[__name__], "PATIENCE", [2])
    reports, cfg = _train(monkeypatch, tmp_path, [0.5, 0.7, 0.6, 0.7, 0.9, 0.9, 0.9, 0.9], epochs=8)
    assert [m["epoch"] for m, _ in reports] == [0, 1, 2, 3]
    assert all(r[1] is not None for r in reports)
    assert [torch.load(r[1] / train_mod.MODEL_FILE, weights_only=True)["epoch"] for r in reports] == [0, 1, 1, 1]
    assert reports[-1][0]["early_stopped_epoch"] == 3
    assert all("early_stopped_epoch" not in m for m, _ in reports[:-1])
    best = torch.load(reports[-1][1] / train_mod.MODEL_FILE, weights_only=True)
    last = torch.load(reports[-1][1] / train_mod.LAST_FILE, weights_only=True)
    assert (best["epoch"], best["val/scripted"], last["epoch"]) == (1, 0.7, 3)
    assert SCRIPT == [0.9] * 4


def test_patience_is_not_reached_when_validation_keeps_improving(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    """A bump shorter than the patience does not stop training (the count restarts on a new best)."""
    monkeypatch.setattr(sys.modules[__name__], "PATIENCE", [2])
    reports, _ = _train(monkeypatch, tmp_path, [0.5, 0.4, 0.6, 0.5, 0.7], epochs=5)
    assert [m["epoch"] for m, _ in reports] == [0, 1, 2, 3, 4]
    assert all("early_stopped_epoch" not in m for m, _ in reports)


def test_a_stopped_trial_is_tested_from_the_newest_checkpoint_train_kept(tmp_path: Path) -> None:
    """Tune stopped a trial on the epoch-4 report, but Train had registered the epoch-9 checkpoint
    and deleted the epoch-4 one (num_to_keep=1): the test pass reads the newest one left."""
    from ray import tune

    run = tmp_path / "train" / "train-90c86_00001"
    seen, newer = run / "checkpoint_2026-12-04_19-27-19.467992", run / "checkpoint_2026-12-04_19-27-19.530077"
    for d, epoch in ((seen, 4), (newer, 9)):
        d.mkdir(parents=True)
        torch.save({"epoch": epoch}, d / train_mod.MODEL_FILE)
    (run / "checkpoint_manager_snapshot.json").write_text("{}")
    assert Path(train_mod.kept_checkpoint(tune.Checkpoint(str(seen))).path) == seen  # still there: itself
    shutil.rmtree(seen)
    (run / "checkpoint_2026-12-04_19-27-20.000000").mkdir()  # a newer one being written: no model yet
    kept = train_mod.kept_checkpoint(tune.Checkpoint(str(seen)))
    assert Path(kept.path) == newer
    with kept.as_directory() as d:
        assert torch.load(Path(d) / train_mod.MODEL_FILE, weights_only=True)["epoch"] == 9
    shutil.rmtree(newer)
    with pytest.raises(FileNotFoundError, match="no checkpoint with model.pt left in"):
        train_mod.kept_checkpoint(tune.Checkpoint(str(seen)))
