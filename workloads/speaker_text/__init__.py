"""Speaker-text retrieval (Liu et al., "Speaker-Text Retrieval via Contrastive Learning"): frozen
speaker and text encoders linked by a small contrastive network; corpora pairing speakers' audio
with free-text descriptions of the speaker.

Importing this package stays light (config + pydantic only): the CLI reads ``INFO`` to validate a
sweep before torch or Ray load; the implementation is ``workloads.speaker_text.workload``.
"""

from pathlib import Path

from orchestrator.registry import WorkloadInfo
from workloads.speaker_text.config import SpeakerTextConfig

INFO = WorkloadInfo(
    name="speaker_text",
    config_cls=SpeakerTextConfig,
    regime="frozen",
    profiles_file=Path(__file__).with_name("profiles.yaml"),
    impl="workloads.speaker_text.workload:SpeakerTextWorkload",
    data_fields=("system", "dataset", "corpus_options", "speaker_encoder", "speaker_encoder_params",
                 "pann_encoder", "pann_encoder_params", "wav2vec_encoder", "wav2vec_encoder_params",
                 "text_encoder", "text_encoder_params", "clap_model"),
    inference_fields=("fusion_n", "fusion_keep_query", "fuse_database", "lda_dim", "tsne_speakers"),
)
