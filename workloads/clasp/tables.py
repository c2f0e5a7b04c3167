"""Result tables laid out like the paper's Table 2: one per trial (its system's row), and one per
stage on the sweep's parent run, each cell the mean ± std over seeds.

A stage is recognised by what its search space varies (``modality``: stage 1; ``text`` / ``ssl`` /
``fusion``: stage 2; ``system``: stage 3, with ``text_targets`` when it varies as well;
``query_language``: stage 4). Row names are the paper's;
which encoder actually stood in for each (local profile) is on the run's ``substitution.*`` tags
and in each trial's own ``clasp_results`` table.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from orchestrator.report import mean_std

STAGE1_ROWS = {"spectrogram": "Spectrogram-Based Model", "ssl": "Self-Supervised Audio Model",
               "combined": "Combined Audio-Spectrogram Model"}
TEXT_NAMES = {"labse": "LaBSE", "xlmr": "XLM-RoBERTa"}
SSL_NAMES = {"hubert": "HuBERT", "wav2vec2": "Wav2Vec2"}
FUSION_NAMES = {"gating": "Gating", "gating_lstm": "Gating (notebook's LSTM gates)", "concat": "Concatenation"}
# how a stage-3 row names a text space other than the paper's raw one (targets.py)
TEXT_TARGET_NAMES = {"centred": "centred targets", "zscore": "z-scored targets"}
LANGUAGES = {"fa": "Persian", "de": "German", "fr": "French", "zh": "Chinese", "en": "English (spoken language)"}

# (column title, metric suffix) per layout; Macro-F1 twice: at the paper's fixed cosine and at
# the threshold chosen on validation
RETRIEVAL_5 = [("HITS@1", "hits1"), ("MRR", "mrr"), ("Macro-F1 (cos>=0.5)", "macro_f1_at_fixed"),
               ("Macro-F1 (val thr)", "macro_f1_at_val"), ("HITS@1 (all test items)", "all/hits1")]
RETRIEVAL_ALL = [("HITS@1", "hits1"), ("MRR", "mrr"), ("meanR", "mean_rank"),
                 ("Macro-F1 (cos>=0.5)", "macro_f1_at_fixed"), ("Macro-F1 (val thr)", "macro_f1_at_val")]


def result_table(rows: dict[str, dict[str, float]], cfg: Any) -> pd.DataFrame:
    """One trial's systems (the trained model, or each ASR system) in the stage's layout."""
    regime = f"{cfg.n_candidates} random candidates" if cfg.candidates == "sampled" else "all test items"
    out = []
    for label, m in rows.items():
        row: dict[str, Any] = {"Model": f"{label} [{regime}]", "HITS@1": m["hits1"], "MRR": m["mrr"],
                               "meanR": m["mean_rank"], "Macro-F1 (cos>=0.5)": m["macro_f1_at_fixed"],
                               "Macro-F1 (val thr)": m["macro_f1_at_val"], "val threshold": m["val_threshold"]}
        if "wer" in m:
            row["WER"] = m["wer"]
        out.append(row)
    return pd.DataFrame(out)


def _cells(group: pd.DataFrame, prefix: str, layout: list[tuple[str, str]]) -> dict[str, str]:
    return {title: mean_std(group[f"{prefix}{key}"]) if f"{prefix}{key}" in group else "" for title, key in layout}


def _seeds(group: pd.DataFrame) -> int:
    return int(group["seed"].nunique()) if "seed" in group else len(group)


def stage1(trials: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for value in ("spectrogram", "ssl", "combined"):
        g = trials[trials["modality"] == value]
        if len(g):
            # the paper tests stage 1 after 50 epochs: the last epoch's weights beside the best's
            last = _cells(g, "test_last/", [("HITS@1 (last epoch)", "hits1"), ("MRR (last epoch)", "mrr")])
            rows.append({"Model": STAGE1_ROWS[value], **_cells(g, "test/", RETRIEVAL_5), **last, "seeds": _seeds(g)})
    return pd.DataFrame(rows)


# Table 2's stage-2 order: SSL backbone, then text encoder, then fusion (Wav2Vec2 rows first,
# XLM-RoBERTa before LaBSE, Gating before Concatenation)
STAGE2_ORDER = {"ssl": list(SSL_NAMES)[::-1], "text": list(TEXT_NAMES)[::-1], "fusion": list(FUSION_NAMES)}


def stage2(trials: pd.DataFrame) -> pd.DataFrame:
    keys = [k for k in ("text", "ssl", "fusion") if k in trials]

    def paper_position(item: tuple[Any, pd.DataFrame]) -> tuple[int, ...]:
        values = item[0] if isinstance(item[0], tuple) else (item[0],)
        v = dict(zip(keys, values, strict=True))
        order = STAGE2_ORDER
        return tuple(order[k].index(v[k]) if v[k] in order[k] else len(order[k]) for k in ("ssl", "text", "fusion")
                     if k in v)

    rows = []
    for values, g in sorted(trials.groupby(keys, sort=True), key=paper_position):
        values = values if isinstance(values, tuple) else (values,)
        v = dict(zip(keys, values, strict=True))
        name = " + ".join(n for n in (TEXT_NAMES.get(v.get("text", ""), ""), SSL_NAMES.get(v.get("ssl", ""), "")) if n)
        if "fusion" in v:
            name = f"{name} - {FUSION_NAMES[v['fusion']]}" if name else FUSION_NAMES[v["fusion"]]
        rows.append({"Model Architecture": name, **_cells(g, "test/", RETRIEVAL_5), "seeds": _seeds(g)})
    return pd.DataFrame(rows)


# the other direction, each speech item against all distinct sentences (the notebooks' stage 3)
SPEECH_TO_TEXT = [("s→t HITS@1", "s2t/hits1"), ("s→t MRR", "s2t/mrr"), ("s→t meanR", "s2t/mean_rank")]


def stage3(trials: pd.DataFrame) -> pd.DataFrame:
    """Table 2's stage 3 (LASP, the ASR baseline, CLASP), each system followed by its rows in a
    standardised text space when the sweep varies ``text_targets`` (raw rows keep the paper's names;
    the others say which targets, e.g. "LASP (ours), centred targets")."""
    layout = [*RETRIEVAL_ALL, *SPEECH_TO_TEXT, ("WER", "wer")]
    spaces = trials["text_targets"].fillna("raw") if "text_targets" in trials else pd.Series("raw", trials.index)
    rows = []
    for system, label in (("lasp", "LASP (ours)"), ("asr", None), ("clasp", "CLASP (ours)")):
        for space in ("raw", *TEXT_TARGET_NAMES):
            g = trials[(trials["system"] == system) & (spaces == space)]
            if not len(g):
                continue
            suffix = f", {TEXT_TARGET_NAMES[space]}" if space != "raw" else ""
            if system == "asr":  # nothing trains towards targets: both text sides are transformed
                suffix = suffix.replace("targets", "text space")
            if system != "asr":
                rows.append({"Model": f"{label}{suffix}", **_cells(g, "test/", layout), "seeds": _seeds(g)})
                continue
            names = sorted({c.split("/")[2] for c in g.columns if c.startswith("test/asr/")
                            and c.endswith("/hits1") and g[c].notna().any()})
            for name in names:
                rows.append({"Model": f"ASR baseline: {name}{suffix}", **_cells(g, f"test/asr/{name}/", layout),
                             "seeds": _seeds(g)})
    return pd.DataFrame(rows)


def stage4(trials: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for lang in ("fa", "de", "fr", "zh", "en"):
        g = trials[trials["query_language"] == lang]
        if not len(g):
            continue
        covered = g["test/query_language_covered"] if "test/query_language_covered" in g else pd.Series([1.0])
        note = "" if (covered == 1).all() else "the text encoder does not cover this language (USE multilingual " \
                                               "has no Persian): the row measures an unsupported language"
        rows.append({"Language": LANGUAGES[lang], **_cells(g, "test/", RETRIEVAL_ALL), "seeds": _seeds(g),
                     "note": note})
    return pd.DataFrame(rows)


def summary_tables(trials: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The stage tables this sweep's searched fields make (several if a sweep varies several)."""
    out: dict[str, pd.DataFrame] = {}
    if trials.empty:
        return out
    if "modality" in trials:
        out["table2_stage1_modality"] = stage1(trials)
    if {"text", "ssl", "fusion"} & set(trials.columns):
        out["table2_stage2_backbone_fusion"] = stage2(trials)
    if "system" in trials:
        out["table2_stage3_loss_and_asr"] = stage3(trials)
    if "query_language" in trials:
        out["table2_stage4_multilingual"] = stage4(trials)
    return {k: v for k, v in out.items() if not v.empty}
