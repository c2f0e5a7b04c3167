"""TAR workload: schedule, parameter groups, the dual encoder's forward/loss, audio->text ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workloads.tar.workload import TarConfig, TarData, TarWorkload, warmup_cosine

LOCAL = {"audio_encoder": "whisper_tiny_en", "text_encoder": "minilm", "text_pooling": "mean", "d": 32,
         "tap_dim": 64}


def test_warmup_cosine_schedule() -> None:
    # 10 warm-up steps: factor (s+1)/10; then cosine from 1 to floor 0.005 over 90 steps
    assert warmup_cosine(0, 10, 100, 0.005) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100, 0.005) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 100, 0.005) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100, 0.005) == pytest.approx(0.005 + 0.995 * 0.5)  # half-way: cos(pi/2)=0
    assert warmup_cosine(100, 10, 100, 0.005) == pytest.approx(0.005)


def tiny_data(n: int = 4, seed: int = 0) -> TarData:
    rng = np.random.default_rng(seed)
    feats = [rng.standard_normal((80, 100 + 20 * i)).astype(np.float32) * 0.1 for i in range(n)]
    texts = [[f"sound number {i} variant {c}" for c in range(5)] for i in range(n)]
    return TarData(ids=[f"c{i}" for i in range(n)], feats=feats, texts=texts)


@pytest.mark.parametrize("pooling,loss", [("mean", "ntxent"), ("tap", "sigmoid")])
def test_forward_loss_and_param_groups(pooling: str, loss: str) -> None:
    wl = TarWorkload()
    cfg = TarConfig(**LOCAL, pooling=pooling, loss=loss, lr=1e-3, lr_audio=4e-6, lr_text=2e-5, epochs=2,
                    batch_size=4, captions_per_clip=2)
    data = tiny_data()
    model = wl.build_model(cfg, wl.input_dim(data))
    opt, sched = wl.configure_optimizer(model, cfg, data)
    lrs = {g["name"]: g["initial_lr"] for g in opt.param_groups}
    assert lrs["audio_encoder"] == 4e-6 and lrs["text_encoder"] == 2e-5 and lrs["audio_projection"] == 1e-3
    assert ("tap" in lrs) == (pooling == "tap") and (lrs.get("loss") == 0.1) == (loss == "sigmoid")
    assert opt.defaults["betas"] == (0.9, 0.99)
    batches = list(wl.train_batches(data, cfg, 0, np.random.default_rng(0)))
    assert sum(len(b["texts"]) for b in batches) == 8  # 4 clips x 2 captions, batches of 4 pairs
    out = model(batches[0])
    value = wl.loss(out, batches[0], cfg, 0)
    assert torch.isfinite(value) and value.requires_grad
    value.backward()
    assert next(model.audio_net.parameters()).grad is not None  # the audio encoder trains
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(4e-6 * warmup_cosine(1, 2, 4, 1e-7 / 1e-3))


def test_retrieval_metrics_ranks_and_zero_shot_table() -> None:
    wl = TarWorkload()
    cfg = TarConfig(**LOCAL)
    data = tiny_data(3)
    model = wl.build_model(cfg, 80)
    scores, clip_of = wl.score_split(model, data)
    assert scores.shape == (15, 3) and clip_of.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    m = wl.retrieval_metrics(model, data)
    assert 0 <= m["t2a/map10"] <= 1 and m["a2t/r10"] == 1.0  # 3 clips: every rank is <= 10
    metrics, tables, _ = wl.evaluate(model, data, cfg)
    assert list(tables["tar_results"]["Metric"]) == ["R@1", "R@5", "R@10", "mAP@10"]
    # the untrained model of the same seed is the model evaluated here: identical numbers
    assert metrics["test/t2a/map10"] == pytest.approx(metrics["test/zeroshot/t2a/map10"])


def test_audio_to_text_uses_best_ranked_caption() -> None:
    wl = TarWorkload()
    scores = np.array([[0.9, 0.95],   # caption0 (clip0): clip1 scores higher -> t2a rank 2
                       [0.8, 0.7],    # caption1 (clip0): rank 1
                       [0.2, 0.6],    # caption2 (clip1): rank 1
                       [0.1, 0.05]])  # caption3 (clip1): rank 2
    clip_of = np.array([0, 0, 1, 1])
    wl.score_split = lambda model, data: (scores, clip_of)  # type: ignore[method-assign]
    m = wl.retrieval_metrics(None, None)  # type: ignore[arg-type]
    assert m["t2a/r1"] == 0.5 and m["t2a/mrr"] == pytest.approx((0.5 + 1 + 1 + 0.5) / 4)
    # a2t: clip0's column [0.9, 0.8, 0.2, 0.1] ranks its captions 1 and 2 -> best rank 1;
    # clip1's column [0.95, 0.7, 0.6, 0.05] ranks its captions (2, 3) at 3 and 4 -> best rank 3
    assert m["a2t/r1"] == 0.5 and m["a2t/r5"] == 1.0
    assert m["a2t/mrr"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["a2t/map10"] == pytest.approx((1 + 1 / 3) / 2)
