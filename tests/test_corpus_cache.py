"""Manifest validation, fingerprints and the cache's atomic, resumable layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.cache import CacheEntry, cache_key, load_embeddings
from orchestrator.corpus import (
    FileHashMemo,
    ManifestError,
    audio_fingerprint,
    manifest_table,
    read_manifest,
    text_fingerprint,
    write_manifest,
)


def rows(n: int = 3) -> list[dict]:
    return [{"id": f"i{k}", "split": "train", "audio_path": f"a{k}.wav", "sr": 16000, "duration": 1.0,
             "texts": ["x"], "label": "x"} for k in range(n)]


def test_manifest_roundtrip_resolves_relative_paths(tmp_path: Path) -> None:
    p = write_manifest(manifest_table(rows()), tmp_path / "m.parquet")
    t = read_manifest(p)
    assert t.column("audio_path").to_pylist()[0] == str(tmp_path / "a0.wav")
    assert t.column("offset").to_pylist() == [0.0, 0.0, 0.0]


def test_manifest_missing_column_names_it(tmp_path: Path) -> None:
    t = manifest_table(rows()).drop_columns(["label"])
    pq.write_table(t, tmp_path / "m.parquet")
    with pytest.raises(ManifestError, match=r"missing required column\(s\) label"):
        read_manifest(tmp_path / "m.parquet")


def test_manifest_duplicate_and_bad_split(tmp_path: Path) -> None:
    r = rows()
    r[2]["id"] = "i0"
    with pytest.raises(ManifestError, match="duplicate item id 'i0'"):
        write_manifest(manifest_table(r), tmp_path / "m.parquet")
    r = rows()
    r[1]["split"] = "dev"
    with pytest.raises(ManifestError, match="unknown split"):
        write_manifest(manifest_table(r), tmp_path / "m.parquet")


def test_fingerprint_changes_with_file_content(tmp_path: Path) -> None:
    (tmp_path / "a0.wav").write_bytes(b"12")
    t = read_manifest(write_manifest(manifest_table(rows(1)), tmp_path / "m.parquet"))
    f1 = audio_fingerprint(t)
    assert audio_fingerprint(t) == f1
    (tmp_path / "a0.wav").write_bytes(b"123")
    assert audio_fingerprint(t) != f1


def test_fingerprint_is_content_not_place_or_time(tmp_path: Path) -> None:
    """A corpus copied elsewhere with touched files fingerprints the same (a shared cache hits);
    texts, labels and splits are not part of an audio view's fingerprint."""
    import os
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    for k in range(3):
        (a / f"a{k}.wav").write_bytes(bytes([k]) * (100 + k))
    write_manifest(manifest_table(rows()), a / "m.parquet")
    memo = FileHashMemo(tmp_path / "hashes.sqlite")
    f_a = audio_fingerprint(read_manifest(a / "m.parquet"), memo)
    shutil.copytree(a, b)
    for p in b.iterdir():
        os.utime(p, (1e9, 1e9))
    relabelled = [{**r, "label": "y", "texts": ["other caption"], "split": "test"} for r in rows()]
    write_manifest(manifest_table(relabelled), b / "m.parquet")
    assert audio_fingerprint(read_manifest(b / "m.parquet"), FileHashMemo(tmp_path / "hashes.sqlite")) == f_a
    (b / "a1.wav").write_bytes(b"changed")
    assert audio_fingerprint(read_manifest(b / "m.parquet"), FileHashMemo(tmp_path / "hashes.sqlite")) != f_a


def test_text_fingerprint_is_the_texts() -> None:
    f = text_fingerprint([("i0", ["a dog barks"]), ("i1", ["rain"])])
    assert f == text_fingerprint([("i1", ["rain"]), ("i0", ["a dog barks"])])
    assert f != text_fingerprint([("i0", ["a dog barks"]), ("i1", ["rain."])])


def test_cache_key_depends_on_every_part() -> None:
    k = cache_key("fp", "enc", "w", {"a": 1})
    assert len({k, cache_key("fp2", "enc", "w", {"a": 1}), cache_key("fp", "enc2", "w", {"a": 1}),
                cache_key("fp", "enc", "w2", {"a": 1}), cache_key("fp", "enc", "w", {"a": 2})}) == 5


def test_cache_entry_shards_and_completion(tmp_path: Path) -> None:
    """Cache rows hold only ids and outputs; splits and labels come from the manifest at read time."""
    e = CacheEntry(tmp_path, "k")
    emb = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, dtype=np.float32)), 2)
    e.write_shard(1, pa.table({"id": ["b", "a", "c"], "embedding": emb}))
    manifest = write_manifest(manifest_table([
        {**r, "id": i, "split": sp, "label": lab} for r, i, sp, lab in
        zip(rows(), ["a", "b", "c"], ["test", "test", "train"], ["y", "x", "x"])]), tmp_path / "m.parquet")
    (Path(e.dir) / ".part-00002.parquet.tmp99").write_bytes(b"half")  # a killed writer's leftover
    assert e.done_shards() == {1} and not e.is_complete()
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load_embeddings(e.dir)
    e.write_meta({"n_items": 3, "manifest": str(manifest)})
    s = load_embeddings(e.dir, "test")
    assert s.ids == ["a", "b"] and s.labels == ["y", "x"]
    np.testing.assert_array_equal(s.X, [[2, 3], [0, 1]])
