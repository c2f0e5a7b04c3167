"""Retrieval metrics of section III-D and the layout of Table I.

Query and database sets (one evaluation split, its speakers only; the paper builds "the search and
evaluation database" from the evaluation set):

* s->t: every utterance's speaker embedding is a query; the database is the split's distinct
  descriptions, one item per (speaker, description); relevant = the query speaker's descriptions.
* t->s: every distinct description is a query; the database is the split's utterances;
  relevant = the described speaker's utterances.

Metrics are the multi-relevant definitions of DESIGN.md, computed by
``orchestrator.retrieval.multi_relevant_metrics`` (chunked ranking, ties to the lower database
index): mAP@10 with AP@10 = (1/min(R_q, 10)) sum_{k<=10} P(k) rel(k), and MeanR = mean rank of the
first relevant item. Fused directions (``*_fused``) replace the queries, and with
``fuse_database`` the database too, by their fused embeddings (:mod:`workloads.speaker_text.fusion`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from orchestrator import retrieval
from orchestrator.report import mean_std
from workloads.speaker_text.config import PAPER_ENCODERS, ROLE_LABELS, SYSTEMS
from workloads.speaker_text.fusion import fuse

DIRECTIONS = ("s2t", "t2s", "s2t_fused", "t2s_fused")
DIRECTION_LABELS = {"s2t": "s→t", "t2s": "t→s", "s2t_fused": "s→t (fusion)", "t2s_fused": "t→s (fusion)"}
TABLE_METRICS = (("map10", "mAP10 (%)"), ("meanr", "MeanR"))


def retrieval_metrics(s: np.ndarray, s_labels: np.ndarray, t: np.ndarray, t_labels: np.ndarray,
                      fusion_n: int, fuse_database: bool = True) -> dict[str, float]:
    """The four directions' metrics (unprefixed: ``s2t/map10``, ``t2s_fused/meanr``, ...)."""
    s_f, t_f = fuse(s, t, fusion_n), fuse(t, s, fusion_n)
    runs = {
        "s2t": (s, s_labels, t, t_labels),
        "t2s": (t, t_labels, s, s_labels),
        "s2t_fused": (s_f, s_labels, t_f if fuse_database else t, t_labels),
        "t2s_fused": (t_f, t_labels, s_f if fuse_database else s, s_labels),
    }
    out: dict[str, float] = {}
    for name, (q, ql, db, dl) in runs.items():
        m = retrieval.multi_relevant_metrics(q, db, ql, dl, exclude_self=False, ks=(1, 10), ap_k=10)
        out.update({f"{name}/map10": m["map@10"], f"{name}/meanr": m["mean_rank"], f"{name}/map": m["map"],
                    f"{name}/mrr": m["mrr"], f"{name}/recall10": m["recall@10"]})
    return out


def table_columns() -> list[str]:
    return [f"{DIRECTION_LABELS[d]} {label}" for d in DIRECTIONS for _, label in TABLE_METRICS]


def _cell(metric: str, value: float) -> float:
    return 100.0 * value if metric == "map10" else value  # Table I prints mAP10 in percent


def table_row(system: str, encoder: str, metrics: dict[str, float], prefix: str = "test/") -> dict[str, Any]:
    """One trial's Table I row (numbers, mAP10 in percent)."""
    row: dict[str, Any] = {"System": system, "Speaker/Audio enc.": encoder, "Loss": SYSTEMS[system].loss_label}
    for d in DIRECTIONS:
        for key, label in TABLE_METRICS:
            row[f"{DIRECTION_LABELS[d]} {label}"] = _cell(key, metrics[f"{prefix}{d}/{key}"])
    return row


def encoder_label(system: str, encoders: dict[str, str]) -> str:
    """The paper's encoder name, with the encoder that really ran when it differs (a stand-in)."""
    role = SYSTEMS[system].audio
    used = encoders.get(system)
    return f"{ROLE_LABELS[role]} [{used}]" if used and used != PAPER_ENCODERS[role] else ROLE_LABELS[role]


def table_one(trials: pd.DataFrame, encoders: dict[str, str]) -> pd.DataFrame:
    """Table I from the finished trials of a sweep over ``system``: one row per system in the
    paper's order, each cell mean ± std over the seeds (sample std; one seed: the value alone)."""
    rows = []
    for system in SYSTEMS:
        g = trials[trials["system"].astype(str) == system]
        if g.empty:
            continue
        row: dict[str, Any] = {"System": system, "Speaker/Audio enc.": encoder_label(system, encoders),
                               "Loss": SYSTEMS[system].loss_label, "seeds": int(g["seed"].nunique())}
        for d in DIRECTIONS:
            for key, label in TABLE_METRICS:
                col = f"test/{d}/{key}"
                values = pd.to_numeric(g[col], errors="coerce") if col in g else pd.Series(dtype=float)
                row[f"{DIRECTION_LABELS[d]} {label}"] = mean_std(values.map(lambda v, k=key: _cell(k, v)))
        rows.append(row)
    return pd.DataFrame(rows)
