"""The workload contract and its registry (entry points in the ``orchestrator.workloads`` group).

The core (extract/train/sweep/track) talks to a paper only through this interface, so adding a
paper means adding a package under ``workloads/`` and one entry point, never editing the core.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import torch
import yaml
from pydantic import BaseModel

from orchestrator.cache import EmbeddingSet, table_to_embeddings
from orchestrator.config import ConfigError

ENTRY_POINT_GROUP = "orchestrator.workloads"


@dataclass(frozen=True)
class DataSpec:
    """What to extract for a trial: one corpus through one encoder."""

    corpus: str
    encoder: str
    corpus_options: dict[str, Any] = field(default_factory=dict)
    encoder_params: dict[str, Any] = field(default_factory=dict)
    level: str = "pooled"  # "pooled" embeddings (frozen) or encoder input "features" (finetune)

    def key(self) -> str:
        blob = json.dumps([self.corpus, self.corpus_options, self.encoder, self.encoder_params, self.level],
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Profile:
    """A profile file's entry: config overrides plus the declared substitutions of paper parts."""

    name: str
    description: str
    config: dict[str, Any]
    substitutions: dict[str, str]
    shortened: dict[str, str]


class Workload(ABC):
    name: str
    config_cls: type[BaseModel]
    regime: Literal["frozen", "finetune"]
    # config fields that decide which data is extracted (enumerated before the sweep starts)
    data_fields: tuple[str, ...] = ()
    profiles_file: Path

    # -- configuration ---------------------------------------------------------------------------
    def profile(self, name: str) -> Profile:
        raw = yaml.safe_load(self.profiles_file.read_text())
        if name not in raw:
            raise ConfigError(f"workload {self.name!r} has no profile {name!r}; known: {sorted(raw)}")
        p = raw[name] or {}
        return Profile(name, p.get("description", ""), p.get("config", {}) or {},
                       p.get("substitutions", {}) or {}, p.get("shortened", {}) or {})

    @abstractmethod
    def data_spec(self, cfg: Any, profile: str) -> DataSpec: ...

    # -- model and training ----------------------------------------------------------------------
    @abstractmethod
    def build_model(self, cfg: Any, in_dim: int) -> torch.nn.Module: ...

    def to_data(self, table: pa.Table) -> Any:
        """A split's cached rows (Arrow, with ``texts`` joined) -> what this workload trains on."""
        return table_to_embeddings(table)

    def input_dim(self, data: Any) -> int:
        return int(data.X.shape[1])

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

    @abstractmethod
    def epochs(self, cfg: Any) -> int: ...

    @abstractmethod
    def eval_every(self, cfg: Any) -> int: ...

    def with_epochs(self, cfg: Any, epochs: int) -> Any:
        """The config run for ``epochs`` (``--max-epochs``), so epoch-based schedules (margin
        annealing, LR decay) still run their whole course in a shortened run."""
        return cfg.model_copy(update={"epochs": epochs}) if "epochs" in type(cfg).model_fields else cfg

    # -- evaluation ------------------------------------------------------------------------------
    @abstractmethod
    def validate(self, model: torch.nn.Module, val: EmbeddingSet, cfg: Any) -> dict[str, float]:
        """Per-round validation metrics (names start with ``val/``)."""

    @abstractmethod
    def evaluate(self, model: torch.nn.Module, test: EmbeddingSet, cfg: Any
                 ) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
        """Final test: (metrics named ``test/...``, tables name -> DataFrame, figures name -> Figure)."""

    def headline_metrics(self) -> list[str]:
        """The few test metrics printed in the sweep's closing table (all are logged)."""
        return []

    def table_groups(self) -> list[str]:
        """Tables worth aggregating over seeds on the parent run (mean ± std)."""
        return []


def load_workload(name: str) -> Workload:
    eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in eps:
        raise ConfigError(f"unknown workload {name!r}; installed: {sorted(eps)} (is the project pip-installed?)")
    cls = eps[name].load()
    return cls()
