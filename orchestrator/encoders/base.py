"""The encoder contract and registry.

An encoder turns a list of mono float32 waveforms (at ``sample_rate``) into embeddings. The
extraction stage only needs :meth:`AudioEncoder.embed` (pooled) or :meth:`AudioEncoder.frames`
(frame-level, for attention pooling); its cache key uses ``encoder_id``, ``weights_hash()`` and
``params()``, so anything that changes the output must appear in one of them.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch


T = TypeVar("T")


class EncoderUnavailableError(RuntimeError):
    """Weights or packages for an encoder are missing; the message says what and where."""


class AudioEncoder(ABC):
    encoder_id: str  # stable, human-readable id, e.g. "whisper-tiny.en"
    sample_rate: int  # input rate the encoder expects
    dim: int  # embedding size (pooled and per frame)

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    @abstractmethod
    def weights_hash(self) -> str:
        """Hash of the weights actually loaded (hex); "none" for parameter-free DSP features."""

    def params(self) -> dict[str, Any]:
        """Settings that change the output (pooling, layer, feature params)."""
        return {}

    @abstractmethod
    def frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Frame-level outputs, one ``[T_i, dim]`` float32 array per wave (no padding frames)."""

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """Mean over each wave's own frames: ``[B, dim]`` float32."""
        return np.stack([f.mean(axis=0) for f in self.frames(waves)]).astype(np.float32)

    # -- fine-tuning contract (encoders that can train inside Train workers) --------------------
    def features(self, wave: np.ndarray) -> torch.Tensor:
        """Model input features of one wave (e.g. log-mel ``[n_mels, T]``): what the ``finetune``
        regime caches, so decoding and feature computation happen once, not every epoch."""
        raise NotImplementedError(f"{type(self).__name__} cannot be fine-tuned (no features())")

    def forward_features(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Frames ``[T_i, dim]`` from cached features, with gradients (a padded batch inside)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be fine-tuned (no forward_features())")

    def to(self, device: str | torch.device) -> "AudioEncoder":
        self.device = torch.device(device)
        return self


def one_line(err: BaseException) -> str:
    """First line of an exception's message (for one-line user errors)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def read_checkpoint_tensors(path: Path, what: str, hint: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file's state dict, read with ``torch.load(weights_only=True)``.

    Accepts a bare state dict or one wrapped under ``state_dict`` (Lightning) or ``model``; raises
    :class:`EncoderUnavailableError` (one line naming ``what`` and the file) when the file is
    missing, needs arbitrary unpickling, or holds no state dict. ``hint`` follows "not found".
    """
    if not path.is_file():
        raise EncoderUnavailableError(f"{what} checkpoint not found: {path}{hint}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError for non-tensor objects, RuntimeError for corrupt zips
        raise EncoderUnavailableError(
            f"cannot read {what} checkpoint {path} with torch.load(weights_only=True): {one_line(e)}"
            " (re-save its state_dict with plain tensors)"
        ) from None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise EncoderUnavailableError(f"{what} checkpoint {path} holds no state_dict")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_strict(model: torch.nn.Module, sd: Mapping[str, torch.Tensor], path: Path, what: str) -> None:
    """Load every tensor of ``model`` from ``sd`` and nothing else, or fail in one line."""
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise EncoderUnavailableError(
            f"{path} does not match {what}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


def checkpoint_file(path: str | Path) -> Path:
    """A weights file given by path or URI (``s3://...``): on a cluster, encoder checkpoints live in
    the shared bucket and each node fetches its copy once (``orchestrator.storage.local_copy``)."""
    from orchestrator import storage

    if storage.is_uri(str(path)):
        try:
            return storage.local_copy(str(path))
        except (FileNotFoundError, OSError) as e:
            raise EncoderUnavailableError(f"checkpoint not found: {path} ({one_line(e)})") from None
    return Path(path).expanduser()


def hash_files(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


class Registry(Generic[T]):
    """Named factories of one kind (audio encoders, text encoders, transcribers): what a config
    string like ``encoder: ge2e`` builds. Building imports ``orchestrator.encoders`` first, which
    registers the built-in ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            return factory

        return deco

    def build(self, name: str, **kwargs: Any) -> T:
        from orchestrator import encoders as _  # noqa: F401  (registers the built-in ones)

        if name not in self._factories:
            raise EncoderUnavailableError(f"unknown {self.kind} {name!r}; known: {sorted(self._factories)}")
        return self._factories[name](**kwargs)

    def known(self) -> list[str]:
        from orchestrator import encoders as _  # noqa: F401

        return sorted(self._factories)


AUDIO_ENCODERS: Registry[AudioEncoder] = Registry("encoder")
register_encoder = AUDIO_ENCODERS.register
build_encoder = AUDIO_ENCODERS.build
known_encoders = AUDIO_ENCODERS.known
