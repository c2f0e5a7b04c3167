"""Views: one corpus seen through several frozen encoders, and the join trials train on.

A workload declares its data as a :class:`DataSpec`: one corpus plus named :class:`ViewSpec`\\ s
(``{"speaker": audio through ECAPA, "text": descriptions through BERT}``). Each view is extracted
once into its own cache entry (``orchestrator.extract.extract_view``), keyed by what its output
depends on, so changing one view's encoder re-extracts that view alone.

A trial reads the views of its config and gets ONE Arrow table per split, one row per manifest
item, joined on item id (:func:`read_joined`):

* manifest columns ``id, split, label, texts, speaker, language, meta``;
* an audio view ``V`` at level ``pooled``: column ``V`` (fixed-size list of float32);
* an audio view at level ``features``: ``V.features`` (flat float32), ``V.n_mels``, ``V.n_frames``;
* a text view ``V``: ``V`` (list of fixed-size lists, one embedding per surviving text),
  ``V.text_index`` (which of the item's texts they are) and ``V.text``.

One row per item keeps an item's views together when Ray Train splits the train set across
workers. An item missing from a view (quarantined there) cannot be joined; it is dropped from the
trial's tables and counted in :class:`JoinReport`, which the sweep records on every child run:
never dropped without a record.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orchestrator import storage
from orchestrator.corpus import read_manifest

Modality = Literal["audio", "text"]
MANIFEST_COLUMNS = ("id", "split", "label", "texts", "speaker", "language", "meta")


@dataclass(frozen=True)
class ViewSpec:
    """One encoder's view of the corpus.

    ``level``: ``pooled`` (one embedding per item or per text) or ``features`` (the audio
    encoder's input features per item, for the finetune regime). ``text_source``: where a text
    view reads its strings: ``texts`` (the manifest column) or ``meta:<dotted.path>`` into the
    item's ``meta`` JSON (e.g. ``meta:translations.de``).
    """

    modality: Modality
    encoder: str
    encoder_params: dict[str, Any] = field(default_factory=dict)
    level: Literal["pooled", "features"] = "pooled"
    text_source: str = "texts"

    def __post_init__(self) -> None:
        if self.modality not in ("audio", "text"):
            raise ValueError(f"view modality must be 'audio' or 'text', got {self.modality!r}")
        if self.modality == "text" and self.level != "pooled":
            raise ValueError("text views are pooled (one embedding per text)")
        if self.text_source != "texts" and not self.text_source.startswith("meta:"):
            raise ValueError(f"text_source must be 'texts' or 'meta:<path>', got {self.text_source!r}")

    def describe(self) -> str:
        extra = f", {self.text_source}" if self.modality == "text" and self.text_source != "texts" else ""
        return f"{self.modality} {self.encoder}{extra}" + (f" ({self.level})" if self.level != "pooled" else "")


@dataclass(frozen=True)
class DataSpec:
    """What a trial trains on: one corpus (a builder name + options) seen through named views."""

    corpus: str
    views: dict[str, ViewSpec]
    corpus_options: dict[str, Any] = field(default_factory=dict)

    def corpus_key(self) -> str:
        return _digest([self.corpus, self.corpus_options])

    def view_key(self, name: str) -> str:
        """Identifies (corpus, view) before extraction; the cache key proper also hashes the
        corpus content and the weights, which are only known once the corpus is built."""
        v = self.views[name]
        return _digest([self.corpus, self.corpus_options, v.modality, v.encoder, v.encoder_params, v.level,
                        v.text_source])


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------------
# texts of a text view


def texts_of(row: dict[str, Any], source: str) -> list[str]:
    """The strings a text view embeds for one manifest row (see :class:`ViewSpec`)."""
    if source == "texts":
        return list(row.get("texts") or [])
    path = source.removeprefix("meta:").split(".")
    node: Any = json.loads(row["meta"]) if row.get("meta") else {}
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return []
    return [node] if isinstance(node, str) else [str(t) for t in node]


# ------------------------------------------------------------------------------------------------
# the join


@dataclass
class JoinReport:
    """Items of the requested splits that a view lacks (so the join drops them)."""

    n_manifest_items: int = 0
    missing: dict[str, list[str]] = field(default_factory=dict)  # view -> item ids

    @property
    def dropped(self) -> list[str]:
        return sorted(set().union(*self.missing.values())) if self.missing else []

    def tags(self) -> dict[str, str]:
        out = {f"data.missing.{v}": str(len(ids)) for v, ids in self.missing.items()}
        out["data.dropped_items"] = str(len(self.dropped))
        return out


def read_view(cache_dir: str | Path) -> pa.Table:
    """All rows of a complete cache entry (its ``part-*.parquet`` shards), local or in a bucket."""
    cache_dir = str(cache_dir)
    if not storage.exists(storage.join(cache_dir, "meta.json")):
        raise FileNotFoundError(f"view cache {cache_dir} is incomplete (no meta.json)")
    parts = storage.list_files(cache_dir, "part-", ".parquet")
    if not parts:
        return pa.table({"id": pa.array([], pa.string())})
    fs, _ = storage.filesystem(cache_dir)
    return pq.read_table([storage.filesystem(p)[1] for p in parts], filesystem=fs)


def _group_text_rows(table: pa.Table, ids: list[str], name: str) -> dict[str, pa.Array]:
    """Text-view rows (one per (id, text_index)) -> per-item lists aligned with ``ids`` (sorted,
    each with at least one row)."""
    table = table.filter(pc.is_in(table.column("id"), value_set=pa.array(ids, pa.string())))
    table = table.sort_by([("id", "ascending"), ("text_index", "ascending")])
    row_ids = np.asarray(table.column("id").to_pylist(), dtype=object)
    starts = np.flatnonzero(np.r_[True, row_ids[1:] != row_ids[:-1]]) if len(row_ids) else np.zeros(0, int)
    if list(row_ids[starts]) != ids:
        raise ValueError(f"text view {name!r} rows do not cover the joined items")
    off = pa.array(np.r_[starts, len(row_ids)].astype(np.int32))
    emb = table.column("embedding").combine_chunks()
    return {
        name: pa.ListArray.from_arrays(off, emb),
        f"{name}.text_index": pa.ListArray.from_arrays(off, table.column("text_index").combine_chunks()),
        f"{name}.text": pa.ListArray.from_arrays(off, table.column("text").combine_chunks()),
    }


def read_joined(manifest_path: str | Path, views: dict[str, str | Path], splits: tuple[str, ...]
                ) -> tuple[pa.Table, JoinReport]:
    """The manifest rows of ``splits`` joined with every view's cached rows on item id.

    ``views`` maps a view name to its complete cache entry. Rows come out sorted by id; items
    absent from any view are dropped and listed in the report.
    """
    manifest = read_manifest(manifest_path)
    manifest = manifest.filter(pc.is_in(manifest.column("split"), value_set=pa.array(list(splits))))
    manifest = manifest.select(list(MANIFEST_COLUMNS)).sort_by("id")
    report = JoinReport(n_manifest_items=manifest.num_rows)
    wanted = manifest.column("id").to_pylist()
    loaded: dict[str, tuple[pa.Table, dict[str, Any]]] = {}
    keep = set(wanted)
    for name, cache_dir in views.items():
        meta = json.loads(storage.read_text(storage.join(str(cache_dir), "meta.json")))
        table = read_view(cache_dir)
        table = table.filter(pc.is_in(table.column("id"), value_set=pa.array(wanted, pa.string())))
        have = set(table.column("id").to_pylist())
        missing = [i for i in wanted if i not in have]
        if missing:
            report.missing[name] = missing
        keep &= have
        loaded[name] = (table, meta)
    if len(keep) != len(wanted):
        manifest = manifest.filter(pc.is_in(manifest.column("id"), value_set=pa.array(sorted(keep), pa.string())))
    ids = manifest.column("id").to_pylist()
    out = manifest
    for name, (table, meta) in loaded.items():
        if meta.get("modality", "audio") == "text":
            for col, arr in _group_text_rows(table, ids, name).items():
                out = out.append_column(col, arr)
            continue
        table = table.filter(pc.is_in(table.column("id"), value_set=pa.array(ids, pa.string()))).sort_by("id")
        if table.column("id").to_pylist() != ids:
            raise ValueError(f"view {name!r} has duplicate rows for some items (cache {cache_dir})")
        if meta.get("level") == "features":
            for col in ("features", "n_mels", "n_frames"):
                out = out.append_column(f"{name}.{col}", table.column(col))
        else:
            out = out.append_column(name, table.column("embedding"))
    return out, report
