"""Figures: the t-SNE panels of Fig. 3 (per trial) and the fusion curve (per fusion_n sweep)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

PANELS = (("speaker", "(a) speaker embedding x_s,p"), ("text", "(b) text embedding x_t,p"),
          ("speaker_fused", "(c) speaker embedding x_s,p (fused)"), ("text_fused", "(d) text embedding x_t,p (fused)"))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tsne_figure(points: dict[str, tuple[np.ndarray, np.ndarray]], speaker_names: list[str], seed: int,
                title: str = "") -> Any:
    """Fig. 3: four panels (speaker, text, and both fused), each its own 2-D t-SNE (cosine) of
    the chosen speakers' items, coloured by speaker; speakers are anonymised as in the paper.

    ``points``: panel key -> (embeddings [n, d], speaker index per row into ``speaker_names``).
    Each panel is embedded separately (the panels are different spaces, as in the paper); the
    perplexity is capped at a third of the points, since t-SNE needs perplexity < n.
    """
    from sklearn.manifold import TSNE

    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(9, 8))
    colours = plt.get_cmap("tab10")
    for ax, (key, label) in zip(axes.ravel(), PANELS):
        x, who = points[key]
        if len(x) >= 4:
            perplexity = float(max(1.0, min(10.0, (len(x) - 1) / 3)))
            xy = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="random",
                      random_state=seed).fit_transform(x.astype(np.float64))
        else:  # too few points for t-SNE: the first two coordinates
            xy = np.pad(x[:, :2], ((0, 0), (0, max(0, 2 - x.shape[1]))))
        for k in range(len(speaker_names)):
            sel = who == k
            ax.scatter(xy[sel, 0], xy[sel, 1], s=22, color=colours(k % 10), label=f"speaker {k + 1}")
        ax.set_title(label, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def fusion_curve(trials: pd.DataFrame) -> Any | None:
    """The fusion_n sweep's curve: the validation metric it selects on (``best/val/...``) and the
    fused test mAP@10 against N, with the unfused test values as horizontal references, so the
    figure also answers whether fusion helps. None when the trials do not vary ``fusion_n``."""
    if "fusion_n" not in trials or trials["fusion_n"].nunique() < 2:
        return None
    df = trials.copy()
    df["fusion_n"] = pd.to_numeric(df["fusion_n"])
    df = df.sort_values("fusion_n")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    selection = [c for c in df.columns if str(c).startswith("best/val/")]
    for col in selection:
        ax.plot(df["fusion_n"], 100 * pd.to_numeric(df[col]), "o-", label=f"validation {col[len('best/val/'):]} (selection)")
    # the layout the selection metric is computed on (utt/: utterances x descriptions, where N up
    # to 50 stays below the set sizes; speaker items: one per evaluation speaker)
    layout = "utt/" if any("/utt/" in str(c) for c in selection) else ""
    for direction, style in (("t2s", "s-"), ("s2t", "^-")):
        col = f"test/{layout}{direction}_fused/map10"
        if col in df:
            line = ax.plot(df["fusion_n"], 100 * pd.to_numeric(df[col]), style,
                           label=f"test {layout}{direction} fused mAP@10")
            base = f"test/{layout}{direction}/map10"
            if base in df:
                ax.axhline(100 * pd.to_numeric(df[base]).mean(), ls="--", color=line[0].get_color(),
                           label=f"test {layout}{direction} mAP@10 without fusion")
    ax.set_xlabel("fusion N (top-N items of the other modality)")
    ax.set_ylabel("mAP@10 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
