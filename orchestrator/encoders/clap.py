"""Frozen CLAP encoders (Hugging Face ``ClapModel``, e.g. ``laion/clap-htsat-unfused``) for both towers.

``clap_audio`` (an :class:`AudioEncoder`) and ``clap_text`` (a :class:`FrozenTextEncoder`) load one
checkpoint by Hugging Face id, resolved in the local HF cache only, or by directory. Nothing is ever
downloaded (``local_files_only=True`` on every load): a missing model, feature extractor or tokenizer
is one :class:`EncoderUnavailableError` line saying what to pass.

``output``:

- ``projected`` (default): CLAP's joint-space embedding, the projection head over the pooled output
  (``audio_projection(audio_model(...).pooler_output)``, likewise for text). ``ClapModel.get_audio_features``
  / ``get_text_features`` return this vector L2-normalised (in transformers 4.x as a tensor, in 5.x as
  the ``pooler_output`` of a model output); here it is left un-normalised (``normalize=True`` gives
  exactly what they return), so the downstream head sees what CLAP's heads produce and cosine ranking
  of audio against text is CLAP zero-shot retrieval either way.
- ``pooled``: what the projection heads take (the HTSAT audio model's pooler output, the RoBERTa text
  model's pooler output): the input for a downstream model that starts from CLAP's own heads
  (:func:`clap_projections`) and fine-tunes them. Those heads over ``pooled`` give ``projected``.

Audio: the checkpoint's ``ClapFeatureExtractor`` does what CLAP does with clips that are not exactly
its window (10 s at 48 kHz for the released models): shorter clips are padded as its ``padding`` says
(``repeatpad``: repeated, then zero-padded), longer ones truncated as its ``truncation`` says
(``rand_trunc``: one random window, unfused models; ``fusion``: a shrunk whole plus three random
windows, fused models). Resampling is the caller's job (``sample_rate``). Two departures, both so a
clip's embedding is a function of the clip alone (it is cached under a key that names only the clip):

- the random windows of a long clip are drawn from a generator seeded with ``seed`` and the clip's
  bytes, not from numpy's global state, so re-extraction gives the same crop;
- ``is_longer`` is the clip's own (longer than the window or not). The feature extractor (like
  LAION-CLAP's HTSAT) marks a random clip of an all-short batch as "longer", which would send one
  arbitrary clip per batch of a fused model through the fusion branch; unfused models ignore it.
"""

from __future__ import annotations

import logging
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch
from torch import nn

from orchestrator.encoders.base import AudioEncoder, EncoderUnavailableError, hash_files, one_line, register_encoder
from orchestrator.encoders.text import FrozenTextEncoder, register_text_encoder

log = logging.getLogger(__name__)

Output = Literal["projected", "pooled"]
_WEIGHT_GLOBS = ("model*.safetensors", "pytorch_model*.bin")  # from_pretrained's order of preference
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")  # CLAP's RoBERTa BPE: fast or slow vocabulary
_HINT = ("pass model= a directory holding a ClapModel saved with save_pretrained (config.json, weights, "
         "preprocessor_config.json, tokenizer files) or an id already in the HF cache (HF_HOME); nothing is downloaded")


def _where(name: str, cache_dir: str | None) -> str:
    """Where a model name was looked for, for one-line errors."""
    import huggingface_hub

    local = Path(name).expanduser()
    if local.is_dir():
        return f"local directory {local.resolve()}"
    if name.startswith(("/", ".", "~")):
        return f"local directory {local.resolve()} does not exist"
    cache = cache_dir or huggingface_hub.constants.HF_HUB_CACHE
    return f"no local directory {local.resolve()}, not in the Hugging Face cache {cache}"


def _load_clap(name: str, cache_dir: str | None) -> Any:
    """The ``ClapModel`` of a directory or cached id, in eval mode; never downloads."""
    from transformers import AutoConfig, ClapModel

    try:
        config = AutoConfig.from_pretrained(name, cache_dir=cache_dir, local_files_only=True)
    except (OSError, ValueError) as e:  # transformers/hub report missing files and bad ids as these
        where = _where(name, cache_dir)
        # a missing path's reason is the hub's complaint that it is no repo id: noise, left out
        reason = "" if where.endswith("does not exist") else f" [{one_line(e)[:200]}]"
        raise EncoderUnavailableError(f"CLAP model {name!r} not found: {where}{reason}; {_HINT}") from None
    if getattr(config, "model_type", None) != "clap":
        raise EncoderUnavailableError(
            f"{name!r} is a {getattr(config, 'model_type', '?')!r} model, not a CLAP checkpoint (model_type 'clap')")
    try:
        model = ClapModel.from_pretrained(name, config=config, cache_dir=cache_dir, local_files_only=True)
    except (OSError, ValueError) as e:
        raise EncoderUnavailableError(
            f"CLAP weights for {name!r} not loadable from {_where(name, cache_dir)}: {one_line(e)[:200]}") from None
    return model.eval()


def _weights_dir(name: str, cache_dir: str | None) -> Path:
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    import huggingface_hub

    found = huggingface_hub.try_to_load_from_cache(name, "config.json", cache_dir=cache_dir)
    if not isinstance(found, str):
        raise EncoderUnavailableError(f"CLAP {name!r} loaded but has no snapshot in the HF cache")
    return Path(found).parent


def _weights_hash(directory: Path) -> str:
    for pattern in _WEIGHT_GLOBS:
        files = sorted(directory.glob(pattern))
        if files:
            return hash_files(files)
    raise EncoderUnavailableError(f"no model*.safetensors or pytorch_model*.bin in {directory}")


def _check_output(output: str) -> None:
    if output not in ("projected", "pooled"):
        raise ValueError(f"output must be 'projected' or 'pooled', got {output!r}")


def clap_projections(model: str, cache_dir: str | None = None) -> tuple[nn.Module, nn.Module, float]:
    """CLAP's ``audio_projection`` and ``text_projection`` heads with the checkpoint's weights, and its
    logit scale, for a downstream model that starts from CLAP's heads over ``output="pooled"`` features.

    The heads are ``ClapProjectionLayer`` (linear, ReLU, linear) modules, trainable (``requires_grad``)
    and detached from the rest of the model (which is freed). Over ``pooled`` features they give
    ``projected`` exactly, so the untrained downstream model is CLAP zero-shot.

    The logit scale is the multiplier of cosine similarities (``exp(logit_scale_a)``, 1/temperature):
    ``logit_scale_a`` is the one LAION-CLAP's contrastive loss trains (``logit_scale_t`` only serves its
    MLP loss; ``ClapModel.forward`` uses it for ``logits_per_text``).
    """
    net = _load_clap(str(model), cache_dir)
    return net.audio_projection, net.text_projection, float(net.logit_scale_a.detach().exp())


@contextmanager
def _seeded_numpy(seed: int) -> Iterator[None]:
    """numpy's global generator seeded for the block, then restored: ``ClapFeatureExtractor`` draws its
    random windows from ``np.random`` and has no generator argument."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


@register_encoder("clap_audio")
class ClapAudioEncoder(AudioEncoder):
    """CLAP's audio tower (HTSAT + projection head), frozen: one clip-level vector per wave.

    ``model``: HF id (in the local cache) or directory; ``output``: ``projected`` (``projection_dim``,
    512 for the released models) or ``pooled`` (the audio model's pooler output, ``audio_config.hidden_size``,
    768); ``normalize``: L2-normalise the output; ``seed``: mixed with each clip's bytes to draw the
    random windows of clips longer than CLAP's window; ``batch_size``: clips per forward pass.
    ``frames()`` returns one vector per clip (CLAP pools inside the model).
    """

    def __init__(self, model: str = "laion/clap-htsat-unfused", output: Output = "projected",
                 normalize: bool = False, seed: int = 0, batch_size: int = 8,
                 cache_dir: str | None = None) -> None:
        super().__init__()
        _check_output(output)
        self.model_name, self.output, self.normalize = str(model), output, bool(normalize)
        self.seed, self.batch_size, self.cache_dir = int(seed), int(batch_size), cache_dir
        self.encoder_id = f"clap_audio:{self.model_name}"
        net = _load_clap(self.model_name, cache_dir)
        # keep the audio tower alone: the text tower (a RoBERTa) is most of the checkpoint's memory
        self.audio_model, self.audio_projection = net.audio_model, net.audio_projection
        self.enable_fusion = bool(net.config.audio_config.enable_fusion)
        del net
        self.feature_extractor = self._load_feature_extractor()
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self.truncation = self._truncation()
        self.padding = str(self.feature_extractor.padding)
        self.dim = int(self.audio_projection.linear2.out_features if output == "projected"
                       else self.audio_projection.linear1.in_features)
        self.weights_dir = _weights_dir(self.model_name, cache_dir)
        self._hash: str | None = None

    def _load_feature_extractor(self) -> Any:
        from transformers import ClapFeatureExtractor

        try:
            return ClapFeatureExtractor.from_pretrained(self.model_name, cache_dir=self.cache_dir, local_files_only=True)
        except (OSError, ValueError) as e:
            # no silent default: the default extractor's band (0-14 kHz) and truncation differ from the
            # released checkpoints', so embeddings would quietly not be CLAP's
            raise EncoderUnavailableError(
                f"CLAP {self.model_name!r} has no usable preprocessor_config.json (ClapFeatureExtractor) in "
                f"{_where(self.model_name, self.cache_dir)}: {one_line(e)[:200]}") from None

    def _truncation(self) -> str:
        """The checkpoint's truncation, unless its model cannot take it: ``fusion`` gives 4 mel channels,
        which only a fused HTSAT accepts, and a fused HTSAT needs them for its long-clip branch."""
        configured = str(self.feature_extractor.truncation)
        fits = "fusion" if self.enable_fusion else "rand_trunc"
        if (configured == "fusion") != self.enable_fusion:
            log.warning("CLAP %r: preprocessor truncation %r does not fit enable_fusion=%s; using %r",
                        self.model_name, configured, self.enable_fusion, fits)
            return fits
        return configured

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = _weights_hash(self.weights_dir)
        return self._hash

    def params(self) -> dict[str, Any]:
        fe = self.feature_extractor
        return {
            "output": self.output,
            "normalize": self.normalize,
            "sample_rate": self.sample_rate,
            "window_samples": int(fe.nb_max_samples),
            "truncation": self.truncation,
            "padding": self.padding,
            "seed": self.seed,
            "mel": [int(fe.feature_size), int(fe.fft_window_size), int(fe.hop_length),
                    float(fe.frequency_min), float(fe.frequency_max), fe.top_db],
        }

    def to(self, device: str | torch.device) -> "ClapAudioEncoder":
        super().to(device)
        self.audio_model.to(self.device)
        self.audio_projection.to(self.device)
        return self

    def _is_longer(self, n: int) -> bool:
        """Whether the extractor treats an ``n``-sample clip as longer than the window (the ``longer``
        flag its ``_get_input_mel`` computes): for ``fusion``, a clip whose mel has exactly the window's
        frame count (at most a hop longer) is used whole."""
        window, hop = int(self.feature_extractor.nb_max_samples), int(self.feature_extractor.hop_length)
        if n <= window:
            return False
        return self.truncation != "fusion" or n // hop != window // hop

    def inputs(self, waves: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """``input_features`` and ``is_longer`` for ``ClapModel.get_audio_features``, each clip through
        the extractor alone with its own seeded windows (see the module docstring)."""
        feats, longer = [], []
        for i, w in enumerate(waves):
            w = np.asarray(w, dtype=np.float64).reshape(-1)  # the dtype the extractor gives a batch
            if w.size == 0:
                raise ValueError(f"wave {i} is empty")
            with _seeded_numpy(zlib.crc32(w.tobytes(), self.seed & 0xFFFFFFFF)):
                fe = self.feature_extractor([w], sampling_rate=self.sample_rate, truncation=self.truncation,
                                            padding=self.padding, return_tensors="np")
            feats.append(np.asarray(fe["input_features"][0], dtype=np.float32))
            longer.append([self._is_longer(w.size)])
        return {"input_features": torch.from_numpy(np.stack(feats)), "is_longer": torch.tensor(longer)}

    @torch.inference_mode()
    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        out = []
        for s in range(0, len(waves), self.batch_size):
            x = self.inputs(waves[s:s + self.batch_size])
            z = self.audio_model(input_features=x["input_features"].to(self.device),
                                 is_longer=x["is_longer"].to(self.device)).pooler_output
            if self.output == "projected":
                z = self.audio_projection(z)
            if self.normalize:
                z = nn.functional.normalize(z, dim=-1)
            out.append(z.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    def frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        return [e[None] for e in self.embed(waves)]


@register_text_encoder("clap_text")
class ClapTextEncoder(FrozenTextEncoder):
    """CLAP's text tower (RoBERTa + projection head), frozen.

    ``model``: HF id (in the local cache) or directory; ``output``: ``projected`` (``projection_dim``)
    or ``pooled`` (the text model's pooler output, ``text_config.hidden_size``); ``normalize``:
    L2-normalise; ``max_tokens``: truncation, 77 as LAION-CLAP tokenises (its captions were trained at
    that length; the HF processor does not truncate, which differs only for longer texts).
    """

    def __init__(self, model: str = "laion/clap-htsat-unfused", output: Output = "projected",
                 normalize: bool = False, max_tokens: int = 77, batch_size: int = 64,
                 cache_dir: str | None = None) -> None:
        super().__init__()
        _check_output(output)
        self.model_name, self.output, self.normalize = str(model), output, bool(normalize)
        self.max_tokens, self.batch_size, self.cache_dir = int(max_tokens), int(batch_size), cache_dir
        self.encoder_id = f"clap_text:{self.model_name}"
        net = _load_clap(self.model_name, cache_dir)
        self.text_model, self.text_projection = net.text_model, net.text_projection
        del net
        self.weights_dir = _weights_dir(self.model_name, cache_dir)
        self.tokenizer = self._load_tokenizer()
        self.dim = int(self.text_projection.linear2.out_features if output == "projected"
                       else self.text_projection.linear1.in_features)
        self._hash: str | None = None

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        # transformers 5 builds a vocabulary-less RobertaTokenizer from config.json alone (every word
        # becomes <unk>) instead of failing, so the vocabulary files are checked first
        if not any((self.weights_dir / f).is_file() for f in _TOKENIZER_FILES):
            raise EncoderUnavailableError(
                f"CLAP {self.model_name!r} has no tokenizer files ({', '.join(_TOKENIZER_FILES)}) in {self.weights_dir}")
        try:
            return AutoTokenizer.from_pretrained(self.model_name, cache_dir=self.cache_dir, local_files_only=True)
        except (OSError, ValueError, TypeError) as e:
            raise EncoderUnavailableError(
                f"CLAP {self.model_name!r} has no usable tokenizer files in "
                f"{_where(self.model_name, self.cache_dir)}: {one_line(e)[:200]}") from None

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = _weights_hash(self.weights_dir)
        return self._hash

    def params(self) -> dict[str, Any]:
        return {"output": self.output, "normalize": self.normalize, "max_tokens": self.max_tokens}

    def to(self, device: str | torch.device) -> "ClapTextEncoder":
        super().to(device)
        self.text_model.to(self.device)
        self.text_projection.to(self.device)
        return self

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        out = []
        for s in range(0, len(texts), self.batch_size):
            tok = self.tokenizer(list(texts[s:s + self.batch_size]), padding=True, truncation=True,
                                 max_length=self.max_tokens, return_tensors="pt").to(self.device)
            z = self.text_model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).pooler_output
            if self.output == "projected":
                z = self.text_projection(z)
            if self.normalize:
                z = nn.functional.normalize(z, dim=-1)
            out.append(z.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)
