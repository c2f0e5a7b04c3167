"""What the sweep must know about a workload before anything heavy is imported.

The CLI validates a whole invocation (sweep name, keys, values, profile, flags) in well under two
seconds and before Ray starts, so a typo costs nothing. That needs the workload's config class,
profiles and field roles without importing torch, Ray or the workload's model code (importing a
workload module takes seconds). Each workload package therefore exposes a light
:class:`WorkloadInfo` (entry point group ``orchestrator.workloads``, value ``workloads.<name>:INFO``)
that names its implementation by import path; :func:`load_workload` imports that only when a
sweep really runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from orchestrator.config import ConfigError

ENTRY_POINT_GROUP = "orchestrator.workloads"


@dataclass(frozen=True)
class Profile:
    """A profile file's entry: config overrides plus what is declared about it against the paper:
    substitutions of paper parts, shortened runs, ``choices`` where the paper is silent, ambiguous
    or contradicts its own code, and ``deviations`` kept on purpose (each recorded as tags)."""

    name: str
    description: str
    config: dict[str, Any]
    substitutions: dict[str, str]
    shortened: dict[str, str]
    choices: dict[str, str] = field(default_factory=dict)
    deviations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkloadInfo:
    """A workload's light description.

    ``data_fields``: config fields that decide which data is extracted (enumerated over the search
    space before trials start). ``inference_fields``: fields that change only evaluation (fusion N,
    LDA dimension, query language); a search space varying only these is an evaluation sweep.
    ``impl``: ``module:Class`` of the :class:`orchestrator.workload.Workload` implementation.
    """

    name: str
    config_cls: type[BaseModel]
    regime: Literal["frozen", "finetune"]
    profiles_file: Path
    impl: str
    data_fields: tuple[str, ...] = ()
    inference_fields: tuple[str, ...] = ()
    epochs_field: str | None = "epochs"
    extra: dict[str, Any] = field(default_factory=dict)

    def profile(self, name: str) -> Profile:
        raw = yaml.safe_load(self.profiles_file.read_text())
        if name not in raw:
            raise ConfigError(f"workload {self.name!r} has no profile {name!r}; known: {sorted(raw)}")
        p = raw[name] or {}
        return Profile(name, p.get("description", ""), p.get("config", {}) or {},
                       p.get("substitutions", {}) or {}, p.get("shortened", {}) or {},
                       p.get("choices", {}) or {}, p.get("deviations", {}) or {})


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_info(name: str) -> WorkloadInfo:
    """By entry point name (``qbe``), or by ``module:ATTR`` for a workload that is not packaged
    (a project of one's own on the Python path, or a test's toy workload)."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            info = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"workload {name!r} cannot be imported ({e})") from None
        if not isinstance(info, WorkloadInfo):
            raise ConfigError(f"workload {name!r} is not a WorkloadInfo")
        return info
    eps = _entry_points()
    if name not in eps:
        raise ConfigError(f"unknown workload {name!r}; installed: {sorted(eps)} (is the project pip-installed?)")
    info = eps[name].load()
    if not isinstance(info, WorkloadInfo):
        raise ConfigError(f"entry point {name!r} ({eps[name].value}) is not a WorkloadInfo")
    return info


def load_workload(name: str) -> Any:
    """The workload implementation (imports its model code, torch and friends)."""
    info = load_info(name)
    module, _, cls = info.impl.partition(":")
    return getattr(importlib.import_module(module), cls)()
