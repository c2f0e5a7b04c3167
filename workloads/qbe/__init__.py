"""Query-by-example search with acoustic word embeddings (Öberg 2025): frozen encoder, triplet head."""

from pathlib import Path

from orchestrator.registry import WorkloadInfo
from workloads.qbe.config import QbEConfig

INFO = WorkloadInfo(
    name="qbe",
    config_cls=QbEConfig,
    regime="frozen",
    profiles_file=Path(__file__).with_name("profiles.yaml"),
    impl="workloads.qbe.workload:QbEWorkload",
    data_fields=("dataset", "encoder", "encoder_model", "n_words"),
)
