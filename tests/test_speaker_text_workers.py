"""Speaker-text with 2 Train workers gives what 1 gives: each worker takes its share of the global
batch, the loss gathers every share (2 gloo processes + DDP against one process on the whole
batch: the same loss and parameter gradients for L_CTS, +AAM on both branches, and SupCon), and
B00's LDA is fitted on all training speakers, not on rank 0's half (the real train loop)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
import torch.multiprocessing as mp

from tests.test_qbe_checkpoints import _Shard  # a Ray Data shard stand-in: one table
from workloads.speaker_text import data as D
from workloads.speaker_text.config import SpeakerTextConfig
from workloads.speaker_text.workload import SpeakerTextWorkload

WORLD = 2
SYSTEMS = {"B03": {}, "C01": {"aam_inputs": "both"}, "C02": {}}


def _toy(n_spk: int = 8, per: int = 4, n_txt: int = 3, seed: int = 0) -> D.SpeakerTextData:
    rng = np.random.default_rng(seed)
    labels, text_labels = np.repeat(np.arange(n_spk), per), np.repeat(np.arange(n_spk), n_txt)
    return D.SpeakerTextData(ids=[f"u{i}" for i in range(len(labels))], speakers=[f"s{i}" for i in range(n_spk)],
                             labels=labels, speaker_x=rng.standard_normal((len(labels), 6)).astype(np.float32),
                             texts=[f"t{i}" for i in range(len(text_labels))], text_labels=text_labels,
                             text_x=rng.standard_normal((len(text_labels), 5)).astype(np.float32))


def _global_batch() -> dict[str, torch.Tensor]:
    """12 pairs of 6 speakers, 2 each (SupCon has positives); rows 0-5 go to rank 0, 6-11 to rank 1."""
    g = torch.Generator().manual_seed(1)
    return {"speaker": torch.randn(12, 6, generator=g), "text": torch.randn(12, 5, generator=g),
            "labels": torch.tensor([0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5])}


def _model(system: str) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = SpeakerTextConfig(system=system, proj_dim=8, **SYSTEMS[system])
    return SpeakerTextWorkload().build_model(cfg, {"speaker": 6, "text": 5, "n_speakers": 8}), cfg


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        batch = {k: v[6 * rank:6 * rank + 6] for k, v in _global_batch().items()}
        results = {}
        for system in SYSTEMS:
            net, cfg = _model(system)
            model = DDP(net)
            loss = SpeakerTextWorkload().loss(model(batch), batch, cfg, 0)
            loss.backward()
            results[system] = {"loss": loss.detach(), "grads": {n: p.grad.clone() for n, p in net.named_parameters()}}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_workers_give_the_loss_and_gradients_of_one(tmp_path: Path) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    batch = _global_batch()
    for system in SYSTEMS:
        net, cfg = _model(system)
        loss = SpeakerTextWorkload().loss(net(batch), batch, cfg, 0)  # no process group: no gathering
        loss.backward()
        for r in range(WORLD):
            assert ranks[r][system]["loss"].item() == pytest.approx(loss.item(), abs=1e-6), system
            for name, p in net.named_parameters():
                torch.testing.assert_close(ranks[r][system]["grads"][name], p.grad, atol=1e-6, rtol=1e-5,
                                           msg=f"{system} {name}")
    # without the gather a worker's loss is that of its own 6 pairs: not the global one
    half = {k: v[:6] for k, v in batch.items()}
    net, cfg = _model("B03")
    assert SpeakerTextWorkload().loss(net(half), half, cfg, 0).item() != pytest.approx(
        ranks[0]["B03"]["loss"].item(), abs=1e-3)


def test_each_worker_takes_its_share_of_every_global_batch() -> None:
    wl, d = SpeakerTextWorkload(), _toy()
    rng = np.random.default_rng(0)
    alone = list(wl.train_batches(d, SpeakerTextConfig(batch_size=8), 0, rng))
    shards = [D.shard(d, r, WORLD) for r in range(WORLD)]
    for cfg, size in ((SpeakerTextConfig(batch_size=8), 4), (SpeakerTextConfig(system="C02", pk_speakers=4,
                                                                                pk_utterances=2), 4)):
        per_worker = [list(wl.train_batches(s, cfg, 0, rng)) for s in shards]
        assert [len(b) for b in per_worker] == [len(alone)] * WORLD == [4] * WORLD  # 32 utterances / 8
        assert all(len(b["labels"]) == size for batches in per_worker for b in batches)
    with pytest.raises(ValueError, match="batch_size 7 .global. must be divisible by the 2 Train workers"):
        list(wl.train_batches(shards[0], SpeakerTextConfig(batch_size=7), 0, rng))


# ------------------------------------------------------------------------------------------------
# B00's LDA through the real train loop (Ray Train's calls replaced in-process)


def _table(d: D.SpeakerTextData) -> pa.Table:
    """``d`` as the joined views table the loop reads (one row per utterance, its speaker's texts)."""
    texts = [[i for i in range(len(d.texts)) if d.text_labels[i] == s] for s in range(len(d.speakers))]
    return pa.table({
        "id": d.ids, "label": [d.speakers[s] for s in d.labels],
        "audio": pa.array(d.speaker_x.tolist(), pa.list_(pa.float32(), d.speaker_x.shape[1])),
        "text": pa.array([[d.text_x[i].tolist() for i in texts[s]] for s in d.labels],
                         pa.list_(pa.list_(pa.float32(), d.text_x.shape[1]))),
        "text.text": [[d.texts[i] for i in texts[s]] for s in d.labels],
    })


def _lda_fit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, world: int) -> dict[str, torch.Tensor]:
    """Rank 0 of ``world`` runs B00 (fit, validate once, checkpoint): its LDA buffers."""
    import ray.train
    import ray.train.torch

    from orchestrator import train as train_mod

    class Context:
        def get_world_rank(self) -> int:
            return 0

        def get_world_size(self) -> int:
            return world

    shards = {"train": _Shard(_table(_toy(8, 4, 3, 0))), "val": _Shard(_table(_toy(4, 3, 2, 1)))}
    saved: list[dict[str, Any]] = []

    def report(metrics: dict[str, Any], checkpoint: Any = None) -> None:
        if checkpoint is not None:
            saved.append(torch.load(Path(checkpoint.path) / train_mod.MODEL_FILE, weights_only=True))

    monkeypatch.setattr(ray.train, "get_context", lambda: Context())
    monkeypatch.setattr(ray.train, "get_dataset_shard", lambda name: shards[name])
    monkeypatch.setattr(ray.train, "report", report)
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: None)  # a first attempt, never a retry
    monkeypatch.setattr(ray.train.torch, "get_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(ray.train.torch, "prepare_model", lambda m: m)
    train_mod.train_loop_per_worker({"workload": "speaker_text", "metric": "val/map10", "mode": "max",
                                     "max_epochs": None, "cfg": {"system": "B00", "tsne_speakers": 0}})
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert len(saved) == 1
    return {k: v for k, v in saved[0]["model"].items()}


def test_lda_is_fitted_on_all_training_speakers_whatever_the_worker_count(monkeypatch, tmp_path) -> None:
    one, two = _lda_fit(monkeypatch, tmp_path / "one", 1), _lda_fit(monkeypatch, tmp_path / "two", WORLD)
    assert set(one) == set(two)
    for k in one:
        torch.testing.assert_close(two[k], one[k], msg=k)
