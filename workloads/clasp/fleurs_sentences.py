"""Paper profile: FLEURS sentences (``clasp_fleurs``), from the official on-disk layout.

The paper used FLEURS English (``google/fleurs``, config ``en_us``: 3,643 recordings, Table 1) with
the normalised ``transcription`` as the text (its extraction notebook), one item per recording.
The layout and TSV parsing are the QbE adapter's (:mod:`workloads.qbe.fleurs`, reused here)::

    <data_root>/[data/]<code>/{train,dev,test}.tsv        code: en_us (option language, default "en")
    <data_root>/[data/]<code>/audio/{train,dev,test}/<file_name>.wav

Rows: ``id`` = ``fleurs/<file_name>``; ``texts`` = [the normalised transcription]; ``label`` =
"fleurs" (no topic categories); ``speaker`` empty (FLEURS has no speaker ids). Split (option
``split``): ``random`` (default) = 80/10/10, seeded and grouped by sentence, so the several
readings of one sentence never cross splits; ``official`` = FLEURS' own train/dev/test (the
paper kept those, 2602/394/647 for en_us, and took the rest of its 80/10/10 from Speech Brown).
Translations: ``<data_root>/translations/<lang>.tsv`` (option ``translations``).

A recording the TSVs list but the audio folder lacks, or whose header cannot be read, is kept
(duration 0) and named in the build log, for the core's bad-item check before extraction
(:class:`~orchestrator.corpus.AudioCheck`: one line naming it, or quarantined and recorded with
``--skip-bad-items``); a split's whole audio folder missing, or a split left empty, is an error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from orchestrator.corpus import (
    AudioCheck,
    CorpusRequest,
    ManifestError,
    build_dir,
    check_splits,
    input_stats,
    manifest_table,
    register_corpus,
    write_manifest,
)
from workloads.clasp import assign_splits, finalize_meta
from workloads.clasp.translations import attach_translations, resolve_languages
from workloads.qbe.fleurs import FLEURS_CODES, FLEURS_SPLITS, find_language_dir, read_fleurs_tsvs

CORPUS_NAME = "clasp_fleurs"
OFFICIAL_SPLITS = {"train": "train", "dev": "val", "test": "test"}
FLEURS_SR = 16000
_SHOW = 3


def resolve_options(options: dict[str, Any]) -> dict[str, Any]:
    known = {"seed", "language", "split", "translations"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ManifestError(f"{CORPUS_NAME}: unknown option(s) {unknown}; known: {sorted(known)}")
    cfg = {"seed": int(options.get("seed", 0)), "language": str(options.get("language", "en")),
           "split": str(options.get("split", "random"))}  # fmt: skip
    if cfg["language"] not in FLEURS_CODES:
        raise ManifestError(
            f"{CORPUS_NAME}: unsupported language {cfg['language']!r}; supported: {sorted(FLEURS_CODES)}"
        )
    if cfg["split"] not in ("random", "official"):
        raise ManifestError(f"{CORPUS_NAME}: option split must be 'random' or 'official', got {cfg['split']!r}")
    return cfg


@register_corpus(CORPUS_NAME)
def build_fleurs_sentences(req: CorpusRequest) -> Path:
    """Manifest of FLEURS sentence recordings (options: seed, language, split, translations)."""
    cfg = resolve_options(req.options)
    code = FLEURS_CODES[cfg["language"]]
    lang_dir = find_language_dir(req.data_root, code, CORPUS_NAME)
    utts = read_fleurs_tsvs(lang_dir)
    if not utts:
        raise ManifestError(f"{lang_dir}: the FLEURS TSVs list no recordings")
    names = sorted(utts)
    tdir = Path(req.data_root) / "translations"  # type: ignore[arg-type]
    langs = resolve_languages(req.options.get("translations"), tdir, CORPUS_NAME)
    tsvs = [lang_dir / f"{s}.tsv" for s in FLEURS_SPLITS if (lang_dir / f"{s}.tsv").exists()]
    tfiles = [tdir / f"{lang}.tsv" for lang in langs if (tdir / f"{lang}.tsv").is_file()]
    key = {"corpus": CORPUS_NAME, **cfg, "languages": langs,
           "inputs": input_stats([*tsvs, *(utts[n].audio for n in names), *tfiles])}  # fmt: skip
    manifest = build_dir(Path(req.work_dir) / CORPUS_NAME, key) / "manifest.parquet"
    if manifest.exists():
        return manifest

    t0 = time.perf_counter()
    ids = [f"fleurs/{n}" for n in names]
    if cfg["split"] == "official":
        splits = {i: OFFICIAL_SPLITS[utts[n].split] for i, n in zip(ids, names, strict=True)}
    else:
        groups = [utts[n].transcription.strip().lower() for n in names]
        splits = assign_splits(ids, cfg["seed"], CORPUS_NAME, groups=groups)
    check_splits([{"split": s} for s in splits.values()], f"{CORPUS_NAME} ({lang_dir}, {cfg['split']} split)",
                 "recording", req=req)  # fmt: skip
    rows, audio = [], AudioCheck(CORPUS_NAME)
    for name, item in zip(names, ids, strict=True):
        u = utts[name]
        if not u.transcription.strip():
            raise ManifestError(f"{lang_dir}/{u.split}.tsv: recording {name} has an empty transcription")
        sr, duration = audio.info(u.audio, FLEURS_SR)
        rows.append({"id": item, "split": splits[item], "audio_path": str(u.audio.resolve()), "sr": sr,
                     "offset": 0.0, "duration": duration, "texts": [u.transcription.strip()], "label": "fleurs",
                     "speaker": None, "language": cfg["language"]})  # fmt: skip
    report = attach_translations(rows, tdir, langs)
    finalize_meta(rows)
    write_manifest(manifest_table(rows), manifest)
    counts = ", ".join(f"{s} {sum(r['split'] == s for r in rows)}" for s in ("train", "val", "test"))
    print(f"[{CORPUS_NAME}] {len(rows)} recordings ({counts}, {cfg['split']} split) from {lang_dir}; "
          f"translations {report.summary()} in {time.perf_counter() - t0:.1f} s -> {manifest}")  # fmt: skip
    audio.log(_SHOW)
    return manifest
