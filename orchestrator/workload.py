"""The workload contract and its registry (entry points in the ``orchestrator.workloads`` group).

The core (extract/train/sweep/track) talks to a paper only through this interface, so adding a
paper means adding a package under ``workloads/`` and one entry point, never editing the core.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from pydantic import BaseModel

from orchestrator.cache import EmbeddingSet, table_to_embeddings
from orchestrator.registry import Profile, WorkloadInfo, load_workload
from orchestrator.views import DataSpec, ViewSpec

__all__ = ["DataSpec", "ViewSpec", "Profile", "Workload", "WorkloadInfo", "load_workload"]


class Workload(ABC):
    """A paper as a recipe; its light facts (name, config class, profiles, field roles) live in
    ``info`` so the CLI can validate without importing this (see ``orchestrator.registry``)."""

    info: WorkloadInfo

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def config_cls(self) -> type[BaseModel]:
        return self.info.config_cls

    @property
    def regime(self) -> str:
        return self.info.regime

    @property
    def data_fields(self) -> tuple[str, ...]:
        return self.info.data_fields

    @property
    def inference_fields(self) -> tuple[str, ...]:
        return self.info.inference_fields

    def profile(self, name: str) -> Profile:
        return self.info.profile(name)

    @abstractmethod
    def data_spec(self, cfg: Any, profile: str) -> DataSpec:
        """The corpus and the named views a trial with ``cfg`` trains and evaluates on."""

    # -- model and training ----------------------------------------------------------------------
    @abstractmethod
    def build_model(self, cfg: Any, in_dim: int) -> torch.nn.Module: ...

    def to_data(self, table: pa.Table) -> Any:
        """A split's joined rows (``orchestrator.views.read_joined``: manifest columns plus one
        column group per view) -> what this workload trains on. The default reads a single pooled
        audio view named ``audio``."""
        return table_to_embeddings(table, "audio")

    def input_dim(self, data: Any) -> int:
        return int(data.X.shape[1])

    # Ray Train splits the training rows evenly across workers, unless the workload keeps groups
    # together itself (QbE mines triplets within a shard: a word split across workers loses
    # positives): then every worker receives all rows and keeps ``shard_train``'s part.
    splits_train_itself: bool = False

    def shard_train(self, train: Any, rank: int, world_size: int) -> Any:
        """This worker's part of the training data (only called when ``splits_train_itself``)."""
        return train

    def fit_closed_form(self, model: torch.nn.Module, train: Any, cfg: Any) -> None:
        """Fit what has no gradient (an LDA projection, class statistics) before the first epoch:
        on all training rows when the workload ``splits_train_itself`` (every worker then fits the
        same), else on this worker's Ray Data shard. With ``epochs(cfg) == 0`` this is all the
        training there is: the model is validated once and checkpointed."""

    @abstractmethod
    def configure_optimizer(self, model: torch.nn.Module, cfg: Any, train: Any
                            ) -> tuple[torch.optim.Optimizer, Any]:
        """(optimizer, per-batch LR scheduler or None); ``train`` is this worker's data."""

    @abstractmethod
    def train_batches(self, train: Any, cfg: Any, epoch: int,
                      rng: np.random.Generator) -> Iterable[dict[str, torch.Tensor]]: ...

    @abstractmethod
    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], cfg: Any,
             epoch: int) -> torch.Tensor: ...

    def epoch_metrics(self, epoch: int) -> dict[str, float]:
        """Training-side metrics of the epoch just finished (names start with ``train/``), e.g.
        how a sampler fared; called on every worker after each epoch, and the latest values go
        into the next report (rank 0's reach Tune and MLflow, step = epoch)."""
        return {}

    def training_state(self) -> dict[str, Any]:
        """What the workload carries from epoch to epoch besides the model and optimiser (a
        sampler's own RNG, say), saved in every validation round's checkpoint so that a retried
        trial continues exactly where the round left it. Plain data (``torch.load`` with
        ``weights_only``); {} when there is nothing."""
        return {}

    def load_training_state(self, state: dict[str, Any] | None) -> None:
        """Called before the first epoch of every training: the state :meth:`training_state`
        returned at the round a retried trial continues from, or None for a fresh training (a
        reused trial process must not carry the previous trial's state into the next)."""

    @abstractmethod
    def epochs(self, cfg: Any) -> int: ...

    @abstractmethod
    def eval_every(self, cfg: Any) -> int: ...

    def patience(self, cfg: Any) -> int | None:
        """Early stopping: training ends after this many validation rounds in a row without an
        improvement of the sweep's metric (the one the tested checkpoint is chosen by); ``None``
        trains every epoch."""
        return None

    def with_epochs(self, cfg: Any, epochs: int) -> Any:
        """The config run for ``epochs`` (``--max-epochs``), so epoch-based schedules (margin
        annealing, LR decay) still run their whole course in a shortened run."""
        return cfg.model_copy(update={"epochs": epochs}) if "epochs" in type(cfg).model_fields else cfg

    # -- evaluation ------------------------------------------------------------------------------
    @abstractmethod
    def validate(self, model: torch.nn.Module, val: EmbeddingSet, cfg: Any) -> dict[str, float]:
        """Per-round validation metrics (names start with ``val/``)."""

    @abstractmethod
    def evaluate(self, model: torch.nn.Module, test: EmbeddingSet, cfg: Any, figures: bool = True
                 ) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
        """Final test: (metrics named ``test/...``, tables name -> DataFrame, figures name -> Figure).
        ``figures=False``: no figures (an evaluation sweep's trials, the last epoch's weights), as
        a t-SNE costs seconds where the metrics cost milliseconds."""

    # -- a trained trial as a retrieval model (orchestrator.register, orchestrator.search) -------
    # query modality -> the index side it searches, e.g. {"text": "audio", "audio": "text"};
    # empty: the workload cannot be registered as a retrieval model
    query_sides: dict[str, str] = {}

    def index_sides(self, model: torch.nn.Module, data: Any, cfg: Any) -> dict[str, Any]:
        """Side name -> ``orchestrator.retrieval_model.IndexSide``: a split's items (``to_data``)
        in the head's output space, computed by the functions :meth:`evaluate` scores with, so
        that searching the index reproduces the test metrics."""
        raise NotImplementedError(f"the {self.name} workload cannot be registered as a retrieval model")

    def embed_queries(self, model: torch.nn.Module, cfg: Any, modality: str, queries: list[Any],
                      encoders: Any) -> np.ndarray:
        """Raw queries of ``modality`` (texts, or ``orchestrator.retrieval_model.AudioQuery``) as
        vectors of the side they search (:attr:`query_sides`): the view's frozen encoder
        (``encoders``: ``orchestrator.retrieval_model.QueryEncoders``) and then the head, as
        :meth:`evaluate` embeds the split's items."""
        raise NotImplementedError(f"the {self.name} workload cannot be queried as a retrieval model")

    def query_fusion(self, cfg: Any, selection_metric: str) -> Any | None:
        """How a retrieval model of this workload combines a query with the index before ranking,
        as :meth:`evaluate` does for the metric the model was selected by (e.g. speaker-text's
        cross-modal fusion for a ``..._fused`` metric); None: queries are ranked as embedded.
        The object has ``queries(modality, vectors, searched) -> vectors`` (``searched``: the raw
        vectors of the side searched), ``index(sides) -> sides`` (the raw vectors of every side ->
        those ranked against) and ``describe(modality) -> str``."""
        return None

    def headline_metrics(self) -> list[str]:
        """The few test metrics printed in the sweep's closing table (all are logged)."""
        return []

    def table_groups(self) -> list[str]:
        """Tables worth aggregating over seeds on the parent run (mean ± std), per value of the
        searched parameters."""
        return []

    def summary_tables(self, trials: Any) -> dict[str, Any]:
        """Tables for the parent run built from all finished trials at once (one row per trial:
        searched params, ``seed``, ``test/...`` metrics), e.g. a paper's results table with one row
        per system and mean ± std over seeds (``orchestrator.report.mean_std``)."""
        return {}

    # Whether a training trial draws its own figures (``evaluate(figures=True)``). False for
    # figures that cost seconds and say much the same for every seed: the sweep driver then draws
    # them once per group of trials onto the parent run (:meth:`parent_figure_trials`).
    trial_figures: bool = True

    def parent_figure_trials(self, trials: Any, best_trial: str | None) -> dict[str, str]:
        """label -> trial id: the finished trials whose figures the driver draws onto the parent
        run, under ``figures/<label>/`` (only when :attr:`trial_figures` is False), e.g. one trial
        per system of a paper's table. ``trials``: the finished trials' rows, as for
        :meth:`summary_tables`; ``best_trial``: the selected trial."""
        return {}

    def summary_figures(self, trials: Any) -> dict[str, Any]:
        """Figures for the parent run from the same rows (name -> matplotlib Figure, logged as
        ``figures/<name>.png``), e.g. a validation metric against an inference field over the
        trials of an evaluation sweep: a curve no single trial can draw."""
        return {}
