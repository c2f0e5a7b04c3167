"""orchestrator.storage: names that a URI parser rejects (non-ASCII words, spaces and commas of
Clotho file names) stay object keys verbatim; the cluster test covers the same on S3."""

from __future__ import annotations

from pathlib import Path

from orchestrator import storage


def test_keys_with_non_ascii_spaces_and_commas_round_trip_through_uris(tmp_path: Path) -> None:
    base = f"file://{tmp_path}"
    names = ["audio/sv/från_00.wav", "development/Forest birds, morning.wav", "ø/æ ü.json"]
    for k, name in enumerate(names):
        storage.write_bytes(storage.join(base, name), bytes([k]) * 3)
    for k, name in enumerate(names):
        uri = storage.join(base, name)
        assert storage.exists(uri) and storage.read_bytes(uri) == bytes([k]) * 3
        assert (tmp_path / name).read_bytes() == bytes([k]) * 3  # the key is the file's own name
    assert storage.list_files(storage.join(base, "development")) == \
        [storage.join(base, "development/Forest birds, morning.wav")]


def test_bucket_uris_split_into_bucket_and_verbatim_key(monkeypatch) -> None:
    # no S3 endpoint here: only the split is checked (the cluster test reads and writes such keys)
    monkeypatch.setattr(storage, "_bucket_filesystem", lambda root: root)
    assert storage.filesystem("s3://b/x/från_00.wav") == ("s3://b", "b/x/från_00.wav")
    assert storage.filesystem("s3://b/a b, c.wav") == ("s3://b", "b/a b, c.wav")
    assert storage.filesystem("s3://b/") == ("s3://b", "b")
    assert storage.filesystem("gs://bk/p/q/") == ("gs://bk", "bk/p/q")
