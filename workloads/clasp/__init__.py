"""CLASP (Abootorabi & Asgari, ECIR 2025): multilingual text-to-speech retrieval.

Corpora (each a registered builder; importing its module registers it):

* ``clasp_local`` (:mod:`.corpus_local`): synthetic spoken sentences in 15 Brown-corpus
  categories with parallel German/French/Persian/Chinese versions (:mod:`.sentences`);
* ``clasp_speech_brown`` (:mod:`.speech_brown`), ``clasp_common_voice`` (:mod:`.common_voice`),
  ``clasp_fleurs`` (:mod:`.fleurs_sentences`): the paper's three datasets in their official layouts;
* :mod:`.translations`: the per-language translation TSVs that the paper's Stage 4 queries come
  from (the paper translated its test set with SMaLL-100), read into ``meta.translations`` or
  produced once with a seq2seq model.

Every manifest has one row per spoken sentence: ``texts`` = [the English transcript], ``label`` =
the topic category where the corpus has one (else the corpus name), ``language`` = the spoken
language, ``meta`` = JSON ``{"category": ..., "translations": {"de": [...], ...}}`` with only the
keys that are known. This module holds what all of them share: the split rule and the meta JSON,
and the workload's light description ``INFO`` (config class and field roles; the recipe itself is
:mod:`.workload`, imported only when a sweep runs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.corpus import seeded_rng
from orchestrator.registry import WorkloadInfo
from workloads.clasp.config import ClaspConfig

SPLIT_FRACTIONS = (("train", 0.8), ("val", 0.1), ("test", 0.1))  # the paper's 80/10/10 (sec. 3.3)
TRANSLATION_LANGUAGES = ("de", "fr", "fa", "zh")  # the paper's Stage 4 query languages
# The Brown corpus' 15 categories, spelled as NLTK and Speech Brown's metadata spell them.
CATEGORIES = (
    "adventure", "belles_lettres", "editorial", "fiction", "government", "hobbies", "humor", "learned",
    "lore", "mystery", "news", "religion", "reviews", "romance", "science_fiction",
)  # fmt: skip


def split_sizes(n: int) -> list[int]:
    """Items per split for ``n`` items: 10 % (rounded) each for val and test, at least one each
    once there are 3 items, the rest train (1,500 -> 1,200/150/150; 30 -> 24/3/3; 3 -> 1/1/1)."""
    small = [max(1, round(f * n)) if n >= 3 else 0 for _, f in SPLIT_FRACTIONS[1:]]
    return [n - sum(small), *small]


def assign_splits(
    ids: Sequence[str],
    seed: int,
    salt: str,
    *,
    groups: Sequence[str] | None = None,
    strata: Sequence[str] | None = None,
) -> dict[str, str]:
    """``id -> train|val|test``, 80/10/10 of the items, deterministic in (ids, seed, salt).

    Items of one group (the same sentence read by several speakers) always share a split: a test
    query whose text was a training target would measure memorisation, not retrieval. Groups are
    ordered by their quantile inside their stratum (category) with seeded jitter, so every stratum
    is spread over the splits in proportion, and then cut where the cumulative item count crosses
    the :func:`split_sizes` boundaries: with singleton groups the counts are exact.
    """
    if groups is not None and len(groups) != len(ids):
        raise ValueError("groups must have one entry per id")
    if strata is not None and len(strata) != len(ids):
        raise ValueError("strata must have one entry per id")
    members: dict[str, list[str]] = {}
    stratum_of: dict[str, str] = {}
    for k, item in enumerate(ids):
        g = groups[k] if groups is not None else item
        members.setdefault(g, []).append(item)
        stratum_of.setdefault(g, strata[k] if strata is not None else "")
    by_stratum: dict[str, list[str]] = {}
    for g in sorted(members):
        by_stratum.setdefault(stratum_of[g], []).append(g)
    keyed: list[tuple[float, float, str]] = []
    for stratum, units in sorted(by_stratum.items()):
        rng = seeded_rng("split", salt, seed, stratum)
        order = rng.permutation(len(units))
        jitter = rng.random(len(units))
        for rank, i in enumerate(order):
            keyed.append(((rank + 0.5) / len(units), float(jitter[rank]), units[i]))
    keyed.sort()
    n = len(ids)
    sizes = split_sizes(n)
    bounds = [sum(sizes[: k + 1]) for k in range(len(sizes))]
    out: dict[str, str] = {}
    start = 0
    for _, _, g in keyed:
        split = next(s for (s, _), b in zip(SPLIT_FRACTIONS, bounds, strict=True) if start < b)
        for item in members[g]:
            out[item] = split
        start += len(members[g])
    return out


def finalize_meta(rows: Sequence[dict[str, Any]]) -> None:
    """Turn each row's working ``_meta`` dict (category, translations) into the ``meta`` JSON."""
    for row in rows:
        row["meta"] = item_meta(**row.pop("_meta", {}))


def item_meta(
    category: str | None = None, translations: dict[str, list[str]] | None = None, **extra: Any
) -> str | None:
    """The manifest's ``meta`` JSON with only the known keys (None when nothing is known), in a
    canonical form (sorted keys, UTF-8 text as is) so identical builds give identical bytes."""
    meta: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if category is not None:
        meta["category"] = category
    if translations:
        meta["translations"] = {lang: list(texts) for lang, texts in sorted(translations.items())}
    return json.dumps(meta, ensure_ascii=False, sort_keys=True) if meta else None



INFO = WorkloadInfo(
    name="clasp",
    config_cls=ClaspConfig,
    regime="frozen",
    profiles_file=Path(__file__).with_name("profiles.yaml"),
    impl="workloads.clasp.workload:ClaspWorkload",
    # what decides which views are extracted (enumerated over a search space before trials start)
    data_fields=("corpus", "corpus_options", "ssl", "text", "ssl_encoders", "text_encoders", "spectrogram",
                 "asr_models", "modality", "system", "query_language"),
    # what changes evaluation only: a search space over these alone trains once and evaluates per trial
    inference_fields=("query_language", "candidates", "n_candidates", "threshold"),
)
