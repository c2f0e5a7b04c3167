"""Japanese speaker descriptions: slot-filled prompts plus a small deterministic paraphrase grammar.

The paper's Japanese side (sec. III-C, Fig. 2) slot-fills CSJ's speaker metadata into a Japanese
prompt, has an LLM paraphrase it, and re-segments the result with JumanPP for the Japanese BART
(the segmentation is the text encoder's pre-processing here: ``orchestrator.encoders.segmenters``).
As for English (:mod:`workloads.speaker_text.descriptions`), no LLM is reachable, so the paraphrase
step is a grammar over the same :class:`~workloads.speaker_text.descriptions.Fact` list: every
description of a speaker states every fact and nothing else, in different frames (a plain
"、"-list, prenominal modifiers, short sentences, tags, an opener), so the K descriptions of a
speaker differ only in wording. The first description is always the slot-filled template.

The lexicon covers the facts the synthetic corpus draws (sex, the eSpeak English accents, voice
quality, pitch, speaking rate) and the usual metadata columns of a CSV (age, nationality); any
other column is stated as "<column>は<value>".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workloads.speaker_text.descriptions import (
    PITCH_ALIASES,
    RATE_ALIASES,
    Fact,
)

GRAMMAR_VERSION_JA = 1  # bump when any phrase changes: part of the corpus cache key

HEADS = {"male": ("男性", "男の人", "男性の話者"), "female": ("女性", "女の人", "女性の話者"),
         "": ("話者", "人", "話し手")}  # fmt: skip
ACCENTS_JA = {
    "en-us": ("アメリカ英語", "米国英語"), "en-gb": ("イギリス英語", "英国英語"),
    "en-gb-scotland": ("スコットランド英語", "スコットランド"), "en-gb-x-rp": ("容認発音", "RP"),
    "en-029": ("カリブ英語", "西インド諸島英語"), "en-gb-x-gbclan": ("ランカシャー英語", "イングランド北部英語"),
    "en-gb-x-gbcwmd": ("ウェスト・ミッドランズ英語", "バーミンガム英語"),
    "en-us-nyc": ("ニューヨーク英語", "ニューヨーク"),
}  # fmt: skip
QUALITY_JA = {"clear": ("澄んだ", "きれいな", "なめらかな"), "breathy": ("息の多い", "ささやくような", "吐息まじりの"),
              "hoarse": ("かすれた", "しゃがれた", "ハスキーな"), "shaky": ("震える", "震えた", "揺れる"),
              "tinny": ("金属的な", "細い", "硬い")}  # fmt: skip
PITCH_JA = {"low": ("低い", "低めの", "太い"), "medium": ("普通の高さの", "中くらいの高さの"),
            "high": ("高い", "高めの", "甲高い")}  # fmt: skip
PITCH_LEVEL_JA = {"low": "低い", "medium": "普通", "high": "高い"}
RATE_JA = {  # (adverbials of 話す, nouns)
    "slow": (("ゆっくり", "ゆったりと", "のんびりと"), ("ゆっくりした話し方", "遅めの話速")),
    "normal": (("普通の速さで", "標準的な速さで", "落ち着いたペースで"), ("普通の話速", "標準的な話し方の速さ")),
    "fast": (("速く", "早口で", "テンポよく"), ("早口", "速めの話速")),
}  # fmt: skip
COUNTRIES_JA = {"usa": "アメリカ", "us": "アメリカ", "united states": "アメリカ", "uk": "イギリス",
                "united kingdom": "イギリス", "japan": "日本", "canada": "カナダ", "australia": "オーストラリア",
                "india": "インド", "ireland": "アイルランド", "germany": "ドイツ", "france": "フランス",
                "china": "中国", "korea": "韓国", "south korea": "韓国"}  # fmt: skip
AGE_JA = {"young": "若い", "middle-aged": "中年の", "elderly": "年配の", "old": "年配の", "teenage": "十代の",
          "adult": "大人の"}  # fmt: skip


@dataclass(frozen=True)
class FormsJa:
    """How one fact can be said: a noun phrase (lists, tags), a prenominal modifier, a sentence."""

    nouns: tuple[str, ...]
    mods: tuple[str, ...]
    sents: tuple[str, ...]


def _forms(fact: Fact) -> FormsJa:
    kind, value = fact.kind, fact.value.strip()
    low = value.lower()
    if kind == "accent":
        names = ACCENTS_JA.get(low, (value,))
        return FormsJa(tuple(f"{n}のアクセント" for n in names) + tuple(f"{n}なまり" for n in names),
                       tuple(f"{n}なまりの" for n in names) + tuple(f"{n}のアクセントで話す" for n in names),
                       tuple(f"{n}のアクセントがある。" for n in names) + tuple(f"{n}なまりで話す。" for n in names))
    if kind == "quality":
        adjs = QUALITY_JA.get(low, (f"{value}な",))
        return FormsJa(tuple(f"{a}声" for a in adjs), tuple(f"{a}声の" for a in adjs),
                       tuple(f"{a}声をしている。" for a in adjs) + tuple(f"{a}声で話す。" for a in adjs))
    if kind == "pitch":
        level = PITCH_ALIASES.get(low, low)
        adjs = PITCH_JA.get(level, (f"{value}の",))
        said = PITCH_LEVEL_JA.get(level, value)
        return FormsJa(tuple(f"{a}声" for a in adjs) + (f"声の高さは{said}",), tuple(f"{a}声の" for a in adjs),
                       (f"声の高さは{said}。", f"声が{said}。") if level != "medium" else (f"声の高さは{said}。",))
    if kind == "rate":
        level = RATE_ALIASES.get(low, low)
        advs, nouns = RATE_JA.get(level, ((f"{value}の速さで",), (f"{value}の話速",)))
        return FormsJa(nouns, tuple(f"{a}話す" for a in advs), tuple(f"{a}話す。" for a in advs))
    if kind == "nationality":
        country = COUNTRIES_JA.get(low, value)
        return FormsJa((f"{country}出身",), (f"{country}出身の",), (f"{country}出身。", f"出身は{country}。"))
    if kind == "age":
        if value.isdigit():
            return FormsJa((f"{value}歳",), (f"{value}歳の",), (f"年齢は{value}歳。", f"{value}歳である。"))
        if low in AGE_JA:
            a = AGE_JA[low]
            return FormsJa((a.removesuffix("の"),), (a,), (f"{a.removesuffix('の')}話者である。",))
    label = fact.label or kind
    return FormsJa((f"{label}は{value}",), (f"{label}が{value}の",), (f"{label}は{value}。",))


def _head(facts: Sequence[Fact]) -> tuple[tuple[str, ...], list[Fact]]:
    sexes = [f for f in facts if f.kind == "sex"]
    rest = [f for f in facts if f.kind != "sex"]
    key = sexes[0].value.strip().lower() if sexes else ""
    key = {"m": "male", "f": "female", "man": "male", "woman": "female", "男性": "male", "女性": "female"}.get(key, key)
    return HEADS.get(key, (sexes[0].value,) if sexes else HEADS[""]), rest


def template_ja(facts: Sequence[Fact]) -> str:
    """The slot-filled prompt: the head, then each fact's first noun phrase in the given order."""
    heads, rest = _head(facts)
    return "、".join([f"{heads[0]}の話者" if heads[0] in ("男性", "女性") else heads[0],
                      *(_forms(f).nouns[0] for f in rest)]) + "。"


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _frame(name: str, rng: np.random.Generator, heads: Sequence[str], forms: list[FormsJa]) -> str:
    order = [forms[i] for i in rng.permutation(len(forms))]
    head = _pick(rng, heads)
    if name == "list":
        return "、".join([head, *(_pick(rng, f.nouns) for f in order)]) + "。"
    if name == "modifiers":
        return "、".join(_pick(rng, f.mods) for f in order) + head + "。" if order else f"{head}。"
    if name == "sentences":
        return f"{head}である。" + "".join(_pick(rng, f.sents) for f in order)
    if name == "tags":
        return "・".join([head, *(_pick(rng, f.nouns) for f in order)])
    opener = _pick(rng, ("この話者は", "聞こえるのは", "録音の話し手は"))
    return opener + "、".join(_pick(rng, f.mods) for f in order) + head + "です。"


FRAMES_JA = ("list", "modifiers", "sentences", "tags", "opener")


def describe_ja(facts: Sequence[Fact], n: int, rng: np.random.Generator, max_tries: int = 200) -> list[str]:
    """``n`` different Japanese descriptions: the template first, then paraphrases from the frames
    in an order drawn from ``rng``. Raises ValueError when the facts cannot be said ``n`` ways."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    heads, rest = _head(facts)
    forms = [_forms(f) for f in rest]
    out = [template_ja(facts)]
    order = [FRAMES_JA[i] for i in rng.permutation(len(FRAMES_JA))]
    tries = 0
    while len(out) < n:
        if tries >= max_tries:
            raise ValueError(f"only {len(out)} different descriptions of {list(facts)} after {max_tries} tries")
        text = _frame(order[(len(out) - 1 + tries // 8) % len(order)], rng, heads, forms)
        tries += 1
        if text not in out:
            out.append(text)
    return out
