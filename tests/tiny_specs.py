"""Search spaces of the tiny sweeps that several tests (and ``benchmarks/bench_query.py``) run."""

from __future__ import annotations


def tiny_tar(n_test: int = 4, epochs: int = 1) -> str:
    """One TAR fine-tuning trial on 8 training clips of the local corpus: seconds on 2 cores."""
    return f"""
workload: tar
fixed:
  corpus_options: {{n_train: 8, n_val: 4, n_test: {n_test}, min_s: 5, max_s: 6}}
  epochs: {epochs}
  batch_size: 4
  d: 32
param_space:
  lr_audio: {{type: grid, values: [4.0e-6]}}
searcher: grid
scheduler: {{type: none}}
metric: val/t2a/map10
mode: max
"""
