"""Caption preprocessing for text-to-audio retrieval, as in the paper's code base.

The thesis builds on Primus et al.'s DCASE 2024 system, whose sentence encoder input is
``caption.lower().translate(str.maketrans("", "", string.punctuation))``: lower case, ASCII
punctuation *deleted* (not replaced by a space, so "high-pitched" -> "highpitched" and "man's" ->
"mans"). We do the same, and additionally

* delete Unicode punctuation (category ``P*``: curly quotes, en/em dashes, ellipsis), which Clotho
  v2 captions contain a few of and which ``string.punctuation`` misses, so that "’" and "'" give
  the same text;
* collapse runs of whitespace to one space and strip the ends, so that a caption with a double
  space or a trailing newline tokenises like its clean twin.

Both captions in a pair like "A dog barks." / "a dog barks" therefore map to the same string,
which matters for the "5 distinct captions" checks and for text-embedding caches keyed by text.
"""

from __future__ import annotations

import re
import string
import unicodedata

_ASCII_PUNCT = str.maketrans("", "", string.punctuation)
_WHITESPACE = re.compile(r"\s+")


def _drop_unicode_punct(s: str) -> str:
    return "".join(ch for ch in s if not unicodedata.category(ch).startswith("P"))


def preprocess_caption(s: str) -> str:
    """Lower-case, delete punctuation, collapse whitespace: the text the text encoder sees."""
    s = s.lower().translate(_ASCII_PUNCT)
    s = _drop_unicode_punct(s)
    return _WHITESPACE.sub(" ", s).strip()
