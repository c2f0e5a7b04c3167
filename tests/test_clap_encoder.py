"""CLAP encoders (``clap_audio``, ``clap_text``, ``clap_projections``) on tiny random-weight ClapModels
written by the test with ``save_pretrained`` (no hub: HF_HUB_OFFLINE=1, and the loader never downloads).

The tiny HTSAT keeps CLAP's 64 mel bins at 48 kHz (the extractor's fusion path hard-codes 64) but a
1 s window and a 128-pixel spectrogram image, so a forward pass is milliseconds."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch

from orchestrator.encoders.base import EncoderUnavailableError, build_encoder, hash_files, known_encoders
from orchestrator.encoders.clap import clap_projections
from orchestrator.encoders.text import build_text_encoder, known_text_encoders

SR = 48000
TEXTS = ["a dog barks", "rain on a roof", "a car passes by quickly", "birds"]


def write_tokenizer(path) -> None:
    """A byte-level BPE RoBERTa tokenizer over lowercase letters (CLAP's tokenizer class)."""
    from transformers import RobertaTokenizer

    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for t in letters + ["Ġ"] + ["Ġ" + c for c in letters] + ["<mask>"]:
        vocab[t] = len(vocab)
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"Ġ {c}\n" for c in letters))
    RobertaTokenizer(str(path / "vocab.json"), str(path / "merges.txt")).save_pretrained(path)


def save_tiny_clap(path, fused: bool = False, with_processor: bool = True) -> str:
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    torch.manual_seed(0)
    text = dict(vocab_size=64, hidden_size=24, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
                max_position_embeddings=80, projection_dim=8)
    audio = dict(spec_size=128, num_mel_bins=64, window_size=8, patch_size=4, patch_stride=(4, 4),
                 depths=[1, 1], num_attention_heads=[1, 2], patch_embeds_hidden_size=8, hidden_size=16,
                 num_hidden_layers=2, projection_dim=8, enable_fusion=fused,
                 fusion_type="aff_2d" if fused else None)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=8)).eval()
    with torch.no_grad():  # BatchNorm over dB-scale mels: give it real statistics, not N(0, 1)
        model.audio_model.audio_encoder.batch_norm.running_mean.fill_(-40.0)
        model.audio_model.audio_encoder.batch_norm.running_var.fill_(400.0)
    model.save_pretrained(path)
    if with_processor:
        ClapFeatureExtractor(max_length_s=1, frequency_min=50, frequency_max=14000,
                             truncation="fusion" if fused else "rand_trunc").save_pretrained(path)
        write_tokenizer(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory) -> str:
    return save_tiny_clap(tmp_path_factory.mktemp("clap"))


@pytest.fixture(scope="module")
def reference(tiny_clap):
    from transformers import ClapModel

    return ClapModel.from_pretrained(tiny_clap, local_files_only=True).eval()


def tone(seed: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.sin(2 * np.pi * rng.uniform(200, 4000) * t) + 0.1 * rng.standard_normal(t.size)
    return (0.3 * x).astype(np.float32)


def features_tensor(out) -> torch.Tensor:
    """``get_*_features``: a tensor in transformers 4.x, a model output (``pooler_output``) in 5.x."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def test_registered() -> None:
    assert "clap_audio" in known_encoders() and "clap_text" in known_text_encoders()


def test_audio_projected_is_clap_get_audio_features(tiny_clap, reference) -> None:
    from transformers import ClapFeatureExtractor

    enc = build_encoder("clap_audio", model=tiny_clap)
    assert enc.sample_rate == SR and enc.dim == 8 and enc.encoder_id == f"clap_audio:{tiny_clap}"
    assert enc.params()["truncation"] == "rand_trunc" and enc.params()["padding"] == "repeatpad"
    short = [tone(0, 0.3), tone(1, 0.7), tone(2, 1.0)]
    # short clips: exactly what CLAP's own extractor gives a batch (repeatpad to the window)
    fe = ClapFeatureExtractor.from_pretrained(tiny_clap)(short, sampling_rate=SR, return_tensors="pt")
    x = enc.inputs(short)
    torch.testing.assert_close(x["input_features"], fe["input_features"].float(), atol=1e-5, rtol=0)
    waves = short + [tone(3, 2.5)]  # and one longer than the 1 s window: a random 1 s crop
    z = enc.embed(waves)
    assert z.shape == (4, 8) and z.dtype == np.float32
    x = enc.inputs(waves)
    with torch.inference_mode():
        ref = features_tensor(reference.get_audio_features(**x)).numpy()
        head = reference.audio_projection(reference.audio_model(**x).pooler_output).numpy()
    np.testing.assert_allclose(z, head, atol=1e-5)  # un-normalised joint-space vector
    np.testing.assert_allclose(z / np.linalg.norm(z, axis=1, keepdims=True), ref, atol=1e-5)
    normed = build_encoder("clap_audio", model=tiny_clap, normalize=True)
    np.testing.assert_allclose(normed.embed(waves), ref, atol=1e-5)  # exactly get_audio_features
    # a clip's embedding depends on the clip alone: not on its batch, not on numpy's global state
    np.random.seed(123)
    np.testing.assert_allclose(enc.embed(waves[3:]), z[3:], atol=1e-5)
    np.testing.assert_allclose(np.concatenate([enc.embed([w]) for w in waves]), z, atol=1e-5)
    assert not np.allclose(build_encoder("clap_audio", model=tiny_clap, seed=1).embed(waves[3:]), z[3:])
    assert [f.shape for f in enc.frames(waves[:2])] == [(1, 8), (1, 8)]
    assert enc.weights_hash() == hash_files([f"{tiny_clap}/model.safetensors"])


def test_text_projected_is_clap_get_text_features(tiny_clap, reference) -> None:
    from transformers import AutoTokenizer

    enc = build_text_encoder("clap_text", model=tiny_clap, batch_size=3)  # two batches, different padding
    assert enc.dim == 8 and enc.encoder_id == f"clap_text:{tiny_clap}"
    z = enc.embed_texts(TEXTS)
    assert z.shape == (4, 8) and z.dtype == np.float32
    tok = AutoTokenizer.from_pretrained(tiny_clap)(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        ref = features_tensor(reference.get_text_features(**tok)).numpy()
        head = reference.text_projection(reference.text_model(**tok).pooler_output).numpy()
    np.testing.assert_allclose(z, head, atol=1e-5)
    np.testing.assert_allclose(z / np.linalg.norm(z, axis=1, keepdims=True), ref, atol=1e-5)
    np.testing.assert_allclose(build_text_encoder("clap_text", model=tiny_clap, normalize=True).embed_texts(TEXTS),
                               ref, atol=1e-5)
    assert enc.weights_hash() == hash_files([f"{tiny_clap}/model.safetensors"])
    assert enc.embed_texts([]).shape == (0, 8)


def test_pooled_through_clap_heads_is_projected(tiny_clap, reference) -> None:
    audio_head, text_head, scale = clap_projections(tiny_clap)
    assert scale == pytest.approx(float(reference.logit_scale_a.detach().exp()), rel=1e-6)
    assert all(p.requires_grad for p in [*audio_head.parameters(), *text_head.parameters()])
    waves = [tone(4, 0.5), tone(5, 1.6)]
    pooled_a = build_encoder("clap_audio", model=tiny_clap, output="pooled")
    pooled_t = build_text_encoder("clap_text", model=tiny_clap, output="pooled")
    assert pooled_a.dim == 16 and pooled_t.dim == 24  # audio_config / text_config hidden sizes
    a, t = pooled_a.embed(waves), pooled_t.embed_texts(TEXTS)
    assert a.shape == (2, 16) and t.shape == (4, 24)
    with torch.no_grad():
        a_proj = audio_head(torch.from_numpy(a)).numpy()
        t_proj = text_head(torch.from_numpy(t)).numpy()
    np.testing.assert_allclose(a_proj, build_encoder("clap_audio", model=tiny_clap).embed(waves), atol=1e-5)
    np.testing.assert_allclose(t_proj, build_text_encoder("clap_text", model=tiny_clap).embed_texts(TEXTS), atol=1e-5)
    # everything that changes the output is in the cache key
    projected_a = build_encoder("clap_audio", model=tiny_clap)
    assert pooled_a.params() != projected_a.params()
    assert pooled_a.params() != build_encoder("clap_audio", model=tiny_clap, output="pooled", normalize=True).params()
    assert pooled_t.params() != build_text_encoder("clap_text", model=tiny_clap).params()
    with pytest.raises(ValueError, match="projected"):
        build_encoder("clap_audio", model=tiny_clap, output="last")


def test_fused_model_uses_fusion_on_long_clips_only(tmp_path) -> None:
    from transformers import ClapFeatureExtractor, ClapModel

    path = save_tiny_clap(tmp_path, fused=True)
    enc = build_encoder("clap_audio", model=path)
    assert enc.params()["truncation"] == "fusion"
    waves = [tone(6, 0.4), tone(7, 3.0)]
    x = enc.inputs(waves)
    assert x["input_features"].shape[1] == 4 and x["is_longer"].tolist() == [[False], [True]]
    assert enc.inputs(waves[:1])["is_longer"].tolist() == [[False]]  # not "longer" for being alone
    z = enc.embed(waves)
    ref = ClapModel.from_pretrained(path, local_files_only=True).eval()
    with torch.inference_mode():
        head = ref.audio_projection(ref.audio_model(**x).pooler_output).numpy()
    np.testing.assert_allclose(z, head, atol=1e-5)
    np.testing.assert_allclose(np.concatenate([enc.embed([w]) for w in waves]), z, atol=1e-5)
    # a preprocessor config whose truncation the model cannot take is corrected (fused HTSAT: fusion)
    ClapFeatureExtractor(max_length_s=1, truncation="rand_trunc").save_pretrained(path)
    assert build_encoder("clap_audio", model=path).params()["truncation"] == "fusion"


def test_missing_model_is_one_clear_line(tmp_path) -> None:
    name = "laion/no-such-clap-for-tests"
    for build in (lambda **kw: build_encoder("clap_audio", **kw), lambda **kw: build_text_encoder("clap_text", **kw)):
        with pytest.raises(EncoderUnavailableError) as err:
            build(model=name, cache_dir=str(tmp_path / "hf"))
        msg = str(err.value)
        assert "\n" not in msg and name in msg and str(tmp_path / "hf") in msg and "pass model=" in msg
        assert err.value.__suppress_context__
        with pytest.raises(EncoderUnavailableError, match="does not exist") as err:
            build(model=str(tmp_path / "nowhere"))
        assert "\n" not in str(err.value)
    bare = save_tiny_clap(tmp_path / "bare", with_processor=False)  # weights without extractor/tokenizer
    with pytest.raises(EncoderUnavailableError, match="preprocessor_config.json"):
        build_encoder("clap_audio", model=bare)
    with pytest.raises(EncoderUnavailableError, match="no tokenizer files"):
        build_text_encoder("clap_text", model=bare)
