"""A user's own speaker corpus from one CSV (``speaker_text_csv``): no code needed.

The paper's second dataset, CSJ, is licensed and ships no standard layout for speaker metadata,
and any lab has its own speaker tables; so instead of an adapter per corpus this reads one CSV
(option ``csv``, default ``<data_root>/speakers.csv``; ``.tsv`` files are read tab-separated),
one row per utterance:

* ``audio_path`` (required): absolute, or relative to the CSV's folder;
* ``speaker_id`` (required);
* ``split`` (optional): train / val / test per row, one split per speaker. Without the column
  speakers are split deterministically, speaker-disjoint, by ``split_ratios`` (default
  0.8/0.1/0.1, each non-empty split gets at least one speaker) from a seeded permutation;
* ``description`` (optional): free text; different rows of a speaker may carry different
  descriptions, which are collected per speaker (first-seen order, duplicates once) and put on
  every utterance of that speaker. Every speaker then needs at least one. This is the way for
  one's own non-English texts (the paper's Japanese prompts): set option ``language`` accordingly;
* ``offset`` / ``duration`` (optional, seconds): a segment of a longer recording (CSJ lectures);
* ``id`` (optional): the item id; default ``<speaker_id>/<audio path without suffix>``, the path
  taken below the deepest folder that holds all the audio (plus ``@<offset>`` when the speaker's
  rows give segments);
* any other column is speaker metadata: it goes into ``meta`` and, when there is no
  ``description`` column, slot-fills ``n_descriptions`` English descriptions with the shared
  paraphrase grammar (:mod:`workloads.speaker_text.descriptions`, or with ``language: ja`` the
  Japanese one, :mod:`workloads.speaker_text.descriptions_ja`; columns named gender/sex,
  accent, nationality/country, age, pitch, rate/speaking_rate, quality get idiomatic phrases,
  others are stated as "whose <column> is <value>"). Metadata may be given on any row of a
  speaker, but two different values of one column for one speaker are an error.

Column names are matched case-insensitively. Every problem is one
:class:`~orchestrator.corpus.ManifestError` line naming the CSV, the line and what is wrong:
missing columns, empty cells in required columns, a speaker in two splits, conflicting
metadata, no description possible, a split left empty (the ratio split of two speakers has no
test speaker; a ``split`` column may not name one). An audio file that is missing or whose header
cannot be read does not stop the build: its row is kept (``sr`` 16000, duration 0 or the given
one) and named, with its CSV line, in the build log, for the core's bad-item check before
extraction (:class:`~orchestrator.corpus.AudioCheck`): one line naming it, or with
``--skip-bad-items`` quarantined and recorded.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.corpus import (
    SPLITS,
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
from workloads.speaker_text.descriptions import GRAMMAR_VERSION, describe, facts_from_attributes
from workloads.speaker_text.descriptions_ja import GRAMMAR_VERSION_JA, describe_ja

CORPUS_NAME = "speaker_text_csv"
DEFAULT_CSV = "speakers.csv"
REQUIRED = ("audio_path", "speaker_id")
RESERVED = (*REQUIRED, "split", "description", "offset", "duration", "id")
DEFAULT_OPTIONS: dict[str, Any] = {
    "csv": None, "language": "en", "split_ratios": (0.8, 0.1, 0.1), "n_descriptions": 5, "seed": 0,
}  # fmt: skip
FALLBACK_SR = 16000
_SHOW = 3


@dataclass
class Utterance:
    line: int
    path: Path
    offset: float
    duration: float | None
    item_id: str | None


@dataclass
class SpeakerRows:
    """Everything the CSV says about one speaker, collected over its rows."""

    speaker: str
    first_line: int
    utterances: list[Utterance] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)  # split -> first line
    descriptions: list[str] = field(default_factory=list)
    meta: dict[str, tuple[str, int]] = field(default_factory=dict)  # column -> (value, line)


def resolve_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ManifestError(f"{CORPUS_NAME}: unknown option(s) {unknown}; known: {sorted(DEFAULT_OPTIONS)}")
    cfg = {**DEFAULT_OPTIONS, **options}
    ratios = [float(x) for x in cfg["split_ratios"]]
    if len(ratios) != 3 or min(ratios) < 0 or ratios[0] <= 0:
        raise ManifestError(
            f"{CORPUS_NAME}: split_ratios must be 3 numbers >= 0 (train > 0), got {cfg['split_ratios']}"
        )
    cfg["split_ratios"] = [r / sum(ratios) for r in ratios]
    cfg["n_descriptions"], cfg["seed"] = int(cfg["n_descriptions"]), int(cfg["seed"])
    if cfg["n_descriptions"] < 1:
        raise ManifestError(f"{CORPUS_NAME}: n_descriptions must be >= 1")
    cfg["language"] = str(cfg["language"])
    return cfg


def find_csv(option: str | None, data_root: Path | None) -> Path:
    if option is None and data_root is None:
        raise ManifestError(
            f"{CORPUS_NAME} needs option csv=<path> or a data root holding {DEFAULT_CSV}; neither was given"
        )
    path = Path(option) if option is not None else Path(data_root) / DEFAULT_CSV  # type: ignore[arg-type]
    if not path.is_absolute() and option is not None and data_root is not None:
        path = Path(data_root) / path
    if not path.is_file():
        raise ManifestError(f"{CORPUS_NAME}: speaker CSV not found: {path}")
    return path


def read_rows(path: Path) -> tuple[dict[str, str], list[tuple[int, dict[str, str]]]]:
    """(lower-case column -> column as written, [(line, {lower-case column: stripped cell})])."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = [h.strip() for h in next(reader, [])]
            body = [(n, cells) for n, cells in enumerate(reader, start=2)]
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e})") from None
    columns = {h.lower(): h for h in header if h}
    if len(columns) != len([h for h in header if h]):
        raise ManifestError(f"{path}: duplicate column names (case-insensitive) in header {header}")
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ManifestError(f"{path}: missing required column(s) {missing}; header is {header}")
    keys = [h.lower() for h in header]
    rows = []
    for n, cells in body:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(keys) and any(c.strip() for c in cells[len(keys) :]):
            raise ManifestError(f"{path}: line {n} has {len(cells)} cells but the header has {len(keys)}")
        rows.append((n, {k: (cells[i].strip() if i < len(cells) else "") for i, k in enumerate(keys) if k}))
    if not rows:
        raise ManifestError(f"{path}: no rows")
    return columns, rows


def _number(path: Path, line: int, column: str, text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ManifestError(f"{path}: line {line}: {column} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ManifestError(f"{path}: line {line}: {column} {text!r} must be a finite number >= 0")
    return value


def collect(path: Path, columns: dict[str, str], rows: list[tuple[int, dict[str, str]]]) -> dict[str, SpeakerRows]:
    """Rows grouped by speaker, in first-seen order; every row-level problem is an error here."""
    meta_cols = [c for c in columns if c not in RESERVED]
    speakers: dict[str, SpeakerRows] = {}
    for line, row in rows:
        empty = [c for c in REQUIRED if not row.get(c)]
        if empty:
            raise ManifestError(f"{path}: line {line}: empty {', '.join(empty)}")
        spk = speakers.setdefault(row["speaker_id"], SpeakerRows(row["speaker_id"], line))
        audio = Path(row["audio_path"])
        spk.utterances.append(Utterance(
            line, audio if audio.is_absolute() else path.parent / audio,
            _number(path, line, "offset", row.get("offset", "")) or 0.0,
            _number(path, line, "duration", row.get("duration", "")), row.get("id") or None,
        ))  # fmt: skip
        _add_split(path, spk, line, row.get("split", ""))
        if row.get("description") and row["description"] not in spk.descriptions:
            spk.descriptions.append(row["description"])
        for c in meta_cols:
            _add_meta(path, spk, line, columns[c], row.get(c, ""))
    return speakers


def _add_split(path: Path, spk: SpeakerRows, line: int, value: str) -> None:
    if not value:
        return
    split = value.lower()
    if split not in SPLITS:
        raise ManifestError(f"{path}: line {line}: split {value!r} is not one of {list(SPLITS)}")
    spk.splits.setdefault(split, line)
    if len(spk.splits) > 1:
        where = ", ".join(f"{s} (line {n})" for s, n in spk.splits.items())
        raise ManifestError(
            f"{path}: speaker {spk.speaker!r} is in more than one split: {where}; splits must be speaker-disjoint"
        )


def _add_meta(path: Path, spk: SpeakerRows, line: int, column: str, value: str) -> None:
    if not value:
        return
    old = spk.meta.setdefault(column, (value, line))
    if old[0] != value:
        raise ManifestError(
            f"{path}: speaker {spk.speaker!r}: column {column!r} is {old[0]!r} on line {old[1]} "
            f"but {value!r} on line {line}"
        )


def assign_splits(path: Path, speakers: dict[str, SpeakerRows], has_split: bool, cfg: dict[str, Any]) -> dict[str, str]:
    if has_split:
        none = [s for s in speakers.values() if not s.splits]
        if none:
            raise ManifestError(f"{path}: speaker {none[0].speaker!r} (line {none[0].first_line}) has no split; "
                                f"{len(none)} speaker(s) without one")  # fmt: skip
        return {s.speaker: next(iter(s.splits)) for s in speakers.values()}
    return ratio_split(sorted(speakers), cfg["split_ratios"], cfg["seed"])


def ratio_split(speakers: list[str], ratios: list[float], seed: int) -> dict[str, str]:
    """Speaker-disjoint split by ratios from a seeded permutation; a split with a non-zero ratio
    gets at least one speaker while train keeps at least one."""
    n = len(speakers)
    counts = {"val": round(ratios[1] * n), "test": round(ratios[2] * n)}
    for s, r in zip(("val", "test"), ratios[1:], strict=True):
        if r > 0 and counts[s] == 0 and n - sum(counts.values()) > 1:
            counts[s] = 1
    while n - sum(counts.values()) < 1:
        big = max(counts, key=lambda s: counts[s])
        counts[big] -= 1
    order = [speakers[i] for i in seeded_rng("split", seed).permutation(n)]
    out = {spk: "val" for spk in order[: counts["val"]]}
    out |= {spk: "test" for spk in order[counts["val"] : counts["val"] + counts["test"]]}
    return {spk: out.get(spk, "train") for spk in speakers}


def texts_for(path: Path, spk: SpeakerRows, has_description: bool, cfg: dict[str, Any]) -> list[str]:
    """The speaker's own descriptions, or slot-filled ones from its metadata."""
    if has_description:
        if not spk.descriptions:
            raise ManifestError(
                f"{path}: speaker {spk.speaker!r} (line {spk.first_line}) has no description on any row"
            )
        return spk.descriptions
    if cfg["language"] not in ("en", "ja"):
        raise ManifestError(f"{path}: no description column, and slot-filled descriptions exist only in English "
                            f"and Japanese (language={cfg['language']!r}); add a description column")  # fmt: skip
    facts = facts_from_attributes({c: v for c, (v, _) in spk.meta.items()})
    if not facts:
        raise ManifestError(f"{path}: speaker {spk.speaker!r} (line {spk.first_line}): no description column and no "
                            "metadata value to describe the speaker from")  # fmt: skip
    try:
        describe_in = describe_ja if cfg["language"] == "ja" else describe
        return describe_in(facts, cfg["n_descriptions"], seeded_rng("descriptions", cfg["seed"], spk.speaker))
    except ValueError as e:
        raise ManifestError(f"{path}: speaker {spk.speaker!r}: {e}") from None


def _digest(csv_path: Path, speakers: dict[str, SpeakerRows]) -> str:
    h = hashlib.sha256()
    for p, size, mtime in input_stats([csv_path, *sorted({u.path for s in speakers.values() for u in s.utterances})]):
        h.update(f"{p}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


@register_corpus(CORPUS_NAME)
def build_speaker_text_csv(req: CorpusRequest) -> Path:
    cfg = resolve_options(req.options)
    path = find_csv(cfg["csv"], req.data_root)
    columns, rows = read_rows(path)
    speakers = collect(path, columns, rows)
    splits = assign_splits(path, speakers, "split" in columns, cfg)
    check_splits([{"split": v} for v in splits.values()], str(path), "speaker")
    texts = {s: texts_for(path, spk, "description" in columns, cfg) for s, spk in speakers.items()}
    key = {"corpus": CORPUS_NAME, **{k: v for k, v in cfg.items() if k != "csv"}, "csv": str(path.resolve()),
           "grammar": GRAMMAR_VERSION if cfg["language"] != "ja" else f"ja{GRAMMAR_VERSION_JA}",
           "inputs": _digest(path, speakers)}  # fmt: skip
    manifest = build_dir(Path(req.work_dir) / CORPUS_NAME, key) / "manifest.parquet"
    if manifest.exists():
        return manifest
    t0 = time.perf_counter()
    out: list[dict[str, Any]] = []
    audio = AudioCheck(CORPUS_NAME)
    base = common_base(speakers)
    for s, spk in speakers.items():
        out += _rows(spk, splits[s], texts[s], cfg["language"], base, audio)
    write_manifest(manifest_table(out), manifest)
    _log(path, splits, out, audio, time.perf_counter() - t0, manifest)
    return manifest


def _item_id(spk: SpeakerRows, u: Utterance, base: Path, segmented: bool) -> str:
    if u.item_id:
        return u.item_id
    rel = Path(os.path.relpath(u.path.resolve(), base)).with_suffix("").as_posix()
    return f"{spk.speaker}/{rel}@{u.offset:.3f}" if segmented else f"{spk.speaker}/{rel}"


def common_base(speakers: dict[str, SpeakerRows]) -> Path:
    """The deepest folder holding every audio file: item ids are paths below it, so they stay short
    and never contain ".." whatever mix of relative and absolute paths the CSV uses."""
    return Path(os.path.commonpath([str(u.path.resolve().parent) for s in speakers.values() for u in s.utterances]))


def _rows(spk: SpeakerRows, split: str, texts: list[str], language: str, base: Path,
          audio: AudioCheck) -> list[dict[str, Any]]:  # fmt: skip
    meta = json.dumps({c: v for c, (v, _) in spk.meta.items()}, sort_keys=True, ensure_ascii=False)
    segmented = any(u.offset or u.duration is not None for u in spk.utterances)
    out = []
    for u in spk.utterances:
        sr, total = audio.info(u.path, FALLBACK_SR, f"line {u.line}: ")
        total = total or u.offset  # header unknown: duration 0 ("to the end") unless given
        duration = u.duration if u.duration is not None else max(total - u.offset, 0.0)
        out.append({"id": _item_id(spk, u, base, segmented), "split": split, "audio_path": str(u.path.resolve()),
                    "sr": sr, "offset": u.offset, "duration": duration, "texts": texts, "label": spk.speaker,
                    "speaker": spk.speaker, "language": language, "meta": meta})  # fmt: skip
    return out


def _log(path: Path, splits: dict[str, str], out: list[dict[str, Any]], audio: AudioCheck, elapsed: float,
         manifest: Path) -> None:  # fmt: skip
    spk = {s: sum(v == s for v in splits.values()) for s in SPLITS}
    utt = {s: sum(o["split"] == s for o in out) for s in SPLITS}
    counts = ", ".join(f"{s} {spk[s]} spk / {utt[s]} utt" for s in SPLITS)
    print(f"[{CORPUS_NAME}] {len(splits)} speakers, {len(out)} utterances from {path} ({counts}) "
          f"in {elapsed:.1f} s -> {manifest}")  # fmt: skip
    audio.log(_SHOW)
