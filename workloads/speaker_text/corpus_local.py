"""Embedded local speaker-text corpus (``speaker_text_local``): synthetic eSpeak NG speakers with
slot-filled and paraphrased descriptions, standing in for VoxCeleb1 + its metadata prompts.

The paper links speaker embeddings with descriptions built from speaker metadata (VoxCeleb1:
gender, nationality; CSJ: richer metadata). Neither dataset is reachable on the build machines,
so the ``local`` profile synthesises speakers whose attributes are known by construction:

* a speaker = (English accent, eSpeak voice variant, pitch, speaking rate). Accents: the eight
  English voices the ``espeakng-loader`` wheel ships (``en-us``, ``en-gb`` (voice "en"),
  ``en-gb-scotland``, ``en-gb-x-rp``, ``en-029``, ``en-gb-x-gbclan``, ``en-gb-x-gbcwmd``,
  ``en-us-nyc``; checked in the wheel's ``lang/gmw``; one that fails to load is left out with a
  warning). The variant gives sex and voice quality (see :data:`VOICES`; measured on one sentence:
  m*/klatt3-6 F0 ~85-107 Hz, f* ~180-212 Hz at pitch 50; whisper/whisperf have no detectable F0;
  croak/grandpa have strongly irregular F0 (flutter 20), grandma too at higher F0; klatt/klatt2
  have ~10 dB more energy above 4 kHz relative to below 1 kHz than the other voices and weak
  periodicity, hence "tinny"). Pitch level low/medium/high = eSpeak pitch 15-30 / 42-58 / 70-85
  (a level is relative to the voice, as listeners judge it: m1 gives ~74/95/128 Hz, f1
  ~137/181/248 Hz); rate slow/normal/fast = 115-135 / 160-185 / 215-250 words per minute. Exact
  pitch and rate values are drawn inside a level, so speakers who share a description still sound
  different;
* each speaker reads ``utts_per_speaker`` DIFFERENT sentences from a small grammar (every speaker
  draws from the same distribution, so content never identifies a speaker); 16 kHz mono PCM;
* light per-utterance channel variation (option ``channel``, default on): a microphone band
  (40-120 Hz to 5-7.8 kHz), reverb in half the clips (RT60 0.1-0.35 s, 5-25 % wet), white or pink
  noise at 25-45 dB SNR, 0.05-0.25 s of padding each side and a random peak level. Why: without
  it every clip of a speaker is the same pristine synthesiser output in digital silence, and an
  audio encoder can match speakers on channel identity rather than voice; the variation is too
  light to mask pitch, rate, accent or quality, and it is drawn per utterance, never per speaker;
* descriptions: :func:`workloads.speaker_text.descriptions.describe`: the slot-filled template
  of the paper's Fig. 2 ("A male speaker with a Scottish accent, a hoarse voice, low pitch and a
  fast speaking rate.") first, then paraphrases; the same K descriptions on every utterance of a
  speaker. Whispered voices have no pitch, so their descriptions (and ``meta.pitch``) omit it.
  Option ``language: ja`` writes them in Japanese instead (:mod:`workloads.speaker_text.
  descriptions_ja`, the same facts): the local stand-in for the paper's Japanese table, whose
  speakers still speak English (no Japanese speech is synthesised: eSpeak NG's accents are what
  tells its speakers apart);
* splits: speakers disjoint; test speakers are drawn first, then val, then train, each from its
  own seeded stream (so the test set does not change when ``n_train`` does). Within val and
  within test every speaker has a different description-level attribute tuple (sex, quality,
  accent, pitch level, rate level), so every test description has exactly one right speaker and
  retrieval is possible in principle; train speakers may share tuples, as real speakers share
  descriptions. No two speakers anywhere share a voice (accent, variant, pitch value, rate value),
  so no test voice is heard in training.

Attribute space: male (clear, breathy, hoarse, shaky, tinny) + female (clear, breathy, shaky) = 8
sex/quality pairs; x 3 pitch levels (1 for breathy) x 3 rates x 8 accents = 480 distinct tuples.
Qualities are weighted towards "clear" (60 % of men, 70 % of women), the common case in real data.

Defaults (160 / 20 / 40 speakers x 6 utterances x 5 descriptions = 1,320 clips of ~2.5-6 s):
40 test speakers as the paper's VoxCeleb1 test set (30 for CSJ), 20 val speakers for early
stopping, 160 train speakers so every accent, level and quality value is read by many speakers
while most test tuples are new combinations (the model has to compose attributes, not memorise
tuples). Synthesis takes well under a minute on one core; the downstream frozen-encoder
extraction (GE2E ~15 clips/s, MiniLM ~450 texts/s on 2 cores) is ~1.5 min once per view.

What it does not model: real voices and their variety, spontaneous speech, real rooms and
microphones, and the uncertainty of human descriptions (here every description is exactly true).

Determinism: every random draw comes from a generator seeded by SHA-256 of (seed, what, ...);
eSpeak is reset before every utterance (:meth:`orchestrator.synth.espeak.Espeak.for_corpus`),
soxr, scipy and libsndfile are deterministic, so the same options and package versions give
byte-identical WAVs, ``speakers.json`` and manifest. The build folder is keyed by exactly those
inputs; the manifest is written last and atomically, so its presence means the build finished.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
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
from workloads.speaker_text.descriptions import GRAMMAR_VERSION, Fact, describe
from workloads.speaker_text.descriptions_ja import GRAMMAR_VERSION_JA, describe_ja

CORPUS_NAME = "speaker_text_local"
SR = 16000
BUILD_VERSION = 1  # bump when the synthesis recipe changes, so old caches are not reused
DEFAULT_OPTIONS: dict[str, Any] = {
    "n_train": 160, "n_val": 20, "n_test": 40, "utts_per_speaker": 6, "n_descriptions": 5,
    "seed": 0, "channel": True, "language": "en",
}  # fmt: skip
DESCRIPTION_LANGUAGES = ("en", "ja")  # ja: the Japanese grammar (cts_systems_ja on the local profile)
SPLIT_ORDER = (("test", "n_test"), ("val", "n_val"), ("train", "n_train"))  # drawing order
UNIQUE_TUPLES = ("val", "test")

# accent code (meta / descriptions) -> eSpeak NG voice name
ACCENT_VOICES = {
    "en-us": "en-us", "en-gb": "en", "en-gb-scotland": "en-gb-scotland", "en-gb-x-rp": "en-gb-x-rp",
    "en-029": "en-029", "en-gb-x-gbclan": "en-gb-x-gbclan", "en-gb-x-gbcwmd": "en-gb-x-gbcwmd",
    "en-us-nyc": "en-us-nyc",
}  # fmt: skip
# (sex, quality) -> eSpeak variants (see the module docstring for what was measured)
VOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("male", "clear"): ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "klatt3", "klatt4", "klatt5", "klatt6"),
    ("male", "breathy"): ("whisper",),
    ("male", "hoarse"): ("croak",),
    ("male", "shaky"): ("grandpa",),
    ("male", "tinny"): ("klatt", "klatt2"),
    ("female", "clear"): ("f1", "f2", "f3", "f4", "f5"),
    ("female", "breathy"): ("whisperf",),
    ("female", "shaky"): ("grandma",),
}
QUALITY_P = {
    "male": {"clear": 0.6, "breathy": 0.1, "hoarse": 0.1, "shaky": 0.1, "tinny": 0.1},
    "female": {"clear": 0.7, "breathy": 0.15, "shaky": 0.15},
}
NO_PITCH = ("breathy",)  # whispered: no F0 to describe
PITCH_LEVELS = {"low": (15, 30), "medium": (42, 58), "high": (70, 85)}  # eSpeak pitch 0..100
RATE_LEVELS = {"slow": (115, 135), "normal": (160, 185), "fast": (215, 250)}  # words per minute

# light channel (see the module docstring)
BAND_LOW_HZ = (40.0, 120.0)
BAND_HIGH_HZ = (5000.0, 7800.0)
P_REVERB = 0.5
RT60_S = (0.1, 0.35)
WET = (0.05, 0.25)
SNR_DB = (25.0, 45.0)
PAD_S = (0.05, 0.25)
PEAK_DBFS = (-12.0, -2.0)
_TRIM_THRESHOLD_DB = -40.0


# ------------------------------------------------------------------------------------- speakers


@dataclass(frozen=True)
class Speaker:
    id: str
    split: str
    accent: str
    variant: str
    sex: str
    quality: str
    pitch_level: str | None  # None: whispered, no pitch to describe
    pitch: int
    rate_level: str
    rate: int

    @property
    def voice_key(self) -> tuple[str, str, int, int]:
        """What makes two speakers sound the same: never shared between speakers."""
        return (self.accent, self.variant, self.pitch, self.rate)

    @property
    def attribute_tuple(self) -> tuple[str, str, str, str | None, str]:
        """What a description can tell apart."""
        return (self.sex, self.quality, self.accent, self.pitch_level, self.rate_level)

    def facts(self) -> list[Fact]:
        facts = [Fact("sex", self.sex), Fact("accent", self.accent), Fact("quality", self.quality)]
        if self.pitch_level is not None:
            facts.append(Fact("pitch", self.pitch_level))
        return facts + [Fact("rate", self.rate_level)]

    def meta(self) -> dict[str, Any]:
        return {
            "accent": self.accent, "voice": ACCENT_VOICES[self.accent], "variant": self.variant,
            "sex": self.sex, "quality": self.quality, "pitch": self.pitch_level, "pitch_value": self.pitch,
            "rate": self.rate_level, "rate_wpm": self.rate,
        }  # fmt: skip


def attribute_space(accents: Sequence[str]) -> int:
    """How many description-level tuples exist (480 with the eight accents)."""
    per_accent = sum((1 if q in NO_PITCH else len(PITCH_LEVELS)) * len(RATE_LEVELS) for (_, q) in VOICES)
    return per_accent * len(accents)


def _pick(rng: np.random.Generator, options: Sequence[Any], p: Sequence[float] | None = None) -> Any:
    return options[int(rng.choice(len(options), p=p))]


def draw_speaker(rng: np.random.Generator, speaker_id: str, split: str, accents: Sequence[str]) -> Speaker:
    sex = _pick(rng, ("male", "female"))
    qualities = QUALITY_P[sex]
    quality = _pick(rng, tuple(qualities), tuple(qualities.values()))
    pitch_level = None if quality in NO_PITCH else _pick(rng, tuple(PITCH_LEVELS))
    lo, hi = PITCH_LEVELS[pitch_level or "medium"]
    rate_level = _pick(rng, tuple(RATE_LEVELS))
    r_lo, r_hi = RATE_LEVELS[rate_level]
    return Speaker(
        id=speaker_id, split=split, accent=_pick(rng, accents), variant=_pick(rng, VOICES[(sex, quality)]),
        sex=sex, quality=quality, pitch_level=pitch_level, pitch=int(rng.integers(lo, hi + 1)),
        rate_level=rate_level, rate=int(rng.integers(r_lo, r_hi + 1)),
    )  # fmt: skip


def draw_speakers(cfg: dict[str, Any], accents: Sequence[str]) -> list[Speaker]:
    """All speakers, train first in the returned order; see the module docstring for the rules."""
    space = attribute_space(accents)
    for split in UNIQUE_TUPLES:
        if cfg[f"n_{split}"] > space:
            raise ManifestError(
                f"{CORPUS_NAME}: n_{split}={cfg[f'n_{split}']} exceeds the {space} distinct attribute tuples"
            )
    voices: set[tuple[str, str, int, int]] = set()
    by_split: dict[str, list[Speaker]] = {}
    for split, option in SPLIT_ORDER:
        rng = seeded_rng("speakers", cfg["seed"], split)
        tuples: set[tuple[Any, ...]] = set()
        out: list[Speaker] = []
        for _ in range(1000 * (cfg[option] + 1)):
            if len(out) == cfg[option]:
                break
            s = draw_speaker(rng, f"{split}_spk{len(out):04d}", split, accents)
            if s.voice_key in voices or (split in UNIQUE_TUPLES and s.attribute_tuple in tuples):
                continue
            voices.add(s.voice_key)
            tuples.add(s.attribute_tuple)
            out.append(s)
        if len(out) < cfg[option]:
            raise ManifestError(f"{CORPUS_NAME}: cannot draw {cfg[option]} distinct {split} speakers")
        by_split[split] = out
    return by_split["train"] + by_split["val"] + by_split["test"]


# ------------------------------------------------------------------------------------ sentences

SUBJECTS = (
    "the farmer", "my neighbour", "the old teacher", "a young doctor", "the children", "our captain",
    "the baker", "her brother", "the pilot", "a tall stranger", "the museum guide", "his aunt",
    "the new manager", "the fisherman", "a quiet student", "the mayor", "the gardener", "my cousin",
    "the nurse", "the bus driver",
)  # fmt: skip
VERBS = (  # (past, base)
    ("carried", "carry"), ("painted", "paint"), ("found", "find"), ("sold", "sell"), ("repaired", "repair"),
    ("borrowed", "borrow"), ("cleaned", "clean"), ("delivered", "deliver"), ("lost", "lose"),
    ("opened", "open"), ("packed", "pack"), ("moved", "move"), ("described", "describe"),
    ("photographed", "photograph"), ("ordered", "order"), ("collected", "collect"), ("washed", "wash"),
    ("measured", "measure"), ("counted", "count"), ("hid", "hide"),
)  # fmt: skip
OBJECTS = (
    "seven baskets", "the wooden table", "an old bicycle", "the red umbrella", "a heavy suitcase",
    "three letters", "the garden fence", "a bag of apples", "the broken clock", "two paintings",
    "the blue boat", "a box of candles", "the kitchen window", "a pile of books", "the silver key",
    "four chairs", "a map of the city", "the green jacket", "a basket of bread", "the small piano",
)  # fmt: skip
PLACES = (
    "across the bridge", "near the harbour", "behind the station", "in the market", "at the library",
    "through the park", "by the river", "inside the old barn", "along the coast", "at the top of the hill",
    "under the stairs", "outside the school", "in the village square", "beside the lake", "into the cellar",
)  # fmt: skip
TIMES = (
    "yesterday", "last winter", "on Sunday morning", "before dinner", "after the storm", "early this morning",
    "every summer", "late at night", "two weeks ago", "during the holidays", "at noon", "on Friday",
)  # fmt: skip


def _sentence(rng: np.random.Generator) -> str:
    def p(seq: Sequence[Any]) -> Any:
        return _pick(rng, seq)

    subj, subj2, (verb, base), (verb2, _), obj, obj2 = (
        p(SUBJECTS),
        p(SUBJECTS),
        p(VERBS),
        p(VERBS),
        p(OBJECTS),
        p(OBJECTS),
    )
    place, when = p(PLACES), p(TIMES)
    patterns = (
        f"{subj} {verb} {obj} {place} {when}.",
        f"{when}, {subj} {verb} {obj} {place}.",
        f"did {subj} really {base} {obj} {place}?",
        f"{subj} said that {subj2} {verb} {obj} {when}.",
        f"nobody knew why {subj} {verb} {obj} {place}.",
        f"{subj} {verb} {obj}, and then {subj2} {verb2} {obj2}.",
    )  # fmt: skip
    text = p(patterns)
    return text[0].upper() + text[1:]


def sentences_for(seed: int, speaker_id: str, n: int) -> list[str]:
    """``n`` different sentences; the draw depends on the speaker id only through the seed, never
    on its attributes, so content carries no speaker information."""
    rng = seeded_rng("sentences", seed, speaker_id)
    out: list[str] = []
    while len(out) < n:
        s = _sentence(rng)
        if s not in out:
            out.append(s)
    return out


# ------------------------------------------------------------------------------------ synthesis


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    """1/f noise by spectral shaping, on an FFT-friendly length (clip lengths are often near-prime)."""
    from scipy.fft import next_fast_len  # scipy.signal costs 0.7 s to import: only corpus builds need it

    m = next_fast_len(n, real=True)
    spec = np.fft.rfft(rng.standard_normal(m))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), m)[:n]


def _reverb(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    rt60 = rng.uniform(*RT60_S)
    t = np.arange(int(rt60 * SR)) / SR
    ir = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)
    ir /= np.sqrt(np.sum(ir**2)) or 1.0
    wet = fftconvolve(audio, ir)[: len(audio)]
    mix = rng.uniform(*WET)
    return (1 - mix) * audio + mix * wet * (np.std(audio) / (np.std(wet) or 1.0))


def add_channel(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Padding, microphone band, sometimes a small room, a noise floor, a peak level (float64 in)."""
    from scipy.signal import butter, sosfilt

    pad = [np.zeros(int(rng.uniform(*PAD_S) * SR)) for _ in range(2)]
    audio = np.concatenate([pad[0], audio, pad[1]])
    sos = butter(2, [rng.uniform(*BAND_LOW_HZ), rng.uniform(*BAND_HIGH_HZ)], btype="bandpass", fs=SR, output="sos")
    audio = sosfilt(sos, audio)
    if rng.random() < P_REVERB:
        audio = _reverb(rng, audio)
    noise = _pink(rng, len(audio)) if rng.random() < 0.5 else rng.standard_normal(len(audio))
    p_sig = float(np.mean(audio**2))
    p_noise = float(np.mean(noise**2)) or 1.0
    audio = audio + noise * np.sqrt(p_sig / (p_noise * 10 ** (rng.uniform(*SNR_DB) / 10)))
    return audio


def _normalise(audio: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    peak_db = rng.uniform(*PEAK_DBFS) if rng is not None else -3.0
    peak = float(np.abs(audio).max()) or 1.0
    return (audio * (10 ** (peak_db / 20) / peak)).astype(np.float32)


def synth_utterance(text: str, spk: Speaker, rng: np.random.Generator | None) -> np.ndarray:
    """One 16 kHz utterance of ``spk`` (float32); ``rng`` None = clean channel."""
    from orchestrator.synth.espeak import synthesize

    audio, sr, _ = synthesize(
        text, voice=ACCENT_VOICES[spk.accent], variant=spk.variant, rate=spk.rate, pitch=spk.pitch
    )
    speech = trim_silence(audio, sr, _TRIM_THRESHOLD_DB)
    if speech.size == 0:
        raise ManifestError(f"{CORPUS_NAME}: eSpeak produced silence for {spk.id} ({spk.variant}) on {text!r}")
    speech = soxr.resample(speech.astype(np.float64), sr, SR)
    if rng is not None:
        speech = add_channel(speech, rng)
    return _normalise(speech, rng)


def available_accents() -> list[str]:
    """The accents whose eSpeak voice loads (all eight in espeakng-loader 0.2.4)."""
    from orchestrator.synth.espeak import EspeakError, synthesize

    out = []
    for accent, voice in ACCENT_VOICES.items():
        try:
            synthesize("a", voice=voice, variant="m1")
            out.append(accent)
        except EspeakError:
            print(f"[{CORPUS_NAME}] warning: eSpeak NG has no voice {voice!r}; accent {accent} left out")
    if len(out) < 2:
        raise ManifestError(f"{CORPUS_NAME}: only {out} of the English eSpeak voices {sorted(ACCENT_VOICES)} load")
    return out


def _write_wav(path: Path, audio: np.ndarray) -> None:
    write_atomic(path, lambda tmp: sf.write(tmp, audio, SR, subtype="PCM_16", format="WAV"))


def _write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False)
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# ------------------------------------------------------------------------------------- building


def resolve_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options that define the corpus, defaults filled in; unknown keys are errors."""
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ManifestError(f"{CORPUS_NAME}: unknown option(s) {unknown}; known: {sorted(DEFAULT_OPTIONS)}")
    cfg = {**DEFAULT_OPTIONS, **options}
    for k in ("n_train", "n_val", "n_test", "utts_per_speaker", "n_descriptions", "seed"):
        cfg[k] = int(cfg[k])
        if cfg[k] < 0:
            raise ManifestError(f"{CORPUS_NAME}: option {k} must be >= 0, got {cfg[k]}")
    cfg["channel"] = bool(cfg["channel"])
    cfg["language"] = str(cfg["language"])
    if cfg["language"] not in DESCRIPTION_LANGUAGES:
        raise ManifestError(f"{CORPUS_NAME}: option language must be one of {list(DESCRIPTION_LANGUAGES)} "
                            f"(the language of the descriptions), got {cfg['language']!r}")
    for k in ("n_train", "utts_per_speaker", "n_descriptions"):
        if cfg[k] < 1:
            raise ManifestError(f"{CORPUS_NAME}: option {k} must be >= 1, got {cfg[k]}")
    return cfg


def _speaker_rows(spk: Speaker, cfg: dict[str, Any], out_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Synthesise one speaker's utterances; manifest rows and the speaker's record."""
    try:
        describe_in = describe_ja if cfg["language"] == "ja" else describe
        texts = describe_in(spk.facts(), cfg["n_descriptions"], seeded_rng("descriptions", cfg["seed"], spk.id))
    except ValueError as e:
        raise ManifestError(f"{CORPUS_NAME}: {spk.id}: {e}") from None
    meta = json.dumps(spk.meta(), sort_keys=True)
    rows, utts = [], []
    for j, sentence in enumerate(sentences_for(cfg["seed"], spk.id, cfg["utts_per_speaker"])):
        rng = seeded_rng("channel", cfg["seed"], spk.id, j) if cfg["channel"] else None
        audio = synth_utterance(sentence, spk, rng)
        rel = f"audio/{spk.id}/{j:02d}.wav"
        _write_wav(out_dir / rel, audio)
        item_id = f"{spk.id}/{j:02d}"
        utts.append({"id": item_id, "sentence": sentence})
        rows.append({"id": item_id, "split": spk.split, "audio_path": rel, "sr": SR, "offset": 0.0,
                     "duration": len(audio) / SR, "texts": texts, "label": spk.id, "speaker": spk.id,
                     "language": cfg["language"], "meta": meta})  # fmt: skip
    return rows, {"split": spk.split, "meta": spk.meta(), "descriptions": texts, "utterances": utts}


@register_corpus(CORPUS_NAME)
def build_speaker_text_local(req: CorpusRequest) -> Path:
    cfg = resolve_options(req.options)
    pkgs = package_versions(("espeakng-loader", "soxr", "soundfile", "numpy", "scipy"))
    grammar = GRAMMAR_VERSION if cfg["language"] == "en" else f"ja{GRAMMAR_VERSION_JA}"
    key = {"corpus": CORPUS_NAME, **cfg, "version": BUILD_VERSION, "grammar": grammar, "pkgs": pkgs}
    if cfg["language"] == "en":  # the key of the English corpus stays what it was before the option
        del key["language"]
    out_dir = build_dir(Path(req.work_dir) / CORPUS_NAME, key)
    manifest = out_dir / "manifest.parquet"
    if manifest.exists():
        return manifest

    from orchestrator.synth.espeak import Espeak

    Espeak.for_corpus(CORPUS_NAME)
    t0 = time.perf_counter()
    accents = available_accents()
    speakers = draw_speakers(cfg, accents)
    rows: list[dict[str, Any]] = []
    record: dict[str, Any] = {}
    for spk in speakers:
        spk_rows, record[spk.id] = _speaker_rows(spk, cfg, out_dir)
        rows += spk_rows
    _write_json(out_dir / "speakers.json", record)
    _write_json(out_dir / "config.json", {**key, "accents": accents})
    write_manifest(manifest_table(rows), manifest)
    _log(speakers, rows, accents, time.perf_counter() - t0, manifest)
    return manifest


def _log(
    speakers: list[Speaker], rows: list[dict[str, Any]], accents: list[str], elapsed: float, manifest: Path
) -> None:
    counts = {s: sum(spk.split == s for spk in speakers) for s in ("train", "val", "test")}
    distinct = {s: len({spk.attribute_tuple for spk in speakers if spk.split == s}) for s in counts}
    print(
        f"[{CORPUS_NAME}] {len(speakers)} speakers ({', '.join(f'{s} {n}' for s, n in counts.items())}), "
        f"{len(rows)} utterances synthesised in {elapsed:.1f} s; distinct attribute tuples "
        f"{', '.join(f'{s} {distinct[s]}/{n}' for s, n in counts.items())} of {attribute_space(accents)} possible "
        f"-> {manifest}"
    )
