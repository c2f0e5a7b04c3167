"""Speaker–text retrieval encoders against the original code:

* ``ge2e``: the real resemblyzer 0.1.4 weights; compared with resemblyzer's own
  ``VoiceEncoder.embed_utterance`` (when ``resemblyzer`` + ``webrtcvad-wheels`` are installed), and
  run in a subprocess that never imports resemblyzer, webrtcvad or librosa.
* ``ecapa_tdnn``: a small random-weight model written as SpeechBrain's released files
  (``hyperparams.yaml`` + ``embedding_model.ckpt``); compared with SpeechBrain 1.1.2's own
  ``Fbank``, ``InputNormalization`` and ``ECAPA_TDNN`` (imported with an empty ``torchaudio``).
* ``cnn14``: random weights in the layout of ``Cnn14_mAP=0.431.pth``; compared with
  ``panns_inference.models.Cnn14`` + torchlibrosa (panns_inference's package ``__init__`` downloads
  a label file, so its ``models`` module is imported without it).
* ``wav2vec2``: ``output="extract_features"`` and HuBERT / CTC checkpoints (tiny random models).

Live comparisons with the originals skip when those packages are missing; the same comparisons
also run against ``fixtures/speaker_reference.pt`` (outputs of the original code, written by
``fixtures/make_speaker_reference.py``), so CI checks the numerics without them.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch

from orchestrator.encoders.base import EncoderUnavailableError, build_encoder, hash_files, known_encoders
from tests.reference_tolerance import db_spectrum_excess, scale_excess

SR = 16000
ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
REF = torch.load(FIXTURES / "speaker_reference.pt", weights_only=True)


def fixture_script() -> types.ModuleType:
    """``fixtures/make_speaker_reference.py`` as a module (for its deterministic CNN14 weights)."""
    spec = importlib.util.spec_from_file_location("make_speaker_reference", FIXTURES / "make_speaker_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def voice(seed: int, seconds: float, sr: int = SR, f0: float | None = None) -> np.ndarray:
    """A voiced, syllable-modulated harmonic signal with formant-like peaks: speech-shaped enough
    for speaker encoders to see energy where they expect it."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    knots = np.linspace(0, seconds, int(seconds * 4) + 2)
    pitch = np.interp(t, knots, (f0 or rng.uniform(90, 220)) * rng.uniform(0.85, 1.15, knots.size))
    formants = [np.interp(t, knots, rng.uniform(lo, hi, knots.size)) for lo, hi in ((300, 900), (900, 2400))]
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    x = np.zeros(n)
    for h in range(1, 30):
        fh = h * pitch
        amp = sum(np.exp(-0.5 * ((fh - f) / 120.0) ** 2) for f in formants) + 0.02
        x += amp * np.sin(h * phase) * (fh < sr / 2 - 200)
    x *= 0.15 + np.clip(np.sin(np.pi * (3.5 * t + rng.uniform())), 0, None)
    x += 0.01 * rng.standard_normal(n)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def test_registered() -> None:
    assert {"ge2e", "ecapa_tdnn", "cnn14", "wav2vec2"} <= set(known_encoders())


# =============================================================================================
# GE2E (resemblyzer weights)


def _resemblyzer_installed() -> bool:
    try:
        importlib.metadata.distribution("resemblyzer")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_wheel = pytest.mark.skipif(not _resemblyzer_installed(), reason="resemblyzer wheel (GE2E weights) not installed")


@pytest.fixture(scope="module")
def ge2e():
    if not _resemblyzer_installed():
        pytest.skip("resemblyzer wheel (GE2E weights) not installed")
    return build_encoder("ge2e")


@pytest.fixture(scope="module")
def voice_encoder():
    """resemblyzer's own encoder (its import needs a working webrtcvad: webrtcvad-wheels)."""
    resemblyzer = pytest.importorskip("resemblyzer")
    return resemblyzer.VoiceEncoder("cpu", verbose=False)


GE2E_LENGTHS = (0.4, 1.0, 1.75, 2.0, 3.0, 5.3)  # s: partials 1 (padded), 1, 1 (last dropped), 2, 3, 6


@needs_wheel
def test_ge2e_runs_without_importing_resemblyzer() -> None:
    """The encoder finds and reads pretrained.pt itself: resemblyzer (and its webrtcvad) is never
    imported (a fresh interpreter, so nothing else in the test session can have imported it)."""
    code = textwrap.dedent("""
        import sys, numpy as np
        from orchestrator.encoders.base import build_encoder
        enc = build_encoder("ge2e")
        t = np.arange(48000) / 16000
        wave = (0.1 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
        emb = enc.embed([wave])
        assert emb.shape == (1, 256) and abs(float(np.linalg.norm(emb[0])) - 1) < 1e-5, emb.shape
        assert (emb >= 0).all()  # ReLU before the norms: every coordinate is non-negative
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("resemblyzer", "webrtcvad"))
        assert not bad, bad
        print("ok", enc.weights_hash())
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok ")


@needs_wheel
def test_ge2e_weights_and_contract(ge2e) -> None:
    from orchestrator.encoders.ge2e import resemblyzer_weights_path

    path = resemblyzer_weights_path()
    assert path.name == "pretrained.pt" and path.parent.name == "resemblyzer"
    assert ge2e.weights_hash() == hash_files([path])
    assert (ge2e.encoder_id, ge2e.sample_rate, ge2e.dim) == ("ge2e-resemblyzer", 16000, 256)
    lstm = ge2e.model.lstm
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers) == (40, 256, 3)
    assert sum(p.numel() for p in ge2e.model.parameters()) == 1_423_616
    p = ge2e.params()
    assert p["trim_silence"] is False and p["rate"] == 1.3 and p["partial_frames"] == 160
    try:
        import webrtcvad  # noqa: F401  (webrtcvad-wheels; the old webrtcvad release fails to import)
    except Exception:
        with pytest.raises(EncoderUnavailableError, match="webrtcvad"):
            build_encoder("ge2e", trim_silence=True)
    else:
        assert build_encoder("ge2e", trim_silence=True).params() != p


@needs_wheel
def test_ge2e_partials_batching_and_volume(ge2e) -> None:
    waves = [voice(i, s) for i, s in enumerate(GE2E_LENGTHS)]
    frames = ge2e.frames(waves)
    # partials start every 77 frames while start <= ceil((n + 1) / 160) - 83; the last is kept when
    # it covers >= 75% of real audio. 1.75 s: the second (start 12320, covering 61%) is dropped;
    # 2.0 s: it covers 77% and stays; 5.3 s: starts 0 .. 385 frames, the last covering 91%
    assert [f.shape[0] for f in frames] == [1, 1, 1, 2, 3, 6]
    for f in frames:
        np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    emb = ge2e.embed(waves)
    assert emb.shape == (6, 256) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    for f, e in zip(frames, emb):  # utterance embedding = normalised mean of the partials
        np.testing.assert_allclose(e, f.mean(0) / np.linalg.norm(f.mean(0)), atol=1e-6)
    for w, e in zip(waves, emb):  # a batch changes nothing
        np.testing.assert_allclose(ge2e.embed([w])[0], e, atol=1e-6)
    # quiet input is raised to -30 dBFS, so its level does not matter; loud input is not lowered
    quiet = waves[4] * 0.01
    np.testing.assert_allclose(ge2e.embed([quiet])[0], ge2e.embed([quiet * 0.5])[0], atol=1e-5)
    assert not np.allclose(ge2e.embed([waves[4] * 3])[0], emb[4], atol=1e-4)
    with pytest.raises(ValueError, match="empty"):
        ge2e.embed([np.zeros(0, np.float32)])
    assert np.isfinite(ge2e.embed([np.zeros(8000, np.float32)])).all()  # silence: no NaN


def test_ge2e_errors_are_one_line(tmp_path, monkeypatch) -> None:
    from orchestrator.encoders import ge2e as mod

    def missing(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(mod.importlib.metadata, "distribution", missing)
    with pytest.raises(EncoderUnavailableError) as e:
        build_encoder("ge2e")
    assert "pip install resemblyzer" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(EncoderUnavailableError, match="not found"):
        build_encoder("ge2e", weights=str(tmp_path / "pretrained.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"model_state": {"linear.weight": torch.zeros(256, 256)}}, bad)
    with pytest.raises(EncoderUnavailableError, match="not a resemblyzer GE2E checkpoint"):
        build_encoder("ge2e", weights=str(bad))
    with pytest.raises(ValueError, match="rate"):
        build_encoder("ge2e", weights=str(bad), rate=0.5)


def test_ge2e_runs_on_a_saved_state(tmp_path) -> None:
    """A resemblyzer-style file (``model_state`` + GE2E loss scalars) loads strictly."""
    from orchestrator.encoders.ge2e import GE2E

    torch.manual_seed(0)
    sd = GE2E().state_dict()
    path = tmp_path / "encoder.pt"
    torch.save({"step": 5, "model_state": {**sd, "similarity_weight": torch.tensor([10.0]),
                                           "similarity_bias": torch.tensor([-5.0])}}, path)
    enc = build_encoder("ge2e", weights=str(path))
    assert enc.embed([voice(0, 2.0)]).shape == (1, 256)
    assert enc.weights_hash() == hash_files([path])
    sd.pop("linear.bias")
    torch.save({"model_state": sd}, path)
    with pytest.raises(EncoderUnavailableError, match="missing") as e:
        build_encoder("ge2e", weights=str(path))
    assert "\n" not in str(e.value)


def test_ge2e_partial_slices_match_resemblyzer() -> None:
    resemblyzer = pytest.importorskip("resemblyzer")
    from orchestrator.encoders.ge2e import partial_starts

    for n in [1, 159, 160, 16000, 25600, 25601, 37919, 37920, 48000, 84800, 160000]:
        for rate, cov in ((1.3, 0.75), (0.7, 0.5), (4.0, 1.0)):
            _, mel_slices = resemblyzer.VoiceEncoder.compute_partial_slices(n, rate, cov)
            assert partial_starts(n, rate, cov) == [s.start for s in mel_slices], (n, rate, cov)


def test_ge2e_mel_matches_resemblyzer() -> None:
    audio = pytest.importorskip("resemblyzer.audio")
    from orchestrator.encoders.ge2e import GE2EMel

    for wave in (voice(0, 1.0), voice(1, 0.33)):
        ref = audio.wav_to_mel_spectrogram(wave)
        ours = GE2EMel()(torch.from_numpy(wave)).numpy()
        assert ours.shape == ref.shape == (1 + wave.size // 160, 40)
        # power, float32 here against librosa's float64: relative, plus a floor at the loudest band's scale
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * ref.max())


@needs_wheel
def test_ge2e_matches_resemblyzer_embed_utterance(ge2e, voice_encoder) -> None:
    from resemblyzer.audio import normalize_volume

    waves = [voice(10 + i, s) for i, s in enumerate(GE2E_LENGTHS)]
    ours = ge2e.embed(waves)
    partials = ge2e.frames(waves)
    worst = 0.0
    for w, e, p in zip(waves, ours, partials):
        ref, ref_partials, _ = voice_encoder.embed_utterance(normalize_volume(w, -30, increase_only=True),
                                                             return_partials=True)
        worst = max(worst, float(np.abs(ref - e).max()))
        np.testing.assert_allclose(e, ref, atol=1e-5)
        np.testing.assert_allclose(p, ref_partials, atol=1e-5)
    assert worst < 1e-5


@needs_wheel
@pytest.mark.reference
def test_ge2e_matches_stored_resemblyzer_outputs(ge2e) -> None:
    """resemblyzer's embed_utterance outputs (fixture) for the wheel's weights; no resemblyzer here."""
    ref = REF["ge2e"]
    waves = [w.float().numpy() for w in ref["waves"]]
    # unit-norm outputs: 1e-5 absolute is 1e-5 of their scale (float32 on any kernel path: ~4e-7)
    for e, r in zip(ge2e.embed(waves), ref["embeddings"]):
        np.testing.assert_allclose(e, r.numpy(), atol=1e-5)
    for p, r in zip(ge2e.frames(waves), ref["partials"]):
        np.testing.assert_allclose(p, r.numpy(), atol=1e-5)


@needs_wheel
def test_ge2e_trim_silence_matches_preprocess_wav(voice_encoder) -> None:
    from resemblyzer import preprocess_wav

    enc = build_encoder("ge2e", trim_silence=True)
    assert enc.params()["trim_silence"] is True
    for seed in (0, 1):
        a, b = voice(20 + seed, 1.5), voice(30 + seed, 1.2)
        wave = np.concatenate([np.zeros(4000, np.float32), a, np.zeros(2 * SR, np.float32), b])
        ref_wave = preprocess_wav(wave)
        ours_wave = enc.preprocess(wave)
        assert ours_wave.size == ref_wave.size < wave.size  # the 2 s pause was shortened
        np.testing.assert_allclose(ours_wave, ref_wave, atol=1e-6)
        np.testing.assert_allclose(enc.embed([wave])[0], voice_encoder.embed_utterance(ref_wave), atol=1e-5)


# =============================================================================================
# ECAPA-TDNN (SpeechBrain layout)

TINY_ECAPA = dict(channels=[32, 32, 32, 32, 96], kernel_sizes=[5, 3, 3, 3, 1], dilations=[1, 2, 3, 4, 1],
                  attention_channels=16, lin_neurons=24, se_channels=8, res2net_scale=4)


def hyperparams_yaml(n_mels: int = 80, **model: object) -> str:
    """A hyperparams.yaml with the structure of the released spkrec-ecapa-voxceleb one (tags kept
    as HyperPyYAML writes them); the released numbers unless ``model`` overrides them."""
    model = {"channels": [1024, 1024, 1024, 1024, 3072], "kernel_sizes": [5, 3, 3, 3, 1],
             "dilations": [1, 2, 3, 4, 1], "attention_channels": 128, "lin_neurons": 192, **model}
    lines = "\n".join(f"    {k}: {v}" for k, v in model.items())
    lin = model["lin_neurons"]
    return f"""\
# ECAPA-TDNN speaker embeddings (test copy of the released file's layout)

n_mels: {n_mels}
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
out_n_neurons: 7205

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
{lines}

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: {lin}
    out_neurons: !ref <out_n_neurons>

mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


def speechbrain_modules() -> types.SimpleNamespace:
    """SpeechBrain's ECAPA_TDNN, Fbank and InputNormalization, imported with an empty ``torchaudio``
    stand-in when the real one cannot be imported (it cannot beside torch 2.13)."""
    if importlib.util.find_spec("speechbrain") is None:
        pytest.skip("speechbrain not installed")
    added = False
    try:
        import torchaudio  # noqa: F401
    except Exception:
        stub = types.ModuleType("torchaudio")
        stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
        sys.modules["torchaudio"] = stub
        added = True
    try:
        from speechbrain.lobes.features import Fbank
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
        from speechbrain.processing.features import InputNormalization
    except Exception as e:  # pragma: no cover - depends on the installed speechbrain
        pytest.skip(f"speechbrain does not import here: {e}")
    finally:
        if added:  # others (transformers' availability probes) must not see the stand-in
            sys.modules.pop("torchaudio", None)
    return types.SimpleNamespace(ECAPA_TDNN=ECAPA_TDNN, Fbank=Fbank, InputNormalization=InputNormalization)


def perturb_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters away from their initial values, so they matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(model.named_buffers()) + list(model.named_parameters()):
            if name.endswith("running_mean"):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            elif name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif "norm" in name and t.dim() == 1:
                t.add_(0.1 * torch.randn(t.shape, generator=g))


def write_ecapa_dir(path: Path, state_dict: dict[str, torch.Tensor], **model: object) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "hyperparams.yaml").write_text(hyperparams_yaml(**model))
    torch.save(state_dict, path / "embedding_model.ckpt")
    return path


@pytest.fixture
def ecapa_dir(tmp_path) -> Path:
    """Our own tiny random model in the released file layout (no SpeechBrain needed)."""
    from orchestrator.encoders.ecapa import ECAPA_TDNN, ECAPAConfig

    cfg = ECAPAConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY_ECAPA.items()})
    torch.manual_seed(0)
    model = ECAPA_TDNN(cfg)
    perturb_batchnorm(model)
    return write_ecapa_dir(tmp_path / "ecapa", model.state_dict(), **TINY_ECAPA)


def test_ecapa_reads_released_hyperparams(tmp_path) -> None:
    from orchestrator.encoders.ecapa import ECAPA_TDNN, read_hyperparams

    path = tmp_path / "hyperparams.yaml"
    path.write_text(hyperparams_yaml())
    hp = read_hyperparams(path)
    assert hp.model.channels == (1024, 1024, 1024, 1024, 3072) and hp.model.lin_neurons == 192
    assert (hp.model.input_size, hp.fbank.n_mels, hp.fbank.sample_rate) == (80, 80, 16000)
    assert (hp.model.res2net_scale, hp.model.se_channels, hp.model.global_context) == (8, 128, True)  # class defaults
    assert (hp.norm.norm_type, hp.norm.std_norm) == ("sentence", False)
    assert (hp.fbank.win_length, hp.fbank.hop_length, hp.fbank.fmax) == (400, 160, 8000.0)
    # the released model's size: SpeechBrain's ECAPA_TDNN(80, channels=[1024]*4 + [3072]) has the same
    assert sum(p.numel() for p in ECAPA_TDNN(hp.model).parameters()) == 20_767_552


def test_ecapa_encoder_contract(ecapa_dir) -> None:
    enc = build_encoder("ecapa_tdnn", source=str(ecapa_dir), batch_size=2)
    assert (enc.encoder_id, enc.sample_rate, enc.dim) == ("ecapa-tdnn-speechbrain", 16000, 24)
    assert enc.weights_hash() == hash_files([ecapa_dir / "embedding_model.ckpt"])
    assert enc.params()["model"]["channels"] == (32, 32, 32, 32, 96)
    assert enc.params()["fbank"]["n_mels"] == 80
    waves = [voice(0, 1.0), voice(1, 2.5), voice(2, 1.0), voice(3, 0.3)]
    emb = enc.embed(waves)
    assert emb.shape == (4, 24) and emb.dtype == np.float32 and np.isfinite(emb).all()
    for w, e in zip(waves, emb):
        np.testing.assert_allclose(enc.embed([w])[0], e, atol=1e-5)  # batch-independent
    frames = enc.frames(waves[:2])
    assert [f.shape for f in frames] == [(1, 24), (1, 24)]
    np.testing.assert_allclose(frames[1][0], emb[1], atol=1e-6)
    assert not np.allclose(emb[0], emb[1], atol=1e-3)
    assert enc.min_samples() == 4 * 160  # 5 frames: reflection padding of 4 (dilation 4, kernel 3)
    enc.embed([np.zeros(640, np.float32) + 0.01])
    with pytest.raises(ValueError, match="shorter than ECAPA"):
        enc.embed([np.zeros(639, np.float32)])


def test_ecapa_missing_and_bad_files_are_one_line(tmp_path, ecapa_dir) -> None:
    with pytest.raises(EncoderUnavailableError, match="needs source"):
        build_encoder("ecapa_tdnn")
    with pytest.raises(EncoderUnavailableError, match="directory not found") as e:
        build_encoder("ecapa_tdnn", source=str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in str(e.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EncoderUnavailableError, match="hyperparams.yaml not found") as e:
        build_encoder("ecapa_tdnn", source=str(empty))
    assert str(empty / "hyperparams.yaml") in str(e.value)
    (empty / "hyperparams.yaml").write_text(hyperparams_yaml())
    with pytest.raises(EncoderUnavailableError, match="checkpoint not found") as e:
        build_encoder("ecapa_tdnn", source=str(empty))
    assert str(empty / "embedding_model.ckpt") in str(e.value)
    # tiny weights against the released (big) architecture: a strict-load mismatch, one line
    (ecapa_dir / "hyperparams.yaml").write_text(hyperparams_yaml())
    with pytest.raises(EncoderUnavailableError, match="does not match") as e:
        build_encoder("ecapa_tdnn", source=str(ecapa_dir))
    assert "\n" not in str(e.value)
    text = hyperparams_yaml(**TINY_ECAPA).replace("    n_mels: !ref <n_mels>", "    n_mels: 80\n    deltas: True")
    (ecapa_dir / "hyperparams.yaml").write_text(text)
    with pytest.raises(EncoderUnavailableError, match="deltas"):
        build_encoder("ecapa_tdnn", source=str(ecapa_dir))
    (ecapa_dir / "hyperparams.yaml").write_text(hyperparams_yaml(**TINY_ECAPA, activation="!name:torch.nn.GELU"))
    with pytest.raises(EncoderUnavailableError, match="not supported"):
        build_encoder("ecapa_tdnn", source=str(ecapa_dir))


def test_ecapa_layout_matches_speechbrain() -> None:
    sb = speechbrain_modules()
    from orchestrator.encoders.ecapa import ECAPA_TDNN, ECAPAConfig

    theirs = sb.ECAPA_TDNN(80, channels=[1024, 1024, 1024, 1024, 3072], kernel_sizes=[5, 3, 3, 3, 1],
                           dilations=[1, 2, 3, 4, 1], attention_channels=128, lin_neurons=192)
    ours = ECAPA_TDNN(ECAPAConfig(channels=(1024, 1024, 1024, 1024, 3072)))
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}


def test_ecapa_matches_speechbrain(tmp_path) -> None:
    """SpeechBrain's ``encode_batch`` chain (Fbank -> sentence mean norm -> ECAPA_TDNN) with random
    weights, saved as the released files, against the registered encoder."""
    sb = speechbrain_modules()
    torch.manual_seed(1)
    model = sb.ECAPA_TDNN(80, **TINY_ECAPA).eval()
    perturb_batchnorm(model, seed=1)
    source = write_ecapa_dir(tmp_path / "sb", model.state_dict(), **TINY_ECAPA)
    enc = build_encoder("ecapa_tdnn", source=str(source))
    fbank = sb.Fbank(n_mels=80).eval()
    norm = sb.InputNormalization(norm_type="sentence", std_norm=False).eval()
    waves = [voice(40, 1.0), voice(41, 3.2), voice(42, 0.5)]
    ours = enc.embed(waves)
    worst = 0.0
    for w, e in zip(waves, ours):
        x = torch.from_numpy(w)[None]
        with torch.no_grad():
            feats = fbank(x)
            assert db_spectrum_excess(enc.frontend.log_mel(x)[0], feats[0]) <= 1.0  # dB: compared as power
            ref = model(norm(feats, torch.ones(1)), torch.ones(1))[0, 0].numpy()
        worst = max(worst, scale_excess(e, ref))
    assert worst <= 1.0


def stored_ecapa(tmp_path: Path) -> torch.nn.Module:
    """The registered encoder on the fixture's small random ECAPA_TDNN, written as the released files."""
    ref = REF["ecapa"]
    return build_encoder("ecapa_tdnn", source=str(write_ecapa_dir(tmp_path / "ref", ref["state_dict"], **ref["config"])))


def ecapa_stored_excess(enc) -> dict[str, float]:
    """How far the encoder is from SpeechBrain's stored Fbank (dB) and embeddings, in units of the
    bounds of ``tests/reference_tolerance.py`` (<= 1: agrees)."""
    ref = REF["ecapa"]
    waves = [w.float().numpy() for w in ref["waves"]]
    with torch.no_grad():
        fbank = [db_spectrum_excess(enc.frontend.log_mel(torch.from_numpy(w)[None])[0], fb)
                 for w, fb in zip(waves, ref["fbank"])]
    embedding = [scale_excess(e, r) for e, r in zip(enc.embed(waves), ref["embeddings"])]
    return {"fbank": max(fbank), "embedding": max(embedding)}


@pytest.mark.reference
def test_ecapa_matches_stored_speechbrain_outputs(tmp_path) -> None:
    """SpeechBrain's Fbank and encode_batch chain (fixture), for a small random ECAPA_TDNN whose
    state dict the fixture holds, written here as the released files."""
    excess = ecapa_stored_excess(stored_ecapa(tmp_path))
    assert max(excess.values()) <= 1.0, excess


def _shift_one_filter(filters: torch.Tensor, mel: int) -> None:
    """Mel filter ``mel`` (a column of a ``[bins, mels]`` matrix) one FFT bin higher."""
    with torch.no_grad():
        filters[:, mel] = torch.roll(filters[:, mel].clone(), 1)


def _transpose_weight(weight: torch.Tensor) -> None:
    """A square layer's input and output channels swapped (a layout error in a port)."""
    with torch.no_grad():
        weight.copy_(weight.transpose(0, 1).clone())


ECAPA_ERRORS = {
    "one mel filter one FFT bin higher": ("fbank", lambda enc: _shift_one_filter(enc.frontend.filters, 20)),
    "Hann window instead of Hamming": ("fbank", lambda enc: setattr(enc.frontend, "window", torch.hann_window(400))),
    "no 80 dB floor": ("fbank", lambda enc: setattr(enc.frontend, "cfg", dataclasses.replace(enc.frontend.cfg,
                                                                                             top_db=1e3))),
    "one TDNN layer's weights transposed": ("embedding",
                                            lambda enc: _transpose_weight(enc.model.blocks[2].tdnn1.conv.conv.weight)),
}


@pytest.mark.reference
@pytest.mark.parametrize("error", list(ECAPA_ERRORS))
def test_ecapa_stored_comparison_fails_on_implementation_errors(tmp_path, error) -> None:
    """The bounds of the stored-reference test are no wider than float32 needs: each real error
    exceeds its part's bound at least 5 times, while float32 on other kernel paths stays below 1/20
    of it. (Dropping the floor changes only the few bands below it, by 2-3 dB: 7x its bound.)"""
    part, apply = ECAPA_ERRORS[error]
    enc = stored_ecapa(tmp_path)
    apply(enc)
    assert ecapa_stored_excess(enc)[part] > 5.0


# =============================================================================================
# CNN14 (PANNs layout)


def panns_models() -> types.ModuleType:
    """``panns_inference.models`` without running the package ``__init__`` (which wgets a CSV)."""
    if "panns_inference.models" in sys.modules:
        return sys.modules["panns_inference.models"]
    if importlib.util.find_spec("torchlibrosa") is None:
        pytest.skip("torchlibrosa not installed")
    spec = importlib.util.find_spec("panns_inference")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("panns-inference not installed")
    if "panns_inference" not in sys.modules:  # an empty package in place of the real __init__
        pkg = types.ModuleType("panns_inference")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = importlib.machinery.ModuleSpec("panns_inference", None, is_package=True)
        sys.modules["panns_inference"] = pkg
    try:
        return importlib.import_module("panns_inference.models")
    except Exception as e:  # pragma: no cover
        pytest.skip(f"panns_inference.models does not import here: {e}")


@pytest.fixture(scope="module")
def cnn14_release(tmp_path_factory) -> tuple[Path, torch.nn.Module | None]:
    """A random-weight CNN14 saved as the release is (``{"model": state_dict, ...}``, classifier
    included): the original module's weights when panns_inference is importable, else ours."""
    from orchestrator.encoders.cnn14 import Cnn14

    torch.manual_seed(0)
    try:
        ref: torch.nn.Module | None = panns_models().Cnn14(
            sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=14000, classes_num=527)
        model = ref
    except pytest.skip.Exception:
        ref = None
        model = Cnn14()
        model.fc_audioset = torch.nn.Linear(2048, 527)  # the release holds the classifier too
    perturb_batchnorm(model.eval(), seed=2)
    sd = model.state_dict()
    path = tmp_path_factory.mktemp("cnn14") / "Cnn14_mAP=0.431.pth"
    torch.save({"model": sd, "iteration": 1000}, path)
    return path, ref


def test_cnn14_layout_matches_panns() -> None:
    models = panns_models()
    from orchestrator.encoders.cnn14 import Cnn14

    theirs = models.Cnn14(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=14000,
                          classes_num=527).state_dict()
    ours = Cnn14().state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == \
        {k: tuple(v.shape) for k, v in theirs.items() if not k.startswith("fc_audioset.")}
    # a fresh model's front end is torchlibrosa's: windowed DFT and librosa's Slaney mel filters
    for k in ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
              "logmel_extractor.melW"):
        torch.testing.assert_close(ours[k], theirs[k], atol=1e-6, rtol=1e-5)


def test_cnn14_matches_panns(cnn14_release) -> None:
    path, ref = cnn14_release
    if ref is None:
        pytest.skip("panns-inference/torchlibrosa not installed")
    enc = build_encoder("cnn14", checkpoint=str(path))
    g = torch.Generator().manual_seed(3)
    waves = [voice(50, 1.0, sr=32000), (0.1 * torch.randn(41_000, generator=g)).numpy()]
    ours = enc.embed(waves)
    for w, e in zip(waves, ours):
        with torch.no_grad():
            out = ref(torch.from_numpy(w)[None])["embedding"][0].numpy()
        assert scale_excess(e, out) <= 1.0
        assert np.abs(out).max() > 1e-3  # not a trivially zero embedding


def test_cnn14_encoder_contract(cnn14_release) -> None:
    path, _ = cnn14_release
    enc = build_encoder("cnn14", checkpoint=str(path), batch_size=2)
    assert (enc.encoder_id, enc.sample_rate, enc.dim) == ("panns-cnn14", 32000, 2048)
    assert enc.weights_hash() == hash_files([path])
    assert enc.params()["n_mels"] == 64 and enc.params()["fmax"] == 14000.0
    sd = torch.load(path, weights_only=True)["model"]
    assert "spectrogram_extractor.stft.conv_real.weight" in sd and "logmel_extractor.melW" in sd
    assert not any(k.startswith("fc_audioset") for k in enc.model.state_dict())
    torch.testing.assert_close(enc.model.logmel_extractor.melW.detach(), sd["logmel_extractor.melW"])
    waves = [voice(60, 0.5, sr=32000), voice(61, 0.8, sr=32000), voice(62, 0.5, sr=32000)]
    emb = enc.embed(waves)
    assert emb.shape == (3, 2048) and emb.dtype == np.float32 and (emb >= 0).all()  # ReLU output
    np.testing.assert_allclose(enc.embed([waves[1]])[0], emb[1], atol=1e-5)
    assert [f.shape for f in enc.frames(waves[:1])] == [(1, 2048)]
    enc.embed([np.full(9920, 0.01, np.float32)])  # 32 frames: the minimum
    with pytest.raises(ValueError, match="shorter than CNN14"):
        enc.embed([np.zeros(9919, np.float32)])


def test_cnn14_bad_checkpoints_are_one_line(tmp_path, cnn14_release) -> None:
    with pytest.raises(EncoderUnavailableError, match="needs a checkpoint"):
        build_encoder("cnn14")
    with pytest.raises(EncoderUnavailableError, match="not found") as e:
        build_encoder("cnn14", checkpoint=str(tmp_path / "Cnn14.pth"))
    assert str(tmp_path / "Cnn14.pth") in str(e.value)
    other = tmp_path / "other.pth"
    torch.save({"model": {"fc1.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(EncoderUnavailableError, match="not a CNN14 checkpoint"):
        build_encoder("cnn14", checkpoint=str(other))
    sd = torch.load(cnn14_release[0], weights_only=True)["model"]
    sd.pop("logmel_extractor.melW")
    torch.save({"model": sd}, other)
    with pytest.raises(EncoderUnavailableError, match="missing") as e:
        build_encoder("cnn14", checkpoint=str(other))
    assert "logmel_extractor.melW" in str(e.value) and "\n" not in str(e.value)


@pytest.fixture(scope="module")
def cnn14_formula() -> torch.nn.Module:
    """Our CNN14 with the fixture script's deterministic weights (those the stored outputs used)."""
    from orchestrator.encoders.cnn14 import Cnn14

    model = Cnn14().eval()
    model.load_state_dict(fixture_script().cnn14_formula_state_dict(model.state_dict()))
    return model


def cnn14_stored_excess(model: torch.nn.Module) -> dict[str, float]:
    """How far the model is from panns_inference's stored log-mel (dB) and embeddings, in units of
    the bounds of ``tests/reference_tolerance.py`` (<= 1: agrees)."""
    ref = REF["cnn14"]
    logmel, embedding = [], []
    for w, lm, emb in zip(ref["waves"], ref["logmel"], ref["embeddings"]):
        x = w.float()[None]
        with torch.no_grad():
            logmel.append(db_spectrum_excess(model.logmel(x)[0], lm))
            embedding.append(scale_excess(model(x)[0], emb))
    return {"logmel": max(logmel), "embedding": max(embedding)}


@pytest.mark.reference
def test_cnn14_matches_stored_panns_outputs(cnn14_formula) -> None:
    """panns_inference's Cnn14 outputs (fixture) for the fixture script's deterministic weights."""
    excess = cnn14_stored_excess(cnn14_formula)
    assert max(excess.values()) <= 1.0, excess


CNN14_ERRORS = {
    "one mel filter one FFT bin higher": ("logmel", lambda m: m.logmel_extractor.melW, lambda w: _shift_one_filter(w, 30)),
    "a 3x3 convolution's channels transposed": ("embedding", lambda m: m.conv_block2.conv2.weight, _transpose_weight),
    "the embedding layer's weights transposed": ("embedding", lambda m: m.fc1.weight, _transpose_weight),
}


@pytest.mark.reference
@pytest.mark.parametrize("error", list(CNN14_ERRORS))
def test_cnn14_stored_comparison_fails_on_implementation_errors(cnn14_formula, error) -> None:
    """Each real error exceeds its part's bound of the stored-reference test at least 5 times."""
    part, tensor, apply = CNN14_ERRORS[error]
    saved = tensor(cnn14_formula).detach().clone()
    try:
        apply(tensor(cnn14_formula))
        assert cnn14_stored_excess(cnn14_formula)[part] > 5.0
    finally:
        with torch.no_grad():
            tensor(cnn14_formula).copy_(saved)


# =============================================================================================
# wav2vec2 / HuBERT: feature-encoder output and CTC checkpoints

TINY_W2V = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(24, 24),
                conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True,
                vocab_size=12)


def save_tiny(tmp_path: Path, kind: str) -> tuple[Path, torch.nn.Module]:
    import transformers

    cfg_cls = transformers.HubertConfig if kind.startswith("Hubert") else transformers.Wav2Vec2Config
    torch.manual_seed(0)
    model = getattr(transformers, kind)(cfg_cls(**TINY_W2V)).eval()
    with torch.no_grad():  # layer norms away from identity, so a missed layer norm shows
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    path = tmp_path / kind
    model.save_pretrained(path)
    transformers.Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(path)
    return path, model


def _waves() -> list[np.ndarray]:
    return [voice(70, 0.25), voice(71, 0.6), voice(72, 0.13)]


def test_wav2vec2_extract_features(tmp_path) -> None:
    path, model = save_tiny(tmp_path, "Wav2Vec2Model")
    hidden = build_encoder("wav2vec2", model=str(path))
    enc = build_encoder("wav2vec2", model=str(path), output="extract_features", batch_size=2)
    # the encoder id does not depend on the output; params do, and the default's params are the old ones
    assert enc.encoder_id == hidden.encoder_id == f"wav2vec2:{path}"
    assert set(hidden.params()) == {"layer", "pooling", "do_normalize", "attention_mask", "sample_rate"}
    assert enc.params()["output"] == "extract_features" and enc.params() != hidden.params()
    assert (enc.dim, hidden.dim) == (24, 32)  # conv_dim[-1] vs hidden_size
    waves = _waves()
    frames = enc.frames(waves)
    expected = [((n - 10) // 5 + 1 - 3) // 2 + 1 for n in (w.size for w in waves)]
    assert [f.shape for f in frames] == [(t, 24) for t in expected]
    for w, f in zip(waves, frames):
        with torch.no_grad():
            ref = model(torch.from_numpy(enc._inputs(w))[None]).extract_features[0].numpy()
        np.testing.assert_allclose(f, ref, atol=1e-5)  # transformers' own extract_features, alone
    emb = enc.embed(waves)
    assert emb.shape == (3, 24)
    np.testing.assert_allclose(emb, np.stack([f.mean(0) for f in frames]), atol=1e-6)  # mean pooling
    with pytest.raises(ValueError, match="output"):
        build_encoder("wav2vec2", model=str(path), output="logits")


def test_wav2vec2_ctc_checkpoint_loads_its_encoder(tmp_path) -> None:
    path, ctc = save_tiny(tmp_path, "Wav2Vec2ForCTC")
    enc = build_encoder("wav2vec2", model=str(path))
    assert type(enc.model).__name__ == "Wav2Vec2Model"
    assert not any(k.startswith("lm_head") for k in enc.model.state_dict())
    for k, v in ctc.wav2vec2.state_dict().items():
        assert torch.equal(enc.model.state_dict()[k], v), k
    w = _waves()[1]
    with torch.no_grad():
        ref = ctc.wav2vec2(torch.from_numpy(enc._inputs(w))[None]).last_hidden_state[0].numpy()
    np.testing.assert_allclose(enc.frames([w])[0], ref, atol=1e-5)


@pytest.mark.parametrize("kind", ["HubertModel", "HubertForCTC"])
def test_hubert_checkpoints(tmp_path, kind) -> None:
    path, model = save_tiny(tmp_path, kind)
    base = model if kind == "HubertModel" else model.hubert
    enc = build_encoder("wav2vec2", model=str(path), layer=1)
    assert type(enc.model).__name__ == "HubertModel" and enc.dim == 32 and enc.params()["attention_mask"]
    waves = _waves()
    frames = enc.frames(waves)
    feats = build_encoder("wav2vec2", model=str(path), output="extract_features").frames(waves)
    for w, f, x in zip(waves, frames, feats):
        inputs = torch.from_numpy(enc._inputs(w))[None]
        with torch.no_grad():
            ref = base(inputs, output_hidden_states=True).hidden_states[1][0].numpy()
            conv = base.feature_extractor(inputs).transpose(1, 2)
            ref_x = base.feature_projection.layer_norm(conv)[0].numpy()
        np.testing.assert_allclose(f, ref, atol=1e-5)
        np.testing.assert_allclose(x, ref_x, atol=1e-5)
        assert x.shape == (f.shape[0], 24)


def test_wav2vec2_rejects_non_speech_models(tmp_path) -> None:
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         vocab_size=50)).save_pretrained(tmp_path / "bert")
    with pytest.raises(EncoderUnavailableError, match="not a wav2vec 2.0-style") as e:
        build_encoder("wav2vec2", model=str(tmp_path / "bert"))
    assert "\n" not in str(e.value)
