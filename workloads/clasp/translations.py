"""Translations of a corpus' transcripts: the queries of the paper's multilingual stage.

The paper (sec. 3.3, Stage 4) translated its test sentences into French, German, Chinese and
Persian with SMaLL-100 and queried the English speech with them. Here a translation lives in a
plain file per language, so it is made once (on a GPU, by :func:`translate_manifest`), can be
inspected, corrected or replaced by human translations, and is then read into the manifest by
every later build (:func:`attach_translations`):

    <dir>/<lang>.tsv      UTF-8, header line ``id<TAB>text``, one row per translated text

``id`` is the manifest item id; an item with several texts has several rows, in order. Tabs and
newlines inside a text are written as spaces. An empty ``text`` cell records "translated, came
out empty" (so a resumed run does not retry it) and counts as no translation when read. The
paper adapters read ``<data_root>/translations/`` (option ``translations``); the local corpus
writes its generated translations in the same format into its build directory.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from orchestrator.corpus import ManifestError

HEADER = ("id", "text")
_SPACE = re.compile(r"\s+")
_LANG_TOKEN = re.compile(r"__[a-z]{2,3}__")  # M2M100 language tokens, in case decode keeps them
_SHOW = 3  # how many offending ids an error names


def tsv_path(directory: Path, lang: str) -> Path:
    return Path(directory) / f"{lang}.tsv"


def clean_text(text: str) -> str:
    """One line of text: tabs/newlines and runs of whitespace become one space."""
    return _SPACE.sub(" ", text).strip()


# ------------------------------------------------------------------------------------- reading


def read_translations(path: Path) -> dict[str, list[str]]:
    """``id -> [texts]`` from one translations TSV (empty cells kept as "" to be counted)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"translations file not found: {path} (TSV with header 'id<TAB>text')")
    out: dict[str, list[str]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as f:
            header = f.readline().rstrip("\r\n").lstrip("\ufeff")
            if tuple(header.split("\t")) != HEADER:
                raise ManifestError(f"{path}: first line must be the header 'id<TAB>text', got {header[:60]!r}")
            for n, line in enumerate(f, start=2):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                parts = line.split("\t")
                if len(parts) != 2 or not parts[0]:
                    raise ManifestError(f"{path}:{n}: expected 2 tab-separated columns (id, text), got {len(parts)}")
                out.setdefault(parts[0], []).append(parts[1].strip())
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e})") from None
    return out


@dataclass
class TranslationReport:
    """Per language: how many items got at least one translation and how many got none."""

    n_items: int = 0
    translated: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.translated:
            return "no translations"
        return ", ".join(f"{lang} {self.translated[lang]}/{self.n_items}" for lang in self.translated)


def attach_translations(
    items: Sequence[dict[str, Any]],
    directory: Path,
    languages: Iterable[str],
    *,
    target: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> TranslationReport:
    """Put each language's texts into ``translations[lang]`` of each item's meta dict.

    ``items`` are row dicts with an ``id``; ``target(item)`` returns the dict that receives the
    ``translations`` key (default: ``item.setdefault("meta_obj", {})``, which the builders turn
    into the JSON ``meta`` column). An id in a file that no item has is an error (a translation
    file made for another build would otherwise attach nothing, silently); items without a
    translation are counted, never dropped.
    """
    pick = target or (lambda it: it.setdefault("_meta", {}))
    by_id = {it["id"]: it for it in items}
    report = TranslationReport(n_items=len(items))
    for lang in languages:
        path = tsv_path(directory, lang)
        table = read_translations(path)
        unknown = sorted(set(table) - set(by_id))
        if unknown:
            raise ManifestError(
                f"{path}: {len(unknown)} id(s) not in the manifest, e.g. {', '.join(map(repr, unknown[:_SHOW]))} "
                f"(a translation file made for another corpus or build?)"
            )
        done = 0
        for item_id, texts in table.items():
            kept = [t for t in texts if t]
            if kept:
                pick(by_id[item_id]).setdefault("translations", {})[lang] = kept
                done += 1
        report.translated[lang] = done
        report.missing[lang] = len(items) - done
        report.sources[lang] = str(path)
    return report


def available_languages(directory: Path | None, languages: Iterable[str]) -> list[str]:
    """The languages among ``languages`` that have a TSV in ``directory``."""
    if directory is None or not Path(directory).is_dir():
        return []
    return [lang for lang in languages if tsv_path(directory, lang).is_file()]


def resolve_languages(option: Any, directory: Path | None, corpus: str) -> list[str]:
    """A paper adapter's ``translations`` option: "auto" (default: whichever of de/fr/fa/zh has a
    TSV in ``directory``), a list of languages (each must then have its file: a missing one is an
    error at read time) or [] / false (none)."""
    from workloads.clasp import TRANSLATION_LANGUAGES

    if option in (None, "auto"):
        return available_languages(directory, TRANSLATION_LANGUAGES)
    if option is False or option == []:
        return []
    if isinstance(option, str) or not isinstance(option, (list, tuple)) or not all(isinstance(x, str) for x in option):
        raise ManifestError(
            f"{corpus}: option translations must be 'auto', a list of language codes or [], got {option!r}"
        )
    return list(option)


# ------------------------------------------------------------------------------------- writing


def write_translations(path: Path, rows: Iterable[tuple[str, str]]) -> Path:
    """Write a complete TSV atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        f.write("\t".join(HEADER) + "\n")
        for item_id, text in rows:
            f.write(f"{item_id}\t{clean_text(text)}\n")
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------- producing

Convention = Literal["m2m100", "small100"]


def _convention(model: str, convention: Convention | None) -> Convention:
    if convention is not None:
        if convention not in ("m2m100", "small100"):
            raise ValueError(f"convention must be 'm2m100' or 'small100', got {convention!r}")
        return convention
    return "small100" if "small100" in str(model).lower().replace("-", "") else "m2m100"


def lang_token_id(tokenizer: Any, lang: str) -> int:
    """The id of the language token ``__<lang>__`` (M2M100's spelling; SMaLL-100 uses the same)."""
    if hasattr(tokenizer, "get_lang_id"):
        try:
            return int(tokenizer.get_lang_id(lang))
        except KeyError:
            pass
    token = f"__{lang}__"
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == tokenizer.unk_token_id:
        raise ManifestError(f"the translation tokenizer has no language token {token!r}")
    return int(tid)


def encode_sources(tokenizer: Any, texts: Sequence[str], lead_lang: str, max_length: int) -> dict[str, Any]:
    """Tokenise with the language token first, the way the model was trained.

    M2M100 puts the *source* language token first and forces the target token as the first
    generated one; SMaLL-100 puts the *target* language token first on the source side and
    generates freely (its tokenizer sets ``tgt_lang``). A tokenizer with ``src_lang`` (M2M100's)
    adds the token itself; for any other tokenizer (a plain fast tokenizer) it is prepended here.
    """
    lead = lang_token_id(tokenizer, lead_lang)
    if hasattr(tokenizer, "src_lang"):
        tokenizer.src_lang = lead_lang
    ids = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    ids = [seq if seq[:1] == [lead] else [lead, *seq][:max_length] for seq in ids]
    return tokenizer.pad({"input_ids": ids}, return_tensors="pt")


def translate_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    tgt_lang: str,
    *,
    src_lang: str = "en",
    convention: Convention = "m2m100",
    batch_size: int = 16,
    num_beams: int = 4,
    max_length: int = 256,
) -> list[str]:
    """Translate with a loaded seq2seq model; greedy/beam search only, so it is deterministic."""
    import torch

    device = next(model.parameters()).device
    forced = lang_token_id(tokenizer, tgt_lang) if convention == "m2m100" else None
    lead = src_lang if convention == "m2m100" else tgt_lang
    out: list[str] = []
    for start in range(0, len(texts), batch_size):
        batch = encode_sources(tokenizer, texts[start : start + batch_size], lead, max_length)
        batch = {k: v.to(device) for k, v in batch.items()}
        kwargs: dict[str, Any] = {"num_beams": num_beams, "do_sample": False, "max_new_tokens": max_length}
        if forced is not None:
            kwargs["forced_bos_token_id"] = forced
        with torch.no_grad():
            generated = model.generate(**batch, **kwargs)
        decoded = tokenizer.batch_decode(generated, skip_special_tokens=True)
        out += [clean_text(_LANG_TOKEN.sub(" ", t)) for t in decoded]
    return out


def _read_partial(path: Path) -> dict[str, list[str]]:
    """Rows a killed run already wrote (a torn last line is dropped and redone)."""
    if not path.exists():
        return {}
    out: dict[str, list[str]] = {}
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]
    for line in lines[1:]:
        parts = line.split("\t")
        if len(parts) == 2 and parts[0]:
            out.setdefault(parts[0], []).append(parts[1])
    return out


def translate_manifest(
    items: Sequence[dict[str, Any]],
    model: str | Path,
    languages: Sequence[str],
    out_dir: Path,
    *,
    src_lang: str = "en",
    convention: Convention | None = None,
    batch_size: int = 16,
    num_beams: int = 4,
    max_length: int = 256,
    device: str | None = None,
    load: Callable[[str], tuple[Any, Any]] | None = None,
) -> dict[str, Path]:
    """Produce ``<out_dir>/<lang>.tsv`` for each language, once.

    ``items``: manifest rows (``id``, ``texts``); every text is translated. ``model``: a Hugging
    Face id or local folder of an M2M100-style model (``AutoModelForSeq2SeqLM`` + tokenizer with
    ``__xx__`` language tokens), e.g. ``alirezamsh/small100`` (the paper's; ``convention`` is then
    inferred as ``small100``) or ``facebook/m2m100_418M``. A language whose TSV already covers
    every item is skipped without loading the model; an interrupted run resumes from
    ``.<lang>.tsv.partial`` (rows are appended per batch), and the final file appears atomically.
    Identical source texts are translated once.
    """
    out_dir = Path(out_dir)
    conv = _convention(str(model), convention)
    wanted = [(it["id"], t) for it in items for t in it["texts"]]
    expected = {it["id"]: len(it["texts"]) for it in items}
    ids = set(expected)
    todo = []
    paths: dict[str, Path] = {}
    for lang in languages:
        path = tsv_path(out_dir, lang)
        paths[lang] = path
        if path.exists() and ids <= set(read_translations(path)):
            continue
        todo.append(lang)
    if not todo:
        return paths

    loaded = (load or _load_model)(str(model))
    mdl, tok = loaded
    if device is not None:
        mdl = mdl.to(device)
    mdl.eval()
    for lang in todo:
        t0 = time.perf_counter()
        partial = out_dir / f".{lang}.tsv.partial"
        done = {i for i, ts in _read_partial(partial).items() if len(ts) >= expected.get(i, len(ts) + 1)}
        out_dir.mkdir(parents=True, exist_ok=True)
        pending = [(i, t) for i, t in wanted if i not in done]
        if not partial.exists() or partial.stat().st_size == 0:
            partial.write_text("\t".join(HEADER) + "\n", encoding="utf-8")
        elif not partial.read_text(encoding="utf-8").endswith("\n"):  # drop a torn last line
            text = partial.read_text(encoding="utf-8")
            partial.write_text(text[: text.rfind("\n") + 1], encoding="utf-8")
        cache: dict[str, str] = {}
        step = max(batch_size, 1) * 8
        with partial.open("a", encoding="utf-8", newline="") as f:
            for start in range(0, len(pending), step):
                chunk = pending[start : start + step]
                new = sorted({t for _, t in chunk if t not in cache})
                for src, tgt in zip(new, translate_texts(mdl, tok, new, lang, src_lang=src_lang, convention=conv,
                                                        batch_size=batch_size, num_beams=num_beams,
                                                        max_length=max_length), strict=True):  # fmt: skip
                    cache[src] = tgt
                # whole items only, so a resumed run never sees half an item's texts
                f.write("".join(f"{i}\t{clean_text(cache[t])}\n" for i, t in chunk))
                f.flush()
        final = _read_partial(partial)  # an item redone after a torn write: its last rows count
        write_translations(paths[lang], ((i, t) for i, n in expected.items() for t in final.get(i, [])[-n:]))
        partial.unlink()
        print(f"[translations] {lang}: {len(wanted)} text(s) of {len(items)} item(s) with {model} "
              f"({conv}) in {time.perf_counter() - t0:.1f} s -> {paths[lang]}")  # fmt: skip
    return paths


def _load_model(model: str) -> tuple[Any, Any]:
    """``AutoModelForSeq2SeqLM`` + ``AutoTokenizer`` from an id or folder; one-line error when it
    cannot be had (no network here: the weights must be in the HF cache or the folder)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    if (Path(model).is_absolute() or model.startswith(("./", "../", "~"))) and not Path(model).expanduser().is_dir():
        raise ManifestError(f"translation model folder not found: {model}")

    def first_line(e: Exception) -> str:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__

    try:
        tok = AutoTokenizer.from_pretrained(model)
    except Exception as e:  # OSError (missing files), ValueError (unknown class), ImportError (backend)
        # SMaLL-100's config names its own SMALL100Tokenizer (a .py file in its repo, not in
        # transformers); its files are M2M100's (vocab.json + sentencepiece.bpe.model), and the
        # "small100" convention in encode_sources does what that class adds.
        try:
            from transformers import M2M100Tokenizer

            tok = M2M100Tokenizer.from_pretrained(model)
        except Exception:
            raise ManifestError(f"cannot load the tokenizer of translation model {model!r}: {first_line(e)}") from None
    try:
        mdl = AutoModelForSeq2SeqLM.from_pretrained(model)
    except Exception as e:
        raise ManifestError(f"cannot load translation model {model!r}: {first_line(e)}") from None
    if torch.cuda.is_available():
        mdl = mdl.to("cuda")
    return mdl, tok
