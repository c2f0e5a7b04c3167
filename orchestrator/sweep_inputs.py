"""The data a sweep used, as MLflow dataset inputs (``MlflowClient.log_inputs``): what the MLflow
UI shows in the runs table's "Dataset" column and in a run's dataset drawer.

One dataset per corpus (a corpus builder + its options), logged on the parent run when the
views are ready and on each child run at the end of the sweep with the views that trial read:

- name: the corpus (e.g. ``qbe_local_swedish``); source: its manifest (a local path, or the
  bucket URI on a cluster);
- digest: the view cache key (``orchestrator.cache.cache_key``: corpus content fingerprint,
  encoder id, weights hash, params) when the trial reads one view; with several views, the first
  20 hex digits of the SHA-256 of their sorted cache keys (MLflow keeps at most 36 characters);
- profile (JSON): items per split of the manifest, and per view its cache key, encoder, items
  and quarantined items; the input's ``mlflow.data.context`` tag is ``train``.

A child run's ``log_inputs`` costs ~4 ms on a sqlite store (one write; measured with 20 runs on
2 cores): the children are written once all trials are done, ~0.1 s for a 20-trial sweep,
nothing on the trials' own path. Logging the same dataset on a run again (a resumed sweep) adds
nothing: MLflow keeps one input per dataset and run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput

    from orchestrator.plan import SweepPlan
    from orchestrator.sweep import PreparedData
    from orchestrator.tracking import SweepTracker

log = logging.getLogger(__name__)

CONTEXT = "train"


def digest(cache_keys: list[str]) -> str:
    """The dataset digest of the views a run read (see the module docstring)."""
    keys = sorted(set(cache_keys))
    if len(keys) == 1:
        return keys[0][:36]
    return hashlib.sha256(",".join(keys).encode()).hexdigest()[:20]


def split_sizes(manifest: str) -> dict[str, int]:
    """Items per split of a manifest (reads its ``split`` column only)."""
    import pyarrow.parquet as pq

    from orchestrator import storage

    fs, inner = storage.filesystem(manifest)
    counts = Counter(pq.read_table(inner, columns=["split"], filesystem=fs).column("split").to_pylist())
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))}


def _source(manifest: str) -> Any:
    """MLflow's dataset source for the manifest's path or URI (a local path, s3://, gs://, ...);
    a scheme MLflow has no source for raises, and the caller warns."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    with warnings.catch_warnings():  # file:// "can be interpreted in multiple ways": both are the local one
        warnings.simplefilter("ignore")
        return resolve_dataset_source(manifest)


def _entity(name: str, manifest: str, profile: dict[str, Any]) -> Any:
    """An ``mlflow.entities.Dataset`` by way of ``MetaDataset`` (MLflow's dataset of metadata only)
    with our digest and a profile."""
    from mlflow.data.meta_dataset import MetaDataset

    class _CorpusDataset(MetaDataset):
        @property
        def profile(self) -> Any:
            return profile

        def to_dict(self) -> dict[str, str]:  # MetaDataset's leaves the profile out (PandasDataset's adds it)
            return {**super().to_dict(), "profile": json.dumps(profile)}

    keys = [v["cache_key"] for v in profile["views"]]
    return _CorpusDataset(_source(manifest), name=name, digest=digest(keys))._to_mlflow_entity()


def corpus_profiles(data: PreparedData) -> dict[str, dict[str, Any]]:
    """Corpus key -> (name, manifest, profile) of every corpus the sweep prepared, with every view
    extracted from it."""
    out: dict[str, dict[str, Any]] = {}
    # one corpus built with several option sets (a searched data field): told apart by its key
    keys_of = Counter(c for c, _ in {(spec.corpus, spec.corpus_key()) for spec, _, _ in data.results.values()})
    for vk, (spec, view, res) in data.results.items():
        ck = spec.corpus_key()
        if ck not in out:
            manifest = data.manifests[ck]
            name = spec.corpus if keys_of[spec.corpus] == 1 else f"{spec.corpus}@{ck[:8]}"
            out[ck] = {"name": name, "manifest": manifest, "profile": {
                "corpus": spec.corpus, "corpus_key": ck, "corpus_options": spec.corpus_options,
                "fingerprint": res.corpus_fingerprint, "splits": split_sizes(manifest), "views": []}}
        out[ck]["profile"]["views"].append({
            "view": view, "view_key": vk, "cache_key": res.key, "encoder": res.encoder_id,
            "modality": res.modality, "items": res.n_items, "quarantined": len(res.quarantined)})
    return out


def _input(name: str, manifest: str, profile: dict[str, Any]) -> DatasetInput:
    from mlflow.entities import DatasetInput, InputTag

    return DatasetInput(_entity(name, manifest, profile), tags=[InputTag("mlflow.data.context", CONTEXT)])


def log_parent_inputs(tracker: SweepTracker, run_id: str, data: PreparedData) -> None:
    """Every corpus the sweep prepared, with all its views, onto the parent run."""
    try:
        inputs = [_input(c["name"], c["manifest"], c["profile"]) for c in corpus_profiles(data).values()]
        if inputs:
            tracker.client.log_inputs(run_id, datasets=inputs)
    except Exception as e:  # the record of the data must not fail the sweep it records
        log.warning("dataset inputs of the parent run not logged: %s: %s", type(e).__name__, e)


def log_child_inputs(plan: SweepPlan, wl: Any, tracker: SweepTracker) -> None:
    """Each trial's run gets its corpus with the views it read, taken from the parent run's inputs
    (what the sweep prepared; ``log_parent_inputs``). Never raises: a warning names the trouble."""
    try:
        parent = tracker.client.get_run(tracker.parent_id)
        corpora = {}
        for di in parent.inputs.dataset_inputs:
            profile = json.loads(di.dataset.profile or "{}")
            if "corpus_key" in profile:
                uri = json.loads(di.dataset.source).get("uri", "")
                corpora[profile["corpus_key"]] = (di.dataset.name, uri, profile)
        if not corpora:
            return
        logged: dict[tuple[str, tuple[str, ...]], Any] = {}
        for rec in tracker.state.get("trials", {}).values():
            run_id, config = rec.get("run_id"), rec.get("config")
            if not run_id or not config:
                continue
            spec = wl.data_spec(wl.config_cls.model_validate(config), plan.inv.profile)
            ck = spec.corpus_key()
            if ck not in corpora:
                continue
            name, manifest, profile = corpora[ck]
            wanted = {spec.view_key(v) for v in spec.views}
            views = tuple(sorted(v["view_key"] for v in profile["views"] if v["view_key"] in wanted))
            if not views:
                continue
            key = (ck, views)
            if key not in logged:
                logged[key] = _input(name, manifest, {**profile, "views": [v for v in profile["views"]
                                                                          if v["view_key"] in views]})
            tracker.client.log_inputs(run_id, datasets=[logged[key]])
    except Exception as e:  # the record of the data must not fail the sweep it records
        log.warning("dataset inputs of the trial runs not logged: %s: %s", type(e).__name__, e)
