"""Everything a sweep invocation decides, resolved and validated before Ray, torch or any corpus
is touched, so a mistake costs a fraction of a second and one line.

An :class:`Invocation` is what the user asked for (flags); it is saved beside the run and
restored by ``--resume``, so a resumed sweep is the same sweep (same epoch cap, sample count,
overrides, profile, data root). A :class:`SweepPlan` is what follows from it: the search space,
the workload's light description, the effective base config, pinned keys and the trial count.
Only ``pydantic``, ``yaml`` and the standard library are imported here.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from orchestrator import storage
from orchestrator.config import (
    ConfigError,
    ProfileOverride,
    SearchSpace,
    check_keys,
    discrete_combinations,
    load_search_space,
    parse_set,
    validate_workload_config,
)
from orchestrator.registry import Profile, WorkloadInfo, load_info

INVOCATION_FILE = "invocation.json"
TRACKING_FILE = "tracking.json"
LATEST_FILE = "LATEST"


@dataclass
class Invocation:
    """The flags that define a sweep run (restored by ``--resume``)."""

    sweep: str
    profile: str = "local"
    data_root: str | None = None
    num_samples: int | None = None
    max_epochs: int | None = None
    overrides: list[str] = field(default_factory=list)
    skip_bad_items: bool = False
    cache_dir: str = "cache"
    storage_path: str = "ray_results"
    tracking_uri: str | None = None
    from_run: str | None = None
    gpus_per_worker: float | None = None  # None: the search space's setting ("auto": GPUs present at start)
    max_concurrent: int | None = None  # None: as many trials as the cluster holds at start
    max_retries: int | None = None  # None: orchestrator.trials.DEFAULT_RETRIES
    experiment: str = ""  # <sweep>-<time>: the Tune experiment and the MLflow parent run's name

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Invocation":
        raw = json.loads(text)
        return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})

    def command(self) -> str:
        """The CLI line that reproduces this run (printed in the summary and the resume hint)."""
        parts = ["python -m orchestrator.sweep", self.sweep]
        if self.profile != "local":
            parts += ["--profile", self.profile]
        if self.data_root:
            parts += ["--data-root", self.data_root]
        if self.num_samples:
            parts += ["--num-samples", str(self.num_samples)]
        if self.max_epochs:
            parts += ["--max-epochs", str(self.max_epochs)]
        for o in self.overrides:
            parts += ["--set", o]
        if self.from_run:
            parts += ["--from-run", self.from_run]
        if self.skip_bad_items:
            parts.append("--skip-bad-items")
        if self.gpus_per_worker is not None:
            parts += ["--gpus-per-worker", f"{self.gpus_per_worker:g}"]
        if self.max_concurrent is not None:
            parts += ["--max-concurrent", str(self.max_concurrent)]
        if self.max_retries is not None:
            parts += ["--max-retries", str(self.max_retries)]
        return " ".join(parts)


@dataclass
class SweepPlan:
    inv: Invocation
    space: SearchSpace
    info: WorkloadInfo
    profile: Profile
    base: dict[str, Any]  # effective fixed config (profile < space.fixed < --set, epochs capped)
    pinned: dict[str, Any]  # searched keys that --set fixed (removed from the search)
    is_eval: bool  # only inference fields are searched: train once, evaluate per trial
    n_trials: int
    epochs_note: str | None  # what --max-epochs did, for tags and the table header

    @property
    def sweep_root(self) -> str:
        return storage.join(storage.resolve(self.inv.storage_path), self.space.name)

    @property
    def experiment_path(self) -> str:
        """Tune's experiment directory (Tune owns it: on resume it re-uploads its own copy)."""
        return storage.join(self.sweep_root, self.inv.experiment)

    @property
    def records_path(self) -> str:
        """Our run records (invocation, MLflow run ids, trial outcomes), beside Tune's directory:
        Tune syncs the experiment directory from a local staging copy and would overwrite them."""
        return records_path(self.sweep_root, self.inv.experiment)

    @property
    def searched(self) -> list[str]:
        return list(self.space.param_space)


def _validate(info: WorkloadInfo, values: dict[str, Any], seed: int, source: str) -> Any:
    return validate_workload_config(info.config_cls, {**values, "seed": seed}, source)


def resolve(inv: Invocation) -> SweepPlan:
    """Validate an invocation and derive the plan; every problem is one :class:`ConfigError` line."""
    if inv.num_samples is not None and inv.num_samples < 1:
        raise ConfigError(f"--num-samples must be >= 1, got {inv.num_samples}")
    if inv.gpus_per_worker is not None and inv.gpus_per_worker < 0:
        raise ConfigError(f"--gpus-per-worker must be >= 0, got {inv.gpus_per_worker}")
    if inv.max_concurrent is not None and inv.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {inv.max_concurrent}")
    if inv.max_retries is not None and inv.max_retries < 0:
        raise ConfigError(f"--max-retries must be >= 0, got {inv.max_retries}")
    if inv.max_epochs is not None and inv.max_epochs < 1:
        raise ConfigError(f"--max-epochs must be >= 1, got {inv.max_epochs}")
    space = load_search_space(inv.sweep).for_profile(inv.profile)
    info = load_info(space.workload)
    profile = _declared(info.profile(inv.profile), space.profiles.get(inv.profile))  # type: ignore[call-overload]
    if inv.profile == "paper":
        if not inv.data_root:
            raise ConfigError("--profile paper reads the real datasets: give --data-root DIR")
        if not storage.is_uri(inv.data_root) and not Path(inv.data_root).is_dir():
            raise ConfigError(f"--data-root {inv.data_root}: no such directory")
    elif inv.data_root:
        raise ConfigError("--data-root is only read by --profile paper (the local profile synthesises its corpora)")
    seed = space.seeds_for(inv.profile)[0]

    check_keys(info.config_cls, list(profile.config), f"{info.profiles_file}:{inv.profile}")
    fixed = space.fixed_for(inv.profile)
    check_keys(info.config_cls, list(fixed), f"search space {space.name}: fixed")
    check_keys(info.config_cls, list(space.param_space), f"search space {space.name}: param_space")
    base = {**profile.config, **fixed}
    cfg = _validate(info, base, seed, f"search space {space.name}")
    for key, spec in space.param_space.items():  # every listed value must be a valid config value
        for v in spec.discrete_values() or [spec.low, spec.high]:
            _validate(info, {**base, key: v}, seed, f"search space {space.name}: param_space.{key}")

    overrides = parse_set(inv.overrides)
    if "seed" in overrides:
        raise ConfigError("--set seed=...: seeds come from the search space's 'seeds' list")
    valid = sorted(k for k in info.config_cls.model_fields if k != "seed")
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ConfigError(f"--set: unknown key(s) {unknown} for {info.name}; valid keys: {', '.join(valid)}")
    base = {**base, **overrides}
    cfg = _validate(info, base, seed, "--set")
    pinned = {k: v for k, v in overrides.items() if k in space.param_space}
    if pinned:  # --set of a searched key pins it: the search goes on over the other keys only
        space = space.model_copy(update={"param_space": {k: v for k, v in space.param_space.items()
                                                          if k not in pinned}})

    ef = info.epochs_field
    epochs_note = None
    if ef and ef in base and profile.config.get(ef) is not None and base[ef] != profile.config[ef]:
        epochs_note = f"{base[ef]} epochs (set by {space.name if ef not in overrides else '--set'}; " \
                      f"the profile's: {profile.shortened.get(ef, profile.config[ef])})"
    if inv.max_epochs is not None:
        if not ef:
            raise ConfigError(f"--max-epochs: workload {info.name} has no epochs to cap")
        if ef in space.param_space:
            raise ConfigError(f"--max-epochs: '{ef}' is searched by {space.name}; pin it with --set {ef}=N")
        full = int(getattr(cfg, ef))
        if inv.max_epochs < full:
            base[ef] = inv.max_epochs
            epochs_note = f"{inv.max_epochs} epochs (--max-epochs {inv.max_epochs}; without it {full})"
            cfg = _validate(info, base, seed, "--max-epochs")

    searched = set(space.param_space)
    is_eval = bool(searched) and searched <= set(info.inference_fields)
    if inv.from_run and not is_eval:
        raise ConfigError(f"--from-run: {space.name} searches training fields ({', '.join(sorted(searched))}); "
                          f"--from-run only serves evaluation sweeps (inference fields of {info.name}: "
                          f"{', '.join(info.inference_fields) or 'none'})")
    if space.searcher == "grid":
        if inv.num_samples is not None:
            raise ConfigError(f"--num-samples: {space.name} is a grid sweep ({space.grid_size(inv.profile)} trials, "
                              "each grid point once); change its 'seeds' or values instead")
        n_trials = space.grid_size(inv.profile)
    else:
        n_trials = inv.num_samples or space.num_samples_for(inv.profile)
    discrete_combinations(space, info.data_fields, base)  # data fields must be enumerable
    return SweepPlan(inv, space, info, profile, base, pinned, is_eval, n_trials, epochs_note)


# ------------------------------------------------------------------------------------------------
# new runs and --resume


def _declared(profile: Profile, override: ProfileOverride | None) -> Profile:
    """The workload's profile with what a search space declares for its own fixed values on top
    (e.g. the Japanese sweep's text encoder and segmenter stand-ins)."""
    if override is None:
        return profile
    return dataclasses.replace(
        profile, substitutions={**profile.substitutions, **override.substitutions},
        shortened={**profile.shortened, **override.shortened},
        choices={**profile.choices, **override.choices}, deviations={**profile.deviations, **override.deviations})


RESUME_FLAGS = ("profile", "data_root", "num_samples", "max_epochs", "overrides", "skip_bad_items", "cache_dir",
                "tracking_uri", "from_run", "gpus_per_worker", "max_concurrent", "max_retries")


def records_path(sweep_root: str, experiment: str) -> str:
    return storage.join(sweep_root, "records", experiment)


def new_experiment(inv: Invocation) -> Invocation:
    space_name = Path(inv.sweep).stem if inv.sweep.endswith(".yaml") else inv.sweep
    inv.experiment = f"{space_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return inv


def restore_invocation(sweep: str, storage_path: str, given: dict[str, Any], retry_failed: bool = False) -> Invocation:
    """The invocation of the latest run of ``sweep`` under ``storage_path``, checked against the
    flags given now: a flag that differs from the run's is an error (a resumed sweep is the same
    sweep), and a finished run has nothing to resume unless its failed trials are retried."""
    space_name = Path(sweep).stem if sweep.endswith(".yaml") else sweep
    root = storage.join(storage.resolve(storage_path), space_name)
    latest = storage.join(root, LATEST_FILE)
    if not storage.exists(latest):
        raise ConfigError(f"--resume: nothing to resume: no earlier run of {space_name!r} under {root}")
    experiment = storage.read_text(latest).strip()
    inv_file = storage.join(records_path(root, experiment), INVOCATION_FILE)
    if not storage.exists(inv_file):
        raise ConfigError(f"--resume: nothing to resume: {experiment} has no {INVOCATION_FILE} (made before "
                          "resume kept invocations; start it again without --resume)")
    saved = Invocation.from_json(storage.read_text(inv_file))
    tracking = storage.join(records_path(root, experiment), TRACKING_FILE)
    if (not retry_failed and storage.exists(tracking)
            and json.loads(storage.read_text(tracking)).get("status") == "FINISHED"):
        raise ConfigError(f"--resume: nothing to resume: {experiment} finished; run without --resume for a new sweep")
    for flag in RESUME_FLAGS:
        if flag in given and given[flag] != getattr(saved, flag):
            cli = "--set" if flag == "overrides" else "--" + flag.replace("_", "-")
            raise ConfigError(f"--resume: {cli} {given[flag]!r} differs from the interrupted run's "
                              f"{getattr(saved, flag)!r}; omit it to continue the same sweep ({experiment})")
    saved.storage_path = storage.resolve(storage_path)
    return saved


def record_invocation(plan: SweepPlan) -> None:
    storage.write_text(storage.join(plan.records_path, INVOCATION_FILE), plan.inv.to_json())
    storage.write_text(storage.join(plan.sweep_root, LATEST_FILE), plan.inv.experiment)
