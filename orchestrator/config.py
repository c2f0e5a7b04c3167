"""Typed, validated configuration: search-space YAML files and config merging.

A search space names a workload, fixes some of its config keys, and declares the keys Tune samples.
Everything is checked before Ray starts: unknown keys (in the YAML or in a workload config),
empty or inverted ranges, a searcher that cannot express the space. Errors are one line
(:class:`ConfigError`), which the CLI prints without a traceback.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SEARCH_SPACE_DIR = Path(__file__).resolve().parent.parent / "search_spaces"
PROFILES = ("local", "paper")


class ConfigError(ValueError):
    """A configuration problem, stated in one line."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParamSpec(Strict):
    """One sampled dimension. ``grid`` enumerates ``values``; the others are Optuna distributions."""

    type: Literal["loguniform", "uniform", "choice", "grid", "randint"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> "ParamSpec":
        if self.type in ("choice", "grid"):
            if not self.values:
                raise ValueError(f"{self.type} needs a non-empty 'values' list")
            if self.low is not None or self.high is not None:
                raise ValueError(f"{self.type} takes 'values', not low/high")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"{self.type} needs 'low' and 'high'")
            if not self.low < self.high:
                raise ValueError(f"bad range: low ({self.low}) must be < high ({self.high})")
            if self.type == "loguniform" and self.low <= 0:
                raise ValueError(f"loguniform needs low > 0, got {self.low}")
            if self.values is not None:
                raise ValueError(f"{self.type} takes low/high, not 'values'")
        return self

    def discrete_values(self) -> list[Any] | None:
        return list(self.values) if self.type in ("choice", "grid") else None


class SchedulerSpec(Strict):
    type: Literal["asha", "none"] = "asha"
    grace_period: int = Field(1, ge=1)  # in reports (validation rounds), not epochs
    reduction_factor: float = Field(2.0, gt=1)


class ResourceSpec(Strict):
    train_workers: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float | Literal["auto"] = "auto"  # auto: 1 if the cluster has GPUs, else 0
    extract_actors: int | Literal["auto"] = "auto"  # auto: one per GPU, else one per 2 CPUs
    memory_per_worker_gb: float = Field(0.0, ge=0)  # 0: trials reserve no memory (heads on embeddings)


class ProfileOverride(Strict):
    fixed: dict[str, Any] = {}
    # searched params of this profile, over the space's (e.g. rows that need weights only the paper
    # profile has: cts_systems' CLAP rows)
    param_space: dict[str, ParamSpec] = {}
    num_samples: int | None = Field(None, ge=1)
    seeds: list[int] | None = None
    # declared like a workload profile's (recorded as substitution.* / shortened.* / choice.* /
    # deviation.* tags),
    # for what this sweep's fixed values change: they replace the workload profile's same keys
    substitutions: dict[str, str] = {}
    shortened: dict[str, str] = {}
    choices: dict[str, str] = {}
    deviations: dict[str, str] = {}


class SearchSpace(Strict):
    name: str
    workload: str
    description: str = ""
    fixed: dict[str, Any] = {}
    param_space: dict[str, ParamSpec] = {}
    searcher: Literal["optuna", "grid"] = "optuna"
    scheduler: SchedulerSpec = SchedulerSpec()
    num_samples: int = Field(1, ge=1)
    metric: str
    mode: Literal["max", "min"]
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    max_concurrent_trials: int | None = Field(None, ge=1)  # a cap; None: as many as the cluster holds
    resources: ResourceSpec = ResourceSpec()
    profiles: dict[Literal["local", "paper"], ProfileOverride] = {}

    @model_validator(mode="after")
    def _check(self) -> "SearchSpace":
        every = [*self.param_space.items(), *(i for p in self.profiles.values() for i in p.param_space.items())]
        if self.searcher == "grid":
            bad = [k for k, p in every if p.type != "grid"]
            if bad:
                raise ValueError(f"searcher 'grid' only takes grid params; {bad} are not")
        else:
            bad = [k for k, p in every if p.type == "grid"]
            if bad:
                raise ValueError(f"searcher 'optuna' cannot take grid params {bad}; use choice")
        if any("seed" in p.param_space for p in self.profiles.values()):
            raise ValueError("set seeds with the 'seeds' list, not as a param")
        for prof in self.profiles.values():
            if self.searcher == "optuna" and prof.seeds and len(prof.seeds) > 1:
                raise ValueError("an optuna sweep runs one seed; list several seeds only in a grid sweep")
        if self.searcher == "optuna" and len(self.seeds) > 1:
            raise ValueError("an optuna sweep runs one seed; list several seeds only in a grid sweep")
        if "seed" in self.param_space or "seed" in self.fixed:
            raise ValueError("set seeds with the 'seeds' list, not as a param")
        return self

    # -- resolved views for one profile ---------------------------------------------------------
    def for_profile(self, profile: str) -> "SearchSpace":
        """This space with the profile's searched params over its own (the rest of a profile's
        overrides is read through the ``*_for`` methods)."""
        p = self.profiles.get(profile)  # type: ignore[call-overload]
        if p is None or not p.param_space:
            return self
        return self.model_copy(update={"param_space": {**self.param_space, **p.param_space}})

    def fixed_for(self, profile: str) -> dict[str, Any]:
        out = dict(self.fixed)
        if profile in self.profiles:
            out.update(self.profiles[profile].fixed)
        return out

    def num_samples_for(self, profile: str) -> int:
        p = self.profiles.get(profile)  # type: ignore[call-overload]
        return p.num_samples if p and p.num_samples else self.num_samples

    def seeds_for(self, profile: str) -> list[int]:
        p = self.profiles.get(profile)  # type: ignore[call-overload]
        return list(p.seeds) if p and p.seeds else list(self.seeds)

    def grid_size(self, profile: str) -> int:
        n = len(self.seeds_for(profile))
        for p in self.param_space.values():
            if p.type == "grid":
                n *= len(p.values or [])
        return n


def _one_line(e: ValidationError, source: str) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "<root>"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}")
    return f"{source}: " + "; ".join(parts)


def list_search_spaces(directory: Path = SEARCH_SPACE_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_search_space(name: str, directory: Path = SEARCH_SPACE_DIR) -> SearchSpace:
    path = Path(name) if name.endswith(".yaml") else directory / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(list_search_spaces(directory))
        raise ConfigError(f"unknown sweep {name!r}; known: {known}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    raw.setdefault("name", path.stem)
    try:
        return SearchSpace.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_one_line(e, str(path))) from None


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs; values are YAML scalars/lists (``lr=1e-3``, ``ks=[1,5]``)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            val = yaml.safe_load(v)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: value is not valid YAML") from None
        if isinstance(val, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                val = float(val)
            except ValueError:
                pass
        out[k.strip()] = val
    return out


def validate_workload_config(config_cls: type[BaseModel], values: dict[str, Any], source: str) -> BaseModel:
    try:
        return config_cls.model_validate(values)
    except ValidationError as e:
        raise ConfigError(_one_line(e, source)) from None


def check_keys(config_cls: type[BaseModel], keys: list[str], source: str) -> None:
    unknown = sorted(set(keys) - set(config_cls.model_fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} for {config_cls.__name__}")


def discrete_combinations(space: SearchSpace, fields: tuple[str, ...], base: dict[str, Any]) -> list[dict[str, Any]]:
    """All combinations of the given config fields that trials can take (for pre-extraction).

    A field sampled from a continuous distribution cannot be enumerated, so it is an error for a
    field that decides which data to extract.
    """
    choices: list[list[tuple[str, Any]]] = []
    for f in fields:
        spec = space.param_space.get(f)
        if spec is None:
            if f in base:  # otherwise the workload config's default applies
                choices.append([(f, base[f])])
            continue
        vals = spec.discrete_values()
        if vals is None:
            raise ConfigError(f"{space.name}: '{f}' decides which data to extract; sample it with choice/grid")
        choices.append([(f, v) for v in vals])
    return [dict(c) for c in itertools.product(*choices)]


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
