"""Query-by-example search with acoustic word embeddings (Öberg 2025, KTH thesis), as a recipe.

config -> data (word segments through a frozen speech encoder, mean-pooled; section 3.3.4)
-> model (MLP in->512->256 + L2 norm; 3.4.1) -> loss (triplet margin on L2 distance, margin
annealed 0.55 -> 0.8, 40 % semi-hard negatives with cosine 0.5-0.8 to the anchor, optionally
annealed too; 3.4.2, 4.4.3) -> validation (silhouette against the word labels every k epochs, keep
the best) -> evaluation (clustering and QbE retrieval on unseen test words, original vs
transformed; 3.5, Tables 4.2-4.5).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.metrics import silhouette_score

from orchestrator import retrieval
from orchestrator.cache import EmbeddingSet
from orchestrator.workload import DataSpec, ViewSpec, Workload
from workloads.qbe import INFO, corpus_local, fleurs  # noqa: F401  (register the corpora)
from workloads.qbe.config import PAPER_ENCODERS, QbEConfig
from workloads.qbe.evaluate import evaluate_qbe
from workloads.qbe.loss import annealed_margin, linear_schedule, triplet_margin_loss
from workloads.qbe.model import EmbeddingHead
from workloads.qbe.triplets import TripletSampler


class TripletNet(torch.nn.Module):
    """The head applied to the three members of each triplet (shared weights)."""

    def __init__(self, head: EmbeddingHead):
        super().__init__()
        self.head = head

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: self.head(batch[k]) for k in ("anchor", "positive", "negative")}

    @torch.no_grad()
    def embed(self, x: np.ndarray) -> np.ndarray:
        device = next(self.parameters()).device
        out = [self.head(torch.from_numpy(x[i:i + 4096]).to(device)).cpu().numpy()
               for i in range(0, len(x), 4096)]
        return np.concatenate(out).astype(np.float32)


class QbEWorkload(Workload):
    info = INFO
    # Triplets are mined within a worker's training rows: a word split across workers would lose
    # positives, so every worker receives all rows and keeps whole words (shard_train).
    splits_train_itself = True

    def __init__(self) -> None:
        self._samplers: dict[int, TripletSampler] = {}
        self._world = 1  # Train workers; batch_size and triplets_per_epoch are split among them
        self._n_train = 0  # training items over all workers (one triplet each per epoch by default)
        self._resumed: dict[str, Any] | None = None  # a retried trial's sampler state (load_training_state)
        self._last_epoch: dict[str, float] = {}  # the latest epoch's triplet mix (epoch_metrics)

    # -- data --------------------------------------------------------------------------------
    def data_spec(self, cfg: QbEConfig, profile: str) -> DataSpec:
        corpus = f"qbe_local_{cfg.dataset}" if profile == "local" else f"qbe_fleurs_{cfg.dataset}"
        options = {"n_words": cfg.n_words} if cfg.n_words else {}
        params: dict[str, Any] = {}
        if cfg.encoder == "wav2vec2":
            params["model"] = cfg.encoder_model or PAPER_ENCODERS[cfg.dataset]
        elif cfg.encoder_model:
            params["model"] = cfg.encoder_model
        return DataSpec(corpus=corpus, corpus_options=options, views={"audio": ViewSpec("audio", cfg.encoder, params)})

    # -- model -------------------------------------------------------------------------------
    def build_model(self, cfg: QbEConfig, in_dim: int) -> TripletNet:
        return TripletNet(EmbeddingHead(in_dim, cfg.hidden_dim, cfg.out_dim))

    def configure_optimizer(self, model: torch.nn.Module, cfg: QbEConfig, train: EmbeddingSet
                            ) -> tuple[torch.optim.Optimizer, None]:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr), None

    def epochs(self, cfg: QbEConfig) -> int:
        return cfg.epochs

    def eval_every(self, cfg: QbEConfig) -> int:
        return cfg.eval_every

    # -- training data: triplets re-sampled every epoch (3.4.2) ------------------------------
    def shard_train(self, train: EmbeddingSet, rank: int, world_size: int) -> EmbeddingSet:
        """This worker's words (round-robin over the sorted vocabulary), all clips of each: every
        anchor keeps all its positives. Negatives are then drawn from this worker's words only."""
        self._world, self._n_train = int(world_size), len(train)
        if world_size == 1:
            return train
        words = np.unique(np.asarray(train.labels))
        if words.size < 2 * world_size:
            raise ValueError(f"{words.size} training words cannot be sharded over {world_size} workers "
                             "(each needs at least two words to draw negatives)")
        mine = np.isin(np.asarray(train.labels), words[rank::world_size])
        idx = np.flatnonzero(mine)
        return EmbeddingSet(ids=[train.ids[i] for i in idx], labels=[train.labels[i] for i in idx],
                            X=train.X[idx], meta=dict(train.meta))

    def hard_triplet_schedule(self, cfg: QbEConfig, epoch: int) -> tuple[float, tuple[float, float]]:
        """Semi-hard share and band at ``epoch``: constant (3.4.2), or annealed linearly from the
        ``*_start`` values to the configured ones (4.1, 4.4.3: "more hard triplets are used over
        epochs", "harder triplets with higher cosine similarity over time")."""
        def ramp(start: float | None, end: float) -> float:
            return end if start is None else linear_schedule(epoch, cfg.epochs, start, end)
        return (ramp(cfg.semi_hard_share_start, cfg.semi_hard_share),
                (ramp(cfg.band_low_start, cfg.band_low), ramp(cfg.band_high_start, cfg.band_high)))

    def train_batches(self, train: EmbeddingSet, cfg: QbEConfig, epoch: int,
                      rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        """``batch_size`` and ``triplets_per_epoch`` are global: each of N workers draws 1/N of
        the triplets in batches of ``batch_size / N``; the triplet loss is a mean over independent
        triplets, so DDP's gradient average over equal local batches is the global-batch gradient.
        Every worker makes the same number of steps (a DDP step is a collective)."""
        if cfg.batch_size % self._world:
            raise ValueError(f"batch_size {cfg.batch_size} (global) must be divisible by the {self._world} Train workers")
        sampler = self._samplers.get(id(train))
        if sampler is None:
            resumed, self._resumed = self._resumed, None
            # a retried trial's sampler continues its own stream and leaves the trial's untouched
            seed = 0 if resumed else int(rng.integers(2**31))
            sampler = TripletSampler(train.X, train.labels, semi_hard_share=cfg.semi_hard_share,
                                     band=(cfg.band_low, cfg.band_high), seed=seed, band_mode=cfg.band_mode)
            if resumed:
                sampler.set_rng_state(resumed["sampler_rng"])
            self._samplers = {id(train): sampler}
        share, band = self.hard_triplet_schedule(cfg, epoch)
        n = math.ceil((cfg.triplets_per_epoch or max(self._n_train, len(train))) / self._world)
        batch = cfg.batch_size // self._world
        a, p, neg = sampler.sample(n, semi_hard_share=share, band=band)
        self._last_epoch = {"train/semi_hard_fallback_share": sampler.last_fallback_share,
                            "train/semi_hard_share": share, "train/band_low": band[0], "train/band_high": band[1],
                            "train/margin": annealed_margin(epoch, cfg.epochs, cfg.margin_start, cfg.margin_end)}
        X = torch.from_numpy(train.X)
        for i in range(0, n, batch):
            sl = slice(i, i + batch)
            yield {"anchor": X[a[sl]], "positive": X[p[sl]], "negative": X[neg[sl]]}

    def training_state(self) -> dict[str, Any]:
        """The triplet sampler's RNG: it draws each epoch's triplets from its own stream."""
        samplers = list(self._samplers.values())
        return {"sampler_rng": samplers[0].rng_state()} if samplers else {}

    def load_training_state(self, state: dict[str, Any] | None) -> None:
        self._resumed = state or None  # applied when the training's sampler is built

    def epoch_metrics(self, epoch: int) -> dict[str, float]:
        """The epoch's triplet mix: the share of semi-hard slots that found no negative in the
        band and kept a random one (1.0 means "semi-hard" training is random-negative training:
        widen the band or use band_mode=percentile), and the scheduled share, band and margin."""
        return dict(self._last_epoch)

    # -- loss --------------------------------------------------------------------------------
    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], cfg: QbEConfig,
             epoch: int) -> torch.Tensor:
        margin = annealed_margin(epoch, cfg.epochs, cfg.margin_start, cfg.margin_end)
        return triplet_margin_loss(outputs["anchor"], outputs["positive"], outputs["negative"], margin)

    # -- evaluation --------------------------------------------------------------------------
    def validate(self, model: torch.nn.Module, val: EmbeddingSet, cfg: QbEConfig) -> dict[str, float]:
        """Silhouette (cosine) of the transformed validation words against their *word labels*
        (hence the name: the test's ``silhouette`` scores k-means clusters, as the thesis' 2.5.1
        defines it): the model-selection signal, without k-means noise between rounds; plus val mAP."""
        z = model.embed(val.X)  # type: ignore[operator]
        m = retrieval.multi_relevant_metrics(z, z, val.labels, val.labels, exclude_self=True)
        return {"val/silhouette_labels": float(silhouette_score(z, val.labels, metric="cosine")),
                "val/map": float(m["map"])}

    def evaluate(self, model: torch.nn.Module, test: EmbeddingSet, cfg: QbEConfig, figures: bool = True
                 ) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
        transformed = model.embed(test.X)  # type: ignore[operator]
        return evaluate_qbe(test.X, transformed, test.labels, test.ids, seed=cfg.seed, figures=figures)

    # -- a retrieval model (orchestrator.retrieval_model): a spoken word -> clips of the word -----
    query_sides = {"audio": "audio"}

    def index_sides(self, model: torch.nn.Module, data: EmbeddingSet, cfg: QbEConfig) -> dict[str, Any]:
        """The word clips through the head (``TripletNet.embed``, what :meth:`evaluate` ranks):
        unit vectors, so inner product is the cosine the thesis retrieves by."""
        from orchestrator.retrieval_model import IndexSide

        z = model.embed(data.X)  # type: ignore[operator]
        rows = [{"id": i, "item": i, "word": w} for i, w in zip(data.ids, data.labels)]
        return {"audio": IndexSide(z, rows, "word clips")}

    def embed_queries(self, model: torch.nn.Module, cfg: QbEConfig, modality: str, queries: list[Any],
                      encoders: Any) -> np.ndarray:
        """A spoken word through the view's frozen speech encoder (mean-pooled) and the head."""
        return model.embed(encoders.embed_audio("audio", queries))  # type: ignore[operator]

    def headline_metrics(self) -> list[str]:
        return ["test/original/map", "test/transformed/map", "test/gain/map_pct", "test/transformed/map20",
                "test/transformed/mrr", "test/transformed/recall20", "test/transformed/silhouette",
                "test/transformed/ami"]

    def table_groups(self) -> list[str]:
        return ["qbe_retrieval", "qbe_clustering"]
