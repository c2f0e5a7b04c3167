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
