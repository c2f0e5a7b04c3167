"""python -m orchestrator.register RUN_ID: a finished trial as a registered retrieval model.

The trial's head (``config.json`` + ``model/model.pt``, or the fine-tuned checkpoint its
``model_checkpoint`` tag names; an evaluation trial's model is its source run's), the frozen
encoders its views read (ids and parameters), a FAISS index over a corpus split in the head's
output space and the items' metadata become an MLflow ``pyfunc`` model (``orchestrator.
retrieval_pyfunc``; the directory layout is ``orchestrator.retrieval_model``'s), logged as an
MLflow logged model whose source is the trial's run (the run's output, shown in the runs table) and
registered as a version of the model named after the sweep; the same run and split are
registered once. The alias ``champion`` moves to it when there is none yet or when its selection metric
(the sweep's, ``best/<metric>`` of the run) beats the current champion's; ``--champion`` moves it
regardless. The sweep's parent run gets the tag ``registered_model_version`` (``NAME/VERSION``).

A sweep registers its best trial this way when it ends (:func:`at_sweep_end`); set
``ORCHESTRATOR_REGISTER=0`` to skip that (e.g. when timing a sweep against a plain loop).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

CHAMPION = "champion"
ARTIFACT_PATH = "retrieval_model"
SPLITS = ("test", "val", "train", "all")
PARENT_TAG = "registered_model_version"


class RegisterError(RuntimeError):
    """Why a run cannot be registered, in one line."""


@dataclass
class Registered:
    name: str
    version: str
    run_id: str
    champion: bool
    metric: str
    value: float | None
    note: str  # what happened to the alias
    seconds: float
    n_items: dict[str, int]
    modalities: tuple[str, ...] = ()  # what queries the model takes ("text", "audio")

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def line(self) -> str:
        value = f"{self.metric}={self.value:.4g}" if self.value is not None else self.metric
        sizes = ", ".join(f"{n} {side}" for side, n in self.n_items.items())
        return (f"{self.name} version {self.version} (run {self.run_id}, {value}; index: {sizes}) "
                f"registered in {self.seconds:.1f}s; {self.note}")


@contextmanager
def _quiet_downloads() -> Iterator[None]:
    """MLflow draws a progress bar per artifact download: one line noise per file here."""
    old = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = old


# ------------------------------------------------------------------------------------------------
# what a run holds


def _get_run(client: Any, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise RegisterError(f"no run {run_id} in the MLflow store {client.tracking_uri}") from None


def _head(client: Any, run: Any, d: str, depth: int = 0) -> tuple[Path | None, str | None]:
    """(local copy of the run's model.pt, or None; the fine-tuned checkpoint's URI, or None)."""
    from mlflow.exceptions import MlflowException

    run_id = run.info.run_id
    names = {a.path for a in client.list_artifacts(run_id, "model")}
    if "model/model.pt" in names:
        try:
            return Path(client.download_artifacts(run_id, "model/model.pt", d)), None
        except (MlflowException, OSError) as e:
            raise RegisterError(f"run {run_id}: cannot read model/model.pt ({e})") from None
    tagged = run.data.tags.get("model_checkpoint")
    if tagged:
        from orchestrator import storage

        if not storage.exists(tagged):
            raise RegisterError(f"run {run_id}: its fine-tuned checkpoint {tagged} no longer exists")
        return None, tagged
    source = run.data.tags.get("source_run_id")  # an evaluation trial: the model is its source run's
    if source and depth == 0:
        return _head(client, _get_run(client, source), d, depth + 1)
    raise RegisterError(f"run {run_id} logged no model/model.pt and no model_checkpoint (only finished trials do)")


def _config(client: Any, run_id: str, d: str) -> dict[str, Any]:
    from mlflow.exceptions import MlflowException

    try:
        return json.loads(Path(client.download_artifacts(run_id, "config.json", d)).read_text())
    except (MlflowException, OSError):
        raise RegisterError(f"run {run_id} logged no config.json (only finished trials do)") from None


def _selection(client: Any, parent: Any | None) -> tuple[str, str]:
    """(metric, mode) the sweep selected trials by, from its parent run."""
    if parent is None:
        return "", "max"
    metric = parent.data.tags.get("headline_metric", "").removeprefix("best/")
    mode = parent.data.params.get("space.mode", "max")
    return metric, mode


def _views_from_parent(client: Any, parent_id: str, spec: Any, d: str) -> tuple[dict[str, str], str]:
    """(view name -> cache dir, manifest) of ``spec`` from the sweep's ``data/extraction.json``."""
    from mlflow.exceptions import MlflowException

    from orchestrator import storage

    try:
        entries = json.loads(Path(client.download_artifacts(parent_id, "data/extraction.json", d)).read_text())
    except (MlflowException, OSError):
        raise RegisterError(f"the sweep run {parent_id} logged no data/extraction.json: cannot find the "
                            "trial's extracted views") from None
    views: dict[str, str] = {}
    for name, view in spec.views.items():
        want = json.loads(json.dumps(asdict(view), default=str))
        found = [e for e in entries if e["corpus"] == spec.corpus and e["view"] == name
                 and e.get("corpus_options", {}) == json.loads(json.dumps(spec.corpus_options, default=str))
                 and e["spec"] == want]
        if not found:
            raise RegisterError(f"the sweep run {parent_id} extracted no view {name!r} ({view.describe()}) of "
                                f"{spec.corpus}")
        views[name] = found[0]["cache_dir"]
    for cache_dir in views.values():
        if not storage.exists(storage.join(cache_dir, "meta.json")):
            raise RegisterError(f"the view cache {cache_dir} is gone (cache cleaned?); run the sweep again to "
                                "re-extract it")
    manifest = json.loads(storage.read_text(storage.join(next(iter(views.values())), "meta.json")))["manifest"]
    return views, manifest


def _item_metadata(manifest: str) -> dict[str, dict[str, Any]]:
    """id -> audio path (and the segment, for items cut from a longer file), label, language."""
    from orchestrator.corpus import read_manifest

    table = read_manifest(manifest).select(["id", "audio_path", "offset", "duration", "language"]).to_pylist()
    out = {}
    for r in table:
        # the segment extraction decoded (a word cut from a sentence; a whole file: offset 0)
        m: dict[str, Any] = {"audio_path": r["audio_path"], "offset": float(r.get("offset") or 0.0)}
        if r.get("duration") and r["duration"] > 0:
            m["duration"] = float(r["duration"])
        if r.get("language"):
            m["language"] = r["language"]
        out[r["id"]] = m
    return out


def _pip_requirements() -> list[str]:
    """Written into the model (it is served with ``--env-manager local``, so they document the
    environment rather than build one); given explicitly, as MLflow otherwise infers them by
    loading the model in a subprocess (encoders and all: seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("audio-retrieval-orchestrator", "mlflow", "torch", "faiss-cpu", "numpy", "pandas", "transformers"):
        try:
            out.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            pass
    return out


def _signature(default_modality: str) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string")]),
                          params=ParamSchema([ParamSpec("k", "long", 10),
                                              ParamSpec("modality", "string", default_modality)]))


def save_pyfunc(path: Path, model_dir: Path, default_modality: str) -> Path:
    """A retrieval model directory as an MLflow pyfunc model at ``path`` (model from code)."""
    import mlflow.pyfunc

    from orchestrator import retrieval_pyfunc

    with warnings.catch_warnings():
        # the signature is explicit (with params); an input example would make MLflow load the
        # model and its encoders here to check it, seconds at every sweep's end
        warnings.filterwarnings("ignore", message=".*An input example was not provided")
        mlflow.pyfunc.save_model(str(path), python_model=retrieval_pyfunc.__file__,
                                 artifacts={retrieval_pyfunc.ARTIFACT: str(model_dir)},
                                 signature=_signature(default_modality), pip_requirements=_pip_requirements())
    return path


# ------------------------------------------------------------------------------------------------
# registering


def register_run(client: Any, run_id: str, *, name: str | None = None, index_split: str = "test",
                 metric: str | None = None, mode: str | None = None, views: dict[str, str] | None = None,
                 manifest: str | None = None, force_champion: bool = False, workload: Any = None) -> Registered:
    """Log the run's retrieval model and register it (see the module docstring). ``views`` /
    ``manifest``: where the trial's views are (the sweep passes its own); by default they are read
    from the sweep run's ``data/extraction.json``. ``workload``: the sweep's (a ``module:ATTR``
    workload is not found by the name its runs are tagged with)."""
    import torch

    from orchestrator.registry import load_workload
    from orchestrator.retrieval_model import write_model_dir
    from orchestrator.train import build_loaded
    from orchestrator.views import read_joined

    t0 = time.perf_counter()
    if index_split not in SPLITS:
        raise RegisterError(f"--index-split must be one of {', '.join(SPLITS)}, got {index_split!r}")
    run = _get_run(client, run_id)
    tags = run.data.tags
    if tags.get("best_trial_run_id") and not tags.get("trial_id"):  # a sweep's parent run: its best trial
        return register_run(client, tags["best_trial_run_id"], name=name, index_split=index_split, metric=metric,
                            mode=mode, views=views, manifest=manifest, force_champion=force_champion,
                            workload=workload)
    if "workload" not in tags or "profile" not in tags:
        raise RegisterError(f"run {run_id} is not a trial of a sweep (no workload/profile tags)")
    parent_id = tags.get("mlflow.parentRunId")
    parent = _get_run(client, parent_id) if parent_id else None
    if metric is None or mode is None:
        metric, mode = _selection(client, parent)
    name = name or tags.get("sweep") or (parent.data.tags.get("sweep") if parent else None)
    if not name:
        raise RegisterError(f"run {run_id}: no sweep name to register under (pass --name)")
    wl = workload if workload is not None else load_workload(tags["workload"])
    if not wl.query_sides:
        raise RegisterError(f"the {wl.name} workload cannot be registered as a retrieval model")
    with _quiet_downloads(), tempfile.TemporaryDirectory(prefix="register-") as d:
        config = _config(client, run_id, d)
        cfg = wl.config_cls.model_validate(config)
        state_file, checkpoint = _head(client, run, d)
        spec = wl.data_spec(cfg, tags["profile"])
        if views is None or manifest is None:
            if not parent_id:
                raise RegisterError(f"run {run_id} has no sweep run, so its views cannot be found")
            views, manifest = _views_from_parent(client, parent_id, spec, d)
        splits = ("train", "val", "test") if index_split == "all" else (index_split,)
        table, report = read_joined(manifest, views, splits)
        if table.num_rows == 0:
            raise RegisterError(f"the {index_split} split of {spec.corpus} has no items to index")
        data = wl.to_data(table)
        from orchestrator import storage

        state = torch.load(state_file if state_file else storage.local_copy(checkpoint), map_location="cpu",
                           weights_only=True)
        model = build_loaded(wl, cfg, data, state)
        try:
            with torch.no_grad():
                sides = wl.index_sides(model, data, cfg)
        except ValueError as e:
            raise RegisterError(f"run {run_id}: {e}") from None
        del model, state
        items = _item_metadata(manifest)
        for side in sides.values():
            for row in side.rows:
                if row.get("item") is not None:
                    row.update(items.get(row["item"], {}))
        value = _metric_value(run, metric)
        meta = {"workload": wl.name, "profile": tags["profile"], "run_id": run_id, "parent_run_id": parent_id,
                "sweep": name, "trial_id": tags.get("trial_id"), "selection_metric": metric, "selection_mode": mode,
                "selection_value": value, "index_split": index_split, "corpus": spec.corpus,
                "corpus_options": spec.corpus_options, "dropped_items": len(report.dropped),
                "views": {n: asdict(v) for n, v in spec.views.items()}, "query_sides": dict(wl.query_sides),
                "git_commit": tags.get("git_commit", "unknown")}
        model_dir = write_model_dir(Path(d) / "retrieval", meta=meta, config=config, sides=sides,
                                    state_file=state_file, checkpoint_uri=checkpoint)
        default_modality = "text" if "text" in wl.query_sides else next(iter(wl.query_sides))
        save_pyfunc(Path(d) / "pyfunc", model_dir, default_modality)
        version = _existing_version(client, name, run_id, index_split)
        if version is None:
            model_id, location = _log_model(client, run, Path(d) / "pyfunc", index_split, meta)
            version = _new_version(client, name, run_id, model_id, location, wl.name, meta)
    champion, note = _promote(client, name, version, metric, mode, value, force_champion)
    if parent_id:
        client.set_tag(parent_id, PARENT_TAG, f"{name}/{version}")
    client.set_tag(run_id, "retrieval_model", f"models:/{name}/{version}")
    return Registered(name, version, run_id, champion, metric, value, note, time.perf_counter() - t0,
                      {s.description: int(s.vectors.shape[0]) for s in sides.values()}, tuple(wl.query_sides))


def _metric_value(run: Any, metric: str) -> float | None:
    from orchestrator.tracking import metric_name

    for key in (f"best/{metric}", metric):
        if metric and metric_name(key) in run.data.metrics:
            return float(run.data.metrics[metric_name(key)])
    return None


def _log_model(client: Any, run: Any, pyfunc_dir: Path, index_split: str, meta: dict[str, Any]) -> tuple[str, str]:
    """The pyfunc as an MLflow 3 logged model whose source is the trial's run, recorded as that
    run's output (the runs table's Models column and the run page show it): (model id, where its
    files are)."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    tags = {k: str(meta[k]) for k in ("workload", "sweep", "index_split", "selection_metric") if meta.get(k)}
    lm = client.create_logged_model(run.info.experiment_id, name=f"{ARTIFACT_PATH}-{index_split}",
                                    source_run_id=run.info.run_id, tags=tags, model_type="retrieval")
    client.log_model_artifacts(lm.model_id, str(pyfunc_dir))
    client.finalize_logged_model(lm.model_id, LoggedModelStatus.READY)
    client.log_outputs(run.info.run_id, [LoggedModelOutput(lm.model_id, step=0)])
    return lm.model_id, lm.artifact_location


def _existing_version(client: Any, name: str, run_id: str, index_split: str) -> str | None:
    """The version already registered from this run and split (registering it again would only
    repeat it: the head, the data and the encoders are the same), if any."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        return None
    for v in client.search_model_versions(f"name='{name}' and run_id='{run_id}'"):
        if v.tags.get("index_split") == index_split:
            return str(v.version)
    return None


def _new_version(client: Any, name: str, run_id: str, model_id: str, location: str, workload: str,
                 meta: dict[str, Any]) -> str:
    """A version of ``name`` for the logged model. Its source is the model's artifact location, not
    ``models:/<id>``: MLflow resolves that through the process-wide tracking URI, not the client's."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, tags={"workload": workload},
                                       description=f"Retrieval models of the sweep {name} (orchestrator.register)")
    tags = {k: str(meta[k]) for k in ("workload", "profile", "selection_metric", "selection_mode", "index_split",
                                      "trial_id") if meta.get(k) is not None}
    if meta.get("selection_value") is not None:
        tags["selection_value"] = repr(float(meta["selection_value"]))
    v = client.create_model_version(name, location, run_id=run_id, tags=tags, model_id=model_id,
                                    description=f"trial {meta.get('trial_id')} of {meta['sweep']}, index over the "
                                                f"{meta['index_split']} split")
    return str(v.version)


def _promote(client: Any, name: str, version: str, metric: str, mode: str, value: float | None,
             force: bool) -> tuple[bool, str]:
    """Move ``champion`` to ``version`` if it beats the current champion's run on ``metric``."""
    from mlflow.exceptions import MlflowException

    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    uri = f"models:/{name}@{CHAMPION}"
    if current is None or force or str(current.version) == version:
        client.set_registered_model_alias(name, CHAMPION, version)
        return True, f"champion: {uri}"
    old_metric = current.tags.get("selection_metric")
    old_value = _metric_value(client.get_run(current.run_id), old_metric or metric) if current.run_id else None
    if old_metric != metric or old_value is None or value is None:
        return False, (f"champion stays version {current.version} (selected on {old_metric or 'an unknown metric'}, "
                       f"this on {metric}: not compared; --champion moves it)")
    better = value > old_value if mode == "max" else value < old_value
    if better:
        client.set_registered_model_alias(name, CHAMPION, version)
        return True, f"champion (was version {current.version}, {metric}={old_value:.4g}): {uri}"
    return False, f"champion stays version {current.version} ({metric}={old_value:.4g} is at least as good)"


def at_sweep_end(sweep: Any, summary: Any) -> None:
    """Register the sweep's best trial (one console line); never fails the sweep, whose results
    are recorded by now."""
    name = sweep.plan.space.name
    if os.environ.get("ORCHESTRATOR_REGISTER", "1") == "0":
        print(f"[register] {name}: skipped (ORCHESTRATOR_REGISTER=0)", flush=True)
        return
    rec = sweep.tracker.state.get("trials", {}).get(summary.best_trial or "", {})
    if not summary.n_ok or not rec.get("run_id"):
        print(f"[register] {name}: no finished trial, nothing registered", flush=True)
        return
    try:
        wl, cfg = sweep.wl, sweep.wl.config_cls.model_validate(rec["config"])
        spec = wl.data_spec(cfg, sweep.plan.inv.profile)
        ctx = sweep.ctx
        views = {n: ctx.data[spec.view_key(n)] for n in spec.views if spec.view_key(n) in ctx.data}
        manifest = ctx.manifests.get(spec.corpus_key())
        out = register_run(sweep.tracker.client, rec["run_id"], name=name, metric=sweep.plan.space.metric,
                           mode=sweep.plan.space.mode, views=views if len(views) == len(spec.views) else None,
                           manifest=manifest, workload=wl)
        print(f"[register] trial {rec.get('number', '?')}: {out.line()}", flush=True)
    except RegisterError as e:
        print(f"[register] {name}: not registered: {e}", flush=True)
    except Exception as e:  # the sweep's results are recorded; registering is what failed
        print(f"[register] {name}: not registered: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
              flush=True)


# ------------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    from orchestrator.tracking import DEFAULT_TRACKING_URI

    p = argparse.ArgumentParser(
        prog="python -m orchestrator.register",
        description="Register a finished trial (or a sweep's best trial, given the sweep's parent run id) as an "
                    "MLflow pyfunc retrieval model under the sweep's name; the alias 'champion' moves to it when "
                    "it beats the current champion on the sweep's selection metric.")
    p.add_argument("run_id", help="a trial's MLflow run id, or a sweep's parent run id (its best trial)")
    p.add_argument("--name", help="registered model name (default: the sweep's name)")
    p.add_argument("--index-split", default="test", choices=SPLITS,
                   help="which corpus split the index holds (default: test; all: train+val+test)")
    p.add_argument("--champion", action="store_true", help="move the alias 'champion' to it regardless")
    p.add_argument("--tracking-uri",
                   help=f"MLflow tracking URI (default: $MLFLOW_TRACKING_URI or {DEFAULT_TRACKING_URI})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mlflow.tracking import MlflowClient

    from orchestrator.tracking import DEFAULT_TRACKING_URI

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        print(f"error: no MLflow store at {uri}", file=sys.stderr)
        return 2
    try:
        out = register_run(MlflowClient(uri), args.run_id, name=args.name, index_split=args.index_split,
                           force_champion=args.champion)
    except RegisterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out.line())
    query = '"..."' if "text" in out.modalities else "--audio FILE.wav"
    print(f"search it: python -m orchestrator.search models:/{out.name}/{out.version} {query}"
          + (f" --tracking-uri {uri}" if uri != DEFAULT_TRACKING_URI else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
