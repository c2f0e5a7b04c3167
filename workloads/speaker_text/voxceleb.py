"""Paper profile: VoxCeleb1 for speaker-text retrieval (``speaker_text_voxceleb1``).

The paper (sec. III-A) uses VoxCeleb1 with its official identification/verification protocol:
1,211 dev speakers for training, 40 test speakers (id10270-id10309) for the search and evaluation
database; the texts are built from the speaker metadata, gender and nationality (sec. III-C,
Fig. 2). Expected on-disk layout under ``data_root`` (the official zips extracted)::

    <root>/vox1_meta.csv                      tab-separated, header
                                              "VoxCeleb1 ID<TAB>VGGFace1 ID<TAB>Gender<TAB>Nationality<TAB>Set"
                                              rows like "id10001<TAB>A.J._Buckley<TAB>m<TAB>Ireland<TAB>dev"
    <root>/wav/<speaker id>/<video id>/<utt>.wav

``vox1_dev_wav.zip`` and ``vox1_test_wav.zip`` both extract to ``wav/``; when they were extracted
into separate folders, ``<root>/vox1_dev_wav/wav`` and ``<root>/vox1_test_wav/wav`` are read as
well (a speaker's folder is taken from the first of these that has it).

Rows: one per utterance, ``id`` = ``<speaker>/<video>/<utt>`` (VoxCeleb's own utterance key
without ".wav"), ``label`` = ``speaker`` = the VoxCeleb1 id; ``split``: Set "test" -> test, Set
"dev" -> train except ``n_val`` dev speakers (default 40, the size of the test set) held out as
val, chosen by a seeded permutation of the sorted dev ids, so the paper's train/test protocol is
kept and val never touches the test speakers.

Part of the dataset on disk: meta speakers without an audio folder are skipped, and the build
prints how many (per Set) and the first few ids; their rows never reach the manifest, since a
speaker without audio has no utterance to list. So a user who downloaded only
``vox1_test_wav.zip`` (40 speakers, 4,874 utterances) can run: with no dev speaker on disk, the
test speakers themselves are split speaker-disjointly by a seeded permutation, a quarter (at least
one) to val, a quarter to test, the rest to train (said in the build log; ``meta.set`` keeps the
official Set). That is not the paper's protocol (its train set is the 1,211 dev speakers), only a
way to see the pipeline work on the small download. With only the dev zip, the test split would be
empty: that is an error naming the split, as is any split a small corpus leaves empty. ``texts``: ``n_descriptions`` descriptions slot-filled
from gender and nationality with the shared paraphrase grammar (template first), the same on every
utterance of a speaker; ``meta``: ``{"gender", "nationality", "vggface1_id", "set"}``;
``sr``/``duration`` from the file header (``soundfile.info``: no decoding); ``audio_path``
absolute into ``data_root`` (nothing is copied). ``max_utts_per_speaker`` caps a speaker's
utterances, taken round-robin over its videos (sorted) so a cap keeps as many recording
sessions as possible.

Errors, each one :class:`~orchestrator.corpus.ManifestError` line naming what is missing and
where it looked: no data root, no ``vox1_meta.csv``, no ``wav`` folder, a meta file without the
official columns or with a bad row, no meta speaker with an audio folder, a speaker folder
without any WAV, an empty split.
Speaker folders that the meta file does not list cannot get a split: they are skipped and named
in the build log. A WAV whose header cannot be read is kept with duration 0 and named in the log,
for the core's bad-item check (fail, or quarantine with ``--skip-bad-items``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from orchestrator.corpus import (
    CorpusRequest,
    ManifestError,
    build_dir,
    check_splits,
    manifest_table,
    register_corpus,
    seeded_rng,
    write_manifest,
)
from workloads.speaker_text.descriptions import GRAMMAR_VERSION, Fact, describe, normalise_sex

CORPUS_NAME = "speaker_text_voxceleb1"
META_NAME = "vox1_meta.csv"
META_COLUMNS = ("VoxCeleb1 ID", "VGGFace1 ID", "Gender", "Nationality", "Set")
WAV_DIRS = ("wav", "vox1_dev_wav/wav", "vox1_test_wav/wav")
SETS = {"dev": "train", "test": "test"}
VOX_SR = 16000
LANGUAGE = "en"
DEFAULT_OPTIONS: dict[str, Any] = {"n_val": 40, "max_utts_per_speaker": 0, "n_descriptions": 5, "seed": 0}
_SHOW = 3  # how many offending items a message names


@dataclass(frozen=True)
class MetaRow:
    speaker: str
    name: str
    gender: str  # "male" | "female"
    nationality: str
    set: str  # "dev" | "test"


def resolve_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ManifestError(f"{CORPUS_NAME}: unknown option(s) {unknown}; known: {sorted(DEFAULT_OPTIONS)}")
    cfg = {k: int(v if v is not None else 0) for k, v in {**DEFAULT_OPTIONS, **options}.items()}
    bad = [k for k, v in cfg.items() if v < 0 or (k == "n_descriptions" and v < 1)]
    if bad:
        raise ManifestError(f"{CORPUS_NAME}: option(s) {bad} out of range in {cfg}")
    return cfg


def find_inputs(data_root: Path | None) -> tuple[Path, list[Path]]:
    """``vox1_meta.csv`` and the existing wav folders, or one error naming where it looked."""
    if data_root is None:
        raise ManifestError(
            f"{CORPUS_NAME} needs a data root holding VoxCeleb1 ({META_NAME} + wav/<speaker>/<video>/*.wav); "
            "none was given"
        )
    root = Path(data_root)
    if not root.is_dir():
        raise ManifestError(f"VoxCeleb1 not found: data root {root} does not exist or is not a folder")
    meta = root / META_NAME
    if not meta.is_file():
        raise ManifestError(f"VoxCeleb1 metadata missing: {meta} not found (download {META_NAME} into {root})")
    wav_dirs = [root / d for d in WAV_DIRS if (root / d).is_dir()]
    if not wav_dirs:
        looked = ", ".join(str(root / d) for d in WAV_DIRS)
        raise ManifestError(f"VoxCeleb1 audio missing: no wav folder under {root}; looked in {looked}")
    return meta, wav_dirs


def read_meta(path: Path) -> list[MetaRow]:
    """The rows of ``vox1_meta.csv``; cells are stripped, blank lines skipped, every row checked."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            lines = list(csv.reader(f, delimiter="\t"))
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e})") from None
    header = [c.strip() for c in (lines[0] if lines else [])]
    missing = [c for c in META_COLUMNS if c not in header]
    if missing:
        raise ManifestError(f"{path}: not a VoxCeleb1 meta file, missing column(s) {missing}; header is {header}")
    idx = [header.index(c) for c in META_COLUMNS]
    rows: list[MetaRow] = []
    seen: set[str] = set()
    for line_no, cells in enumerate(lines[1:], start=2):
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        rows.append(_meta_row(path, line_no, cells, idx))
        if rows[-1].speaker in seen:
            raise ManifestError(f"{path}: speaker {rows[-1].speaker!r} listed twice (second time on line {line_no})")
        seen.add(rows[-1].speaker)
    if not rows:
        raise ManifestError(f"{path}: no speaker rows")
    return rows


def _meta_row(path: Path, line_no: int, cells: list[str], idx: list[int]) -> MetaRow:
    if len(cells) <= max(idx):
        raise ManifestError(
            f"{path}: line {line_no} has {len(cells)} tab-separated cell(s), expected {len(META_COLUMNS)}"
        )
    speaker, name, gender, nationality, subset = (cells[i] for i in idx)
    sex = normalise_sex(gender)
    problems = [f"speaker id {speaker!r}"] if not speaker else []
    problems += [] if sex else [f"gender {gender!r} (expected m or f)"]
    problems += [] if subset.lower() in SETS else [f"Set {subset!r} (expected dev or test)"]
    if problems:
        raise ManifestError(f"{path}: line {line_no} ({speaker or '?'}): bad {', '.join(problems)}")
    return MetaRow(speaker, name, sex or "", nationality, subset.lower())


def speaker_folders(rows: list[MetaRow], wav_dirs: list[Path]) -> tuple[dict[str, Path], list[str], list[MetaRow]]:
    """Folder per meta speaker that has one, the speaker folders on disk that the meta file does
    not list, and the meta speakers without a folder (skipped, counted in the build log; an error
    only when no meta speaker has audio)."""
    listed = {r.speaker for r in rows}
    folders: dict[str, Path] = {}
    for d in wav_dirs:
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            if entry.is_dir() and entry.name in listed and entry.name not in folders:
                folders[entry.name] = Path(entry.path)
    unlisted = sorted({e.name for d in wav_dirs for e in os.scandir(d) if e.is_dir()} - listed)
    missing = [r for r in rows if r.speaker not in folders]
    if len(missing) == len(rows):
        looked = ", ".join(str(d) for d in wav_dirs)
        raise ManifestError(
            f"VoxCeleb1 audio missing for all {len(rows)} speaker(s) in {META_NAME}, e.g. "
            f"{', '.join(r.speaker for r in missing[:_SHOW])}; looked in {looked}"
        )
    return folders, unlisted, missing


def utterances(folder: Path, cap: int) -> list[Path]:
    """The speaker's WAVs (sorted), or at most ``cap`` of them round-robin over its videos."""
    videos = sorted(e.path for e in os.scandir(folder) if e.is_dir())
    per_video = [sorted(Path(v).glob("*.wav")) for v in videos]
    if not cap:
        return [p for files in per_video for p in files]
    out: list[Path] = []
    for k in range(max((len(f) for f in per_video), default=0)):
        out += [files[k] for files in per_video if k < len(files)]
    return sorted(out[:cap])


def split_of(rows: list[MetaRow], n_val: int, seed: int) -> dict[str, str]:
    """Official Set (dev -> train, test -> test), plus ``n_val`` dev speakers held out as val; with
    no dev speaker at all (only the test zip on disk), see :func:`test_only_split`."""
    dev = sorted(r.speaker for r in rows if r.set == "dev")
    if not dev:
        return test_only_split(rows, seed)
    if n_val >= len(dev):
        raise ManifestError(f"{CORPUS_NAME}: n_val={n_val} leaves no training speaker ({len(dev)} dev speakers)")
    held = {dev[i] for i in seeded_rng("val", seed).permutation(len(dev))[:n_val]}
    return {r.speaker: "val" if r.speaker in held else SETS[r.set] for r in rows}


def test_only_split(rows: list[MetaRow], seed: int) -> dict[str, str]:
    """The test speakers split speaker-disjointly (seeded): a quarter (at least one) val, a
    quarter test, the rest train; with fewer than three speakers a split stays empty (an error)."""
    spk = sorted(r.speaker for r in rows)
    n_eval = max(1, len(spk) // 4) if len(spk) >= 3 else 0
    order = [spk[i] for i in seeded_rng("test_only", seed).permutation(len(spk))]
    out = {s: "val" for s in order[:n_eval]} | {s: "test" for s in order[n_eval : 2 * n_eval]}
    return {s: out.get(s, "train") for s in spk}


def _digest(meta: Path, files: list[Path]) -> str:
    """Inputs' identity at stat() cost: the meta file and every selected WAV's size and mtime."""
    h = hashlib.sha256()
    for p in [meta, *files]:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _audio_info(path: Path, unreadable: list[str]) -> tuple[int, float]:
    try:
        info = sf.info(str(path))
        return int(info.samplerate), float(info.frames) / info.samplerate
    except Exception as e:  # noqa: BLE001  (libsndfile raises its own error types)
        unreadable.append(f"{path} ({e})")
        return VOX_SR, 0.0


@register_corpus(CORPUS_NAME)
def build_speaker_text_voxceleb1(req: CorpusRequest) -> Path:
    """Manifest of VoxCeleb1 (see the module docstring); cached by the inputs' size and mtime, so
    a re-run costs a directory listing and a stat() per file."""
    cfg = resolve_options(req.options)
    meta_path, wav_dirs = find_inputs(req.data_root)
    listed = read_meta(meta_path)
    folders, unlisted, absent = speaker_folders(listed, wav_dirs)
    rows = [r for r in listed if r.speaker in folders]
    files = {r.speaker: utterances(folders[r.speaker], cfg["max_utts_per_speaker"]) for r in rows}
    empty = [r.speaker for r in rows if not files[r.speaker]]
    if empty:
        raise ManifestError(
            f"VoxCeleb1: {len(empty)} speaker folder(s) without any <video>/*.wav, e.g. "
            f"{', '.join(str(folders[s]) for s in empty[:_SHOW])}"
        )
    splits = split_of(rows, cfg["n_val"], cfg["seed"])
    test_only = not any(r.set == "dev" for r in rows)
    check_splits([{"split": v} for v in splits.values()], CORPUS_NAME, "speaker",
                 f" after skipping {len(absent)} meta speaker(s) without audio" if absent else "")  # fmt: skip
    key = {"corpus": CORPUS_NAME, **cfg, "grammar": GRAMMAR_VERSION,
           "inputs": _digest(meta_path, [p for r in rows for p in files[r.speaker]])}  # fmt: skip
    manifest = build_dir(Path(req.work_dir) / CORPUS_NAME, key) / "manifest.parquet"
    _log_partial(listed, absent, test_only)  # on a reused manifest too: the count is the record
    if manifest.exists():
        return manifest

    t0 = time.perf_counter()
    out, unreadable = [], []
    for r in rows:
        out += _speaker_rows(r, splits[r.speaker], files[r.speaker], folders[r.speaker], cfg, unreadable)
    write_manifest(manifest_table(out), manifest)
    _log(rows, splits, out, unlisted, unreadable, time.perf_counter() - t0, manifest)
    return manifest


def _speaker_rows(
    r: MetaRow, split: str, wavs: list[Path], folder: Path, cfg: dict[str, Any], unreadable: list[str]
) -> list[dict[str, Any]]:
    facts = [Fact("sex", r.gender)] + ([Fact("nationality", r.nationality)] if r.nationality else [])
    try:
        texts = describe(facts, cfg["n_descriptions"], seeded_rng("descriptions", cfg["seed"], r.speaker))
    except ValueError as e:
        raise ManifestError(f"{CORPUS_NAME}: {r.speaker}: {e}") from None
    meta = json.dumps({"gender": r.gender, "nationality": r.nationality, "vggface1_id": r.name, "set": r.set},
                      sort_keys=True, ensure_ascii=False)  # fmt: skip
    out = []
    for wav in wavs:
        sr, duration = _audio_info(wav, unreadable)
        rel = wav.relative_to(folder).with_suffix("").as_posix()
        out.append({"id": f"{r.speaker}/{rel}", "split": split, "audio_path": str(wav.resolve()), "sr": sr,
                    "offset": 0.0, "duration": duration, "texts": texts, "label": r.speaker,
                    "speaker": r.speaker, "language": LANGUAGE, "meta": meta})  # fmt: skip
    return out


def _log(rows: list[MetaRow], splits: dict[str, str], out: list[dict[str, Any]], unlisted: list[str],
         unreadable: list[str], elapsed: float, manifest: Path) -> None:  # fmt: skip
    spk = {s: sum(v == s for v in splits.values()) for s in ("train", "val", "test")}
    utt = {s: sum(o["split"] == s for o in out) for s in spk}
    counts = ", ".join(f"{s} {spk[s]} spk / {utt[s]} utt" for s in spk)
    print(f"[{CORPUS_NAME}] {len(rows)} speakers, {len(out)} utterances ({counts}) in {elapsed:.1f} s -> {manifest}")
    if unlisted:
        print(f"[{CORPUS_NAME}] warning: {len(unlisted)} speaker folder(s) not in {META_NAME} skipped "
              f"(no split for them): {', '.join(unlisted[:10])}")  # fmt: skip
    if unreadable:
        print(f"[{CORPUS_NAME}] warning: {len(unreadable)} WAV(s) with an unreadable header kept with duration 0 "
              f"for the extraction's bad-item check: {'; '.join(unreadable[:_SHOW])}")  # fmt: skip


def _log_partial(listed: list[MetaRow], absent: list[MetaRow], test_only: bool) -> None:
    if absent:
        sets = ", ".join(f"{n} {s}" for s in SETS if (n := sum(r.set == s for r in absent)))
        print(f"[{CORPUS_NAME}] {len(absent)} of {len(listed)} speaker(s) in {META_NAME} have no audio folder "
              f"({sets}) and were skipped, e.g. {', '.join(r.speaker for r in absent[:_SHOW])}")  # fmt: skip
    if test_only:
        print(f"[{CORPUS_NAME}] no dev speaker on disk: the test speakers are split into train/val/test "
              "(not the paper's protocol, whose train set is the 1,211 dev speakers)")  # fmt: skip
