"""Views: text views through the Ray Data extraction path, per-view cache keys, the join on item id
(missing items reported, never silently dropped), and evaluation-only sweeps.

The end-to-end tests run the toy two-view workload (``tests/toy_views.py``: tone clips through
log-mel statistics + their captions through MiniLM) through Ray Data, Ray Train, Tune + Optuna and
MLflow, and assert on what the cache, the extraction log and MLflow hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from orchestrator.corpus import CorpusRequest, build_corpus, manifest_table, read_manifest, write_manifest
from orchestrator.encoders.text import build_text_encoder
from orchestrator.extract import BadItemsError, extract_view
from orchestrator.sweep import main
from orchestrator.views import DataSpec, ViewSpec, read_joined, texts_of
from tests.test_e2e_sweep import runs
from tests.toy_views import build_toy  # noqa: F401  (registers the toy corpus)

TEXT = ViewSpec("text", "minilm")
AUDIO = ViewSpec("audio", "logmel_stats", {"n_mels": 16})


def toy_manifest(tmp_path: Path, **opts: object) -> Path:
    return build_corpus(CorpusRequest("toy_tones", "local", None, tmp_path / "corpora", dict(opts)))


def test_texts_of_reads_the_texts_column_or_a_meta_path() -> None:
    row = {"texts": ["a", "b"], "meta": json.dumps({"translations": {"de": ["ein"], "fr": "un"}})}
    assert texts_of(row, "texts") == ["a", "b"]
    assert texts_of(row, "meta:translations.de") == ["ein"]
    assert texts_of(row, "meta:translations.fr") == ["un"]
    assert texts_of(row, "meta:translations.zh") == []
    with pytest.raises(ValueError, match="text_source"):
        ViewSpec("text", "minilm", text_source="translations")


def test_view_keys_differ_per_view_and_ignore_other_views() -> None:
    a = DataSpec("c", {"audio": AUDIO, "text": TEXT})
    b = DataSpec("c", {"audio": ViewSpec("audio", "logmel_stats", {"n_mels": 24}), "text": TEXT})
    assert a.view_key("text") == b.view_key("text") and a.view_key("audio") != b.view_key("audio")
    assert a.corpus_key() == b.corpus_key()


def test_text_view_rows_per_text_equal_direct_encoding(ray_local, tmp_path: Path) -> None:
    manifest = toy_manifest(tmp_path, clips_per_tone=2)
    res = extract_view(manifest, TEXT, tmp_path / "views", shard_size=7)
    rows = pq.read_table(sorted(res.cache_dir.glob("part-*.parquet"))).sort_by([("id", "ascending"),
                                                                               ("text_index", "ascending")])
    items = read_manifest(manifest).sort_by("id").to_pylist()
    assert rows.num_rows == 2 * len(items) and res.n_items == len(items)
    assert rows.column("text").to_pylist()[:2] == items[0]["texts"]
    direct = build_text_encoder("minilm").embed_texts(items[0]["texts"])
    np.testing.assert_allclose(np.asarray(rows.column("embedding").to_pylist()[:2]), direct, atol=1e-5)
    meta = json.loads((res.cache_dir / "meta.json").read_text())
    assert meta["modality"] == "text" and meta["n_rows"] == 2 * len(items)
    # distinct strings are the unit of work: shards hold texts, not items
    assert len(list(res.cache_dir.glob("part-*.parquet"))) == int(np.ceil(len({t for r in items for t in r["texts"]}) / 7))
    assert extract_view(manifest, TEXT, tmp_path / "views", shard_size=7).cache_hit


def test_editing_a_caption_re_extracts_the_text_view_only(ray_local, tmp_path: Path) -> None:
    manifest = toy_manifest(tmp_path)
    audio1, text1 = (extract_view(manifest, v, tmp_path / "views") for v in (AUDIO, TEXT))
    table = read_manifest(manifest)
    rows = table.to_pylist()
    rows[0]["texts"] = [rows[0]["texts"][0] + " indeed", rows[0]["texts"][1]]
    edited = write_manifest(manifest_table(rows), tmp_path / "edited" / "manifest.parquet")
    audio2, text2 = (extract_view(edited, v, tmp_path / "views") for v in (AUDIO, TEXT))
    assert audio2.cache_hit and audio2.cache_dir == audio1.cache_dir
    assert not text2.cache_hit and text2.cache_dir != text1.cache_dir


def test_empty_caption_is_one_line_or_quarantined(ray_local, tmp_path: Path) -> None:
    manifest = toy_manifest(tmp_path, empty_caption=True, only_empty=True)
    with pytest.raises(BadItemsError) as e:
        extract_view(manifest, TEXT, tmp_path / "views")
    msg = str(e.value)
    assert "\n" not in msg and "t00_0" in msg and "text 1: empty or whitespace-only text" in msg and "t00_1" in msg
    res = extract_view(manifest, TEXT, tmp_path / "views", skip_bad_items=True)
    assert dict(res.quarantined).keys() == {"t00_0", "t00_1"}
    # t00_0 keeps its good caption; t00_1 had none left, so the view lacks it
    assert res.missing_ids == ["t00_1"]


def test_join_drops_and_reports_items_a_view_lacks(ray_local, tmp_path: Path) -> None:
    manifest = toy_manifest(tmp_path, empty_caption=True, only_empty=True)
    audio = extract_view(manifest, AUDIO, tmp_path / "views")
    text = extract_view(manifest, TEXT, tmp_path / "views", skip_bad_items=True)
    table, report = read_joined(manifest, {"audio": audio.cache_dir, "text": text.cache_dir}, ("train",))
    ids = table.column("id").to_pylist()
    assert "t00_1" not in ids and "t00_0" in ids and report.missing == {"text": ["t00_1"]}
    assert report.tags() == {"data.missing.text": "1", "data.dropped_items": "1"}
    row = table.to_pylist()[0]
    assert row["id"] == "t00_0" and row["text.text_index"] == [0] and len(row["text"]) == 1  # one caption left
    assert len(row["audio"]) == 32 and set(table.column("split").to_pylist()) == {"train"}


# ------------------------------------------------------------------------------------------------
# end to end


def space(tmp: Path, name: str, body: str, fixed: str = "") -> str:
    path = tmp / f"{name}.yaml"
    path.write_text(f"workload: tests.toy_views:INFO\nfixed: {{{fixed}}}\nmetric: val/t2a/mrr\nmode: max\n{body}")
    return str(path)


def common(work: Path) -> list[str]:
    return ["--tracking-uri", f"sqlite:///{work}/mlflow.db", "--cache-dir", str(work / "cache"),
            "--storage-path", str(work / "ray_results")]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("views")


def extraction_log(client, run) -> list[dict]:
    path = client.download_artifacts(run.info.run_id, "data/extraction.json")
    return json.loads(Path(path).read_text())


@pytest.mark.slow
def test_two_view_sweep_then_one_changed_view_extracts_that_view_only(ray_local, work: Path) -> None:
    spec = space(work, "toy_two_view", "param_space:\n  lr: {type: loguniform, low: 1.0e-2, high: 5.0e-2}\n"
                 "searcher: optuna\nscheduler: {type: asha, grace_period: 1}\nnum_samples: 2\n")
    assert main([spec, *common(work)]) == 0
    client, parents, children = runs(work, "toy_two_view")
    assert len(parents) == 1 and len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    first = extraction_log(client, parents[0])
    assert {e["view"]: e["cache_hit"] for e in first} == {"audio": False, "text": False}
    for c in children:
        assert 0 <= c.data.metrics["test/t2a/mrr"] <= 1 and c.data.tags["data.dropped_items"] == "0"
        assert "tables/toy.json" in {a.path for a in client.list_artifacts(c.info.run_id, "tables")}

    # the same sweep with the audio encoder's parameter changed: only the audio view is extracted
    assert main([spec, "--num-samples", "1", "--set", "n_mels=16", *common(work)]) == 0
    client, parents, _ = runs(work, "toy_two_view")
    newest = max(parents, key=lambda r: r.info.start_time)
    second = {e["view"]: e for e in extraction_log(client, newest)}
    assert second["text"]["cache_hit"] and not second["audio"]["cache_hit"]
    assert second["text"]["cache_dir"] == next(e["cache_dir"] for e in first if e["view"] == "text")
    assert newest.data.tags["data.toy_tones.text.cache"] == "hit"
    assert newest.data.tags["data.toy_tones.audio.cache"] == "extracted"
    views_dir = work / "cache" / "views"
    assert sum(1 for d in views_dir.iterdir() if (d / "meta.json").exists()) == 3  # 2 audio + 1 text


@pytest.mark.slow
def test_empty_caption_fails_in_one_line_or_is_recorded_in_mlflow(ray_local, work: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec = space(work, "toy_empty", "searcher: grid\nscheduler: {type: none}\n",
                 fixed="empty_caption: true, only_empty: true, epochs: 2")
    assert main([spec, *common(work)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and not ln.startswith("[data]")]
    assert len(err) == 1 and err[0].startswith("error: 2 bad item(s): t00_0") and "--skip-bad-items" in err[0]
    assert main([spec, "--skip-bad-items", *common(work)]) == 0
    client, parents, children = runs(work, "toy_empty")
    parent = next(p for p in parents if p.info.status == "FINISHED")
    assert parent.data.metrics["data/quarantined_items"] == 2
    quarantine = json.loads(Path(client.download_artifacts(parent.info.run_id, "data/quarantine.json")).read_text())
    assert {i for i, _ in quarantine["toy_tones/text"]} == {"t00_0", "t00_1"}
    child = children[0]
    assert child.data.tags["data.missing.text"] == "1" and child.data.tags["data.dropped_items"] == "1"


@pytest.mark.slow
def test_evaluation_sweep_trains_once_and_tags_the_source(ray_local, work: Path) -> None:
    spec = space(work, "toy_fusion", "param_space:\n  fusion_n: {type: randint, low: 1, high: 10}\n"
                 "searcher: optuna\nnum_samples: 10\n", fixed="epochs: 3")
    assert main([spec, *common(work)]) == 0
    client, parents, children = runs(work, "toy_fusion")
    source = [c for c in children if c.data.tags.get("role") == "source"]
    evals = [c for c in children if c.data.tags.get("role") != "source"]
    assert len(source) == 1 and len(evals) == 10
    # the one training of this sweep: one trial of the source Tuner, checkpointed in its trial dir
    source_tuners = list((work / "ray_results" / "toy_fusion").glob("*-source"))
    assert len(source_tuners) == 1
    trained = [d for d in source_tuners[0].iterdir() if d.is_dir() and source[0].data.tags["trial_id"] in d.name]
    assert len(trained) == 1 and list(trained[0].glob("checkpoint_*/model.pt"))
    for c in evals:
        assert c.data.tags["source_run_id"] == source[0].info.run_id
        assert 1 <= int(c.data.params["fusion_n"]) <= 10
        assert "val/t2a/mrr" in c.data.metrics and "test/t2a/mrr" in c.data.metrics
    parent = parents[0]
    assert parent.data.tags["sweep_kind"] == "evaluation" and parent.data.tags["best_trial"]

    # --from-run: evaluate that logged model again, training nothing
    assert main([spec, "--num-samples", "3", "--from-run", source[0].info.run_id, *common(work)]) == 0
    assert list((work / "ray_results" / "toy_fusion").glob("*-source")) == source_tuners
    _, parents, children = runs(work, "toy_fusion")
    newest = max(parents, key=lambda r: r.info.start_time)
    mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == newest.info.run_id]
    assert len(mine) == 3 and all(c.data.tags["source_run_id"] == source[0].info.run_id for c in mine)
