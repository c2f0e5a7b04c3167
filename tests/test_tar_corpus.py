"""TAR corpora: the synthetic Clotho stand-in, the Clotho v2 adapter on fixtures in its layouts,
and caption preprocessing."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from orchestrator.corpus import (
    SPLITS,
    CorpusRequest,
    ManifestError,
    build_corpus,
    read_manifest,
    seeded_rng,
)
from tests.bad_audio import assert_missing_is_a_bad_item
from workloads.tar import clotho, corpus_local  # noqa: F401  (registers the corpora)
from workloads.tar.corpus_local import (
    ATTR_PATTERNS,
    BACKGROUND_PATTERNS,
    COUNT_PATTERNS,
    KIND_PATTERNS,
    SR,
    Event,
    render_event,
)
from workloads.tar.text import preprocess_caption

TINY = {"n_train": 6, "n_val": 3, "n_test": 3, "seed": 1}


def request(name: str, work: Path, data_root: Path | None = None, **options) -> CorpusRequest:
    profile = "local" if name == "tar_local" else "paper"
    return CorpusRequest(name=name, profile=profile, data_root=data_root, work_dir=work, options=options)


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Path:
    return build_corpus(request("tar_local", tmp_path_factory.mktemp("tar"), **TINY))


def events_of(manifest: Path) -> dict:
    return json.loads((manifest.parent / "events.json").read_text())


# --------------------------------------------------------------------------------- caption text


def test_preprocess_caption():
    assert preprocess_caption("A dog barks,  loudly!\n") == "a dog barks loudly"
    assert preprocess_caption("A high-pitched beep; a man's voice.") == "a highpitched beep a mans voice"
    assert preprocess_caption("\u201cQuoted\u201d \u2014 words\u2026 ") == "quoted words"
    assert preprocess_caption("Rain falls.") == preprocess_caption("rain   falls")
    assert preprocess_caption("   ") == ""


# --------------------------------------------------------------------------------- local corpus


def test_local_manifest(local: Path):
    rows = read_manifest(local).to_pylist()
    assert [sum(r["split"] == s for r in rows) for s in SPLITS] == [6, 3, 3]
    for r in rows:
        split, name = r["id"].split("/")
        assert split == r["split"] and re.fullmatch(r"scene_\d{5}", name) and r["label"] == r["id"]
        assert r["sr"] == SR and r["offset"] == 0.0 and r["speaker"] is None and r["language"] is None
        assert 5.0 <= r["duration"] <= 10.0
        info = sf.info(r["audio_path"])
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        assert abs(info.duration - r["duration"]) < 1e-9
        assert len(r["texts"]) == 5
        assert len({preprocess_caption(t) for t in r["texts"]}) == 5, r["texts"]
        assert all(8 <= len(t.split()) <= 20 for t in r["texts"]), r["texts"]
    # relative audio paths, so the folder can move
    assert all(not Path(p).is_absolute() for p in pq.read_table(local).column("audio_path").to_pylist())


def test_local_captions_state_the_placed_events(local: Path):
    """Every caption names exactly the kinds it is recorded to mention (and no other), states only
    attribute values the clip has, and every placed event is mentioned by some caption."""
    record = events_of(local)
    manifest_texts = {r["id"]: r["texts"] for r in read_manifest(local).to_pylist()}
    for clip_id, clip in record.items():
        events = clip["events"]
        assert [c["text"] for c in clip["captions"]] == manifest_texts[clip_id]
        assert 1 <= len(events) <= 3
        mentioned_somewhere: set[int] = set()
        for cap in clip["captions"]:
            text = cap["text"].lower()
            mentions = {int(i): set(a) for i, a in cap["mentions"].items()}
            mentioned_somewhere |= set(mentions)
            kinds = {k for k, p in KIND_PATTERNS.items() if re.search(p, text)}
            assert kinds == {events[i]["kind"] for i in mentions}, (text, events)
            backgrounds = {b for b, p in BACKGROUND_PATTERNS.items() if re.search(p, text)}
            assert backgrounds == ({clip["background"]} if cap["background"] else set()), text
            for (attr, value), p in ATTR_PATTERNS.items():
                stated = any(attr in a and events[i]["attrs"].get(attr) == value for i, a in mentions.items())
                assert bool(re.search(p, text)) == stated, (text, attr, value, mentions, events)
            for n, p in COUNT_PATTERNS.items():
                stated = any("count" in a and events[i]["attrs"].get("count") == n for i, a in mentions.items())
                assert bool(re.search(p, text)) == stated, (text, n, mentions, events)
            for i, a in mentions.items():
                if "word" in a:
                    assert events[i]["attrs"]["word"] in text
        assert mentioned_somewhere == set(range(len(events)))


def test_local_events_are_where_the_record_says(local: Path):
    """Each event sounds inside its recorded window; over a near-silent background nothing sounds
    outside the windows."""
    record = events_of(local)
    for r in read_manifest(local).to_pylist():
        audio, sr = sf.read(r["audio_path"])
        clip = record[r["id"]]
        covered = np.zeros(audio.size, bool)
        for e in clip["events"]:
            s, t = round(e["start"] * sr), round(e["end"] * sr)
            assert 0 <= s < t <= audio.size
            covered[s:t] = True
            assert np.abs(audio[s:t]).max() > 0.003, (r["id"], e)
        if clip["background"] == "silence" and (~covered).sum() > sr // 10:
            assert np.abs(audio[~covered]).max() < 0.003, r["id"]


def test_rendered_attributes_are_audible():
    """Pitch and direction attributes are what the waveform does (the captions rely on it)."""

    def dominant_hz(x: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(x))
        return float(np.fft.rfftfreq(x.size, 1 / SR)[spec.argmax()])

    low = render_event(Event("beep", {"loudness": "loud", "pitch": "low", "count": 1}), seeded_rng("t", 1))
    high = render_event(Event("beep", {"loudness": "loud", "pitch": "high", "count": 1}), seeded_rng("t", 1))
    assert dominant_hz(low) < 700 < 1500 < dominant_hz(high)
    for direction in ("rising", "falling"):
        x = render_event(Event("chirp", {"loudness": "loud", "direction": direction, "count": 1}), seeded_rng("t", 2))
        half = x.size // 2
        first, second = dominant_hz(x[:half]), dominant_hz(x[half:])
        assert (first < second) == (direction == "rising")


def test_local_build_is_deterministic_and_cached(local: Path, tmp_path: Path):
    again = build_corpus(request("tar_local", tmp_path, **TINY))
    assert again != local and again.parent.name == local.parent.name  # same options -> same key
    for name in ("manifest.parquet", "events.json", "config.json"):
        assert (again.parent / name).read_bytes() == (local.parent / name).read_bytes()
    wavs = sorted(p.relative_to(local.parent) for p in local.parent.rglob("*.wav"))
    assert len(wavs) == 12
    for rel in wavs:
        assert (again.parent / rel).read_bytes() == (local.parent / rel).read_bytes()
    # cache hit: returned at once, nothing rewritten
    mtimes = {p: p.stat().st_mtime_ns for p in again.parent.rglob("*") if p.is_file()}
    t0 = time.perf_counter()
    assert build_corpus(request("tar_local", tmp_path, **TINY)) == again
    assert time.perf_counter() - t0 < 0.5
    assert {p: p.stat().st_mtime_ns for p in again.parent.rglob("*") if p.is_file()} == mtimes
    # another seed is another corpus
    other = build_corpus(request("tar_local", tmp_path, **{**TINY, "seed": 2, "n_train": 1, "n_val": 0, "n_test": 0}))
    assert other.parent != again.parent


def test_local_options_are_checked(tmp_path: Path):
    with pytest.raises(ManifestError, match="unknown option"):
        build_corpus(request("tar_local", tmp_path, n_clips=3))
    with pytest.raises(ManifestError, match="min_s"):
        build_corpus(request("tar_local", tmp_path, min_s=8, max_s=6))


def test_local_clip_lengths_follow_options(tmp_path: Path):
    m = build_corpus(request("tar_local", tmp_path, n_train=4, n_val=0, n_test=0, min_s=3, max_s=4))
    durations = [r["duration"] for r in read_manifest(m).to_pylist()]
    assert len(durations) == 4 and all(3.0 <= d <= 4.0 for d in durations)


# -------------------------------------------------------------------------------- Clotho adapter

FIXTURE = {  # Clotho-like file names (spaces, commas, dots) and captions (quotes, commas)
    "development": ["Forest birds, morning.wav", "rain_on_roof 2.wav", "city.traffic.wav"],
    "validation": ["door knock.wav", "kitchen - tap.wav"],
    "evaluation": ["Wind, hollow.wav", "siren_far.wav"],
}


def captions_for(name: str) -> list[str]:
    return [f'Caption {k} of "{name}", with a comma.' for k in range(1, 6)]


def write_clotho(csv_dir: Path, audio_dir: Path, *, empty_cell: str | None = None) -> dict[str, float]:
    """A tiny Clotho in the given layout; returns file -> duration."""
    durations = {}
    csv_dir.mkdir(parents=True, exist_ok=True)
    for k, (split, names) in enumerate(FIXTURE.items()):
        with (csv_dir / f"clotho_captions_{split}.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["file_name", *(f"caption_{i}" for i in range(1, 6))])
            for name in names:
                caps = captions_for(name)
                if name == empty_cell:
                    caps[2] = " "
                w.writerow([name, *caps])
        for j, name in enumerate(names):
            n = 44100 // 4 + 441 * (k * 3 + j)
            path = audio_dir / split / name
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, 0.1 * np.sin(np.arange(n) * 0.05), 44100, subtype="PCM_16")
            durations[name] = n / 44100
    return durations


def expected_rows(durations: dict[str, float], audio_dir: Path) -> list[dict]:
    split_of = {"development": "train", "validation": "val", "evaluation": "test"}
    return [
        {"id": f"{split_of[s]}/{n}", "split": split_of[s], "audio_path": str((audio_dir / s / n).resolve()),
         "sr": 44100, "offset": 0.0, "duration": durations[n], "texts": captions_for(n),
         "label": f"{split_of[s]}/{n}", "speaker": None, "language": None, "meta": None, "audio_sha256": None}
        for s, names in FIXTURE.items() for n in names
    ]  # fmt: skip


def test_clotho_official_layout(tmp_path: Path):
    root = tmp_path / "data"
    durations = write_clotho(root, root)
    m = build_corpus(request("tar_clotho", tmp_path / "work", root))
    assert read_manifest(m).to_pylist() == expected_rows(durations, root)
    # cached: the same manifest, not rewritten
    mtime = m.stat().st_mtime_ns
    assert build_corpus(request("tar_clotho", tmp_path / "work", root)) == m and m.stat().st_mtime_ns == mtime


def test_clotho_aac_datasets_layout(tmp_path: Path):
    base = tmp_path / "data" / "CLOTHO_v2.1"
    durations = write_clotho(base / "clotho_csv_files", base / "clotho_audio_files")
    m = build_corpus(request("tar_clotho", tmp_path / "work", tmp_path / "data"))
    assert read_manifest(m).to_pylist() == expected_rows(durations, base / "clotho_audio_files")


def test_clotho_missing_data_names_every_place_looked(tmp_path: Path):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(ManifestError) as e:
        build_corpus(request("tar_clotho", tmp_path / "work", root))
    msg = str(e.value)
    assert "\n" not in msg and "clotho_captions_{development,validation,evaluation}.csv" in msg
    for place in (root, root / "clotho_v2", root / "clotho_csv_files",
                  root / "CLOTHO_v2.1" / "clotho_csv_files", root / "CLOTHO_v2" / "clotho_csv_files"):  # fmt: skip
        assert f"{place}/" in msg
    with pytest.raises(ManifestError, match="needs a data root"):
        build_corpus(request("tar_clotho", tmp_path / "work", None))


def test_clotho_missing_audio_is_a_bad_item(tmp_path: Path, capsys):
    root = tmp_path / "data"
    write_clotho(root, root)
    n = len(read_manifest(build_corpus(request("tar_clotho", tmp_path / "work", root))))
    wav = root / "validation" / "door knock.wav"
    wav.unlink()
    m = build_corpus(request("tar_clotho", tmp_path / "work", root))  # a new build: the key holds the files
    assert "1 audio file(s) not found, kept for the extraction's bad-item check" in capsys.readouterr().out
    row = next(r for r in read_manifest(m).to_pylist() if r["id"] == "val/door knock.wav")
    assert (row["split"], row["sr"], row["duration"], len(row["texts"])) == ("val", 44100, 0.0, 5)
    assert_missing_is_a_bad_item(m, "val/door knock.wav", wav, n_items=n)


def test_clotho_missing_audio_folder_is_one_clear_error(tmp_path: Path):
    root = tmp_path / "data"
    write_clotho(root, root)
    for p in (root / "evaluation").iterdir():
        p.unlink()
    (root / "evaluation").rmdir()
    with pytest.raises(ManifestError, match=r"audio folder\(s\) missing: .*evaluation.*clotho_audio_evaluation\.7z"):
        build_corpus(request("tar_clotho", tmp_path / "work", root))


def test_clotho_empty_caption_names_the_file(tmp_path: Path):
    root = tmp_path / "data"
    write_clotho(root, root, empty_cell="kitchen - tap.wav")
    with pytest.raises(ManifestError) as e:
        build_corpus(request("tar_clotho", tmp_path / "work", root))
    msg = str(e.value)
    assert "clotho_captions_validation.csv" in msg and "kitchen - tap.wav" in msg and "caption_3" in msg


def test_clotho_unreadable_audio_is_kept_for_the_core_to_quarantine(tmp_path: Path, capsys):
    root = tmp_path / "data"
    write_clotho(root, root)
    (root / "evaluation" / "siren_far.wav").write_bytes(b"not a wav file")
    rows = {r["id"]: r for r in read_manifest(build_corpus(request("tar_clotho", tmp_path / "w", root))).to_pylist()}
    assert len(rows) == 7
    assert rows["test/siren_far.wav"]["duration"] == 0.0 and rows["test/siren_far.wav"]["sr"] == 44100
    assert "siren_far.wav" in capsys.readouterr().out
