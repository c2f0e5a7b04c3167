"""Cross-modal fusion at inference (section II-A, Fig. 1 bottom right; N = 10 in III-B).

The paper: "the fusion is done by searching for top-N nearest embeddings in the search space from
the other modality, followed by averaging over them via distance criteria. The final embedding is
averaged from the selected embeddings from the other modality." Read here as:

1. the item's top-N neighbours in the other modality's set, by cosine (``faiss_topk``, exact,
   ties by lower index);
2. their average weighted by similarity: w_k = max(s_k, 0) / sum_j max(s_j, 0) (uniform when no
   neighbour has a positive cosine: "distance criteria" then say nothing);
3. the fused embedding:
   * ``keep_query=False`` (the literal reading, the default): the normalised neighbour average
     alone, "averaged from the selected embeddings from the other modality";
   * ``keep_query=True`` (the reading this project used first): the normalised mean of the item's
     own unit embedding and the normalised neighbour average, so the query and the other modality
     weigh equally whatever N is.

With ``keep_query`` a fused item lies between its own modality and the other one, which is the
overlap Fig. 3 (c), (d) shows; literally fused items lie in the other modality's span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orchestrator import retrieval


def fuse(items: np.ndarray, others: np.ndarray, n: int, keep_query: bool = False) -> np.ndarray:
    """Fused embeddings of ``items`` (one row each) with their top-``n`` rows of ``others``;
    ``n`` is capped at ``len(others)``."""
    q = retrieval.l2_normalize(items)
    o = retrieval.l2_normalize(others)
    if len(q) == 0:
        return q
    n = max(1, min(int(n), len(o)))
    scores, idx = retrieval.faiss_topk(q, o, n)
    w = np.clip(scores, 0.0, None).astype(np.float64)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / n)
    neighbours = np.einsum("qk,qkd->qd", w, o[idx].astype(np.float64))
    neighbours = retrieval.l2_normalize(neighbours.astype(np.float32))
    return retrieval.l2_normalize(q + neighbours) if keep_query else neighbours


@dataclass(frozen=True)
class SearchFusion:
    """Fusion in a retrieval model (``Workload.query_fusion``), as the evaluation's ``..._fused``
    direction the model was selected by applies it: a query of that direction (text for
    ``t2s_fused``, audio for ``s2t_fused``) is fused with its top ``n`` of the side it searches,
    and, with ``database``, that side's vectors with their top ``n`` of the other side (both
    against the raw vectors). The other direction is ranked as embedded: its N was not selected.
    Sides are the registered index's: ``audio`` (utterances), ``text`` (descriptions)."""

    n: int
    modality: str  # the query modality that is fused
    keep_query: bool = False
    database: bool = False
    metric: str = ""

    @classmethod
    def for_metric(cls, metric: str, n: int, keep_query: bool, database: bool) -> "SearchFusion | None":
        for direction, modality in (("t2s_fused", "text"), ("s2t_fused", "audio")):
            if f"{direction}/" in metric:
                return cls(n, modality, keep_query, database, metric)
        return None

    @property
    def searched(self) -> str:
        return "audio" if self.modality == "text" else "text"

    def queries(self, modality: str, vectors: np.ndarray, searched: np.ndarray) -> np.ndarray:
        return fuse(vectors, searched, self.n, self.keep_query) if modality == self.modality else vectors

    def index(self, sides: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.database:
            return sides
        other = self.modality  # the searched side fused with its top n of the queries' own side
        return {**sides, self.searched: fuse(sides[self.searched], sides[other], self.n, self.keep_query)}

    def describe(self, modality: str) -> str:
        if modality != self.modality:
            return f"as embedded (the fusion N was selected for {self.modality} queries, by {self.metric})"
        how = "averaged with" if self.keep_query else "replaced by"
        db = f"; every indexed vector likewise with its {self.n} nearest of the other side" if self.database else ""
        return (f"by cross-modal fusion, N = {self.n}: the query {how} the similarity-weighted mean of its {self.n} "
                f"nearest vectors of the side it searches{db} (as {self.metric} ranks)")
