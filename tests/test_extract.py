"""Ray Data extraction into the cache: bad items, quarantine, resume, cache hits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from orchestrator.cache import load_embeddings
from orchestrator.corpus import build_corpus, manifest_table, read_manifest, write_manifest
from orchestrator.encoders.base import build_encoder
from orchestrator.extract import BadItemsError, extract


def test_extract_matches_direct_encoding_and_hits_cache(ray_local, tone_manifest, tmp_path: Path) -> None:
    manifest, rows = tone_manifest
    res = extract(manifest, "logmel_stats", {}, tmp_path / "cache", shard_size=10, batch_size=4)
    assert not res.cache_hit and res.n_items == 24 and res.quarantined == []
    assert sorted(p.name for p in res.cache_dir.glob("part-*.parquet")) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    train = load_embeddings(res.cache_dir, "train")
    assert len(train) == 16 and set(train.labels) == {"word0", "word1", "word2", "word3"}
    # the pipeline's output equals the encoder applied directly to the decoded file
    from orchestrator.audio import load_audio

    enc = build_encoder("logmel_stats")
    t = read_manifest(manifest).to_pylist()
    r0 = next(r for r in t if r["id"] == train.ids[0])
    direct = enc.embed([load_audio(r0["id"], r0["audio_path"], enc.sample_rate)])[0]
    np.testing.assert_allclose(train.X[0], direct, rtol=1e-5, atol=1e-5)

    again = extract(manifest, "logmel_stats", {}, tmp_path / "cache", shard_size=10, batch_size=4)
    assert again.cache_hit and again.cache_dir == res.cache_dir


def test_killed_extraction_resumes_only_missing_shards(ray_local, tone_manifest, tmp_path: Path) -> None:
    manifest, _ = tone_manifest
    res = extract(manifest, "logmel_stats", {}, tmp_path / "cache", shard_size=10)
    # simulate a kill after shard 0 and 2 were written: no meta, shard 1 missing
    os.remove(res.cache_dir / "meta.json")
    os.remove(res.cache_dir / "part-00001.parquet")
    kept = {p.name: p.stat().st_mtime_ns for p in res.cache_dir.glob("part-*.parquet")}
    again = extract(manifest, "logmel_stats", {}, tmp_path / "cache", shard_size=10)
    assert not again.cache_hit and again.n_items == 24
    for name, mtime in kept.items():
        assert (res.cache_dir / name).stat().st_mtime_ns == mtime  # finished shards not redone
    assert (res.cache_dir / "part-00001.parquet").exists()
    assert len(load_embeddings(res.cache_dir)) == 24


def _with_bad_items(tmp_path: Path, rows: list[dict]) -> Path:
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    (bad_dir / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really a wav file")
    import soundfile as sf

    sf.write(bad_dir / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    extra = [
        {**rows[0], "id": "bad_corrupt", "audio_path": str(bad_dir / "corrupt.wav")},
        {**rows[0], "id": "bad_empty", "audio_path": str(bad_dir / "empty.wav")},
        {**rows[0], "id": "bad_missing", "audio_path": str(bad_dir / "missing.wav")},
    ]
    return write_manifest(manifest_table(rows + extra), tmp_path / "bad_manifest.parquet")


def test_bad_items_fail_with_one_line_naming_them(ray_local, tone_manifest, tmp_path: Path) -> None:
    _, rows = tone_manifest
    manifest = _with_bad_items(tmp_path, rows)
    with pytest.raises(BadItemsError) as e:  # a missing file is found before any encoding
        extract(manifest, "logmel_stats", {}, tmp_path / "cache", batch_size=32)
    msg = str(e.value)
    assert "\n" not in msg and f"bad_missing: missing audio file {tmp_path / 'bad/missing.wav'}" in msg
    assert "--skip-bad-items" in msg
    table = read_manifest(manifest)
    present = write_manifest(table.filter(pc.not_equal(table.column("id"), "bad_missing")), tmp_path / "m2.parquet")
    with pytest.raises(BadItemsError) as e:  # unreadable ones while decoding
        extract(present, "logmel_stats", {}, tmp_path / "cache", batch_size=32)
    msg = str(e.value)
    assert "\n" not in msg and "bad_corrupt" in msg and "--skip-bad-items" in msg


def test_missing_file_of_a_real_corpus_is_quarantined_and_counted(ray_local, tmp_path: Path) -> None:
    """A real-corpus adapter (the speakers CSV) keeps a row whose file is missing; extraction with
    --skip-bad-items quarantines it with its reason, records it in the cache's meta (from there
    data/quarantine.json in MLflow) and counts it; the other items are all embedded."""
    from tests.test_speaker_text_corpus import csv_request, metadata_corpus, write_csv
    from workloads.speaker_text import csv_corpus  # noqa: F401  (registers the corpus)

    root = tmp_path / "c"
    rows = metadata_corpus(root, n_speakers=3)
    write_csv(root / "speakers.csv", ["audio_path", "speaker_id", "gender", "accent", "age", "occupation"],
              [*rows, ["audio/nope.wav", "S00", "m", "", "", ""]])  # fmt: skip
    manifest = build_corpus(csv_request(root, tmp_path / "work"))
    res = extract(manifest, "logmel_stats", {}, tmp_path / "cache", skip_bad_items=True)
    reason = f"missing audio file {(root / 'audio/nope.wav').resolve()}"
    assert res.quarantined == [("S00/nope", reason)] and res.missing_ids == ["S00/nope"]
    assert res.n_items == 6 and len(load_embeddings(res.cache_dir)) == 6
    meta = json.loads((res.cache_dir / "meta.json").read_text())
    assert meta["quarantined"] == [["S00/nope", reason]] and meta["n_manifest_items"] == 7


def test_skip_bad_items_quarantines_and_records(ray_local, tone_manifest, tmp_path: Path) -> None:
    _, rows = tone_manifest
    manifest = _with_bad_items(tmp_path, rows)
    res = extract(manifest, "logmel_stats", {}, tmp_path / "cache", skip_bad_items=True)
    reasons = dict(res.quarantined)
    assert set(reasons) == {"bad_corrupt", "bad_empty", "bad_missing"}
    assert "missing audio file" in reasons["bad_missing"] and "empty audio" in reasons["bad_empty"]
    assert res.n_items == 24 and len(load_embeddings(res.cache_dir)) == 24
    assert json.loads((res.cache_dir / "meta.json").read_text())["quarantined"]
    # a later run that does not allow skipping must not silently reuse a cache with dropped items
    with pytest.raises(BadItemsError):
        extract(manifest, "logmel_stats", {}, tmp_path / "cache")
    assert extract(manifest, "logmel_stats", {}, tmp_path / "cache", skip_bad_items=True).cache_hit


def test_features_level_caches_encoder_inputs(ray_local, tone_manifest, tmp_path: Path) -> None:
    """finetune regime: the cache holds each item's log-mel features, exactly what the encoder
    computes from the decoded file, with their shapes."""
    import pyarrow.parquet as pq

    from orchestrator.audio import load_audio

    manifest, _ = tone_manifest
    res = extract(manifest, "whisper_tiny_en", {}, tmp_path / "cache", level="features", shard_size=16)
    table = pq.read_table(sorted(res.cache_dir.glob("part-*.parquet"))).sort_by("id")
    assert table.num_rows == 24 and set(table.column_names) >= {"features", "n_mels", "n_frames"}
    row = table.slice(0, 1).to_pylist()[0]
    enc = build_encoder("whisper_tiny_en")
    r0 = next(r for r in read_manifest(manifest).to_pylist() if r["id"] == row["id"])
    direct = enc.features(load_audio(r0["id"], r0["audio_path"], enc.sample_rate)).numpy()
    assert (row["n_mels"], row["n_frames"]) == direct.shape == (80, 60)  # 0.6 s: 2 * ceil(9600 / 320)
    np.testing.assert_allclose(np.asarray(row["features"]).reshape(direct.shape), direct, atol=1e-6)
    # pooled and feature caches of the same corpus and encoder are different entries
    pooled = extract(manifest, "whisper_tiny_en", {}, tmp_path / "cache", shard_size=16)
    assert pooled.cache_dir != res.cache_dir
