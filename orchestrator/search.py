"""python -m orchestrator.search MODEL "a dog barks in the rain": query a registered retrieval model.

MODEL is a registry URI (``models:/atst_lr@champion``, ``models:/atst_lr/3``), a run id (a trial
registered by ``orchestrator.register``, or a sweep's parent run: the version it registered), or a
local pyfunc model directory. A text query is the positional argument; ``--audio FILE`` queries by
audio (QbE: a spoken word; TAR and speaker-text: a clip or an utterance). Prints the top ``-k``
with scores, ids, metadata and audio paths; ``--json`` prints the same for scripts. Errors are one
line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from orchestrator.tracking import DEFAULT_TRACKING_URI

EXAMPLES = """\
examples:
  python -m orchestrator.search models:/atst_lr@champion "a dog barks in the rain"
  python -m orchestrator.search models:/qbe_margin@champion --audio word.wav -k 5
  python -m orchestrator.search models:/cts_systems@champion "a deep female voice" --json
"""
# metadata columns printed after the id, in this order, when the side has them
SHOWN = ("word", "caption", "speaker", "description", "sentence", "category")


class SearchError(RuntimeError):
    """A model or query that cannot be used; one line for the user."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m orchestrator.search", epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Query a registered retrieval model by text or audio.")
    p.add_argument("model", help="models:/NAME@ALIAS, models:/NAME/VERSION, a run id, or a model directory")
    p.add_argument("query", nargs="?", help="the text query")
    p.add_argument("--audio", metavar="FILE", help="query by this audio file instead of a text")
    p.add_argument("-k", type=int, default=10, help="results to show (default 10)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--tracking-uri",
                   help=f"MLflow tracking URI (default: $MLFLOW_TRACKING_URI or {DEFAULT_TRACKING_URI})")
    return p


def resolve_model_uri(model: str, client: Any) -> str:
    """A registry URI or directory as given; a run id -> the version registered from it."""
    from mlflow.exceptions import MlflowException

    from orchestrator.register import PARENT_TAG

    if "://" in model or model.startswith("models:/") or model.startswith("runs:/"):
        return model
    if Path(model).is_dir():
        return str(Path(model).resolve())
    try:
        run = client.get_run(model)
    except MlflowException:
        raise SearchError(f"unknown model {model!r}: not a models:/ URI, a model directory, or a run id in "
                          f"{client.tracking_uri}") from None
    tags = run.data.tags
    if tags.get("retrieval_model"):
        return tags["retrieval_model"]
    if tags.get(PARENT_TAG):
        name, version = tags[PARENT_TAG].rsplit("/", 1)
        return f"models:/{name}/{version}"
    outputs = run.outputs.model_outputs if run.outputs else []
    if outputs:  # logged by orchestrator.register (its tag above names the registered version)
        return f"models:/{outputs[-1].model_id}"
    raise SearchError(f"run {model} has no retrieval model: register it first "
                      f"(python -m orchestrator.register {model})")


def load_engine(model: str, tracking_uri: str) -> tuple[Any, str]:
    """(the loaded model's RetrievalEngine, the URI it was loaded from)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from orchestrator.retrieval_model import ModelLoadError

    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists() \
            and not Path(model).is_dir():
        raise SearchError(f"no MLflow store at {tracking_uri}")
    mlflow.set_tracking_uri(tracking_uri)
    uri = resolve_model_uri(model, MlflowClient(tracking_uri))
    try:
        loaded = mlflow.pyfunc.load_model(uri)
    except MlflowException as e:
        raise SearchError(f"cannot load {uri}: {_first_line(e)}") from None
    except (ModelLoadError, OSError) as e:
        raise SearchError(f"cannot load {uri}: {e}") from None
    engine = getattr(loaded.unwrap_python_model(), "engine", None)
    if engine is None:
        raise SearchError(f"{uri} is not a retrieval model (orchestrator.register)")
    return engine, uri


def _first_line(e: BaseException) -> str:
    text = getattr(e, "message", None) or str(e)
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def run_query(engine: Any, text: str | None, audio: str | None, k: int) -> Any:
    from orchestrator.retrieval_model import AudioQuery, QueryError

    if (text is None) == (audio is None):
        raise SearchError("give either a text query or --audio FILE")
    if audio is not None:
        path = Path(audio)
        if not path.is_file():
            raise SearchError(f"cannot read the audio query: no file {audio}")
        query, modality = AudioQuery(path=str(path.resolve()), label=path.name), "audio"
    else:
        query, modality = text, "text"
    try:
        return engine.search([query], modality, k)[0]
    except QueryError as e:
        raise SearchError(str(e)) from None


def format_result(result: Any, engine: Any, uri: str) -> str:
    meta = engine.meta
    side = meta["sides"][result.side]
    lines = [f"{uri}: {meta['workload']} model of sweep {meta['sweep']} (run {meta['run_id']}), "
             f"{side['n']} {side['description']} of the {meta['index_split']} split",
             f"{result.modality} query {result.query!r} -> top {len(result.ids)} {side['description']}"]
    if engine.fusion is not None:  # say whether the query was fused, as the model's selection metric ranks
        lines.append(f"ranked {result.ranking}")
    lines.append("")
    shown = [c for c in SHOWN if any(c in it for it in result.items)]
    with_audio = any(it.get("audio_path") for it in result.items)  # descriptions have none
    rows = [["rank", "score", "id", *shown, "audio" if with_audio else ""]]
    for n, (score, item) in enumerate(zip(result.scores, result.items), 1):
        audio = item.get("audio_path", "")
        if audio and item.get("offset"):
            audio += f" [{item['offset']:.2f}s +{item.get('duration', 0):.2f}s]"
        rows.append([str(n), f"{score:.4f}", str(item["id"]), *[_short(item.get(c, "")) for c in shown], audio])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        lines.append(("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1]).rstrip())
    return "\n".join(lines)


def _short(v: Any, n: int = 60) -> str:
    s = str(v)
    return s if len(s) <= n else s[:n - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    try:
        if args.k < 1:
            raise SearchError(f"-k must be >= 1, got {args.k}")
        if (args.query is None) == (args.audio is None):
            raise SearchError("give either a text query or --audio FILE")
        if args.audio is not None and not Path(args.audio).is_file():  # before seconds of model loading
            raise SearchError(f"cannot read the audio query: no file {args.audio}")
        engine, model_uri = load_engine(args.model, uri)
        result = run_query(engine, args.query, args.audio, args.k)
    except SearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"model": model_uri, "workload": engine.meta["workload"], "run_id": engine.meta["run_id"],
                          "index_split": engine.meta["index_split"], **result.as_dict()}, indent=2))
    else:
        print(format_result(result, engine, model_uri))
    return 0


if __name__ == "__main__":
    sys.exit(main())
