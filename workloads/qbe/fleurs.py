"""Paper profile: FLEURS word segments for QbE, from the official on-disk layout.

Layout read (as in the Hugging Face dataset repo ``google/fleurs``, ``data/<code>/``; ``data_root``
may be the repo root, holding ``data/``, or the ``data/`` folder itself)::

    <data_root>/[data/]<code>/{train,dev,test}.tsv        code: sv_se, da_dk, nb_no, fi_fi, en_us
    <data_root>/[data/]<code>/audio/{train,dev,test}/<file_name>.wav   (audio/<split>.tar.gz, extracted)

The TSVs have no header and seven tab-separated columns: id (sentence id, shared by the several
readings of one sentence and across languages), file_name, raw_transcription, transcription
(normalised), the transcription as space-separated characters with ``|`` between words,
num_samples (16 kHz) and gender.

FLEURS has no word timings; the thesis made them with WhisperX (sec. 3.3.2). This adapter reads
them from a word-alignment file that this project defines (WhisperX's JSON ``word_segments``
convert to it in a few lines): UTF-8 TSV with the header line ``file_name	word	start	end``,
one row per word, ``start``/``end`` in seconds within the sentence WAV. Looked for, in order:

    <code>/alignments/{train,dev,test}.tsv     (any that exist; their union is used)
    <code>/word_alignments.tsv

For English (en_us) without such a file, the sentences are force-aligned to their normalised
transcription with pocketsphinx (en-us model shipped in its wheel), if it is installed; the result
is cached under ``<work_dir>/<corpus>/alignments/en_us/word_alignments.tsv`` in the same format.

Manifest rows point into the sentence WAVs (``offset``/``duration``), nothing is copied. Words are
normalised (NFC, lower case, leading/trailing punctuation stripped) and the thesis' filters applied
(sec. 3.3.3): >= 4 letters, segment >= 0.4 s, 2..15 segments per word (a word with more than 15 keeps
a seeded random 15). FLEURS' own train/dev/test are *sentence* splits and would put the same word
on both sides; the thesis needs test words unseen in training, so all segments of a language are
pooled and split by word 60/20/20 (Tables 3.1/3.2), per language for the multilingual corpus.
Sizes default to the thesis': 3000 Swedish words; 731 words per language (2924 / 4) multilingual;
fewer if fewer pass the filters (said in the build log). FLEURS has no speaker ids, so ``speaker``
is left empty.

A sentence WAV the TSVs list but the audio folder lacks (or whose header cannot be read) does not
stop the build: its aligned word segments are kept and named in the build log, for the core's
bad-item check before extraction (:class:`~orchestrator.corpus.AudioCheck`), which stops with one
line naming them or, with ``--skip-bad-items``, quarantines and records them; pocketsphinx skips
it and lists it in its ``.failed.txt``. A split's whole audio folder missing, or a train/val/test
split left empty (too few words pass the filters), is an error.
"""

from __future__ import annotations

import csv
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from orchestrator.corpus import (
    AudioCheck,
    CorpusRequest,
    ManifestError,
    build_dir,
    check_splits,
    manifest_table,
    register_corpus,
    seeded_rng,
    write_manifest,
)
from workloads.qbe.corpus_local import (
    MAX_SAMPLES_PER_WORD,
    MIN_DURATION_S,
    MIN_SAMPLES_PER_WORD,
    eligible_word,
    normalize_word,
    split_words,
)

FLEURS_CODES = {"sv": "sv_se", "da": "da_dk", "nb": "nb_no", "fi": "fi_fi", "en": "en_us"}
FLEURS_SPLITS = ("train", "dev", "test")
FLEURS_SR = 16000  # a missing or unreadable file's rate in the manifest (FLEURS is 16 kHz)
TSV_COLUMNS = ("id", "file_name", "raw_transcription", "transcription", "chars", "num_samples", "gender")
ALIGNMENT_HEADER = ("file_name", "word", "start", "end")
DEFAULT_N_WORDS = {"qbe_fleurs_swedish": 3000, "qbe_fleurs_multilingual": 731}
_END_SLACK_S = 0.05  # aligners round; an end this far past the file's end is clamped, not an error
_EDGE_PUNCT = re.compile(r"^\W+|\W+$")


@dataclass(frozen=True)
class Utterance:
    file_name: str
    split: str  # FLEURS' split: train | dev | test
    transcription: str  # normalised
    audio: Path


@dataclass(frozen=True)
class Segment:
    file_name: str
    word: str
    start: float
    end: float


# ------------------------------------------------------------------------------------- reading


def find_language_dir(data_root: Path | None, code: str, corpus: str) -> Path:
    if data_root is None:
        raise ManifestError(f"{corpus} needs a data root holding FLEURS (data/{code}/...); none was given")
    root = Path(data_root)
    candidates = [root / "data" / code, root / code]
    for d in candidates:
        if any((d / f"{s}.tsv").exists() for s in FLEURS_SPLITS):
            return d
    looked = " and ".join(f"{d}/{{{','.join(FLEURS_SPLITS)}}}.tsv" for d in candidates)
    raise ManifestError(
        f"FLEURS {code} not found: looked for {looked} (google/fleurs data/{code}, audio/*.tar.gz extracted)"
    )


def read_fleurs_tsvs(lang_dir: Path) -> dict[str, Utterance]:
    """file_name -> utterance over all FLEURS splits present. A split whose audio folder is
    missing is an error (with the archive to extract); a single missing file is kept, for the
    core's bad-item check (see :class:`~orchestrator.corpus.AudioCheck`)."""
    utts: dict[str, Utterance] = {}
    for split in FLEURS_SPLITS:
        tsv = lang_dir / f"{split}.tsv"
        if not tsv.exists():
            continue
        with tsv.open(encoding="utf-8", newline="") as f:
            for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
                if not row:
                    continue
                if len(row) != len(TSV_COLUMNS):
                    raise ManifestError(
                        f"{tsv}:{n}: expected {len(TSV_COLUMNS)} columns {TSV_COLUMNS}, got {len(row)}"
                    )
                rec = dict(zip(TSV_COLUMNS, row, strict=True))
                audio = lang_dir / "audio" / split / rec["file_name"]
                utts[rec["file_name"]] = Utterance(rec["file_name"], split, rec["transcription"], audio)
    missing = [u.audio for u in utts.values() if not u.audio.parent.is_dir()]
    if missing:
        split_dir = missing[0].parent
        tar = Path(f"{split_dir}.tar.gz")
        hint = f" (extract {tar} into {split_dir.parent})" if tar.exists() else ""
        raise ManifestError(
            f"FLEURS audio missing: folder {split_dir} not found, {len(missing)} file(s) listed in the TSVs{hint}"
        )
    return utts


def alignment_paths(lang_dir: Path) -> list[Path]:
    per_split = [lang_dir / "alignments" / f"{s}.tsv" for s in FLEURS_SPLITS]
    found = [p for p in per_split if p.exists()]
    if found:
        return found
    single = lang_dir / "word_alignments.tsv"
    return [single] if single.exists() else []


def read_alignments(path: Path) -> list[Segment]:
    """Rows of a ``file_name, word, start, end`` TSV (header line required)."""
    out = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != ALIGNMENT_HEADER:
            want = " ".join(ALIGNMENT_HEADER)
            raise ManifestError(f"{path}: first line must be the tab-separated header {want}, got {header}")
        for n, row in enumerate(reader, 2):
            if not row:
                continue
            try:
                file_name, word, start, end = row
                seg = Segment(file_name, word, float(start), float(end))
            except ValueError:
                raise ManifestError(
                    f"{path}:{n}: expected file_name, word, start, end (seconds), got {row}"
                ) from None
            if not (0 <= seg.start < seg.end):
                raise ManifestError(f"{path}:{n}: need 0 <= start < end, got {seg.start}..{seg.end}")
            out.append(seg)
    return out


# ------------------------------------------------------------------------------------- English alignment


def align_english(utts: dict[str, Utterance], out_path: Path) -> Path:
    """Force-align every sentence with pocketsphinx and write the alignment TSV (cached).

    Sentences that fail to align fully (out-of-vocabulary word, truncated path) are left out of the
    file and listed in ``<out>.failed.txt`` so nothing disappears without a record.
    """
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise ManifestError(
            f"no word alignments for FLEURS en_us and pocketsphinx is not installed to make them "
            f"(pip install pocketsphinx==5.1.1); expected {out_path}"
        ) from None
    import soxr

    decoder = Decoder(samprate=16000, loglevel="FATAL")
    rows: list[Segment] = []
    failed: list[str] = []
    t0 = time.perf_counter()
    for name in sorted(utts):
        u = utts[name]
        words = u.transcription.split()
        if not u.audio.is_file():
            failed.append(f"{name}\tmissing audio file {u.audio}")
            continue
        audio, sr = sf.read(u.audio, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        if sr != 16000:
            audio = soxr.resample(audio, sr, 16000)
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        try:
            decoder.set_align_text(" ".join(words))
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            segs = [s for s in decoder.seg() if not s.word.startswith(("<", "[", "+"))]
        except RuntimeError as e:
            failed.append(f"{name}\t{e}")
            continue
        aligned = [re.sub(r"\(\d+\)$", "", s.word) for s in segs]
        if aligned != [w.lower() for w in words]:
            failed.append(f"{name}\taligned {len(aligned)} of {len(words)} words")
            continue
        # pocketsphinx frames are 10 ms and end_frame is inclusive
        for w, s in zip(words, segs, strict=True):
            rows.append(Segment(name, w, s.start_frame / 100, (s.end_frame + 1) / 100))
    # the failure list first: the alignment file's existence is what marks the step as done
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.with_suffix(".failed.txt").write_text("".join(f"{line}\n" for line in failed), encoding="utf-8")
    _write_alignments(rows, out_path)
    print(
        f"[fleurs] pocketsphinx aligned {len(utts) - len(failed)}/{len(utts)} en_us sentences "
        f"in {time.perf_counter() - t0:.1f} s -> {out_path}"
    )
    return out_path


def _write_alignments(rows: list[Segment], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        f.write("\t".join(ALIGNMENT_HEADER) + "\n")
        for s in rows:
            f.write(f"{s.file_name}\t{s.word}\t{s.start:.3f}\t{s.end:.3f}\n")
    tmp.replace(path)


# ------------------------------------------------------------------------------------- building


def _file_stats(paths: Sequence[Path]) -> list[tuple[str, int, int]]:
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]


def _word_segments(
    code: str, utts: dict[str, Utterance], segments: list[Segment], source: str, audio: AudioCheck
) -> dict[str, list[tuple[Segment, float]]]:
    """Normalise words and keep segments passing the per-segment filters; checks every referenced
    file is a listed FLEURS utterance. Returns word -> [(segment, file duration)]; a file that is
    missing or has an unreadable header (duration 0: unknown) keeps its segments as aligned, for
    the core's bad-item check."""
    unknown = sorted({s.file_name for s in segments} - set(utts))
    if unknown:
        raise ManifestError(
            f"{source}: {len(unknown)} file name(s) not listed in FLEURS {code} TSVs, e.g. {unknown[0]!r}"
        )
    durations: dict[str, float] = {}
    by_word: dict[str, list[tuple[Segment, float]]] = defaultdict(list)
    for s in segments:
        word = normalize_word(_EDGE_PUNCT.sub("", s.word))
        if not eligible_word(word) or s.end - s.start < MIN_DURATION_S:
            continue
        if s.file_name not in durations:
            durations[s.file_name] = audio.info(utts[s.file_name].audio, FLEURS_SR)[1] or float("inf")
        file_dur = durations[s.file_name]
        if s.end > file_dur + _END_SLACK_S:
            raise ManifestError(
                f"{source}: segment {s.word!r} {s.start:.3f}..{s.end:.3f} s ends after "
                f"{s.file_name} ({file_dur:.3f} s)"
            )
        end = min(s.end, file_dur)
        if end - s.start < MIN_DURATION_S:
            continue
        by_word[word].append((Segment(s.file_name, word, s.start, end), file_dur))
    return by_word


def _select(
    by_word: dict[str, list[tuple[Segment, float]]], n_words: int, seed: int, lang: str
) -> dict[str, list[Segment]]:
    """The per-word count filter (2..15, seeded subsample above 15), then a seeded choice of
    ``n_words`` words: a random rather than most-frequent choice keeps the thesis' mix of rare and
    common words (its 3.4 segments per word is far below what the most frequent words have)."""
    kept: dict[str, list[Segment]] = {}
    for word in sorted(by_word):
        segs = sorted((s for s, _ in by_word[word]), key=lambda s: (s.file_name, s.start))
        if len(segs) < MIN_SAMPLES_PER_WORD:
            continue
        if len(segs) > MAX_SAMPLES_PER_WORD:
            rng = seeded_rng("cap", seed, lang, word)
            idx = np.sort(rng.choice(len(segs), MAX_SAMPLES_PER_WORD, replace=False))
            segs = [segs[i] for i in idx]
        kept[word] = segs
    words = sorted(kept)
    if len(words) > n_words:
        pick = seeded_rng("words", seed, lang).choice(len(words), n_words, replace=False)
        words = sorted(words[i] for i in pick)
    return {w: kept[w] for w in words}


def _resolve_options(name: str, options: dict[str, Any], multilingual: bool) -> dict[str, Any]:
    known = {"n_words", "seed"} | ({"languages"} if multilingual else set())
    unknown = sorted(set(options) - known)
    if unknown:
        raise ManifestError(f"{name}: unknown option(s) {unknown}; known: {sorted(known)}")
    langs = list(options.get("languages", ["sv", "da", "nb", "fi"] if multilingual else ["sv"]))
    bad = [lang for lang in langs if lang not in FLEURS_CODES]
    if bad:
        raise ManifestError(f"{name}: unsupported language(s) {bad}; supported: {sorted(FLEURS_CODES)}")
    return {
        "languages": langs,
        "n_words": int(options.get("n_words", DEFAULT_N_WORDS[name])),
        "seed": int(options.get("seed", 0)),
    }


def build_fleurs(req: CorpusRequest, multilingual: bool) -> Path:
    cfg = _resolve_options(req.name, req.options, multilingual)
    work = Path(req.work_dir) / req.name
    inputs: dict[str, tuple[Path, dict[str, Utterance], list[Path]]] = {}
    for lang in cfg["languages"]:
        code = FLEURS_CODES[lang]
        lang_dir = find_language_dir(req.data_root, code, req.name)
        utts = read_fleurs_tsvs(lang_dir)
        paths = alignment_paths(lang_dir)
        if not paths and lang == "en":
            cached = work / "alignments" / code / "word_alignments.tsv"
            paths = [cached if cached.exists() else align_english(utts, cached)]
        if not paths:
            raise ManifestError(
                f"no word alignments for FLEURS {code}: looked for {lang_dir}/alignments/"
                f"{{{','.join(FLEURS_SPLITS)}}}.tsv and {lang_dir}/word_alignments.tsv "
                f"(TSV with header {' '.join(ALIGNMENT_HEADER)}, seconds; see workloads/qbe/fleurs.py)"
            )
        inputs[lang] = (lang_dir, utts, paths)

    sources = [d / f"{s}.tsv" for d, _, _ in inputs.values() for s in FLEURS_SPLITS]
    sources = [p for p in sources if p.exists()] + [p for *_, ps in inputs.values() for p in ps]
    key = {"corpus": req.name, **cfg, "inputs": _file_stats(sources)}
    manifest = build_dir(work, key) / "manifest.parquet"
    if manifest.exists():
        return manifest

    t0 = time.perf_counter()
    per_lang: dict[str, dict[str, list[Segment]]] = {}
    audio_check = AudioCheck(req.name)
    for lang, (_, utts, paths) in inputs.items():
        segments = [s for p in paths for s in read_alignments(p)]
        by_word = _word_segments(FLEURS_CODES[lang], utts, segments, ", ".join(map(str, paths)), audio_check)
        per_lang[lang] = _select(by_word, cfg["n_words"], cfg["seed"], lang)
        if len(per_lang[lang]) < cfg["n_words"]:
            n = len(per_lang[lang])
            print(f"[{req.name}] {lang}: only {n} words pass the filters ({cfg['n_words']} asked)")
    splits = split_words({lang: list(ws) for lang, ws in per_lang.items()}, cfg["seed"])
    rows = []
    for lang, words in per_lang.items():
        utts = inputs[lang][1]
        srs: dict[str, int] = {}
        for word, segs in words.items():
            for k, s in enumerate(segs):
                audio = utts[s.file_name].audio
                if s.file_name not in srs:
                    srs[s.file_name] = audio_check.info(audio, FLEURS_SR)[0]
                rows.append(
                    {
                        "id": f"{lang}/{word}_{k:02d}",
                        "split": splits[(lang, word)],
                        "audio_path": str(audio.resolve()),
                        "sr": srs[s.file_name],
                        "offset": round(s.start, 6),
                        "duration": round(s.end - s.start, 6),
                        "texts": [word],
                        "label": f"{lang}:{word}" if multilingual else word,
                        "speaker": None,
                        "language": lang,
                    }
                )
    if not rows:
        raise ManifestError(f"{req.name}: no word segment passes the filters in {list(inputs)}")
    check_splits(rows, f"{req.name} ({', '.join(inputs)})", "segment", "; the split is by word: too few words pass the filters")
    write_manifest(manifest_table(rows), manifest)
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    print(
        f"[{req.name}] {sum(map(len, per_lang.values()))} words, {len(rows)} segments "
        f"({', '.join(f'{s} {n}' for s, n in counts.items())}) "
        f"in {time.perf_counter() - t0:.1f} s -> {manifest}"
    )
    audio_check.log()
    return manifest


@register_corpus("qbe_fleurs_swedish")
def build_fleurs_swedish(req: CorpusRequest) -> Path:
    """FLEURS sv_se word segments (Table 3.1)."""
    return build_fleurs(req, multilingual=False)


@register_corpus("qbe_fleurs_multilingual")
def build_fleurs_multilingual(req: CorpusRequest) -> Path:
    """FLEURS sv/da/nb/fi word segments, labels ``lang:word`` (Table 3.2); option ``languages``
    overrides the set (``["en"]`` uses pocketsphinx alignment when no alignment file exists)."""
    return build_fleurs(req, multilingual=True)
