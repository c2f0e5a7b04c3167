"""Speaker descriptions: slot-filled templates plus a deterministic paraphrase grammar.

The paper (sec. III-C, Fig. 2) builds its text side in three steps: take the speaker metadata
from the database, slot-fill a structured prompt ("A [gender] speaker ..."), then ask an LLM to
paraphrase it so that the texts vary across speakers. No LLM is reachable on the build machines,
and an LLM's output would not be reproducible anyway, so the third step is a small grammar here:
the same facts are realised with synonyms, different syntactic frames (prepositional "with ..."
lists, relative clauses, prenominal adjectives, short sentences, tag lists, "a deep, hoarse
voice ..." phrases), shuffled fact order and optional openers ("This is ...", "You can hear ...").

Every description of a speaker states every fact it was given and nothing else, so the K
descriptions of one speaker carry the same information and differ only in wording: what an LLM
paraphrase is asked to do, and what makes a text query's relevant set exactly "the speakers with
these attributes". The first description of a list is always the plain slot-filled template, so a
workload can pick "template only" (``texts[0]``) or "all paraphrases".

The three corpus builders (synthetic eSpeak speakers, VoxCeleb1, a user's CSV) share this module:
facts come from metadata by column name (:func:`facts_from_attributes`); kinds with a lexicon
(sex, accent, nationality, age, pitch, rate, voice quality) get idiomatic phrases, any other
column is stated as "whose <column> is <value>" / "<Column>: <value>.". English only: the paper's
Japanese texts went through a Japanese LLM and JumanPP, which this grammar does not replace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

GRAMMAR_VERSION = 1  # bump when any phrase changes: part of every speaker-text corpus's cache key

# ------------------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class Fact:
    """One attribute of a speaker. ``kind`` selects the lexicon; ``label`` names a column that has
    no lexicon (kind "other"), so it can still be stated."""

    kind: str
    value: str
    label: str = ""


KIND_ALIASES = {
    "sex": "sex", "gender": "sex",
    "accent": "accent",
    "nationality": "nationality", "country": "nationality",
    "age": "age",
    "pitch": "pitch", "pitch_level": "pitch",
    "rate": "rate", "speaking_rate": "rate", "speed": "rate", "tempo": "rate",
    "quality": "quality", "voice_quality": "quality", "voice": "quality",
}  # fmt: skip
# the order facts appear in the slot-filled template (Fig. 2 puts the speaker first, then the voice)
CANONICAL_ORDER = ("sex", "age", "nationality", "accent", "quality", "pitch", "rate", "other")


def facts_from_attributes(attrs: Mapping[str, Any]) -> list[Fact]:
    """Facts in template order from a metadata mapping; empty values are skipped (not known is not
    a fact), column names are matched case-insensitively, spaces and dashes as underscores."""
    facts = []
    for column, raw in attrs.items():
        if raw is None or str(raw).strip() == "":
            continue
        key = re.sub(r"[\s\-]+", "_", str(column).strip().lower())
        kind = KIND_ALIASES.get(key, "other")
        value = str(raw).strip()
        if kind == "sex" and normalise_sex(value) is None:
            kind = "other"  # e.g. "non-binary": stated as given rather than forced into male/female
        label = "" if kind != "other" else str(column).strip().replace("_", " ")
        facts.append(Fact(kind, normalise_sex(value) if kind == "sex" else value, label))
    rank = {k: i for i, k in enumerate(CANONICAL_ORDER)}
    return sorted(facts, key=lambda f: rank[f.kind])  # stable: "other" columns keep their order


_SEX = {"m": "male", "male": "male", "man": "male", "masculine": "male",
        "f": "female", "female": "female", "woman": "female", "feminine": "female"}  # fmt: skip


def normalise_sex(value: str) -> str | None:
    return _SEX.get(value.strip().lower())


# --------------------------------------------------------------------------------- English bits

_AN_LETTERS = set("AEFHILMNORSX")  # letters whose spoken name starts with a vowel sound
_A_PREFIXES = ("uni", "use", "usu", "ukr", "uru", "uga", "eu", "one", "once")
_AN_PREFIXES = ("hour", "honest", "honour", "heir")


def article(phrase: str) -> str:
    """'a' or 'an' for ``phrase`` by its first word's sound: acronyms by letter name ("an RP
    accent", "a US accent"), numbers by their spoken form ("an 18-year-old"), a few spelling
    exceptions ("a Ukrainian", "an hour")."""
    word = phrase.split()[0].strip("'\"(")
    core = word.split("-")[0]
    if core[:1].isdigit():
        digits = re.match(r"\d+", core).group()  # type: ignore[union-attr]
        return "an" if digits[0] == "8" or digits in ("11", "18") else "a"
    if core.isupper() and len(core) <= 4:
        return "an" if core[0] in _AN_LETTERS else "a"
    low = word.lower()
    if low.startswith(_AN_PREFIXES):
        return "an"
    if low.startswith(_A_PREFIXES):
        return "a"
    return "an" if low[:1] in "aeiou" else "a"


def with_article(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def join_list(items: Sequence[str], oxford: bool = False) -> str:
    """'A', 'A and B', 'A, B and C' (or 'A, B, and C')."""
    if len(items) <= 1:
        return "".join(items)
    comma = "," if oxford and len(items) > 2 else ""
    return f"{', '.join(items[:-1])}{comma} and {items[-1]}"


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# ------------------------------------------------------------------------------------- lexicon


@dataclass(frozen=True)
class Forms:
    """The ways one fact can be said. ``canonical`` = (slot, phrase) of the slot-filled template,
    slot "pre" (before the noun), "post" (after it) or "with" (in the "with A, B and C" list).
    ``with_`` phrases follow a shared "with"; ``post`` phrases carry their own preposition;
    ``vp`` are third-person verb phrases for "who ..."; ``sent`` stand alone; ``voice`` are
    adjectives of the word "voice"; ``tag`` are label-style fragments."""

    canonical: tuple[str, str]
    sent: tuple[str, ...]
    tag: tuple[str, ...]
    pre: tuple[str, ...] = ()
    with_: tuple[str, ...] = ()
    post: tuple[str, ...] = ()
    vp: tuple[str, ...] = ()
    voice: tuple[str, ...] = ()


@dataclass(frozen=True)
class Head:
    """The described person: "male" + nouns ("man", "male speaker", ...), or no sex at all."""

    adj: str
    nouns: tuple[str, ...]
    tags: tuple[str, ...]


HEADS = {
    "male": Head("male", ("man", "male speaker", "gentleman", "male talker"), ("Male speaker", "Male", "Man")),
    "female": Head(
        "female", ("woman", "female speaker", "lady", "female talker"), ("Female speaker", "Female", "Woman")
    ),
    None: Head("", ("speaker", "person", "talker"), ("Speaker",)),
}  # fmt: skip

# eSpeak NG accent voices (language codes as in the voice files) and how a listener would name them;
# the first name is the template's
ACCENT_NAMES: dict[str, tuple[str, ...]] = {
    "en-us": ("American", "General American", "US"),
    "en-gb": ("British", "Southern British", "standard British"),
    "en-gb-scotland": ("Scottish", "Scots"),
    "en-gb-x-rp": ("Received Pronunciation", "RP", "BBC English"),
    "en-029": ("Caribbean", "West Indian"),
    "en-gb-x-gbclan": ("Lancashire", "Lancastrian", "northern English"),
    "en-gb-x-gbcwmd": ("West Midlands", "Brummie", "Black Country"),
    "en-us-nyc": ("New York", "New York City", "NYC"),
}

PITCH_WORDS = {  # (adjectives of "pitch"/"voice", prenominal adjectives of the person)
    "low": (("low", "deep", "low-pitched"), ("deep-voiced",)),
    "medium": (("medium", "mid-range", "medium-pitched"), ()),
    "high": (("high", "high-pitched"), ("high-voiced",)),
}
PITCH_ALIASES = {"mid": "medium", "middle": "medium", "average": "medium", "normal": "medium", "deep": "low"}

RATE_WORDS = {  # (adjectives of the rate, adverbials of "speaks", prenominal adjectives)
    "slow": (("slow", "unhurried", "leisurely"), ("slowly", "at a slow pace", "at a leisurely pace"),
             ("slow-speaking", "slow-talking")),
    "normal": (("normal", "average", "moderate", "steady"),
               ("at a normal pace", "at an average speed", "at a moderate tempo", "at a steady pace"), ()),
    "fast": (("fast", "quick", "rapid", "brisk"), ("quickly", "fast", "rapidly", "at a brisk pace"),
             ("fast-talking", "fast-speaking", "quick-talking")),
}  # fmt: skip
RATE_ALIASES = {"medium": "normal", "average": "normal", "moderate": "normal", "quick": "fast", "rapid": "fast"}

QUALITY_WORDS = {
    "clear": ("clear", "clean", "smooth"),
    "breathy": ("breathy", "whispery", "airy"),
    "hoarse": ("hoarse", "croaky", "raspy"),
    "shaky": ("shaky", "trembling", "quavering"),
    "tinny": ("tinny", "thin", "metallic"),
}

# nationality as VoxCeleb1 writes it -> (country as said after "from", adjective or None)
COUNTRIES: dict[str, tuple[str, str | None]] = {
    "usa": ("the United States", "American"), "us": ("the United States", "American"),
    "united states": ("the United States", "American"), "uk": ("the United Kingdom", "British"),
    "united kingdom": ("the United Kingdom", "British"), "england": ("England", "English"),
    "scotland": ("Scotland", "Scottish"), "wales": ("Wales", "Welsh"), "ireland": ("Ireland", "Irish"),
    "canada": ("Canada", "Canadian"), "australia": ("Australia", "Australian"),
    "new zealand": ("New Zealand", None), "india": ("India", "Indian"), "pakistan": ("Pakistan", "Pakistani"),
    "bangladesh": ("Bangladesh", "Bangladeshi"), "sri lanka": ("Sri Lanka", "Sri Lankan"),
    "germany": ("Germany", "German"), "france": ("France", "French"), "italy": ("Italy", "Italian"),
    "spain": ("Spain", "Spanish"), "portugal": ("Portugal", "Portuguese"), "netherlands": ("the Netherlands", "Dutch"),
    "belgium": ("Belgium", "Belgian"), "switzerland": ("Switzerland", "Swiss"), "austria": ("Austria", "Austrian"),
    "norway": ("Norway", "Norwegian"), "sweden": ("Sweden", "Swedish"), "denmark": ("Denmark", "Danish"),
    "finland": ("Finland", "Finnish"), "iceland": ("Iceland", "Icelandic"), "poland": ("Poland", "Polish"),
    "russia": ("Russia", "Russian"), "ukraine": ("Ukraine", "Ukrainian"), "croatia": ("Croatia", "Croatian"),
    "serbia": ("Serbia", "Serbian"), "hungary": ("Hungary", "Hungarian"), "romania": ("Romania", "Romanian"),
    "greece": ("Greece", "Greek"), "turkey": ("Turkey", "Turkish"), "czech republic": ("the Czech Republic", "Czech"),
    "israel": ("Israel", "Israeli"), "lebanon": ("Lebanon", "Lebanese"), "iran": ("Iran", "Iranian"),
    "egypt": ("Egypt", "Egyptian"), "sudan": ("Sudan", "Sudanese"), "nigeria": ("Nigeria", "Nigerian"),
    "ghana": ("Ghana", "Ghanaian"), "kenya": ("Kenya", "Kenyan"), "south africa": ("South Africa", "South African"),
    "mexico": ("Mexico", "Mexican"), "brazil": ("Brazil", "Brazilian"), "argentina": ("Argentina", "Argentinian"),
    "chile": ("Chile", "Chilean"), "colombia": ("Colombia", "Colombian"), "peru": ("Peru", "Peruvian"),
    "cuba": ("Cuba", "Cuban"), "jamaica": ("Jamaica", "Jamaican"), "puerto rico": ("Puerto Rico", "Puerto Rican"),
    "trinidad and tobago": ("Trinidad and Tobago", None), "guyana": ("Guyana", "Guyanese"),
    "china": ("China", "Chinese"), "japan": ("Japan", "Japanese"), "south korea": ("South Korea", "South Korean"),
    "korea": ("Korea", "Korean"), "philippines": ("the Philippines", "Filipino"),
    "singapore": ("Singapore", "Singaporean"), "malaysia": ("Malaysia", "Malaysian"),
    "indonesia": ("Indonesia", "Indonesian"), "thailand": ("Thailand", "Thai"), "vietnam": ("Vietnam", "Vietnamese"),
}  # fmt: skip
_THE_COUNTRIES = ("united ", "netherlands", "philippines", "bahamas", "czech republic", "dominican republic")

AGE_WORDS = ("young", "middle-aged", "elderly", "old", "older", "teenage", "adult")


def _accent(value: str) -> Forms:
    names = ACCENT_NAMES.get(value.lower(), (value,))
    accents = tuple(f"{with_article(n)} accent" for n in names)
    return Forms(
        canonical=("with", accents[0]),
        sent=tuple(f"The accent is {n}." for n in names) + (f"Accent: {names[0]}.",),
        tag=tuple(f"{n} accent" for n in names),
        pre=tuple(f"{n}-accented" for n in names if " " not in n),
        with_=accents,
        post=tuple(f"speaking with {a}" for a in accents),
        vp=tuple(f"speaks with {a}" for a in accents) + tuple(f"has {a}" for a in accents),
    )


def _pitch(value: str) -> Forms:
    level = PITCH_ALIASES.get(value.lower(), value.lower())
    if level not in PITCH_WORDS:  # a free-text pitch description from a user's CSV
        return Forms(("with", f"{value} pitch"), (f"The pitch is {value}.",), (f"{value} pitch",),
                     with_=(f"{value} pitch",), vp=(f"speaks at {with_article(value)} pitch",))  # fmt: skip
    adjs, pres = PITCH_WORDS[level]
    voices = tuple(a for a in adjs if a not in ("low", "medium", "high")) or adjs
    return Forms(
        canonical=("with", f"{level} pitch"),
        sent=(f"The pitch is {level}.", f"Pitch: {level}.", f"The voice is {voices[0]}."),
        tag=(f"{level} pitch", f"{voices[-1]} voice"),
        pre=pres,
        with_=(f"{level} pitch", *(f"{with_article(v)} voice" for v in voices)),
        vp=(f"speaks at {with_article(level)} pitch", *(f"has {with_article(v)} voice" for v in voices)),
        voice=voices,
    )


def _rate(value: str) -> Forms:
    level = RATE_ALIASES.get(value.lower(), value.lower())
    if level not in RATE_WORDS:
        return Forms(("with", f"{with_article(value)} speaking rate"), (f"The speaking rate is {value}.",),
                     (f"{value} speaking rate",), with_=(f"{with_article(value)} speaking rate",))  # fmt: skip
    adjs, advs, pres = RATE_WORDS[level]
    return Forms(
        canonical=("with", f"{with_article(level)} speaking rate"),
        sent=tuple(f"The speaking rate is {a}." for a in adjs[:2])
        + (f"The pace is {adjs[-1]}.", f"Speaking rate: {level}."),
        tag=tuple(f"{a} speaking rate" for a in adjs[:2]) + (f"{adjs[-1]} pace",),
        pre=pres,
        with_=tuple(f"{with_article(a)} speaking rate" for a in adjs)
        + tuple(f"{with_article(a)} pace" for a in adjs[1:]),
        post=tuple(f"speaking {a}" for a in advs) + tuple(f"talking {a}" for a in advs[:1]),
        vp=tuple(f"speaks {a}" for a in advs) + tuple(f"talks {a}" for a in advs[:2]),
    )  # fmt: skip


def _quality(value: str) -> Forms:
    adjs = QUALITY_WORDS.get(value.lower(), (value,))
    voices = tuple(f"{with_article(a)} voice" for a in adjs)
    return Forms(
        canonical=("with", voices[0]),
        sent=tuple(f"The voice is {a}." for a in adjs)
        + (f"The voice sounds {adjs[-1]}.", f"Voice quality: {adjs[0]}."),
        tag=tuple(f"{a} voice" for a in adjs),
        pre=tuple(f"{a}-voiced" for a in adjs[:2] if " " not in a),
        with_=voices,
        post=tuple(f"speaking in {v}" for v in voices),
        vp=tuple(f"has {v}" for v in voices) + tuple(f"speaks in {v}" for v in voices[:1]),
        voice=adjs,
    )  # fmt: skip


def _nationality(value: str) -> Forms:
    key = re.sub(r"[\s_]+", " ", value.strip().lower().replace(".", ""))
    country, adj = COUNTRIES.get(key, (_country_phrase(value), None))
    sent = (f"The speaker is from {country}.", f"Country of origin: {country}.")
    if adj is None:
        return Forms(("post", f"from {country}"), sent, (f"from {country}",), post=(f"from {country}",),
                     vp=(f"comes from {country}", f"is from {country}"))  # fmt: skip
    return Forms(
        canonical=("post", f"from {country}"),
        sent=sent + (f"Nationality: {adj}.",),
        tag=(adj, f"from {country}", f"{adj} nationality"),
        pre=(adj,),
        post=(f"from {country}",),
        vp=(f"comes from {country}", f"is from {country}", f"is {adj}"),
    )


def _country_phrase(value: str) -> str:
    name = re.sub(r"[\s_]+", " ", value.strip())
    return f"the {name}" if name.lower().startswith(_THE_COUNTRIES) else name


def _age(value: str) -> Forms:
    if value.isdigit():
        return Forms(("pre", f"{value}-year-old"), (f"The speaker is {value} years old.", f"Age: {value}."),
                     (f"{value} years old", f"aged {value}"), pre=(f"{value}-year-old",), post=(f"aged {value}",),
                     vp=(f"is {value} years old",))  # fmt: skip
    if value.lower() in AGE_WORDS:
        v = value.lower()
        return Forms(("pre", v), (f"The speaker is {v}.",), (v,), pre=(v,), vp=(f"is {v}",))
    return _other(Fact("other", value, "age"))


def _other(fact: Fact) -> Forms:
    label, value = fact.label or fact.kind, fact.value
    return Forms(
        canonical=("post", f"whose {label} is {value}"),
        sent=(f"{capitalise(label)}: {value}.", f"The {label} is {value}."),
        tag=(f"{label}: {value}",),
        post=(f"whose {label} is {value}",),
    )


_LEXICON = {"accent": _accent, "pitch": _pitch, "rate": _rate, "quality": _quality,
            "nationality": _nationality, "age": _age}  # fmt: skip


def forms_for(fact: Fact) -> Forms:
    if fact.kind in _LEXICON:
        return _LEXICON[fact.kind](fact.value)
    return _other(fact)


def split_head(facts: Sequence[Fact]) -> tuple[Head, list[Fact]]:
    """The sex fact becomes the head noun ("a man ..."); the others are its modifiers."""
    sex = next((f.value for f in facts if f.kind == "sex"), None)
    return HEADS[sex], [f for f in facts if f.kind != "sex"]


# ----------------------------------------------------------------------------------- template


def template_description(facts: Sequence[Fact]) -> str:
    """The slot-filled prompt of the paper's Fig. 2, e.g. "A male speaker with a Scottish accent,
    low pitch and a fast speaking rate." (facts in template order, canonical phrases)."""
    head, rest = split_head(facts)
    slots: dict[str, list[str]] = {"pre": [], "post": [], "with": [], "whose": []}
    for fact in rest:
        slot, phrase = forms_for(fact).canonical
        slots["whose" if phrase.startswith("whose ") else slot].append(phrase)
    noun = " ".join([*slots["pre"], *([head.adj] if head.adj else []), "speaker"])
    text = with_article(noun)
    if slots["post"]:
        text += " " + " ".join(slots["post"])
    if slots["with"]:
        text += " with " + join_list(slots["with"])
    if slots["whose"]:
        text += " " + " and ".join(slots["whose"])
    return capitalise(text) + "."


# -------------------------------------------------------------------------------- paraphrases

Item = tuple[Fact, Forms]
OPENERS = ("", "", "", "This is ", "The recording features ", "You can hear ", "Speech from ", "Here we have ")
SENTENCE_OPENERS = ("", "The speaker is ", "This is ", "It is ")
PRE_ORDER = {"age": 0, "nationality": 2, "accent": 2}  # English order: "a young fast-talking Irish man"


class _Grammar:
    """One paraphrase draw: every choice comes from ``rng``, so a (speaker, seed) key always gives
    the same descriptions."""

    def __init__(self, rng: np.random.Generator, head: Head, items: list[Item]) -> None:
        self.rng = rng
        self.head = head
        self.items = [items[i] for i in rng.permutation(len(items))]

    def pick(self, options: Sequence[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def subject(self, pres: Sequence[str] = (), avoid: str = "") -> str:
        """'a man', 'a young fast-talking Irish female speaker' (age first, origin last)."""
        nouns = tuple(n for n in self.head.nouns if not avoid or avoid not in n) or self.head.nouns
        return with_article(" ".join([*pres, self.pick(nouns)]))

    def sentences(self, items: Sequence[Item]) -> str:
        return "".join(" " + p for p in self.phrases(items, "sent"))

    def finish(self, main: str, rest: Sequence[Item], opener: str = "") -> str:
        return capitalise(opener + main) + "." + self.sentences(rest)

    def take_pres(self, at_most: int, p: float) -> tuple[list[str], list[Item]]:
        """Up to ``at_most`` facts said as adjectives before the noun, each with probability ``p``."""
        pres, rest = [], []
        for item in self.items:
            if item[1].pre and len(pres) < at_most and self.chance(p):
                pres.append((PRE_ORDER.get(item[0].kind, 1), self.pick(item[1].pre)))
            else:
                rest.append(item)
        return [w for _, w in sorted(pres, key=lambda x: x[0])], rest

    def with_list(self, items: Sequence[Item], person: bool = True) -> tuple[str, list[Item]]:
        """' from Ireland with a deep, hoarse voice and a slow pace' and the facts it could not hold.

        "whose ..." clauses go after the with-list (they would otherwise swallow it); after the
        noun "voice" (``person`` False) only "from ..."/"speaking ..." phrases fit, the rest become
        sentences. Two voice adjectives are merged ("a deep, hoarse voice") or only one of them
        says "voice", so a description never reads "a hoarse voice and a deep voice"."""
        fits = ("from ", "speaking ") if not person else ("",)
        withs = [(fact, f) for fact, f in items if f.with_]
        posts, clauses, rest = [], [], []
        for fact, f in items:
            if f.with_:
                continue
            post = [p for p in f.post if p.startswith(fits)]
            if not post:
                rest.append((fact, f))
            elif post[0].startswith("whose "):
                clauses.append(self.pick(post))
            else:
                posts.append(self.pick(post))
        phrases = self._with_phrases(withs)
        text = "".join(" " + p for p in posts)
        if phrases:
            text += " with " + join_list(phrases, oxford=self.chance(0.3))
        if clauses:
            text += " " + " and ".join(clauses)
        return text, rest

    def _with_phrases(self, withs: Sequence[Item]) -> list[str]:
        voiced = [i for i, (_, f) in enumerate(withs) if f.voice]
        if len(voiced) == 2 and self.chance(0.5):
            i, j = voiced
            merged = with_article(f"{self.pick(withs[i][1].voice)}, {self.pick(withs[j][1].voice)} voice")
            phrases = [self.pick(f.with_) for k, (_, f) in enumerate(withs) if k not in (i, j)]
            phrases.insert(int(self.rng.integers(len(phrases) + 1)), merged)
            return phrases
        return self.phrases(withs, "with_")

    def phrases(self, items: Sequence[Item], field: str) -> list[str]:
        """One phrase per fact from ``Forms.<field>``, at most one of them saying "voice" (the fact
        that has no other way to say it keeps the word)."""
        options = [getattr(f, field) for _, f in items]
        voiced = [k for k, opts in enumerate(options) if any(_says_voice(p) for p in opts)]
        only_voice = [k for k in voiced if all(_says_voice(p) for p in options[k])]
        keep = only_voice[0] if only_voice else (voiced[int(self.rng.integers(len(voiced)))] if voiced else -1)
        out = []
        for k, opts in enumerate(options):
            if k in voiced and k != keep:
                opts = tuple(p for p in opts if not _says_voice(p)) or opts
            out.append(self.pick(opts))
        return out

    # --- frames: each returns one description

    def frame_with(self) -> str:
        pres, items = self.take_pres(1, 0.3)
        tail, rest = self.with_list(items)
        return self.finish(self.subject(pres) + tail, rest, self.pick(OPENERS))

    def frame_adjectives(self) -> str:
        pres, items = self.take_pres(2, 0.8)
        tail, rest = self.with_list(items)
        return self.finish(self.subject(pres) + tail, rest, self.pick(OPENERS))

    def frame_relative(self) -> str:
        vps = [(fact, f) for fact, f in self.items if f.vp]
        rest = [(fact, f) for fact, f in self.items if not f.vp]
        if not vps:
            return self.frame_with()
        clause = join_list(self.phrases(vps, "vp"), oxford=self.chance(0.3))
        return self.finish(f"{self.subject()} who {clause}", rest, self.pick(OPENERS))

    def frame_sentences(self) -> str:
        opener = self.pick(SENTENCE_OPENERS if self.head.adj else ("", "This is "))  # not "the speaker is a person"
        subject = self.subject(avoid="speaker" if "speaker" in opener else "")  # not "the speaker is a speaker"
        return self.finish(subject, self.items, opener)

    def frame_tags(self) -> str:
        tags = [self.pick(self.head.tags)] + self.phrases(self.items, "tag")
        return capitalise(self.pick((", ", "; ")).join(tags)) + "."

    def frame_voice(self) -> str:
        voiced = [(fact, f) for fact, f in self.items if f.voice]
        others = [(fact, f) for fact, f in self.items if not f.voice]
        adjs = [self.pick(f.voice) for _, f in voiced]
        noun = " ".join(x for x in (", ".join(adjs), self.head.adj, "voice") if x)
        tail, rest = self.with_list(others, person=False)
        return self.finish(with_article(noun) + tail, rest, self.pick(("", "You can hear ", "The recording features ")))


FRAMES = ("frame_with", "frame_adjectives", "frame_relative", "frame_sentences", "frame_tags", "frame_voice")


def _says_voice(phrase: str) -> bool:
    return re.search(r"\bvoice\b", phrase, re.IGNORECASE) is not None


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def describe(facts: Sequence[Fact], n: int, rng: np.random.Generator, max_tries: int = 200) -> list[str]:
    """``n`` different descriptions of a speaker: the slot-filled template first, then paraphrases,
    each from a different frame while frames last (cycling through them in an order drawn from
    ``rng``). Raises ValueError when the facts are too few to say ``n`` different ways."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    head, rest = split_head(facts)
    items = [(f, forms_for(f)) for f in rest]
    out = [template_description(facts)]
    seen = {_norm(out[0])}
    order = [FRAMES[i] for i in rng.permutation(len(FRAMES))]
    tries = 0
    while len(out) < n:
        if tries >= max_tries:
            raise ValueError(f"only {len(out)} different descriptions of {list(facts)} after {max_tries} tries")
        frame = order[(len(out) - 1 + tries // 8) % len(order)]
        text = getattr(_Grammar(rng, head, items), frame)()
        tries += 1
        if _norm(text) not in seen:
            seen.add(_norm(text))
            out.append(text)
    return out
