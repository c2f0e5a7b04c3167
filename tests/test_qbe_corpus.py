"""QbE corpora: the synthesised local corpus and the FLEURS adapter on a fixture in FLEURS' layout."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from orchestrator.corpus import SPLITS, CorpusRequest, ManifestError, build_corpus, read_manifest
from tests.bad_audio import assert_missing_is_a_bad_item
from workloads.qbe import corpus_local, fleurs  # noqa: F401  (registers the corpora)
from workloads.qbe.corpus_local import split_words

TINY = {"n_words": 12, "seed": 3}


def local_request(name: str, work: Path, **options) -> CorpusRequest:
    return CorpusRequest(name=name, profile="local", data_root=None, work_dir=work, options=options)


@pytest.fixture(scope="module")
def swedish(tmp_path_factory) -> Path:
    return build_corpus(local_request("qbe_local_swedish", tmp_path_factory.mktemp("a"), **TINY))


def check_paper_filters(rows: list[dict]) -> None:
    per_word = Counter(r["label"] for r in rows)
    assert all(2 <= n <= 15 for n in per_word.values()), per_word
    assert all(r["duration"] >= 0.4 for r in rows)
    assert all(len(r["texts"][0]) >= 4 and r["texts"][0].isalpha() for r in rows)
    words_in = defaultdict(set)
    for r in rows:
        words_in[r["split"]].add(r["texts"][0])
    assert set(words_in) == set(SPLITS)
    assert not (words_in["train"] & words_in["val"] or words_in["train"] & words_in["test"])
    assert not words_in["val"] & words_in["test"]


def test_local_swedish_manifest(swedish: Path):
    table = read_manifest(swedish)
    rows = table.to_pylist()
    check_paper_filters(rows)
    words = {r["label"] for r in rows}
    assert len(words) == 12
    per_split = {s: {r["label"] for r in rows if r["split"] == s} for s in SPLITS}
    assert {s: len(w) for s, w in per_split.items()} == {"train": 7, "val": 2, "test": 3}  # 60/20/20 of 12
    for r in rows:
        lang, rest = r["id"].split("/")
        assert lang == "sv" == r["language"] and rest.startswith(r["label"] + "_")
        assert r["label"] == r["texts"][0] and r["sr"] == 16000 and r["offset"] == 0.0
        info = sf.info(r["audio_path"])
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        assert abs(info.duration - r["duration"]) < 1e-6
    # the clips of one word are read by different speakers
    for w in words:
        spk = [r["speaker"] for r in rows if r["label"] == w]
        assert len(set(spk)) == len(spk)
    # audio is speech plus a noise floor, trimmed: loud, and not silent at the edges
    audio, _ = sf.read(rows[0]["audio_path"])
    assert 0.2 < np.abs(audio).max() < 0.95
    assert np.sqrt(np.mean(audio[:160] ** 2)) > 1e-4


def test_local_build_is_deterministic_and_cached(swedish: Path, tmp_path: Path):
    again = build_corpus(local_request("qbe_local_swedish", tmp_path, **TINY))
    assert again != swedish and again.relative_to(tmp_path).parts[:2] == swedish.parts[-3:-1]
    assert pq.read_table(again).equals(pq.read_table(swedish))
    a, b = read_manifest(swedish).to_pylist(), read_manifest(again).to_pylist()
    for ra, rb in zip(a, b, strict=True):
        assert Path(ra["audio_path"]).read_bytes() == Path(rb["audio_path"]).read_bytes()
    # cache hit: nothing rewritten, returned at once
    mtimes = {p: p.stat().st_mtime_ns for p in again.parent.rglob("*") if p.is_file()}
    t0 = time.perf_counter()
    assert build_corpus(local_request("qbe_local_swedish", tmp_path, **TINY)) == again
    assert time.perf_counter() - t0 < 0.5
    assert {p: p.stat().st_mtime_ns for p in again.parent.rglob("*") if p.is_file()} == mtimes
    # another seed is another corpus in another directory
    other = build_corpus(local_request("qbe_local_swedish", tmp_path, n_words=12, seed=4))
    assert other.parent != again.parent


def test_interrupted_build_is_redone(tmp_path: Path):
    manifest = build_corpus(local_request("qbe_local_swedish", tmp_path, n_words=3))
    wav = Path(read_manifest(manifest).column("audio_path")[0].as_py())
    manifest.unlink()  # as if killed before the manifest was written
    wav.write_bytes(b"half-written")
    assert build_corpus(local_request("qbe_local_swedish", tmp_path, n_words=3)) == manifest
    assert sf.info(wav).duration >= 0.4


def test_local_multilingual_labels_and_balance(tmp_path: Path):
    manifest = build_corpus(local_request("qbe_local_multilingual", tmp_path, n_words=5))
    rows = read_manifest(manifest).to_pylist()
    check_paper_filters(rows)
    assert {r["language"] for r in rows} == {"sv", "da", "nb", "fi"}
    for r in rows:
        assert r["label"] == f"{r['language']}:{r['texts'][0]}"
        assert r["id"].startswith(r["language"] + "/")
    for lang in ("sv", "da", "nb", "fi"):
        split_of = {r["label"]: r["split"] for r in rows if r["language"] == lang}
        per_split = Counter(split_of.values())
        assert per_split == {"train": 3, "val": 1, "test": 1}


def test_unknown_option_is_one_line(tmp_path: Path):
    with pytest.raises(ManifestError, match=r"unknown option\(s\) \['n_word'\]") as e:
        build_corpus(local_request("qbe_local_swedish", tmp_path, n_word=3))
    assert "\n" not in str(e.value)


def test_split_words_keeps_homographs_together():
    words = {"sv": [f"w{i}" for i in range(10)] + ["film"], "da": [f"d{i}" for i in range(10)] + ["film"]}
    splits = split_words(words, seed=0)
    assert splits[("sv", "film")] == splits[("da", "film")]
    for lang in words:
        counts = Counter(s for (lg, _), s in splits.items() if lg == lang)
        assert counts == {"train": 7, "val": 2, "test": 2}


# ----------------------------------------------------------------------------------- FLEURS


SR = 16000


def write_wav(path: Path, seconds: float, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sig = 0.05 * np.random.default_rng(seed).standard_normal(int(seconds * SR))
    sf.write(path, sig, SR, subtype="PCM_16")


def write_fleurs(root: Path, code: str, sentences: dict[str, list[tuple[str, str]]]) -> Path:
    """``split -> [(file_name, normalised transcription)]`` in the official layout; 3 s WAVs."""
    lang_dir = root / "data" / code
    for split, items in sentences.items():
        lines = []
        for i, (name, text) in enumerate(items):
            chars = " ".join("|" if c == " " else c for c in text) + " |"
            lines.append(f"{1000 + i}\t{name}\t{text.capitalize()}.\t{text}\t{chars}\t{3 * SR}\tFEMALE\n")
            write_wav(lang_dir / "audio" / split / name, 3.0, seed=i)
        lang_dir.mkdir(parents=True, exist_ok=True)
        (lang_dir / f"{split}.tsv").write_text("".join(lines), encoding="utf-8")
    return lang_dir


def alignment_tsv(rows: list[tuple[str, str, float, float]]) -> str:
    return "file_name\tword\tstart\tend\n" + "".join(f"{f}\t{w}\t{s}\t{e}\n" for f, w, s, e in rows)


@pytest.fixture()
def fleurs_sv(tmp_path: Path):
    names = {s: [f"{s}{i}.wav" for i in range(6)] for s in ("train", "dev", "test")}
    sentences = {s: [(n, "ord i en mening") for n in ns] for s, ns in names.items()}
    write_fleurs(tmp_path / "fleurs", "sv_se", sentences)
    files = [n for ns in names.values() for n in ns]  # 18 sentence files
    align = []
    # five words that pass, one of them 17 times (capped at 15), one with punctuation and capitals
    for i, f in enumerate(files[:17]):
        align.append((f, "sjutton", 0.5, 1.0))
    for f in files[:3]:
        align.append((f, "hundra", 1.2, 1.7))
    for f in files[3:5]:
        align.append((f, "Stockholm,", 2.0, 2.6))
    for f in files[5:7]:
        align.append((f, "fönster", 1.1, 1.6))
    align.append((files[7], "himmel", 0.1, 0.6))
    align.append((files[8], "himmel", 2.55, 3.02))  # ends 20 ms past the 3 s file: clamped to 3.0
    # filtered out: too short, too few letters, too few segments after the duration filter
    align += [(files[9], "katt", 0.0, 0.45), (files[10], "katt", 0.0, 0.3)]
    align += [(files[11], "och", 0.0, 0.6), (files[12], "och", 0.0, 0.6)]
    align += [(files[13], "kort", 0.0, 0.39), (files[14], "kort", 0.0, 0.2)]
    return tmp_path / "fleurs", tmp_path / "work", align


def fleurs_request(name: str, root: Path, work: Path, **options) -> CorpusRequest:
    return CorpusRequest(name=name, profile="paper", data_root=root, work_dir=work, options=options)


def test_fleurs_rows_offsets_and_filters(fleurs_sv):
    root, work, align = fleurs_sv
    (root / "data" / "sv_se" / "word_alignments.tsv").write_text(alignment_tsv(align), encoding="utf-8")
    manifest = build_corpus(fleurs_request("qbe_fleurs_swedish", root, work))
    rows = read_manifest(manifest).to_pylist()
    check_paper_filters(rows)
    per_word = Counter(r["label"] for r in rows)
    assert per_word == {"sjutton": 15, "hundra": 3, "stockholm": 2, "fönster": 2, "himmel": 2}
    assert Counter(len({r["label"] for r in rows if r["split"] == s}) for s in SPLITS) == Counter([3, 1, 1])
    by_id = {r["id"]: r for r in rows}
    st = by_id["sv/stockholm_01"]
    assert st["audio_path"] == str((root / "data/sv_se/audio/train/train4.wav").resolve())
    assert (st["offset"], st["duration"], st["sr"], st["texts"]) == (2.0, 0.6, 16000, ["stockholm"])
    assert st["language"] == "sv" and st["speaker"] is None
    hi = by_id["sv/himmel_01"]
    assert hi["audio_path"].endswith("dev/dev2.wav")
    assert hi["offset"] == 2.55 and hi["duration"] == pytest.approx(0.45)
    hu = sorted((r["audio_path"].rsplit("/", 2)[-2:], r["offset"]) for r in rows if r["label"] == "hundra")
    assert hu == [(["train", f"train{i}.wav"], 1.2) for i in range(3)]
    # the segment really is that stretch of the sentence WAV
    from orchestrator.audio import load_audio

    seg = load_audio(st["id"], st["audio_path"], 16000, st["offset"], st["duration"])
    whole, _ = sf.read(st["audio_path"], dtype="float32")
    np.testing.assert_array_equal(seg, whole[32000 : 32000 + 9600])
    # unchanged inputs: the cached manifest is returned
    again = build_corpus(fleurs_request("qbe_fleurs_swedish", root, work))
    assert again == manifest


def test_fleurs_per_split_alignments_and_multilingual_labels(fleurs_sv):
    root, work, align = fleurs_sv
    adir = root / "data" / "sv_se" / "alignments"
    adir.mkdir()
    for split in ("train", "dev", "test"):
        (adir / f"{split}.tsv").write_text(alignment_tsv([a for a in align if a[0].startswith(split)]))
    req = fleurs_request("qbe_fleurs_multilingual", root, work, languages=["sv"], n_words=4)
    manifest = build_corpus(req)
    rows = read_manifest(manifest).to_pylist()
    assert len({r["label"] for r in rows}) == 4
    assert all(r["label"] == f"sv:{r['texts'][0]}" for r in rows)


def test_fleurs_missing_data_messages(fleurs_sv, tmp_path: Path):
    root, work, _ = fleurs_sv
    with pytest.raises(ManifestError) as e:
        build_corpus(fleurs_request("qbe_fleurs_swedish", tmp_path / "nowhere", work))
    msg = str(e.value)
    assert "\n" not in msg and "FLEURS sv_se not found" in msg
    assert str(tmp_path / "nowhere" / "data" / "sv_se") in msg
    no_align = r"no word alignments for FLEURS sv_se: looked for .*word_alignments\.tsv"
    with pytest.raises(ManifestError, match=no_align):
        build_corpus(fleurs_request("qbe_fleurs_swedish", root, work))
    with pytest.raises(ManifestError, match="needs a data root"):
        build_corpus(CorpusRequest("qbe_fleurs_swedish", "paper", None, work, {}))
    dev = root / "data/sv_se/audio/dev"
    for p in dev.iterdir():
        p.unlink()
    dev.rmdir()
    with pytest.raises(ManifestError, match=r"FLEURS audio missing: folder .*audio/dev not found, 6 file\(s\)"):
        build_corpus(fleurs_request("qbe_fleurs_swedish", root, work))


def test_fleurs_missing_sentence_wav_is_a_bad_item(fleurs_sv, capsys):
    """A sentence WAV the TSVs list but the disk lacks: its word segments stay in the manifest (the
    same words, splits and counts as with the file), named in the build log, and each is a bad item
    of the core's check (one line, or quarantined with --skip-bad-items)."""
    root, work, align = fleurs_sv
    (root / "data" / "sv_se" / "word_alignments.tsv").write_text(alignment_tsv(align), encoding="utf-8")
    full = read_manifest(build_corpus(fleurs_request("qbe_fleurs_swedish", root, work))).to_pylist()
    wav = root / "data/sv_se/audio/dev/dev2.wav"  # himmel 2.55..3.02 s (and perhaps a sjutton)
    wav.unlink()
    manifest = build_corpus(fleurs_request("qbe_fleurs_swedish", root, work.parent / "work2"))
    assert "1 audio file(s) not found, kept for the extraction's bad-item check" in capsys.readouterr().out
    rows = read_manifest(manifest).to_pylist()
    lost = [r["id"] for r in rows if r["audio_path"] == str(wav.resolve())]
    assert "sv/himmel_01" in lost
    assert [(r["id"], r["split"], r["offset"]) for r in rows] == [(r["id"], r["split"], r["offset"]) for r in full]
    assert_missing_is_a_bad_item(manifest, lost, wav, n_items=len(full))


def test_fleurs_alignment_naming_unknown_file(fleurs_sv):
    root, work, align = fleurs_sv
    bad = align + [("ghost.wav", "hundra", 0.0, 0.5)]
    (root / "data" / "sv_se" / "word_alignments.tsv").write_text(alignment_tsv(bad), encoding="utf-8")
    unknown = r"1 file name\(s\) not listed in FLEURS sv_se TSVs, e.g. 'ghost.wav'"
    with pytest.raises(ManifestError, match=unknown):
        build_corpus(fleurs_request("qbe_fleurs_swedish", root, work))


def test_fleurs_english_pocketsphinx_alignment(tmp_path: Path):
    pytest.importorskip("pocketsphinx")
    import soxr

    from orchestrator.synth.espeak import synthesize

    text = "yesterday morning the weather was beautiful everywhere"
    lang_dir = tmp_path / "fleurs" / "data" / "en_us"
    events = {}
    lines = []
    for i, variant in enumerate(["m1", "f2", "m5"]):
        audio, sr, ev = synthesize(text, voice="en-us", variant=variant, rate=120)
        name = f"{i}.wav"
        (lang_dir / "audio" / "test").mkdir(parents=True, exist_ok=True)
        sf.write(lang_dir / "audio" / "test" / name, soxr.resample(audio, sr, SR), SR, subtype="PCM_16")
        events[name] = {text[pos:].split()[0]: ms / 1000 for pos, ms in ev}
        lines.append(f"{i}\t{name}\t{text}\t{text}\t-\t0\tMALE\n")
    (lang_dir / "test.tsv").write_text("".join(lines))
    manifest = build_corpus(
        fleurs_request("qbe_fleurs_multilingual", tmp_path / "fleurs", tmp_path / "work", languages=["en"])
    )
    rows = read_manifest(manifest).to_pylist()
    assert {r["texts"][0] for r in rows} >= {"yesterday", "morning", "beautiful", "everywhere"}
    for r in rows:
        word, name = r["texts"][0], Path(r["audio_path"]).name
        assert abs(r["offset"] - events[name][word]) < 0.1, (word, name, r["offset"], events[name][word])
    cached = tmp_path / "work" / "qbe_fleurs_multilingual" / "alignments" / "en_us" / "word_alignments.tsv"
    assert cached.read_text().startswith("file_name\tword\tstart\tend\n")
