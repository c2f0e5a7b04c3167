"""The QbE workload's configuration (thesis sections 3.3-3.5); light: imported by the CLI to
validate a sweep before anything heavy loads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Section 3.5 names "KBLab/wav2vec2-voxrex-swedish", an id that does not exist on the Hub. Of the
# two VoxRex releases, the thesis' praise of its transcription accuracy (3.2.2) and its use as the
# WhisperX alignment backend (3.3.2, which needs a CTC head) point to the CTC fine-tuned
# KBLab/wav2vec2-large-voxrex-swedish, not the self-supervised KBLab/wav2vec2-large-voxrex (still
# selectable with encoder_model). Recorded as the tag choice.encoder (profiles.yaml).
PAPER_ENCODERS = {  # section 3.5: one pretrained wav2vec 2.0 per dataset
    "swedish": "KBLab/wav2vec2-large-voxrex-swedish",
    "multilingual": "facebook/wav2vec2-xls-r-300m",
}


class QbEConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # data
    dataset: Literal["swedish", "multilingual"] = "swedish"
    encoder: str = "wav2vec2"
    encoder_model: str | None = None  # HF id / path for wav2vec2; None = the thesis' model per dataset
    n_words: int | None = Field(None, ge=6)  # local corpus size (unique words per language); None = default
    # model (3.4.1)
    hidden_dim: int = Field(512, ge=1)
    out_dim: int = Field(256, ge=1)
    # training (3.4.2); batch_size and triplets_per_epoch are global: N Train workers each draw
    # 1/N of them from their own words (see QbEWorkload.shard_train)
    lr: float = Field(1e-4, gt=0)
    batch_size: int = Field(2048, ge=2)
    epochs: int = Field(1500, ge=1)
    eval_every: int = Field(20, ge=1)
    triplets_per_epoch: int | None = Field(None, ge=1)  # None: one triplet per training item
    margin_start: float = Field(0.55, ge=0)
    margin_end: float = Field(0.8, ge=0)
    # semi-hard negatives: share and band at the END of training (3.4.2's 40 %, 0.5-0.8); the
    # *_start fields, when set, anneal them linearly from their start values over the epochs
    # like the margin (4.1, 4.4.3); None = constant
    semi_hard_share: float = Field(0.4, ge=0, le=1)
    band_low: float = Field(0.5, ge=-1, le=1)
    band_high: float = Field(0.8, ge=-1, le=1)
    semi_hard_share_start: float | None = Field(None, ge=0, le=1)
    band_low_start: float | None = Field(None, ge=-1, le=1)
    band_high_start: float | None = Field(None, ge=-1, le=1)
    # "cosine": the band is absolute cosine (the thesis); "percentile": the band's ends are
    # quantiles (0-1) of each anchor's cosines to other words, for encoders whose cosines are all high
    band_mode: Literal["cosine", "percentile"] = "cosine"
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "QbEConfig":
        if not self.band_low < self.band_high:
            raise ValueError(f"band_low ({self.band_low}) must be < band_high ({self.band_high})")
        lo0 = self.band_low if self.band_low_start is None else self.band_low_start
        hi0 = self.band_high if self.band_high_start is None else self.band_high_start
        if not lo0 < hi0:
            raise ValueError(f"the band at epoch 0 ({lo0}, {hi0}) must have low < high")
        if self.band_mode == "percentile" and min(self.band_low, lo0) < 0:
            raise ValueError("band_mode=percentile: band_low / band_low_start are quantiles in [0, 1]")
        return self
