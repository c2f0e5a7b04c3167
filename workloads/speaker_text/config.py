"""The speaker-text retrieval workload's configuration (Liu et al., sections II-III); light: the CLI
imports it to validate a sweep before anything heavy loads, so it imports only pydantic.

One ``system`` field names a row of the paper's Table I and fixes what differs between rows (which
audio encoder feeds the speaker branch, which loss trains the link), so the whole table is one
grid over ``system`` x seeds. Everything else (encoders per role, network sizes, the loss
constants) is shared by the rows and can be set per profile or per sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AudioRole = Literal["speaker", "pann", "wav2vec", "clap"]
LossName = Literal["unlinked", "cts", "cts_aam", "supcon", "zero_shot", "bce"]


@dataclass(frozen=True)
class System:
    """A row of Table I: the audio encoder role it reads and the objective that links it."""

    audio: AudioRole
    loss: LossName
    loss_label: str  # as Table I writes it
    row_label: str = ""  # Table I's System column when it is not the key ("[8]")


SYSTEMS: dict[str, System] = {
    # [8]: CLAP (HTSAT audio, RoBERTa text) as released, and fine-tuned on the training speakers
    # with a binary cross-entropy loss (footnote 10): both CLAP towers frozen, its two projection
    # heads trained (workloads/speaker_text/clap_heads.py)
    "CLAP": System("clap", "zero_shot", "- (zero-shot)", "[8] CLAP"),
    "CLAP_ft": System("clap", "bce", "BCE (fine-tuned heads)", "[8] CLAP (fine-tuned)"),
    "B00": System("speaker", "unlinked", "(unlinked, LDA)"),
    "B01": System("pann", "cts", "L_CTS,tot"),
    "B02": System("wav2vec", "cts", "L_CTS,tot"),
    "B03": System("speaker", "cts", "L_CTS,tot"),
    "C01": System("speaker", "cts_aam", "L_CTS,tot^spk (AAM-softmax)"),
    "C02": System("speaker", "supcon", "L_CTS,tot^sup (SupCon)"),
}
ROLE_LABELS = {"speaker": "ECAPA-TDNN", "pann": "PANN", "wav2vec": "Wav2Vec2.0", "clap": "HTSAT [13] (CLAP)"}  # the paper's names
PAPER_ENCODERS = {"speaker": "ecapa_tdnn", "pann": "cnn14", "wav2vec": "wav2vec2", "clap": "clap_audio"}  # ... as registered encoders


class SpeakerTextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: Literal["CLAP", "CLAP_ft", "B00", "B01", "B02", "B03", "C01", "C02"] = "B03"

    # data: the corpus (local profile: the synthetic eSpeak corpus; paper: VoxCeleb1, or a CSV of
    # one's own, e.g. CSJ) and one frozen encoder per role (paper encoders by default)
    dataset: Literal["voxceleb1", "csv"] = "voxceleb1"  # paper profile only
    corpus_options: dict[str, Any] = {}
    speaker_encoder: str = "ecapa_tdnn"  # needs speaker_encoder_params={source: <SpeechBrain dir>}
    speaker_encoder_params: dict[str, Any] = {}
    pann_encoder: str = "cnn14"  # needs pann_encoder_params={checkpoint: <Cnn14_mAP=0.431.pth>}
    pann_encoder_params: dict[str, Any] = {}
    wav2vec_encoder: str = "wav2vec2"
    wav2vec_encoder_params: dict[str, Any] = {"model": "facebook/wav2vec2-large-960h", "output": "extract_features"}
    text_encoder: str = "hf"
    text_encoder_params: dict[str, Any] = {"model": "bert-base-uncased", "pooling": "mean"}
    # [8]'s rows read both towers of one CLAP checkpoint (HF id in the local cache, or a directory),
    # as the pooled features its projection heads take (the heads are the model: clap_heads.py)
    clap_model: str = "laion/clap-htsat-unfused"

    # network (II-A, III-B): per modality an FC projection to proj_dim, then n_transform FC layers
    proj_dim: int = Field(768, ge=2)
    n_transform: int = Field(2, ge=1)

    # loss (II-A, II-B)
    tau: float = Field(0.07, gt=0)  # the fixed temperature, or the learned one's initial value
    learn_tau: bool = False
    aam_lambda: float = Field(0.1, ge=0)  # C01: L + lambda * L_spk (III-B: 0.1)
    # angular: AAM-softmax, cos(theta + m), the name the paper uses; additive: AM-softmax,
    # cos(theta) - m, the paper's citation [18]
    aam_variant: Literal["angular", "additive"] = "angular"
    aam_margin: float = Field(0.2, ge=0, lt=1.5)
    aam_scale: float = Field(30.0, gt=0)
    aam_inputs: Literal["speaker", "both"] = "speaker"  # which projection outputs the classifier sees

    # optimisation (not stated in the paper)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    epochs: int = Field(40, ge=1)
    eval_every: int = Field(5, ge=1)
    sampler: Literal["auto", "random", "pk"] = "auto"  # auto: pk for C02 (SupCon), random otherwise
    batch_size: int = Field(64, ge=2)  # random sampler
    pk_speakers: int = Field(16, ge=2)  # pk sampler: P speakers x K utterances per batch
    pk_utterances: int = Field(4, ge=1)

    # inference (II-A, III-B): evaluation-only fields
    fusion_n: int = Field(10, ge=1)
    # the paper's literal reading by default: a fused query is the average of its top-N items of
    # the other modality alone, against the unfused database; the reading used first adds the
    # query's own embedding back (fusion_keep_query) and fuses the database side (fuse_database)
    fusion_keep_query: bool = False
    fuse_database: bool = False
    lda_dim: int | None = Field(None, ge=1)  # B00; None: the speaker embedding size, capped by LDA
    tsne_speakers: int = Field(5, ge=0)  # Fig. 3; 0: no figure

    seed: int = 0

    @property
    def spec(self) -> System:
        return SYSTEMS[self.system]

    def audio_encoder(self) -> tuple[str, dict[str, Any]]:
        """The (encoder, params) of the audio role this system reads."""
        return {"speaker": (self.speaker_encoder, self.speaker_encoder_params),
                "pann": (self.pann_encoder, self.pann_encoder_params),
                "wav2vec": (self.wav2vec_encoder, self.wav2vec_encoder_params),
                "clap": ("clap_audio", {"model": self.clap_model, "output": "pooled"})}[self.spec.audio]

    def text_encoder_for_system(self) -> tuple[str, dict[str, Any]]:
        """The (encoder, params) of the text view: CLAP's own text tower for [8]'s rows."""
        if self.spec.audio == "clap":
            return "clap_text", {"model": self.clap_model, "output": "pooled"}
        return self.text_encoder, self.text_encoder_params

    def resolved_sampler(self) -> Literal["random", "pk"]:
        if self.sampler != "auto":
            return self.sampler
        return "pk" if self.spec.loss == "supcon" else "random"
