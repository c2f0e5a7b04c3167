"""A registered speaker-text model ranks queries as the metric it was selected by: fused (section
II-A's cross-modal fusion, ``fusion_n``) for a ``..._fused`` metric, as embedded otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrator.registry import load_workload
from orchestrator.retrieval import l2_normalize
from orchestrator.retrieval_model import IndexSide, RetrievalEngine, write_model_dir
from workloads.speaker_text.fusion import fuse

SPEAKERS, UTTS, DESCS, DIM = 5, 4, 3, 8


def _sides(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Utterances and descriptions of five speakers around shared centres (a trained space)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(SPEAKERS, DIM))
    s_lab, t_lab = np.repeat(np.arange(SPEAKERS), UTTS), np.repeat(np.arange(SPEAKERS), DESCS)
    s = l2_normalize((centres[s_lab] + 0.9 * rng.normal(size=(len(s_lab), DIM))).astype(np.float32))
    t = l2_normalize((centres[t_lab] + 0.9 * rng.normal(size=(len(t_lab), DIM))).astype(np.float32))
    return s, s_lab, t, t_lab


def _engine(tmp_path: Path, metric: str, **cfg_fields: object) -> tuple[RetrievalEngine, np.ndarray, np.ndarray]:
    wl = load_workload("speaker_text")
    cfg = wl.config_cls.model_validate({"system": "B03", "proj_dim": DIM, "fusion_n": 3, "seed": 0, **cfg_fields})
    in_dim = {"speaker": 6, "text": 5, "n_speakers": SPEAKERS}
    torch.save({"model": wl.build_model(cfg, in_dim).state_dict(), "in_dim": in_dim}, tmp_path / "model.pt")
    s, s_lab, t, t_lab = _sides()
    sides = {"audio": IndexSide(s, [{"id": f"u{i}", "item": f"u{i}", "speaker": f"spk{lab}"}
                                    for i, lab in enumerate(s_lab)], "utterances (speaker)"),
             "text": IndexSide(t, [{"id": f"d{i}", "item": None, "speaker": f"spk{lab}"}
                                   for i, lab in enumerate(t_lab)], "speaker descriptions")}
    meta = {"workload": "speaker_text", "profile": "local", "run_id": "run", "sweep": "fusion_n",
            "selection_metric": metric, "index_split": "test"}
    root = write_model_dir(tmp_path / "model", meta=meta, config=cfg.model_dump(mode="json"), sides=sides,
                           state_file=tmp_path / "model.pt", checkpoint_uri=None)
    return RetrievalEngine(root), s, t


def _order(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ database.T), axis=1, kind="stable")


@pytest.mark.parametrize("keep_query", [False, True])
def test_a_model_selected_by_a_fused_metric_ranks_that_direction_fused(tmp_path: Path, keep_query: bool) -> None:
    engine, s, t = _engine(tmp_path, "val/utt/t2s_fused/map10", fusion_keep_query=keep_query)
    assert "fusion, N = 3" in engine.ranking("text")
    _, got = engine.rank(t, "text", len(s))  # every description as a query, as the test pass ranks them
    np.testing.assert_array_equal(got, _order(fuse(t, s, 3, keep_query), s))  # utt/t2s_fused
    assert not np.array_equal(got, _order(t, s))  # fusion changes this ranking
    # the other direction's N was not selected: its queries are ranked as embedded
    assert engine.ranking("audio").startswith("as embedded")
    _, got = engine.rank(s, "audio", len(t))
    np.testing.assert_array_equal(got, _order(s, t))  # utt/s2t


def test_a_model_selected_on_speaker_to_text_fuses_audio_queries(tmp_path: Path) -> None:
    engine, s, t = _engine(tmp_path, "val/utt/s2t_fused/map10")
    _, got = engine.rank(s, "audio", len(t))
    np.testing.assert_array_equal(got, _order(fuse(s, t, 3), t))
    _, got = engine.rank(t, "text", len(s))
    np.testing.assert_array_equal(got, _order(t, s))


def test_fuse_database_fuses_the_searched_side_against_the_queries_side(tmp_path: Path) -> None:
    engine, s, t = _engine(tmp_path, "val/t2s_fused/map10", fuse_database=True)
    _, got = engine.rank(t, "text", len(s))
    np.testing.assert_array_equal(got, _order(fuse(t, s, 3), fuse(s, t, 3)))  # t2s_fused, fuse_database


def test_a_model_selected_by_an_unfused_metric_ranks_queries_as_embedded(tmp_path: Path) -> None:
    engine, s, t = _engine(tmp_path, "val/map10")
    assert engine.fusion is None and engine.ranking("text") == "as embedded"
    _, got = engine.rank(t, "text", len(s))
    np.testing.assert_array_equal(got, _order(t, s))
