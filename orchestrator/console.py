"""What the sweep prints: one line per trial start and end, a short status line at most every
30 s on a terminal (none when piped), and nothing from Ray's internals unless ``--verbose``.

Ray's own output is for Ray developers: Tune's boxed tables per trial, Train's per-report lines,
Data's operator summaries, TensorBoard logger notices. :func:`quiet_ray` turns those off at their
source (environment, log levels, Tune verbosity 0, no worker log forwarding) and filters the two
upstream warnings our calls cannot avoid, naming why next to each filter.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from typing import Any

STATUS_EVERY_S = 30.0


def quiet_ray(verbose: bool) -> None:
    """Call before ``ray.init``. ``verbose`` keeps Ray's own logs and output."""
    if verbose:
        return
    # Tune's "new output" engine prints its configuration box and per-trial tables even at
    # verbosity 0; the legacy reporter at verbosity 0 prints nothing (trial lines are ours).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is first imported
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")  # read when Ray Data first configures its logger
    # Not silenced: the driver's core worker prints one error-level line the first time Ray Data
    # starts an actor pool ("constructor arguments in the object store and max_restarts > 0",
    # ray-project/ray#57733, a false alarm for any actor pool); it can only be avoided through a
    # deprecated map_batches argument, and hiding C++ logs would hide real errors too.
    # The driver logs each finished trial's tables, figures and model to MLflow inside a Tune
    # callback (only the driver may write a sqlite store): a second or two by design, above
    # Tune's 0.5 s "performance bottleneck" warning.
    os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "30")
    # Train V2 passes our datasets through its DataConfig, which sets the deprecated
    # ExecutionOptions.exclude_resources inside Ray (ray/train/v2/_internal); no call of ours does.
    warnings.filterwarnings("ignore", message=".*exclude_resources.*")
    # tensorboardX (Tune's default TensorBoard logger) logs an INFO line per "illegal" metric
    # name, and ours contain '/'; MLflow and alembic announce their database setup at INFO.
    for name in ("ray", "ray.data", "ray.tune", "ray.train", "ray.air", "mlflow", "alembic", "matplotlib",
                 "urllib3", "tensorboardX"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # On a local cluster Ray generates the token itself; the notice is for clusters exposed to others
    # (cluster.yaml sets the token up for every node).
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
        lambda r: "Token authentication is enabled" not in r.getMessage())
    # Ray Data warns once per process that its bars are off: they are, on purpose (one line per view)
    logging.getLogger("ray.data._internal.progress").addFilter(
        lambda r: "Progress bars" not in r.getMessage())
    logging.getLogger("ray.tune.tune").addFilter(_TuneHintFilter())
    # Tune builds a result grid from each trial's result.json after fit(); the sweep reads its own
    # run records instead, so a resumed trial whose file Tune has not synced yet is no concern here
    logging.getLogger("ray.tune.analysis.experiment_analysis").addFilter(
        lambda r: "Failed to fetch metrics" not in r.getMessage())
    logging.getLogger("ray.tune.execution.tune_controller").addFilter(_TuneHintFilter())


class _TuneHintFilter(logging.Filter):
    """Tune's Ctrl-C messages name ``Tuner.restore(...)``; the sweep prints its own resume command."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(s in msg for s in ("Tuner.restore", "Stop signal received", "Trials did not complete",
                                          "most recent state was saved"))


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    s = str(v)
    return s if len(s) <= 24 else s[:21] + "..."


class ConsolePrinter:
    """Trial start/end lines (number, params, best validation value, time, early stop) and a
    status line at most every 30 s on a terminal. Driven by the tracking callback, which numbers
    the trials in the run record (so numbers survive ``--resume`` and match the result table)."""

    def __init__(self, searched: list[str], metric: str, mode: str, n_trials: int, label: str = "trial") -> None:
        self.searched, self.metric, self.mode, self.n_trials, self.label = searched, metric, mode, n_trials, label
        self.started: dict[str, float] = {}
        self.last_status = time.time()

    def _print(self, text: str) -> None:
        print(text, flush=True)

    def _name(self, number: int) -> str:
        return f"[{self.label} {number}/{self.n_trials}]"

    def _params(self, config: dict[str, Any]) -> str:
        keys = [k for k in self.searched if k in config] + (["seed"] if "seed" in config else [])
        return " ".join(f"{k}={_short(config[k])}" for k in keys)

    def _elapsed(self, trial_id: str) -> str:
        s = time.time() - self.started.get(trial_id, time.time())
        return f"{s / 60:.1f} min" if s >= 120 else f"{s:.0f}s"

    def start(self, number: int, trial_id: str, config: dict[str, Any]) -> None:
        self.started[trial_id] = time.time()
        self._print(f"{self._name(number)} start  {self._params(config)}")

    def end(self, number: int, trial_id: str, status: str, best: float | None) -> None:
        value = f"best {self.metric}={best:.4g}" if best is not None else f"no {self.metric}"
        how = "stopped early by the scheduler" if status == "stopped-early" else "done"
        self._print(f"{self._name(number)} {how}: {value}, {self._elapsed(trial_id)}")

    def failed(self, number: int, trial_id: str, reason: str) -> None:
        self._print(f"{self._name(number)} FAILED after {self._elapsed(trial_id)}: {reason}")

    def retry(self, number: int, trial_id: str, attempt: int, reason: str) -> None:
        self._print(f"{self._name(number)} lost after {self._elapsed(trial_id)} ({reason}); "
                    f"retry {attempt} from its newest checkpoint")

    def status(self, records: dict[str, dict[str, Any]], force: bool = False) -> None:
        if not (force or (sys.stdout.isatty() and time.time() - self.last_status >= STATUS_EVERY_S)):
            return
        self.last_status = time.time()
        counts: dict[str, int] = {}
        best: tuple[int, float] | None = None
        for rec in records.values():
            counts[rec.get("status", "?")] = counts.get(rec.get("status", "?"), 0) + 1
            v = rec.get("metrics", {}).get(f"best/{self.metric}")
            if v is not None and (best is None or (v > best[1] if self.mode == "max" else v < best[1])):
                best = (rec.get("number", 0), v)
        pending = self.n_trials - len(records)
        if pending > 0:
            counts["not started"] = pending
        self._print("[status] " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                    + (f"; best {self.metric} so far {best[1]:.4g} (trial {best[0]})" if best else ""))
