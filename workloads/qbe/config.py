"""The QbE workload's configuration (thesis sections 3.3-3.5); light: imported by the CLI to
validate a sweep before anything heavy loads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PAPER_ENCODERS = {  # section 3.5: one pretrained wav2vec 2.0 per dataset
    "swedish": "KBLab/wav2vec2-large-voxrex",
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
    # training (3.4.2)
    lr: float = Field(1e-4, gt=0)
    batch_size: int = Field(2048, ge=2)
    epochs: int = Field(1500, ge=1)
    eval_every: int = Field(20, ge=1)
    triplets_per_epoch: int | None = Field(None, ge=1)  # None: one triplet per training item
    margin_start: float = Field(0.55, ge=0)
    margin_end: float = Field(0.8, ge=0)
    semi_hard_share: float = Field(0.4, ge=0, le=1)
    band_low: float = Field(0.5, ge=-1, le=1)
    band_high: float = Field(0.8, ge=-1, le=1)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "QbEConfig":
        if not self.band_low < self.band_high:
            raise ValueError(f"band_low ({self.band_low}) must be < band_high ({self.band_high})")
        return self
