"""The MLflow ``pyfunc`` wrapper of a retrieval model (logged as "model from code": MLflow copies
this file into the model and runs it at load time, so nothing is pickled).

Input: a list of query strings (``{"inputs": ["a dog barks"]}`` over HTTP). Params (the model's
signature declares them, so ``mlflow models serve`` accepts them): ``k`` (results per query,
default 10) and ``modality`` (``text``, default, or ``audio``: each input is then a base64-encoded
audio file, e.g. a WAV). Output: one object per query with ``ids``, ``scores`` and ``items`` (the
indexed items' metadata: id, audio path, caption / word / speaker / sentence), ``ranking`` (how the
query was ranked: as embedded, or fused as the model's selection metric ranks), and ``seconds``:
where the request's time went (embedding, of which in the encoders, and the index search).
"""

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from orchestrator.retrieval_model import AudioQuery, QueryError, RetrievalEngine

ARTIFACT = "retrieval"  # the model directory, as an artifact of the pyfunc model
DEFAULT_K = 10


def _inputs(model_input) -> list[str]:
    """The query strings of whatever MLflow hands over (a one-column frame for ``{"inputs": [...]}``
    with a string column signature; a list or a string when called in Python)."""
    if isinstance(model_input, pd.DataFrame):
        return [str(v) for v in model_input.iloc[:, 0].tolist()] if model_input.shape[1] else []
    if isinstance(model_input, pd.Series):
        return [str(v) for v in model_input.tolist()]
    if isinstance(model_input, str):
        return [model_input]
    return [str(v) for v in list(model_input)]


class RetrievalModel(PythonModel):
    """Loads the engine once (head, index; encoders on first use) and searches it."""

    def load_context(self, context) -> None:
        self.engine = RetrievalEngine(context.artifacts[ARTIFACT])

    # the type hint is pd.DataFrame (no schema is inferred from it): the explicit signature, which
    # declares the params k and modality, stays the model's; without any hint MLflow warns
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list:
        params = params or {}
        k = int(params.get("k", DEFAULT_K))
        modality = str(params.get("modality", "text"))
        queries = _inputs(model_input)
        try:
            if modality == "audio":
                queries = [AudioQuery.from_base64(q, f"audio query {n}") for n, q in enumerate(queries)]
            results = self.engine.search(queries, modality, k)
        except QueryError as e:  # the server answers 400 with this message, not a 500 with a stack trace
            raise MlflowException(str(e), error_code=INVALID_PARAMETER_VALUE) from None
        # where the request's time went (the whole batch): embedding (of which in the frozen
        # encoders) and the index search
        seconds = {k: round(v, 6) for k, v in self.engine.last_timings.items()}
        return [{**r.as_dict(), "seconds": seconds} for r in results]


mlflow.models.set_model(RetrievalModel())
