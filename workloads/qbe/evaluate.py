"""QbE evaluation on the test split: original vs transformed embeddings (thesis sections 3.5, 4.2, 4.3).

Phase 1 (embedding space): silhouette, ARI and AMI of a k-means clustering (Table 4.2) and a 2-D
projection of a few words before/after (Figures 4.3/4.4; t-SNE here, since UMAP is not a
dependency). Phase 2 (retrieval): every test clip queries all other test clips; the relevant items
are the other clips of the same word (Tables 4.3/4.4), plus a few example queries with their
nearest neighbours in both spaces (Tables 4.5/4.6). Test words are unseen in training, so this
measures whether the head generalises rather than memorises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.manifold import TSNE

from orchestrator.retrieval import clustering_metrics, faiss_topk, l2_normalize, multi_relevant_metrics

SPACES = ("original", "transformed")
METRICS = ("map", "map20", "mrr", "recall20", "silhouette", "ari", "ami")
K = 20  # the thesis' cut-off (Recall@20, Table 4.3)


def percent_increase(original: float, transformed: float) -> float:
    """100 * (t - o) / o, as in Tables 4.3/4.4. NaN when o <= 0: a percentage of a zero or
    negative base (possible for silhouette or ARI) has no meaningful sign or size."""
    if not (math.isfinite(original) and math.isfinite(transformed)) or original <= 0:
        return math.nan
    return 100.0 * (transformed - original) / original


def _space_metrics(x: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, float]:
    """``map`` ranks the whole test set (DESIGN's mAP); ``map20`` is the thesis' AP (2.5.2: the
    sum over the top K = 20 returned, divided by the word's N relevant clips). That is DESIGN's
    AP@K, whose divisor min(N, K) equals N whenever a word has at most 21 clips, as after the
    thesis' filter (at most 15 per word, 3.3.3)."""
    ret = multi_relevant_metrics(x, x, labels, labels, exclude_self=True, ks=(K,), ap_k=K)
    clu = clustering_metrics(x, labels, seed=seed)
    return {
        "map": ret["map"],
        "map20": ret[f"map@{K}"],
        "mrr": ret["mrr"],
        "recall20": ret[f"recall@{K}"],
        "silhouette": clu["silhouette"],
        "silhouette_labels": clu["silhouette_labels"],
        "ari": clu["ari"],
        "ami": clu["ami"],
        "n_queries": ret["n_queries"],
        "n_queries_without_relevant": ret["n_queries_without_relevant"],
    }


def _pick_words(labels: np.ndarray, n: int, seed: int) -> list[str]:
    """``n`` test words, random but fixed by ``seed``, among words with >= 2 clips (a query needs
    another clip of its word to retrieve). The same words serve the plot and the example table,
    as in the thesis (Figure 4.3 and Table 4.5 show the same five words)."""
    words, counts = np.unique(labels, return_counts=True)
    eligible = words[counts >= 2]
    if n <= 0 or eligible.size == 0:
        return []
    rng = np.random.default_rng(seed)
    return [str(w) for w in rng.choice(eligible, size=min(n, eligible.size), replace=False)]


def _neighbours_table(
    spaces: dict[str, np.ndarray], labels: np.ndarray, ids: np.ndarray, words: list[str], top_n: int, seed: int
) -> pd.DataFrame:
    columns = [
        "Query", "Query id", "Rank",
        "Retrieved (Native)", "Cosine (Native)", "Native id",
        "Retrieved (Transformed)", "Cosine (Transformed)", "Transformed id",
    ]  # fmt: skip
    if not words:
        return pd.DataFrame(columns=columns)
    rng = np.random.default_rng(seed + 1)
    queries = [int(rng.choice(np.flatnonzero(labels == w))) for w in words]
    hits = {name: faiss_topk(x, x, k=top_n, exclude_self=True) for name, x in spaces.items()}
    rows = []
    for word, qi in zip(words, queries):
        for r in range(top_n):
            row: dict[str, object] = {"Query": word, "Query id": str(ids[qi]), "Rank": r + 1}
            for name, tag in (("original", "Native"), ("transformed", "Transformed")):
                scores, idx = hits[name]
                j = int(idx[qi, r])
                row[f"Retrieved ({tag})"] = str(labels[j])
                row[f"Cosine ({tag})"] = float(scores[qi, r])
                row[f"{tag} id"] = str(ids[j])
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def _tsne_figure(spaces: dict[str, np.ndarray], labels: np.ndarray, words: list[str], seed: int) -> Figure:
    fig = Figure(figsize=(11, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    mask = np.isin(labels, words)
    m = int(mask.sum())
    colours = {w: f"C{i % 10}" for i, w in enumerate(words)}
    for ax, (name, x) in zip(axes, spaces.items()):
        ax.set_title(f"{name.capitalize()} embeddings (t-SNE)")
        ax.set_xticks([])
        ax.set_yticks([])
        if m < 4:  # t-SNE needs perplexity < samples; too few points to project meaningfully
            ax.text(0.5, 0.5, f"{m} samples: too few for t-SNE", ha="center", va="center", transform=ax.transAxes)
            continue
        # Unit vectors: Euclidean t-SNE distances are monotone in cosine distance. A few words
        # give tens of points, where exact t-SNE is fast and avoids Barnes-Hut's OpenMP threads
        # (which spin badly on a busy machine: 0.3 s -> 8 s for 20 points under load).
        tsne = TSNE(
            n_components=2,
            perplexity=min(30.0, (m - 1) / 3),
            init="pca",
            method="exact" if m <= 1000 else "barnes_hut",
            random_state=seed,
        )
        xy = tsne.fit_transform(x[mask])
        for w in words:
            sel = labels[mask] == w
            ax.scatter(xy[sel, 0], xy[sel, 1], s=28, color=colours[w], label=w, alpha=0.85)
    if m >= 4:
        axes[1].legend(title="word", loc="best", fontsize=8)
    return fig


def evaluate_qbe(
    original: np.ndarray,
    transformed: np.ndarray,
    labels: Sequence[str],
    ids: Sequence[str],
    seed: int = 0,
    n_plot_words: int = 5,
    n_example_queries: int = 5,
    top_n: int = 5,
    figures: bool = True,
) -> tuple[dict[str, float], dict[str, pd.DataFrame], dict[str, Figure]]:
    """Evaluate original and transformed test embeddings side by side.

    Returns ``metrics`` (``test/{original,transformed}/{map,map20,mrr,recall20,silhouette,ari,ami}``,
    plus ``silhouette_labels`` and query counts, and ``test/gain/<metric>_pct`` percent
    increases), ``tables`` (``qbe_clustering``, ``qbe_retrieval``, ``qbe_neighbours``, laid out
    like Tables 4.2, 4.3/4.4 and 4.5; row names are a column because logged tables drop the
    index) and ``figures`` (``tsne_before_after``). Figures are built without pyplot, so nothing
    depends on the interactive backend and no global figure state leaks between trials.
    """
    lab = np.asarray(labels).astype(str)
    id_arr = np.asarray(ids).astype(str)
    n = lab.size
    if np.asarray(original).shape[0] != n or np.asarray(transformed).shape[0] != n or id_arr.size != n:
        raise ValueError("original, transformed, labels and ids must have one entry per test clip")
    if not 1 <= top_n <= n - 1:
        raise ValueError(f"top_n={top_n} needs 1 <= top_n <= {n - 1}")
    spaces = {"original": l2_normalize(original), "transformed": l2_normalize(transformed)}

    per_space = {name: _space_metrics(x, lab, seed) for name, x in spaces.items()}
    metrics: dict[str, float] = {}
    for name, vals in per_space.items():
        for key, value in vals.items():
            metrics[f"test/{name}/{key}"] = float(value)
    o, t = per_space["original"], per_space["transformed"]
    for key in METRICS:
        metrics[f"test/gain/{key}_pct"] = percent_increase(o[key], t[key])

    clustering = pd.DataFrame(
        {
            "Embedding": ["Original", "Transformed"],
            "Silhouette": [o["silhouette"], t["silhouette"]],
            "ARI": [o["ari"], t["ari"]],
            "AMI": [o["ami"], t["ami"]],
        }
    )
    retrieval = pd.DataFrame(
        {
            "Model": ["Original", "Transformed", "percent increase"],
            "mAP": [o["map"], t["map"], metrics["test/gain/map_pct"]],
            "mAP@20": [o["map20"], t["map20"], metrics["test/gain/map20_pct"]],
            "MRR": [o["mrr"], t["mrr"], metrics["test/gain/mrr_pct"]],
            "Recall@20": [o["recall20"], t["recall20"], metrics["test/gain/recall20_pct"]],
        }
    )
    words = _pick_words(lab, max(n_plot_words, n_example_queries), seed)
    tables = {
        "qbe_clustering": clustering,
        "qbe_retrieval": retrieval,
        "qbe_neighbours": _neighbours_table(spaces, lab, id_arr, words[:n_example_queries], top_n, seed),
    }
    drawn = {"tsne_before_after": _tsne_figure(spaces, lab, words[:n_plot_words], seed)} if figures else {}
    return metrics, tables, drawn
