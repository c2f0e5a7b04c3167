"""CLASP corpora: the parallel sentence generator, the local eSpeak corpus, the paper adapters
(Speech Brown, Common Voice, FLEURS) on fixtures written in their official layouts, and the
translation files (reading, and producing them with a tiny random M2M100)."""

from __future__ import annotations

import json
import re
import time
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from orchestrator.corpus import SPLITS, CorpusRequest, ManifestError, build_corpus, read_manifest
from tests.bad_audio import assert_missing_is_a_bad_item
from workloads.clasp import (  # noqa: F401  (register)
    CATEGORIES,
    TRANSLATION_LANGUAGES,
    assign_splits,
    common_voice,
    corpus_local,
    fleurs_sentences,
    speech_brown,
)
from workloads.clasp import sentences as S
from workloads.clasp.translations import (
    attach_translations,
    encode_sources,
    lang_token_id,
    read_translations,
    translate_manifest,
    write_translations,
)

TINY = {"n_sentences": 30, "seed": 3}


def request(name: str, work: Path, data_root: Path | None = None, **options) -> CorpusRequest:
    profile = "local" if name == "clasp_local" else "paper"
    return CorpusRequest(name=name, profile=profile, data_root=data_root, work_dir=work, options=options)


def rows_of(manifest: Path) -> list[dict]:
    return read_manifest(manifest).to_pylist()


def meta_of(row: dict) -> dict:
    return json.loads(row["meta"]) if row["meta"] else {}


def write_tone(path: Path, seconds: float, sr: int, fmt: str = "WAV", freq: float = 220.0) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format=fmt)
    return path


# ------------------------------------------------------------------------------------- per-language checks

ARABIC_LETTERS = re.compile(r"[\u0600-\u06FF]")


def is_persian_script(text: str) -> bool:
    """Arabic-script letters, spaces, ZWNJ and Persian punctuation only; Persian yeh/kaf (not the
    Arabic U+064A/U+0643 look-alikes)."""
    allowed = set(" .\u200c،")
    return (
        all(ARABIC_LETTERS.match(ch) or ch in allowed for ch in text)
        and "\u064a" not in text
        and "\u0643" not in text
        and bool(ARABIC_LETTERS.search(text))
    )


def is_chinese(text: str) -> bool:
    return (
        not re.search(r"[A-Za-z\s]", text)
        and all(unicodedata.name(ch, "").startswith(("CJK UNIFIED", "FULLWIDTH", "IDEOGRAPHIC")) for ch in text)
        and text.endswith("。")
    )


# ------------------------------------------------------------------------------------- sentence generator


def test_lexicon_is_complete_and_in_script():
    assert set(S.LEXICON) == set(CATEGORIES) and len(CATEGORIES) == 15
    for cat in S.LEXICON.values():
        assert len(cat.subjects) >= 6 and len(cat.objects) >= 8 and len(cat.verbs) == 6
        assert len(cat.places) == 5 and len(cat.adjectives) == 6 and len(cat.frames) == 2
        per_language_words = {lang: set() for lang in S.LANGUAGES}
        for n in cat.subjects + cat.objects:
            assert n.de[1][0].isupper() and n.de[2][0].isupper(), n.de  # German nouns are capitalised
            for w in n.fa:
                assert is_persian_script(w), w
            assert not re.search(r"[A-Za-z\s]", n.zh[0] + n.zh[1]), n.zh
            per_language_words["en"].add(n.en[0])
        for v in cat.verbs:
            assert is_persian_script(v.fa) and not re.search(r"[A-Za-z]", v.zh)
        for p in cat.places + cat.frames:
            assert is_persian_script(p.fa.replace("،", "")) and not re.search(r"[A-Za-z]", p.zh), p
        for a in cat.adjectives:
            assert is_persian_script(a.fa) and a.zh and not re.search(r"[A-Za-z]", a.zh)
        # a few dozen words per category and language
        assert len(cat.subjects) + len(cat.objects) + len(cat.verbs) + len(cat.places) + len(cat.adjectives) >= 32


def test_golden_realisations():
    """Hand-checked sentences covering the grammar each language needs."""
    sf_ = S.LEXICON["science_fiction"]
    planet = next(i for i, n in enumerate(sf_.objects) if n.en[0] == "planet")
    c = S.Content("science_fiction", subject=1, subject_adj=None, subject_plural=True, verb=2, object=planet,
                  object_adj=None, object_det="def", object_count=1, place=4, time=None, time_front=False,
                  manner=None, frame=None)  # fmt: skip
    assert S.realise(c) == {
        "en": "The robots destroyed the planet in a distant galaxy.",
        "de": "Die Roboter zerstörten den Planeten in einer fernen Galaxie.",  # weak masculine accusative
        "fr": "Les robots ont détruit la planète dans une galaxie lointaine.",
        "fa": "ربات‌ها در کهکشانی دوردست سیاره را نابود کرد.",  # inanimate plural: singular verb; râ
        "zh": "那些机器人在遥远的星系里摧毁了那颗行星。",
    }
    adv = S.LEXICON["adventure"]
    c = S.Content("adventure", subject=0, subject_adj=5, subject_plural=False, verb=3, object=0, object_adj=0,
                  object_det="num", object_count=3, place=0, time=0, time_front=True, manner=2, frame=None)  # fmt: skip
    assert adv.subjects[0].en[0] == "captain" and adv.objects[0].en[0] == "map"
    assert S.realise(c) == {
        "en": "Yesterday the old captain secretly hid three golden maps in the harbor.",
        "de": "Gestern versteckte der alte Kapitän heimlich drei goldene Karten im Hafen.",  # verb second
        "fr": "Hier, le capitaine âgé a secrètement caché trois cartes dorées dans le port.",
        "fa": "ناخدای پیر دیروز در بندر مخفیانه سه نقشه‌ی طلایی پنهان کرد.",  # ezafe after alef / silent h
        "zh": "年老的船长昨天在港口偷偷地藏起了三张金色的地图。",
    }
    lore = S.LEXICON["lore"]
    herb = next(i for i, n in enumerate(lore.objects) if n.en[0] == "herb")
    c = S.Content("lore", subject=1, subject_adj=None, subject_plural=True, verb=2, object=herb, object_adj=5,
                  object_det="indef", object_count=1, place=None, time=None, time_front=False, manner=None,
                  frame=0)  # fmt: skip
    assert S.realise(c) == {
        "en": "As the elders say, the shepherds used a powerful herb.",
        "de": "Wie die Alten sagen, benutzten die Hirten ein mächtiges Kraut.",
        "fr": "Comme disent les anciens, les bergers ont utilisé une herbe puissante.",
        "fa": "به قول پیران، چوپانان یک گیاه قدرتمند به کار بردند.",  # no written ezafe after pronounced h
        "zh": "正如老人们所说，牧羊人们使用了一种强大的草药。",
    }
    fic = S.LEXICON["fiction"]
    c = S.Content("fiction", subject=0, subject_adj=4, subject_plural=False, verb=0, object=4, object_adj=None,
                  object_det="indef", object_count=1, place=None, time=None, time_front=False, manner=None,
                  frame=None)  # fmt: skip
    assert fic.objects[4].en[0] == "house"
    assert S.realise(c)["en"] == "The curious girl found a house."
    assert S.realise(c)["fr"] == "La jeune fille curieuse a trouvé une maison."
    assert S.realise(c)["de"] == "Das neugierige Mädchen fand ein Haus."
    c2 = S.Content("fiction", subject=2, subject_adj=None, subject_plural=False, verb=0, object=2, object_adj=None,
                   object_det="indef", object_count=1, place=None, time=None, time_front=False, manner=None,
                   frame=None)  # fmt: skip
    assert S._en_np(fic.objects[2], None, "indef", 1) == "a key"
    ed, adv = S.LEXICON["editorial"], S.LEXICON["adventure"]
    assert S._en_np(ed.objects[0], ed.adjectives[3], "indef", 1) == "a bold policy"
    assert S._en_np(adv.objects[0], adv.adjectives[3], "indef", 1) == "an ancient map"
    assert S.realise(c2)["fr"] == "Le professeur a trouvé une clé."


@pytest.fixture(scope="module")
def generated() -> list[S.Sentence]:
    return S.generate(600, seed=0)


def test_generation_is_deterministic_prefix_stable_and_varied(generated):
    again = S.generate(600, seed=0)
    assert [s.texts for s in again] == [s.texts for s in generated]
    assert [s.texts for s in S.generate(45, seed=0)] == [s.texts for s in generated[:45]]
    assert [s.texts for s in S.generate(45, seed=1)] != [s.texts for s in generated[:45]]
    for lang in S.LANGUAGES:  # distinct in every language
        assert len({s.texts[lang] for s in generated}) == len(generated), lang
    counts = {c: sum(s.category == c for s in generated) for c in CATEGORIES}
    assert set(counts.values()) == {40}  # balanced
    words = [S.english_words(s.en) for s in generated]
    assert min(words) >= S.MIN_WORDS and max(words) <= S.MAX_WORDS and 8.5 <= np.mean(words) <= 10.5
    # same-category sentences share vocabulary but differ in content words: a test set of a few
    # hundred is non-trivial (overlap) yet possible (no two alike, little full-overlap)
    for cat in CATEGORIES:
        toks = [set(re.findall(r"[a-z']+", s.en.lower())) - {"the", "a", "an"} for s in generated if s.category == cat]
        jacc = [len(a & b) / len(a | b) for i, a in enumerate(toks) for b in toks[i + 1 :]]
        assert 0.05 < np.mean(jacc) < 0.35, (cat, np.mean(jacc))
        assert np.mean(np.array(jacc) > 0.8) < 0.02, cat


def test_every_language_is_well_formed(generated):
    for s in generated:
        c, cat = s.content, S.LEXICON[s.category]
        en, de, fr, fa, zh = (s.texts[lang] for lang in S.LANGUAGES)
        for text in (en, de, fr):
            assert text[0].isupper() and text.endswith(".") and "  " not in text, text
        # Chinese: Han characters and Chinese punctuation only, no spaces, 了 after the verb
        assert is_chinese(zh), zh
        assert cat.verbs[c.verb].zh + "了" in zh
        # Persian: Arabic script, SOV (the verb closes the sentence), râ only on definite objects
        assert is_persian_script(fa), fa
        verb = cat.verbs[c.verb].fa + ("ند" if c.subject_plural and cat.subjects[c.subject].human else "")
        assert fa.endswith(" " + verb + "."), fa
        assert (" را " in fa) == (c.object_det in ("def", "defpl")), fa
        # German: the finite verb is the second constituent
        subj = S._de_np(*S._subject(c), 1, "nom")
        vde = cat.verbs[c.verb].de[1 if c.subject_plural else 0]
        front = S.TIMES[c.time].de if c.time is not None and c.time_front else None
        if c.frame is not None:
            front = cat.frames[c.frame].de
        expect = f"{front} {vde} {subj}" if front else f"{subj} {vde}"
        assert de.lower().startswith(expect.lower()), (de, expect)
        # French: passé composé with avoir agreeing with the subject
        aux = " ont " if c.subject_plural else " a "
        assert aux in fr and cat.verbs[c.verb].fr in fr.split(aux, 1)[1], fr


# ------------------------------------------------------------------------------------- splits


def test_assign_splits_counts_groups_and_strata():
    ids = [f"i{k}" for k in range(1500)]
    strata = [CATEGORIES[k % 15] for k in range(1500)]
    splits = assign_splits(ids, 0, "t", strata=strata)
    assert [sum(v == s for v in splits.values()) for s in SPLITS] == [1200, 150, 150]
    for cat in CATEGORIES:  # each category spread 80/10/10
        n = [sum(splits[i] == s for i, c in zip(ids, strata, strict=True) if c == cat) for s in SPLITS]
        assert n[0] in (79, 80, 81) and 9 <= n[1] <= 11 and 9 <= n[2] <= 11, (cat, n)
    assert splits == assign_splits(ids, 0, "t", strata=strata)
    assert splits != assign_splits(ids, 1, "t", strata=strata)
    for n, sizes in ((3, [1, 1, 1]), (10, [8, 1, 1]), (30, [24, 3, 3])):
        small = assign_splits(ids[:n], 0, "t")
        assert [sum(v == s for v in small.values()) for s in SPLITS] == sizes
    groups = [f"g{k // 3}" for k in range(300)]  # the same sentence read three times
    g_splits = assign_splits(ids[:300], 0, "t", groups=groups)
    for g in set(groups):
        assert len({g_splits[i] for i, gg in zip(ids[:300], groups, strict=True) if gg == g}) == 1
    n_train = sum(v == "train" for v in g_splits.values())
    assert 225 <= n_train <= 255


# ------------------------------------------------------------------------------------- local corpus


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Path:
    return build_corpus(request("clasp_local", tmp_path_factory.mktemp("clasp"), **TINY))


def test_local_manifest(local: Path):
    rows = rows_of(local)
    assert len(rows) == 30 and [sum(r["split"] == s for r in rows) for s in SPLITS] == [24, 3, 3]
    assert len({r["label"] for r in rows if r["split"] == "test"}) == 3  # stratified
    texts = json.loads((local.parent / "sentences.json").read_text(encoding="utf-8"))
    for r in rows:
        meta = meta_of(r)
        assert r["label"] == meta["category"] and r["label"] in CATEGORIES
        assert r["language"] == "en" and r["sr"] == corpus_local.SR and r["speaker"]
        assert r["texts"] == [texts[r["id"]]["en"]]
        assert set(meta["translations"]) == set(TRANSLATION_LANGUAGES)
        for lang in TRANSLATION_LANGUAGES:
            assert meta["translations"][lang] == [texts[r["id"]][lang]]
        assert is_persian_script(meta["translations"]["fa"][0])
        assert is_chinese(meta["translations"]["zh"][0])
        info = sf.info(r["audio_path"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert abs(info.duration - r["duration"]) < 1e-6 and 1.0 < r["duration"] < 7.0
        audio, _ = sf.read(r["audio_path"])
        assert np.abs(audio).max() > 0.05  # speech, not silence
    assert len({r["speaker"] for r in rows}) >= 10
    # relative audio paths in the file, so the folder can move
    assert all(not Path(p).is_absolute() for p in pq.read_table(local).column("audio_path").to_pylist())
    # the translations are also files in the paper adapters' format
    de = read_translations(local.parent / "translations" / "de.tsv")
    assert set(de) == {r["id"] for r in rows}


def test_local_build_is_deterministic_and_cached(local: Path, tmp_path: Path):
    again = build_corpus(request("clasp_local", tmp_path, **TINY))
    assert again != local and again.parent.name == local.parent.name
    files = sorted(p.relative_to(local.parent) for p in local.parent.rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".wav"]) == 30
    for rel in files:
        assert (again.parent / rel).read_bytes() == (local.parent / rel).read_bytes(), rel
    mtimes = {p: p.stat().st_mtime_ns for p in again.parent.rglob("*") if p.is_file()}
    t0 = time.perf_counter()
    assert build_corpus(request("clasp_local", tmp_path, **TINY)) == again
    assert time.perf_counter() - t0 < 0.5
    assert {p: p.stat().st_mtime_ns for p in again.parent.rglob("*") if p.is_file()} == mtimes
    other = build_corpus(request("clasp_local", tmp_path, n_sentences=3, seed=4))
    assert other.parent != again.parent and len(rows_of(other)) == 3


def test_local_options_are_checked(tmp_path: Path):
    with pytest.raises(ManifestError, match="unknown option"):
        build_corpus(request("clasp_local", tmp_path, n_items=3))
    with pytest.raises(ManifestError, match="n_sentences must be >= 3"):
        build_corpus(request("clasp_local", tmp_path, n_sentences=2))


# ------------------------------------------------------------------------------------- translation files


def test_read_and_attach_translations(tmp_path: Path, capsys):
    d = tmp_path / "translations"
    write_translations(d / "de.tsv", [("a", "Erster\tSatz"), ("a", "zweiter"), ("b", ""), ("c", "dritter")])
    assert read_translations(d / "de.tsv") == {"a": ["Erster Satz", "zweiter"], "b": [""], "c": ["dritter"]}
    items = [{"id": i} for i in ("a", "b", "c", "d")]
    report = attach_translations(items, d, ["de"])
    assert items[0]["_meta"] == {"translations": {"de": ["Erster Satz", "zweiter"]}}
    assert "_meta" not in items[1] and "_meta" not in items[3]  # empty cell = not translated
    assert report.translated == {"de": 2} and report.missing == {"de": 2} and report.summary() == "de 2/4"
    # errors are one line and name the file
    with pytest.raises(ManifestError, match=r"translations file not found: .*fr\.tsv") as e:
        attach_translations(items, d, ["fr"])
    assert "\n" not in str(e.value)
    (d / "fa.tsv").write_text("id\ttext\na\tیک\nzzz\tدو\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"fa\.tsv: 1 id\(s\) not in the manifest, e\.g\. 'zzz'"):
        attach_translations(items, d, ["fa"])
    (d / "zh.tsv").write_text("id\ttext\na\t一\tb\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"zh\.tsv:2: expected 2 tab-separated columns"):
        read_translations(d / "zh.tsv")
    (d / "en.tsv").write_text("item\ttranslation\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="first line must be the header"):
        read_translations(d / "en.tsv")


TINY_VOCAB = "the captain found a golden map in harbor . robot planet old".split()
LANG_TOKENS = [f"__{lang}__" for lang in ("en", *TRANSLATION_LANGUAGES)]


@pytest.fixture(scope="module")
def tiny_m2m100(tmp_path_factory) -> Path:
    """A random-weight M2M100 (2 layers, d=16) with a word-level fast tokenizer carrying M2M100's
    language tokens; built offline. (M2M100's own tokenizer needs the sentencepiece package,
    which is not a dependency here; see test_real_m2m100_tokenizer.)"""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import M2M100Config, M2M100ForConditionalGeneration, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny_m2m100")
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", *TINY_VOCAB, *LANG_TOKENS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>", additional_special_tokens=LANG_TOKENS).save_pretrained(out)  # fmt: skip
    cfg = M2M100Config(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
                       pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)  # fmt: skip
    torch.manual_seed(0)
    model = M2M100ForConditionalGeneration(cfg)
    # random weights: keep bos/pad/unk/source-language tokens out of the output and make it non-empty
    model.generation_config.suppress_tokens = [0, 1, 3, vocab["__en__"]]
    model.generation_config.min_length = 4
    model.save_pretrained(out)
    return out


def test_translate_manifest_with_a_tiny_m2m100(tiny_m2m100: Path, tmp_path: Path):
    items = [{"id": f"x{k}", "texts": [t]} for k, t in
             enumerate(["the captain found a golden map .", "the old robot found a planet", "in the harbor",
                        "the captain found a golden map ."])]  # fmt: skip
    out = tmp_path / "translations"
    paths = translate_manifest(items, tiny_m2m100, ["de", "fa"], out, num_beams=2, max_length=12, batch_size=2)
    assert paths == {"de": out / "de.tsv", "fa": out / "fa.tsv"}
    de = read_translations(paths["de"])
    assert list(de) == ["x0", "x1", "x2", "x3"] and all(len(v) == 1 for v in de.values())
    assert de["x0"] == de["x3"]  # identical sources translate identically (and only once)
    assert all(t and "__" not in t for v in de.values() for t in v)
    assert not list(out.glob(".*partial"))

    # cached: a second call does not even load the model
    def no_load(_):
        raise AssertionError("model loaded although the files are complete")

    assert translate_manifest(items, tiny_m2m100, ["de", "fa"], out, load=no_load) == paths
    # deterministic, and a killed run resumes from its partial file
    other = tmp_path / "other"
    other.mkdir()
    (other / ".de.tsv.partial").write_text("id\ttext\nx0\tSCHON ÜBERSETZT\nx1\tabgebr", encoding="utf-8")
    translate_manifest(items, tiny_m2m100, ["de"], other, num_beams=2, max_length=12, batch_size=2)
    again = read_translations(other / "de.tsv")
    assert again["x0"] == ["SCHON ÜBERSETZT"] and again["x1"] == de["x1"] and again["x2"] == de["x2"]
    # the file attaches to the items as meta.translations
    report = attach_translations(items, out, ["de", "fa"])
    assert report.missing == {"de": 0, "fa": 0} and items[0]["_meta"]["translations"]["de"] == de["x0"]


def test_language_token_conventions(tiny_m2m100: Path):
    """M2M100: source token first, target forced as the first generated token; SMaLL-100: the
    target token first on the source side."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_m2m100)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_m2m100)
    en, de = lang_token_id(tok, "en"), lang_token_id(tok, "de")
    batch = encode_sources(tok, ["the captain found a map", "planet"], "en", 32)
    assert batch["input_ids"][:, 0].tolist() == [en, en]
    assert batch["input_ids"][1].tolist()[:3] == [en, tok.convert_tokens_to_ids("planet"), 2]
    with torch.no_grad():
        gen = model.generate(**batch, forced_bos_token_id=de, max_new_tokens=4, do_sample=False)
    assert gen[:, 1].tolist() == [de, de]
    assert encode_sources(tok, ["a map"], "fa", 32)["input_ids"][0, 0].item() == lang_token_id(tok, "fa")
    with pytest.raises(ManifestError, match="no language token '__xx__'"):
        lang_token_id(tok, "xx")


def test_real_m2m100_tokenizer(tmp_path: Path):
    """The same path with transformers' own M2M100Tokenizer (needs sentencepiece, which real
    M2M100/SMaLL-100 checkpoints need too)."""
    spm = pytest.importorskip("sentencepiece")
    import torch
    from transformers import AutoTokenizer, M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["the captain found a golden map in the harbor", "the old robot found a planet"] * 20))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "spm"), vocab_size=40,
                                   model_type="bpe", bos_id=-1, eos_id=-1, unk_id=0, pad_id=-1,
                                   minloglevel=2)  # fmt: skip
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "spm.model"))
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for i in range(sp.get_piece_size()):
        vocab.setdefault(sp.id_to_piece(i), len(vocab))
    model_dir = tmp_path / "m2m"
    model_dir.mkdir()
    (model_dir / "vocab.json").write_text(json.dumps(vocab))
    (model_dir / "sentencepiece.bpe.model").write_bytes((tmp_path / "spm.model").read_bytes())
    tok = M2M100Tokenizer(str(model_dir / "vocab.json"), str(model_dir / "sentencepiece.bpe.model"))
    tok.save_pretrained(model_dir)
    cfg = M2M100Config(vocab_size=max(tok.get_lang_id(c) for c in ("zu", "en")) + 1, d_model=16, encoder_layers=1,
                       decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                       decoder_ffn_dim=32, max_position_embeddings=64, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                       decoder_start_token_id=2)  # fmt: skip
    torch.manual_seed(0)
    model = M2M100ForConditionalGeneration(cfg)
    model.generation_config.suppress_tokens = [0, 1, 3]
    model.save_pretrained(model_dir)
    loaded = AutoTokenizer.from_pretrained(model_dir)
    assert encode_sources(loaded, ["the captain"], "en", 16)["input_ids"][0, 0].item() == loaded.get_lang_id("en")
    items = [{"id": "a", "texts": ["the captain found a map"]}]
    paths = translate_manifest(items, model_dir, ["zh"], tmp_path / "t", num_beams=1, max_length=8)
    assert list(read_translations(paths["zh"])) == ["a"]


def test_missing_translation_model_is_one_line(tmp_path: Path):
    items = [{"id": "a", "texts": ["x"]}]
    with pytest.raises(ManifestError, match=r"translation model folder not found: .*nowhere") as e:
        translate_manifest(items, tmp_path / "nowhere", ["de"], tmp_path / "t")
    assert "\n" not in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match=r"cannot load the tokenizer of translation model .*empty") as e:
        translate_manifest(items, tmp_path / "empty", ["de"], tmp_path / "t")
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------- Speech Brown

SB_CATEGORIES = ["news", "humor", "learned", "belles_lettres", "science_fiction"]


def sb_records(n: int = 20, with_category: bool = True) -> list[dict]:
    recs = []
    for k in range(1, n + 1):
        part = 1 if k <= n // 2 else 2
        rec = {"id": k, "file_path": f"dataset/part{part}/audios/audio_{k}.wav",
               "text": f"Sentence number {k} , from the Brown corpus ."}  # fmt: skip
        if with_category:
            rec["category"] = SB_CATEGORIES[k % len(SB_CATEGORIES)]
        recs.append(rec)
    return recs


def write_speech_brown(root: Path, records: list[dict], *, metadata: str = "global_metadata.json") -> dict[int, float]:
    """Part 1 extracted where file_path says (dataset/part1/audios), part 2 into a folder named
    after its zip (dataset_part2/audios), as the authors' extraction notebook does."""
    root.mkdir(parents=True, exist_ok=True)
    if metadata == "global_metadata.json":
        data: object = records
    elif metadata == "localized_metadata.json":
        data = {f"part{p}": [r for r in records if f"part{p}/" in r["file_path"]] for p in (1, 2)}
    else:
        data = {str(r["id"]): {**r, "part_id": 1 if "part1/" in r["file_path"] else 2} for r in records}
    (root / metadata).write_text(json.dumps(data), encoding="utf-8")
    durations = {}
    for r in records:
        name = Path(r["file_path"]).name
        where = root / r["file_path"] if "part1/" in r["file_path"] else root / "dataset_part2" / "audios" / name
        dur = 0.5 + 0.01 * r["id"]
        write_tone(where, dur, 22050)
        durations[r["id"]] = dur
    return durations


def test_speech_brown_layout(tmp_path: Path, capsys):
    root = tmp_path / "SpeechBrown"
    durations = write_speech_brown(root, sb_records())
    m = build_corpus(request("clasp_speech_brown", tmp_path / "work", root))
    rows = {r["id"]: r for r in rows_of(m)}
    assert len(rows) == 20 and [sum(r["split"] == s for r in rows.values()) for s in SPLITS] == [16, 2, 2]
    r = rows["speech_brown/13"]
    assert r["texts"] == ["Sentence number 13 , from the Brown corpus ."] and r["label"] == SB_CATEGORIES[13 % 5]
    assert r["audio_path"] == str((root / "dataset_part2" / "audios" / "audio_13.wav").resolve())
    assert rows["speech_brown/2"]["audio_path"] == str((root / "dataset/part1/audios/audio_2.wav").resolve())
    assert r["sr"] == 22050 and abs(r["duration"] - durations[13]) < 1e-4 and r["language"] == "en"
    assert meta_of(r) == {"category": r["label"]}
    mtime = m.stat().st_mtime_ns
    assert build_corpus(request("clasp_speech_brown", tmp_path / "work", root)) == m and m.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("metadata", ["localized_metadata.json", "metadata.json"])
def test_speech_brown_other_metadata_files(tmp_path: Path, metadata: str):
    root = tmp_path / "data"
    write_speech_brown(root / "SpeechBrown", sb_records(10, with_category=False), metadata=metadata)
    rows = rows_of(build_corpus(request("clasp_speech_brown", tmp_path / "work", root)))
    assert len(rows) == 10 and {r["label"] for r in rows} == {"speech_brown"} and all(r["meta"] is None for r in rows)


def test_speech_brown_translations(tmp_path: Path, capsys):
    root = tmp_path / "sb"
    write_speech_brown(root, sb_records())
    write_translations(root / "translations" / "de.tsv", [(f"speech_brown/{k}", f"Satz {k}") for k in range(1, 19)])
    write_translations(root / "translations" / "zh.tsv", [(f"speech_brown/{k}", f"句子{k}") for k in range(1, 21)])
    m = build_corpus(request("clasp_speech_brown", tmp_path / "work", root))
    assert "translations de 18/20, zh 20/20" in capsys.readouterr().out
    rows = {r["id"]: r for r in rows_of(m)}
    assert meta_of(rows["speech_brown/5"])["translations"] == {"de": ["Satz 5"], "zh": ["句子5"]}
    assert meta_of(rows["speech_brown/20"])["translations"] == {"zh": ["句子20"]}
    off = rows_of(build_corpus(request("clasp_speech_brown", tmp_path / "work", root, translations=[])))
    assert all("translations" not in meta_of(r) for r in off)
    with pytest.raises(ManifestError, match=r"translations file not found: .*fa\.tsv"):
        build_corpus(request("clasp_speech_brown", tmp_path / "work", root, translations=["de", "fa"]))


def test_speech_brown_missing_audio_is_a_bad_item(tmp_path: Path, capsys):
    """Records whose audio is in none of the places looked are kept (the first place as their
    path), named in the build log with the zip to extract, and are bad items of the core's check."""
    root = tmp_path / "sb"
    write_speech_brown(root, sb_records())
    (root / "dataset_part2.zip").write_bytes(b"PK")
    missing = next((root / "dataset_part2" / "audios").iterdir())
    missing.unlink()
    m = build_corpus(request("clasp_speech_brown", tmp_path / "work", root))
    out = capsys.readouterr().out
    assert "1 audio file(s) not found, kept for the extraction's bad-item check" in out
    assert "extract dataset_part2.zip" in out and str(missing) in out
    rows = rows_of(m)
    item = next(r["id"] for r in rows if r["audio_path"].endswith(missing.name))
    first_looked = next(r["audio_path"] for r in rows if r["id"] == item)
    assert_missing_is_a_bad_item(m, item, Path(first_looked), n_items=20)
    assert {r["split"] for r in rows} == set(SPLITS)


def test_speech_brown_missing_data_is_one_line(tmp_path: Path):
    with pytest.raises(ManifestError) as e:
        build_corpus(request("clasp_speech_brown", tmp_path / "work", tmp_path / "nothing"))
    msg = str(e.value)
    assert "\n" not in msg and "global_metadata.json" in msg and "does not exist" in msg
    root = tmp_path / "sb"
    write_speech_brown(root, sb_records())
    for p in (root / "dataset_part2" / "audios").iterdir():
        p.unlink()
    (root / "dataset_part2.zip").write_bytes(b"PK")
    with pytest.raises(ManifestError, match="needs a data root"):
        build_corpus(request("clasp_speech_brown", tmp_path / "work", None))


# ------------------------------------------------------------------------------------- Common Voice

CV_HEADER = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent"]  # v4


def write_common_voice(locale_dir: Path) -> list[list[str]]:
    """A v4-style validated.tsv (sentence 0 read by three people; one empty sentence; one path
    without extension, as early releases wrote it) and its MP3 clips."""
    rows = []
    for k in range(24):
        sentence = "The same sentence, read again." if k < 3 else f'Sentence "{k}" of the corpus.'
        rows.append([f"client{k % 5}", f"common_voice_en_{1000 + k}.mp3", sentence, "2", "0", "", "", ""])
    rows[5][1] = "common_voice_en_1005"
    rows.append(["client9", "common_voice_en_2000.mp3", "", "2", "0", "", "", ""])
    (locale_dir / "clips").mkdir(parents=True)
    with (locale_dir / "validated.tsv").open("w", encoding="utf-8", newline="") as f:
        f.write("\t".join(CV_HEADER) + "\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    for k, r in enumerate(rows[:24]):
        name = r[1] if r[1].endswith(".mp3") else r[1] + ".mp3"
        write_tone(locale_dir / "clips" / name, 0.6 + 0.02 * k, 48000, fmt="MP3", freq=300 + 10 * k)
    return rows


def test_soundfile_reads_and_writes_mp3(tmp_path: Path):
    """libsndfile >= 1.1 decodes MP3 (Common Voice's format) through soundfile, no extra package."""
    assert "MP3" in sf.available_formats()
    p = write_tone(tmp_path / "x.mp3", 1.0, 48000, fmt="MP3")
    info = sf.info(p)
    assert info.samplerate == 48000 and info.format == "MP3" and abs(info.duration - 1.0) < 0.06
    audio, sr = sf.read(p, dtype="float32")
    assert sr == 48000 and 0.15 < np.abs(audio).max() < 0.25


def test_common_voice_layout(tmp_path: Path, capsys):
    from orchestrator.audio import load_audio

    locale = tmp_path / "cv-corpus-4-2019-12-10" / "en"
    write_common_voice(locale)
    m = build_corpus(request("clasp_common_voice", tmp_path / "work", tmp_path))
    out = capsys.readouterr().out
    assert "1 row(s) with an empty sentence skipped" in out and "24 clips" in out
    rows = {r["id"]: r for r in rows_of(m)}
    assert len(rows) == 24
    same = [rows[f"common_voice/common_voice_en_{1000 + k}.mp3"]["split"] for k in range(3)]
    assert len(set(same)) == 1  # one sentence, three readers: one split
    assert {r["split"] for r in rows.values()} == set(SPLITS)
    r = rows["common_voice/common_voice_en_1007.mp3"]
    assert r["texts"] == ['Sentence "7" of the corpus.'] and r["speaker"] == "client2" and r["label"] == "common_voice"
    assert r["sr"] == 48000 and abs(r["duration"] - 0.74) < 0.06 and r["meta"] is None
    assert "common_voice/common_voice_en_1005.mp3" in rows  # listed without extension
    wav = load_audio(r["id"], r["audio_path"], 16000)
    assert wav.dtype == np.float32 and abs(wav.size / 16000 - r["duration"]) < 0.06
    sample = rows_of(build_corpus(request("clasp_common_voice", tmp_path / "work", tmp_path, n_items=10, seed=1)))
    assert len(sample) == 10 and {r["id"] for r in sample} <= set(rows)


def test_common_voice_missing_clip_is_a_bad_item(tmp_path: Path, capsys):
    locale = tmp_path / "en"
    write_common_voice(locale)
    clip = locale / "clips" / "common_voice_en_1003.mp3"
    clip.unlink()
    m = build_corpus(request("clasp_common_voice", tmp_path / "work", tmp_path))
    assert f"1 audio file(s) not found, kept for the extraction's bad-item check (fails, or quarantines with " \
           f"--skip-bad-items): {clip}" in capsys.readouterr().out
    assert_missing_is_a_bad_item(m, "common_voice/common_voice_en_1003.mp3", clip, n_items=24)
    clip.write_bytes(b"")  # the clip appears: a new build (the key holds every input's size and mtime)
    assert build_corpus(request("clasp_common_voice", tmp_path / "work", tmp_path)) != m


def test_common_voice_empty_split_is_one_line(tmp_path: Path):
    """Grouped by sentence: two sentences cannot fill train, val and test."""
    locale = tmp_path / "en"
    (locale / "clips").mkdir(parents=True)
    lines = ["\t".join(CV_HEADER)]
    for k in range(6):
        lines.append("\t".join([f"c{k}", f"c{k}.mp3", f"Sentence {k % 2}.", "2", "0", "", "", ""]))
        write_tone(locale / "clips" / f"c{k}.mp3", 0.3, 48000, fmt="MP3")
    (locale / "validated.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError) as e:
        build_corpus(request("clasp_common_voice", tmp_path / "work", tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and re.search(r"split '(val|test)' is empty \(train \d, val \d, test \d clips\)", msg), msg
    assert "too few distinct sentences" in msg and "validated.tsv" in msg


def test_common_voice_missing_data_is_one_line(tmp_path: Path):
    with pytest.raises(ManifestError) as e:
        build_corpus(request("clasp_common_voice", tmp_path / "work", tmp_path))
    assert "\n" not in str(e.value) and "no validated.tsv" in str(e.value) and f"{tmp_path}/*/en" in str(e.value)
    locale = tmp_path / "en"
    write_common_voice(locale)
    (locale / "validated.tsv").write_text("path\tsentence\nx.mp3\thello\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"missing column\(s\) \['client_id'\]"):
        build_corpus(request("clasp_common_voice", tmp_path / "work", tmp_path))


# ------------------------------------------------------------------------------------- FLEURS


def write_fleurs(root: Path) -> None:
    """google/fleurs layout (data/en_us/{train,dev,test}.tsv, no header, 7 columns + audio/<split>/);
    sentence id 7 is read twice in train."""
    lang_dir = root / "data" / "en_us"
    spec = {"train": [(7, "a"), (7, "b"), (1, "c"), (2, "d"), (3, "e"), (4, "f"), (5, "g"), (6, "h")],
            "dev": [(8, "i"), (9, "j")], "test": [(10, "k"), (11, "l")]}  # fmt: skip
    for split, items in spec.items():
        lines = []
        for sid, tag in items:
            name = f"{sid}_{tag}.wav"
            text = f"sentence number {sid} about the weather"
            chars = " ".join("|" if ch == " " else ch for ch in text)
            lines.append(f"{sid}\t{name}\tSentence number {sid}, about the weather.\t{text}\t{chars} |\t16000\tFEMALE")
            write_tone(lang_dir / "audio" / split / name, 1.0, 16000)
        (lang_dir / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_fleurs_sentences(tmp_path: Path):
    write_fleurs(tmp_path)
    with pytest.raises(ManifestError) as e:  # seed 0 puts both readings of sentence 7 where val was
        build_corpus(request("clasp_fleurs", tmp_path / "work", tmp_path))
    assert "\n" not in str(e.value) and "split 'val' is empty (train 11, val 0, test 1 recordings)" in str(e.value)
    m = build_corpus(request("clasp_fleurs", tmp_path / "work", tmp_path, seed=1))
    rows = {r["id"]: r for r in rows_of(m)}
    assert len(rows) == 12 and {r["split"] for r in rows.values()} == set(SPLITS)
    r = rows["fleurs/3_e.wav"]
    assert r["texts"] == ["sentence number 3 about the weather"] and r["label"] == "fleurs" and r["sr"] == 16000
    assert r["language"] == "en" and abs(r["duration"] - 1.0) < 1e-6
    assert rows["fleurs/7_a.wav"]["split"] == rows["fleurs/7_b.wav"]["split"]  # one sentence, one split
    m = build_corpus(request("clasp_fleurs", tmp_path / "w", tmp_path, split="official"))
    official = {r["id"]: r["split"] for r in rows_of(m)}
    assert [official[f"fleurs/{n}.wav"] for n in ("8_i", "10_k", "1_c")] == ["val", "test", "train"]


def test_fleurs_missing_data_is_one_line(tmp_path: Path):
    with pytest.raises(ManifestError) as e:
        build_corpus(request("clasp_fleurs", tmp_path / "work", tmp_path))
    assert "\n" not in str(e.value) and "FLEURS en_us not found" in str(e.value)
    write_fleurs(tmp_path)
    dev = tmp_path / "data" / "en_us" / "audio" / "dev"
    (dev / "9_j.wav").unlink()
    m = build_corpus(request("clasp_fleurs", tmp_path / "work", tmp_path, split="official"))
    assert_missing_is_a_bad_item(m, "fleurs/9_j.wav", dev / "9_j.wav", n_items=12)
    (dev / "8_i.wav").unlink()
    dev.rmdir()
    with pytest.raises(ManifestError, match=r"FLEURS audio missing: folder .*audio/dev not found, 2 file\(s\)"):
        build_corpus(request("clasp_fleurs", tmp_path / "work", tmp_path))
    with pytest.raises(ManifestError, match="split must be 'random' or 'official'"):
        build_corpus(request("clasp_fleurs", tmp_path / "work", tmp_path, split="paper"))
