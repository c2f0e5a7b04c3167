"""Embedded local text-to-audio corpus (``tar_local``): synthetic sound scenes standing in for Clotho v2.

Clotho v2 (the thesis' only dataset, sec. 3.2) has 15-30 s Freesound recordings, each with five
crowd-sourced captions of 8-20 words, split 3840 / 1045 / 1045 into development / validation /
evaluation; every clip is its own retrieval target. Clotho is not reachable on the build machines,
so the ``local`` profile synthesises a corpus with the same *shape* from numpy and eSpeak NG:

* a clip is 5-10 s at 16 kHz (options ``min_s``/``max_s``), a background (near-silence, wind-like
  low-passed noise with gusts, or an electrical buzz) plus 1-3 foreground events of ten kinds:
  beeps, rising/falling chirps, sirens, hums, static bursts, clicks, knocks, bird-like tweets,
  rain-like noise and a spoken English word (eSpeak NG, male or female voice);
* events carry attributes a caption can state: pitch (low/high), loudness (quiet/loud, ~20 dB
  apart), repetition count, chirp direction, the voice's sex and the word; they are laid out in
  time order ("first ... then ...", "... before ...") and a siren, hum or rain may instead run under
  the others ("... while rain falls steadily");
* five *different* captions per clip are generated from the clip's event list with varied
  sentence structures, synonyms, attribute subsets and word orders, 8-20 words each, capitalised,
  sometimes with a final period (the workload's :func:`workloads.tar.text.preprocess_caption`
  removes it, as the paper's code does); a caption may omit a quiet event, as annotators do;
* splits named like the manifest contract: ``train`` (Clotho development), ``val`` (validation),
  ``test`` (evaluation), default 300 / 100 / 100 clips.

Retrieval is learnable but not trivial: ten event kinds over a few hundred clips means many clips
share their kinds, and what tells them apart is in the attributes and the order, which a bag of
nouns does not capture (the weakness Wu et al. found in real TAR systems, sec. 2.5.3).

What it does not model: real recordings (reverberation, microphones, natural sound variety),
Clotho's 15-30 s length, its open vocabulary and topic distribution (BERTopic finds 78 topics in
Clotho), caption noise and disagreement between annotators beyond omissions, and partial
relevance between clips with near-identical captions (the problem Primus et al. address). Numbers
from this corpus show that the pipeline works; the paper numbers need ``tar_clotho``.

Record: ``events.json`` next to the manifest holds each clip's background, events (kind, start/end
in s, attributes, synthesis parameters) and, per caption, which events and attributes it mentions.
The manifest itself has only the standard columns.

Determinism: every draw comes from a NumPy generator seeded through SHA-256 of (seed, split,
index, ...), never Python's salted ``hash``; eSpeak is reset before every utterance (see
:mod:`orchestrator.synth.espeak`), soxr and libsndfile are deterministic, so the same options and
package versions give byte-identical WAVs, ``events.json`` and manifest. The build folder is keyed
by a hash of exactly those inputs; the manifest is written last and atomically, so its presence
means the build finished.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import butter, fftconvolve, sosfilt

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
from workloads.tar.text import preprocess_caption

CORPUS_NAME = "tar_local"
SR = 16000
BUILD_VERSION = 1  # bump when the synthesis or caption recipe changes, so old caches are not reused
SPLIT_OPTIONS = (("train", "n_train"), ("val", "n_val"), ("test", "n_test"))
DEFAULT_OPTIONS: dict[str, Any] = {"n_train": 300, "n_val": 100, "n_test": 100, "seed": 0, "min_s": 5.0, "max_s": 10.0}
N_CAPTIONS = 5
CAPTION_WORDS = (8, 20)  # Clotho's caption length range

# ------------------------------------------------------------------------------ the event model

KINDS = ("beep", "chirp", "siren", "hum", "noise", "click", "knock", "tweet", "rain", "speech")
SUSTAINABLE = ("siren", "hum", "rain")  # may run under the other events ("... while ...")
BACKGROUNDS = ("silence", "wind", "buzz")
BACKGROUND_P = (0.4, 0.35, 0.25)
N_EVENTS_P = {1: 0.2, 2: 0.45, 3: 0.35}
P_SUSTAINED = 0.6
KIND_ATTRS: dict[str, tuple[str, ...]] = {
    "beep": ("loudness", "pitch", "count"),
    "chirp": ("loudness", "direction", "count"),
    "siren": ("loudness", "pitch"),
    "hum": ("loudness", "pitch"),
    "noise": ("loudness", "count"),
    "click": ("loudness", "count"),
    "knock": ("loudness", "count"),
    "tweet": ("loudness", "pitch", "count"),
    "rain": ("loudness",),
    "speech": ("loudness", "voice", "word", "count"),
}
COUNT_RANGE = {"beep": (1, 4), "chirp": (1, 3), "noise": (1, 3), "click": (2, 6), "knock": (2, 4),
               "tweet": (2, 5), "speech": (1, 2)}  # fmt: skip
SPOKEN_WORDS = ("hello", "goodbye", "yes", "no", "stop", "okay", "ready", "thanks", "welcome",
                "wait", "help", "sorry", "please", "listen", "attention", "good morning")  # fmt: skip
VOICE_VARIANTS = {"man": ("m1", "m2", "m3", "m4", "m5", "m6", "m7"), "woman": ("f1", "f2", "f3", "f4")}
LEVEL_DB = {"quiet": (-36.0, -30.0), "loud": (-16.0, -11.0)}  # active RMS, dBFS
BACKGROUND_DB = {"silence": (-74.0, -70.0), "wind": (-44.0, -38.0), "buzz": (-46.0, -40.0)}
PEAK_LIMIT = 0.95

# Words a caption uses for each kind / background / attribute value. Disjoint by construction, so a
# caption's text tells which kinds it mentions; the tests check every caption against its record.
KIND_PATTERNS = {
    "beep": r"\bbl?eeps?\b",
    "chirp": r"\bchirps?\b|\bsweep",
    "siren": r"\bsirens?\b|\bwail",
    "hum": r"\bhum|\bdron",
    "noise": r"\bstatic\b|\bburst",
    "click": r"\bclick",
    "knock": r"\bknock|\bthuds?\b",
    "tweet": r"\bbird|\btweet|\bsongbird|\bwarbl",
    "rain": r"\brain",
    "speech": r"\bman\b|\bwoman\b|\bmale\b|\bfemale\b|\bvoice\b|\bsays\b|\bsaying\b|\bshouts?\b|\bshouting\b"
              r"|\bspeaks?\b|\bspeaking\b|\bperson\b",
}  # fmt: skip
BACKGROUND_PATTERNS = {"silence": r"\bsilen", "wind": r"\bwind|\bbreeze|\bgusts?\b", "buzz": r"\bbuzz|\belectrical\b"}
ATTR_PATTERNS = {
    ("pitch", "low"): r"\blow\b|\bdeep\b",
    ("pitch", "high"): r"\bhigh\b|\bshrill\b",
    ("loudness", "quiet"): r"\bquiet|\bsoft|\bfaint|\bgentl|\blight\b|\blightly\b",
    ("loudness", "loud"): r"\bloud|\bstrong\b|\bintense\b|\bheav|\bhard\b|\bshout",
    ("direction", "rising"): r"\brising\b|\bupward\b|\bascending\b",
    ("direction", "falling"): r"\bfalling\b|\bdownward\b|\bdescending\b",
    ("voice", "man"): r"\bman\b|\bmale\b",
    ("voice", "woman"): r"\bwoman\b|\bfemale\b",
}
COUNT_PATTERNS = {1: r"\bonce\b|\bsingle\b", 2: r"\btwice\b|\btwo\b", 3: r"\bthree\b", 4: r"\bfour\b",
                  5: r"\bfive\b", 6: r"\bsix\b"}  # fmt: skip


@dataclass
class Event:
    kind: str
    attrs: dict[str, Any]  # the kind's KIND_ATTRS: loudness, pitch, count, direction, voice, word
    sustained: bool = False
    start: float = 0.0  # s
    end: float = 0.0
    params: dict[str, float | str] = field(default_factory=dict)  # synthesis parameters, for the record

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": round(self.start, 6), "end": round(self.end, 6),
                "sustained": self.sustained, "attrs": self.attrs, "params": self.params}  # fmt: skip


@dataclass
class Scene:
    clip_id: str
    n_samples: int
    background: str
    events: list[Event]  # time order of onsets

    @property
    def duration(self) -> float:
        return self.n_samples / SR


def _pick(rng: np.random.Generator, seq: Sequence[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def draw_attrs(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for a in KIND_ATTRS[kind]:
        if a == "loudness":
            attrs[a] = _pick(rng, ("quiet", "loud"))
        elif a == "pitch":
            attrs[a] = _pick(rng, ("low", "high"))
        elif a == "direction":
            attrs[a] = _pick(rng, ("rising", "falling"))
        elif a == "count":
            lo, hi = COUNT_RANGE[kind]
            attrs[a] = int(rng.integers(lo, hi + 1))
        elif a == "voice":
            attrs[a] = _pick(rng, ("man", "woman"))
        elif a == "word":
            attrs[a] = _pick(rng, SPOKEN_WORDS)
    return attrs


# ------------------------------------------------------------------------------------- synthesis


def _t(n: int) -> np.ndarray:
    return np.arange(n) / SR


def _fade(x: np.ndarray, ms: float) -> np.ndarray:
    """Raised-cosine fade in/out, so no event starts or ends with a click it is not meant to have."""
    n = min(len(x) // 2, int(SR * ms / 1000))
    if n > 0:
        w = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
        x[:n] *= w
        x[-n:] *= w[::-1]
    return x


def _osc(freq: np.ndarray, harmonics: Sequence[float] = (1.0,)) -> np.ndarray:
    """Oscillator following an instantaneous frequency track (Hz per sample)."""
    phase = 2 * np.pi * np.cumsum(freq) / SR
    return sum(a * np.sin((k + 1) * phase) for k, a in enumerate(harmonics))  # type: ignore[return-value]


def _train(units: Sequence[np.ndarray], onsets_s: Sequence[float]) -> np.ndarray:
    """Place units at onsets (s) in one buffer."""
    starts = [int(round(o * SR)) for o in onsets_s]
    out = np.zeros(max(s + len(u) for s, u in zip(starts, units, strict=True)))
    for s, u in zip(starts, units, strict=True):
        out[s : s + len(u)] += u
    return out


def _repeat(make: Callable[[], np.ndarray], count: int, gap_s: float) -> np.ndarray:
    units = [make() for _ in range(count)]
    onsets, t = [], 0.0
    for u in units:
        onsets.append(t)
        t += len(u) / SR + gap_s
    return _train(units, onsets)


def _band(x: np.ndarray, lo: float | None, hi: float | None, order: int = 2) -> np.ndarray:
    if lo and hi:
        sos = butter(order, [lo, hi], btype="bandpass", fs=SR, output="sos")
    elif lo:
        sos = butter(order, lo, btype="highpass", fs=SR, output="sos")
    else:
        sos = butter(order, hi, btype="lowpass", fs=SR, output="sos")
    return sosfilt(sos, x)


def _active_rms(x: np.ndarray) -> float:
    """RMS over the 10 ms frames within 30 dB of the loudest one: the level while the event sounds,
    not diluted by the gaps between repetitions (a caption's "loud" is about the sound itself)."""
    f = SR // 100
    n = max(1, len(x) // f)
    frames = np.pad(x, (0, n * f + f - len(x)))[: n * f].reshape(n, f)
    e = (frames**2).mean(axis=1)
    keep = e >= e.max() * 1e-3
    return float(np.sqrt(e[keep].mean())) if e.max() > 0 else 0.0


def _set_level(x: np.ndarray, db: float) -> np.ndarray:
    rms = _active_rms(x)
    return x * (10 ** (db / 20) / rms) if rms > 0 else x


def _r(v: float) -> float:
    return round(float(v), 3)


def _beep(a: dict[str, Any], rng: np.random.Generator, p: dict[str, Any]) -> np.ndarray:
    f = rng.uniform(*((300.0, 600.0) if a["pitch"] == "low" else (1600.0, 3000.0)))
    on, gap = rng.uniform(0.12, 0.3), rng.uniform(0.12, 0.3)
    p.update(freq=_r(f), on_s=_r(on), gap_s=_r(gap))
    n = int(on * SR)
    return _repeat(lambda: _fade(_osc(np.full(n, f), (1.0, 0.15)), 5), a["count"], gap)


def _chirp(a: dict[str, Any], rng: np.random.Generator, p: dict[str, Any]) -> np.ndarray:
    lo, hi = rng.uniform(400.0, 800.0), rng.uniform(2200.0, 3800.0)
    d, gap = rng.uniform(0.3, 0.8), rng.uniform(0.15, 0.35)
    f0, f1 = (lo, hi) if a["direction"] == "rising" else (hi, lo)
    p.update(f_start=_r(f0), f_end=_r(f1), sweep_s=_r(d), gap_s=_r(gap))
    t = _t(int(d * SR))
    track = f0 * (f1 / f0) ** (t / d)  # exponential sweep: equal time per octave, as heard
    return _repeat(lambda: _fade(_osc(track, (1.0, 0.2)), 8), a["count"], gap)


def _siren(a: dict[str, Any], rng: np.random.Generator, p: dict[str, Any], span: float) -> np.ndarray:
    fc = rng.uniform(*((450.0, 650.0) if a["pitch"] == "low" else (900.0, 1300.0)))
    rate, phase = rng.uniform(0.3, 1.0), rng.uniform(0, 2 * np.pi)
    p.update(center=_r(fc), wail_hz=_r(rate))
    t = _t(int(span * SR))
    return _fade(_osc(fc * (1 + 0.25 * np.sin(2 * np.pi * rate * t + phase)), (1.0, 0.4, 0.2)), 50)


def _hum(a: dict[str, Any], rng: np.random.Generator, p: dict[str, Any], span: float) -> np.ndarray:
    f0 = rng.uniform(*((55.0, 110.0) if a["pitch"] == "low" else (180.0, 320.0)))
    p.update(f0=_r(f0))
    t = _t(int(span * SR))
    x = _osc(np.full(t.size, f0), [1 / k for k in range(1, 7)])
    return _fade(x * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * t)), 100)


def _noise(a: dict[str, Any], rng: np.random.Generator, p: dict[str, Any]) -> np.ndarray:
    d, gap = rng.uniform(0.15, 0.5), rng.uniform(0.15, 0.35)
    lo, hi = rng.uniform(300.0, 1500.0), rng.uniform(3000.0, 7000.0)
    p.update(burst_s=_r(d), gap_s=_r(gap), band_lo=_r(lo), band_hi=_r(hi))
    n = int(d * SR)
    return _repeat(lambda: _fade(_band(rng.standard_normal(n), lo, hi), 10), a["count"], gap)


def _click(a: dict[str, Any], rng: np.random.Generator, p: dict[str, Any]) -> np.ndarray:
    interval = rng.uniform(0.12, 0.35)
    p.update(interval_s=_r(interval))
    n = int(0.004 * SR)

    def unit() -> np.ndarray:
        return np.diff(rng.standard_normal(n + 1) * np.exp(-_t(n + 1) / 0.0008))  # bright transient

    return _train([unit() for _ in range(a["count"])], [k * interval for k in range(a["count"])])


def _knock(a: dict[str, Any], rng: np.random.Generator, p: dict[str, Any]) -> np.ndarray:
    f, interval = rng.uniform(90.0, 220.0), rng.uniform(0.15, 0.3)
    p.update(freq=_r(f), interval_s=_r(interval))
    t = _t(int(0.12 * SR))

    def unit() -> np.ndarray:
        body = np.sin(2 * np.pi * f * t) * np.exp(-t / 0.03)
        tap = _band(rng.standard_normal(t.size) * np.exp(-t / 0.004), None, 2000.0)
        return body + 0.3 * tap

    return _train([unit() for _ in range(a["count"])], [k * interval for k in range(a["count"])])


def _tweet(a: dict[str, Any], rng: np.random.Generator, p: dict[str, Any]) -> np.ndarray:
    base = rng.uniform(*((1800.0, 2800.0) if a["pitch"] == "low" else (3500.0, 5000.0)))
    d, interval = rng.uniform(0.06, 0.15), rng.uniform(0.2, 0.35)
    p.update(base=_r(base), tweet_s=_r(d), interval_s=_r(interval))
    t = _t(int(d * SR))
    track = base * (1 + 0.25 * np.sin(np.pi * t / d)) + 0.05 * base * np.sin(2 * np.pi * 30 * t)
    unit = _osc(track) * np.sin(np.pi * t / d)
    return _train([unit] * a["count"], [k * interval for k in range(a["count"])])


def _rain(a: dict[str, Any], rng: np.random.Generator, p: dict[str, Any], span: float) -> np.ndarray:
    rate = rng.uniform(80.0, 250.0)
    p.update(drops_per_s=_r(rate))
    n = int(span * SR)
    drops = np.zeros(n)
    k = rng.poisson(rate * span)
    drops[rng.integers(0, n, size=k)] = rng.uniform(0.3, 1.0, size=k)
    kt = _t(int(0.006 * SR))
    kernel = rng.standard_normal(kt.size) * np.exp(-kt / 0.0015)
    patter = _band(fftconvolve(drops, kernel)[:n], 1000.0, 7000.0)
    bed = _band(rng.standard_normal(n), 1000.0, None)
    return _fade(patter / (np.std(patter) or 1.0) + 0.3 * bed, 200)


def _trim(audio: np.ndarray, sr: int) -> np.ndarray:
    """Keep whole 10 ms frames within 40 dB of the loudest: eSpeak pads its output with silence."""
    f = sr // 100
    n = len(audio) // f
    e = (audio[: n * f].reshape(n, f).astype(np.float64) ** 2).mean(axis=1)
    loud = np.flatnonzero(e > e.max() * 1e-4) if n and e.max() > 0 else np.array([], int)
    return audio[loud[0] * f : (loud[-1] + 1) * f] if loud.size else audio[:0]


def _speech(a: dict[str, Any], rng: np.random.Generator, p: dict[str, Any]) -> np.ndarray:
    from orchestrator.synth.espeak import synthesize

    variant = _pick(rng, VOICE_VARIANTS[a["voice"]])
    rate, pitch, gap = int(rng.integers(130, 171)), int(rng.integers(35, 66)), rng.uniform(0.25, 0.45)
    p.update(variant=variant, rate=rate, pitch=pitch, gap_s=_r(gap))
    audio, sr, _ = synthesize(a["word"], voice="en-us", variant=variant, rate=rate, pitch=pitch)
    word = soxr.resample(_trim(audio, sr).astype(np.float64), sr, SR)
    return _repeat(lambda: _fade(word.copy(), 5), a["count"], gap)


_DISCRETE = {"beep": _beep, "chirp": _chirp, "noise": _noise, "click": _click, "knock": _knock,
             "tweet": _tweet, "speech": _speech}  # fmt: skip
_CONTINUOUS = {"siren": _siren, "hum": _hum, "rain": _rain}


def render_event(ev: Event, rng: np.random.Generator, span: float | None = None) -> np.ndarray:
    """The event's waveform at unit level, before its loudness is applied; ``span`` (s) sets the
    length of a continuous kind (siren, hum, rain); the others last as long as their content."""
    ev.params = {}
    if ev.kind in _CONTINUOUS:
        if span is None:
            span = rng.uniform(1.5, 3.5)
        return _CONTINUOUS[ev.kind](ev.attrs, rng, ev.params, span)
    return _DISCRETE[ev.kind](ev.attrs, rng, ev.params)


def render_background(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    floor = rng.standard_normal(n)
    if kind == "silence":
        x = floor
    elif kind == "wind":
        t = _t(n)
        gusts = 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 2 * np.pi))
        x = _band(floor, None, rng.uniform(150.0, 500.0)) * gusts
    else:  # buzz: mains hum through a saturating amplifier
        f = _pick(rng, (50.0, 60.0))
        x = np.tanh(3 * _osc(np.full(n, f), [1 / k for k in range(1, 9)])) + 0.05 * floor
    return _set_level(x, rng.uniform(*BACKGROUND_DB[kind]))


# ------------------------------------------------------------------------------------ the scenes


def plan_and_render(clip_id: str, key: tuple[Any, ...], min_s: float, max_s: float) -> tuple[Scene, np.ndarray]:
    """Draw a scene (background, events, attributes, times) and render it (float32 mono, SR).

    Discrete events get equal time slots in onset order; an event that does not fit its slot loses
    repetitions (the record and the captions state the count that was rendered). A sustained
    siren/hum/rain spans most of the clip under the others.
    """
    rng = seeded_rng("scene", *key)
    n = int(np.clip(round(rng.uniform(min_s, max_s) * SR), np.ceil(min_s * SR), np.floor(max_s * SR)))
    duration = n / SR
    background = str(rng.choice(BACKGROUNDS, p=BACKGROUND_P))
    n_events = int(rng.choice(list(N_EVENTS_P), p=list(N_EVENTS_P.values())))
    pool = [k for k in KINDS if not (background == "buzz" and k == "hum")]
    kinds = [str(k) for k in rng.choice(pool, size=n_events, replace=False)]
    events = [Event(k, draw_attrs(k, rng)) for k in kinds]
    if n_events >= 2 and any(k in SUSTAINABLE for k in kinds) and rng.random() < P_SUSTAINED:
        next(e for e in events if e.kind in SUSTAINABLE).sustained = True

    mix = render_background(background, n, seeded_rng("background", *key))
    seq = [e for e in events if not e.sustained]
    slot = duration / len(seq)
    for j, ev in enumerate(events):
        erng = seeded_rng("event", *key, j)
        if ev.sustained:
            ev.start = erng.uniform(0, 0.2 * duration)
            ev.end = erng.uniform(0.8 * duration, duration)
            audio = render_event(ev, erng, ev.end - ev.start)
        else:
            room = slot - 0.3
            audio = render_event(ev, erng, min(erng.uniform(1.5, 3.5), room) if ev.kind in _CONTINUOUS else None)
            while len(audio) > room * SR and ev.attrs.get("count", 1) > COUNT_RANGE.get(ev.kind, (1, 1))[0]:
                ev.attrs["count"] -= 1
                erng = seeded_rng("event", *key, j, ev.attrs["count"])
                audio = render_event(ev, erng)
            if len(audio) > room * SR:  # only with a very short min_s: cut with a fade-out
                audio = _fade(audio[: int(room * SR)], 20)
            i = next(k for k, e in enumerate(seq) if e is ev)
            ev.start = i * slot + 0.15 + erng.uniform(0, max(0.0, room - len(audio) / SR))
            ev.end = ev.start + len(audio) / SR
        audio = _set_level(audio, erng.uniform(*LEVEL_DB[ev.attrs["loudness"]]))
        s = int(round(ev.start * SR))
        audio = audio[: n - s]
        ev.start, ev.end = s / SR, (s + len(audio)) / SR  # on the sample grid: the record is exact
        mix[s : s + len(audio)] += audio
    peak = float(np.abs(mix).max())
    if peak > PEAK_LIMIT:
        mix *= PEAK_LIMIT / peak
    events.sort(key=lambda e: e.start)
    return Scene(clip_id, n, background, events), mix.astype(np.float32)


# -------------------------------------------------------------------------------------- captions

NUM = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
ADV = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times", 6: "six times"}
LOUD_ADJ = {"quiet": ("quiet", "soft", "faint"), "loud": ("loud", "strong", "intense")}
RAIN_ADJ = {"quiet": ("light", "gentle"), "loud": ("heavy", "loud")}
LOUD_ADV = {"quiet": ("softly", "gently", "quietly"), "loud": ("loudly", "hard")}
PITCH_ADJ = {"low": ("low", "low-pitched", "deep"), "high": ("high", "high-pitched", "shrill")}
DIR_ADJ = {"rising": ("rising", "ascending"), "falling": ("falling", "descending")}
DIR_ADV = {"rising": "upward", "falling": "downward"}
BACKGROUND_PHRASES = {
    "silence": ("in an otherwise silent room", "against a silent background", "in near silence"),
    "wind": ("with wind blowing in the background", "over the sound of wind", "as a breeze blows",
             "with gusts of wind behind it"),
    "buzz": ("with an electrical buzz in the background", "over a steady electrical buzz",
             "while electricity buzzes in the background"),
}  # fmt: skip


def _art(s: str) -> str:
    return ("an " if s[:1] in "aeiou" else "a ") + s


def _plural(noun: str) -> str:
    """'burst of static' -> 'bursts of static', 'electronic beep' -> 'electronic beeps'."""
    words = noun.split()
    i = next((k - 1 for k, w in enumerate(words) if w in ("of", "on")), len(words) - 1)
    words[i] += "es" if words[i].endswith("sh") else "s"
    return " ".join(words)


class _Phraser:
    """Turns one event into a clause ("a high beep repeats twice") or a noun phrase ("two high
    beeps"), stating the attributes in ``use``; returns the attributes the text actually states."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def pick(self, seq: Sequence[str]) -> str:
        return _pick(self.rng, seq)

    def adjs(self, ev: Event, use: set[str], loud: dict[str, tuple[str, ...]] = LOUD_ADJ) -> tuple[str, set[str]]:
        words, said = [], set()
        if "loudness" in use:
            words.append(self.pick(loud[ev.attrs["loudness"]]))
            said.add("loudness")
        if "direction" in use:
            words.append(self.pick(DIR_ADJ[ev.attrs["direction"]]))
            said.add("direction")
        if "pitch" in use:
            words.append(self.pick(PITCH_ADJ[ev.attrs["pitch"]]))
            said.add("pitch")
        return "".join(w + " " for w in words), said

    def counted(
        self, ev: Event, use: set[str], form: str, nouns: Sequence[str], verbs: Sequence[tuple[str, str]]
    ) -> tuple[str, set[str]]:
        """Shared grammar of repeated sounds; ``verbs`` are (singular, plural) pairs."""
        adj, said = self.adjs(ev, use)
        noun = self.pick(nouns)
        sg, pl = verbs[int(self.rng.integers(len(verbs)))]
        c = ev.attrs["count"]
        if c == 1:
            if "count" in use:
                said.add("count")
                if form == "clause" and self.rng.random() < 0.3:
                    return f"{_art(adj + noun)} {sg} once", said
                head = f"a single {adj}{noun}"
            else:
                head = _art(adj + noun)
            return (head if form == "np" else f"{head} {sg}"), said
        if "count" in use:
            said.add("count")
            if form == "np":
                return self.pick((f"{NUM[c]} {adj}{_plural(noun)}", f"{_art(adj + noun)} repeated {ADV[c]}")), said
            return self.pick((f"{_art(adj + noun)} repeats {ADV[c]}", f"{_art(adj + noun)} {sg} {ADV[c]}",
                              f"{NUM[c]} {adj}{_plural(noun)} {pl}")), said  # fmt: skip
        if form == "np":
            return self.pick((f"a series of {adj}{_plural(noun)}", f"repeated {adj}{_plural(noun)}")), said
        return self.pick((f"{adj}{_plural(noun)} {pl}", f"{_art(adj + noun)} {sg} repeatedly")), said

    # --- one method per kind -------------------------------------------------------------------

    def beep(self, ev: Event, use: set[str], form: str) -> tuple[str, set[str]]:
        return self.counted(ev, use, form, ("beep", "bleep", "electronic beep"),
                            (("sounds", "sound"), ("goes off", "go off"), ("rings out", "ring out")))  # fmt: skip

    def chirp(self, ev: Event, use: set[str], form: str) -> tuple[str, set[str]]:
        if form == "clause" and "direction" in use and self.rng.random() < 0.35:
            adj, said = self.adjs(ev, use - {"direction"})
            tail = f" {ADV[ev.attrs['count']]}" if "count" in use and ev.attrs["count"] > 1 else ""
            said |= {"direction"} | ({"count"} if tail else set())
            return f"{_art(adj + 'tone')} sweeps {DIR_ADV[ev.attrs['direction']]}{tail}", said
        return self.counted(ev, use, form, ("chirp", "electronic chirp", "sweeping tone"),
                            (("sounds", "sound"), ("rings out", "ring out")))  # fmt: skip

    def noise(self, ev: Event, use: set[str], form: str) -> tuple[str, set[str]]:
        return self.counted(ev, use, form, ("burst of static", "burst of noise", "static burst"),
                            (("crackles", "crackle"), ("is heard", "are heard")))  # fmt: skip

    def click(self, ev: Event, use: set[str], form: str) -> tuple[str, set[str]]:
        if form == "clause" and "count" in use and self.rng.random() < 0.3:
            said = {"count"}
            adv = ""
            if "loudness" in use:
                adv, said = f" {self.pick(LOUD_ADV[ev.attrs['loudness']])}", said | {"loudness"}
            return f"something clicks{adv} {ADV[ev.attrs['count']]}", said
        return self.counted(ev, use, form, ("click", "sharp click", "mechanical click"),
                            (("is heard", "are heard"), ("sounds", "sound")))  # fmt: skip

    def knock(self, ev: Event, use: set[str], form: str) -> tuple[str, set[str]]:
        if form == "clause" and self.rng.random() < 0.45:
            said: set[str] = set()
            adv = ""
            if "loudness" in use:
                adv, said = f" {self.pick(LOUD_ADV[ev.attrs['loudness']])}", {"loudness"}
            if "count" in use:
                said.add("count")
                adv += f" {ADV[ev.attrs['count']]}"
            return f"someone knocks{self.pick(('', ' on a door'))}{adv}", said
        return self.counted(ev, use, form, ("knock", "knock on a door", "thud"),
                            (("is heard", "are heard"), ("sounds", "sound")))  # fmt: skip

    def tweet(self, ev: Event, use: set[str], form: str) -> tuple[str, set[str]]:
        if form == "clause" and self.rng.random() < 0.45:
            adj, said = self.adjs(ev, use)
            verb = self.pick(("tweets", "sings", "warbles", "calls"))
            tail = ""
            if "count" in use:
                said.add("count")
                tail = f" {ADV[ev.attrs['count']]}"
            return f"{_art(adj + self.pick(('bird', 'songbird')))} {verb}{tail}", said
        return self.counted(ev, use, form, ("bird tweet", "tweet", "bird call"),
                            (("rings out", "ring out"), ("is heard", "are heard")))  # fmt: skip

    def siren(self, ev: Event, use: set[str], form: str) -> tuple[str, set[str]]:
        adj, said = self.adjs(ev, use)
        head = _art(adj + self.pick(("siren", "alarm siren", "emergency siren")))
        if form == "np":
            if ev.sustained:
                return self.pick((f"{head} wailing", f"the constant wail of {head}")), said
            return self.pick((head, f"the wail of {head}")), said
        verbs = ("wails continuously", "keeps wailing", "wails throughout") if ev.sustained else (
            "wails briefly", "wails", "rises and falls")
        return f"{head} {self.pick(verbs)}", said

    def hum(self, ev: Event, use: set[str], form: str) -> tuple[str, set[str]]:
        adj, said = self.adjs(ev, use)
        noun = self.pick(("hum", "drone", "motor hum", "humming motor"))
        if form == "np":
            lead = self.pick(("a constant ", "a steady ", "")) if ev.sustained else self.pick(("a brief ", ""))
            return (f"{lead}{adj}{noun}" if lead else _art(adj + noun)), said
        verbs = ("continues", "goes on steadily", "persists throughout") if ev.sustained else (
            "is heard briefly", "fades in and out")
        return f"{_art(adj + noun)} {self.pick(verbs)}", said

    def rain(self, ev: Event, use: set[str], form: str) -> tuple[str, set[str]]:
        adj, said = self.adjs(ev, use, RAIN_ADJ)
        if form == "np":
            options = (f"{adj}rain", f"steady {adj}rain", f"the patter of {adj}rain") if ev.sustained else (
                f"a short shower of {adj}rain", f"a brief {adj}rain shower")
            return self.pick(options), said
        if "loudness" in use and self.rng.random() < 0.3:
            adv = {"quiet": ("lightly", "gently"), "loud": ("heavily", "hard")}[ev.attrs["loudness"]]
            return f"it rains {self.pick(adv)}{' throughout' if ev.sustained else ' for a moment'}", said
        verbs = ("falls steadily", "keeps pouring", "patters throughout") if ev.sustained else (
            "falls briefly", "patters for a moment")
        return f"{adj}rain {self.pick(verbs)}", said

    def speech(self, ev: Event, use: set[str], form: str) -> tuple[str, set[str]]:
        a, said = ev.attrs, set()
        gendered = "voice" in use
        loud_adj = ""
        if "loudness" in use and self.rng.random() < 0.5:
            loud_adj = self.pick(LOUD_ADJ[a["loudness"]]) + " "
            said.add("loudness")
        if gendered:
            said.add("voice")
            sex = {"man": ("a man", "male"), "woman": ("a woman", "female")}[a["voice"]]
            who = f"a {loud_adj}{sex[1]} voice" if loud_adj or self.rng.random() < 0.3 else sex[0]
        else:
            plain = self.pick(("someone", "a person"))
            who = _art(loud_adj + "voice") if loud_adj or self.rng.random() < 0.3 else plain
        verb = "says"
        if "loudness" in use and not loud_adj:
            said.add("loudness")
            verb = self.pick(("loudly says", "shouts")) if a["loudness"] == "loud" else self.pick(
                ("quietly says", "softly says"))
        twice = a["count"] == 2 and "count" in use
        if twice:
            said.add("count")
        tail = " twice" if twice else ""
        if "word" not in use:  # the verb still carries the loudness it was chosen for
            body = {"says": ("speaks briefly", "speaking briefly"), "loudly says": ("speaks loudly", "speaking loudly"),
                    "shouts": ("shouts briefly", "shouting briefly"),
                    "quietly says": ("speaks quietly", "speaking quietly"),
                    "softly says": ("speaks softly", "speaking softly")}[verb][form == "np"]  # fmt: skip
            return f"{who} {body}{tail}", said
        said.add("word")
        word = self.pick((a["word"], f"the word {a['word']}"))
        if form == "np":
            ing = {"says": "saying", "loudly says": "loudly saying", "shouts": "shouting",
                   "quietly says": "quietly saying", "softly says": "softly saying"}[verb]  # fmt: skip
            return f"{who} {ing} {word}{tail}", said
        return f"{who} {verb} {word}{tail}", said

    def phrase(self, ev: Event, use: set[str], form: str) -> tuple[str, set[str]]:
        return getattr(self, ev.kind)(ev, use, form)


# Sentence structures. C = clause, N = noun phrase, in onset order; S = the sustained event.
# {be1} is "is" or "are" to agree with {N1}.
SEQ_FAMILIES: dict[int, tuple[str, ...]] = {
    1: ("{C1}", "{N1} can be heard", "there {be1} {N1}", "in this recording {C1}", "{N1} {be1} heard"),
    2: ("{C1} and then {C2}", "first {C1}, then {C2}", "{C1} before {C2}", "{C2} after {C1}",
        "{N1} {be1} followed by {N2}", "{C1}, followed by {N2}", "after {N1}, {C2}"),
    3: ("{C1}, then {C2}, and finally {C3}", "first {C1}, next {C2}, and then {C3}",
        "{N1} {be1} followed by {N2} and then {N3}", "{C1} before {C2}, and then {C3}",
        "after {N1}, {C2} and then {C3}", "{C1}, {C2}, and finally {C3}"),
}  # fmt: skip
NESTED_SINGLE = ("{C1}", "{N1} can be heard", "{N1} {be1} heard")  # a lone event inside "... while ..."
SUSTAINED_FAMILIES = ("{CS} while {SEQ}", "{SEQ} while {CS}", "{SEQ} as {CS}", "{SEQ} over {NS}",
                      "{NS} {beS} heard throughout as {SEQ}")  # fmt: skip
_PLURAL_LEAD = tuple(f"{w} " for w in (*list(NUM.values())[1:], "repeated"))


def _be(noun_phrase: str) -> str:
    """Verb agreement for the noun phrases _Phraser makes: plural ones start with a number > 1
    ("three beeps") or "repeated" ("repeated clicks"); "a series of clicks" is singular."""
    return "are" if noun_phrase.startswith(_PLURAL_LEAD) else "is"


@dataclass
class Caption:
    text: str
    mentions: dict[int, list[str]]  # event index (in Scene.events) -> attributes stated
    background: bool
    structure: str


def _compose(scene: Scene, ph: _Phraser, rng: np.random.Generator, p_attr: float, with_bg: bool,
             omit: int | None, family: int) -> Caption:  # fmt: skip
    mentions: dict[int, list[str]] = {}

    def say(i: int, form: str) -> str:
        ev = scene.events[i]
        # the word is what a listener notes first about speech, so it is rarely left out
        use = {a for a in KIND_ATTRS[ev.kind] if rng.random() < (max(p_attr, 0.85) if a == "word" else p_attr)}
        text, said = ph.phrase(ev, use, form)
        mentions[i] = sorted(said)
        return text

    idx = [i for i in range(len(scene.events)) if i != omit]
    sustained = next((i for i in idx if scene.events[i].sustained), None)
    seq = [i for i in idx if i != sustained]
    if not seq:  # only the sustained event is left: say it as a single event
        seq, sustained = [sustained], None  # type: ignore[list-item]
    fams = NESTED_SINGLE if sustained is not None and len(seq) == 1 else SEQ_FAMILIES[len(seq)]
    seq_t = fams[family % len(fams)]
    fields = {}
    for k, i in enumerate(seq, 1):
        if f"{{C{k}}}" in seq_t:
            fields[f"C{k}"] = say(i, "clause")
        if f"{{N{k}}}" in seq_t:
            fields[f"N{k}"] = say(i, "np")
            fields[f"be{k}"] = _be(fields[f"N{k}"])
    text = seq_t.format(**fields)
    structure = seq_t
    if sustained is not None:
        outer = SUSTAINED_FAMILIES[int(rng.integers(len(SUSTAINED_FAMILIES)))]
        form = "np" if "{NS}" in outer else "clause"
        s_text = say(sustained, form)
        text = outer.format(SEQ=text, CS=s_text, NS=s_text, beS=_be(s_text))
        structure = outer.replace("{SEQ}", seq_t)
    if with_bg:
        bg = ph.pick(BACKGROUND_PHRASES[scene.background])
        text = f"{bg}, {text}" if rng.random() < 0.2 and bg.startswith(("in ", "over ", "against ")) else f"{text} {bg}"
    return Caption(text, mentions, with_bg, structure)


def _finish(text: str, rng: np.random.Generator) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = text[0].upper() + text[1:]
    return text + "." if rng.random() < 0.5 else text


def make_captions(scene: Scene, key: tuple[Any, ...]) -> list[Caption]:
    """Five distinct (after preprocessing) captions of 8-20 words, each from its own sentence
    structure where the clip allows it. Each caption states a random subset of the attributes;
    captions 4 and 5 may leave out one quiet event when there are three."""
    rng = seeded_rng("captions", *key)
    ph = _Phraser(rng)
    lo, hi = CAPTION_WORDS
    quiet = [i for i, e in enumerate(scene.events) if e.attrs["loudness"] == "quiet"]
    base = int(rng.integers(420))  # caption c starts from structure base + c: distinct structures
    out: list[Caption] = []
    seen: set[str] = set()

    def off(n: int) -> int:
        return max(lo - n, 0, n - hi)

    for c in range(N_CAPTIONS):
        best: Caption | None = None
        for attempt in range(300):
            omit = None
            if c >= 3 and len(scene.events) == 3 and quiet and rng.random() < 0.3:
                omit = int(_pick(rng, quiet))
            family = base + c if attempt < 20 else int(rng.integers(420))
            p_attr = float(rng.uniform(0.4, 0.9))
            cap = _compose(scene, ph, rng, p_attr, rng.random() < 0.4, omit, family)
            n = len(cap.text.split())
            if n < lo and not cap.background:
                cap = _compose(scene, ph, rng, min(1.0, p_attr + 0.3), True, omit, family)
                n = len(cap.text.split())
            cap.text = _finish(cap.text, rng)
            key_text = preprocess_caption(cap.text)
            if key_text in seen:
                continue
            if lo <= n <= hi:
                best = cap
                break
            if best is None or off(n) < off(len(best.text.split())):
                best = cap
        assert best is not None
        seen.add(preprocess_caption(best.text))
        out.append(best)
    return out


# -------------------------------------------------------------------------------------- building


def resolve_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options that define the corpus, defaults filled in; unknown keys and bad values are errors."""
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ManifestError(f"{CORPUS_NAME}: unknown option(s) {unknown}; known: {sorted(DEFAULT_OPTIONS)}")
    cfg = {k: type(v)(options.get(k, v)) for k, v in DEFAULT_OPTIONS.items()}
    if any(cfg[o] < 0 for _, o in SPLIT_OPTIONS) or sum(cfg[o] for _, o in SPLIT_OPTIONS) == 0:
        raise ManifestError(f"{CORPUS_NAME}: n_train/n_val/n_test must be >= 0 and not all 0, got "
                            f"{[cfg[o] for _, o in SPLIT_OPTIONS]}")  # fmt: skip
    if not 2.0 <= cfg["min_s"] <= cfg["max_s"] <= 60.0:
        raise ManifestError(f"{CORPUS_NAME}: need 2 <= min_s <= max_s <= 60, got {cfg['min_s']}, {cfg['max_s']}")
    return cfg


def build_clip(split: str, index: int, cfg: dict[str, Any]) -> tuple[Scene, np.ndarray, list[Caption]]:
    """One clip: its scene, audio and captions; depends only on (seed, split, index, min_s, max_s)."""
    key = (cfg["seed"], split, index)
    scene, audio = plan_and_render(f"{split}/scene_{index:05d}", key, cfg["min_s"], cfg["max_s"])
    return scene, audio, make_captions(scene, key)


@register_corpus(CORPUS_NAME)
def build_tar_local(req: CorpusRequest) -> Path:
    """Build (or find cached) the synthetic Clotho stand-in; returns the manifest path."""
    cfg = resolve_options(req.options)
    key = {"corpus": CORPUS_NAME, **cfg, "version": BUILD_VERSION, "pkgs": package_versions(("espeakng-loader", "numpy", "scipy", "soxr", "soundfile"))}
    out_dir = build_dir(Path(req.work_dir) / CORPUS_NAME, key)
    manifest = out_dir / "manifest.parquet"
    if manifest.exists():
        return manifest

    from orchestrator.synth.espeak import Espeak

    Espeak.for_corpus(CORPUS_NAME)
    t0 = time.perf_counter()
    rows, record, off_length = [], {}, 0
    for split, opt in SPLIT_OPTIONS:
        for index in range(cfg[opt]):
            scene, audio, captions = build_clip(split, index, cfg)
            rel = f"audio/{scene.clip_id}.wav"
            write_atomic(out_dir / rel, lambda p, a=audio: sf.write(p, a, SR, subtype="PCM_16", format="WAV"))
            off_length += sum(not CAPTION_WORDS[0] <= len(c.text.split()) <= CAPTION_WORDS[1] for c in captions)
            rows.append({"id": scene.clip_id, "split": split, "audio_path": rel, "sr": SR, "offset": 0.0,
                         "duration": scene.duration, "texts": [c.text for c in captions],
                         "label": scene.clip_id, "speaker": None, "language": None})  # fmt: skip
            record[scene.clip_id] = {
                "duration": scene.duration,
                "background": scene.background,
                "events": [e.record() for e in scene.events],
                "captions": [{"text": c.text, "structure": c.structure, "background": c.background,
                              "mentions": {str(i): a for i, a in sorted(c.mentions.items())}} for c in captions],
            }  # fmt: skip
    write_atomic(out_dir / "config.json", lambda p: p.write_text(json.dumps(key, indent=1, sort_keys=True)))
    write_atomic(out_dir / "events.json", lambda p: p.write_text(json.dumps(record, indent=1, sort_keys=True)))
    write_manifest(manifest_table(rows), manifest)
    counts = ", ".join(f"{s} {cfg[o]}" for s, o in SPLIT_OPTIONS)
    warn = f"; {off_length} caption(s) outside {CAPTION_WORDS} words" if off_length else ""
    print(f"[{CORPUS_NAME}] {len(rows)} clips ({counts}), {len(rows) * N_CAPTIONS} captions, "
          f"{sum(r['duration'] for r in rows) / 60:.1f} min of audio in {time.perf_counter() - t0:.1f} s"
          f"{warn} -> {manifest}")  # fmt: skip
    return manifest
