"""Paper profile: Clotho v2 for text-to-audio retrieval (``tar_clotho``), from its official layout.

Clotho v2 (Drossos et al.; Zenodo records 4743815, v2.1: 4783391) ships three captions CSVs with
the header ``file_name,caption_1,...,caption_5`` and one 7z archive of 44.1 kHz WAVs per split.
Two on-disk layouts are in use; under ``data_root`` both are looked for, in this order, and the
first that holds all three captions CSVs is read:

1. the Zenodo files extracted in place (the layout of the thesis' code base, Primus et al.'s
   ``salsa``, which keeps it in a folder named ``clotho_v2``)::

       <R>/clotho_captions_{development,validation,evaluation}.csv
       <R>/{development,validation,evaluation}/<file_name>        (clotho_audio_<split>.7z extracted)

   with ``<R>`` = ``data_root`` or ``data_root/clotho_v2``;

2. the DCASE baseline / aac-datasets layout::

       <R>/clotho_csv_files/clotho_captions_<split>.csv
       <R>/clotho_audio_files/<split>/<file_name>

   with ``<R>`` = ``data_root``, ``data_root/CLOTHO_v2.1`` or ``data_root/CLOTHO_v2``
   (``aac_datasets.Clotho(root, version="v2.1")`` downloads into ``root/CLOTHO_v2.1/``).

The metadata CSVs (keywords, Freesound ids, licences) are not needed and not read. Why not read
with aac-datasets itself: version 0.7.0 imports torchaudio when imported, and the newest torchaudio
on PyPI (2.11) does not load against this project's torch 2.13; it reads these CSVs with
``csv.DictReader`` as done here.

Rows: ``id`` = ``<split>/<file_name>`` with Clotho's splits renamed development -> ``train``,
validation -> ``val``, evaluation -> ``test`` (the thesis: 3840 / 1045 / 1045 clips); ``texts`` = the
five captions as written (the workload preprocesses them with
:func:`workloads.tar.text.preprocess_caption`); ``label`` = ``id`` (every clip is its own target);
``sr``/``duration`` from the file header (``soundfile.info``); ``audio_path`` absolute, into
``data_root`` (nothing is copied).

Errors: a missing captions CSV or audio folder, a CSV without the Clotho columns, a row with an
empty caption cell or a duplicate file name, each give one
:class:`~orchestrator.corpus.ManifestError` line naming what is missing and every place looked.
An audio file the CSVs list but the folder lacks, or whose header cannot be read, is kept with
``sr`` 44100 (Clotho's rate) and ``duration`` 0 ("whole file") and named in the build log; the
core's bad-item check before extraction (:class:`~orchestrator.corpus.AudioCheck`) then stops with
one line naming it or, with ``--skip-bad-items``, quarantines and records it, so no item is
dropped without a record.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.corpus import (
    AudioCheck,
    CorpusRequest,
    ManifestError,
    build_dir,
    input_stats,
    manifest_table,
    register_corpus,
    write_manifest,
)

CORPUS_NAME = "tar_clotho"
CLOTHO_SPLITS = {"development": "train", "validation": "val", "evaluation": "test"}
CAPTION_COLUMNS = tuple(f"caption_{i}" for i in range(1, 6))
CLOTHO_SR = 44100
_SHOW = 3  # how many offending items an error message names


@dataclass(frozen=True)
class Layout:
    """Where one on-disk layout keeps the captions CSVs and the per-split audio folders."""

    name: str
    csv_dir: Path
    audio_dir: Path

    def captions_csv(self, clotho_split: str) -> Path:
        return self.csv_dir / f"clotho_captions_{clotho_split}.csv"

    def split_dir(self, clotho_split: str) -> Path:
        return self.audio_dir / clotho_split


def candidate_layouts(root: Path) -> list[Layout]:
    """Every place looked, in order (see the module docstring)."""
    out = [Layout("zenodo", r, r) for r in (root, root / "clotho_v2")]
    out += [
        Layout("aac-datasets", r / "clotho_csv_files", r / "clotho_audio_files")
        for r in (root, root / "CLOTHO_v2.1", root / "CLOTHO_v2")
    ]
    return out


def find_layout(data_root: Path | None) -> Layout:
    if data_root is None:
        raise ManifestError(
            f"{CORPUS_NAME} needs a data root holding Clotho v2 (clotho_captions_*.csv + audio folders); none was given"
        )
    root = Path(data_root)
    candidates = candidate_layouts(root)
    found = {lay: [s for s in CLOTHO_SPLITS if lay.captions_csv(s).is_file()] for lay in candidates}
    for lay in candidates:
        if len(found[lay]) == len(CLOTHO_SPLITS):
            return lay
    names = "clotho_captions_{" + ",".join(CLOTHO_SPLITS) + "}.csv"
    looked = ", ".join(f"{lay.csv_dir}/" for lay in candidates)
    where = f"{root} (which does not exist)" if not root.exists() else str(root)
    msg = f"Clotho v2 not found under {where}: no folder holds all of {names}; looked in {looked}"
    partial = max(candidates, key=lambda lay: len(found[lay]))
    if found[partial]:
        missing = [s for s in CLOTHO_SPLITS if s not in found[partial]]
        msg += f" ({partial.csv_dir} lacks clotho_captions_{{{','.join(missing)}}}.csv)"
    raise ManifestError(msg)


def read_captions(path: Path) -> list[tuple[str, list[str]]]:
    """``[(file_name, [caption_1..caption_5]), ...]`` in file order; every cell must be non-empty."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in ("file_name", *CAPTION_COLUMNS) if c not in header]
            if missing:
                raise ManifestError(
                    f"{path}: not a Clotho captions CSV, missing column(s) {missing}; header is {header}"
                )
            rows = [(n, r) for n, r in enumerate(reader, start=2)]
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e})") from None
    out: list[tuple[str, list[str]]] = []
    empty: list[str] = []
    seen: set[str] = set()
    for line, r in rows:
        name = (r.get("file_name") or "").strip()
        caps = [r.get(c) or "" for c in CAPTION_COLUMNS]
        bad = [c for c, text in zip(CAPTION_COLUMNS, caps, strict=True) if not text.strip()]
        if not name:
            bad.insert(0, "file_name")
        if bad:
            empty.append(f"line {line} ({name or '?'}: {', '.join(bad)})")
            continue
        if name in seen:
            raise ManifestError(f"{path}: file_name {name!r} appears twice (second time on line {line})")
        seen.add(name)
        out.append((name, caps))
    if empty:
        raise ManifestError(
            f"{path}: {len(empty)} row(s) with an empty cell, e.g. {'; '.join(empty[:_SHOW])}; "
            "every Clotho clip needs a file_name and 5 captions"
        )
    if not out:
        raise ManifestError(f"{path}: no rows")
    return out


def _check_audio(layout: Layout, items: dict[str, list[tuple[str, list[str]]]]) -> dict[str, list[Path]]:
    """Audio path per item, split by split; one error naming every missing folder (a missing
    file is kept, see the module doc)."""
    missing_dirs = [layout.split_dir(s) for s in CLOTHO_SPLITS if not layout.split_dir(s).is_dir()]
    if missing_dirs:
        archives = [f"clotho_audio_{d.name}.7z" for d in missing_dirs]
        raise ManifestError(
            f"Clotho audio folder(s) missing: {', '.join(map(str, missing_dirs))} (captions found in "
            f"{layout.csv_dir}); extract {', '.join(archives)} into {layout.audio_dir}"
        )
    return {s: [layout.split_dir(s) / name for name, _ in items[s]] for s in CLOTHO_SPLITS}


@register_corpus(CORPUS_NAME)
def build_tar_clotho(req: CorpusRequest) -> Path:
    """Manifest of Clotho v2 (development/validation/evaluation -> train/val/test); cached by the
    CSVs' and audio files' size and mtime, so a re-run costs a stat() per file."""
    if req.options:
        raise ManifestError(f"{CORPUS_NAME}: unknown option(s) {sorted(req.options)}; it takes none")
    layout = find_layout(req.data_root)
    items = {s: read_captions(layout.captions_csv(s)) for s in CLOTHO_SPLITS}
    paths = _check_audio(layout, items)
    csvs = [layout.captions_csv(s) for s in CLOTHO_SPLITS]
    key: dict[str, Any] = {"corpus": CORPUS_NAME, "layout": layout.name,
                           "inputs": input_stats(csvs + [p for s in CLOTHO_SPLITS for p in paths[s]])}  # fmt: skip
    manifest = build_dir(Path(req.work_dir) / CORPUS_NAME, key) / "manifest.parquet"
    if manifest.exists():
        return manifest

    t0 = time.perf_counter()
    rows, audio = [], AudioCheck(CORPUS_NAME)
    for clotho_split, split in CLOTHO_SPLITS.items():
        for (name, caps), path in zip(items[clotho_split], paths[clotho_split], strict=True):
            sr, duration = audio.info(path, CLOTHO_SR)
            item_id = f"{split}/{name}"
            rows.append({"id": item_id, "split": split, "audio_path": str(path.resolve()), "sr": sr,
                         "offset": 0.0, "duration": duration, "texts": caps, "label": item_id,
                         "speaker": None, "language": None})  # fmt: skip
    write_manifest(manifest_table(rows), manifest)
    counts = ", ".join(f"{s} {len(items[c])}" for c, s in CLOTHO_SPLITS.items())
    print(f"[{CORPUS_NAME}] {len(rows)} clips ({counts}) from {layout.csv_dir} ({layout.name} layout) "
          f"in {time.perf_counter() - t0:.1f} s -> {manifest}")  # fmt: skip
    audio.log(_SHOW)
    return manifest
