"""MLflow tracking from the sweep driver: one experiment per search space, one parent run per sweep
invocation, one child run per trial (``mlflow.parentRunId``).

Only the driver writes (a sqlite store takes one writer): trials hand their tables and figures
over in their final Tune checkpoint, and :class:`MlflowTrialCallback` (a Tune callback, so it runs
in the driver) logs them. The parent and child run ids are kept in ``tracking.json`` in the
sweep's records (beside Tune's experiment directory), so ``--resume`` continues the same runs.

The store may be older than ``tracking.json``: a sqlite store restored from a backup taken before
the head was lost. ``--resume`` then re-creates the runs the store no longer has and completes the
finished trials' runs from their records (see :meth:`SweepTracker.start_parent`). A PostgreSQL
store (``postgresql://user:pw@host:port/db``, e.g. RDS) outlives the head and needs none of this.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from ray import tune

from orchestrator import storage
from orchestrator.config import flatten

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
_INVALID = re.compile(r"[^\w\-. :/]")


def metric_name(key: str) -> str:
    """MLflow accepts ``[/\\w.\\- :]`` only: ``recall@20`` becomes ``recall20``."""
    return _INVALID.sub("", key)


def git_commit(cwd: Path | None = None) -> str:
    """HEAD of the checkout; where there is no ``.git`` (a cluster node: ``ray up`` does not sync
    it), the commit the submitter passed in ``GIT_COMMIT`` (deploy/submit_sweep.sh); else unknown."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=cwd or Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        import os  # here, not at the top: this function is the module's only user

        return os.environ.get("GIT_COMMIT", "").strip() or "unknown"


def artifact_root_for(tracking_uri: str) -> str | None:
    """Local sqlite stores keep artifacts in ``mlruns/artifacts`` beside the database. A database
    server named directly (``postgresql://``) has no place for files, and MLflow's own default
    would be ``./mlruns`` wherever the driver happens to run: they go to ``mlruns/artifacts`` under
    the working directory, as with the default sqlite store. (On a cluster the driver talks to the
    head's ``mlflow server``, whose ``--artifacts-destination`` is the bucket; this is not used.)"""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.resolve().parent / "artifacts").as_uri()
    if tracking_uri.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "mysql", "mssql"):
        return (Path("mlruns") / "artifacts").resolve().as_uri()
    return None


class SweepTracker:
    """Owns the MLflow client and the parent run; creates and finishes child runs."""

    def __init__(self, tracking_uri: str, experiment: str, state_file: str):
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent.mkdir(parents=True, exist_ok=True)
        self.uri = tracking_uri
        self.experiment = experiment
        self.client = MlflowClient(tracking_uri)
        self.experiment_id = self._experiment_id()
        self.state_file = state_file  # a path or URI beside the Tune experiment (see orchestrator.storage)
        self.state: dict[str, Any] = self._load()
        self.resumed = False  # the parent run existed (--resume): a trial's run may predate tracking.json
        self.recreated_parent = False  # --resume found the store without the parent run (an older store)

    def _experiment_id(self) -> str:
        """The sweep's experiment, marked as model development: without the kind, MLflow 3's UI
        opens an experiment on its GenAI overview (traces, tokens), where a sweep shows nothing."""
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            exp_id = self.client.create_experiment(self.experiment, artifact_location=artifact_root_for(self.uri),
                                                   tags={EXPERIMENT_KIND: "custom_model_development"})
        else:
            exp_id = exp.experiment_id
            if exp.tags.get(EXPERIMENT_KIND) != "custom_model_development":
                self.client.set_experiment_tag(exp_id, EXPERIMENT_KIND, "custom_model_development")
        return exp_id

    def _load(self) -> dict[str, Any]:
        return json.loads(storage.read_text(self.state_file)) if storage.exists(self.state_file) else {"children": {}}

    def reload(self) -> None:
        """Re-read the run record (Tune's callbacks, possibly restored from a pickle, wrote it)."""
        self.state = self._load()

    # -- parent ------------------------------------------------------------------------------
    def start_parent(self, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        """A new parent run, or (``--resume``) the recorded one, which the store must have: a store
        restored from an older backup may lack it, or some child runs, or the end of finished
        trials; those are re-created from ``tracking.json`` before any trial runs."""
        if self.state.get("parent"):
            self.resumed = True
            if self._run(self.state["parent"]) is None:
                self._recreate_parent(run_name, params, tags)
            else:
                self.client.update_run(self.state["parent"], status="RUNNING")
            self._restore_children()
            return self.state["parent"]
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        self.state["parent"] = run.info.run_id
        self._log_params(run.info.run_id, params)
        self.save()
        return run.info.run_id

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks with the experiment; the client is rebuilt, and the run ids
        are re-read from ``tracking.json`` on restore (the pickle predates the trials)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("client", "state")}

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        self.client = MlflowClient(self.uri)
        self.state = self._load()
        if getattr(self, "experiment", None):  # the store may have been restored since the pickle
            self.experiment_id = self._experiment_id()

    # -- an older store (--resume after the head was lost) -------------------------------------
    def _run(self, run_id: str) -> Run | None:
        """The run, or None where the store does not have it."""
        try:
            return self.client.get_run(run_id)
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def _recreate_parent(self, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        old = self.state["parent"]
        run = self.client.create_run(self.experiment_id, run_name=run_name,
                                     tags={**tags, "recreated_from_run_id": old})
        self._log_params(run.info.run_id, params)
        log.warning("the tracking store has no parent run %s (restored from an older backup?): "
                    "re-created as %s", old, run.info.run_id)
        self.state["parent"] = run.info.run_id
        self._replace_run_id(old, run.info.run_id)
        self.recreated_parent = True
        self.save()

    def _restore_children(self) -> None:
        """Each child run ``tracking.json`` names: re-created where the store lacks it (same name,
        tags and params), and brought to what its trial record says: a finished trial's run gets
        its recorded final metrics and artifacts and is FINISHED, a failed one is FAILED."""
        records = self._trial_records()
        for trial_id, run_id in list(self.state["children"].items()):
            rec = records.get(trial_id, {})
            run = self._run(run_id)
            if run is None:
                run = self._recreate_child(trial_id, run_id, rec)
            self._complete(run, rec)
        self.save()

    def _recreate_child(self, trial_id: str, old: str, rec: dict[str, Any]) -> Run:
        tags = {"mlflow.parentRunId": self.parent_id, "trial_id": trial_id,
                **self.state.get("child_tags", {}).get(trial_id, {}), "recreated_from_run_id": old}
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{trial_id}", tags=tags)
        self._log_params(run.info.run_id, rec.get("config", {}))
        log.warning("the tracking store has no run %s of trial %s: re-created as %s", old, trial_id, run.info.run_id)
        self.state["children"][trial_id] = run.info.run_id
        self._replace_run_id(old, run.info.run_id)
        return self.client.get_run(run.info.run_id)

    def _complete(self, run: Run, rec: dict[str, Any]) -> None:
        """Log what the run lacks of a finished trial's record (metrics already there, such as a
        validation history, are left as they are) and end it as the record says."""
        run_id, status = run.info.run_id, rec.get("status")
        if status in ("ok", "stopped-early") and (rec.get("artifacts") or _has_test(rec)):
            if run.info.status == "FINISHED" and all(metric_name(k) in run.data.metrics for k in rec.get("metrics", {})):
                return
            missing = {k: v for k, v in rec.get("metrics", {}).items() if metric_name(k) not in run.data.metrics}
            self.log_final(run_id, missing, rec.get("artifacts"))
            self.finish(run_id, "FINISHED")
        elif status == "failed" and run.info.status != "FAILED":
            self.log_tags(run_id, {"failure_reason": rec.get("error", "unknown error")})
            self.finish(run_id, "FAILED")

    def _trial_records(self) -> dict[str, dict[str, Any]]:
        """Trial id -> outcome, over every section of trial records (trials, source trainings)."""
        out: dict[str, dict[str, Any]] = {}
        for key, section in self.state.items():
            if key not in ("children", "child_tags") and isinstance(section, dict):
                out.update({t: r for t, r in section.items() if isinstance(r, dict) and "config" in r})
        return out

    def _replace_run_id(self, old: str, new: str) -> None:
        """Every record naming the run ``old`` (trial records, trained sources) names ``new``."""
        for key, section in self.state.items():
            if key in ("children", "recreated_runs") or not isinstance(section, dict):
                continue
            for rec in section.values():
                if isinstance(rec, dict) and rec.get("run_id") == old:
                    rec["run_id"] = new
        self.state.setdefault("recreated_runs", {})[old] = new

    @property
    def parent_id(self) -> str:
        return self.state["parent"]

    def finish_parent(self, status: str = "FINISHED") -> None:
        """FINISHED, FAILED or KILLED (interrupted: ``--resume`` continues it)."""
        self.client.set_terminated(self.parent_id, status=status)
        self.state["status"] = status
        self.save()

    # -- children ----------------------------------------------------------------------------
    def child_for(self, trial_id: str, config: dict[str, Any], tags: dict[str, str]) -> str:
        if trial_id in self.state["children"]:
            return self.state["children"][trial_id]
        # kept so that --resume can re-create the run in a store that lost it (an older backup)
        self.state.setdefault("child_tags", {})[trial_id] = dict(tags)
        orphan = self._orphan(trial_id) if self.resumed else None
        if orphan is not None:  # created just before the driver died, before tracking.json knew it
            self._log_params(orphan, config)  # the same values again: completes a cut-off batch
            self.state["children"][trial_id] = orphan
            self.save()
            return orphan
        run = self.client.create_run(
            self.experiment_id, run_name=f"trial-{trial_id}",
            tags={"mlflow.parentRunId": self.parent_id, "trial_id": trial_id, **tags})
        self._log_params(run.info.run_id, config)
        self.state["children"][trial_id] = run.info.run_id
        self.save()
        return run.info.run_id

    def _orphan(self, trial_id: str) -> str | None:
        runs = self.client.search_runs([self.experiment_id], max_results=1, filter_string=(
            f"tags.trial_id = '{trial_id}' and tags.`mlflow.parentRunId` = '{self.parent_id}'"))
        return runs[0].info.run_id if runs else None

    def log_metrics(self, run_id: str, metrics: dict[str, Any], step: int | None = None,
                    tags: dict[str, str] | None = None) -> None:
        """One store write per 900 metrics (``tags`` go with the first): a trial's final metrics,
        whatever their number, cost one sqlite transaction, not one per group."""
        ms = [Metric(metric_name(k), float(v), _now_ms(), step or 0) for k, v in metrics.items()
              if isinstance(v, int | float) and not isinstance(v, bool)]
        extra = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
        for i in range(0, max(len(ms), 1 if extra else 0), 900):
            self.client.log_batch(run_id, metrics=ms[i:i + 900], tags=extra if i == 0 else [])

    def log_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_table(self, run_id: str, name: str, df: pd.DataFrame) -> None:
        """``tables/<name>.json`` in MLflow's table format, REPLACING an earlier version:
        ``MlflowClient.log_table`` appends to an existing file, which doubled every row of a
        resumed sweep's trials table (and of a re-run trial's tables)."""
        from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS

        path = f"tables/{name}.json"
        from orchestrator.report import markdown_table

        with tempfile.TemporaryDirectory() as d:
            local = Path(d) / f"{name}.json"
            df.to_json(local, orient="split", index=False, date_format="iso")
            # the same table as Markdown, which MLflow's artifact view renders (JSON is for scripts)
            (Path(d) / f"{name}.md").write_text(markdown_table(df) + "\n")
            self.client.log_artifacts(run_id, d, "tables")
        logged = json.loads(self.client.get_run(run_id).data.tags.get(MLFLOW_LOGGED_ARTIFACTS, "[]"))
        if {"path": path, "type": "table"} not in logged:  # what the MLflow UI lists as a table
            self.client.set_tag(run_id, MLFLOW_LOGGED_ARTIFACTS, json.dumps([*logged, {"path": path, "type": "table"}]))

    def log_table_files(self, run_id: str, tables_dir: Path) -> dict[str, str]:
        """Upload a trial's ``tables/*.json`` (already MLflow's "split" table format) as they are,
        in one copy; returns the run tag that makes the MLflow UI list them as tables (to be
        written with the run's metrics), or nothing when it already does."""
        from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS

        names = sorted(p.name for p in tables_dir.glob("*.json"))
        if not names:
            return {}
        self.client.log_artifacts(run_id, str(tables_dir), "tables")
        logged = json.loads(self.client.get_run(run_id).data.tags.get(MLFLOW_LOGGED_ARTIFACTS, "[]"))
        new = [{"path": f"tables/{n}", "type": "table"} for n in names]
        new = [e for e in new if e not in logged]
        return {MLFLOW_LOGGED_ARTIFACTS: json.dumps([*logged, *new])} if new else {}

    def set_note(self, run_id: str, markdown: str) -> None:
        """The run's description, which the MLflow UI renders as Markdown on the run's Overview."""
        self.client.set_tag(run_id, "mlflow.note.content", markdown)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_final(self, run_id: str, metrics: dict[str, Any], location: str | Path | None) -> None:
        """The trial's artifacts (tables, figures, config, model), then its metrics with the tag
        that lists the tables, in one store write. ``location`` is where the artifacts are (a local
        directory, or the checkpoint in Tune storage, which may be a bucket). The driver does this
        for every trial while Tune waits, so store writes are what an evaluation trial costs."""
        tags: dict[str, str] = {}
        if location is None or not storage.exists(str(location)):
            log.warning("trial artifacts %s not found; tables not logged", location)
        elif storage.is_uri(str(location)):
            with tempfile.TemporaryDirectory(prefix="trial-artifacts-") as d:
                tags = self._log_trial_artifacts(run_id, storage.download_dir(str(location), d))
        else:
            tags = self._log_trial_artifacts(run_id, Path(location))
        self.log_metrics(run_id, metrics, tags=tags)

    def _log_trial_artifacts(self, run_id: str, ckpt_dir: Path) -> dict[str, str]:
        tags = self.log_table_files(run_id, ckpt_dir / "tables") if (ckpt_dir / "tables").is_dir() else {}
        if any((ckpt_dir / "figures").glob("*.png")):
            self.client.log_artifacts(run_id, str(ckpt_dir / "figures"), "figures")
        if (ckpt_dir / "config.json").exists():  # what --from-run rebuilds the model from
            self.log_artifact(run_id, ckpt_dir / "config.json")
        model = ckpt_dir / "model.pt"
        if model.exists():
            self.log_artifact(run_id, model, "model")
        elif (ckpt_dir / "model_checkpoint.txt").exists():  # fine-tuned encoders stay in Train storage
            tags["model_checkpoint"] = (ckpt_dir / "model_checkpoint.txt").read_text()
        return tags

    def log_stopped_test(self, run_id: str, finish: Any) -> dict[str, Any]:
        """Log a stopped trial's finished test pass (``finish() -> (metrics, artifacts location)``)
        and end its run: FINISHED, or FAILED when the pass failed (the trial itself ran). Returns
        what the trial's record gains (``metrics`` and ``artifacts``, or ``error``)."""
        try:
            metrics, art = finish()
        except Exception as e:
            reason = f"testing the stopped trial's checkpoint failed: {type(e).__name__}: {e}"
            self.log_tags(run_id, {"failure_reason": reason[:5000]})
            self.finish(run_id, "FAILED")
            return {"error": reason}
        self.log_final(run_id, metrics, art)
        self.finish(run_id, "FINISHED")
        return {"metrics": _plain(metrics), "artifacts": art}

    def reopen(self, run_id: str) -> None:
        """A failed trial's run, running again (its failure reason moves to ``retry.failed_reason``)."""
        run = self.client.get_run(run_id)
        reason = run.data.tags.get("failure_reason")
        if reason:
            self.log_tags(run_id, {"retry.failed_reason": reason})
            self.client.delete_tag(run_id, "failure_reason")
        self.client.update_run(run_id, status="RUNNING")

    def finish(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status=status)

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        flat = flatten(params)
        ps = [Param(k, str(v)[:6000]) for k, v in sorted(flat.items())]
        for i in range(0, len(ps), 90):
            self.client.log_batch(run_id, params=ps[i:i + 90])

    def save(self) -> None:
        storage.write_text(self.state_file, json.dumps(self.state, indent=2))


def _has_test(rec: dict[str, Any]) -> bool:
    return any(k.startswith(("test/", "test_last/")) for k in rec.get("metrics", {}))


EXPERIMENT_KIND = "mlflow.experimentKind"


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def table_from_json(text: str) -> pd.DataFrame:
    """A table a trial wrote (pandas "split" JSON)."""
    payload = json.loads(text)
    return pd.DataFrame(payload["data"], columns=payload["columns"])


class MlflowTrialCallback(tune.Callback):
    """Mirrors Tune trials into child runs: params at start, validation metrics per report
    (step = epoch), and at the end test metrics, result tables and figures from the trial's final
    checkpoint. Failed trials are marked FAILED with the reason as a tag.

    It also keeps each trial's outcome in the tracker's state (``tracking.json``: status, config,
    final metrics, where its artifacts are), which is what the sweep's result table is built
    from, including trials an interrupted sweep never finished."""

    def __init__(self, tracker: SweepTracker, child_tags: dict[str, str], on_stopped: Any = None,
                 tags_for: Any = None, metric: str = "", state_key: str = "trials", console: Any = None):
        self.tracker = tracker
        self.child_tags = child_tags
        # callable(trial, last_train_checkpoint) -> (ObjectRef of its test pass, finish() -> (metrics,
        # artifacts location)); the pass runs while the sweep goes on (see _drain_stopped)
        self.on_stopped = on_stopped
        self.tags_for = tags_for  # callable(trial config) -> per-trial tags (data join counts, source run)
        self.metric = metric
        self.state_key = state_key  # where outcomes go in tracking.json ("trials"; source trainings apart)
        self.console = console  # orchestrator.console.ConsolePrinter: one line per trial start and end
        self.last_ckpt: dict[str, str] = {}
        self.finalised: set[str] = set()
        self.failed: set[str] = set()  # trials that ended with a failed final result
        self.stopped: dict[str, tuple[Any, str, Any, Any]] = {}  # trial id -> (trial, run, ref, finish)

    def _child(self, trial: Any) -> str:
        if trial.trial_id in self.tracker.state["children"]:
            return self.tracker.state["children"][trial.trial_id]
        extra = self.tags_for(trial.config) if self.tags_for else {}
        return self.tracker.child_for(trial.trial_id, trial.config, {**self.child_tags, **extra})

    def _record(self, trial: Any, **fields: Any) -> dict[str, Any]:
        """Update the trial's outcome in the run record; trials are numbered 1, 2, ... as they
        first appear (what the console and the result table call them)."""
        records = self.tracker.state.setdefault(self.state_key, {})
        rec = records.setdefault(trial.trial_id, {"number": len(records) + 1})
        if "metrics" in fields:
            fields["metrics"] = {**rec.get("metrics", {}), **fields["metrics"]}
        rec.update(fields, config=dict(trial.config or {}), run_id=self.tracker.state["children"].get(trial.trial_id))
        self.tracker.save()
        return rec

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self._child(trial)
        before = self.tracker.state.get(self.state_key, {}).get(trial.trial_id, {})
        if before.get("status") == "failed":  # --resume --retry-failed: it runs again
            self.tracker.reopen(run_id)
            before.pop("error", None)
        rec = self._record(trial, status="running")
        if self.console:
            self.console.start(rec["number"], trial.trial_id, rec["config"])

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self._child(trial)
        if result.get("checkpoint_path"):  # a Train run's checkpoint (TuneReportCallback)
            self.last_ckpt[trial.trial_id] = result["checkpoint_path"]
        elif result.get("checkpoint_dir_name") and not result.get("final"):  # a trial process's own
            self.last_ckpt[trial.trial_id] = _trial_uri(trial, result["checkpoint_dir_name"])
        if result.get("final") and result.get("failed"):  # failed by itself: final, not retried
            self.failed.add(trial.trial_id)
            self._fail(trial, run_id, str(result.get("failure_reason") or "unknown error"))
            return
        if result.get("final"):
            ckpt_dir = _trial_uri(trial, result["checkpoint_dir_name"]) if result.get("checkpoint_dir_name") else None
            final = {k: v for k, v in result.items() if k.startswith(("test/", "test_last/", "data/", "val/", "best/"))}
            # evaluation trials report validation once, with the test
            logged = ("test/", "test_last/", "data/", "best", *(("val/",) if result.get("eval_only") else ()))
            self.tracker.log_final(run_id, {k: v for k, v in result.items() if k.startswith(logged)}, ckpt_dir)
            self.finalised.add(trial.trial_id)
            self._record(trial, metrics=_plain(final), artifacts=ckpt_dir)
            return
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        self.tracker.log_metrics(run_id, {k: v for k, v in result.items()
                                          if k.startswith(("val/", "train/", "best/"))}, step=step)
        self._record(trial, metrics=_plain({k: v for k, v in result.items() if k.startswith("best/")}))
        if self.console:
            self.console.status(self.tracker.state.get(self.state_key, {}))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.failed:
            return
        run_id = self._child(trial)
        status = "ok"
        pending_test = False
        if trial.trial_id not in self.finalised:
            # stopped early by the scheduler: its best checkpoint so far is tested by a task that
            # runs once Tune has released the trial's resources (finished in _drain_stopped)
            self.tracker.log_tags(run_id, {"stopped_early": "true"})
            status = "stopped-early"
            ckpt = self.last_ckpt.get(trial.trial_id)
            if self.on_stopped and ckpt:
                ref, finish = self.on_stopped(trial, ckpt)
                self.stopped[trial.trial_id] = (trial, run_id, ref, finish)
                pending_test = True
        # a stopped trial's test checkpoint: a resumed sweep finishes a test pass the driver lost
        extra = {"test_checkpoint": self.last_ckpt[trial.trial_id]} if pending_test else {}
        rec = self._record(trial, status=status, **extra)
        if not pending_test:
            self.tracker.finish(run_id, "FINISHED")
        if self.console:
            self.console.end(rec["number"], trial.trial_id, status, rec.get("metrics", {}).get(f"best/{self.metric}"))

    def _drain_stopped(self, wait: bool) -> None:
        """Log the test results of stopped trials whose test pass is done (all of them if
        ``wait``); the MLflow run of such a trial finishes with them."""
        import ray

        for trial_id, (trial, run_id, ref, finish) in list(self.stopped.items()):
            if not wait and not ray.wait([ref], timeout=0)[0]:
                continue
            del self.stopped[trial_id]
            fields = self.tracker.log_stopped_test(run_id, finish)
            if "error" not in fields:
                self.finalised.add(trial_id)
            self._record(trial, **fields)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self.stopped:
            self._drain_stopped(wait=False)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Its process or node died; Tune starts it again from its newest checkpoint."""
        run_id = self._child(trial)
        reason = failure_reason(trial)
        retries = int(trial.run_metadata.num_failures)
        self.tracker.log_tags(run_id, {"retries": str(retries), f"retry.{retries}.reason": reason[:5000]})
        rec = self._record(trial, retries=retries)
        if self.console:
            self.console.retry(rec["number"], trial.trial_id, retries, reason)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Its process or node died more often than ``--max-retries`` allows."""
        self._fail(trial, self._child(trial), failure_reason(trial))

    def _fail(self, trial: Any, run_id: str, reason: str) -> None:
        self.tracker.log_tags(run_id, {"failure_reason": reason[:5000]})
        self.tracker.finish(run_id, "FAILED")
        rec = self._record(trial, status="failed", error=reason)
        if self.console:
            self.console.failed(rec["number"], trial.trial_id, reason)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Stopped trials' test passes are waited for (every trial's resources are free now);
        trials an interrupted sweep did not finish stay 'pending' (``--resume`` runs them)."""
        self._drain_stopped(wait=True)
        for trial in trials:
            rec = self.tracker.state.get(self.state_key, {}).get(trial.trial_id)
            if rec is None or rec.get("status") == "running":
                self._record(trial, status="pending")
                if trial.trial_id in self.tracker.state["children"]:
                    self.tracker.finish(self.tracker.state["children"][trial.trial_id], "KILLED")


def _trial_uri(trial: Any, name: str) -> str:
    """A trial's file or directory in Tune storage as a URI (Tune keeps scheme-less bucket paths)."""
    return storage.uri(trial.storage.storage_filesystem, f"{trial.path}/{name}")


def _plain(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def failure_reason(trial: Any) -> str:
    """The last meaningful line of the trial's error file (``TrialFailed: diverged ...``); for a
    process that died, Ray's one-sentence exit detail (its paragraph of common causes is in the
    error file)."""
    path = trial.error_file
    text = Path(path).read_text() if path and Path(path).exists() else str(trial.get_error() or "")
    died = re.search(r"Worker exit detail: ([^.]*\.)", text)
    if died:
        return f"its process died: {died.group(1)}"
    if "NodeDiedError" in text or "node died" in text.lower():
        return "its node died"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "TrialFailed:" in ln:
            return ln.split("TrialFailed:", 1)[1].strip()
    return lines[-1] if lines else "unknown error"

