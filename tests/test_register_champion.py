"""The champion alias moves only to a better run on the sweep's selection metric, and a sweep whose
trials all failed registers nothing and says so in one line (no sweep needed: a bare store)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from orchestrator.register import _promote, at_sweep_end


def _store(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("s", artifact_location=(tmp_path / "art").as_uri())
    client.create_registered_model("s")
    return client, exp


def _version(client, exp, value: float) -> str:
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "best/val/loss", value)
    v = client.create_model_version("s", f"runs:/{run.info.run_id}/retrieval_model/test", run_id=run.info.run_id,
                                    tags={"selection_metric": "val/loss"})
    return str(v.version)


def test_champion_moves_only_to_a_better_run(tmp_path: Path) -> None:
    client, exp = _store(tmp_path)
    champion = lambda: str(client.get_model_version_by_alias("s", "champion").version)  # noqa: E731
    v1 = _version(client, exp, 1.0)
    assert _promote(client, "s", v1, "val/loss", "min", 1.0, False)[0] and champion() == v1
    v2 = _version(client, exp, 1.5)  # worse (mode min)
    moved, note = _promote(client, "s", v2, "val/loss", "min", 1.5, False)
    assert not moved and champion() == v1 and "stays version 1" in note
    v3 = _version(client, exp, 0.5)  # better
    moved, note = _promote(client, "s", v3, "val/loss", "min", 0.5, False)
    assert moved and champion() == v3 and "was version 1" in note
    moved, note = _promote(client, "s", v2, "val/other", "min", 0.1, False)  # another metric: not compared
    assert not moved and "not compared" in note
    assert _promote(client, "s", v2, "val/loss", "min", 1.5, True)[0] and champion() == v2  # --champion


def test_a_sweep_without_finished_trials_registers_nothing(capsys) -> None:
    sweep = SimpleNamespace(plan=SimpleNamespace(space=SimpleNamespace(name="all_failed")),
                            tracker=SimpleNamespace(state={"trials": {"t1": {"status": "failed", "run_id": "r"}}}))
    at_sweep_end(sweep, SimpleNamespace(n_ok=0, best_trial=None))
    assert capsys.readouterr().out == "[register] all_failed: no finished trial, nothing registered\n"
