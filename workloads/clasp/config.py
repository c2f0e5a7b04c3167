"""The CLASP workload's configuration (paper sec. 3.2-3.3); light: the CLI imports it to validate a
sweep before anything heavy loads, so only pydantic and the standard library are used here.

Encoders are chosen by the paper's names (``ssl``: ``hubert`` | ``wav2vec2``; ``text``: ``labse`` |
``xlmr``) and each profile maps a name to a concrete encoder in ``ssl_encoders`` /
``text_encoders``: the search spaces are the same for both profiles, and the local profile's
stand-ins (Whisper tiny.en for HuBERT, multilingual-e5-small for LaBSE, ...) are declared once, in
``profiles.yaml``, next to their ``substitutions``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

QUERY_LANGUAGES = ("en", "de", "fr", "fa", "zh")  # English (the spoken language) + the paper's stage 4


class EncoderChoice(BaseModel):
    """One frozen encoder as a view runs it: a registered name, its parameters, and how tables
    name it (``label``: what actually ran, e.g. "Whisper tiny.en encoder, last layer")."""

    model_config = ConfigDict(extra="forbid")

    encoder: str
    params: dict[str, Any] = {}
    label: str = ""


class TranscriberChoice(BaseModel):
    """One ASR system of the baseline (``orchestrator.encoders.asr`` registry name + parameters)."""

    model_config = ConfigDict(extra="forbid")

    transcriber: str
    params: dict[str, Any] = {}
    label: str = ""


def _default_ssl() -> dict[str, EncoderChoice]:
    return {
        "hubert": EncoderChoice(encoder="wav2vec2", params={"model": "facebook/hubert-large-ls960-ft"},
                                label="HuBERT large (LS-960 fine-tuned)"),
        "wav2vec2": EncoderChoice(encoder="wav2vec2", params={"model": "facebook/wav2vec2-base-960h"},
                                  label="wav2vec 2.0 base (960 h)"),
    }


def _default_text() -> dict[str, EncoderChoice]:
    return {
        "labse": EncoderChoice(encoder="hf", params={"model": "sentence-transformers/LaBSE", "pooling": "pooler",
                                                     "normalize": True}, label="LaBSE"),
        "xlmr": EncoderChoice(encoder="hf", params={"model": "xlm-roberta-base", "pooling": "mean"},
                              label="XLM-RoBERTa base"),
    }


def _default_asr() -> dict[str, TranscriberChoice]:
    return {
        "wav2vec2": TranscriberChoice(transcriber="hf_ctc", params={"model": "facebook/wav2vec2-base-960h"},
                                      label="Wav2Vec2 ASR"),
        "hubert": TranscriberChoice(transcriber="hf_ctc", params={"model": "facebook/hubert-large-ls960-ft"},
                                    label="HuBERT ASR"),
    }


class ClaspConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # ---- data (which views are extracted) --------------------------------------------------
    corpus: str = "clasp_combined"  # the paper's union; clasp_speech_brown / clasp_common_voice / clasp_fleurs alone
    corpus_options: dict[str, Any] = {}
    ssl: Literal["hubert", "wav2vec2"] = "hubert"
    text: Literal["labse", "xlmr"] = "labse"
    ssl_encoders: dict[str, EncoderChoice] = Field(default_factory=_default_ssl)
    text_encoders: dict[str, EncoderChoice] = Field(default_factory=_default_text)
    spectrogram: EncoderChoice = EncoderChoice(encoder="spectrogram_cnn", params={"backbone": "google/efficientnet-b7"},
                                               label="EfficientNet-B7 over the log-mel spectrogram image")
    asr_models: dict[str, TranscriberChoice] = Field(default_factory=_default_asr)
    # ---- system (stage 1: modality; stage 2: fusion; stage 3: loss or the ASR baseline) -----
    modality: Literal["spectrogram", "ssl", "combined"] = "combined"
    # gating: per-dimension softmax over the modalities; gating_lstm: the authors' notebook's LSTM-style
    # input/forget gates per modality, then one softmax over all modalities x dimensions (fusion.py)
    fusion: Literal["concat", "gating", "gating_lstm"] = "concat"
    system: Literal["lasp", "clasp", "asr"] = "clasp"  # Huber (LASP), contrastive (CLASP), transcribe + text search
    # the text space trained towards and scored in (targets.py): raw unit vectors (the paper), or
    # with the training split's mean removed (centred) / per-dimension z-scored (zscore)
    text_targets: Literal["raw", "centred", "zscore"] = "raw"
    # ---- fusion encoder network (Fig. 2) -----------------------------------------------------
    width: int = Field(768, ge=8)
    dropout: float = Field(0.15, ge=0, lt=1)
    activation: Literal["relu", "leaky_relu", "gelu"] = "leaky_relu"
    # ---- losses ------------------------------------------------------------------------------
    huber_delta: float = Field(1.0, gt=0)
    temperature: float = Field(0.07, gt=0, le=10)  # logits = cosine / temperature
    learn_temperature: bool = False
    # ---- optimisation (sec. 3.3: Adam, 5e-6, batch 32; early stopping, at most 50 epochs) ----
    lr: float = Field(5e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(32, ge=2)
    epochs: int = Field(50, ge=1)
    eval_every: int = Field(1, ge=1)
    # early stopping (stages 2-3: "all models were trained with early stopping"): validation rounds
    # without a lower validation loss before training ends; null trains every epoch (stage 1: "all
    # models were trained for 50 epochs"). The paper gives no patience; 5 rounds outlast the
    # validation-loss bumps of the local runs (up to 3 rounds).
    patience: int | None = Field(5, ge=1)
    # ---- evaluation (inference fields) -------------------------------------------------------
    query_language: Literal["en", "de", "fr", "fa", "zh"] = "en"
    candidates: Literal["sampled", "all"] = "all"  # 5 random speech candidates per query (stages 1-2) or all test items
    n_candidates: int = Field(5, ge=2)  # the "sampled" regime's list length, the relevant item included
    threshold: float = Field(0.5, ge=-1, le=1)  # the paper's fixed cosine threshold for Macro-F1
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> "ClaspConfig":
        if self.fusion in ("gating", "gating_lstm") and self.modality != "combined":
            raise ValueError(f"fusion {self.fusion!r} weighs two modalities: it needs modality 'combined'")
        if self.ssl not in self.ssl_encoders:
            raise ValueError(f"ssl {self.ssl!r} is not in ssl_encoders ({sorted(self.ssl_encoders)})")
        if self.text not in self.text_encoders:
            raise ValueError(f"text {self.text!r} is not in text_encoders ({sorted(self.text_encoders)})")
        if self.system == "asr" and not self.asr_models:
            raise ValueError("system 'asr' needs at least one entry in asr_models")
        return self

    def text_choice(self) -> EncoderChoice:
        return self.text_encoders[self.text]

    def ssl_choice(self) -> EncoderChoice:
        return self.ssl_encoders[self.ssl]
