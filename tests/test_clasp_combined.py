"""The paper profile's union corpus (``clasp_combined``): Speech Brown + Common Voice + FLEURS from
one data root, built from fixtures written by the corpus tests in each dataset's official layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.corpus import CorpusRequest, ManifestError, build_corpus, read_manifest
from tests.test_clasp_corpus import sb_records, write_common_voice, write_fleurs, write_speech_brown
from workloads.clasp import combined  # noqa: F401  (registers clasp_combined)


def test_three_datasets_in_one_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    write_speech_brown(root / "SpeechBrown", sb_records())
    write_common_voice(root / "cv-corpus-4-2019-12-10" / "en")
    write_fleurs(root)
    manifest = build_corpus(CorpusRequest("clasp_combined", "paper", root, tmp_path / "work", {}))
    assert "[clasp_combined] 56 items (speech_brown 20; common_voice 24; fleurs 12" in capsys.readouterr().out
    rows = read_manifest(manifest).to_pylist()
    by_part = {p: [r for r in rows if r["id"].startswith(p + "/")]
               for p in ("speech_brown", "common_voice", "fleurs")}
    assert {p: len(v) for p, v in by_part.items()} == {"speech_brown": 20, "common_voice": 24, "fleurs": 12}
    assert len(rows) == 56 and all(Path(r["audio_path"]).is_file() for r in rows)
    # each part keeps its own split rule: Common Voice's three readings of one sentence share a split
    same = {r["split"] for r in by_part["common_voice"] if r["texts"] == ["The same sentence, read again."]}
    assert len(same) == 1 and {r["split"] for r in rows} == {"train", "val", "test"}
    again = build_corpus(CorpusRequest("clasp_combined", "paper", root, tmp_path / "work", {}))
    assert again == manifest
    options = {"parts": ["clasp_fleurs"], "part_options": {"clasp_fleurs": {"split": "official"}}}
    only = build_corpus(CorpusRequest("clasp_combined", "paper", root, tmp_path / "work", options))
    assert {r["id"].split("/")[0] for r in read_manifest(only).to_pylist()} == {"fleurs"}


def test_bad_options_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="parts must be some of"):
        build_corpus(CorpusRequest("clasp_combined", "paper", tmp_path, tmp_path, {"parts": ["clasp_local"]}))
    with pytest.raises(ManifestError, match="part_options for parts not built"):
        build_corpus(CorpusRequest("clasp_combined", "paper", tmp_path, tmp_path,
                                   {"parts": ["clasp_fleurs"], "part_options": {"clasp_common_voice": {}}}))
