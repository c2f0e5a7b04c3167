"""Text-to-audio retrieval with fine-tuned dual encoders (the ATST/TAP thesis, on salsa)."""

from pathlib import Path

from orchestrator.registry import WorkloadInfo
from workloads.tar.config import TarConfig

INFO = WorkloadInfo(
    name="tar",
    config_cls=TarConfig,
    regime="finetune",
    profiles_file=Path(__file__).with_name("profiles.yaml"),
    impl="workloads.tar.workload:TarWorkload",
    data_fields=("audio_encoder", "audio_encoder_params", "atst_db_clamp", "corpus_options"),
)
