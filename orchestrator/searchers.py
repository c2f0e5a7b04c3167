"""The sweep's Optuna searcher, told about trials that failed by themselves.

A trial whose own computation failed (it diverged, a workload raised) ends with a final result
marked ``failed`` (``orchestrator.trials.failures_reported``) instead of an error, so that Tune does
not retry it. Optuna must still record it as failed, not as a value: Ray's ``OptunaSearch`` would
pass the NaN on to ``study.tell``, which rejects it with a logged warning.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch


class OptunaSearchWithFailures(OptunaSearch):
    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if result and result.get("failed"):
            result, error = None, True
        super().on_trial_complete(trial_id, result, error)
