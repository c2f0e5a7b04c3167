"""In-process eSpeak NG speech synthesis through ctypes.

Why in-process and not the ``espeak-ng`` CLI: no binary is installed on the build machines (the
``espeakng-loader`` wheel ships only ``libespeak-ng.so`` and its data), and a subprocess per word
would cost more than the synthesis itself. The library keeps one global state (current voice,
parameters, callback), so it is initialised once per process and every call holds a lock.

Output is the library's native 22050 Hz 16-bit mono, returned as float32 in [-1, 1), plus the
WORD events (character position in the text, audio position in ms) that eSpeak reports, which
give word timings within a few ms of the acoustic onsets. eSpeak attaches some unstressed function
words to their neighbour ("in the city" can give one event for "in the"), so not every word of a
sentence has an event.

Reproducibility: eSpeak's waveform generator keeps state across utterances in function-local
statics (the pitch-flutter phase ``Flutter_ix``, ``cycle_count``, ``agc``, ...), so the same text
with the same voice comes out a few samples longer or shorter depending on what was synthesised
before in the process. Corpora must be byte-identical whatever ran earlier, so after initialising
we snapshot those variables (found through the library's ELF symbol table; the wheel's library is
not stripped) and restore them before every utterance, and reseed eSpeak's random generator: every
call then sounds exactly as the first call of a fresh process. If the symbols cannot be found
(a stripped build), synthesis still works and :attr:`Espeak.reproducible` is False.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 22050

# espeak_AUDIO_OUTPUT
_AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize options: never call exit() from inside the library on a data error
_INITIALIZE_DONT_EXIT = 0x8000
# espeak_EVENT_TYPE
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
# espeak_PARAMETER
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_WORDGAP = 7
# espeak_POSITION_TYPE / synth flags
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT`` from speak_lib.h (layout unchanged since 1.4x)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character index
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of the utterance
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


# Wavegen/Klatt state carried from one utterance to the next (static locals and file statics).
_CARRIED_STATE = (
    "Flutter_ix", "wavephase", "cycle_count", "agc", "h_switch_sign", "maxh", "maxh2", "amplitude2",
    "echo_complete", "noise", "glotlast", "vlast", "nlast", "time_count", "skew",
)  # fmt: skip
_ANCHOR = "espeak_Synth"  # an exported function: its runtime address gives the load base


def elf_symbols(path: str, wanted: set[str]) -> dict[str, tuple[int, int]]:
    """``name -> (address, size)`` from an ELF64 little-endian ``.symtab``; a compiler-suffixed
    static (``Flutter_ix.5965``) is found by its base name. Empty if the file has no symtab."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x7fELF\x02\x01":
        return {}
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    found: dict[str, tuple[int, int]] = {}
    for sec in sections:
        if sec[1] != 2:  # SHT_SYMTAB
            continue
        str_off = sections[sec[6]][4]
        for off in range(sec[4], sec[4] + sec[5], 24):
            name_off, _, _, shndx, value, size = struct.unpack_from("<IBBHQQ", data, off)
            if shndx == 0 or size == 0:
                continue
            start = str_off + name_off
            name = data[start : data.index(b"\0", start)].decode("ascii", "replace").split(".")[0]
            if name in wanted and name not in found:
                found[name] = (value, size)
    return found


class EspeakError(RuntimeError):
    """The library could not be loaded/initialised, or rejected a voice or parameter."""


@dataclass
class Synthesis:
    audio: np.ndarray  # float32 mono
    sample_rate: int
    word_events: list[tuple[int, int]]  # (0-based char position in text, audio ms)


class Espeak:
    """Process-wide handle on libespeak-ng. Use :meth:`get`; the constructor is private in spirit."""

    _instance: Espeak | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        import espeakng_loader

        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as e:
            raise EspeakError(f"cannot load libespeak-ng from espeakng-loader ({e})") from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        data = espeakng_loader.get_data_path().encode()
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
        if sr <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {sr}) with data path {data.decode()}")
        self.sample_rate = sr
        self._lib = lib
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int]] = []
        # Keep a reference: the C side only holds a raw pointer to the trampoline.
        self._callback = _CALLBACK(self._on_synth)
        lib.espeak_SetSynthCallback(self._callback)
        self._fresh_state = self._snapshot_state(espeakng_loader.get_library_path())
        self.reproducible = bool(self._fresh_state)

    def _snapshot_state(self, path: str) -> list[tuple[int, bytes]]:
        """(runtime address, bytes) of every carried-state variable as it is right after init."""
        syms = elf_symbols(path, {*_CARRIED_STATE, _ANCHOR})
        if _ANCHOR not in syms or not all(n in syms for n in _CARRIED_STATE[:8]):
            return []
        base = ctypes.cast(getattr(self._lib, _ANCHOR), ctypes.c_void_p).value - syms[_ANCHOR][0]
        return [
            (base + addr, ctypes.string_at(base + addr, size))
            for name, (addr, size) in syms.items()
            if name != _ANCHOR
        ]

    def _reset_state(self) -> None:
        for addr, raw in self._fresh_state:
            ctypes.memmove(addr, raw, len(raw))
        self._lib.espeak_ng_SetRandSeed(0)

    @classmethod
    def get(cls) -> Espeak:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @classmethod
    def for_corpus(cls, corpus: str) -> Espeak:
        """The shared engine, warning once per corpus build when its output cannot be byte-identical
        across runs (so a user comparing corpus fingerprints knows why they differ)."""
        engine = cls.get()
        if not engine.reproducible:
            print(f"[{corpus}] warning: libespeak-ng has no symbol table; clips are not byte-reproducible")
        return engine

    def _on_synth(self, wav, n: int, events) -> int:  # type: ignore[no-untyped-def]
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_WORD:
                self._events.append((events[i].text_position, events[i].audio_position))
            i += 1
        return 0  # 0 = continue synthesis

    def _set_voice(self, name: str) -> None:
        # Always (re)select, even an unchanged voice: selecting one clears the synthesiser's
        # per-voice buffers (echo, resonators), without which the next utterance starts with the
        # previous one's tail. Costs ~0.1 ms.
        if self._lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
            raise EspeakError(f"eSpeak NG has no voice {name!r}")

    def _set(self, param: int, value: int, what: str) -> None:
        if self._lib.espeak_SetParameter(param, int(value), 0) != _EE_OK:
            raise EspeakError(f"eSpeak NG rejected {what}={value}")

    def synthesize(
        self,
        text: str,
        voice: str = "sv",
        variant: str | None = "m3",
        rate: int = 175,
        pitch: int = 50,
        word_gap: int = 0,
    ) -> Synthesis:
        """Synthesise ``text`` with ``voice`` (a language, e.g. "sv", or "sv+f2") and ``variant``.

        ``rate`` is in words per minute (80..450), ``pitch`` 0..100 (50 = voice default),
        ``word_gap`` extra pause between words in units of 10 ms.
        """
        name = voice if variant is None or "+" in voice else f"{voice}+{variant}"
        raw = text.encode("utf-8") + b"\0"
        with self._lock:
            self._set_voice(name)
            # Setting a voice resets rate/pitch to the voice's defaults, so set them every call.
            self._set(_PARAM_RATE, rate, "rate")
            self._set(_PARAM_PITCH, pitch, "pitch")
            self._set(_PARAM_VOLUME, 100, "volume")
            self._set(_PARAM_WORDGAP, word_gap, "word_gap")
            self._chunks, self._events = [], []
            self._reset_state()
            err = self._lib.espeak_Synth(raw, len(raw), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            chunks, events = self._chunks, self._events
            self._chunks, self._events = [], []
        if err != _EE_OK:
            raise EspeakError(f"espeak_Synth failed ({err}) for voice {name!r} on {text[:40]!r}")
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        audio = pcm.astype(np.float32) / 32768.0
        # text_position is a 1-based character index in the UTF-8-decoded text.
        words = [(max(pos - 1, 0), ms) for pos, ms in events]
        return Synthesis(audio, self.sample_rate, words)


def synthesize(
    text: str,
    voice: str = "sv",
    variant: str | None = "m3",
    rate: int = 175,
    pitch: int = 50,
    word_gap: int = 0,
) -> tuple[np.ndarray, int, list[tuple[int, int]]]:
    """Module-level convenience: ``(audio float32, sample_rate, [(char_pos, audio_ms), ...])``."""
    s = Espeak.get().synthesize(text, voice, variant, rate, pitch, word_gap)
    return s.audio, s.sample_rate, s.word_events
