"""The in-process eSpeak NG synthesiser really speaks: real library, real voices, no stand-ins."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from orchestrator.synth.espeak import SAMPLE_RATE, Espeak, EspeakError, synthesize


def median_f0(audio: np.ndarray, sr: int) -> float:
    """Autocorrelation pitch over loud 40 ms frames (60..400 Hz), median across frames."""
    frame, hop = int(0.04 * sr), int(0.01 * sr)
    lo, hi = sr // 400, sr // 60
    frames = [audio[i : i + frame] for i in range(0, len(audio) - frame, hop)]
    peak_rms = max(np.sqrt(np.mean(f**2)) for f in frames)
    f0s = []
    for f in frames:
        if np.sqrt(np.mean(f**2)) < 0.3 * peak_rms:
            continue
        f = f - f.mean()
        ac = np.correlate(f, f, "full")[frame - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            f0s.append(sr / lag)
    assert f0s, "no voiced frames found"
    return float(np.median(f0s))


def test_speech_is_non_silent_and_speech_band():
    audio, sr, _ = synthesize("välkommen till stockholm", voice="sv", variant="m3")
    assert sr == SAMPLE_RATE == 22050
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.5 < len(audio) / sr < 4.0
    assert np.abs(audio).max() > 0.1
    assert np.sqrt(np.mean(audio**2)) > 0.01
    spec = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / sr)
    assert spec[(freqs > 80) & (freqs < 4000)].sum() > 0.8 * spec.sum()  # voiced speech band
    # syllables: the 20 ms energy envelope rises and falls rather than being a flat tone
    env = np.sqrt(np.mean(audio[: len(audio) // 441 * 441].reshape(-1, 441) ** 2, axis=1))
    loud = env[env > 0.05 * env.max()]
    assert loud.std() / loud.mean() > 0.3


def test_duration_grows_with_text_length():
    lengths = [
        len(synthesize(t, voice="sv", variant="m1")[0])
        for t in ("hej", "hej och välkommen", "hej och välkommen till stockholm i dag på morgonen")
    ]
    assert lengths[0] < lengths[1] < lengths[2]


def test_word_events_mark_word_starts():
    text = "hej på dig vad heter du"
    audio, sr, events = synthesize(text, voice="sv", variant=None)
    starts = [i for i, c in enumerate(text) if c != " " and (i == 0 or text[i - 1] == " ")]
    assert [pos for pos, _ in events] == starts
    ms = [t for _, t in events]
    assert ms == sorted(ms) and ms[0] < 50 and ms[-1] < 1000 * len(audio) / sr


def test_variants_and_pitch_parameter_change_f0():
    male = median_f0(synthesize("jag kommer hem i morgon", voice="sv", variant="m3")[0], SAMPLE_RATE)
    female = median_f0(synthesize("jag kommer hem i morgon", voice="sv", variant="f2")[0], SAMPLE_RATE)
    assert 70 < male < 140 and 150 < female < 300 and female > 1.4 * male
    low = median_f0(synthesize("jag kommer hem", variant="m3", pitch=20)[0], SAMPLE_RATE)
    high = median_f0(synthesize("jag kommer hem", variant="m3", pitch=80)[0], SAMPLE_RATE)
    assert high > 1.25 * low


def test_rate_changes_duration_and_voice_name_forms_agree():
    slow = synthesize("kommer hem", voice="sv", variant="m3", rate=100)[0]
    fast = synthesize("kommer hem", voice="sv", variant="m3", rate=250)[0]
    assert len(slow) > 1.5 * len(fast)
    a = synthesize("kommer", voice="sv+f2", variant=None)[0]
    b = synthesize("kommer", voice="sv", variant="f2")[0]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("lang", ["sv", "da", "nb", "fi", "en-us"])
def test_languages_synthesise(lang):
    audio, _, events = synthesize("hundra", voice=lang, variant="f1")
    assert np.abs(audio).max() > 0.1 and len(events) == 1


def test_deterministic_and_thread_safe():
    texts = [("stockholm", "m1"), ("göteborg", "f3"), ("malmö", "m5"), ("uppsala", "f1")] * 3
    serial = [synthesize(t, variant=v)[0] for t, v in texts]
    results: list[np.ndarray | None] = [None] * len(texts)

    def work(i: int) -> None:
        results[i] = synthesize(texts[i][0], variant=texts[i][1])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(serial, results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_output_does_not_depend_on_history():
    """eSpeak carries wavegen state between utterances; the wrapper resets it, so a call sounds
    the same after any history, and the same as in a fresh process."""
    assert Espeak.get().reproducible
    first = synthesize("skjorta", voice="sv", variant="m4", rate=130, pitch=40)[0]
    history = [("skjorta", "m4"), ("stockholm", "f2"), ("fönster och dörr", "m4"), ("hej", "f1")]
    for text, variant in history:
        synthesize(text, voice="sv", variant=variant, rate=200, pitch=70)
        again = synthesize("skjorta", voice="sv", variant="m4", rate=130, pitch=40)[0]
        np.testing.assert_array_equal(first, again)
    code = (
        "import hashlib; from orchestrator.synth.espeak import synthesize; "
        "print(hashlib.sha256(synthesize('skjorta', voice='sv', variant='m4', rate=130, pitch=40)[0]"
        ".tobytes()).hexdigest())"
    )
    repo = Path(__file__).parents[1]
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo)
    fresh = run.stdout.strip()
    assert fresh == hashlib.sha256(first.tobytes()).hexdigest()


def test_singleton_and_unknown_voice():
    assert Espeak.get() is Espeak.get()
    with pytest.raises(EspeakError, match="no voice"):
        synthesize("hej", voice="xx-nonexistent", variant=None)
    # a failed voice change leaves the engine usable
    assert np.abs(synthesize("hej", voice="sv", variant="m2")[0]).max() > 0.1
