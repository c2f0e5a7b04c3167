"""Paper profile: Speech Brown (``clasp_speech_brown``), the paper's own dataset, as distributed.

What the distribution is (Hugging Face dataset ``llm-lab/SpeechBrown``; its generation notebook
``notebooks/tts-data-generation.ipynb`` and reader notebooks in the authors' repository
``llm-lab-org/CLASP``): 55,173 Brown-corpus sentences read by NVIDIA Tacotron 2 + WaveGlow,
written as 22,050 Hz WAV files ``audio_<id>.wav``, split into ten parts and shipped as
``dataset_part1.zip`` .. ``dataset_part10.zip``, each made with
``shutil.make_archive('dataset_partK', 'zip', 'dataset/partK')`` and so holding ``audios/audio_<id>.wav``
at its top level. The metadata is JSON:

* ``global_metadata.json``: a list of records ``{"id": 19840, "file_path":
  "dataset/part4/audios/audio_19840.wav", "text": ..., "category": "belles_lettres"}``
  (the visualisation notebook reads ``category`` from it; 15 Brown categories);
* ``localized_metadata.json``: the same records grouped as ``{"part4": [...], ...}``;
* ``metadata.json`` (the authors' filtered copy, 54,785 items with audio): ``{"19840": {"id",
  "file_path", "text", "part_id"}}``.

Read here, under ``data_root`` (or ``data_root/SpeechBrown``): the first of ``global_metadata.json``,
``metadata.json``, ``localized_metadata.json`` that exists. A record's audio is looked for where
the ways of unpacking the zips put it, in this order: ``<root>/<file_path>`` (the layout the
records name), ``<root>/dataset_partK/audios/audio_<id>.wav`` (each zip extracted into a folder of
its name, as the authors' extraction notebook does), ``<root>/partK/audios/...`` and
``<root>/audios/...`` (all zips extracted into one folder). A record without ``category`` gets
the label ``speech_brown``.

Rows: ``id`` = ``speech_brown/<id>``; ``texts`` = [the sentence as distributed: Brown tokens
joined by spaces, e.g. "Isles , western Europe"]; ``label`` = category; split 80/10/10 stratified
by category and seeded (the paper drew its Speech Brown share of an 80/10/10 split of the union
of its three datasets with ``random.seed(42)``; that exact draw depends on the other two datasets
and on Python's ``random``, so it is not reproduced); translations from
``<data_root>/translations/<lang>.tsv`` (option ``translations``, see :mod:`.translations`).

Errors: no metadata file, a record without id/text/file name, a duplicate id, or a split left
empty each give one line. A record whose audio is in none of the places looked, or whose header
cannot be read, does not stop the build: it is kept (duration 0, ``audio_path`` the first place
looked) and the build log names the count, an example, every place looked and, when the part's zip
is present but not extracted, the zip; the core's bad-item check before extraction
(:class:`~orchestrator.corpus.AudioCheck`) then stops with one line naming it or, with
``--skip-bad-items``, quarantines and records it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from orchestrator.corpus import (
    AudioCheck,
    CorpusRequest,
    ManifestError,
    build_dir,
    check_splits,
    input_stats,
    manifest_table,
    register_corpus,
    write_manifest,
)
from workloads.clasp import CATEGORIES, assign_splits, finalize_meta
from workloads.clasp.translations import attach_translations, resolve_languages

CORPUS_NAME = "clasp_speech_brown"
METADATA_FILES = ("global_metadata.json", "metadata.json", "localized_metadata.json")
SB_SR = 22050
_PART = re.compile(r"part(\d+)")
_SHOW = 3


def find_root(data_root: Path | None) -> tuple[Path, Path]:
    """(root, metadata file) for the first candidate root holding a metadata file."""
    if data_root is None:
        raise ManifestError(f"{CORPUS_NAME} needs a data root holding Speech Brown (global_metadata.json + "
                            "extracted dataset_part*.zip); none was given")  # fmt: skip
    root = Path(data_root)
    candidates = [root, root / "SpeechBrown"]
    for r in candidates:
        for name in METADATA_FILES:
            if (r / name).is_file():
                return r, r / name
    where = f"{root} (which does not exist)" if not root.exists() else str(root)
    looked = ", ".join(f"{r}/" for r in candidates)
    raise ManifestError(f"Speech Brown not found under {where}: none of {', '.join(METADATA_FILES)} in {looked} "
                        "(llm-lab/SpeechBrown on Hugging Face)")  # fmt: skip


def read_metadata(path: Path) -> list[dict[str, Any]]:
    """The records of any of the three metadata shapes, as a list, with ``part`` filled in."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{path}: not a JSON file ({e})") from None
    if isinstance(data, list):
        records = data
    elif isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        records = [r for _, part in sorted(data.items()) for r in part]  # localized: {"part1": [...]}
    elif isinstance(data, dict):
        records = list(data.values())  # metadata.json: {"19840": {...}}
    else:
        raise ManifestError(f"{path}: expected a list of records or an object of records, got {type(data).__name__}")
    out, bad, seen = [], [], set()
    for n, r in enumerate(records):
        ok = isinstance(r, dict) and r.get("id") is not None and r.get("file_path")
        if not ok or not str(r.get("text") or "").strip():
            bad.append(f"record {n} ({str(r)[:60]})")
            continue
        rid = str(r["id"])
        if rid in seen:
            raise ManifestError(f"{path}: id {rid} appears twice")
        seen.add(rid)
        m = _PART.search(str(r["file_path"]))
        part = r.get("part_id") or (int(m.group(1)) if m else None)
        out.append({**r, "id": rid, "part": part})
    if bad:
        raise ManifestError(
            f"{path}: {len(bad)} record(s) without id, text or file_path, e.g. {'; '.join(bad[:_SHOW])}"
        )
    if not out:
        raise ManifestError(f"{path}: no records")
    return out


def audio_candidates(root: Path, rec: dict[str, Any]) -> list[Path]:
    name = Path(str(rec["file_path"])).name
    out = [root / str(rec["file_path"])]
    if rec["part"] is not None:
        out += [root / f"dataset_part{rec['part']}" / "audios" / name, root / f"part{rec['part']}" / "audios" / name]
    return out + [root / "audios" / name]


def resolve_audio(root: Path, records: list[dict[str, Any]]) -> tuple[list[Path], str]:
    """The audio file of every record, and a hint for the build log when some are missing: a
    record whose file is in none of the places looked is kept with the first of them, for the
    core's bad-item check (see the module doc); the hint names the other places and the zips."""
    paths, missing = [], []
    for rec in records:
        cands = audio_candidates(root, rec)
        hit = next((p for p in cands if p.is_file()), None)
        if hit is None:
            missing.append((rec, cands))
        paths.append(hit or cands[0])
    if not missing:
        return paths, ""
    rec, cands = missing[0]
    parts = sorted({r["part"] for r, _ in missing if r["part"] is not None})
    zips = [root / f"dataset_part{k}.zip" for k in parts if (root / f"dataset_part{k}.zip").is_file()]
    hint = (f"; extract {', '.join(z.name for z in zips[:_SHOW])} into {root}/dataset_partK/ (each holds audios/)"
            if zips else "")  # fmt: skip
    return paths, f" (parts {parts}; id {rec['id']} was looked for in {', '.join(map(str, cands))}{hint})"


@register_corpus(CORPUS_NAME)
def build_speech_brown(req: CorpusRequest) -> Path:
    """Manifest of Speech Brown from its distributed layout; options ``seed`` (split, default 0)
    and ``translations``."""
    known = {"seed", "translations"}
    unknown = sorted(set(req.options) - known)
    if unknown:
        raise ManifestError(f"{CORPUS_NAME}: unknown option(s) {unknown}; known: {sorted(known)}")
    seed = int(req.options.get("seed", 0))
    root, meta_path = find_root(req.data_root)
    records = read_metadata(meta_path)
    paths, hint = resolve_audio(root, records)
    tdir = Path(req.data_root) / "translations"
    langs = resolve_languages(req.options.get("translations"), tdir, CORPUS_NAME)
    tfiles = [tdir / f"{lang}.tsv" for lang in langs if (tdir / f"{lang}.tsv").is_file()]
    key = {"corpus": CORPUS_NAME, "seed": seed, "languages": langs, "inputs": input_stats([meta_path, *paths, *tfiles])}
    manifest = build_dir(Path(req.work_dir) / CORPUS_NAME, key) / "manifest.parquet"
    if manifest.exists():
        return manifest

    t0 = time.perf_counter()
    ids = [f"speech_brown/{r['id']}" for r in records]
    cats = [str(r.get("category") or "") or None for r in records]
    splits = assign_splits(ids, seed, CORPUS_NAME, strata=[c or "" for c in cats])
    check_splits([{"split": s} for s in splits.values()], f"{CORPUS_NAME} ({meta_path})", "sentence", req=req)
    rows, audio = [], AudioCheck(CORPUS_NAME)
    for rec, item, cat, path in zip(records, ids, cats, paths, strict=True):
        sr, duration = audio.info(path, SB_SR)
        rows.append({"id": item, "split": splits[item], "audio_path": str(path.resolve()), "sr": sr, "offset": 0.0,
                     "duration": duration, "texts": [str(rec["text"]).strip()], "label": cat or "speech_brown",
                     "speaker": None, "language": "en", "_meta": {"category": cat}})  # fmt: skip
    report = attach_translations(rows, tdir, langs)
    finalize_meta(rows)
    write_manifest(manifest_table(rows), manifest)
    odd = sorted({c for c in cats if c and c not in CATEGORIES})
    odd_note = f"; unknown categories {odd}" if odd else ""
    counts = ", ".join(f"{s} {sum(r['split'] == s for r in rows)}" for s in ("train", "val", "test"))
    print(f"[{CORPUS_NAME}] {len(rows)} sentences ({counts}) from {meta_path.name}, "
          f"{sum(c is not None for c in cats)} with a category; translations {report.summary()}"
          f"{odd_note} in {time.perf_counter() - t0:.1f} s -> {manifest}")  # fmt: skip
    audio.log(_SHOW, hint)
    return manifest
