"""PaSST against outputs of the official code (hear21passt 0.0.26, see
``fixtures/make_passt_reference.py``): the log-mel front end, class/distillation tokens and
frequency-averaged patch tokens of a tiny model in the released layout; plus checkpoint loading,
10 s segmenting and the registered ``passt`` encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrator.encoders.base import EncoderUnavailableError, build_encoder
from orchestrator.encoders.passt import (
    PaSST,
    PaSSTConfig,
    PaSSTLogMel,
    kaldi_mel_banks,
    load_passt_checkpoint,
)

REF = torch.load(Path(__file__).parent / "fixtures" / "passt_reference.pt", weights_only=True)
TINY = dict(embed_dim=32, depth=2, num_heads=2, mlp_hidden=128)


@pytest.fixture
def released(tmp_path) -> Path:
    """The reference model's state dict as a released file: heads included, nothing wrapped."""
    path = tmp_path / "passt-tiny.pt"
    torch.save(REF["tiny_state_dict"], path)
    return path


def test_kaldi_mel_banks_by_hand():
    banks = kaldi_mel_banks(n_mels=4, n_fft=16, sample_rate=16000, f_min=0.0, f_max=8000.0)
    assert banks.shape == (4, 9) and np.all(banks[:, -1] == 0)  # Nyquist column padded with zeros
    # bin k (k * 1000 Hz) of filter 0: mel(1000) = 1127 ln(1 + 1000/700) = 999.99; the filters'
    # edges are multiples of mel(8000) / 5 = 2840.02 / 5 = 568.00, so bin 1 sits on filter 0's
    # falling edge: (1136.01 - 999.99) / 568.00 = 0.2395
    mel = lambda f: 1127.0 * np.log1p(f / 700.0)
    step = mel(8000.0) / 5
    assert banks[0, 1] == pytest.approx((2 * step - mel(1000.0)) / step, rel=1e-5)
    assert banks[0, 1] == pytest.approx(0.2395, abs=1e-4)
    assert banks[0, 0] == 0.0  # 0 Hz is filter 0's left edge
    assert np.all(banks >= 0) and np.all(banks <= 1)


def log_mel_excess(logmel: PaSSTLogMel) -> float:
    """Worst difference from hear21passt's stored log-mel, in units of the bound: ``(log(P + 1e-5)
    + 4.5) / 5`` is off by ``dP / (5 (P + 1e-5))``, and the offset keeps quiet bands from growing
    it, so 2e-4 absolute is a 1e-3 relative power error (float32 on any kernel path: ~7e-6)."""
    mel = logmel(REF["wave"])
    if mel.shape != REF["mel"].shape:
        return float("inf")
    return float(((mel - REF["mel"]).abs() / (2e-4 + 1e-4 * REF["mel"].abs())).max())


def tiny_reference_model() -> PaSST:
    model = PaSST(PaSSTConfig(**TINY))
    model.load_state_dict({k: v for k, v in REF["tiny_state_dict"].items() if not k.startswith("head")})
    return model.eval()


def tokens_excess(model: PaSST) -> float:
    """Worst difference from the stored class/distillation and frequency-averaged patch tokens, in
    units of the bound: 1e-5 + 1e-4 |ref| on tokens of scale ~1 after the final LayerNorm (float32
    through two blocks on any kernel path: ~4e-7)."""
    worst = 0.0
    for x, cls_dist, tokens in zip(REF["inputs"], REF["cls_dist"], REF["tokens"]):
        with torch.no_grad():
            out = model.tokens(x.float())
        frames = out[:, 2:].reshape(x.shape[0], 12, -1, 32).mean(1)
        for ours, ref in ((out[:, :2], cls_dist), (frames, tokens)):
            worst = max(worst, float(((ours - ref).abs() / (1e-5 + 1e-4 * ref.abs())).max()))
    return worst


@pytest.mark.reference
def test_log_mel_matches_hear21passt():
    logmel = PaSSTLogMel()
    n = REF["wave"].shape[0]
    assert logmel(REF["wave"]).shape == REF["mel"].shape == (128, 1 + (n - 1) // 320)
    assert log_mel_excess(logmel) <= 1.0


@pytest.mark.reference
def test_tokens_match_hear21passt():
    assert tokens_excess(tiny_reference_model()) <= 1.0


@pytest.mark.reference
def test_reference_comparisons_fail_on_implementation_errors():
    """Each real error exceeds the bounds above at least 5 times."""
    logmel = PaSSTLogMel()
    logmel.preemphasis = 0.0
    assert log_mel_excess(logmel) > 5.0
    logmel = PaSSTLogMel()
    logmel.mel_basis[40] = torch.roll(logmel.mel_basis[40], 1)  # one filter one FFT bin higher
    assert log_mel_excess(logmel) > 5.0
    model = tiny_reference_model()
    with torch.no_grad():  # one attention output projection's layout transposed
        model.blocks[1].attn.proj.weight.copy_(model.blocks[1].attn.proj.weight.T.clone())
    assert tokens_excess(model) > 5.0


@pytest.mark.reference
def test_released_layout_matches_passt_s():
    """Every encoder tensor of hear21passt's passt_s_kd_p16_128_ap486 has the same name and shape here."""
    ours = {k: list(v.shape) for k, v in PaSST(PaSSTConfig()).state_dict().items()}
    official = {k: s for k, s in REF["passt_s_kd_p16_128_ap486_shapes"].items() if not k.startswith("head")}
    assert ours == official


@pytest.mark.reference
def test_load_checkpoint_infers_sizes_and_drops_heads(released):
    model = load_passt_checkpoint(released, num_heads=2)
    cfg = model.config
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_hidden, cfg.distilled) == (32, 2, 2, 128, True)
    assert (cfg.freq_patches, cfg.time_positions) == (12, 99)
    assert not any(k.startswith("head") for k in model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.tokens(REF["inputs"][1].float())[:, :2], REF["cls_dist"][1],
                                   atol=1e-5, rtol=1e-4)


def test_load_lightning_checkpoint(tmp_path):
    sd = {f"net.{k}": v for k, v in REF["tiny_state_dict"].items()}
    path = tmp_path / "passt.ckpt"
    torch.save({"state_dict": sd, "epoch": 3, "hyper_parameters": {"lr": 1e-4}}, path)
    assert load_passt_checkpoint(path).config.embed_dim == 32


def test_bad_checkpoints_give_one_line_errors(tmp_path):
    with pytest.raises(EncoderUnavailableError, match="not found"):
        load_passt_checkpoint(tmp_path / "missing.pt")
    path = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(EncoderUnavailableError, match="not a PaSST checkpoint"):
        load_passt_checkpoint(path)
    sd = dict(REF["tiny_state_dict"])
    sd.pop("blocks.1.norm2.weight")
    torch.save(sd, path)
    with pytest.raises(EncoderUnavailableError, match="missing") as e:
        load_passt_checkpoint(path)
    assert "\n" not in str(e.value)
    with pytest.raises(EncoderUnavailableError, match="frequency positions"):
        load_passt_checkpoint(path, fstride=16)
    with pytest.raises(EncoderUnavailableError, match="needs a checkpoint file"):
        build_encoder("passt")


def test_segments_are_encoded_alone(released):
    """A 25 s clip = two full 10 s segments + one 5 s segment, each encoded on its own; batching
    it with other clips changes nothing; a tail shorter than one patch is dropped."""
    model = load_passt_checkpoint(released, output="time_frames", num_heads=2)
    g = torch.Generator().manual_seed(0)
    long, short = torch.randn(128, 2500, generator=g), torch.randn(128, 700, generator=g)
    with torch.no_grad():
        alone = model([long])[0]
        batched = model([short, long, short[:, :300]], max_batch=2)
        parts = [model.encode_segments(long[None, :, s : s + 1000])[0] for s in (0, 1000, 2000)]
        tail = model([torch.cat([short, torch.randn(128, 1010, generator=g)], dim=1)])[0]
    per_segment = [99, 99, 49]  # (W - 16) // 10 + 1
    assert alone.shape == (sum(per_segment), 32)
    torch.testing.assert_close(alone, torch.cat(parts), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[1], alone, atol=1e-5, rtol=1e-5)
    assert batched[0].shape == (69, 32) and batched[2].shape == (29, 32)
    assert tail.shape == (99 + 70, 32)  # 1710 frames: a 1000- and a 710-frame segment

    clip = load_passt_checkpoint(released, num_heads=2)  # clip tokens: one vector per segment
    with torch.no_grad():
        outs = clip([long, short, long[:, :1010]])
    assert [o.shape[0] for o in outs] == [3, 1, 1]  # the 10-frame tail of the last one is dropped
    with pytest.raises(ValueError, match="shorter than one PaSST patch"):
        clip([short[:, :15]])


def test_registered_encoder_frames_and_finetune(released):
    enc = build_encoder("passt", checkpoint=str(released), output="time_frames", batch_size=2,
                        num_heads=2)
    assert enc.sample_rate == 32000 and enc.dim == 32
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (32000, 48000, 16000)]
    frames = enc.frames(waves)
    # frames: 1 + (n - 1) // 320 mel frames -> (frames - 16) // 10 + 1 time patches
    assert [f.shape for f in frames] == [(9, 32), (14, 32), (4, 32)]
    np.testing.assert_allclose(enc.embed(waves[:1])[0], frames[0].mean(0), rtol=1e-5, atol=1e-6)
    feats = [enc.features(w) for w in waves]
    assert feats[0].shape == (128, 100)
    enc.model.train()
    out = enc.forward_features(feats)
    out[0].sum().backward()
    assert enc.model.patch_embed.proj.weight.grad is not None
    assert enc.weights_hash() == build_encoder("passt", checkpoint=str(released)).weights_hash()
    with pytest.raises(ValueError, match="shorter than one PaSST patch"):
        enc.features(np.zeros(3000, np.float32))
