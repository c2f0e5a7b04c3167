"""Paper profile: the paper's training and test data as one corpus (``clasp_combined``).

The paper trained and tested on the union of Speech Brown, Common Voice and FLEURS (sec. 3.1,
Table 1: ~114k sentences, 80/10/10). This builder builds each part with its own adapter (from the
same ``--data-root``) and concatenates their manifests: item ids are already prefixed by the part
(``speech_brown/...``, ``common_voice/...``, ``fleurs/...``), every part keeps its own seeded
80/10/10 split (grouped by sentence where a part has repeated sentences; a small part may leave a
split empty, the union may not), and audio paths are
written absolute, since the files stay where each part's adapter found them.

Options: ``parts`` (default: all three), ``part_options`` (``{part: {option: value}}``, passed to
that part's builder, e.g. ``{clasp_common_voice: {n_items: 20000}}``).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.corpus import (
    MANIFEST_SCHEMA,
    CorpusRequest,
    ManifestError,
    build_corpus,
    build_dir,
    check_splits,
    register_corpus,
    write_manifest,
)
from workloads.clasp import common_voice, fleurs_sentences, speech_brown  # noqa: F401  (register the parts)

CORPUS_NAME = "clasp_combined"
PARTS = ("clasp_speech_brown", "clasp_common_voice", "clasp_fleurs")


@register_corpus(CORPUS_NAME)
def build_combined(req: CorpusRequest) -> Path:
    known = {"parts", "part_options"}
    unknown = sorted(set(req.options) - known)
    if unknown:
        raise ManifestError(f"{CORPUS_NAME}: unknown option(s) {unknown}; known: {sorted(known)}")
    parts = list(req.options.get("parts") or PARTS)
    bad = sorted(set(parts) - set(PARTS))
    if bad or not parts:
        raise ManifestError(f"{CORPUS_NAME}: parts must be some of {list(PARTS)}, got {parts}")
    part_options = dict(req.options.get("part_options") or {})
    stray = sorted(set(part_options) - set(parts))
    if stray:
        raise ManifestError(f"{CORPUS_NAME}: part_options for parts not built: {stray}")
    manifests = {p: Path(build_corpus(CorpusRequest(p, req.profile, req.data_root, req.work_dir,
                                                    dict(part_options.get(p) or {}), part_of=CORPUS_NAME)))
                 for p in parts}
    key = {"corpus": CORPUS_NAME, "parts": {p: hashlib.sha256(m.read_bytes()).hexdigest()[:16]
                                            for p, m in manifests.items()}}
    out = build_dir(Path(req.work_dir) / CORPUS_NAME, key) / "manifest.parquet"
    if out.exists():
        return out
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    counts = []
    for p, m in manifests.items():
        part = pq.read_table(m).to_pylist()
        for r in part:
            if not os.path.isabs(r["audio_path"]) and "://" not in r["audio_path"]:
                r["audio_path"] = str((m.parent / r["audio_path"]).resolve())
        rows.extend(part)
        counts.append(f"{p.removeprefix('clasp_')} {len(part)}")
    check_splits(rows, CORPUS_NAME, hint=f" (parts: {'; '.join(counts)})", req=req)
    write_manifest(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), out)
    splits = ", ".join(f"{s} {sum(r['split'] == s for r in rows)}" for s in ("train", "val", "test"))
    print(f"[{CORPUS_NAME}] {len(rows)} items ({'; '.join(counts)}; {splits}) in {time.perf_counter() - t0:.1f} s "
          f"-> {out}", flush=True)
    return out
