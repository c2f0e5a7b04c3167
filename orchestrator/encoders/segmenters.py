"""Word segmentation in front of a frozen text encoder (``text_encoder: segmented``).

The speaker-text paper's Japanese pipeline (Fig. 2, footnote 9) re-segments every prompt with
Juman++ because its text encoder, ``ku-nlp/bart-large-japanese``, was trained on Juman++-segmented
text (its model card asks for space-separated words). The step belongs to the text encoder, so it
is a wrapper around any registered text encoder, and which segmenter ran is part of the view's
cache key (``params()``):

* ``jumanpp``: the Juman++ binary (``jumanpp --segment``, one line per text), found on ``PATH`` or
  given by ``binary``; not on PyPI, so where it is absent this says so in one line;
* ``script_runs``: this project's stand-in with no dependency: a cut wherever the script changes
  (kanji, hiragana, katakana, Latin letters and digits), punctuation as tokens of its own. It
  finds most content-word / particle boundaries of slot-filled prompts ("低い 声 の 男性") but not
  those inside one script (okurigana stay on their stems, particle runs stay joined): declared
  wherever it runs.
"""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from orchestrator.encoders.base import EncoderUnavailableError, Registry, one_line
from orchestrator.encoders.text import FrozenTextEncoder, build_text_encoder, register_text_encoder


class Segmenter(ABC):
    name: str

    @abstractmethod
    def segment(self, texts: list[str]) -> list[str]:
        """Each text as its words joined by single spaces."""

    def params(self) -> dict[str, Any]:
        return {"segmenter": self.name}


SEGMENTERS: Registry[Segmenter] = Registry("text segmenter")


@SEGMENTERS.register("jumanpp")
class JumanppSegmenter(Segmenter):
    name = "jumanpp"

    def __init__(self, binary: str = "jumanpp", timeout_s: float = 600.0) -> None:
        path = shutil.which(binary)
        if path is None:
            raise EncoderUnavailableError(
                f"segmenter 'jumanpp' needs the Juman++ binary ({binary!r} is not on PATH; build it from "
                "https://github.com/ku-nlp/jumanpp or pass segmenter_params={binary: /path/to/jumanpp}); "
                "without it use the declared stand-in segmenter: script_runs")
        self.binary, self.timeout_s = path, float(timeout_s)
        version = self._run(["--version"], "").strip().splitlines()
        self.version = version[0] if version else "unknown"

    def _run(self, args: list[str], stdin: str) -> str:
        try:
            done = subprocess.run([self.binary, *args], input=stdin, capture_output=True, text=True,
                                  timeout=self.timeout_s, check=True)
        except subprocess.CalledProcessError as e:
            raise EncoderUnavailableError(f"{self.binary} {' '.join(args)} failed (exit {e.returncode}): "
                                          f"{one_line(RuntimeError(e.stderr or ''))}") from None
        except (OSError, subprocess.TimeoutExpired) as e:
            raise EncoderUnavailableError(f"{self.binary} {' '.join(args)} failed: {one_line(e)}") from None
        return done.stdout

    def segment(self, texts: list[str]) -> list[str]:
        # one text per line: a newline inside a text would split it in two
        lines = [" ".join(t.split()) for t in texts]
        out = self._run(["--segment"], "".join(f"{line}\n" for line in lines)).splitlines()
        if len(out) != len(lines):
            raise EncoderUnavailableError(f"{self.binary} --segment returned {len(out)} lines for {len(lines)} texts")
        return [" ".join(o.split()) for o in out]

    def params(self) -> dict[str, Any]:
        return {"segmenter": self.name, "segmenter_version": self.version}


def _script(ch: str) -> str:
    """The run class of one character: kanji, hiragana, katakana, word (Latin letters, digits), or
    punct (anything else, each its own token)."""
    code = ord(ch)
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or ch in "々〆ヶ":
        return "kanji"
    if 0x3041 <= code <= 0x309F:
        return "hiragana"
    if 0x30A0 <= code <= 0x30FF or 0xFF66 <= code <= 0xFF9F:  # the long-vowel mark ー is in this block
        return "katakana"
    if unicodedata.category(ch)[0] in ("L", "N"):
        return "word"
    return "punct"


@SEGMENTERS.register("script_runs")
class ScriptRunSegmenter(Segmenter):
    name = "script_runs"

    def segment(self, texts: list[str]) -> list[str]:
        out = []
        for text in texts:
            tokens: list[str] = []
            prev = ""
            for ch in unicodedata.normalize("NFKC", text):
                if ch.isspace():
                    prev = ""
                    continue
                kind = _script(ch)
                if kind == prev and kind != "punct":
                    tokens[-1] += ch
                else:
                    tokens.append(ch)
                prev = kind
            out.append(" ".join(tokens))
        return out


@register_text_encoder("segmented")
class SegmentedTextEncoder(FrozenTextEncoder):
    """Any registered text encoder (``encoder`` with ``params``) fed segmented text."""

    def __init__(self, segmenter: str, encoder: str, params: dict[str, Any] | None = None,
                 segmenter_params: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.segmenter = SEGMENTERS.build(segmenter, **(segmenter_params or {}))
        self.inner = build_text_encoder(encoder, **(params or {}))
        self.encoder_id, self.dim = self.inner.encoder_id, self.inner.dim

    def weights_hash(self) -> str:
        return self.inner.weights_hash()

    def params(self) -> dict[str, Any]:
        return {**self.inner.params(), **self.segmenter.params()}

    def to(self, device: Any) -> "SegmentedTextEncoder":
        super().to(device)
        self.inner.to(device)
        return self

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_texts(self.segmenter.segment(list(texts)))
