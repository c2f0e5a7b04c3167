"""ATST-Frame: official checkpoint layout -> module, 10 s segmenting, frame masks, the log-mel
front end and the registered ``atst_frame`` AudioEncoder, on a tiny random model."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from orchestrator.encoders import atst as atst_mod  # registers "atst_frame"
from orchestrator.encoders.atst import ATSTConfig, ATSTFrame, ATSTLogMel, load_atst_checkpoint
from orchestrator.encoders.base import EncoderUnavailableError, build_encoder

TINY = ATSTConfig(embed_dim=32, depth=2, num_heads=2, mlp_hidden=64)


def _tiny(seed: int = 0) -> ATSTFrame:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return ATSTFrame(TINY).eval()


def _official_ckpt(model: ATSTFrame) -> dict:
    """A dict shaped like the released Lightning ``atstframe_*.ckpt``: teacher and student encoders
    (``FrameATST.teacher/student = MultiCropWrapper(encoder, projector, predictor)``) plus
    training bookkeeping; only plain tensors and Python scalars."""
    g = torch.Generator().manual_seed(5)
    sd = {}
    for k, v in model.state_dict().items():
        sd[f"model.teacher.encoder.{k}"] = v.clone()
        sd[f"model.student.encoder.{k}"] = v + torch.randn(v.shape, generator=g)  # EMA teacher != student
    sd["model.teacher.projector.0.weight"] = torch.randn(64, 32, generator=g)
    sd["model.student.projector.0.weight"] = torch.randn(64, 32, generator=g)
    sd["model.student.predictor.0.weight"] = torch.randn(64, 64, generator=g)
    return {
        "epoch": 3,
        "global_step": 1200,
        "pytorch-lightning_version": "1.9.5",
        "state_dict": sd,
        "hyper_parameters": {"arch": "small", "learning_rate": 5e-4, "ema": 0.997, "symmetric": True},
        "optimizer_states": [],
        "lr_schedulers": [],
    }


@pytest.fixture
def ckpt(tmp_path):
    model = _tiny()
    path = tmp_path / "atstframe_tiny.ckpt"
    torch.save(_official_ckpt(model), path)
    return model, path


def _mel(frames: int, batch: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 64, frames, generator=torch.Generator().manual_seed(seed))


def test_load_official_layout(ckpt):
    model, path = ckpt
    loaded = load_atst_checkpoint(path, num_heads=2)
    assert loaded.config == TINY  # every size but the head count is read from the tensor shapes
    assert not loaded.training
    ref = model.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(ref)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0, msg=k)  # the teacher, not the student
    mel, lengths = _mel(1300, 2), torch.tensor([1300, 800])
    with torch.no_grad():
        a, ma = loaded(mel, lengths)
        b, mb = loaded(mel, lengths)
        c, _ = model(mel, lengths)
    assert torch.equal(a, b) and torch.equal(ma, mb)  # deterministic in eval mode
    torch.testing.assert_close(a, c, rtol=0, atol=0)


def test_load_finetuned_prefix_and_old_norm_name(tmp_path):
    model = _tiny(3)
    sd = {}
    for k, v in model.state_dict().items():
        k = k.replace("norm_frame.", "norm.")  # older checkpoints call the final LayerNorm "norm"
        sd[f"encoder.encoder.{k}"] = v
    sd["head.weight"] = torch.zeros(3, 32)  # a downstream classifier, ignored
    path = tmp_path / "finetuned.ckpt"
    torch.save({"state_dict": sd}, path)
    loaded = load_atst_checkpoint(path, num_heads=2)
    torch.testing.assert_close(loaded.norm_frame.weight, model.norm_frame.weight)


def test_missing_file_error_is_one_line(tmp_path):
    path = tmp_path / "nowhere" / "atstframe_base.ckpt"
    with pytest.raises(EncoderUnavailableError) as err:
        load_atst_checkpoint(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    with pytest.raises(EncoderUnavailableError):
        build_encoder("atst_frame", checkpoint=str(path))


def test_pickled_objects_are_refused_in_one_line(ckpt, tmp_path):
    model, _ = ckpt
    raw = _official_ckpt(model)
    raw["hyper_parameters"] = argparse.Namespace(arch="small")  # needs full unpickling
    path = tmp_path / "pickled.ckpt"
    torch.save(raw, path)
    with pytest.raises(EncoderUnavailableError, match="weights_only=True") as err:
        load_atst_checkpoint(path, num_heads=2)
    assert "\n" not in str(err.value)


def test_wrong_layout_is_reported(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.teacher.encoder.pos_embed": torch.zeros(1, 251, 32)}}, path)
    with pytest.raises(EncoderUnavailableError, match="ATST-Frame"):
        load_atst_checkpoint(path, num_heads=2)


def test_25_s_equals_three_separate_segments():
    """25 s = 2501 mel frames -> segments of 1001, 1001 and 499 frames -> 250 + 250 + 124 frames."""
    model = _tiny()
    mel = _mel(2501)
    with torch.no_grad():
        frames, mask = model(mel, torch.tensor([2501]))
        parts = [model(mel[:, :, a:b], torch.tensor([b - a]))[0] for a, b in [(0, 1001), (1001, 2002), (2002, 2501)]]
    assert frames.shape == (1, 624, 32) and bool(mask.all())
    assert [p.shape[1] for p in parts] == [250, 250, 124]
    torch.testing.assert_close(frames, torch.cat(parts, dim=1), atol=1e-5, rtol=1e-5)
    # the clip embedding is the mean of the three segment means (not of the 624 frames)
    expected = torch.stack([p[0].mean(0) for p in parts]).mean(0)
    torch.testing.assert_close(model.segment_mean(frames, mask)[0], expected, atol=1e-5, rtol=1e-5)


def test_frame_mask_and_batch_independence():
    model = _tiny()
    lengths = torch.tensor([2501, 1500, 1005, 1001, 7])
    mel = _mel(2501, batch=5)
    for i, n in enumerate(lengths.tolist()):
        mel[i, :, n:] = 0.0  # zero padding, as a collate would
    with torch.no_grad():
        frames, mask = model(mel, lengths)
    # real frames: whole segments give 250, the rest (len - 1001 s) // 4
    assert mask.sum(1).tolist() == [624, 250 + 499 // 4, 251, 250, 1]
    assert all(bool(mask[i, : int(mask[i].sum())].all()) for i in range(5))  # real frames come first
    for i, n in enumerate(lengths.tolist()):
        with torch.no_grad():
            alone, alone_mask = model(mel[i : i + 1, :, :n], torch.tensor([n]))
        k = int(alone_mask.sum())
        torch.testing.assert_close(frames[i, :k], alone[0, :k], atol=1e-5, rtol=1e-5)


def test_invalid_lengths():
    model = _tiny()
    with pytest.raises(ValueError, match="lengths"):
        model(_mel(100), torch.tensor([101]))
    with pytest.raises(ValueError, match="mel"):
        model(torch.zeros(1, 40, 100), torch.tensor([100]))


def test_logmel_front_end():
    lm = ATSTLogMel()
    n = 16000
    tone = torch.sin(2 * math.pi * 1000.0 * torch.arange(n) / 16000)
    mel = lm(tone)
    assert mel.shape == (64, 1 + n // 160)
    # the loudest band is the one centred nearest 1 kHz on the HTK mel scale between 60 and 7800 Hz
    hz_to_mel = lambda f: 2595 * math.log10(1 + f / 700)  # noqa: E731
    centres = np.linspace(hz_to_mel(60), hz_to_mel(7800), 66)[1:-1]
    assert int(mel.mean(1).argmax()) == int(np.argmin(np.abs(centres - hz_to_mel(1000))))
    # top_db = 80 relative to the clip maximum, then min-max scaling (-79.6482, 50.6842) -> [-1, 1]
    span = 80 / (50.6842 + 79.6482) * 2
    assert float(mel.max() - mel.min()) <= span + 1e-5
    silence_with_click = torch.zeros(4000)
    silence_with_click[2000] = 1.0
    assert float(lm(silence_with_click).min()) == pytest.approx(float(lm(silence_with_click).max()) - span, abs=1e-4)
    clamped = ATSTLogMel(db_clamp=(-50, 80))(silence_with_click)
    assert float(clamped.min()) == pytest.approx((-50 + 79.6482) / (50.6842 + 79.6482) * 2 - 1, abs=1e-5)


def test_registered_audio_encoder(ckpt):
    model, path = ckpt
    enc = build_encoder("atst_frame", checkpoint=str(path), num_heads=2, batch_size=2)
    assert isinstance(enc, atst_mod.ATSTFrameEncoder)
    assert enc.dim == 32 and enc.sample_rate == 16000
    assert len(enc.weights_hash()) == 16 and enc.weights_hash() == enc.weights_hash()
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 200000, 8000)]  # 1 s, 12.5 s, 0.5 s
    frames = enc.frames(waves)
    assert [f.shape for f in frames] == [(25, 32), (250 + (1251 - 1001) // 4, 32), (12, 32)]
    assert all(f.dtype == np.float32 for f in frames)
    # frames equal the module's on the same log-mel
    mel = enc.features(waves[1])
    assert mel.shape == (64, 1251)
    with torch.no_grad():
        direct, direct_mask = model(mel[None], torch.tensor([1251]))
    np.testing.assert_allclose(frames[1], direct[0].numpy(), atol=1e-5)
    pooled = enc.embed(waves)
    assert pooled.shape == (3, 32)
    seg_means = [frames[1][:250].mean(0), frames[1][250:].mean(0)]
    np.testing.assert_allclose(pooled[1], np.mean(seg_means, axis=0), atol=1e-5)
    np.testing.assert_allclose(pooled[0], frames[0].mean(0), atol=1e-5)
    with pytest.raises(ValueError, match="40 ms"):
        enc.frames([np.zeros(100, np.float32)])


def test_forward_features_has_gradients(ckpt):
    _, path = ckpt
    enc = build_encoder("atst_frame", checkpoint=str(path), num_heads=2)
    enc.model.train()
    feats = [enc.features(np.full(n, 0.01, np.float32) + np.sin(np.arange(n) / 7).astype(np.float32)) for n in (3200, 4800)]
    out = enc.forward_features(feats)
    assert [o.shape for o in out] == [(5, 32), (7, 32)]
    sum(o.sum() for o in out).backward()
    assert enc.model.patch_embed.patch_embed.weight.grad is not None
    assert enc.model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
