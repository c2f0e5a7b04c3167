"""Embedded local QbE corpus: isolated words synthesised with eSpeak NG, standing in for FLEURS.

The thesis (sec. 3.3) cuts FLEURS sentences into word segments with WhisperX and keeps words of
>= 4 letters with 2..15 segments of >= 0.4 s each, then splits *by word* 60/20/20 so that test words
are never seen in training. FLEURS (and any aligner model) is not reachable on the build machines,
so the `local` profile builds a corpus with the same shape from what ships in PyPI wheels:

* vocabulary: ``wordfreq.top_n_list(lang, ...)`` in frequency order, keeping alphabetic words of
  >= 4 letters (the paper's word filter). Swedish (sv) for ``qbe_local_swedish``; Swedish, Danish,
  Norwegian Bokmal and Finnish (sv, da, nb, fi; the thesis' four) for ``qbe_local_multilingual``;
* speech: each utterance is one word read by one synthetic "speaker" = (eSpeak voice variant
  m1..m7/f1..f4, pitch, rate), drawn from a seeded pool, distinct speakers for the clips of a word,
  so that a word's clips differ in voice quality, F0 and tempo the way FLEURS' readers do;
* channel: leading/trailing silence trimmed with an energy threshold (the aligner's job on
  FLEURS), resampled 22.05 -> 16 kHz (FLEURS' rate), then per clip a random room (diffuse
  reverb, RT60 0.05-0.5 s), a random microphone band, white or pink noise at 10..30 dB SNR and a
  random gain, written as 16-bit PCM WAV;
* counts: a word gets 2..15 clips, geometrically skewed towards 2 (mean ~3.5 before filtering;
  the thesis has 10294 / 3000 = 3.4 per word); clips shorter than 0.4 s after trimming are dropped
  and a word left with < 2 clips is replaced by the next word of the list, so ``n_words`` is met;
* splits: by word, 60/20/20 of the unique words (Table 3.1); for the multilingual corpus per
  language, so each language is balanced across splits as in Table 3.2.

What it does not model: coarticulation of words cut from running speech, real speaker and room
variety, aligner errors. It exists so the whole pipeline runs end to end offline in a minute; the
paper numbers need ``qbe_fleurs_*`` (:mod:`workloads.qbe.fleurs`).

Labels: the Swedish corpus uses the word itself; the multilingual corpus uses ``"<lang>:<word>"``
because the languages share spellings (sv/da/nb "film", "land", ...) that are different words
acoustically, and a QbE "relevant" item must be the same spoken word. Splits are nevertheless
disjoint by *surface form* across languages, so a Swedish "film" in training never lets a Danish
"film" in the test set count as a seen word.

Determinism: every random draw comes from a NumPy generator seeded by (seed, language, word, ...)
through SHA-256, never by Python's salted ``hash``; eSpeak, soxr and libsndfile are deterministic,
so the same (options, seed, package versions) give byte-identical WAVs and manifest. The build
directory is keyed by a hash of exactly those inputs, and the manifest is written last and
atomically, so its presence means the build finished.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Iterable, Sequence
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

# --- the thesis' filters and split (sec. 3.3.3, Tables 3.1/3.2); shared with the FLEURS adapter ---
MIN_SAMPLES_PER_WORD = 2
MAX_SAMPLES_PER_WORD = 15
MIN_DURATION_S = 0.4
MIN_WORD_LETTERS = 4
SPLIT_FRACTIONS = (("train", 0.6), ("val", 0.2), ("test", 0.2))

SR = 16000
BUILD_VERSION = 2  # bump when the synthesis recipe changes, so old caches are not reused
LANGUAGES_SWEDISH = ("sv",)
LANGUAGES_MULTI = ("sv", "da", "nb", "fi")
DEFAULT_N_WORDS = {"qbe_local_swedish": 300, "qbe_local_multilingual": 80}
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")
RATE_RANGE = (95, 170)  # wpm: slower than eSpeak's 175 default, like careful isolated-word reading
PITCH_RANGE = (25, 75)
SNR_RANGE_DB = (10.0, 30.0)
RT60_RANGE_S = (0.05, 0.5)  # small rooms to reverberant halls
WET_RANGE = (0.1, 0.6)  # reverb share of the signal
BAND_LOW_HZ = (60.0, 400.0)  # microphone/channel band limits
BAND_HIGH_HZ = (3000.0, 7500.0)
PEAK_DBFS_RANGE = (-12.0, -1.0)
_TRIM_THRESHOLD_DB = -40.0  # relative to the loudest 10 ms frame


def normalize_word(word: str) -> str:
    """NFC + lower case: one spelling per word, whatever the source's Unicode form."""
    return unicodedata.normalize("NFC", word).lower()


def eligible_word(word: str) -> bool:
    """The thesis' word filter: >= 4 letters (alphabetic only, so no digits/hyphenated tokens)."""
    return word.isalpha() and len(word) >= MIN_WORD_LETTERS


def split_words(words_by_lang: dict[str, Sequence[str]], seed: int) -> dict[tuple[str, str], str]:
    """Assign every (language, word) to train/val/test, 60/20/20 of each language's unique words.

    Per language so each language is balanced across splits (Table 3.2). A surface form already
    placed for an earlier language keeps that split, so the splits are disjoint by spelling across
    languages as well; the remaining words fill each split up to its quota.
    """
    out: dict[tuple[str, str], str] = {}
    by_form: dict[str, str] = {}
    for lang in sorted(words_by_lang):
        words = sorted(set(words_by_lang[lang]))
        order = seeded_rng("split", seed, lang).permutation(len(words))
        words = [words[i] for i in order]
        n = len(words)
        quota = {"train": round(n * 0.6), "val": round(n * 0.2)}
        quota["test"] = n - quota["train"] - quota["val"]
        taken = {s: 0 for s in quota}
        pending = []
        for w in words:
            if w in by_form:
                out[(lang, w)] = by_form[w]
                taken[by_form[w]] += 1
            else:
                pending.append(w)
        for w in pending:
            split = next((s for s, _ in SPLIT_FRACTIONS if taken[s] < quota[s]), None)
            if split is None:  # quotas overfilled by inherited homographs: least-full split
                split = min(quota, key=lambda s: taken[s] / max(quota[s], 1))
            out[(lang, w)] = by_form[w] = split
            taken[split] += 1
    return out


# ------------------------------------------------------------------------------------- synthesis


@dataclass(frozen=True)
class Speaker:
    variant: str
    pitch: int
    rate: int

    def __str__(self) -> str:
        return f"{self.variant}_p{self.pitch}_r{self.rate}"


def speaker_pool(seed: int, n: int) -> list[Speaker]:
    """A fixed set of synthetic speakers per seed: clips share speakers across words, as FLEURS
    readers read many sentences, so speaker identity is a real nuisance factor to learn away."""
    rng = seeded_rng("speakers", seed)
    pool: list[Speaker] = []
    seen: set[Speaker] = set()
    while len(pool) < n:
        s = Speaker(
            VARIANTS[len(pool) % len(VARIANTS)],
            int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
            int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1)),
        )
        if s not in seen:
            seen.add(s)
            pool.append(s)
    return pool


def n_clips(rng: np.random.Generator) -> int:
    """2..15, geometric above 2 (p = 0.4: mean 3.5), the long-tailed count of real word frequencies."""
    return int(min(MAX_SAMPLES_PER_WORD, MIN_SAMPLES_PER_WORD + rng.geometric(0.4) - 1))


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n)


def _room(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    """Diffuse reverb: convolution with exponentially decaying noise (RT60 from RT60_RANGE_S)."""
    from scipy.signal import fftconvolve

    rt60 = rng.uniform(*RT60_RANGE_S)
    t = np.arange(int(rt60 * SR)) / SR
    ir = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    ir /= np.sqrt(np.sum(ir**2)) or 1.0
    wet = fftconvolve(audio, ir)[: len(audio)]
    mix = rng.uniform(*WET_RANGE)
    return (1 - mix) * audio + mix * wet * (np.std(audio) / (np.std(wet) or 1.0))


def _band(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    """A random microphone/channel band (2nd-order Butterworth band-pass)."""
    from scipy.signal import butter, sosfilt

    sos = butter(2, [rng.uniform(*BAND_LOW_HZ), rng.uniform(*BAND_HIGH_HZ)], btype="bandpass", fs=SR, output="sos")
    return sosfilt(sos, audio)


def add_channel(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Room, channel band, white or pink noise at 10..30 dB SNR, then a random peak level.

    These are the nuisances the thesis wants the head to learn away (speaker, microphone, room,
    background noise); with eSpeak's very regular voices and a clean channel the words would be
    trivially separable and the local run would show nothing. float64 in, float32 out.
    """
    audio = _band(rng, _room(rng, audio))
    snr = rng.uniform(*SNR_RANGE_DB)
    noise = _pink(rng, len(audio)) if rng.random() < 0.5 else rng.standard_normal(len(audio))
    p_sig = float(np.mean(audio**2))
    p_noise = float(np.mean(noise**2)) or 1.0
    mixed = audio + noise * np.sqrt(p_sig / (p_noise * 10 ** (snr / 10)))
    peak = float(np.abs(mixed).max()) or 1.0
    return (mixed * (10 ** (rng.uniform(*PEAK_DBFS_RANGE) / 20) / peak)).astype(np.float32)


def synth_clip(word: str, lang: str, speaker: Speaker, rng: np.random.Generator) -> np.ndarray:
    """One isolated-word clip at 16 kHz, silence-trimmed, with channel noise (float32)."""
    from orchestrator.synth.espeak import synthesize

    audio, sr, _ = synthesize(
        word, voice=lang, variant=speaker.variant, rate=speaker.rate, pitch=speaker.pitch
    )
    speech = trim_silence(audio, sr, _TRIM_THRESHOLD_DB)
    if speech.size == 0:
        return np.zeros(0, np.float32)
    speech = soxr.resample(speech.astype(np.float64), sr, SR)
    return add_channel(speech, rng)


def _write_wav(path: Path, audio: np.ndarray) -> None:
    """Atomic write: a concurrent or killed build never leaves a half-written WAV behind."""
    write_atomic(path, lambda tmp: sf.write(tmp, audio, SR, subtype="PCM_16", format="WAV"))


# ------------------------------------------------------------------------------------- building


def candidate_words(lang: str, n_words: int) -> Iterable[str]:
    """Eligible words of ``lang`` in frequency order; asks wordfreq for more until exhausted."""
    import wordfreq

    seen: set[str] = set()
    size = max(4 * n_words, 200)
    while True:
        fresh = 0
        for w in wordfreq.top_n_list(lang, size):
            w = normalize_word(w)
            if w in seen:
                continue
            seen.add(w)
            fresh += 1
            if eligible_word(w):
                yield w
        if fresh == 0:
            return
        size *= 2


def _build_language(
    lang: str, n_words: int, seed: int, pool: list[Speaker], out_dir: Path, stats: dict[str, int]
) -> dict[str, list[tuple[str, Speaker, float]]]:
    """Synthesise ``n_words`` words that pass the filters; returns word -> [(relpath, speaker, dur)]."""
    words: dict[str, list[tuple[str, Speaker, float]]] = {}
    for word in candidate_words(lang, n_words):
        if len(words) == n_words:
            break
        rng = seeded_rng("word", seed, lang, word)
        k = n_clips(rng)
        speakers = [pool[i] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]
        clips = []
        for j, spk in enumerate(speakers):
            audio = synth_clip(word, lang, spk, seeded_rng("clip", seed, lang, word, j))
            stats["synthesised"] += 1
            if len(audio) < MIN_DURATION_S * SR:
                stats["too_short"] += 1
                continue
            clips.append((audio, spk))
        if len(clips) < MIN_SAMPLES_PER_WORD:
            stats["words_dropped"] += 1
            continue
        words[word] = []
        for idx, (audio, spk) in enumerate(clips):
            rel = f"audio/{lang}/{word}_{idx:02d}.wav"
            _write_wav(out_dir / rel, audio)
            words[word].append((rel, spk, len(audio) / SR))
    if len(words) < n_words:
        raise ManifestError(f"{lang}: only {len(words)} words pass the filters, {n_words} requested")
    return words


def resolve_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options that define the corpus, defaults filled in; unknown keys are errors."""
    known = {"n_words", "seed", "n_speakers"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ManifestError(f"{name}: unknown option(s) {unknown}; known: {sorted(known)}")
    cfg = {
        "n_words": int(options.get("n_words", DEFAULT_N_WORDS[name])),
        "seed": int(options.get("seed", 0)),
        "n_speakers": int(options.get("n_speakers", 24)),
    }
    if cfg["n_words"] < 3:
        raise ManifestError(f"{name}: n_words must be >= 3 (one word per split), got {cfg['n_words']}")
    if cfg["n_speakers"] < MIN_SAMPLES_PER_WORD:
        raise ManifestError(f"{name}: n_speakers must be >= {MIN_SAMPLES_PER_WORD}")
    return cfg


def build_local(req: CorpusRequest, languages: Sequence[str], multilingual: bool) -> Path:
    cfg = resolve_options(req.name, req.options)
    key = {
        "corpus": req.name, "languages": list(languages), **cfg,
        "version": BUILD_VERSION, "pkgs": package_versions(("espeakng-loader", "wordfreq", "soxr", "soundfile", "numpy")),
    }  # fmt: skip
    out_dir = build_dir(Path(req.work_dir) / req.name, key)
    manifest = out_dir / "manifest.parquet"
    if manifest.exists():
        return manifest

    from orchestrator.synth.espeak import Espeak

    Espeak.for_corpus(req.name)
    t0 = time.perf_counter()
    stats = {"synthesised": 0, "too_short": 0, "words_dropped": 0}
    pool = speaker_pool(cfg["seed"], cfg["n_speakers"])
    per_lang = {
        lang: _build_language(lang, cfg["n_words"], cfg["seed"], pool, out_dir, stats) for lang in languages
    }
    splits = split_words({lang: list(ws) for lang, ws in per_lang.items()}, cfg["seed"])
    rows = []
    for lang in languages:
        for word, clips in per_lang[lang].items():
            for idx, (rel, spk, dur) in enumerate(clips):
                rows.append(
                    {
                        "id": f"{lang}/{word}_{idx:02d}",
                        "split": splits[(lang, word)],
                        "audio_path": rel,
                        "sr": SR,
                        "offset": 0.0,
                        "duration": dur,
                        "texts": [word],
                        "label": f"{lang}:{word}" if multilingual else word,
                        "speaker": str(spk),
                        "language": lang,
                    }
                )
    (out_dir / "config.json").write_text(json.dumps(key, indent=1, sort_keys=True))
    write_manifest(manifest_table(rows), manifest)
    elapsed = time.perf_counter() - t0
    per_split = {s: sum(r["split"] == s for r in rows) for s, _ in SPLIT_FRACTIONS}
    print(
        f"[{req.name}] {sum(len(w) for w in per_lang.values())} words, {len(rows)} clips "
        f"({', '.join(f'{s} {n}' for s, n in per_split.items())}) synthesised in {elapsed:.1f} s; "
        f"{stats['synthesised']} synthesised, {stats['too_short']} < {MIN_DURATION_S} s dropped, "
        f"{stats['words_dropped']} words replaced (< {MIN_SAMPLES_PER_WORD} clips) -> {manifest}"
    )
    return manifest


@register_corpus("qbe_local_swedish")
def build_swedish(req: CorpusRequest) -> Path:
    """Swedish isolated words (stands in for the thesis' Swedish FLEURS subset, Table 3.1)."""
    return build_local(req, LANGUAGES_SWEDISH, multilingual=False)


@register_corpus("qbe_local_multilingual")
def build_multilingual(req: CorpusRequest) -> Path:
    """sv/da/nb/fi isolated words, ``n_words`` per language (Table 3.2); labels ``lang:word``."""
    return build_local(req, LANGUAGES_MULTI, multilingual=True)
