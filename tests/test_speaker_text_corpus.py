"""Speaker-text corpora: the synthetic eSpeak corpus, the description grammar on hand-checked
inputs, and the VoxCeleb1 and CSV adapters on fixtures written here in their layouts."""

from __future__ import annotations

import csv
import json
import re
import shutil
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from orchestrator.corpus import SPLITS, CorpusRequest, ManifestError, build_corpus, read_manifest, seeded_rng
from tests.bad_audio import assert_missing_is_a_bad_item
from workloads.speaker_text import corpus_local, csv_corpus, voxceleb  # noqa: F401  (registers the corpora)
from workloads.speaker_text.corpus_local import (
    ACCENT_VOICES,
    attribute_space,
    draw_speakers,
    resolve_options,
    sentences_for,
)
from workloads.speaker_text.descriptions import (
    Fact,
    article,
    describe,
    facts_from_attributes,
    join_list,
    template_description,
)

TINY = {"n_train": 4, "n_val": 2, "n_test": 3, "utts_per_speaker": 3, "n_descriptions": 4, "seed": 1}

# what each attribute value may be called (independent of the grammar's own tables)
PATTERNS = {
    "sex": {"male": r"\b(male|man|gentleman)\b", "female": r"\b(female|woman|lady)\b"},
    "accent": {
        "en-us": r"\bAmerican\b|\bUS\b", "en-gb": r"\bBritish\b", "en-gb-scotland": r"\bScottish\b|\bScots\b",
        "en-gb-x-rp": r"Received Pronunciation|\bRP\b|BBC English", "en-029": r"Caribbean|West Indian",
        "en-gb-x-gbclan": r"Lancashire|Lancastrian|northern English",
        "en-gb-x-gbcwmd": r"West Midlands|Brummie|Black Country", "en-us-nyc": r"New York|\bNYC\b",
    },
    "pitch": {"low": r"\blow\b|\bdeep\b", "medium": r"\bmedium\b|\bmid-range\b", "high": r"\bhigh\b"},
    "rate": {
        "slow": r"\bslow(ly)?\b|\bunhurried\b|\bleisurely\b|\bslow-",
        "normal": r"\bnormal\b|\baverage\b|\bmoderate\b|\bsteady\b",
        "fast": r"\bfast\b|\bquick(ly)?\b|\brapid(ly)?\b|\bbrisk\b|\bquick-",
    },
    "quality": {
        "clear": r"\bclear\b|\bclean\b|\bsmooth\b", "breathy": r"\bbreathy\b|\bwhispery\b|\bairy\b",
        "hoarse": r"\bhoarse\b|\bcroaky\b|\braspy\b", "shaky": r"\bshaky\b|\btrembling\b|\bquavering\b",
        "tinny": r"\btinny\b|\bthin\b|\bmetallic\b",
    },
}  # fmt: skip


def states_exactly(text: str, kind: str, value: str | None) -> bool:
    """``text`` names ``value`` of ``kind`` and no other value of it (None: no value at all)."""
    said = {v for v, p in PATTERNS[kind].items() if re.search(p, text, re.IGNORECASE)}
    return said == ({value} if value is not None else set())


def norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def local_request(work: Path, **options) -> CorpusRequest:
    return CorpusRequest(name="speaker_text_local", profile="local", data_root=None, work_dir=work, options=options)


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Path:
    return build_corpus(local_request(tmp_path_factory.mktemp("st"), **TINY))


# ---------------------------------------------------------------------------------- descriptions


def test_article_and_lists():
    cases = {"RP accent": "an", "US accent": "a", "NYC accent": "an", "American accent": "an",
             "unhurried pace": "an", "Ukrainian man": "a", "European": "a", "18-year-old": "an",
             "8-year-old": "an", "34-year-old": "a", "hour": "an", "airy voice": "an", "deep voice": "a"}  # fmt: skip
    assert {p: article(p) for p in cases} == cases
    assert join_list([]) == "" and join_list(["a"]) == "a" and join_list(["a", "b"]) == "a and b"
    assert join_list(["a", "b", "c"]) == "a, b and c" and join_list(["a", "b", "c"], oxford=True) == "a, b, and c"


def test_facts_from_attributes():
    facts = facts_from_attributes({"Speaking Rate": "fast", "Gender": "F", "occupation": "teacher", "Age": "",
                                   "accent": "en-gb-scotland", "pronouns": None, "gender_identity": "x"})  # fmt: skip
    assert facts == [Fact("sex", "female"), Fact("accent", "en-gb-scotland"), Fact("rate", "fast"),
                     Fact("other", "teacher", "occupation"), Fact("other", "x", "gender identity")]  # fmt: skip
    assert facts_from_attributes({"sex": "non-binary"}) == [Fact("other", "non-binary", "sex")]


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ([Fact("sex", "male"), Fact("accent", "en-gb-scotland"), Fact("pitch", "low"), Fact("rate", "fast")],
         "A male speaker with a Scottish accent, low pitch and a fast speaking rate."),
        ([Fact("sex", "female"), Fact("accent", "en-gb-x-rp"), Fact("quality", "breathy"), Fact("rate", "slow")],
         "A female speaker with a Received Pronunciation accent, a breathy voice and a slow speaking rate."),
        (facts_from_attributes({"Gender": "f", "Nationality": "USA"}), "A female speaker from the United States."),
        (facts_from_attributes({"Gender": "m", "Nationality": "Trinidad and Tobago"}),
         "A male speaker from Trinidad and Tobago."),
        (facts_from_attributes({"Nationality": "Philippines", "gender": "m"}), "A male speaker from the Philippines."),
        (facts_from_attributes({"age": "34", "gender": "F", "accent": "Irish", "occupation": "teacher"}),
         "A 34-year-old female speaker with an Irish accent whose occupation is teacher."),
        (facts_from_attributes({"dialect": "Kansai"}), "A speaker whose dialect is Kansai."),
    ],
)  # fmt: skip
def test_template_description(facts, expected):
    assert template_description(facts) == expected


LOCAL_FACTS = [
    {"sex": "male", "accent": "en-gb-scotland", "quality": "hoarse", "pitch": "low", "rate": "fast"},
    {"sex": "female", "accent": "en-us-nyc", "quality": "clear", "pitch": "high", "rate": "normal"},
    {"sex": "female", "accent": "en-gb-x-rp", "quality": "breathy", "pitch": None, "rate": "slow"},
    {"sex": "male", "accent": "en-us", "quality": "tinny", "pitch": "medium", "rate": "slow"},
]


@pytest.mark.parametrize("attrs", LOCAL_FACTS)
def test_paraphrases_state_every_fact_and_differ(attrs):
    facts = [Fact(k, v) for k, v in attrs.items() if v is not None]
    for seed in range(20):
        texts = describe(facts, 6, seeded_rng("t", seed))
        assert texts == describe(facts, 6, seeded_rng("t", seed))  # deterministic
        assert texts[0] == template_description(facts)
        assert len({norm(t) for t in texts}) == 6, texts
        for t in texts:
            assert t[0].isupper() and t.endswith("."), t
            assert len(re.findall(r"\bvoice\b", t, re.IGNORECASE)) <= 1, t
            for kind, value in attrs.items():
                assert states_exactly(t, kind, value), (t, kind, value)
    assert describe(facts, 6, seeded_rng("t", 0)) != describe(facts, 6, seeded_rng("t", 1))


def test_paraphrases_of_metadata_only_facts():
    facts = facts_from_attributes({"gender": "m", "nationality": "Ireland"})
    texts = describe(facts, 5, seeded_rng("vox", "id10001"))
    assert texts[0] == "A male speaker from Ireland." and len({norm(t) for t in texts}) == 5
    assert all(re.search(r"\bIrish\b|\bIreland\b", t) and states_exactly(t, "sex", "male") for t in texts), texts
    with pytest.raises(ValueError, match="different descriptions"):
        describe([], 60, seeded_rng("x"))


# --------------------------------------------------------------------------------- local corpus


def test_local_manifest(local: Path):
    rows = read_manifest(local).to_pylist()
    assert len(rows) == (4 + 2 + 3) * 3
    by_speaker = defaultdict(list)
    for r in rows:
        by_speaker[r["speaker"]].append(r)
        assert r["label"] == r["speaker"] and r["id"].startswith(r["speaker"] + "/")
        assert r["sr"] == 16000 and r["offset"] == 0.0 and r["language"] == "en"
        info = sf.info(r["audio_path"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert abs(info.duration - r["duration"]) < 1e-9 and 1.0 < r["duration"] < 12.0
    assert {s: sum(r["split"] == s for r in rows) for s in SPLITS} == {"train": 12, "val": 6, "test": 9}
    split_of = {}
    for spk, utts in by_speaker.items():
        assert len({u["split"] for u in utts}) == 1  # speakers disjoint across splits
        split_of[spk] = utts[0]["split"]
        assert len(utts) == 3
        texts = utts[0]["texts"]
        assert all(u["texts"] == texts and u["meta"] == utts[0]["meta"] for u in utts)
        assert len(texts) == 4 and len({norm(t) for t in texts}) == 4
        meta = json.loads(utts[0]["meta"])
        assert texts[0] == template_description(
            [Fact(k, meta[k]) for k in ("sex", "accent", "quality", "pitch", "rate") if meta[k] is not None]
        )
        for t in texts:
            for kind in PATTERNS:
                assert states_exactly(t, kind, meta[kind]), (t, kind, meta)
        assert meta["accent"] in ACCENT_VOICES and meta["voice"] == ACCENT_VOICES[meta["accent"]]
    assert sorted(split_of.values()) == ["test"] * 3 + ["train"] * 4 + ["val"] * 2
    assert all(not Path(p).is_absolute() for p in pq.read_table(local).column("audio_path").to_pylist())


def test_local_sentences_differ_and_audio_is_speech(local: Path):
    record = json.loads((local.parent / "speakers.json").read_text())
    assert len(record) == 9
    for spk in record.values():
        sentences = [u["sentence"] for u in spk["utterances"]]
        assert len(set(sentences)) == len(sentences) == 3
    all_sentences = [u["sentence"] for spk in record.values() for u in spk["utterances"]]
    assert len(set(all_sentences)) > 20  # content varies across speakers too
    for r in read_manifest(local).to_pylist():
        audio, _ = sf.read(r["audio_path"])
        assert 0.2 < np.abs(audio).max() < 0.95
        assert np.sqrt(np.mean(audio[:400] ** 2)) > 1e-5  # padded edges carry the noise floor


def test_local_build_is_deterministic_and_cached(local: Path, tmp_path: Path):
    again = build_corpus(local_request(tmp_path, **TINY))
    assert again != local and again.parent.name == local.parent.name  # same options -> same key
    for name in ("manifest.parquet", "speakers.json", "config.json"):
        assert (again.parent / name).read_bytes() == (local.parent / name).read_bytes(), name
    wavs = sorted(p.relative_to(local.parent) for p in local.parent.rglob("*.wav"))
    assert len(wavs) == 27
    for rel in wavs:
        assert (again.parent / rel).read_bytes() == (local.parent / rel).read_bytes(), rel
    mtimes = {p: p.stat().st_mtime_ns for p in again.parent.rglob("*") if p.is_file()}
    t0 = time.perf_counter()
    assert build_corpus(local_request(tmp_path, **TINY)) == again
    assert time.perf_counter() - t0 < 0.5
    assert {p: p.stat().st_mtime_ns for p in again.parent.rglob("*") if p.is_file()} == mtimes
    other = build_corpus(local_request(tmp_path, n_train=1, n_val=0, n_test=0, utts_per_speaker=1, seed=2))
    assert other.parent != again.parent


def test_interrupted_local_build_is_redone(tmp_path: Path):
    opts = {"n_train": 1, "n_val": 0, "n_test": 0, "utts_per_speaker": 1, "channel": False}
    manifest = build_corpus(local_request(tmp_path, **opts))
    wav = Path(read_manifest(manifest).column("audio_path")[0].as_py())
    manifest.unlink()  # as if killed before the manifest was written
    wav.write_bytes(b"half-written")
    assert build_corpus(local_request(tmp_path, **opts)) == manifest
    assert sf.info(wav).duration > 1.0


def test_default_speakers_are_retrievable_in_principle():
    """At the default sizes (drawn without synthesis): every val/test speaker has its own
    description-level tuple, no voice is shared anywhere, train shares some tuples."""
    accents = list(ACCENT_VOICES)
    assert attribute_space(accents) == 480
    speakers = draw_speakers(resolve_options({}), accents)
    per_split = {s: [spk for spk in speakers if spk.split == s] for s in SPLITS}
    assert {s: len(v) for s, v in per_split.items()} == {"train": 160, "val": 20, "test": 40}
    for s in ("val", "test"):
        assert len({spk.attribute_tuple for spk in per_split[s]}) == len(per_split[s])
    assert len({spk.voice_key for spk in speakers}) == len(speakers)
    assert len({spk.id for spk in speakers}) == len(speakers)
    train_tuples = {spk.attribute_tuple for spk in per_split["train"]}
    assert 100 < len(train_tuples) < 160
    for kind in ("sex", "quality", "accent", "pitch_level", "rate_level"):
        values = {getattr(spk, kind) for spk in per_split["train"]}
        assert {getattr(spk, kind) for spk in per_split["test"]} <= values, kind  # every test value is trained
    assert all(spk.pitch_level is None for spk in speakers if spk.quality == "breathy")
    # the test speakers do not depend on how many train speakers are drawn
    fewer = draw_speakers(resolve_options({"n_train": 10}), accents)
    assert [s for s in fewer if s.split == "test"] == per_split["test"]


def test_sentences_are_different_and_deterministic():
    a = sentences_for(0, "train_spk0000", 8)
    assert a == sentences_for(0, "train_spk0000", 8) and len(set(a)) == 8
    assert a != sentences_for(0, "train_spk0001", 8)
    assert all(s[0].isupper() and s[-1] in ".?" for s in a)


def test_local_options_are_checked(tmp_path: Path):
    with pytest.raises(ManifestError, match=r"unknown option\(s\) \['n_speakers'\]") as e:
        build_corpus(local_request(tmp_path, n_speakers=3))
    assert "\n" not in str(e.value)
    with pytest.raises(ManifestError, match="n_train must be >= 1"):
        build_corpus(local_request(tmp_path, n_train=0))
    with pytest.raises(ManifestError, match="exceeds the 480 distinct attribute tuples"):
        build_corpus(local_request(tmp_path, n_test=481))


# ------------------------------------------------------------------------------------ VoxCeleb1

VOX_META = [  # id, VGGFace1 id, gender, nationality, set
    ("id10001", "A.J._Buckley", "m", "Ireland", "dev"),
    ("id10002", "A.R._Rahman", "m", "India", "dev"),
    ("id10003", "Aamir_Khan", "m", "India", "dev"),
    ("id10004", "Aaron_Tveit", "m", "USA", "dev"),
    ("id10005", "Aaron_Yoo", "m", "USA", "dev"),
    ("id10006", "Abbie_Cornish", "f", "Australia", "dev"),
    ("id10270", "Eartha_Kitt", "f", "USA", "test"),
    ("id10271", "Ed_Westwick", "m", "UK", "test"),
    ("id10272", "Eddie_Griffin", "m", "Trinidad and Tobago", "test"),
]
VOX_VIDEOS = {"1zcIwhmdeo4": 3, "7w0IBEWc9Qw": 1}  # video -> utterances per speaker


def write_wav(path: Path, n: int, sr: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.sin(np.arange(n) * 0.05), sr, subtype="PCM_16")


def write_vox(root: Path, meta=VOX_META, wav_dir_of=lambda s: "wav", header=voxceleb.META_COLUMNS) -> dict[str, float]:
    """VoxCeleb1 in its distributed layout; returns utterance id -> duration."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(header)] + ["\t".join(r) for r in meta]
    (root / "vox1_meta.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    durations = {}
    for k, (spk, *_rest) in enumerate(meta):
        sub = wav_dir_of(_rest[-1])
        for v, (video, n_utts) in enumerate(VOX_VIDEOS.items()):
            for u in range(1, n_utts + 1):
                n = 1600 + 160 * (k + v + u)
                write_wav(root / sub / spk / video / f"{u:05d}.wav", n)
                durations[f"{spk}/{video}/{u:05d}"] = n / 16000
    return durations


def vox_request(root: Path | None, work: Path, **options) -> CorpusRequest:
    return CorpusRequest("speaker_text_voxceleb1", "paper", root, work, options)


def test_voxceleb1_official_layout(tmp_path: Path, capsys):
    root = tmp_path / "vox1"
    durations = write_vox(root)
    write_wav(root / "wav" / "id19999" / "vid" / "00001.wav", 1600)  # on disk, not in the meta file
    m = build_corpus(vox_request(root, tmp_path / "work", n_val=2))
    assert "id19999" in capsys.readouterr().out
    rows = read_manifest(m).to_pylist()
    assert {r["id"]: r["duration"] for r in rows} == pytest.approx(durations)
    split_of = {r["speaker"]: r["split"] for r in rows}
    assert {s for s, v in split_of.items() if v == "test"} == {"id10270", "id10271", "id10272"}
    assert sum(v == "val" for v in split_of.values()) == 2 and sum(v == "train" for v in split_of.values()) == 4
    by_id = {r["id"]: r for r in rows}
    r = by_id["id10001/1zcIwhmdeo4/00002"]
    assert r["audio_path"] == str((root / "wav/id10001/1zcIwhmdeo4/00002.wav").resolve())
    assert (r["sr"], r["offset"], r["label"], r["speaker"], r["language"]) == (16000, 0.0, "id10001", "id10001", "en")
    assert json.loads(r["meta"]) == {
        "gender": "male",
        "nationality": "Ireland",
        "vggface1_id": "A.J._Buckley",
        "set": "dev",
    }
    assert r["texts"][0] == "A male speaker from Ireland." and len(r["texts"]) == 5
    assert by_id["id10270/1zcIwhmdeo4/00001"]["texts"][0] == "A female speaker from the United States."
    assert by_id["id10272/7w0IBEWc9Qw/00001"]["texts"][0] == "A male speaker from Trinidad and Tobago."
    for spk in split_of:
        texts = {tuple(r["texts"]) for r in rows if r["speaker"] == spk}
        assert len(texts) == 1 and len({norm(t) for t in next(iter(texts))}) == 5
    # the val speakers are a deterministic choice among the dev speakers; cached on a re-run
    mtime = m.stat().st_mtime_ns
    assert build_corpus(vox_request(root, tmp_path / "work", n_val=2)) == m and m.stat().st_mtime_ns == mtime
    other = read_manifest(build_corpus(vox_request(root, tmp_path / "w2", n_val=2))).to_pylist()
    assert {r["speaker"]: r["split"] for r in other} == split_of


def test_voxceleb1_cap_and_separate_dev_test_folders(tmp_path: Path):
    root = tmp_path / "vox1"
    write_vox(root, wav_dir_of=lambda s: f"vox1_{s}_wav/wav")
    rows = read_manifest(
        build_corpus(vox_request(root, tmp_path / "work", n_val=1, max_utts_per_speaker=2))
    ).to_pylist()
    assert len(rows) == 9 * 2
    # round-robin over videos: the first utterance of each video
    assert sorted(r["id"] for r in rows if r["speaker"] == "id10271") == [
        "id10271/1zcIwhmdeo4/00001", "id10271/7w0IBEWc9Qw/00001"]  # fmt: skip
    assert all("/vox1_test_wav/wav/" in r["audio_path"] for r in rows if r["split"] == "test")


def test_voxceleb1_missing_inputs_are_one_line_errors(tmp_path: Path):
    def error(root, **options) -> str:
        with pytest.raises(ManifestError) as e:
            build_corpus(vox_request(root, tmp_path / "work", **options))
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "needs a data root" in error(None)
    assert str(tmp_path / "nowhere") in error(tmp_path / "nowhere")
    root = tmp_path / "vox1"
    root.mkdir()
    assert f"{root / 'vox1_meta.csv'} not found" in error(root)
    (root / "vox1_meta.csv").write_text("\t".join(voxceleb.META_COLUMNS) + "\n")
    msg = error(root)
    assert all(str(root / d) in msg for d in ("wav", "vox1_dev_wav/wav", "vox1_test_wav/wav")), msg
    write_vox(root)
    for p in (root / "wav" / "id10271").rglob("*.wav"):
        p.unlink()
    assert re.search(r"1 speaker folder\(s\) without any <video>/\*\.wav, e\.g\. .*id10271", error(root))
    assert "n_val=6 leaves no training speaker" in error(write_vox_root(tmp_path / "v2"), n_val=6)
    assert "unknown option" in error(root, n_utts=3)
    empty = tmp_path / "v3"
    write_vox(empty, meta=VOX_META)
    for spk, *_ in VOX_META:
        shutil.rmtree(empty / "wav" / spk)
    msg = error(empty)
    assert "audio missing for all 9 speaker(s)" in msg and str(empty / "wav") in msg


def test_voxceleb1_speakers_without_audio_are_skipped_with_a_count(tmp_path: Path, capsys):
    root = write_vox_root(tmp_path / "vox1")
    shutil.rmtree(root / "wav" / "id10271")
    shutil.rmtree(root / "wav" / "id10002")
    rows = read_manifest(build_corpus(vox_request(root, tmp_path / "work", n_val=1))).to_pylist()
    assert {r["speaker"] for r in rows} == {s for s, *_ in VOX_META} - {"id10271", "id10002"}
    assert len(rows) == 7 * 4 and {r["split"] for r in rows} == {"train", "val", "test"}
    out = capsys.readouterr().out
    assert "2 of 9 speaker(s) in vox1_meta.csv have no audio folder (1 dev, 1 test) and were skipped" in out
    assert "id10002" in out and "id10271" in out


def test_voxceleb1_test_zip_only_runs(tmp_path: Path, capsys):
    """vox1_test_wav.zip alone: the 1,211 dev speakers are skipped with a count and the test
    speakers are split speaker-disjointly into train/val/test."""
    root = tmp_path / "vox1"
    test_meta = [(f"id{10270 + k}", f"Name_{k}", "mf"[k % 2], "USA", "test") for k in range(8)]
    write_vox(root, meta=VOX_META[:6] + test_meta, wav_dir_of=lambda s: f"vox1_{s}_wav/wav")
    shutil.rmtree(root / "vox1_dev_wav")
    rows = read_manifest(build_corpus(vox_request(root, tmp_path / "work"))).to_pylist()
    split_of: dict[str, str] = {}
    for r in rows:
        assert split_of.setdefault(r["speaker"], r["split"]) == r["split"]  # speaker-disjoint
        assert json.loads(r["meta"])["set"] == "test"
    assert sorted(split_of) == [s for s, *_ in test_meta] and len(rows) == 8 * 4
    assert sorted(split_of.values()) == ["test"] * 2 + ["train"] * 4 + ["val"] * 2
    out = capsys.readouterr().out
    assert "6 of 14 speaker(s) in vox1_meta.csv have no audio folder (6 dev) and were skipped" in out
    assert "no dev speaker on disk: the test speakers are split" in out
    again = read_manifest(build_corpus(vox_request(root, tmp_path / "w2"))).to_pylist()
    assert {r["speaker"]: r["split"] for r in again} == split_of  # seeded


def test_voxceleb1_empty_split_is_one_line(tmp_path: Path):
    """Only the dev zip on disk: no test speaker, so the test split would be empty."""
    root = tmp_path / "vox1"
    write_vox(root, wav_dir_of=lambda s: f"vox1_{s}_wav/wav")
    shutil.rmtree(root / "vox1_test_wav")
    with pytest.raises(ManifestError) as e:
        build_corpus(vox_request(root, tmp_path / "work", n_val=1))
    msg = str(e.value)
    assert "\n" not in msg and "split 'test' is empty" in msg and "3 meta speaker(s) without audio" in msg
    two = tmp_path / "two"
    write_vox(two, meta=VOX_META[6:8])  # two test speakers, no dev: too few to split three ways
    with pytest.raises(ManifestError, match=r"split 'val' is empty \(train 2, val 0, test 0 speakers\)"):
        build_corpus(vox_request(two, tmp_path / "work"))


def write_vox_root(root: Path) -> Path:
    write_vox(root)
    return root


def test_voxceleb1_bad_meta_rows(tmp_path: Path):
    root = tmp_path / "vox1"
    write_vox(root, header=("VoxCeleb1 ID", "Name", "Gender", "Nationality", "Set"))
    with pytest.raises(ManifestError, match=r"missing column\(s\) \['VGGFace1 ID'\]"):
        build_corpus(vox_request(root, tmp_path / "work"))
    bad = [*VOX_META[:3], ("id10004", "Aaron_Tveit", "x", "USA", "dev"), *VOX_META[4:]]
    write_vox(root, meta=bad)
    with pytest.raises(ManifestError, match=r"line 5 \(id10004\): bad gender 'x'"):
        build_corpus(vox_request(root, tmp_path / "work"))
    bad = [*VOX_META[:3], ("id10004", "Aaron_Tveit", "m", "USA", "train"), *VOX_META[4:]]
    write_vox(root, meta=bad)
    with pytest.raises(ManifestError, match=r"line 5 .*bad Set 'train'"):
        build_corpus(vox_request(root, tmp_path / "work"))


def test_voxceleb1_unreadable_wav_is_kept_for_the_core(tmp_path: Path, capsys):
    root = tmp_path / "vox1"
    write_vox(root)
    (root / "wav/id10270/7w0IBEWc9Qw/00001.wav").write_bytes(b"not a wav")
    rows = {r["id"]: r for r in read_manifest(build_corpus(vox_request(root, tmp_path / "w", n_val=1))).to_pylist()}
    assert rows["id10270/7w0IBEWc9Qw/00001"]["duration"] == 0.0 and len(rows) == 36
    assert "id10270/7w0IBEWc9Qw/00001.wav" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ CSV


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t" if path.suffix == ".tsv" else ",")
        w.writerow(header)
        w.writerows(rows)
    return path


def metadata_corpus(root: Path, n_speakers: int = 10, utts: int = 2) -> list[list[str]]:
    rows = []
    for s in range(n_speakers):
        for u in range(utts):
            rel = f"audio/s{s}/{u}.wav"
            write_wav(root / rel, 1600 + 160 * u)
            rows.append([rel, f"S{s:02d}", "f" if s % 2 else "m", ["en-gb-scotland", "Irish"][s % 2] if u == 0 else "",
                         str(20 + s), "teacher" if s == 3 else ""])  # fmt: skip
    return rows


def csv_request(root: Path | None, work: Path, **options) -> CorpusRequest:
    return CorpusRequest("speaker_text_csv", "paper", root, work, options)


def test_csv_metadata_only_slot_fills_and_splits(tmp_path: Path):
    root = tmp_path / "corpus"
    write_csv(root / "speakers.csv", ["audio_path", "Speaker_ID", "Gender", "accent", "age", "occupation"],
              metadata_corpus(root))  # fmt: skip
    m = build_corpus(csv_request(root, tmp_path / "work"))
    rows = read_manifest(m).to_pylist()
    assert len(rows) == 20
    split_of = {}
    for r in rows:
        assert split_of.setdefault(r["speaker"], r["split"]) == r["split"]  # speaker-disjoint
    assert sorted(split_of.values()).count("train") == 8 and sorted(split_of.values()).count("test") == 1
    by_id = {r["id"]: r for r in rows}
    r = by_id["S03/s3/1"]
    assert r["audio_path"] == str((root / "audio/s3/1.wav").resolve()) and r["label"] == "S03"
    assert r["duration"] == pytest.approx(1760 / 16000) and r["sr"] == 16000 and r["language"] == "en"
    assert json.loads(r["meta"]) == {"Gender": "f", "accent": "Irish", "age": "23", "occupation": "teacher"}
    assert r["texts"][0] == "A 23-year-old female speaker with an Irish accent whose occupation is teacher."
    assert len(r["texts"]) == 5 and len({norm(t) for t in r["texts"]}) == 5
    assert by_id["S00/s0/0"]["texts"][0] == "A 20-year-old male speaker with a Scottish accent."
    assert by_id["S00/s0/0"]["texts"] == by_id["S00/s0/1"]["texts"]
    again = read_manifest(build_corpus(csv_request(root, tmp_path / "w2"))).to_pylist()
    assert again == rows  # deterministic split and descriptions


def test_csv_descriptions_splits_segments(tmp_path: Path):
    root = tmp_path / "csj"
    for name in ("a.wav", "b.wav", "c.wav"):
        write_wav(root / "wav" / name, 32000)
    outside = tmp_path / "elsewhere" / "d.wav"
    write_wav(outside, 8000)
    rows = [
        ["wav/a.wav", "A01", "train", "落ち着いた声の男性話者", "0", "1.5"],
        ["wav/a.wav", "A01", "", "ゆっくり話す男性", "1.5", "0.5"],
        ["wav/a.wav", "A01", "train", "落ち着いた声の男性話者", "0.5", ""],
        ["wav/b.wav", "B02", "test", "早口の女性話者", "", ""],
        [str(outside), "C03", "val", "高い声の女性", "", ""],
    ]
    header = ["audio_path", "speaker_id", "split", "description", "offset", "duration"]
    relative = [[r[0] if r[0].startswith("/") else str(Path("..") / r[0]), *r[1:]] for r in rows]
    path = write_csv(root / "meta" / "list.tsv", header, relative)
    m = build_corpus(csv_request(None, tmp_path / "work", csv=str(path), language="ja"))
    got = {r["id"]: r for r in read_manifest(m).to_pylist()}
    a = [got[k] for k in sorted(got) if k.startswith("A01/")]
    assert sorted(got) == ["A01/csj/wav/a@0.000", "A01/csj/wav/a@0.500", "A01/csj/wav/a@1.500", "B02/csj/wav/b",
                           "C03/elsewhere/d"]  # fmt: skip
    assert [(r["offset"], r["duration"]) for r in a] == [(0.0, 1.5), (0.5, 1.5), (1.5, 0.5)]
    assert all(r["texts"] == ["落ち着いた声の男性話者", "ゆっくり話す男性"] for r in a)
    assert all(r["split"] == "train" for r in a)
    assert all(r["language"] == "ja" and r["meta"] == "{}" for r in got.values())
    assert got["B02/csj/wav/b"]["duration"] == 2.0 and got["B02/csj/wav/b"]["split"] == "test"
    c = next(r for r in got.values() if r["speaker"] == "C03")
    assert c["audio_path"] == str(outside.resolve()) and c["split"] == "val" and c["texts"] == ["高い声の女性"]


def test_csv_errors_name_the_row(tmp_path: Path):
    root = tmp_path / "c"
    good = metadata_corpus(root, n_speakers=3)
    header = ["audio_path", "speaker_id", "gender", "accent", "age", "occupation"]

    def error(rows, hdr=header, **options) -> str:
        write_csv(root / "speakers.csv", hdr, rows)
        with pytest.raises(ManifestError) as e:
            build_corpus(csv_request(root, tmp_path / "work", **options))
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "missing required column(s) ['speaker_id']" in error(good, ["audio_path", "spk", *header[2:]])
    assert "line 3: empty speaker_id" in error([good[0], [good[1][0], "", *good[1][2:]], *good[2:]])
    msg = error([*good[:3], [good[3][0], "S01", "m", "", "", ""], *good[4:]])
    assert "speaker 'S01': column 'gender' is 'f' on line 4 but 'm' on line 5" in msg
    assert "unknown option" in error(good, n_desc=3)
    assert "slot-filled descriptions exist only in English and Japanese" in error(good, language="fr")
    assert "no metadata value" in error([[r[0], r[1]] for r in good], header[:2])
    with_split = [[*r[:2], s] for r, s in zip(good, ["train", "train", "", "", "val", "val"], strict=True)]
    assert "speaker 'S01' (line 4) has no split" in error(with_split, [*header[:2], "split"])
    with_split[2][2], with_split[3][2] = "test", "train"
    assert "speaker 'S01' is in more than one split: test (line 4), train (line 5)" in error(
        with_split, [*header[:2], "split"]
    )
    with_split[3][2] = "dev"
    assert "line 5: split 'dev' is not one of" in error(with_split, [*header[:2], "split"])
    described = [[*r[:2], "a calm voice" if r[1] != "S02" else ""] for r in good]
    assert "speaker 'S02' (line 6) has no description on any row" in error(described, [*header[:2], "description"])
    with pytest.raises(ManifestError, match="speaker CSV not found: .*other.csv"):
        build_corpus(csv_request(root, tmp_path / "work", csv="other.csv"))
    with pytest.raises(ManifestError, match="needs option csv=<path> or a data root"):
        build_corpus(csv_request(None, tmp_path / "work"))


def test_csv_missing_audio_is_kept_for_the_bad_item_check(tmp_path: Path, capsys):
    root = tmp_path / "c"
    good = metadata_corpus(root, n_speakers=3)
    header = ["audio_path", "speaker_id", "gender", "accent", "age", "occupation"]
    write_csv(root / "speakers.csv", header, [*good[:2], ["audio/nope.wav", "S00", "m", "", "", ""], *good[2:]])
    m = build_corpus(csv_request(root, tmp_path / "work"))
    assert "1 audio file(s) not found, kept for the extraction's bad-item check" in capsys.readouterr().out
    nope = next(r for r in read_manifest(m).to_pylist() if r["audio_path"].endswith("nope.wav"))
    assert nope["id"] == "S00/nope" and nope["duration"] == 0.0 and nope["split"] == "train"
    assert_missing_is_a_bad_item(m, "S00/nope", root / "audio/nope.wav", n_items=7)


def test_csv_empty_split_is_one_line(tmp_path: Path):
    root = tmp_path / "c"
    write_csv(root / "speakers.csv", ["audio_path", "speaker_id", "gender"],
              [r[:3] for r in metadata_corpus(root, n_speakers=2)])  # fmt: skip
    with pytest.raises(ManifestError) as e:
        build_corpus(csv_request(root, tmp_path / "work"))
    assert "\n" not in str(e.value) and "split 'test' is empty (train 1, val 1, test 0 speakers)" in str(e.value)


def test_csv_ratio_split():
    speakers = [f"s{i:02d}" for i in range(10)]
    split = csv_corpus.ratio_split(speakers, [0.8, 0.1, 0.1], seed=0)
    assert sorted(split.values()) == ["test"] + ["train"] * 8 + ["val"]
    assert split == csv_corpus.ratio_split(speakers, [0.8, 0.1, 0.1], seed=0)
    assert sorted(csv_corpus.ratio_split(["a", "b"], [0.8, 0.1, 0.1], seed=0).values()) == ["train", "val"]
    assert set(csv_corpus.ratio_split(["a"], [0.8, 0.1, 0.1], seed=0).values()) == {"train"}
