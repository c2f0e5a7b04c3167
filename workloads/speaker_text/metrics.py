"""Retrieval metrics of section III-D and the layout of Table I, in two layouts.

**Speaker items (the paper's layout, Table I's headline, unprefixed keys ``s2t/map10``, ...).**
Table I's rows for [8] and B00 sit exactly at chance for one target among 40 items (H_10 / 40 =
7.32 % mAP10, MeanR 20.5; the Japanese B00 at chance for 30), so the paper ranks one item per
evaluation speaker on each side. A speaker's *speaker item* is the normalised mean of its
utterances' unit embeddings, its *text item* the normalised mean of its descriptions' unit
embeddings (both in the search space, after the projection). s->t: each speaker item queries the
split's text items, one relevant; t->s the reverse.

**Utterances x descriptions (``utt/...``, extra columns).** s->t: every utterance queries the
split's distinct descriptions (one item per (speaker, description)), relevant = its speaker's
descriptions; t->s: every description queries the utterances, relevant = the described speaker's
utterances. Checkpoints are selected on this layout (more queries: 6 x 20 on the local validation
split, not 20).

Metrics are the multi-relevant definitions of DESIGN.md (``orchestrator.retrieval.
multi_relevant_metrics``, ties to the lower database index): mAP@10 with AP@10 = (1/min(R_q, 10))
sum_{k<=10} P(k) rel(k), MeanR = mean rank of the first relevant item. Fused directions
(``*_fused``) fuse the queries, and with ``fuse_database`` the database too, against the other
modality's set of the same layout (:mod:`workloads.speaker_text.fusion`). ``chance/...`` are the
expected values under a uniformly random ranking (:func:`chance_metrics`), per layout.
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
# key prefix -> column suffix; the paper's layout first (Table I's headline columns)
LAYOUTS = {"": "", "utt/": " [utt]"}
TEXT_EER = "text EER (%)"  # footnote 8: the frozen text encoder's EER on the test split's descriptions
AP_K = 10


def speaker_items(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One item per speaker: the normalised mean of its rows' unit vectors, ordered by label."""
    x = retrieval.l2_normalize(np.asarray(x, np.float32))
    labels = np.asarray(labels)
    uniq, inverse = np.unique(labels, return_inverse=True)
    sums = np.zeros((len(uniq), x.shape[1]), np.float64)
    np.add.at(sums, inverse, x)
    return retrieval.l2_normalize(sums.astype(np.float32)), uniq


def chance_metrics(query_labels: np.ndarray, db_labels: np.ndarray, k: int = AP_K) -> dict[str, float]:
    """Expected ``map10`` and ``meanr`` of a uniformly random ranking. A query with R relevant
    among M items: E[P(j) rel(j)] = (R/M)(1 + (j-1)(R-1)/(M-1)) / j, so E[AP@k] = (1/min(R, k))
    sum_{j<=min(k, M)} of that, and the first relevant item's expected rank is (M+1)/(R+1).
    Queries without a relevant item are left out, as the metrics leave them out."""
    db_labels = np.asarray(db_labels)
    m = len(db_labels)
    labels, counts = np.unique(db_labels, return_counts=True)
    per_label = dict(zip(labels.tolist(), counts.tolist()))
    aps, ranks = [], []
    j = np.arange(1, min(k, m) + 1, dtype=np.float64)
    for q in np.asarray(query_labels).tolist():
        r = per_label.get(q, 0)
        if r == 0:
            continue
        tail = (j - 1) * (r - 1) / (m - 1) if m > 1 else np.zeros_like(j)
        aps.append(float(((r / m) * (1 + tail) / j).sum() / min(r, k)))
        ranks.append((m + 1) / (r + 1))
    return {"map10": float(np.mean(aps)) if aps else float("nan"),
            "meanr": float(np.mean(ranks)) if ranks else float("nan")}


def _directions(s: np.ndarray, s_labels: np.ndarray, t: np.ndarray, t_labels: np.ndarray, fusion_n: int,
                fuse_database: bool, keep_query: bool) -> dict[str, float]:
    s_f, t_f = fuse(s, t, fusion_n, keep_query), fuse(t, s, fusion_n, keep_query)
    runs = {
        "s2t": (s, s_labels, t, t_labels),
        "t2s": (t, t_labels, s, s_labels),
        "s2t_fused": (s_f, s_labels, t_f if fuse_database else t, t_labels),
        "t2s_fused": (t_f, t_labels, s_f if fuse_database else s, s_labels),
    }
    out: dict[str, float] = {}
    for name, (q, ql, db, dl) in runs.items():
        m = retrieval.multi_relevant_metrics(q, db, ql, dl, exclude_self=False, ks=(1, 10), ap_k=AP_K)
        out.update({f"{name}/map10": m["map@10"], f"{name}/meanr": m["mean_rank"], f"{name}/map": m["map"],
                    f"{name}/mrr": m["mrr"], f"{name}/recall10": m["recall@10"]})
    return out


def retrieval_metrics(s: np.ndarray, s_labels: np.ndarray, t: np.ndarray, t_labels: np.ndarray,
                      fusion_n: int, fuse_database: bool = False, keep_query: bool = False) -> dict[str, float]:
    """Both layouts' four directions and their chance levels (unprefixed keys: ``s2t/map10``,
    ``utt/t2s_fused/meanr``, ``chance/s2t/map10``, ``chance/utt/t2s/meanr``, ...)."""
    s_labels, t_labels = np.asarray(s_labels), np.asarray(t_labels)
    s_items, s_item_labels = speaker_items(s, s_labels)
    t_items, t_item_labels = speaker_items(t, t_labels)
    sets = {"": (s_items, s_item_labels, t_items, t_item_labels), "utt/": (s, s_labels, t, t_labels)}
    out: dict[str, float] = {}
    for prefix, (a, al, b, bl) in sets.items():
        out.update({f"{prefix}{k}": v for k, v in _directions(a, al, b, bl, fusion_n, fuse_database, keep_query).items()})
        for direction, (ql, dl) in (("s2t", (al, bl)), ("t2s", (bl, al))):
            out.update({f"chance/{prefix}{direction}/{k}": v for k, v in chance_metrics(ql, dl).items()})
    return out


def equal_error_rate(scores: np.ndarray, targets: np.ndarray) -> float:
    """EER of a verification trial list: the point of the ROC where the false-acceptance rate
    equals the false-rejection rate, linearly interpolated between the two ROC points around it."""
    from sklearn.metrics import roc_curve

    targets = np.asarray(targets, bool)
    if targets.all() or not targets.any():
        return float("nan")  # no impostor (or no target) trial: the rate is undefined
    far, tar, _ = roc_curve(targets, np.asarray(scores, np.float64))
    frr = 1.0 - tar
    i = int(np.argmax(frr <= far))  # first ROC point where FRR has dropped to FAR (far rises, frr falls)
    if i == 0:
        return float(far[0])
    # the crossing between points i-1 and i: far + t (far' - far) = frr + t (frr' - frr)
    d_far, d_frr = far[i] - far[i - 1], frr[i] - frr[i - 1]
    t = (frr[i - 1] - far[i - 1]) / (d_far - d_frr) if d_far != d_frr else 0.0
    return float(far[i - 1] + t * d_far)


def text_eer(text_x: np.ndarray, text_labels: np.ndarray, max_items: int = 4000, seed: int = 0) -> float:
    """Footnote 8's text EER: how well the frozen text encoder alone tells speakers apart by their
    descriptions. Every pair of a split's description items is a trial (target: the same speaker),
    scored by the cosine of the raw text embeddings. The paper reports 1.03 % (English, BART) and
    0 % (Japanese); descriptions shared word for word by two speakers push it up. Splits of more
    than ``max_items`` descriptions are scored on a seeded subset (the pairs grow quadratically)."""
    x, labels = np.asarray(text_x, np.float32), np.asarray(text_labels)
    if len(x) > max_items:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), size=max_items, replace=False))
        x, labels = x[keep], labels[keep]
    x = retrieval.l2_normalize(x)
    upper = np.triu_indices(len(x), k=1)
    scores = (x @ x.T)[upper]
    return equal_error_rate(scores, labels[upper[0]] == labels[upper[1]])


def _cell(metric: str, value: float) -> float:
    return 100.0 * value if metric == "map10" else value  # Table I prints mAP10 in percent


def _metric_cells(value: Any) -> dict[str, Any]:
    """``{column: value(key)}`` for every Table I metric column; ``key`` e.g. ``utt/s2t_fused/map10``."""
    return {f"{DIRECTION_LABELS[d]} {label}{suffix}": value(f"{prefix}{d}/{key}", key)
            for prefix, suffix in LAYOUTS.items() for d in DIRECTIONS for key, label in TABLE_METRICS}


def table_row(system: str, encoder: str, metrics: dict[str, float], prefix: str = "test/") -> dict[str, Any]:
    """One trial's Table I row (numbers, mAP10 in percent)."""
    row: dict[str, Any] = {"System": SYSTEMS[system].row_label or system, "Speaker/Audio enc.": encoder,
                           "Loss": SYSTEMS[system].loss_label}
    row.update(_metric_cells(lambda k, m: _cell(m, metrics[f"{prefix}{k}"])))
    row[TEXT_EER] = 100.0 * metrics[f"{prefix}text_eer"] if f"{prefix}text_eer" in metrics else None
    return row


def chance_row(metrics: dict[str, Any], prefix: str = "test/") -> dict[str, Any]:
    """Table I's last row: a random ranking's expected values for the split's sizes (fusion does
    not change them: the same queries against the same number of relevant items)."""
    def value(key: str, metric: str) -> Any:
        direction, _, name = key.rpartition("/")
        col = f"{prefix}chance/{direction.replace('_fused', '')}/{name}"
        v = metrics.get(col)
        return _cell(metric, float(v)) if v is not None and pd.notna(v) else None

    row: dict[str, Any] = {"System": "chance", "Speaker/Audio enc.": "random ranking", "Loss": "-"}
    row.update(_metric_cells(value))
    row[TEXT_EER] = 50.0  # random scores: false acceptances and rejections meet at one half
    return row


def encoder_label(system: str, encoders: dict[str, str]) -> str:
    """The paper's encoder name, with the encoder that really ran when it differs (a stand-in)."""
    role = SYSTEMS[system].audio
    used = encoders.get(system)
    return f"{ROLE_LABELS[role]} [{used}]" if used and used != PAPER_ENCODERS[role] else ROLE_LABELS[role]


def table_one(trials: pd.DataFrame, encoders: dict[str, str]) -> pd.DataFrame:
    """Table I from the finished trials of a sweep over ``system``: one row per system in the
    paper's order, each cell mean ± std over the seeds (sample std; one seed: the value alone);
    the paper's layout first, the utterance layout's columns after it (``[utt]``), and a last row
    with the chance level of each column."""
    rows = []
    for system in SYSTEMS:
        g = trials[trials["system"].astype(str) == system]
        if g.empty:
            continue
        row: dict[str, Any] = {"System": SYSTEMS[system].row_label or system,
                               "Speaker/Audio enc.": encoder_label(system, encoders),
                               "Loss": SYSTEMS[system].loss_label, "seeds": int(g["seed"].nunique())}

        def cell(key: str, metric: str, g: pd.DataFrame = g) -> str:
            col = f"test/{key}"
            values = pd.to_numeric(g[col], errors="coerce") if col in g else pd.Series(dtype=float)
            return mean_std(values.map(lambda v: _cell(metric, v)))

        row.update(_metric_cells(cell))
        row[TEXT_EER] = cell("text_eer", "map10")  # a rate: in percent like mAP10
        rows.append(row)
    if rows:
        first = trials.iloc[0].to_dict()  # every trial evaluates the same test split
        chance = chance_row(first)
        rows.append({**chance, "seeds": "-", **{k: (f"{v:.3f}" if v is not None else "") for k, v in chance.items()
                                                  if k not in ("System", "Speaker/Audio enc.", "Loss")}})
    return pd.DataFrame(rows)
