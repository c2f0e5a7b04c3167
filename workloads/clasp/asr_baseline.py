"""The ASR-based baselines of stage 3 (paper sec. 3.3): transcribe the speech, embed the transcripts
with the same frozen text encoder as the queries, retrieve by cosine.

Where the transcripts come from: a derived corpus, ``clasp_asr``. It builds (or finds) the base
corpus, transcribes the clips of the evaluation splits only (validation, where Macro-F1's
threshold is chosen, and test; training clips are never needed by a system that does not train),
and writes the base manifest again with each transcript in ``meta.asr.<name>``. So:

* transcription runs once per clip and ASR system: transcripts are cached by the clip's content
  (sha256 of the file's bytes, plus offset and duration) under the transcriber's own key (its id,
  the hash of its weights and its decoding parameters), in an append-only JSON-lines file beside
  the corpora; a rebuilt or re-split corpus, or a second sweep, reuses every transcript;
* the ASR trial reads the same texts and translations as the trained systems (its text views hit
  the same cache entries: a text view is keyed by the item ids and texts, not by the manifest), and
  the transcripts travel in the manifest (so they are logged and inspectable, and the word error
  rate is reported beside the retrieval metrics);
* the transcripts are embedded in the trial by the text encoder of the configured ``text``
  choice, with the same parameters the text view was extracted with (:func:`embed_texts`).

Audio files named relative to the base manifest are hard-linked into the derived corpus' folder
(copied where links are impossible), so the derived corpus is self-contained like the base one,
and can be published to shared storage as a unit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.audio import BadAudioError, load_audio
from orchestrator.corpus import (
    MANIFEST_SCHEMA,
    CorpusRequest,
    FileHashMemo,
    ManifestError,
    build_corpus,
    build_dir,
    register_corpus,
    write_manifest,
)
from orchestrator.progress import Progress

CORPUS_NAME = "clasp_asr"
BUILD_VERSION = 1
EVAL_SPLITS = ("val", "test")
BATCH = 8


# ------------------------------------------------------------------------------------------------
# transcript cache


def transcriber_key(transcriber: Any) -> str:
    """What a transcript depends on besides the audio: the system, its weights, its decoding."""
    blob = json.dumps({"id": transcriber.transcriber_id, "weights": transcriber.weights_hash(),
                       "params": transcriber.params(), "sr": transcriber.sample_rate}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class TranscriptCache:
    """Transcripts of one transcriber by clip content key, in an append-only JSON-lines file.

    Appending one line per finished batch means a killed build keeps what it transcribed; a line
    cut short by a kill is skipped when read (it was never acknowledged)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, str] = {}
        if self.path.exists():
            with self.path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self.entries[rec["clip"]] = rec["text"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue

    def get(self, clip: str) -> str | None:
        return self.entries.get(clip)

    def add(self, items: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            for clip, text in items.items():
                f.write(json.dumps({"clip": clip, "text": text}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.entries.update(items)


def clip_key(sha: str, offset: float, duration: float) -> str:
    return f"{sha}:{float(offset):.4f}:{float(duration):.4f}"


def transcribe_rows(rows: list[dict[str, Any]], transcriber: Any, cache: TranscriptCache, memo: FileHashMemo,
                    label: str = "asr") -> tuple[list[str], int]:
    """Transcripts of ``rows`` (manifest rows with resolved ``audio_path``), in order, and how many
    were transcribed now (the rest came from the cache). Unreadable audio raises one line."""
    keys = [clip_key(r.get("audio_sha256") or memo.digest(r["audio_path"]), r["offset"], r["duration"])
            for r in rows]
    todo = [i for i, k in enumerate(keys) if cache.get(k) is None]
    if todo:
        bar = Progress(f"[{CORPUS_NAME}] {label}", len(todo), "clips")
        try:
            for s in range(0, len(todo), BATCH):
                chunk = todo[s:s + BATCH]
                waves = []
                for i in chunk:
                    r = rows[i]
                    try:
                        waves.append(load_audio(r["id"], r["audio_path"], transcriber.sample_rate, float(r["offset"]),
                                                float(r["duration"]) if r["duration"] > 0 else None))
                    except BadAudioError as e:
                        raise ManifestError(f"{CORPUS_NAME}: cannot transcribe {e}") from None
                texts = transcriber.transcribe(waves)
                cache.add({keys[i]: t for i, t in zip(chunk, texts, strict=True)})
                bar.update(len(chunk))
        finally:
            bar.close()
    return [cache.entries[k] for k in keys], len(todo)


# ------------------------------------------------------------------------------------------------
# the derived corpus


def _resolve_options(options: dict[str, Any]) -> dict[str, Any]:
    known = {"base", "base_options", "transcribers", "splits"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ManifestError(f"{CORPUS_NAME}: unknown option(s) {unknown}; known: {sorted(known)}")
    if not options.get("base") or not options.get("transcribers"):
        raise ManifestError(f"{CORPUS_NAME}: options 'base' (a corpus) and 'transcribers' "
                            "({name: {transcriber, params}}) are required")
    splits = tuple(options.get("splits") or EVAL_SPLITS)
    bad = sorted(set(splits) - {"train", "val", "test"})
    if bad:
        raise ManifestError(f"{CORPUS_NAME}: unknown split(s) {bad}")
    return {"base": str(options["base"]), "base_options": dict(options.get("base_options") or {}),
            "transcribers": {str(k): {"transcriber": str(v["transcriber"]), "params": dict(v.get("params") or {})}
                             for k, v in sorted(dict(options["transcribers"]).items())},
            "splits": splits}


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


@register_corpus(CORPUS_NAME)
def build_transcribed(req: CorpusRequest) -> Path:
    """The base corpus with ``meta.asr.<name>`` transcripts on its evaluation splits."""
    from orchestrator.encoders.asr import build_transcriber

    cfg = _resolve_options(req.options)
    base_manifest = Path(build_corpus(CorpusRequest(cfg["base"], req.profile, req.data_root, req.work_dir,
                                                    cfg["base_options"])))
    base_sha = hashlib.sha256(base_manifest.read_bytes()).hexdigest()[:16]
    transcribers = {name: build_transcriber(t["transcriber"], **t["params"]) for name, t in cfg["transcribers"].items()}
    tkeys = {name: transcriber_key(t) for name, t in transcribers.items()}
    key = {"corpus": CORPUS_NAME, "version": BUILD_VERSION, "base": cfg["base"], "base_manifest": base_sha,
           "transcribers": tkeys, "splits": list(cfg["splits"])}
    out_dir = build_dir(Path(req.work_dir) / CORPUS_NAME, key)
    manifest = out_dir / "manifest.parquet"
    if manifest.exists():
        return manifest

    t0 = time.perf_counter()
    raw = pq.read_table(base_manifest).to_pylist()  # audio paths as written (relative ones are local files)
    base_dir = base_manifest.parent
    rows = []
    for r in raw:
        p = r["audio_path"]
        if not os.path.isabs(p) and "://" not in p:  # a file of the base build: link it in, keep the name
            _link(base_dir / p, out_dir / p)
            resolved = str(base_dir / p)
        else:
            resolved = p
        rows.append({**r, "_resolved": resolved})
    evals = [r for r in rows if r["split"] in cfg["splits"]]
    memo = FileHashMemo(Path(req.work_dir) / CORPUS_NAME / "file_hashes.sqlite")
    done: dict[str, list[str]] = {}
    fresh = 0
    try:
        for name, tr in transcribers.items():
            cache = TranscriptCache(Path(req.work_dir) / CORPUS_NAME / "transcripts" / f"{tkeys[name]}.jsonl")
            texts, n_new = transcribe_rows([{**r, "audio_path": r["_resolved"]} for r in evals], tr, cache, memo,
                                           label=name)
            done[name], fresh = texts, fresh + n_new
    finally:
        memo.close()
    for k, r in enumerate(evals):
        meta = json.loads(r["meta"]) if r.get("meta") else {}
        meta["asr"] = {name: done[name][k] for name in transcribers}
        r["meta"] = json.dumps(meta, ensure_ascii=False, sort_keys=True)
    for r in rows:
        r.pop("_resolved")
    write_manifest(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), manifest)
    (out_dir / "config.json").write_text(json.dumps(key, indent=1, sort_keys=True))
    print(f"[{CORPUS_NAME}] {cfg['base']}: {len(evals)} clip(s) of {'/'.join(cfg['splits'])} x "
          f"{len(transcribers)} ASR system(s), {fresh} transcribed now, the rest cached, in "
          f"{time.perf_counter() - t0:.1f} s -> {manifest}", flush=True)
    return manifest


# ------------------------------------------------------------------------------------------------
# evaluation helpers


def embed_texts(texts: list[str], encoder: str, params: dict[str, Any]) -> np.ndarray:
    """Embed transcripts with the text encoder (and parameters) the text views were extracted
    with, so transcripts and queries live in one space. Empty transcripts (ASR heard nothing)
    embed as the zero vector: cosine 0 with every query, never a match by accident."""
    from orchestrator.encoders.text import build_text_encoder

    enc = build_text_encoder(encoder, **params)
    keep = [i for i, t in enumerate(texts) if t and t.strip()]
    out = np.zeros((len(texts), enc.dim), np.float32)
    if keep:
        out[keep] = enc.embed_texts([texts[i] for i in keep])
    return out


_WORD = re.compile(r"[^\w\s']")


def _words(text: str) -> list[str]:
    return _WORD.sub(" ", text.lower().replace("-", " ")).split()


def word_error_rate(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER: word-level Levenshtein distance summed over pairs / reference words summed,
    after lower-casing and dropping punctuation (ASR systems differ in casing and punctuation,
    which text retrieval does not care about)."""
    errors, total = 0, 0
    for ref, hyp in zip(refs, hyps, strict=True):
        r, h = _words(ref), _words(hyp)
        d = list(range(len(h) + 1))
        for i, rw in enumerate(r, 1):
            prev, d[0] = d[0], i
            for j, hw in enumerate(h, 1):
                cur = min(d[j] + 1, d[j - 1] + 1, prev + (rw != hw))
                prev, d[j] = d[j], cur
        errors += d[len(h)]
        total += len(r)
    return errors / total if total else float("nan")
