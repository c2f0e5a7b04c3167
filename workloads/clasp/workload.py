"""CLASP (Abootorabi & Asgari, ECIR 2025): text queries retrieve the speech that says them, as a recipe.

config -> data (views: mean-pooled SSL speech embedding, EfficientNet over the spectrogram image,
the frozen multilingual text encoder over the English transcript = the training target, and over
its translation when the queries are in another language; sec. 3.2) -> model (fusion encoder
network: per-modality feed-forward branches, then concatenation or LSTM-inspired softmax gating,
output in the text encoder's space; Fig. 2; the text space raw, or centred / z-scored with training
statistics: :mod:`.targets`) -> loss (LASP: Huber onto the text embedding; CLASP:
symmetric contrastive, cosines divided by a temperature) -> optimisation (Adam, batch 32, at most
50 epochs, the checkpoint with the lowest validation loss is tested: early stopping) ->
validation (loss, retrieval, and the Macro-F1 threshold chosen on validation) -> evaluation
(HITS@1, MRR, meanR with 5 random candidates or all test items; Macro-F1 of "relevant" at cosine
0.5 and at the validation threshold; sec. 3.3) -> the Table 2 layouts (:mod:`.tables`).

The ASR baseline (stage 3) is ``system: asr``: nothing trains; the clips of the evaluation splits
are transcribed once (:mod:`.asr_baseline`, a derived corpus with the transcripts in its
manifest), the transcripts are embedded by the same text encoder, and the same evaluation runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import nn

from orchestrator import retrieval
from orchestrator.distributed import gather_no_grad, gather_with_grad
from orchestrator.workload import DataSpec, ViewSpec, Workload
from workloads.clasp import INFO, common_voice, corpus_local, fleurs_sentences, speech_brown  # noqa: F401  (corpora)
from workloads.clasp import asr_baseline, combined  # noqa: F401  (register clasp_asr, clasp_combined)
from workloads.clasp.candidates import negatives_of, sample_candidates
from workloads.clasp.config import ClaspConfig
from workloads.clasp.fusion import FusionEncoder
from workloads.clasp.losses import Temperature, contrastive_loss, huber_loss
from workloads.clasp.metrics import (
    best_threshold,
    macro_f1,
    macro_f1_all_pairs,
    pair_scores,
    ranks_all,
    ranks_sampled,
    ranks_speech_to_text,
    retrieval_metrics,
)
from workloads.clasp.tables import result_table, summary_tables
from workloads.clasp.targets import TextTargets

VAL_KEYS = ("hits1", "mrr", "mean_rank", "macro_f1_at_fixed", "macro_f1_at_val", "val_threshold")
# text encoders that do not cover some stage-4 query language (a row to flag, not to hide)
UNCOVERED_LANGUAGES = {"use_multilingual": {"fa"}}


@dataclass
class ClaspData:
    """One split: each item's speech inputs, its sentence's text embedding (the training target),
    the query in the configured language, and the ASR transcripts where they were made."""

    ids: list[str]
    categories: list[str]
    references: list[str]  # the English sentence
    groups: np.ndarray  # [N] int64: items with equal ids say the same sentence (global across workers)
    text: np.ndarray  # [N, Dt] English sentence embedding
    query: np.ndarray  # [N, Dt] query embedding (= text for English queries)
    ssl: np.ndarray | None = None  # [N, Ds]
    spectrogram: np.ndarray | None = None  # [N, Dp]
    transcripts: dict[str, list[str | None]] = field(default_factory=dict)  # ASR system -> per item

    def __len__(self) -> int:
        return len(self.ids)


def sentence_group(text: str) -> int:
    """A stable 63-bit id of a sentence (whitespace and case folded), equal on every worker."""
    key = " ".join(text.lower().split())
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little") & (2**63 - 1)


def _pooled(table: pa.Table, column: str) -> np.ndarray:
    col = table.column(column).combine_chunks()
    return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size).astype(np.float32)


def _first_text_embedding(table: pa.Table, column: str) -> np.ndarray:
    """The first text's embedding per item (CLASP items have one sentence; a translation file may
    list several renderings, and the first is the query)."""
    return np.asarray([np.asarray(v[0], np.float32) for v in table.column(column).to_pylist()], np.float32)


class ClaspNet(nn.Module):
    """The fusion encoder network plus what is fitted or chosen with it: the contrastive
    temperature, the text-space transform (:mod:`.targets`; its training statistics) and the
    Macro-F1 threshold chosen on validation (buffers travel in the checkpoint)."""

    def __init__(self, cfg: ClaspConfig, in_dims: dict[str, int], out_dim: int) -> None:
        super().__init__()
        self.encoder = FusionEncoder(in_dims, out_dim, fusion=cfg.fusion, width=cfg.width, dropout=cfg.dropout,
                                     activation=cfg.activation)
        self.temperature = Temperature(cfg.temperature, learn=cfg.learn_temperature and cfg.system == "clasp")
        self.targets = TextTargets(cfg.text_targets, out_dim)
        self.register_buffer("val_threshold", torch.tensor([cfg.threshold], dtype=torch.float32))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # the temperature goes through forward so DDP sees a learned one as used; the targets too,
        # so the loss reads them in the model's text space (its fitted statistics) on every worker
        out = {"speech": self.encoder(batch), "temperature": self.temperature()}
        if "text" in batch:
            out["text"] = self.targets(batch["text"])
        return out

    @torch.no_grad()
    def embed(self, data: ClaspData, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray | None]:
        """Speech embeddings of a split (eval mode) and, for gating, the mean weight per modality."""
        self.eval()
        device = next(self.parameters()).device
        inputs = {m: getattr(data, m) for m in self.encoder.modalities}
        outs, weights = [], []
        for s in range(0, len(data), chunk):
            batch = {m: torch.from_numpy(x[s:s + chunk]).to(device) for m, x in inputs.items()}
            z, w = self.encoder.forward_with_weights(batch)
            outs.append(z.float().cpu().numpy())
            if w is not None:  # [B, M]: each modality's share of the total weight (per-dimension softmax:
                # its mean weight over dimensions; gating_lstm's one softmax: its summed weight)
                weights.append((w.sum(dim=2) / w.sum(dim=(1, 2))[:, None]).cpu().numpy())
        return np.concatenate(outs), (np.concatenate(weights).mean(axis=0) if weights else None)


class TranscriptBaseline(nn.Module):
    """The ASR baseline as a model: nothing to learn, only the validation thresholds (one per ASR
    system) and the text-space transform's training statistics to carry from validation to test."""

    def __init__(self, cfg: ClaspConfig, text_dim: int) -> None:
        super().__init__()
        self.systems = sorted(cfg.asr_models)
        self.targets = TextTargets(cfg.text_targets, text_dim)
        self.register_buffer("val_threshold", torch.full((len(self.systems),), cfg.threshold, dtype=torch.float32))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise RuntimeError("the ASR baseline does not train")


class ClaspWorkload(Workload):
    info = INFO

    # -- data --------------------------------------------------------------------------------
    def data_spec(self, cfg: ClaspConfig, profile: str) -> DataSpec:
        text = cfg.text_choice()
        views = {"text": ViewSpec("text", text.encoder, dict(text.params))}
        if cfg.query_language != "en":  # the translations of the sentences, by the same text encoder
            views["query"] = ViewSpec("text", text.encoder, dict(text.params),
                                      text_source=f"meta:translations.{cfg.query_language}")
        if cfg.system == "asr":
            options = {"base": cfg.corpus, "base_options": dict(cfg.corpus_options),
                       "transcribers": {k: v.model_dump(exclude={"label"}) for k, v in cfg.asr_models.items()}}
            return DataSpec(corpus=asr_baseline.CORPUS_NAME, corpus_options=options, views=views)
        if cfg.modality in ("ssl", "combined"):
            views["ssl"] = ViewSpec("audio", cfg.ssl_choice().encoder, dict(cfg.ssl_choice().params))
        if cfg.modality in ("spectrogram", "combined"):
            views["spectrogram"] = ViewSpec("audio", cfg.spectrogram.encoder, dict(cfg.spectrogram.params))
        return DataSpec(corpus=cfg.corpus, corpus_options=dict(cfg.corpus_options), views=views)

    def to_data(self, table: pa.Table) -> ClaspData:
        cols = set(table.column_names)
        references = [ts[0] for ts in table.column("text.text").to_pylist()]
        text = _first_text_embedding(table, "text")
        transcripts: dict[str, list[str | None]] = {}
        for k, meta in enumerate(table.column("meta").to_pylist()):
            for name, t in (json.loads(meta).get("asr", {}) if meta else {}).items():
                transcripts.setdefault(name, [None] * table.num_rows)[k] = t
        return ClaspData(
            ids=table.column("id").to_pylist(),
            categories=table.column("label").to_pylist(),
            references=references,
            groups=np.asarray([sentence_group(t) for t in references], np.int64),
            text=text,
            query=_first_text_embedding(table, "query") if "query" in cols else text,
            ssl=_pooled(table, "ssl") if "ssl" in cols else None,
            spectrogram=_pooled(table, "spectrogram") if "spectrogram" in cols else None,
            transcripts=transcripts,
        )

    def input_dim(self, data: ClaspData) -> dict[str, int]:
        """The dims the model is built for (kept in the checkpoint, reused at evaluation)."""
        dims = {"text": int(data.text.shape[1])}
        for m in ("ssl", "spectrogram"):
            x = getattr(data, m)
            if x is not None:
                dims[m] = int(x.shape[1])
        return dims

    # -- model -------------------------------------------------------------------------------
    def build_model(self, cfg: ClaspConfig, in_dim: dict[str, int]) -> nn.Module:  # type: ignore[override]
        torch.manual_seed(cfg.seed)
        if cfg.system == "asr":
            return TranscriptBaseline(cfg, in_dim["text"])
        return ClaspNet(cfg, {m: d for m, d in in_dim.items() if m != "text"}, in_dim["text"])

    def fit_closed_form(self, model: nn.Module, train: ClaspData, cfg: ClaspConfig) -> None:
        """The inputs' standardisation statistics and the text space's (``text_targets``), from
        the training items."""
        if isinstance(model, ClaspNet):
            model.encoder.fit_input_statistics({m: getattr(train, m) for m in model.encoder.modalities})
        if isinstance(model, ClaspNet | TranscriptBaseline):
            model.targets.fit(train.text)

    def configure_optimizer(self, model: nn.Module, cfg: ClaspConfig, train: ClaspData
                            ) -> tuple[torch.optim.Optimizer, None]:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay), None

    def epochs(self, cfg: ClaspConfig) -> int:
        return 0 if cfg.system == "asr" else cfg.epochs

    def eval_every(self, cfg: ClaspConfig) -> int:
        return cfg.eval_every

    def patience(self, cfg: ClaspConfig) -> int | None:
        return cfg.patience

    # -- training data -------------------------------------------------------------------------
    def train_batches(self, train: ClaspData, cfg: ClaspConfig, epoch: int,
                      rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        order = rng.permutation(len(train))
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            if len(idx) < 2:  # batch norm cannot normalise a single item
                continue
            batch = {"text": torch.from_numpy(train.text[idx]), "group": torch.from_numpy(train.groups[idx])}
            for m in ("ssl", "spectrogram"):
                x = getattr(train, m)
                if x is not None:
                    batch[m] = torch.from_numpy(x[idx])
            yield batch

    # -- loss ----------------------------------------------------------------------------------
    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], cfg: ClaspConfig,
             epoch: int) -> torch.Tensor:
        target = outputs["text"]  # the batch's text in the model's text space (raw / centred / z-scored)
        if cfg.system == "lasp":
            return huber_loss(outputs["speech"], target, cfg.huber_delta)
        # the contrastive loss sees the global batch, however many Train workers share it
        return contrastive_loss(gather_with_grad(outputs["speech"]), gather_no_grad(target),
                                outputs["temperature"], gather_no_grad(batch["group"]))

    # -- evaluation ----------------------------------------------------------------------------
    def speech_embeddings(self, model: nn.Module, data: ClaspData, cfg: ClaspConfig
                          ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """System name -> speech embeddings in the model's text space: the trained network's output
        (already in that space), or each ASR system's transcripts embedded by the configured text
        encoder and put through the same text transform as the queries (``text_targets``)."""
        if isinstance(model, TranscriptBaseline):
            text = cfg.text_choice()
            out = {}
            for name in model.systems:
                texts = data.transcripts.get(name)
                if texts is None or any(t is None for t in texts):
                    raise ValueError(f"ASR system {name!r} has no transcript for some items of this split")
                emb = asr_baseline.embed_texts([str(t) for t in texts], text.encoder, dict(text.params))
                out[name] = model.targets.numpy(emb)
            return out, None
        emb, weights = model.embed(data)  # type: ignore[operator]
        return {"model": emb}, weights

    def _criterion(self, speech: np.ndarray, text: np.ndarray, data: ClaspData, cfg: ClaspConfig,
                   temperature: float) -> float:
        """The training criterion on a split, batch by batch as in training, at the model's own
        temperature (the learned one with ``learn_temperature``); the ASR baseline is scored with
        CLASP's contrastive criterion at the configured one: it has no loss of its own. ``text``:
        the split's text embeddings in the model's text space (the training targets)."""
        total, n = 0.0, 0
        for s in range(0, len(data), cfg.batch_size):
            sl = slice(s, s + cfg.batch_size)
            z, t = torch.from_numpy(speech[sl]), torch.from_numpy(text[sl])
            if cfg.system == "lasp":
                value = huber_loss(z, t, cfg.huber_delta)
            else:
                value = contrastive_loss(z, t, temperature, torch.from_numpy(data.groups[sl]))
            total += float(value) * len(z)
            n += len(z)
        return total / max(n, 1)

    def _scores(self, speech: np.ndarray, query: np.ndarray, data: ClaspData, cfg: ClaspConfig, salt: str,
                threshold: float | None) -> dict[str, float]:
        """Retrieval in both regimes and Macro-F1 at the fixed threshold (and at ``threshold``).
        ``query``: the split's queries in the model's text space (cosines are taken there)."""
        q, s = retrieval.l2_normalize(query), retrieval.l2_normalize(speech)
        cands, target = sample_candidates(data.groups, cfg.n_candidates, cfg.seed, salt)
        sampled = retrieval_metrics(ranks_sampled(q, s, cands, target))
        everything = retrieval_metrics(ranks_all(q, s, data.groups))
        speech_to_text = retrieval_metrics(ranks_speech_to_text(s, q, data.groups))
        headline = sampled if cfg.candidates == "sampled" else everything
        out = {**headline, **{f"sampled/{k}": v for k, v in sampled.items()},
               **{f"all/{k}": v for k, v in everything.items()},
               **{f"s2t/{k}": v for k, v in speech_to_text.items()}}
        scores, labels = pair_scores(q, s, negatives_of(cands, target))
        out["sampled/macro_f1_at_fixed"] = macro_f1(scores, labels, cfg.threshold)
        if threshold is None:  # chosen on the validation split's sampled pairs (N x N is too many to sort)
            threshold, out["sampled/macro_f1_at_val"] = best_threshold(scores, labels)
        else:
            out["sampled/macro_f1_at_val"] = macro_f1(scores, labels, threshold)
        names = ("macro_f1_at_fixed", "macro_f1_at_val")
        out.update({f"all/{n}": v for n, v in zip(names, macro_f1_all_pairs(q, s, data.groups,
                                                                            [cfg.threshold, threshold]))})
        out.update({n: out[f"{cfg.candidates}/{n}"] for n in names})  # the regime's own pairs
        out["val_threshold"] = float(threshold)
        out["cos_pos_mean"] = float(scores[labels == 1].mean())
        out["cos_neg_mean"] = float(scores[labels == 0].mean())
        return out

    def validate(self, model: nn.Module, val: ClaspData,  # type: ignore[override]
                 cfg: ClaspConfig) -> dict[str, float]:
        """Validation loss (what the checkpoint is chosen by), retrieval, and the Macro-F1
        threshold, which is stored in the model so the checkpoint tests with it."""
        systems, _ = self.speech_embeddings(model, val, cfg)
        targets: TextTargets = model.targets  # type: ignore[assignment]
        query, text = targets.numpy(val.query), targets.numpy(val.text)
        out: dict[str, float] = {}
        losses = []
        for k, (name, speech) in enumerate(systems.items()):
            m = self._scores(speech, query, val, cfg, "val", None)
            model.val_threshold[k] = m["val_threshold"]  # type: ignore[index]
            own = getattr(model, "temperature", None)
            t = float(own().detach()) if own is not None else cfg.temperature
            losses.append(self._criterion(speech, text, val, cfg, t))
            prefix = "val/" if name == "model" else f"val/asr/{name}/"
            out.update({prefix + key: m[key] for key in VAL_KEYS})
        out["val/loss"] = float(np.mean(losses))
        if len(systems) == 1 and "model" not in systems:  # one ASR system: its numbers are the trial's
            name = next(iter(systems))
            out.update({f"val/{k}": out[f"val/asr/{name}/{k}"] for k in VAL_KEYS})
        return out

    def evaluate(self, model: nn.Module, test: ClaspData, cfg: ClaspConfig,  # type: ignore[override]
                 figures: bool = True) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
        systems, weights = self.speech_embeddings(model, test, cfg)
        query = model.targets.numpy(test.query)  # type: ignore[operator]
        metrics: dict[str, float] = {}
        rows: dict[str, dict[str, float]] = {}
        tables: dict[str, Any] = {}
        for k, (name, speech) in enumerate(systems.items()):
            m = self._scores(speech, query, test, cfg, "test", float(model.val_threshold[k]))  # type: ignore[index]
            if name == "model":
                metrics.update({f"test/{key}": v for key, v in m.items()})
                rows[_system_label(cfg)] = m
            else:
                m["wer"] = asr_baseline.word_error_rate(test.references, [str(t) for t in test.transcripts[name]])
                metrics.update({f"test/asr/{name}/{key}": v for key, v in m.items()})
                label = cfg.asr_models[name].label or f"ASR ({name})"
                rows[label if cfg.text_targets == "raw" else f"{label}, {cfg.text_targets} text space"] = m
                tables[f"asr_transcripts_{name}"] = pd.DataFrame(
                    {"id": test.ids, "reference": test.references, "transcript": test.transcripts[name]})
        if "model" not in systems and len(systems) == 1:  # one ASR system: its numbers are the trial's headline
            name = next(iter(systems))
            metrics.update({f"test/{k}": metrics[f"test/asr/{name}/{k}"] for k in self.headline_keys})
        if weights is not None:  # gating: how much each modality contributes, on average
            for mod, w in zip(model.encoder.modalities, weights, strict=True):  # type: ignore[union-attr]
                metrics[f"test/gate_weight/{mod}"] = float(w)
        uncovered = UNCOVERED_LANGUAGES.get(cfg.text_choice().encoder, set())
        metrics["test/query_language_covered"] = float(cfg.query_language not in uncovered)
        tables["clasp_results"] = result_table(rows, cfg)
        return metrics, tables, {}

    # -- a retrieval model (orchestrator.retrieval_model): a text in any language the text encoder
    # covers -> the speech that says it
    query_sides = {"text": "audio"}

    def index_sides(self, model: nn.Module, data: ClaspData, cfg: ClaspConfig) -> dict[str, Any]:
        """The speech items in the model's text space (:meth:`speech_embeddings`, what
        :meth:`evaluate` ranks; the ASR baseline: its first system's transcripts), L2-normalised
        as ranking normalises them."""
        from orchestrator.retrieval_model import IndexSide

        systems, _ = self.speech_embeddings(model, data, cfg)
        speech = retrieval.l2_normalize(next(iter(systems.values())))
        rows = [{"id": i, "item": i, "sentence": ref, "category": cat}
                for i, ref, cat in zip(data.ids, data.references, data.categories)]
        return {"audio": IndexSide(speech, rows, "speech items")}

    def embed_queries(self, model: nn.Module, cfg: ClaspConfig, modality: str, queries: list[Any],
                      encoders: Any) -> np.ndarray:
        """A text through the frozen multilingual text encoder and the model's text-space transform
        (``text_targets``), L2-normalised, as evaluation's queries."""
        x = encoders.embed_texts("text", queries)
        return retrieval.l2_normalize(model.targets.numpy(x))  # type: ignore[operator]

    headline_keys = ("hits1", "mrr", "mean_rank", "macro_f1_at_fixed", "macro_f1_at_val")

    def headline_metrics(self) -> list[str]:
        return [f"test/{k}" for k in self.headline_keys]

    def table_groups(self) -> list[str]:
        return ["clasp_results"]

    def summary_tables(self, trials: pd.DataFrame) -> dict[str, pd.DataFrame]:
        return summary_tables(trials)


def _system_label(cfg: ClaspConfig) -> str:
    """What a trained system is called in its own result table (encoders as they actually ran)."""
    name = {"lasp": "LASP", "clasp": "CLASP"}[cfg.system]
    if cfg.text_targets != "raw":
        name = f"{name}, {cfg.text_targets} targets"
    parts = {"ssl": cfg.ssl_choice().label or cfg.ssl, "spectrogram": cfg.spectrogram.label or "spectrogram"}
    seen = [parts[m] for m in ("ssl", "spectrogram") if cfg.modality in (m, "combined")]
    return (f"{name}: {' + '.join(seen)} -> {cfg.text_choice().label or cfg.text} ({cfg.fusion}, "
            f"queries {cfg.query_language})")
