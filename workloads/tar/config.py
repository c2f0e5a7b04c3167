"""The text-to-audio retrieval workload's configuration (thesis sections 3.1-3.9); light: imported
by the CLI to validate a sweep before anything heavy loads."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TarConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # data
    audio_encoder: str = "atst_frame"
    audio_encoder_params: dict[str, Any] = {}
    # ATST-Frame only: clamp the dB log-mel to [low, high] before min-max scaling, as the thesis'
    # code does ([-50, 80]; the official ATST extractor does not). Its own field, so that
    # --set audio_encoder_params={checkpoint: ...} does not drop it.
    atst_db_clamp: tuple[float, float] | None = None
    text_encoder: str = "roberta-large"
    text_pooling: Literal["mean", "cls"] = "cls"
    max_tokens: int = Field(32, ge=4)
    corpus_options: dict[str, Any] = {}  # e.g. local sizes {"n_train": 300, ...}
    # model (3.1, 3.6)
    d: int = Field(1024, ge=1)
    pooling: Literal["mean", "tap"] = "mean"
    tap_dim: int = Field(2048, ge=1)
    tap_dropout: float = Field(0.05, ge=0, lt=1)
    # loss (3.5)
    loss: Literal["ntxent", "sigmoid"] = "ntxent"
    tau: float = Field(0.05, gt=0)
    # NT-Xent with several positives per row (a clip with two captions in the batch):
    # "per_positive" = the thesis' code (salsa), log-softmax averaged over each positive entry;
    # "pooled" = all positives in one log (the row may put its mass on either copy)
    ntxent_positives: Literal["per_positive", "pooled"] = "per_positive"
    sigmoid_t: float = 1.0
    sigmoid_b: float = -10.0
    # similarities are multiplied by this before exp(t) and b: the thesis' code feeds C / tau
    # (tau = 0.05, so 20) to the sigmoid loss; eq. (3.3) reads as 1
    sigmoid_input_scale: float = Field(20.0, gt=0)
    lr_loss: float = Field(0.1, gt=0)
    # optimisation (3.9)
    lr: float = Field(2e-5, gt=0)  # global: projections and TAP
    lr_audio: float = Field(2e-5, gt=0)
    lr_text: float = Field(2e-5, gt=0)
    lr_min: float = Field(1e-7, ge=0)  # every parameter group decays to this absolute LR
    # the thesis' code (beta2 = 0.999, PyTorch's default); its text says "(0.9, 0.99)"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    epochs: int = Field(20, ge=1)
    eval_every: int = Field(1, ge=1)
    # global batch: N Train workers each take batch_size / N pairs and the loss is computed on
    # the gathered batch, so the loss does not depend on N
    batch_size: int = Field(16, ge=2)
    captions_per_clip: int = Field(5, ge=1, le=5)  # training pairs per clip per epoch (5: every caption)
    seed: int = 0
