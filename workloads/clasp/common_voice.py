"""Paper profile: Mozilla Common Voice English (``clasp_common_voice``), from a release folder.

The paper used Common Voice v4 (55,689 English sentences with their recordings, Table 1). A
Common Voice release unpacks to ``cv-corpus-<version>/<locale>/`` holding tab-separated tables and
a ``clips/`` folder of MP3s; this adapter reads the ``validated.tsv`` table (every clip the
community validated; the release's train/dev/test tables are subsets of it), whose header starts
with ``client_id, path, sentence`` (v4 adds up_votes, down_votes, age, gender, accent; later
releases add locale, segment, variant, sentence_id, ...; extra columns are ignored). Early
releases list ``path`` without the ``.mp3`` extension; both spellings are accepted.

Looked for, in order (the first with a ``validated.tsv`` is read): ``data_root``,
``data_root/<language>``, ``data_root/<any folder>/<language>`` (the release folder itself).

Rows: ``id`` = ``common_voice/<clip file name>``; ``texts`` = [the ``sentence`` as written] (the
authors lower-cased it and stripped punctuation before encoding; that is the workload's text
preprocessing, not the corpus'); ``speaker`` = ``client_id``; ``label`` = "common_voice" (no topic
categories); ``language`` = the option ``language`` (default "en"). Split: 80/10/10, seeded,
grouped by sentence, so a sentence read by several people never crosses splits. Option
``n_items`` keeps a seeded sample of that many clips (the paper's 55,689 out of a much larger
English release). Translations: ``<data_root>/translations/<lang>.tsv`` (option ``translations``).

MP3 decoding needs libsndfile >= 1.1 (soundfile wheels >= 0.12 bundle 1.2); the build checks it
once and says so instead of failing on every clip. A clip listed in ``validated.tsv`` but absent
from ``clips/``, or whose header cannot be read, does not stop the build (one absent clip of a
1.7-million-row table must not): it is kept with duration 0 and named in the build log, for the
core's bad-item check before extraction (:class:`~orchestrator.corpus.AudioCheck`), which stops
with one line naming it or, with ``--skip-bad-items``, quarantines and records it. A missing
``clips/`` folder, or a split the grouping leaves empty on a small table, is an error.
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path
from typing import Any

import soundfile as sf

from orchestrator.corpus import (
    CorpusRequest,
    ManifestError,
    AudioCheck,
    build_dir,
    check_splits,
    input_stats,
    manifest_table,
    register_corpus,
    seeded_rng,
    write_manifest,
)
from workloads.clasp import assign_splits, finalize_meta
from workloads.clasp.translations import attach_translations, resolve_languages

CORPUS_NAME = "clasp_common_voice"
REQUIRED_COLUMNS = ("client_id", "path", "sentence")
CV_SR = 48000  # Common Voice MP3s are 48 kHz (early releases: 44.1/48 kHz)
_NORM = re.compile(r"[^\w]+")
_SHOW = 3

csv.field_size_limit(1 << 24)


def find_locale_dir(data_root: Path | None, language: str) -> Path:
    if data_root is None:
        raise ManifestError(f"{CORPUS_NAME} needs a data root holding a Common Voice release "
                            f"(<locale>/validated.tsv + clips/); none was given")  # fmt: skip
    root = Path(data_root)
    candidates = [root, root / language]
    if root.is_dir():
        candidates += sorted(d / language for d in root.iterdir() if d.is_dir() and d.name != language)
    for d in candidates:
        if (d / "validated.tsv").is_file():
            return d
    where = f"{root} (which does not exist)" if not root.exists() else str(root)
    shown = [str(root), str(root / language), f"{root}/*/{language}"]
    raise ManifestError(f"Common Voice ({language}) not found under {where}: no validated.tsv in {', '.join(shown)} "
                        f"(extract cv-corpus-<version>-{language}.tar.gz)")  # fmt: skip


def read_validated(path: Path) -> tuple[list[dict[str, str]], int]:
    """The rows of ``validated.tsv`` with a clip path and a non-empty sentence, and how many rows
    had an empty sentence (skipped, and counted in the log)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise ManifestError(
                    f"{path}: not a Common Voice table, missing column(s) {missing}; header is {header[:8]}"
                )
            rows = list(reader)
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e})") from None
    out, empty, seen = [], 0, set()
    for n, r in enumerate(rows, start=2):
        clip = (r.get("path") or "").strip()
        if not clip:
            raise ManifestError(f"{path}:{n}: empty path")
        if not (r.get("sentence") or "").strip():
            empty += 1
            continue
        if clip in seen:
            raise ManifestError(f"{path}: clip {clip!r} appears twice (second time on line {n})")
        seen.add(clip)
        out.append({"client_id": (r.get("client_id") or "").strip(), "path": clip, "sentence": r["sentence"].strip()})
    if not out:
        raise ManifestError(f"{path}: no rows with a sentence")
    return out, empty


def resolve_clips(locale_dir: Path, rows: list[dict[str, str]]) -> list[Path]:
    clips = locale_dir / "clips"
    if not clips.is_dir():
        raise ManifestError(f"Common Voice clips folder missing: {clips} (validated.tsv found in {locale_dir})")
    out = []
    for r in rows:
        p = clips / r["path"]
        if not p.is_file() and not p.suffix:
            p = p.with_name(p.name + ".mp3")
        out.append(p)  # a missing clip is kept, for the core's bad-item check (see the module doc)
    return out


def check_mp3_support(paths: list[Path]) -> None:
    if any(p.suffix.lower() == ".mp3" for p in paths) and "MP3" not in sf.available_formats():
        raise ManifestError(f"soundfile's libsndfile {sf.__libsndfile_version__} cannot read MP3 (needs >= 1.1.0); "
                            "pip install -U 'soundfile>=0.12'")  # fmt: skip


def sentence_key(text: str) -> str:
    """Spelling-insensitive identity of a sentence (case, punctuation, spacing)."""
    return _NORM.sub(" ", text.lower()).strip()


def resolve_options(options: dict[str, Any]) -> dict[str, Any]:
    known = {"seed", "n_items", "language", "translations"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ManifestError(f"{CORPUS_NAME}: unknown option(s) {unknown}; known: {sorted(known)}")
    n_items = options.get("n_items")
    if n_items is not None and int(n_items) < 3:
        raise ManifestError(f"{CORPUS_NAME}: n_items must be >= 3 (one per split) or absent, got {n_items}")
    return {"seed": int(options.get("seed", 0)), "n_items": None if n_items is None else int(n_items),
            "language": str(options.get("language", "en"))}  # fmt: skip


@register_corpus(CORPUS_NAME)
def build_common_voice(req: CorpusRequest) -> Path:
    """Manifest of a Common Voice release's validated clips (options: seed, n_items, language,
    translations)."""
    cfg = resolve_options(req.options)
    locale_dir = find_locale_dir(req.data_root, cfg["language"])
    table = locale_dir / "validated.tsv"
    rows, n_empty = read_validated(table)
    if cfg["n_items"] is not None and cfg["n_items"] < len(rows):
        order = sorted(range(len(rows)), key=lambda i: rows[i]["path"])
        pick = seeded_rng(CORPUS_NAME, "sample", cfg["seed"]).permutation(len(order))[: cfg["n_items"]]
        rows = [rows[order[i]] for i in sorted(pick)]
    paths = resolve_clips(locale_dir, rows)
    check_mp3_support(paths)
    tdir = Path(req.data_root) / "translations"
    langs = resolve_languages(req.options.get("translations"), tdir, CORPUS_NAME)
    tfiles = [tdir / f"{lang}.tsv" for lang in langs if (tdir / f"{lang}.tsv").is_file()]
    key = {"corpus": CORPUS_NAME, **cfg, "languages": langs, "inputs": input_stats([table, *paths, *tfiles])}
    manifest = build_dir(Path(req.work_dir) / CORPUS_NAME, key) / "manifest.parquet"
    if manifest.exists():
        return manifest

    t0 = time.perf_counter()
    ids = [f"common_voice/{p.name}" for p in paths]
    splits = assign_splits(ids, cfg["seed"], CORPUS_NAME, groups=[sentence_key(r["sentence"]) for r in rows])
    check_splits([{"split": s} for s in splits.values()], f"{CORPUS_NAME} ({table})", "clip",
                 "; the split is grouped by sentence: too few distinct sentences", req)  # fmt: skip
    out, audio = [], AudioCheck(CORPUS_NAME)
    for r, item, path in zip(rows, ids, paths, strict=True):
        sr, duration = audio.info(path, CV_SR)
        out.append({"id": item, "split": splits[item], "audio_path": str(path.resolve()), "sr": sr, "offset": 0.0,
                    "duration": duration, "texts": [r["sentence"]], "label": "common_voice",
                    "speaker": r["client_id"] or None, "language": cfg["language"]})  # fmt: skip
    report = attach_translations(out, tdir, langs)
    finalize_meta(out)
    write_manifest(manifest_table(out), manifest)
    counts = ", ".join(f"{s} {sum(r['split'] == s for r in out)}" for s in ("train", "val", "test"))
    skipped = f"; {n_empty} row(s) with an empty sentence skipped" if n_empty else ""
    print(f"[{CORPUS_NAME}] {len(out)} clips ({counts}) of {len({sentence_key(r['sentence']) for r in rows})} "
          f"sentences from {table}{skipped}; translations {report.summary()} in {time.perf_counter() - t0:.1f} s "
          f"-> {manifest}")  # fmt: skip
    audio.log(_SHOW)
    return manifest
