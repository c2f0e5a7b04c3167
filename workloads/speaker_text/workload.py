"""Speaker-text retrieval via contrastive learning (Liu et al.), as a recipe.

config (``system`` = a row of Table I) -> data (utterances through a frozen speaker/audio encoder,
the speaker's descriptions through a frozen text encoder; two views of one corpus) -> model (per
modality FC projection to 768 + FC transform layers, L2-normalised; or, for B00, LDA on the
training speakers) -> loss (L_CTS,tot = L_CTS at the projection + at the transform outputs;
+ 0.1 AAM-softmax for C01; the supervised contrastive version for C02) -> validation (mAP@10 of
both directions, every ``eval_every`` epochs, keep the best) -> evaluation (s->t and t->s, original
and fused: mAP@10 and MeanR, Table I's 8 columns; the text EER of footnote 8; the t-SNE panels of
Fig. 3, drawn once per system on the sweep's parent run).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from orchestrator.distributed import gather_no_grad, gather_with_grad
from orchestrator.workload import DataSpec, ViewSpec, Workload
from workloads.speaker_text import INFO, corpus_local, csv_corpus, voxceleb  # noqa: F401  (register the corpora)
from workloads.speaker_text import data as D
from workloads.speaker_text.config import SYSTEMS, SpeakerTextConfig
from workloads.speaker_text.clap_heads import ClapHeads, pair_bce
from workloads.speaker_text.figures import fusion_curve, tsne_figure
from workloads.speaker_text.fusion import SearchFusion, fuse
from workloads.speaker_text.lda import UnlinkedLDA
from workloads.speaker_text.losses import aam_softmax, am_softmax, cts, supcon_cts
from workloads.speaker_text.metrics import (
    LAYOUTS,
    chance_row,
    encoder_label,
    retrieval_metrics,
    table_one,
    table_row,
    text_eer,
)
from workloads.speaker_text.model import LinkingNetwork

CORPORA = {"voxceleb1": voxceleb.CORPUS_NAME, "csv": csv_corpus.CORPUS_NAME}
# The audio view is not called "speaker": the joined table already has the manifest's "speaker"
# column (the speaker id), and a view's column takes the view's name.
AUDIO_VIEW, TEXT_VIEW = "audio", "text"


def _share(global_size: int, world: int, name: str) -> int:
    if global_size % world:
        raise ValueError(f"{name} {global_size} (global) must be divisible by the {world} Train workers")
    return global_size // world


def _gathered(outputs: dict[str, torch.Tensor], cfg: SpeakerTextConfig) -> dict[str, torch.Tensor]:
    """The embeddings (and AAM cosines) of every worker's batch share, in rank order."""
    out = {k: gather_with_grad(outputs[k]) for k in ("s_p", "t_p", "s_t", "t_t") if k in outputs}
    out.update({k: outputs[k] for k in ("scale", "bias") if k in outputs})
    if "spk_cos" in outputs:  # with aam_inputs=both: [speaker rows; text rows], gathered per half
        halves = outputs["spk_cos"].chunk(1 if cfg.aam_inputs == "speaker" else 2)
        out["spk_cos"] = torch.cat([gather_with_grad(h) for h in halves])
    return out


def table_name(cfg: SpeakerTextConfig) -> str:
    """The paper's Table I is English (VoxCeleb1), its Table II Japanese (CSJ): the same layout."""
    return "table_2" if cfg.corpus_options.get("language") == "ja" else "table_1"


class SpeakerTextWorkload(Workload):
    info = INFO
    # every worker sees all training rows and keeps whole speakers (P x K batches, AAM labels)
    splits_train_itself = True

    def __init__(self) -> None:
        # system -> the audio encoder its data used; the driver's data_spec calls fill it, so the
        # parent's Table I can name stand-ins (its trial rows carry only params and metrics)
        self._encoders: dict[str, str] = {}
        self._table = "table_1"  # Table II when the descriptions are Japanese (cts_systems_ja)

    # -- data --------------------------------------------------------------------------------
    def data_spec(self, cfg: SpeakerTextConfig, profile: str) -> DataSpec:
        encoder, params = cfg.audio_encoder()
        self._encoders[cfg.system] = encoder
        self._table = table_name(cfg)
        corpus = corpus_local.CORPUS_NAME if profile == "local" else CORPORA[cfg.dataset]
        text_encoder, text_params = cfg.text_encoder_for_system()
        return DataSpec(corpus, corpus_options=dict(cfg.corpus_options), views={
            AUDIO_VIEW: ViewSpec("audio", encoder, dict(params)),
            TEXT_VIEW: ViewSpec("text", text_encoder, dict(text_params)),
        })

    def to_data(self, table: pa.Table) -> D.SpeakerTextData:
        return D.from_table(table, AUDIO_VIEW, TEXT_VIEW)

    def input_dim(self, data: D.SpeakerTextData) -> dict[str, int]:
        """Saved in the checkpoint: evaluation rebuilds the same shapes (the AAM classifier and the
        LDA buffers are sized by the training speakers, which the test split does not have)."""
        return {"speaker": int(data.speaker_x.shape[1]), "text": int(data.text_x.shape[1]),
                "n_speakers": int(data.n_speakers_total)}

    def shard_train(self, train: D.SpeakerTextData, rank: int, world_size: int) -> D.SpeakerTextData:
        return D.shard(train, rank, world_size)

    # -- model -------------------------------------------------------------------------------
    def build_model(self, cfg: SpeakerTextConfig, in_dim: Any) -> torch.nn.Module:
        dims = dict(in_dim)
        if cfg.spec.loss == "unlinked":
            return UnlinkedLDA(dims["speaker"], dims["text"], dims["n_speakers"])
        if cfg.spec.audio == "clap":
            return ClapHeads(cfg)
        return LinkingNetwork(dims["speaker"], dims["text"], dims["n_speakers"], cfg)

    def fit_closed_form(self, model: torch.nn.Module, train: D.SpeakerTextData, cfg: SpeakerTextConfig) -> None:
        if isinstance(model, UnlinkedLDA):
            model.fit(train.speaker_x, train.labels, train.text_x, train.text_labels)

    def configure_optimizer(self, model: torch.nn.Module, cfg: SpeakerTextConfig, train: D.SpeakerTextData
                            ) -> tuple[torch.optim.Optimizer, None]:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay), None

    def epochs(self, cfg: SpeakerTextConfig) -> int:
        # B00 is fitted and [8] zero-shot is CLAP as released: neither trains
        return 0 if cfg.spec.loss in ("unlinked", "zero_shot") else cfg.epochs

    def eval_every(self, cfg: SpeakerTextConfig) -> int:
        return cfg.eval_every

    def train_batches(self, train: D.SpeakerTextData, cfg: SpeakerTextConfig, epoch: int,
                      rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        """This worker's share of each global batch (``batch_size`` utterances, or ``pk_speakers``
        x ``pk_utterances``): the loss gathers every worker's share, so it sees the batch one worker
        would."""
        world = train.world_size
        if cfg.resolved_sampler() == "pk":
            return D.pk_batches(train, _share(cfg.pk_speakers, world, "pk_speakers"), cfg.pk_utterances, rng)
        return D.random_batches(train, _share(cfg.batch_size, world, "batch_size"), rng)

    # -- loss (eq. 3, 4, 6) ------------------------------------------------------------------
    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], cfg: SpeakerTextConfig,
             epoch: int) -> torch.Tensor:
        # gathered across Train workers (identity alone): every worker computes the global batch's
        # loss, whose gradients DDP's averaging turns into the single-worker ones
        outputs = _gathered(outputs, cfg)
        scale, labels = outputs["scale"], gather_no_grad(batch["labels"])
        if cfg.spec.loss == "bce":
            return pair_bce(outputs["s_p"], outputs["t_p"], labels, scale, outputs["bias"])
        if cfg.spec.loss == "supcon":
            return (supcon_cts(outputs["s_p"], outputs["t_p"], labels, scale)
                    + supcon_cts(outputs["s_t"], outputs["t_t"], labels, scale))
        total = cts(outputs["s_p"], outputs["t_p"], scale) + cts(outputs["s_t"], outputs["t_t"], scale)
        if cfg.spec.loss == "cts_aam":
            spk_labels = labels if cfg.aam_inputs == "speaker" else torch.cat([labels, labels])
            margin_softmax = aam_softmax if cfg.aam_variant == "angular" else am_softmax
            total = total + cfg.aam_lambda * margin_softmax(outputs["spk_cos"], spk_labels, cfg.aam_margin,
                                                            cfg.aam_scale)
        return total

    # -- evaluation --------------------------------------------------------------------------
    def _metrics(self, model: torch.nn.Module, data: D.SpeakerTextData, cfg: SpeakerTextConfig
                 ) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
        s, t = model.search_space(data.speaker_x, data.text_x, cfg)  # type: ignore[operator]
        m = retrieval_metrics(s, data.labels, t, data.text_labels, cfg.fusion_n, cfg.fuse_database,
                              cfg.fusion_keep_query)
        return m, s, t

    def validate(self, model: torch.nn.Module, val: D.SpeakerTextData, cfg: SpeakerTextConfig) -> dict[str, float]:
        """Both layouts and directions, original and fused; ``val/map10`` (the mean of the two
        original mAP@10s of the utterance layout, which has 6x the queries of the speaker-item
        layout) is what cts_systems selects checkpoints on, since Table I weighs them equally."""
        m, _, _ = self._metrics(model, val, cfg)
        out = {f"val/{k}": v for k, v in m.items() if not k.startswith("chance/")}
        out["val/map10"] = 0.5 * (m["utt/s2t/map10"] + m["utt/t2s/map10"])
        return out

    def evaluate(self, model: torch.nn.Module, test: D.SpeakerTextData, cfg: SpeakerTextConfig, figures: bool = True
                 ) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
        m, s, t = self._metrics(model, test, cfg)
        metrics = {f"test/{k}": v for k, v in m.items()}
        metrics.update({"test/n_speakers": float(len(test.speakers)), "test/n_utterances": float(len(test)),
                        "test/n_descriptions": float(len(test.texts)),
                        "test/text_eer": text_eer(test.text_x, test.text_labels)})
        if isinstance(model, UnlinkedLDA):
            metrics["test/lda_dim"] = float(model.dims(cfg.lda_dim))
        row = table_row(cfg.system, encoder_label(cfg.system, {cfg.system: cfg.audio_encoder()[0]}), metrics)
        tables = {table_name(cfg): pd.DataFrame([row, chance_row(metrics)])}
        drawn = {"tsne": self._tsne(test, s, t, cfg)} if figures and cfg.tsne_speakers else {}
        return metrics, tables, drawn

    # -- a retrieval model (orchestrator.retrieval_model): description -> utterances, utterance ->
    # descriptions (the utterance layout, utt/...); fused as evaluated when the model was selected
    # by a fused metric (fusion_n), else ranked in the unfused search space
    query_sides = {"text": "audio", "audio": "text"}

    def query_fusion(self, cfg: SpeakerTextConfig, selection_metric: str) -> SearchFusion | None:
        return SearchFusion.for_metric(selection_metric, cfg.fusion_n, cfg.fusion_keep_query, cfg.fuse_database)

    def index_sides(self, model: torch.nn.Module, data: D.SpeakerTextData, cfg: SpeakerTextConfig
                    ) -> dict[str, Any]:
        """Utterances and descriptions in the search space (``model.search_space``, what
        :meth:`evaluate` ranks); unit vectors, so inner product is the cosine."""
        from orchestrator.retrieval_model import IndexSide

        s, t = model.search_space(data.speaker_x, data.text_x, cfg)  # type: ignore[operator]
        utterances = [{"id": i, "item": i, "speaker": data.speakers[int(lab)]} for i, lab in zip(data.ids, data.labels)]
        descriptions = [{"id": f"{data.speakers[int(lab)]}#{k}", "item": None, "speaker": data.speakers[int(lab)],
                         "description": text} for k, (text, lab) in enumerate(zip(data.texts, data.text_labels))]
        return {"audio": IndexSide(s, utterances, "utterances (speaker)"),
                "text": IndexSide(t, descriptions, "speaker descriptions")}

    def embed_queries(self, model: torch.nn.Module, cfg: SpeakerTextConfig, modality: str, queries: list[Any],
                      encoders: Any) -> np.ndarray:
        """A description through the frozen text encoder, an utterance through the frozen speaker
        (or audio) encoder, then that side's branch of the search space."""
        dims = encoders.in_dim
        if modality == "text":
            x = encoders.embed_texts(TEXT_VIEW, queries)
            return model.search_space(np.zeros((0, dims["speaker"]), np.float32), x, cfg)[1]  # type: ignore[operator]
        x = encoders.embed_audio(AUDIO_VIEW, queries)
        return model.search_space(x, np.zeros((0, dims["text"]), np.float32), cfg)[0]  # type: ignore[operator]

    def _tsne(self, data: D.SpeakerTextData, s: np.ndarray, t: np.ndarray, cfg: SpeakerTextConfig) -> Any:
        """Fig. 3 for ``tsne_speakers`` evaluation speakers drawn with the trial's seed; the fused
        embeddings are fused against the whole split, as retrieval fuses them."""
        rng = np.random.default_rng(cfg.seed)
        chosen = np.sort(rng.choice(len(data.speakers), size=min(cfg.tsne_speakers, len(data.speakers)),
                                    replace=False))
        remap = {int(c): k for k, c in enumerate(chosen)}
        s_sel, t_sel = np.isin(data.labels, chosen), np.isin(data.text_labels, chosen)
        s_who = np.array([remap[int(x)] for x in data.labels[s_sel]])
        t_who = np.array([remap[int(x)] for x in data.text_labels[t_sel]])
        s_f, t_f = fuse(s, t, cfg.fusion_n, cfg.fusion_keep_query), fuse(t, s, cfg.fusion_n, cfg.fusion_keep_query)
        points = {"speaker": (s[s_sel], s_who), "text": (t[t_sel], t_who),
                  "speaker_fused": (s_f[s_sel], s_who), "text_fused": (t_f[t_sel], t_who)}
        return tsne_figure(points, [data.speakers[c] for c in chosen], cfg.seed,
                           title=f"{cfg.system}, fusion N = {cfg.fusion_n}, seed {cfg.seed}")

    # Fig. 3 once per system on the parent run (from its first seed's best weights), not on every
    # trial: a t-SNE costs seconds, and 18 of them said the same thing per system
    trial_figures = False

    def parent_figure_trials(self, trials: Any, best_trial: str | None) -> dict[str, str]:
        """One trial per system (its lowest seed; the paper draws B03's), or the selected trial
        when the sweep is not over systems."""
        if "system" not in trials or trials.empty:
            return {"selected_trial": best_trial} if best_trial else {}
        ordered = trials.assign(_seed=pd.to_numeric(trials.get("seed", 0), errors="coerce")).sort_values("_seed")
        firsts = ordered.groupby(ordered["system"].astype(str), sort=False)["trial_id"].first()
        return {system: str(firsts[system]) for system in SYSTEMS if system in firsts}

    def headline_metrics(self) -> list[str]:
        return ["test/s2t/map10", "test/t2s/map10", "test/s2t_fused/map10", "test/t2s_fused/map10"]

    def summary_tables(self, trials: Any) -> dict[str, Any]:
        """Table I (a sweep over ``system``) and the fusion table (a sweep over ``fusion_n``)."""
        out: dict[str, Any] = {}
        if "system" in trials and not trials.empty:
            out[self._table] = table_one(trials, self._encoders)
        if "fusion_n" in trials and not trials.empty:
            cols = ["fusion_n", *[c for c in trials.columns if str(c).startswith("best/val/")],
                    *[f"test/{p}{d}/{k}" for p in LAYOUTS for d in ("t2s_fused", "s2t_fused", "t2s", "s2t")
                      for k in ("map10", "meanr")]]
            df = trials[[c for c in cols if c in trials]].copy()
            df["fusion_n"] = pd.to_numeric(df["fusion_n"])
            out["fusion_n"] = df.sort_values("fusion_n").reset_index(drop=True)
        return out

    def summary_figures(self, trials: Any) -> dict[str, Any]:
        fig = fusion_curve(trials)
        return {"fusion_curve": fig} if fig is not None else {}
