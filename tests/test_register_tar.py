"""A tiny TAR (fine-tuned encoders) sweep registers its best trial: the retrieval model refers to
the fine-tuned checkpoint, and querying it with the test split's own captions (text -> clips) and
clips (audio -> captions) reproduces the trial's logged test metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator import retrieval
from orchestrator.sweep import main
from tests.tiny_specs import tiny_tar
from tests.test_e2e_sweep import runs


def test_registered_tar_model_reproduces_test_metrics(ray_local, tmp_path: Path) -> None:
    import mlflow

    spec = tmp_path / "tiny_tar_reg.yaml"
    spec.write_text(tiny_tar(n_test=6))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main([str(spec), "--tracking-uri", uri, "--cache-dir", str(tmp_path / "cache"),
                 "--storage-path", str(tmp_path / "ray_results")]) == 0
    client, parents, children = runs(tmp_path, "tiny_tar_reg")
    child = children[0]
    assert parents[0].data.tags["registered_model_version"] == "tiny_tar_reg/1"
    mlflow.set_tracking_uri(uri)
    engine = mlflow.pyfunc.load_model("models:/tiny_tar_reg@champion").unwrap_python_model().engine
    assert "checkpoint" in engine.meta["head"]  # the fine-tuned encoders stay in Tune storage, referenced
    clips, captions = engine.rows["audio"], engine.rows["text"]
    assert len(clips) == 6 and len(captions) == 30
    m = child.data.metrics

    # text -> audio: every test caption queries the clips
    results = engine.search([c["caption"] for c in captions], "text", k=len(clips))
    ranks = np.array([res.ids.index(c["item"]) + 1 for c, res in zip(captions, results)])
    t2a = retrieval.single_relevant_metrics(ranks)
    for key in ("map10", "r1", "r5"):
        assert t2a[key] == pytest.approx(m[f"test/t2a/{key}"], abs=1e-6), key

    # audio -> text: every test clip, from its audio file, queries the captions (best-ranked caption)
    from orchestrator.retrieval_model import AudioQuery

    queries = [AudioQuery(path=c["audio_path"], offset=c["offset"], duration=c.get("duration"), label=c["id"])
               for c in clips]
    results = engine.search(queries, "audio", k=len(captions))
    item_of = {c["id"]: c["item"] for c in captions}
    best = np.array([next(n for n, i in enumerate(res.ids, 1) if item_of[i] == c["id"])
                     for c, res in zip(clips, results)])
    a2t = retrieval.single_relevant_metrics(best)
    assert a2t["r1"] == pytest.approx(m["test/a2t/r1"], abs=1e-6)
    assert a2t["mrr"] == pytest.approx(m["test/a2t/mrr"], abs=1e-6)
