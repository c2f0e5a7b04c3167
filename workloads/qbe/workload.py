"""Query-by-example search with acoustic word embeddings (Öberg 2025, KTH thesis), as a recipe.

config -> data (word segments through a frozen speech encoder, mean-pooled; section 3.3.4)
-> model (MLP in->512->256 + L2 norm; 3.4.1) -> loss (triplet margin on L2 distance, margin
annealed 0.55 -> 0.8, 40 % semi-hard negatives with cosine 0.5-0.8 to the anchor; 3.4.2)
-> validation (silhouette every k epochs, keep the best) -> evaluation (clustering and QbE
retrieval on unseen test words, original vs transformed; 3.5, Tables 4.2-4.5).
"""

from __future__ import annotations

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
from workloads.qbe.loss import annealed_margin, triplet_margin_loss
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

    def __init__(self) -> None:
        self._samplers: dict[int, TripletSampler] = {}

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
    def train_batches(self, train: EmbeddingSet, cfg: QbEConfig, epoch: int,
                      rng: np.random.Generator) -> Iterator[dict[str, torch.Tensor]]:
        sampler = self._samplers.get(id(train))
        if sampler is None:
            sampler = TripletSampler(train.X, train.labels, semi_hard_share=cfg.semi_hard_share,
                                     band=(cfg.band_low, cfg.band_high), seed=int(rng.integers(2**31)))
            self._samplers = {id(train): sampler}
        n = cfg.triplets_per_epoch or len(train)
        a, p, neg = sampler.sample(n)
        X = torch.from_numpy(train.X)
        for i in range(0, n, cfg.batch_size):
            sl = slice(i, i + cfg.batch_size)
            yield {"anchor": X[a[sl]], "positive": X[p[sl]], "negative": X[neg[sl]]}

    # -- loss --------------------------------------------------------------------------------
    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], cfg: QbEConfig,
             epoch: int) -> torch.Tensor:
        margin = annealed_margin(epoch, cfg.epochs, cfg.margin_start, cfg.margin_end)
        return triplet_margin_loss(outputs["anchor"], outputs["positive"], outputs["negative"], margin)

    # -- evaluation --------------------------------------------------------------------------
    def validate(self, model: torch.nn.Module, val: EmbeddingSet, cfg: QbEConfig) -> dict[str, float]:
        """Silhouette (cosine) of the transformed validation words against their word labels:
        the thesis' model-selection signal, without k-means noise between rounds; plus val mAP."""
        z = model.embed(val.X)  # type: ignore[operator]
        m = retrieval.multi_relevant_metrics(z, z, val.labels, val.labels, exclude_self=True)
        return {"val/silhouette": float(silhouette_score(z, val.labels, metric="cosine")),
                "val/map": float(m["map"])}

    def evaluate(self, model: torch.nn.Module, test: EmbeddingSet, cfg: QbEConfig
                 ) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
        transformed = model.embed(test.X)  # type: ignore[operator]
        return evaluate_qbe(test.X, transformed, test.labels, test.ids, seed=cfg.seed)

    def headline_metrics(self) -> list[str]:
        return ["test/original/map", "test/transformed/map", "test/gain/map_pct", "test/transformed/mrr",
                "test/transformed/recall20", "test/transformed/silhouette", "test/transformed/ami"]

    def table_groups(self) -> list[str]:
        return ["qbe_retrieval", "qbe_clustering"]
