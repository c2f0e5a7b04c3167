"""ECAPA-TDNN (Desplanques et al. 2020) as released by SpeechBrain (``speechbrain/spkrec-ecapa-voxceleb``):
the speaker–text retrieval paper's baseline speaker encoder (III-B, footnote 1; 16 kHz, 192-d).

Why not SpeechBrain itself: ``import speechbrain`` needs torchaudio, and no torchaudio wheel imports
beside torch 2.13. The model is small and plain, so it is written here in SpeechBrain's parameter
layout (``blocks.0.conv.conv.weight``, ``blocks.1.res2net_block.blocks.0.norm.norm.running_mean``,
``asp.tdnn...``, ``asp_bn.norm...``, ``fc.conv...``), and ``tests/test_speaker_encoders.py`` checks
it against SpeechBrain 1.1.2's own ``ECAPA_TDNN``, ``Fbank`` and ``InputNormalization`` (imported
with an empty ``torchaudio`` stand-in).

What the released model computes (``EncoderClassifier.encode_batch`` with the model's
``hyperparams.yaml``), and this module reproduces for one clip at a time:

1. ``compute_features`` = SpeechBrain ``Fbank``: STFT (n_fft 400, 25 ms periodic Hamming window, 10 ms
   hop, centred, zero padding), power spectrum, 80 triangular filters whose centres are evenly
   spaced on the HTK mel scale between 0 and 8 kHz and whose half-width on both sides is the gap
   to the previous centre (SpeechBrain's construction; no area normalisation), then
   ``10 log10(max(x, 1e-10))`` floored at the utterance's maximum minus 80 dB.
2. ``mean_var_norm`` = ``InputNormalization(norm_type=sentence, std_norm=False)``: the utterance's
   mean log-mel vector is subtracted.
3. ``embedding_model`` = ``ECAPA_TDNN``: conv layers pad "same" by reflection; TDNN blocks are
   conv -> ReLU -> BatchNorm; three SE-Res2Net blocks; multi-layer aggregation; attentive
   statistics pooling with global context; BatchNorm; a 1x1 conv to ``lin_neurons``.

``encode_batch(normalize=False)`` (SpeechBrain's default, also what ``verify_batch`` uses) does not
apply ``mean_var_norm_emb``, so neither does this encoder. Architecture numbers (channels, kernels,
dilations, attention channels, embedding size, mel count, Fbank settings) are read from
``hyperparams.yaml``; what the file leaves out takes SpeechBrain's class defaults.

Batches: each clip is encoded on its own (clips of identical length share a pass), because
SpeechBrain's reflection padding and padded batches make a clip's embedding depend on its batch
neighbours; here it never does. ``frames()`` returns one vector per clip.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from orchestrator.encoders.base import (
    checkpoint_file,
    AudioEncoder,
    EncoderUnavailableError,
    hash_files,
    load_strict,
    one_line,
    read_checkpoint_tensors,
    register_encoder,
)

MODEL_CARD = "https://huggingface.co/speechbrain/spkrec-ecapa-voxceleb"


def check_shapes(model: nn.Module, sd: Mapping[str, torch.Tensor], path: Path, what: str) -> None:
    """One-line error for tensors whose shape differs from the model's (``load_state_dict`` raises
    a multi-line RuntimeError for those even with ``strict=False``)."""
    own = model.state_dict()
    bad = [f"{k} {tuple(v.shape)} != {tuple(own[k].shape)}" for k, v in sd.items()
           if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise EncoderUnavailableError(f"{path} does not match {what}: {len(bad)} shape mismatches, e.g. {bad[:3]}")


# ---- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ECAPAConfig:
    """``ECAPA_TDNN`` arguments. Defaults: SpeechBrain 1.1.2's class defaults (the released
    VoxCeleb model overrides channels to ``[1024, 1024, 1024, 1024, 3072]`` in its yaml)."""

    input_size: int = 80
    channels: tuple[int, ...] = (512, 512, 512, 512, 1536)
    kernel_sizes: tuple[int, ...] = (5, 3, 3, 3, 1)
    dilations: tuple[int, ...] = (1, 2, 3, 4, 1)
    attention_channels: int = 128
    res2net_scale: int = 8
    se_channels: int = 128
    global_context: bool = True
    groups: tuple[int, ...] = (1, 1, 1, 1, 1)
    lin_neurons: int = 192

    def __post_init__(self) -> None:
        n = len(self.channels)
        if n < 3 or not len(self.kernel_sizes) == len(self.dilations) == len(self.groups) == n:
            raise ValueError("channels, kernel_sizes, dilations and groups must have the same length (>= 3)")
        for c in self.channels[1:-1]:
            if c % self.res2net_scale:
                raise ValueError(f"SE-Res2Net channels {c} not divisible by res2net_scale {self.res2net_scale}")
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"kernel sizes must be odd for 'same' padding, got {self.kernel_sizes}")

    @property
    def min_frames(self) -> int:
        """Reflection padding needs more frames than it pads (the largest dilated half-kernel)."""
        return 1 + max(d * (k - 1) // 2 for k, d in zip(self.kernel_sizes, self.dilations))


@dataclass(frozen=True)
class FbankConfig:
    """SpeechBrain ``Fbank`` arguments that change its output (defaults: SpeechBrain's)."""

    sample_rate: int = 16000
    n_fft: int = 400
    win_length_ms: float = 25.0
    hop_length_ms: float = 10.0
    n_mels: int = 40
    f_min: float = 0.0
    f_max: float | None = None
    amin: float = 1e-10
    ref_value: float = 1.0
    top_db: float = 80.0

    @property
    def win_length(self) -> int:
        return int(round(self.sample_rate / 1000.0 * self.win_length_ms))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate / 1000.0 * self.hop_length_ms))

    @property
    def fmax(self) -> float:
        return float(self.sample_rate // 2 if self.f_max is None else self.f_max)


@dataclass(frozen=True)
class NormConfig:
    """``InputNormalization`` on features; only per-utterance ("sentence") statistics need no file."""

    norm_type: str = "sentence"
    std_norm: bool = False


@dataclass(frozen=True)
class SpeechBrainECAPAHparams:
    fbank: FbankConfig = field(default_factory=FbankConfig)
    norm: NormConfig = field(default_factory=NormConfig)
    model: ECAPAConfig = field(default_factory=ECAPAConfig)


# ---- hyperparams.yaml ----------------------------------------------------------------------------


class _Tagged:
    """A HyperPyYAML tagged node (``!new:...``, ``!ref``, ``!name:``...), kept as data, never executed."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value

    def __repr__(self) -> str:
        return f"{self.tag} {self.value!r}"


class _HyperLoader(yaml.SafeLoader):
    pass


def _construct_tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> _Tagged:
    if isinstance(node, yaml.MappingNode):
        value: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return _Tagged("!" + suffix, value)


_HyperLoader.add_multi_constructor("!", _construct_tagged)

_REF = re.compile(r"^<([\w.]+)>$")


def _resolve(value: Any, top: Mapping[str, Any], depth: int = 0) -> Any:
    """Follow ``!ref <key>`` (a whole-value reference to a top-level key); other refs stay strings."""
    if depth > 20:
        raise ValueError("!ref cycle in hyperparams.yaml")
    if isinstance(value, _Tagged) and value.tag == "!ref" and isinstance(value.value, str):
        m = _REF.match(value.value.strip())
        if m and m.group(1) in top:
            return _resolve(top[m.group(1)], top, depth + 1)
        return value.value
    if isinstance(value, list):
        return [_resolve(v, top, depth) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, top, depth) for k, v in value.items()}
    return value


def _section(top: Mapping[str, Any], key: str, cls: str, path: Path) -> dict[str, Any]:
    node = top.get(key)
    if not isinstance(node, _Tagged) or not node.tag.startswith("!new:") or not node.tag.endswith("." + cls):
        raise EncoderUnavailableError(f"{path}: {key!r} is not a !new:...{cls} (found {node!r:.80})")
    args = node.value if isinstance(node.value, dict) else {}
    return {k: _resolve(v, top) for k, v in args.items()}


def _take(args: dict[str, Any], allowed: Mapping[str, str], ignored: Sequence[str], what: str,
          path: Path) -> dict[str, Any]:
    """Rename SpeechBrain argument names to ours; refuse arguments that would change the output
    in a way this module does not implement (better a clear error than a silently different model)."""
    unknown = sorted(set(args) - set(allowed) - set(ignored))
    if unknown:
        raise EncoderUnavailableError(f"{path}: {what} arguments not supported here: {unknown}")
    return {allowed[k]: v for k, v in args.items() if k in allowed}


def read_hyperparams(path: Path) -> SpeechBrainECAPAHparams:
    """The architecture and front-end settings of a SpeechBrain ECAPA ``hyperparams.yaml``."""
    if not path.is_file():
        raise EncoderUnavailableError(f"ECAPA-TDNN hyperparams.yaml not found: {path}")
    try:
        top = yaml.load(path.read_text(), Loader=_HyperLoader)  # noqa: S506 (SafeLoader subclass)
    except yaml.YAMLError as e:
        raise EncoderUnavailableError(f"cannot parse {path}: {one_line(e)}") from None
    if not isinstance(top, dict):
        raise EncoderUnavailableError(f"{path} is not a SpeechBrain hyperparams file")

    fb = _section(top, "compute_features", "Fbank", path)
    if fb.get("deltas") or fb.get("context") or fb.get("filter_shape", "triangular") != "triangular":
        raise EncoderUnavailableError(f"{path}: Fbank with deltas/context/non-triangular filters is not supported")
    fbank = FbankConfig(**_take(
        fb, {"sample_rate": "sample_rate", "n_fft": "n_fft", "win_length": "win_length_ms",
             "hop_length": "hop_length_ms", "n_mels": "n_mels", "f_min": "f_min", "f_max": "f_max"},
        ("deltas", "context", "requires_grad", "filter_shape", "param_change_factor", "param_rand_factor",
         "left_frames", "right_frames"), "Fbank", path))

    nm = _section(top, "mean_var_norm", "InputNormalization", path)
    norm = NormConfig(**_take(nm, {"norm_type": "norm_type", "std_norm": "std_norm"},
                              ("mean_norm", "avg_factor", "length_dim", "update_until_epoch",
                               "avoid_padding_norm", "epsilon", "device"), "InputNormalization", path))
    if norm.norm_type != "sentence":
        raise EncoderUnavailableError(
            f"{path}: mean_var_norm norm_type {norm.norm_type!r} needs saved statistics; only 'sentence' is supported")

    em = _section(top, "embedding_model", "ECAPA_TDNN", path)
    names = ("input_size", "channels", "kernel_sizes", "dilations", "attention_channels", "res2net_scale",
             "se_channels", "global_context", "groups", "lin_neurons")
    kw = _take(em, {n: n for n in names}, ("device", "dropout"), "ECAPA_TDNN", path)
    kw = {k: tuple(int(x) for x in v) if isinstance(v, list) else v for k, v in kw.items()}
    try:
        model = ECAPAConfig(**kw)
    except (TypeError, ValueError) as e:
        raise EncoderUnavailableError(f"{path}: bad ECAPA_TDNN arguments: {one_line(e)}") from None
    if model.input_size != fbank.n_mels:
        raise EncoderUnavailableError(f"{path}: ECAPA input_size {model.input_size} != Fbank n_mels {fbank.n_mels}")
    return SpeechBrainECAPAHparams(fbank=fbank, norm=norm, model=model)


# ---- the network, in SpeechBrain's parameter layout ---------------------------------------------


class _Conv(nn.Module):
    """SpeechBrain ``Conv1d`` (channels first): "same" output length by reflection padding."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.pad = dilation * (kernel - 1) // 2
        self.conv = nn.Conv1d(c_in, c_out, kernel, dilation=dilation, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, (self.pad, self.pad), mode="reflect")
        return self.conv(x)


class _BatchNorm(nn.Module):
    """SpeechBrain ``BatchNorm1d`` wrapper (its parameters live under ``norm.``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class TDNNBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = _Conv(c_in, c_out, kernel, dilation, groups)
        self.norm = _BatchNorm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(F.relu(self.conv(x)))  # activation before the norm, as SpeechBrain


class Res2NetBlock(nn.Module):
    """Channel split into ``scale`` parts; part 0 passes, part i > 0 goes through a TDNN block
    after adding part i - 1's output (hierarchical residuals)."""

    def __init__(self, channels: int, scale: int, kernel: int, dilation: int) -> None:
        super().__init__()
        width = channels // scale
        self.scale = scale
        self.blocks = nn.ModuleList(TDNNBlock(width, width, kernel, dilation) for _ in range(scale - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.chunk(x, self.scale, dim=1)
        out = [parts[0]]
        y = None
        for i in range(1, self.scale):
            y = self.blocks[i - 1](parts[i] if y is None else parts[i] + y)
            out.append(y)
        return torch.cat(out, dim=1)


class SEBlock(nn.Module):
    def __init__(self, channels: int, se_channels: int) -> None:
        super().__init__()
        self.conv1 = _Conv(channels, se_channels, 1)
        self.conv2 = _Conv(se_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=2, keepdim=True)
        return x * torch.sigmoid(self.conv2(F.relu(self.conv1(s))))


class SERes2NetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, scale: int, se_channels: int, kernel: int, dilation: int,
                 groups: int) -> None:
        super().__init__()
        self.tdnn1 = TDNNBlock(c_in, c_out, 1, 1, groups)
        self.res2net_block = Res2NetBlock(c_out, scale, kernel, dilation)
        self.tdnn2 = TDNNBlock(c_out, c_out, 1, 1, groups)
        self.se_block = SEBlock(c_out, se_channels)
        self.shortcut = _Conv(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut(x) if self.shortcut is not None else x
        return self.se_block(self.tdnn2(self.res2net_block(self.tdnn1(x)))) + residual


def _weighted_stats(x: torch.Tensor, w: torch.Tensor, eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    mean = (w * x).sum(dim=2)
    std = (w * (x - mean.unsqueeze(2)).square()).sum(dim=2).clamp(min=eps).sqrt()
    return mean, std


class AttentiveStatisticsPooling(nn.Module):
    """Attention over time per channel; returns the attention-weighted mean and std. With global
    context the attention also sees the utterance's unweighted mean and std."""

    def __init__(self, channels: int, attention_channels: int, global_context: bool) -> None:
        super().__init__()
        self.global_context = global_context
        self.tdnn = TDNNBlock(channels * (3 if global_context else 1), attention_channels, 1, 1)
        self.conv = _Conv(attention_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        if self.global_context:
            mean, std = _weighted_stats(x, torch.full_like(x[:, :1], 1.0 / t))
            attn_in = torch.cat([x, mean.unsqueeze(2).expand(-1, -1, t), std.unsqueeze(2).expand(-1, -1, t)], dim=1)
        else:
            attn_in = x
        attn = torch.softmax(self.conv(torch.tanh(self.tdnn(attn_in))), dim=2)
        mean, std = _weighted_stats(x, attn)
        return torch.cat([mean, std], dim=1).unsqueeze(2)


class ECAPA_TDNN(nn.Module):  # noqa: N801 (SpeechBrain's name)
    """Features ``[B, T, input_size]`` -> embeddings ``[B, 1, lin_neurons]`` (SpeechBrain's shapes)."""

    def __init__(self, config: ECAPAConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ECAPAConfig()
        ch, ks, dl, gr = cfg.channels, cfg.kernel_sizes, cfg.dilations, cfg.groups
        blocks: list[nn.Module] = [TDNNBlock(cfg.input_size, ch[0], ks[0], dl[0], gr[0])]
        for i in range(1, len(ch) - 1):
            blocks.append(SERes2NetBlock(ch[i - 1], ch[i], cfg.res2net_scale, cfg.se_channels, ks[i], dl[i], gr[i]))
        self.blocks = nn.ModuleList(blocks)
        self.mfa = TDNNBlock(ch[-2] * (len(ch) - 2), ch[-1], ks[-1], dl[-1], gr[-1])
        self.asp = AttentiveStatisticsPooling(ch[-1], cfg.attention_channels, cfg.global_context)
        self.asp_bn = _BatchNorm(ch[-1] * 2)
        self.fc = _Conv(ch[-1] * 2, cfg.lin_neurons, 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if feats.shape[1] < self.config.min_frames:
            raise ValueError(f"{feats.shape[1]} feature frames; ECAPA-TDNN needs at least {self.config.min_frames}")
        x = feats.transpose(1, 2)
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        x = self.mfa(torch.cat(outs[1:], dim=1))
        x = self.asp_bn(self.asp(x))
        return self.fc(x).transpose(1, 2)


# ---- front end ------------------------------------------------------------------------------------


def speechbrain_fbank_matrix(cfg: FbankConfig) -> torch.Tensor:
    """``[n_fft // 2 + 1, n_mels]`` triangular filters as SpeechBrain's ``Filterbank`` builds them
    (float32, as there): centres equally spaced on ``2595 log10(1 + f / 700)``; each triangle's half
    width on both sides is the distance from the previous centre; peak 1, no area normalisation."""
    to_mel = lambda hz: 2595.0 * math.log10(1.0 + hz / 700.0)  # noqa: E731
    mel = torch.linspace(to_mel(cfg.f_min), to_mel(cfg.fmax), cfg.n_mels + 2)
    hz = 700.0 * (10 ** (mel / 2595.0) - 1.0)
    centre, band = hz[1:-1], (hz[1:] - hz[:-1])[:-1]
    freqs = torch.linspace(0, cfg.sample_rate // 2, cfg.n_fft // 2 + 1)
    slope = (freqs[None, :] - centre[:, None]) / band[:, None]
    return torch.clamp(torch.minimum(slope + 1.0, 1.0 - slope), min=0.0).T


class SpeechBrainFbank:
    """SpeechBrain ``Fbank`` (no deltas, no context) followed by sentence mean normalisation."""

    def __init__(self, fbank: FbankConfig, norm: NormConfig) -> None:
        self.cfg, self.norm = fbank, norm
        self.window = torch.hamming_window(fbank.win_length)  # periodic, SpeechBrain's default
        self.filters = speechbrain_fbank_matrix(fbank)

    def log_mel(self, waves: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` -> ``[B, 1 + n // hop, n_mels]`` in dB, floored at each utterance's max - top_db."""
        c = self.cfg
        spec = torch.stft(waves.float(), c.n_fft, c.hop_length, c.win_length, self.window.to(waves.device),
                          center=True, pad_mode="constant", normalized=False, onesided=True, return_complex=True)
        power = (spec.real.square() + spec.imag.square()).transpose(1, 2)
        mel = power @ self.filters.to(waves.device)
        db = 10.0 * torch.log10(mel.clamp(min=c.amin)) - 10.0 * math.log10(max(c.amin, c.ref_value))
        floor = db.amax(dim=(1, 2), keepdim=True) - c.top_db
        return torch.maximum(db, floor)

    def __call__(self, waves: torch.Tensor) -> torch.Tensor:
        feats = self.log_mel(waves)
        feats = feats - feats.mean(dim=1, keepdim=True)
        if self.norm.std_norm:
            feats = feats / feats.std(dim=1, unbiased=False, keepdim=True).clamp(min=1e-10)
        return feats

    def params(self) -> dict[str, Any]:
        c = self.cfg
        return {"sample_rate": c.sample_rate, "n_fft": c.n_fft, "win_length": c.win_length,
                "hop_length": c.hop_length, "n_mels": c.n_mels, "f_min": c.f_min, "f_max": c.fmax,
                "window": "hamming", "top_db": c.top_db, "norm": asdict(self.norm)}


# ---- loading and the registered encoder -----------------------------------------------------------


def load_ecapa(source: str | Path) -> tuple[ECAPA_TDNN, SpeechBrainECAPAHparams, Path]:
    """Model (eval mode), settings and checkpoint path from a directory holding the released
    ``hyperparams.yaml`` and ``embedding_model.ckpt``."""
    if "://" in str(source):  # the released files in a bucket: fetched once per node
        src = checkpoint_file(f"{str(source).rstrip('/')}/embedding_model.ckpt").parent
        hp_file = checkpoint_file(f"{str(source).rstrip('/')}/hyperparams.yaml")
        if hp_file.parent != src:
            import shutil

            shutil.copy(hp_file, src / "hyperparams.yaml")
    else:
        src = Path(source).expanduser()
    if not src.is_dir():
        raise EncoderUnavailableError(f"ECAPA-TDNN source directory not found: {src} (files of {MODEL_CARD})")
    hp = read_hyperparams(src / "hyperparams.yaml")
    ckpt = src / "embedding_model.ckpt"
    sd = read_checkpoint_tensors(ckpt, "ECAPA-TDNN", hint=f" (embedding_model.ckpt of {MODEL_CARD})")
    model = ECAPA_TDNN(hp.model)
    for k, v in model.state_dict().items():  # counters only; older checkpoints may lack them
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = torch.zeros_like(v)
    what = f"ECAPA_TDNN {asdict(hp.model)}"
    check_shapes(model, sd, ckpt, what)
    load_strict(model, sd, ckpt, what)
    return model.eval(), hp, ckpt


@register_encoder("ecapa_tdnn")
class ECAPAEncoder(AudioEncoder):
    """SpeechBrain's released ECAPA-TDNN from a local directory (``source``); see the module docstring."""

    encoder_id = "ecapa-tdnn-speechbrain"

    def __init__(self, source: str | None = None, batch_size: int = 8) -> None:
        super().__init__()
        if not source:
            raise EncoderUnavailableError(
                f"encoder 'ecapa_tdnn' needs source: a directory with hyperparams.yaml and embedding_model.ckpt "
                f"from {MODEL_CARD}"
            )
        self.model, self.hparams, self.checkpoint = load_ecapa(source)
        self.source = Path(source).expanduser()
        self.frontend = SpeechBrainFbank(self.hparams.fbank, self.hparams.norm)
        self.sample_rate = self.hparams.fbank.sample_rate
        self.dim = self.hparams.model.lin_neurons
        self.batch_size = batch_size
        self._hash: str | None = None

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = hash_files([self.checkpoint])
        return self._hash

    def params(self) -> dict[str, Any]:
        return {"fbank": self.frontend.params(), "model": asdict(self.hparams.model),
                "embedding_norm": None, "pooling": "attentive statistics (one vector per clip)"}

    def to(self, device: str | torch.device) -> ECAPAEncoder:
        super().to(device)
        self.model.to(self.device)
        return self

    def min_samples(self) -> int:
        return (self.hparams.model.min_frames - 1) * self.hparams.fbank.hop_length

    @torch.inference_mode()
    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        arrays = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waves]
        for i, a in enumerate(arrays):
            if a.size < self.min_samples():
                raise ValueError(f"wave {i} ({a.size} samples) is shorter than ECAPA-TDNN's minimum "
                                 f"({self.min_samples()} samples)")
        out = np.zeros((len(arrays), self.dim), np.float32)
        by_len: dict[int, list[int]] = {}
        for i, a in enumerate(arrays):
            by_len.setdefault(a.size, []).append(i)
        for idx in by_len.values():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s : s + self.batch_size]
                batch = torch.from_numpy(np.stack([arrays[i] for i in chunk])).to(self.device)
                emb = self.model(self.frontend(batch))[:, 0]
                out[chunk] = emb.float().cpu().numpy()
        return out

    def frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        return [e[None] for e in self.embed(waves)]
