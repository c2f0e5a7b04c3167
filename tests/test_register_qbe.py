"""A tiny QbE sweep registers its best trial as a retrieval model; querying that model with the
test split's own clips (their audio files, through the frozen encoder and the head) reproduces
the trial's logged test mAP; the CLI searches it and fails in one line on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from orchestrator.sweep import main
from tests.test_e2e_sweep import runs


def _ap(ranked_labels: list[str], label: str) -> float:
    rel = np.array([w == label for w in ranked_labels])
    if not rel.any():
        return float("nan")
    hits = np.cumsum(rel)
    return float((hits[rel] / (np.flatnonzero(rel) + 1)).sum() / rel.sum())


@pytest.fixture(scope="module")
def qbe_sweep(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qbe_reg")
    spec = tmp / "tiny_qbe_reg.yaml"
    spec.write_text("""
workload: qbe
fixed: {dataset: swedish, n_words: 12, epochs: 4, eval_every: 2, batch_size: 32}
param_space:
  lr: {type: grid, values: [1.0e-3]}
searcher: grid
scheduler: {type: none}
metric: val/silhouette_labels
mode: max
""")
    uri = f"sqlite:///{tmp}/mlflow.db"
    common = ["--tracking-uri", uri, "--cache-dir", str(tmp / "cache"), "--storage-path", str(tmp / "ray_results")]
    assert main([str(spec), *common]) == 0
    return tmp, uri


def test_registered_qbe_model_reproduces_test_map(qbe_sweep) -> None:
    import mlflow

    tmp, uri = qbe_sweep
    client, parents, children = runs(tmp, "tiny_qbe_reg")
    child = children[0]
    assert parents[0].data.tags["registered_model_version"] == "tiny_qbe_reg/1"
    version = client.get_model_version_by_alias("tiny_qbe_reg", "champion")
    assert version.run_id == child.info.run_id and version.tags["selection_metric"] == "val/silhouette_labels"

    from orchestrator.retrieval_model import AudioQuery, QueryError

    mlflow.set_tracking_uri(uri)
    engine = mlflow.pyfunc.load_model("models:/tiny_qbe_reg@champion").unwrap_python_model().engine
    rows = engine.rows["audio"]
    queries = [AudioQuery(path=r["audio_path"], offset=r["offset"], duration=r.get("duration"), label=r["id"])
               for r in rows]
    results = engine.search(queries, "audio", k=len(rows))
    word = {r["id"]: r["word"] for r in rows}
    aps = []
    for r, res in zip(rows, results):
        ranked = [word[i] for i in res.ids if i != r["id"]]  # the query itself is not a result
        aps.append(_ap(ranked, r["word"]))
    logged = child.data.metrics["test/transformed/map"]
    assert np.nanmean(aps) == pytest.approx(logged, abs=1e-6)
    with pytest.raises(QueryError, match="takes audio"):
        engine.search(["a text"], "text", k=3)

    # the same run again, indexing every split: a new version, and the champion stays (equal metric)
    from orchestrator import register

    assert register.main([child.info.run_id, "--index-split", "all", "--tracking-uri", uri]) == 0
    assert str(client.get_model_version_by_alias("tiny_qbe_reg", "champion").version) == "1"
    v2 = client.get_model_version("tiny_qbe_reg", "2")
    assert v2.tags["index_split"] == "all"
    all_engine = mlflow.pyfunc.load_model("models:/tiny_qbe_reg/2").unwrap_python_model().engine
    assert len(all_engine.rows["audio"]) > len(rows)
    # registering it again is idempotent; --champion moves the alias
    assert register.main([child.info.run_id, "--index-split", "all", "--champion", "--tracking-uri", uri]) == 0
    assert str(client.get_model_version_by_alias("tiny_qbe_reg", "champion").version) == "2"
    assert len(client.search_model_versions("name='tiny_qbe_reg'")) == 2


def test_search_cli_and_errors(qbe_sweep, tmp_path: Path, capsys) -> None:
    """The real CLI once (JSON), then the error cases in process (each is one line, exit 2)."""
    import json

    import mlflow
    import soundfile as sf

    from orchestrator import register, search
    from orchestrator.audio import load_audio

    tmp, uri = qbe_sweep
    mlflow.set_tracking_uri(uri)
    engine = mlflow.pyfunc.load_model("models:/tiny_qbe_reg@champion").unwrap_python_model().engine
    first = engine.rows["audio"][0]
    wav = tmp_path / "word.wav"
    sf.write(wav, load_audio("q", first["audio_path"], 16000, first["offset"], first.get("duration")), 16000)
    cli = [sys.executable, "-m", "orchestrator.search", "--tracking-uri", uri]
    out = subprocess.run([*cli, "models:/tiny_qbe_reg@champion", "--audio", str(wav), "-k", "3", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert len(payload["ids"]) == 3 and payload["items"][0]["word"] == first["word"]
    assert payload["scores"] == sorted(payload["scores"], reverse=True)
    (tmp_path / "garbage.wav").write_bytes(b"not audio at all")
    opts = ["--tracking-uri", uri]
    capsys.readouterr()  # the download bars of this test's own load above
    bad = [
        (["models:/no_such_model@champion", "--audio", str(wav)], "no_such_model"),
        (["models:/tiny_qbe_reg@champion", "a text query"], "takes audio"),
        (["models:/tiny_qbe_reg@champion", "--audio", str(tmp_path / "missing.wav")], "no file"),
        (["0123456789abcdef", "--audio", str(wav)], "unknown model"),
        (["models:/tiny_qbe_reg@champion", "--audio", str(tmp_path / "garbage.wav")], "cannot read the audio query"),
    ]
    for argv, expected in bad:
        assert search.main([*argv, *opts]) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1, err
    assert register.main(["nonexistentrun", *opts]) == 2
    assert "no run nonexistentrun" in capsys.readouterr().err
