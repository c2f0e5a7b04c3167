"""Embedded local CLASP corpus (``clasp_local``): spoken topic sentences with four translations.

Stands in for the paper's training/test data (Speech Brown + Common Voice + FLEURS, sec. 3.1),
none of which is reachable on the build machines:

* text: :mod:`workloads.clasp.sentences` generates ``n_sentences`` distinct English sentences,
  balanced over the 15 Brown-corpus categories of Speech Brown, each with its German, French,
  Persian and Chinese version realised from the same abstract content. The paper translated its
  English test sentences with SMaLL-100 (Stage 4); here the "translations" are exact by
  construction, and are written in the translation-file format of :mod:`.translations`
  (``translations/<lang>.tsv`` in the build directory) and read back into ``meta.translations``
  through the same reader the paper adapters use;
* speech: eSpeak NG (in-process, ``espeakng-loader`` wheel) reads each English sentence with one
  synthetic speaker from a seeded pool = (English voice: US, New York, British, British RP; voice
  variant m1..m7/f1..f4; pitch; rate), so speaker identity varies as in Common
  Voice (Speech Brown itself is a single Tacotron 2 voice); leading/trailing silence is trimmed
  and the audio resampled 22.05 -> 16 kHz (the rate of the SSL speech encoders), PCM_16 WAV;
* split: 80/10/10 stratified by category (:func:`workloads.clasp.assign_splits`), exact counts:
  the default 1,500 sentences give 1,200 / 150 / 150;
* rows: ``texts`` = [English sentence], ``label`` = category, ``speaker`` = the synthetic
  speaker, ``language`` = "en", ``meta`` = {"category", "translations": {de, fr, fa, zh}}.

Determinism: sentences, speakers and splits come from :func:`orchestrator.corpus.seeded_rng`;
eSpeak runs through :meth:`Espeak.for_corpus` (state reset before every utterance), soxr and
libsndfile are deterministic, so the same options, recipe version and package versions give
byte-identical files. The build directory is keyed by exactly those, and the manifest is written
last and atomically, so its presence means the build finished.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from orchestrator.corpus import (
    CorpusRequest,
    ManifestError,
    build_dir,
    manifest_table,
    package_versions,
    register_corpus,
    seeded_rng,
    write_atomic,
    write_manifest,
)
from orchestrator.synth.trim import trim_silence
from workloads.clasp import TRANSLATION_LANGUAGES, assign_splits, finalize_meta
from workloads.clasp.sentences import LANGUAGES, Sentence, generate
from workloads.clasp.translations import attach_translations, write_translations

CORPUS_NAME = "clasp_local"
BUILD_VERSION = 1  # bump when the sentence grammar/lexicon or the synthesis recipe changes
SR = 16000
DEFAULT_OPTIONS: dict[str, int] = {"n_sentences": 1500, "seed": 0, "n_speakers": 24}
# eSpeak's Scottish and Caribbean English were the least intelligible to Whisper tiny.en (WER 0.60
# and 0.51 vs 0.29-0.44 for these four on the same sentences), so they are left out
VOICES = ("en-us", "en", "en-gb-x-rp", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")
PITCH_RANGE = (30, 70)
RATE_RANGE = (145, 185)  # words per minute around eSpeak's 175 default: read speech, not dictation
PAD_S = 0.1  # silence kept around the trimmed speech
_TRIM_THRESHOLD_DB = -45.0  # relative to the loudest 10 ms frame


@dataclass(frozen=True)
class Speaker:
    voice: str
    variant: str
    pitch: int
    rate: int

    def __str__(self) -> str:
        return f"{self.voice}+{self.variant}_p{self.pitch}_r{self.rate}"


def speaker_pool(seed: int, n: int) -> list[Speaker]:
    """``n`` distinct synthetic speakers; voices and variants in turn so a small pool still
    covers accents and both voice registers."""
    rng = seeded_rng("clasp_speakers", seed)
    pool: list[Speaker] = []
    seen: set[Speaker] = set()
    while len(pool) < n:
        k = len(pool)
        s = Speaker(
            VOICES[k % len(VOICES)],
            VARIANTS[k % len(VARIANTS)],
            int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
            int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1)),
        )
        if s not in seen:
            seen.add(s)
            pool.append(s)
    return pool


def synth_sentence(text: str, speaker: Speaker) -> np.ndarray:
    """One sentence at 16 kHz, float32, silence-trimmed."""
    from orchestrator.synth.espeak import synthesize

    audio, sr, _ = synthesize(
        text, voice=speaker.voice, variant=speaker.variant, rate=speaker.rate, pitch=speaker.pitch
    )
    speech = trim_silence(audio, sr, _TRIM_THRESHOLD_DB, PAD_S)
    if speech.size == 0:
        return np.zeros(0, np.float32)
    return soxr.resample(speech.astype(np.float64), sr, SR).astype(np.float32)


def resolve_options(options: dict[str, Any]) -> dict[str, int]:
    """The options that define the corpus, defaults filled in; unknown keys and bad values are errors."""
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ManifestError(f"{CORPUS_NAME}: unknown option(s) {unknown}; known: {sorted(DEFAULT_OPTIONS)}")
    try:
        cfg = {k: int(options.get(k, v)) for k, v in DEFAULT_OPTIONS.items()}
    except (TypeError, ValueError):
        msg = f"{CORPUS_NAME}: options {sorted(DEFAULT_OPTIONS)} must be integers, got {options}"
        raise ManifestError(msg) from None
    if cfg["n_sentences"] < 3:
        raise ManifestError(f"{CORPUS_NAME}: n_sentences must be >= 3 (one per split), got {cfg['n_sentences']}")
    if cfg["n_speakers"] < 1:
        raise ManifestError(f"{CORPUS_NAME}: n_speakers must be >= 1, got {cfg['n_speakers']}")
    return cfg


def item_id(s: Sentence) -> str:
    return f"s{s.index:05d}"


@register_corpus(CORPUS_NAME)
def build_clasp_local(req: CorpusRequest) -> Path:
    """Build (or find cached) the synthetic CLASP corpus; returns the manifest path."""
    cfg = resolve_options(req.options)
    pkgs = package_versions(("espeakng-loader", "numpy", "soxr", "soundfile"))
    key = {"corpus": CORPUS_NAME, **cfg, "version": BUILD_VERSION, "pkgs": pkgs}
    out_dir = build_dir(Path(req.work_dir) / CORPUS_NAME, key)
    manifest = out_dir / "manifest.parquet"
    if manifest.exists():
        return manifest

    from orchestrator.synth.espeak import Espeak

    Espeak.for_corpus(CORPUS_NAME)
    t0 = time.perf_counter()
    sentences = generate(cfg["n_sentences"], cfg["seed"])
    ids = [item_id(s) for s in sentences]
    splits = assign_splits(ids, cfg["seed"], CORPUS_NAME, strata=[s.category for s in sentences])
    pool = speaker_pool(cfg["seed"], cfg["n_speakers"])
    rows: list[dict[str, Any]] = []
    for s, sid in zip(sentences, ids, strict=True):
        speaker = pool[int(seeded_rng("clasp_speaker_of", cfg["seed"], s.index).integers(len(pool)))]
        audio = synth_sentence(s.en, speaker)
        if audio.size == 0:  # eSpeak produced nothing audible: a recipe bug, not bad luck
            raise ManifestError(f"{CORPUS_NAME}: eSpeak produced silence for {sid} {s.en!r} ({speaker})")
        rel = f"audio/{sid}.wav"
        write_atomic(out_dir / rel, lambda p, a=audio: sf.write(p, a, SR, subtype="PCM_16", format="WAV"))
        rows.append({"id": sid, "split": splits[sid], "audio_path": rel, "sr": SR, "offset": 0.0,
                     "duration": len(audio) / SR, "texts": [s.en], "label": s.category, "speaker": str(speaker),
                     "language": "en", "_meta": {"category": s.category}})  # fmt: skip
    tdir = out_dir / "translations"
    for lang in TRANSLATION_LANGUAGES:
        write_translations(tdir / f"{lang}.tsv", ((item_id(s), s.texts[lang]) for s in sentences))
    report = attach_translations(rows, tdir, TRANSLATION_LANGUAGES)
    if any(report.missing.values()):  # generated translations cover every sentence by construction
        raise ManifestError(f"{CORPUS_NAME}: sentences without a translation: {report.missing}")
    finalize_meta(rows)
    sentences_json = {item_id(s): s.texts for s in sentences}
    assert set(next(iter(sentences_json.values()))) == set(LANGUAGES)
    write_atomic(out_dir / "sentences.json",
                  lambda p: p.write_text(json.dumps(sentences_json, ensure_ascii=False, indent=1, sort_keys=True),
                                         encoding="utf-8"))  # fmt: skip
    write_atomic(out_dir / "config.json", lambda p: p.write_text(json.dumps(key, indent=1, sort_keys=True)))
    write_manifest(manifest_table(rows), manifest)
    counts = ", ".join(f"{sp} {sum(r['split'] == sp for r in rows)}" for sp in ("train", "val", "test"))
    minutes = sum(r["duration"] for r in rows) / 60
    print(f"[{CORPUS_NAME}] {len(rows)} sentences ({counts}), {len(pool)} speakers, {minutes:.1f} min of speech, "
          f"translations {report.summary()} in {time.perf_counter() - t0:.1f} s -> {manifest}")  # fmt: skip
    return manifest
