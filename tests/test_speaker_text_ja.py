"""The Japanese side of the speaker-text paper (Table II): Japanese descriptions from the same facts,
the segmentation step in front of the text encoder (Juman++ or the declared stand-in), the
corpora in Japanese, and the cts_systems_ja sweep's plan on both profiles."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from orchestrator.config import ConfigError
from orchestrator.corpus import build_corpus, read_manifest
from orchestrator.encoders.base import EncoderUnavailableError
from orchestrator.encoders.segmenters import ScriptRunSegmenter
from orchestrator.encoders.text import build_text_encoder
from orchestrator.plan import Invocation, resolve
from tests.test_speaker_text_corpus import TINY, csv_request, local_request, metadata_corpus, write_csv
from workloads.speaker_text.descriptions import Fact
from workloads.speaker_text.descriptions_ja import describe_ja, template_ja
from workloads.speaker_text.workload import SpeakerTextWorkload

# each fact value -> the words that say it (any one of them) in the Japanese lexicon
SAID = {"male": ("男",), "female": ("女",), "en-us": ("アメリカ英語", "米国英語"),
        "en-gb-scotland": ("スコットランド",), "hoarse": ("かすれた", "しゃがれた", "ハスキーな"),
        "clear": ("澄んだ", "きれいな", "なめらかな"), "low": ("低", "太い"), "high": ("高い", "高めの", "甲高い"),
        "fast": ("速", "早口", "テンポよく"), "slow": ("ゆっくり", "ゆったり", "のんびり", "遅め")}  # fmt: skip


@pytest.mark.parametrize("facts", [
    [Fact("sex", "male"), Fact("accent", "en-us"), Fact("quality", "hoarse"), Fact("pitch", "low"),
     Fact("rate", "fast")],
    [Fact("sex", "female"), Fact("accent", "en-gb-scotland"), Fact("quality", "clear"), Fact("pitch", "high"),
     Fact("rate", "slow")],
])  # fmt: skip
def test_japanese_descriptions_state_every_fact_and_differ(facts: list[Fact]) -> None:
    texts = describe_ja(facts, 5, np.random.default_rng(3))
    assert texts[0] == template_ja(facts) and len(set(texts)) == 5
    for text in texts:
        for f in facts:
            assert any(w in text for w in SAID[f.value]), (text, f)
    assert describe_ja(facts, 5, np.random.default_rng(3)) == texts  # deterministic


def test_japanese_template_by_hand() -> None:
    facts = [Fact("sex", "female"), Fact("age", "34"), Fact("nationality", "japan"), Fact("other", "講演", "type")]
    assert template_ja(facts) == "女性の話者、34歳、日本出身、typeは講演。"


def test_script_runs_segmenter_by_hand() -> None:
    seg = ScriptRunSegmenter()
    assert seg.segment(["低い声の男性、ＡＢＣ１２３です。", "アメリカ英語 なまり"]) == [
        "低 い 声 の 男性 、 ABC123 です 。",  # NFKC folds full-width Latin and digits
        "アメリカ 英語 なまり",
    ]
    assert seg.params() == {"segmenter": "script_runs"}


def _fake_jumanpp(tmp_path: Path, lines_out: str = "same") -> Path:
    """An executable that answers ``--version`` and ``--segment`` (one space-joined character per
    input character) as the Juman++ binary's interface does."""
    exe = tmp_path / "jumanpp"
    body = ("import sys\n"
            "if '--version' in sys.argv: print('Juman++ Version: 2.0.0-test'); sys.exit(0)\n"
            "lines = sys.stdin.read().splitlines()\n"
            f"lines = lines[:-1] if {lines_out!r} == 'fewer' else lines\n"
            "print('\\n'.join(' '.join(ch for ch in line if not ch.isspace()) for line in lines))\n")
    exe.write_text(f"#!{sys.executable}\n{body}")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_jumanpp_segmenter_runs_the_binary_and_is_in_the_cache_key(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_jumanpp(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    enc = build_text_encoder("segmented", segmenter="jumanpp", encoder="e5_small")
    inner = build_text_encoder("e5_small")
    assert enc.params() == {**inner.params(), "segmenter": "jumanpp", "segmenter_version": "Juman++ Version: 2.0.0-test"}
    assert enc.encoder_id == inner.encoder_id and enc.weights_hash() == inner.weights_hash() and enc.dim == 384
    got = enc.embed_texts(["低い声\nの男性", "女性"])  # a newline inside a text stays one line
    np.testing.assert_allclose(got, inner.embed_texts(["低 い 声 の 男 性", "女 性"]), atol=1e-6)
    plain = build_text_encoder("segmented", segmenter="script_runs", encoder="e5_small")
    assert plain.params() != enc.params()


def test_jumanpp_missing_or_misbehaving_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(EncoderUnavailableError, match="Juman\\+\\+ binary .* segmenter: script_runs") as e:
        build_text_encoder("segmented", segmenter="jumanpp", encoder="e5_small")
    assert "\n" not in str(e.value)
    broken = tmp_path / "broken"
    broken.mkdir()
    exe = _fake_jumanpp(broken, lines_out="fewer")
    enc = build_text_encoder("segmented", segmenter="jumanpp", encoder="e5_small",
                             segmenter_params={"binary": str(exe)})
    with pytest.raises(EncoderUnavailableError, match="returned 1 lines for 2 texts"):
        enc.embed_texts(["一", "二"])


def test_local_corpus_in_japanese(tmp_path: Path) -> None:
    rows = read_manifest(build_corpus(local_request(tmp_path, **TINY, language="ja"))).to_pylist()
    english = read_manifest(build_corpus(local_request(tmp_path / "en", **TINY))).to_pylist()
    assert [r["id"] for r in rows] == [r["id"] for r in english]  # the same speakers and audio
    for r, e in zip(rows, english):
        meta = json.loads(r["meta"])
        assert r["language"] == "ja" and r["meta"] == e["meta"] and len(set(r["texts"])) == 4
        facts = [Fact(k, meta[k]) for k in ("sex", "accent", "quality", "pitch", "rate") if meta[k] is not None]
        assert r["texts"][0] == template_ja(facts)
    with pytest.raises(Exception, match="option language must be one of"):
        build_corpus(local_request(tmp_path / "x", **TINY, language="fr"))


def test_csv_metadata_slot_fills_japanese(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write_csv(root / "speakers.csv", ["audio_path", "Speaker_ID", "Gender", "accent", "age", "occupation"],
              metadata_corpus(root))  # fmt: skip
    rows = {r["id"]: r for r in read_manifest(build_corpus(csv_request(root, tmp_path / "w", language="ja"))).to_pylist()}
    r = rows["S03/s3/1"]
    assert r["language"] == "ja" and r["texts"][0] == "女性の話者、23歳、Irishのアクセント、occupationはteacher。"
    assert len(set(r["texts"])) == 5


def test_cts_systems_ja_plan_on_both_profiles(tmp_path: Path) -> None:
    plan = resolve(Invocation(sweep="cts_systems_ja"))
    assert plan.base["corpus_options"] == {"language": "ja", "n_test": 30} and plan.n_trials == 18
    assert plan.base["text_encoder"] == "segmented"
    assert plan.base["text_encoder_params"] == {"segmenter": "script_runs", "encoder": "e5_small"}
    # the sweep's own stand-ins are declared over the workload profile's (same keys replaced)
    assert plan.profile.substitutions["text_encoder"].startswith("BART large Japanese")
    assert "script_runs" in plan.profile.substitutions["segmenter"]
    assert "30 test" in plan.profile.shortened["corpus"]
    assert "GE2E" in plan.profile.substitutions["speaker_encoder"]  # the workload's, kept
    paper = resolve(Invocation(sweep="cts_systems_ja", profile="paper", data_root=str(tmp_path)))
    assert paper.base["dataset"] == "csv" and paper.base["text_encoder_params"]["segmenter"] == "jumanpp"
    assert paper.base["text_encoder_params"]["params"]["model"] == "ku-nlp/bart-large-japanese"
    assert "Juman++" in paper.profile.choices["segmenter"]
    with pytest.raises(ConfigError):
        resolve(Invocation(sweep="cts_systems_ja", profile="paper"))  # the CSV corpus needs --data-root


def test_japanese_results_are_table_two() -> None:
    import pandas as pd

    wl = SpeakerTextWorkload()
    cfg = wl.config_cls.model_validate({"corpus_options": {"language": "ja"}})
    wl.data_spec(cfg, "local")
    trials = pd.DataFrame([{"trial_id": "a", "system": "B03", "seed": 0, "status": "ok"}])
    assert list(wl.summary_tables(trials)) == ["table_2"]
