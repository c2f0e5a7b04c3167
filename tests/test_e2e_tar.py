"""A tiny end-to-end finetune trial through Ray Data (log-mel features), Ray Train (Whisper tiny.en +
MiniLM fine-tuned with their own LRs), Tune and MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from orchestrator.sweep import main
from tests.tiny_specs import tiny_tar
from tests.test_e2e_sweep import runs


def test_finetune_trial_logs_dcase_metrics(ray_local, tmp_path: Path) -> None:
    spec = tmp_path / "tiny_tar.yaml"
    spec.write_text(tiny_tar(n_test=4, epochs=2))
    common = ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--cache-dir", str(tmp_path / "cache"),
              "--storage-path", str(tmp_path / "ray_results")]
    assert main([str(spec), *common]) == 0
    client, parents, children = runs(tmp_path, "tiny_tar")
    assert len(parents) == 1 and len(children) == 1
    child = children[0]
    assert child.info.status == "FINISHED" and child.data.params["lr_audio"] == "4e-06"
    m = child.data.metrics
    for key in ("t2a/r1", "t2a/r5", "t2a/r10", "t2a/map10", "a2t/r1", "zeroshot/t2a/map10"):
        assert 0.0 <= m[f"test/{key}"] <= 1.0
    assert [h.step for h in client.get_metric_history(child.info.run_id, "val/t2a/map10")] == [0, 1]
    assert "tables/tar_results.json" in {a.path for a in client.list_artifacts(child.info.run_id, "tables")}
    tags = parents[0].data.tags
    assert tags["regime"] == "finetune" and "Whisper tiny.en" in tags["substitution.audio_encoder"]


@pytest.mark.slow
def test_passt_tap_trial(ray_local, tmp_path: Path) -> None:
    """PaSST (a tiny model in the released layout, 32 kHz log-mel cached by Ray Data) fine-tuned with
    TAP over its 100 ms time frames and the sigmoid loss: the paper profile's other encoder path."""
    ckpt = tmp_path / "passt-tiny.pt"
    ref = torch.load(Path(__file__).parent / "fixtures" / "passt_reference.pt", weights_only=True)
    torch.save(ref["tiny_state_dict"], ckpt)
    spec = tmp_path / "tiny_passt.yaml"
    spec.write_text(f"""
workload: tar
fixed:
  audio_encoder: passt
  audio_encoder_params: {{checkpoint: "{ckpt}", output: time_frames, num_heads: 2}}
  corpus_options: {{n_train: 8, n_val: 4, n_test: 4, min_s: 5, max_s: 6}}
  epochs: 1
  batch_size: 4
  d: 16
  tap_dim: 16
  pooling: tap
  loss: sigmoid
param_space:
  lr_audio: {{type: grid, values: [1.0e-4]}}
searcher: grid
scheduler: {{type: none}}
metric: val/t2a/map10
mode: max
""")
    common = ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--cache-dir", str(tmp_path / "cache"),
              "--storage-path", str(tmp_path / "ray_results")]
    assert main([str(spec), *common]) == 0
    client, parents, children = runs(tmp_path, "tiny_passt")
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    m = children[0].data.metrics
    assert 0.0 <= m["test/t2a/map10"] <= 1.0 and 0.0 <= m["test/zeroshot/t2a/map10"] <= 1.0
    params = children[0].data.params
    assert params["audio_encoder"] == "passt" and params["pooling"] == "tap" and params["loss"] == "sigmoid"
