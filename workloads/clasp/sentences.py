"""Parallel sentences in English, German, French, Persian and Chinese from one abstract content.

Why a generator and not translations: the paper's Stage 4 queries are machine translations of its
English test sentences (SMaLL-100, sec. 3.3); no translation model ships in a wheel, so the local
profile builds each sentence from an abstract content (category, subject, verb, object, optional
time/place/manner/frame, number and determiner choices) and realises the same content with a
small lexicon and word-order rules per language. Every sentence thereby has exact "translations"
in the four query languages, for free and deterministically.

Grammar covered (enough to be well-formed queries for a multilingual text encoder, not literature):

* English: ``[Frame,] [Time] Subject [Manner-ly] Verb-past Object [Place] [Time]``; a/an by sound.
* German: verb-second main clause in the Präteritum; case (nominative subject, accusative object),
  gender and number agreement of article and adjective (weak after der/die/das, mixed after
  ein/eine, strong after numerals), weak masculine nouns (den Piloten); a fronted time or frame
  puts the verb before the subject.
* French: passé composé with avoir (a/ont + participle), -ment adverbs between auxiliary and
  participle, post-nominal adjectives agreeing in gender and number, elision (l'explorateur).
* Persian (Arabic script): SOV; ezafe written after vowels (ناخدای پیر, نقشه‌ی قدیمی), plurals with
  ‌ها or the lexicon's own form, ``را`` after a definite object, numerals with singular nouns,
  plural verb agreement for human plural subjects only; Persian comma and ZWNJ.
* Chinese: no spaces; S + time + 在-place + manner-地 + verb了 + numeral/那 + classifier + modifier的 +
  noun; 们 on human plural subjects; Chinese punctuation.

Vocabulary: 15 categories after the Brown corpus (Speech Brown's labels), each with ~7 subjects,
~9 objects, 6 verbs, 5 places, 6 adjectives and 2 framing phrases (a few dozen words per category
and language), plus shared person adjectives, times and manners. Sentences of one category share
their vocabulary and template, so telling them apart needs the content words: retrieval among a
few hundred test sentences is non-trivial but possible.

Lexicon notation (parsed once at import): fields per language separated by ``|``; in Persian,
``+`` stands for a zero-width non-joiner (ZWNJ, U+200C), so plural and compound spellings are
explicit in the source; German gender ``m*`` marks a weak masculine noun (accusative = plural form).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from orchestrator.corpus import seeded_rng
from workloads.clasp import CATEGORIES

LANGUAGES = ("en", "de", "fr", "fa", "zh")
ZWNJ = "\u200c"
MIN_WORDS, MAX_WORDS = 6, 12  # English words per sentence
Determiner = Literal["def", "indef", "num", "defpl"]


# ------------------------------------------------------------------------------------- lexicon types


@dataclass(frozen=True)
class Noun:
    en: tuple[str, str]  # singular, plural
    de: tuple[str, str, str, bool]  # gender m/f/n, singular, plural, weak masculine
    fr: tuple[str, str, str]  # gender m/f, singular, plural
    fa: tuple[str, str]  # singular, plural
    zh: tuple[str, str]  # noun, classifier
    human: bool


@dataclass(frozen=True)
class Adjective:
    en: str
    de: str  # stem that takes the endings (alt -> alte, alten)
    fr: tuple[str, str, str, str]  # m sg, f sg, m pl, f pl
    fa: str
    zh: str  # the prenominal modifier as written (金色的)


@dataclass(frozen=True)
class Verb:
    en: str  # past
    de: tuple[str, str]  # Präteritum 3sg, 3pl
    fr: str  # past participle (passé composé with avoir)
    fa: str  # past 3sg; 3pl appends ند to the last word
    zh: str  # verb; 了 is added


@dataclass(frozen=True)
class Phrase:
    """A fixed phrase per language: a place (a whole prepositional phrase), a time, a manner
    adverb, or a framing adverbial that opens the sentence."""

    en: str
    de: str
    fr: str
    fa: str
    zh: str


_FA_NON_JOINING = "اآأدذرزژوؤ"  # letters that never join the next one: no ZWNJ needed after them


def _fa(text: str) -> str:
    return text.replace("+", ZWNJ)


def _fa_plural(word: str) -> str:
    """The -hâ plural as usually written: ZWNJ before ها unless the last letter does not join."""
    return word + ("ها" if word[-1] in _FA_NON_JOINING else ZWNJ + "ها")


def _fields(line: str, n: int) -> list[str]:
    parts = [p.strip() for p in line.split("|")]
    if len(parts) != n:
        raise ValueError(f"lexicon line needs {n} fields: {line!r}")
    return parts


def _pair(text: str) -> tuple[str, str]:
    a, _, b = text.partition(",")
    return a.strip(), b.strip()


def parse_noun(line: str) -> Noun:
    parts = [p.strip() for p in line.split("|")]
    if len(parts) not in (5, 6) or (len(parts) == 6 and parts[5] != "h"):
        raise ValueError(f"noun line needs 5 fields and an optional 'h': {line!r}")
    en, de, fr, fa, zh = parts[:5]
    de_g, _, de_forms = de.partition(" ")
    fr_g, _, fr_forms = fr.partition(" ")
    if de_g.rstrip("*") not in ("m", "f", "n") or fr_g not in ("m", "f"):
        raise ValueError(f"bad gender in {line!r}")
    fa_sg, fa_pl = _pair(fa)
    fa_sg = _fa(fa_sg)
    fa_pl = _fa(fa_pl) if fa_pl else _fa_plural(fa_sg)
    de_sg, de_pl = _pair(de_forms)
    fr_sg, fr_pl = _pair(fr_forms)
    return Noun(
        en=_pair(en),
        de=(de_g.rstrip("*"), de_sg, de_pl, de_g.endswith("*")),
        fr=(fr_g, fr_sg, fr_pl),
        fa=(fa_sg, fa_pl),
        zh=_pair(zh),
        human=len(parts) == 6,
    )


def _fr_plural(word: str, feminine: bool) -> str:
    """Regular plural of a French adjective (irregular ones are listed in full in the lexicon)."""
    if word.endswith(("s", "x")) or " " in word:
        return word
    if not feminine and word.endswith("al"):
        return word[:-2] + "aux"
    return word + "s"


def parse_adjective(line: str) -> Adjective:
    en, de, fr, fa, zh = _fields(line, 5)
    forms = [f.strip() for f in fr.split(",")]
    if len(forms) == 2:
        forms += [_fr_plural(forms[0], False), _fr_plural(forms[1], True)]
    if len(forms) != 4:
        raise ValueError(f"French adjective needs 2 or 4 forms: {line!r}")
    return Adjective(en, de, (forms[0], forms[1], forms[2], forms[3]), _fa(fa), zh)


def parse_verb(line: str) -> Verb:
    en, de, fr, fa, zh = _fields(line, 5)
    return Verb(en, _pair(de), fr, _fa(fa), zh)


def parse_phrase(line: str) -> Phrase:
    en, de, fr, fa, zh = _fields(line, 5)
    return Phrase(en, de, fr, _fa(fa), zh)


@dataclass(frozen=True)
class Category:
    name: str
    subjects: tuple[Noun, ...]
    objects: tuple[Noun, ...]
    verbs: tuple[Verb, ...]
    places: tuple[Phrase, ...]
    adjectives: tuple[Adjective, ...]  # for objects
    frames: tuple[Phrase, ...]


# ------------------------------------------------------------------------------------- the lexicon

PERSON_ADJECTIVES = tuple(map(parse_adjective, [
    "brave | mutig | courageux,courageuse | شجاع | 勇敢的",
    "famous | berühmt | célèbre,célèbre | مشهور | 著名的",
    "tired | müde | fatigué,fatiguée | خسته | 疲惫的",
    "careful | vorsichtig | prudent,prudente | محتاط | 谨慎的",
    "curious | neugierig | curieux,curieuse | کنجکاو | 好奇的",
    "old | alt | âgé,âgée | پیر | 年老的",
    "experienced | erfahren | expérimenté,expérimentée | باتجربه | 经验丰富的",
    "nervous | nervös | nerveux,nerveuse | عصبی | 紧张的",
    "talented | talentiert | talentueux,talentueuse | بااستعداد | 有才华的",
    "clever | klug | astucieux,astucieuse | باهوش | 聪明的",
    "ambitious | ehrgeizig | ambitieux,ambitieuse | جاه+طلب | 雄心勃勃的",
    "wise | weise | sage,sage | دانا | 睿智的",
]))  # fmt: skip

TIMES = tuple(map(parse_phrase, [
    "yesterday | gestern | hier | دیروز | 昨天",
    "last winter | letzten Winter | l'hiver dernier | زمستان گذشته | 去年冬天",
    "this morning | heute Morgen | ce matin | امروز صبح | 今天早上",
    "last week | letzte Woche | la semaine dernière | هفته+ی گذشته | 上周",
    "in the evening | am Abend | le soir | هنگام عصر | 傍晚",
    "at dawn | im Morgengrauen | à l'aube | سپیده+دم | 黎明时分",
    "on Sunday | am Sonntag | dimanche | روز یکشنبه | 星期天",
    "in the spring | im Frühling | au printemps | در بهار | 春天",
    "last night | gestern Abend | hier soir | دیشب | 昨晚",
    "two days ago | vor zwei Tagen | il y a deux jours | دو روز پیش | 两天前",
    "at noon | mittags | à midi | ظهر | 中午",
    "last autumn | letzten Herbst | l'automne dernier | پاییز گذشته | 去年秋天",
]))  # fmt: skip

MANNERS = tuple(map(parse_phrase, [
    "carefully | sorgfältig | soigneusement | با دقت | 仔细地",
    "quickly | schnell | rapidement | به سرعت | 迅速地",
    "secretly | heimlich | secrètement | مخفیانه | 偷偷地",
    "proudly | stolz | fièrement | با افتخار | 骄傲地",
    "quietly | leise | discrètement | بی+سروصدا | 悄悄地",
    "patiently | geduldig | patiemment | با حوصله | 耐心地",
    "slowly | langsam | lentement | به آرامی | 慢慢地",
]))  # fmt: skip

NUMBERS = {2: ("two", "zwei", "deux", "دو", "两"), 3: ("three", "drei", "trois", "سه", "三"),
           4: ("four", "vier", "quatre", "چهار", "四")}  # fmt: skip

_LEXICON: dict[str, dict[str, list[str]]] = {
    "adventure": {
        "subjects": [
            "captain,captains | m Kapitän,Kapitäne | m capitaine,capitaines | ناخدا,ناخدایان | 船长,位 | h",
            "sailor,sailors | m Seemann,Seeleute | m marin,marins | ملوان,ملوانان | 水手,名 | h",
            "explorer,explorers | m Entdecker,Entdecker | m explorateur,explorateurs | کاشف,کاشفان | 探险家,位 | h",
            "hunter,hunters | m Jäger,Jäger | m chasseur,chasseurs | شکارچی,شکارچیان | 猎人,名 | h",
            "pilot,pilots | m* Pilot,Piloten | m pilote,pilotes | خلبان,خلبانان | 飞行员,名 | h",
            "scout,scouts | m Kundschafter,Kundschafter | m éclaireur,éclaireurs | دیده+بان,دیده+بانان | 侦察兵,名 | h",
            "smuggler,smugglers | m Schmuggler,Schmuggler | m contrebandier,contrebandiers | قاچاقچی,قاچاقچیان | 走私者,名 | h",
        ],
        "objects": [
            "map,maps | f Karte,Karten | f carte,cartes | نقشه | 地图,张",
            "chest,chests | f Truhe,Truhen | m coffre,coffres | صندوق | 箱子,个",
            "compass,compasses | m Kompass,Kompasse | f boussole,boussoles | قطب+نما | 指南针,个",
            "rope,ropes | n Seil,Seile | f corde,cordes | طناب | 绳子,根",
            "boat,boats | n Boot,Boote | m bateau,bateaux | قایق | 小船,艘",
            "torch,torches | f Fackel,Fackeln | f torche,torches | مشعل | 火把,支",
            "sword,swords | n Schwert,Schwerter | f épée,épées | شمشیر | 剑,把",
            "horse,horses | n Pferd,Pferde | m cheval,chevaux | اسب | 马,匹",
            "coin,coins | f Münze,Münzen | f pièce,pièces | سکه | 硬币,枚",
        ],
        "verbs": [
            "found | fand,fanden | trouvé | پیدا کرد | 找到",
            "lost | verlor,verloren | perdu | گم کرد | 丢失",
            "carried | trug,trugen | porté | حمل کرد | 带",
            "hid | versteckte,versteckten | caché | پنهان کرد | 藏起",
            "stole | stahl,stahlen | volé | دزدید | 偷走",
            "bought | kaufte,kauften | acheté | خرید | 买",
        ],
        "places": [
            "in the harbor | im Hafen | dans le port | در بندر | 在港口",
            "in the jungle | im Dschungel | dans la jungle | در جنگل | 在丛林里",
            "on the island | auf der Insel | sur l'île | در جزیره | 在岛上",
            "in the desert | in der Wüste | dans le désert | در صحرا | 在沙漠里",
            "near the waterfall | am Wasserfall | près de la cascade | نزدیک آبشار | 在瀑布旁边",
        ],
        "adjectives": [
            "golden | golden | doré,dorée | طلایی | 金色的",
            "heavy | schwer | lourd,lourde | سنگین | 沉重的",
            "rusty | rostig | rouillé,rouillée | زنگ+زده | 生锈的",
            "ancient | uralt | ancien,ancienne | باستانی | 古老的",
            "wooden | hölzern | en bois,en bois,en bois,en bois | چوبی | 木制的",
            "secret | geheim | secret,secrète | مخفی | 秘密的",
        ],
        "frames": [
            "after a long journey | nach einer langen Reise | après un long voyage | پس از سفری طولانی | 经过漫长的旅程",
            "during the storm | während des Sturms | pendant la tempête | در میان طوفان | 在暴风雨中",
        ],
    },
    "belles_lettres": {
        "subjects": [
            "essayist,essayists | m* Essayist,Essayisten | m essayiste,essayistes | جستارنویس,جستارنویسان | 散文家,位 | h",
            "biographer,biographers | m* Biograf,Biografen | m biographe,biographes | زندگی+نامه+نویس,زندگی+نامه+نویسان | 传记作家,位 | h",
            "poet,poets | m Dichter,Dichter | m poète,poètes | شاعر,شاعران | 诗人,位 | h",
            "novelist,novelists | m Romancier,Romanciers | m romancier,romanciers | رمان+نویس,رمان+نویسان | 小说家,位 | h",
            "philosopher,philosophers | m* Philosoph,Philosophen | m philosophe,philosophes | فیلسوف,فیلسوفان | 哲学家,位 | h",
            "translator,translators | m Übersetzer,Übersetzer | m traducteur,traducteurs | مترجم,مترجمان | 翻译家,位 | h",
            "historian,historians | m Historiker,Historiker | m historien,historiens | مورخ,مورخان | 历史学家,位 | h",
        ],
        "objects": [
            "essay,essays | m Essay,Essays | m essai,essais | جستار | 散文,篇",
            "letter,letters | m Brief,Briefe | f lettre,lettres | نامه | 信,封",
            "diary,diaries | n Tagebuch,Tagebücher | m journal intime,journaux intimes | دفتر خاطرات,دفترهای خاطرات | 日记,本",
            "biography,biographies | f Biografie,Biografien | f biographie,biographies | زندگی+نامه | 传记,部",
            "poem,poems | n Gedicht,Gedichte | m poème,poèmes | شعر | 诗,首",
            "manuscript,manuscripts | n Manuskript,Manuskripte | m manuscrit,manuscrits | دست+نوشته | 手稿,份",
            "preface,prefaces | n Vorwort,Vorworte | f préface,préfaces | مقدمه | 序言,篇",
            "speech,speeches | f Rede,Reden | m discours,discours | سخنرانی | 演讲稿,份",
        ],
        "verbs": [
            "wrote | schrieb,schrieben | écrit | نوشت | 写",
            "read | las,lasen | lu | خواند | 读",
            "translated | übersetzte,übersetzten | traduit | ترجمه کرد | 翻译",
            "published | veröffentlichte,veröffentlichten | publié | منتشر کرد | 出版",
            "revised | überarbeitete,überarbeiteten | révisé | ویرایش کرد | 修改",
            "admired | bewunderte,bewunderten | admiré | تحسین کرد | 欣赏",
        ],
        "places": [
            "in the library | in der Bibliothek | à la bibliothèque | در کتابخانه | 在图书馆里",
            "in the study | im Arbeitszimmer | dans le bureau | در اتاق کار | 在书房里",
            "at the university | an der Universität | à l'université | در دانشگاه | 在大学里",
            "in Paris | in Paris | à Paris | در پاریس | 在巴黎",
            "in a quiet café | in einem ruhigen Café | dans un café tranquille | در کافه+ای آرام | 在一家安静的咖啡馆里",
        ],
        "adjectives": [
            "personal | persönlich | personnel,personnelle | شخصی | 私人的",
            "elegant | elegant | élégant,élégante | شیوا | 优美的",
            "moving | bewegend | émouvant,émouvante | تأثیرگذار | 感人的",
            "unfinished | unvollendet | inachevé,inachevée | ناتمام | 未完成的",
            "famous | berühmt | célèbre,célèbre | معروف | 著名的",
            "thoughtful | nachdenklich | réfléchi,réfléchie | اندیشمندانه | 深刻的",
        ],
        "frames": [
            "over many years | über viele Jahre | pendant de nombreuses années | در طول سالیان | 多年来",
            "before the war | vor dem Krieg | avant la guerre | پیش از جنگ | 战争之前",
        ],
    },
    "editorial": {
        "subjects": [
            "editor,editors | m Redakteur,Redakteure | m rédacteur,rédacteurs | سردبیر,سردبیران | 编辑,位 | h",
            "columnist,columnists | m* Kolumnist,Kolumnisten | m chroniqueur,chroniqueurs | ستون+نویس,ستون+نویسان | 专栏作家,位 | h",
            "mayor,mayors | m Bürgermeister,Bürgermeister | m maire,maires | شهردار,شهرداران | 市长,位 | h",
            "voter,voters | m Wähler,Wähler | m électeur,électeurs | رأی+دهنده,رأی+دهندگان | 选民,名 | h",
            "senator,senators | m Senator,Senatoren | m sénateur,sénateurs | سناتور | 参议员,位 | h",
            "committee,committees | m Ausschuss,Ausschüsse | m comité,comités | کمیته | 委员会,个",
            "taxpayer,taxpayers | m Steuerzahler,Steuerzahler | m contribuable,contribuables | مالیات+دهنده,مالیات+دهندگان | 纳税人,名 | h",
        ],
        "objects": [
            "policy,policies | f Maßnahme,Maßnahmen | f politique,politiques | سیاست | 政策,项",
            "proposal,proposals | m Vorschlag,Vorschläge | f proposition,propositions | پیشنهاد | 提案,项",
            "budget,budgets | m Haushalt,Haushalte | m budget,budgets | بودجه | 预算,份",
            "tax,taxes | f Steuer,Steuern | m impôt,impôts | مالیات | 税,项",
            "plan,plans | m Plan,Pläne | m plan,plans | طرح | 计划,项",
            "decision,decisions | f Entscheidung,Entscheidungen | f décision,décisions | تصمیم | 决定,项",
            "editorial,editorials | m Leitartikel,Leitartikel | m éditorial,éditoriaux | سرمقاله | 社论,篇",
            "reform,reforms | f Reform,Reformen | f réforme,réformes | اصلاحیه | 改革方案,项",
        ],
        "verbs": [
            "criticized | kritisierte,kritisierten | critiqué | نقد کرد | 批评",
            "approved | billigte,billigten | approuvé | تأیید کرد | 赞同",
            "rejected | verwarf,verwarfen | rejeté | رد کرد | 否决",
            "questioned | hinterfragte,hinterfragten | remis en question | زیر سؤال برد | 质疑",
            "praised | lobte,lobten | salué | ستود | 赞扬",
            "explained | erklärte,erklärten | expliqué | توضیح داد | 解释",
        ],
        "places": [
            "in the newspaper | in der Zeitung | dans le journal | در روزنامه | 在报纸上",
            "at the town meeting | bei der Bürgerversammlung | lors de la réunion municipale | در نشست شهری | 在市民大会上",
            "on the radio | im Radio | à la radio | در رادیو | 在广播里",
            "in parliament | im Parlament | au parlement | در مجلس | 在议会里",
            "on television | im Fernsehen | à la télévision | در تلویزیون | 在电视上",
        ],
        "adjectives": [
            "controversial | umstritten | controversé,controversée | بحث+برانگیز | 有争议的",
            "costly | kostspielig | coûteux,coûteuse | پرهزینه | 昂贵的",
            "unpopular | unbeliebt | impopulaire,impopulaire | نامحبوب | 不受欢迎的",
            "bold | kühn | audacieux,audacieuse | جسورانه | 大胆的",
            "local | lokal | local,locale,locaux,locales | محلی | 地方的",
            "unfair | ungerecht | injuste,injuste | ناعادلانه | 不公平的",
        ],
        "frames": [
            "once again | erneut | une fois de plus | بار دیگر | 再一次",
            "in the end | am Ende | à la fin | در پایان | 最后",
        ],
    },
    "fiction": {
        "subjects": [
            "girl,girls | n Mädchen,Mädchen | f jeune fille,jeunes filles | دختر,دختران | 女孩,个 | h",
            "farmer,farmers | m* Bauer,Bauern | m fermier,fermiers | کشاورز,کشاورزان | 农民,位 | h",
            "teacher,teachers | m Lehrer,Lehrer | m professeur,professeurs | معلم,معلمان | 老师,位 | h",
            "boy,boys | m* Junge,Jungen | m garçon,garçons | پسر,پسران | 男孩,个 | h",
            "neighbor,neighbors | m* Nachbar,Nachbarn | m voisin,voisins | همسایه | 邻居,位 | h",
            "traveler,travelers | m Wanderer,Wanderer | m voyageur,voyageurs | مسافر,مسافران | 旅人,位 | h",
            "aunt,aunts | f Tante,Tanten | f tante,tantes | خاله | 阿姨,位 | h",
        ],
        "objects": [
            "suitcase,suitcases | m Koffer,Koffer | f valise,valises | چمدان | 手提箱,个",
            "photograph,photographs | n Foto,Fotos | f photo,photos | عکس | 照片,张",
            "key,keys | m Schlüssel,Schlüssel | f clé,clés | کلید | 钥匙,把",
            "lamp,lamps | f Lampe,Lampen | f lampe,lampes | چراغ | 灯,盏",
            "house,houses | n Haus,Häuser | f maison,maisons | خانه | 房子,座",
            "gift,gifts | n Geschenk,Geschenke | m cadeau,cadeaux | هدیه | 礼物,份",
            "umbrella,umbrellas | m Regenschirm,Regenschirme | m parapluie,parapluies | چتر | 雨伞,把",
            "bicycle,bicycles | n Fahrrad,Fahrräder | m vélo,vélos | دوچرخه | 自行车,辆",
            "clock,clocks | f Uhr,Uhren | f horloge,horloges | ساعت | 钟,座",
        ],
        "verbs": [
            "found | fand,fanden | trouvé | پیدا کرد | 找到",
            "sold | verkaufte,verkauften | vendu | فروخت | 卖掉",
            "forgot | vergaß,vergaßen | oublié | فراموش کرد | 忘记",
            "saw | sah,sahen | vu | دید | 看见",
            "kept | behielt,behielten | gardé | نگه داشت | 保留",
            "cleaned | putzte,putzten | nettoyé | تمیز کرد | 清理",
        ],
        "places": [
            "in the kitchen | in der Küche | dans la cuisine | در آشپزخانه | 在厨房里",
            "at the station | am Bahnhof | à la gare | در ایستگاه | 在车站",
            "in the attic | auf dem Dachboden | dans le grenier | در زیرشیروانی | 在阁楼上",
            "in the village | im Dorf | au village | در روستا | 在村子里",
            "in the hallway | im Flur | dans le couloir | در راهرو | 在走廊里",
        ],
        "adjectives": [
            "red | rot | rouge,rouge | قرمز | 红色的",
            "worn | abgenutzt | usé,usée | فرسوده | 破旧的",
            "valuable | wertvoll | précieux,précieuse | ارزشمند | 贵重的",
            "strange | seltsam | étrange,étrange | عجیب | 奇怪的",
            "blue | blau | bleu,bleue | آبی | 蓝色的",
            "forgotten | vergessen | oublié,oubliée | فراموش+شده | 被遗忘的",
        ],
        "frames": [
            "one rainy evening | an einem regnerischen Abend | un soir de pluie | در یک عصر بارانی | 在一个下雨的晚上",
            "years later | Jahre später | des années plus tard | سال+ها بعد | 多年以后",
        ],
    },
    "government": {
        "subjects": [
            "minister,ministers | m Minister,Minister | m ministre,ministres | وزیر,وزیران | 部长,位 | h",
            "governor,governors | m Gouverneur,Gouverneure | m gouverneur,gouverneurs | فرماندار,فرمانداران | 州长,位 | h",
            "secretary,secretaries | m Sekretär,Sekretäre | m secrétaire,secrétaires | منشی | 秘书,位 | h",
            "president,presidents | m* Präsident,Präsidenten | m président,présidents | رئیس+جمهور,رؤسای جمهور | 总统,位 | h",
            "ambassador,ambassadors | m Botschafter,Botschafter | m ambassadeur,ambassadeurs | سفیر,سفیران | 大使,位 | h",
            "agency,agencies | f Behörde,Behörden | f agence,agences | سازمان | 机构,个",
            "council,councils | m Rat,Räte | m conseil,conseils | شورا | 理事会,个",
        ],
        "objects": [
            "report,reports | m Bericht,Berichte | m rapport,rapports | گزارش | 报告,份",
            "treaty,treaties | m Vertrag,Verträge | m traité,traités | معاهده | 条约,项",
            "law,laws | n Gesetz,Gesetze | f loi,lois | قانون,قوانین | 法律,部",
            "regulation,regulations | f Verordnung,Verordnungen | m règlement,règlements | آیین+نامه | 条例,项",
            "agreement,agreements | n Abkommen,Abkommen | m accord,accords | توافق+نامه | 协议,份",
            "document,documents | n Dokument,Dokumente | m document,documents | سند,اسناد | 文件,份",
            "program,programs | n Programm,Programme | m programme,programmes | برنامه | 项目,个",
            "application,applications | m Antrag,Anträge | f demande,demandes | درخواست | 申请,份",
        ],
        "verbs": [
            "signed | unterschrieb,unterschrieben | signé | امضا کرد | 签署",
            "ratified | ratifizierte,ratifizierten | ratifié | تصویب کرد | 批准",
            "reviewed | prüfte,prüften | examiné | بررسی کرد | 审查",
            "published | veröffentlichte,veröffentlichten | publié | منتشر کرد | 公布",
            "submitted | übermittelte,übermittelten | transmis | ارسال کرد | 提交",
            "announced | verkündete,verkündeten | annoncé | اعلام کرد | 宣布",
        ],
        "places": [
            "in the capital | in der Hauptstadt | dans la capitale | در پایتخت | 在首都",
            "at the embassy | in der Botschaft | à l'ambassade | در سفارت | 在大使馆",
            "in the government building | im Regierungsgebäude | dans le bâtiment du gouvernement | در ساختمان دولت | 在政府大楼里",
            "at the conference | auf der Konferenz | à la conférence | در کنفرانس | 在会议上",
            "in Washington | in Washington | à Washington | در واشنگتن | 在华盛顿",
        ],
        "adjectives": [
            "official | offiziell | officiel,officielle | رسمی | 正式的",
            "national | national | national,nationale,nationaux,nationales | ملی | 全国性的",
            "annual | jährlich | annuel,annuelle | سالانه | 年度的",
            "detailed | ausführlich | détaillé,détaillée | مفصل | 详细的",
            "temporary | vorläufig | provisoire,provisoire | موقت | 临时的",
            "revised | überarbeitet | révisé,révisée | اصلاح+شده | 修订后的",
        ],
        "frames": [
            "after long negotiations | nach langen Verhandlungen | après de longues négociations | پس از مذاکرات طولانی | 经过长时间的谈判",
            "after the election | nach der Wahl | après l'élection | پس از انتخابات | 选举之后",
        ],
    },
    "hobbies": {
        "subjects": [
            "gardener,gardeners | m Gärtner,Gärtner | m jardinier,jardiniers | باغبان,باغبانان | 园丁,位 | h",
            "collector,collectors | m Sammler,Sammler | m collectionneur,collectionneurs | کلکسیونر | 收藏家,位 | h",
            "fisherman,fishermen | m Angler,Angler | m pêcheur,pêcheurs | ماهیگیر,ماهیگیران | 渔夫,位 | h",
            "photographer,photographers | m* Fotograf,Fotografen | m photographe,photographes | عکاس,عکاسان | 摄影师,位 | h",
            "cook,cooks | m Koch,Köche | m cuisinier,cuisiniers | آشپز | 厨师,位 | h",
            "carpenter,carpenters | m Tischler,Tischler | m menuisier,menuisiers | نجار,نجاران | 木匠,位 | h",
            "grandmother,grandmothers | f Großmutter,Großmütter | f grand-mère,grands-mères | مادربزرگ | 奶奶,位 | h",
        ],
        "objects": [
            "stamp,stamps | f Briefmarke,Briefmarken | m timbre,timbres | تمبر | 邮票,枚",
            "cake,cakes | m Kuchen,Kuchen | m gâteau,gâteaux | کیک | 蛋糕,个",
            "chair,chairs | m Stuhl,Stühle | f chaise,chaises | صندلی | 椅子,把",
            "fishing rod,fishing rods | f Angel,Angeln | f canne à pêche,cannes à pêche | چوب ماهیگیری,چوب+های ماهیگیری | 鱼竿,根",
            "sweater,sweaters | m Pullover,Pullover | m pull,pulls | ژاکت | 毛衣,件",
            "camera,cameras | f Kamera,Kameras | m appareil photo,appareils photo | دوربین | 相机,台",
            "model,models | n Modell,Modelle | f maquette,maquettes | ماکت | 模型,个",
            "guitar,guitars | f Gitarre,Gitarren | f guitare,guitares | گیتار | 吉他,把",
            "quilt,quilts | f Steppdecke,Steppdecken | f courtepointe,courtepointes | لحاف | 被子,床",
        ],
        "verbs": [
            "made | machte,machten | fabriqué | ساخت | 做",
            "repaired | reparierte,reparierten | réparé | تعمیر کرد | 修理",
            "bought | kaufte,kauften | acheté | خرید | 买",
            "cleaned | reinigte,reinigten | nettoyé | تمیز کرد | 清洗",
            "showed | zeigte,zeigten | montré | نشان داد | 展示",
            "sold | verkaufte,verkauften | vendu | فروخت | 卖掉",
        ],
        "places": [
            "in the garage | in der Garage | dans le garage | در گاراژ | 在车库里",
            "in the workshop | in der Werkstatt | dans l'atelier | در کارگاه | 在工作室里",
            "at the lake | am See | au bord du lac | کنار دریاچه | 在湖边",
            "at the flea market | auf dem Flohmarkt | au marché aux puces | در بازار کهنه+فروشان | 在跳蚤市场上",
            "at the club | im Verein | au club | در باشگاه | 在俱乐部里",
        ],
        "adjectives": [
            "handmade | handgemacht | fait main,fait main,fait main,fait main | دست+ساز | 手工的",
            "new | neu | neuf,neuve | نو | 新的",
            "tiny | winzig | minuscule,minuscule | کوچک | 小小的",
            "colorful | bunt | coloré,colorée | رنگارنگ | 彩色的",
            "rare | selten | rare,rare | کمیاب | 稀有的",
            "green | grün | vert,verte | سبز | 绿色的",
        ],
        "frames": [
            "every weekend | jedes Wochenende | chaque week-end | هر آخر هفته | 每个周末",
            "as a hobby | als Hobby | comme passe-temps | به عنوان سرگرمی | 作为一种爱好",
        ],
    },
    "humor": {
        "subjects": [
            "clown,clowns | m Clown,Clowns | m clown,clowns | دلقک | 小丑,个 | h",
            "comedian,comedians | m Komiker,Komiker | m humoriste,humoristes | کمدین | 喜剧演员,位 | h",
            "uncle,uncles | m Onkel,Onkel | m oncle,oncles | عمو | 叔叔,位 | h",
            "waiter,waiters | m Kellner,Kellner | m serveur,serveurs | پیشخدمت | 服务员,名 | h",
            "parrot,parrots | m Papagei,Papageien | m perroquet,perroquets | طوطی | 鹦鹉,只",
            "tourist,tourists | m* Tourist,Touristen | m touriste,touristes | گردشگر,گردشگران | 游客,名 | h",
            "monkey,monkeys | m* Affe,Affen | m singe,singes | میمون | 猴子,只",
        ],
        "objects": [
            "hat,hats | m Hut,Hüte | m chapeau,chapeaux | کلاه | 帽子,顶",
            "banana,bananas | f Banane,Bananen | f banane,bananes | موز | 香蕉,根",
            "sock,socks | f Socke,Socken | f chaussette,chaussettes | جوراب | 袜子,只",
            "wig,wigs | f Perücke,Perücken | f perruque,perruques | کلاه+گیس | 假发,顶",
            "trumpet,trumpets | f Trompete,Trompeten | f trompette,trompettes | ترومپت | 小号,把",
            "sandwich,sandwiches | n Sandwich,Sandwiches | m sandwich,sandwichs | ساندویچ | 三明治,个",
            "shoe,shoes | m Schuh,Schuhe | f chaussure,chaussures | کفش | 鞋子,只",
            "pumpkin,pumpkins | m Kürbis,Kürbisse | f citrouille,citrouilles | کدو | 南瓜,个",
            "rubber duck,rubber ducks | f Quietscheente,Quietscheenten | m canard en plastique,canards en plastique | اردک پلاستیکی,اردک+های پلاستیکی | 橡皮鸭,只",
        ],
        "verbs": [
            "ate | aß,aßen | mangé | خورد | 吃",
            "swallowed | verschluckte,verschluckten | avalé | قورت داد | 吞下",
            "threw | warf,warfen | lancé | پرت کرد | 扔",
            "stole | stahl,stahlen | volé | دزدید | 偷走",
            "hid | versteckte,versteckten | caché | پنهان کرد | 藏起",
            "chased | jagte,jagten | poursuivi | دنبال کرد | 追赶",
        ],
        "places": [
            "at the circus | im Zirkus | au cirque | در سیرک | 在马戏团里",
            "at the wedding | auf der Hochzeit | au mariage | در عروسی | 在婚礼上",
            "in the restaurant | im Restaurant | au restaurant | در رستوران | 在餐厅里",
            "on the bus | im Bus | dans le bus | در اتوبوس | 在公共汽车上",
            "at the zoo | im Zoo | au zoo | در باغ+وحش | 在动物园里",
        ],
        "adjectives": [
            "huge | riesig | énorme,énorme | غول+پیکر | 硕大的",
            "purple | violett | violet,violette | بنفش | 紫色的",
            "ridiculous | lächerlich | ridicule,ridicule | مسخره | 可笑的",
            "yellow | gelb | jaune,jaune | زرد | 黄色的",
            "smelly | stinkend | puant,puante | بدبو | 臭烘烘的",
            "wet | nass | mouillé,mouillée | خیس | 湿漉漉的",
        ],
        "frames": [
            "to everyone's surprise | zur Überraschung aller | à la surprise générale | در کمال تعجب همه | 出乎所有人的意料",
            "without any warning | ohne jede Vorwarnung | sans prévenir | بی+هیچ هشداری | 毫无预兆地",
        ],
    },
    "learned": {
        "subjects": [
            "professor,professors | m Professor,Professoren | m professeur,professeurs | استاد,استادان | 教授,位 | h",
            "researcher,researchers | m Forscher,Forscher | m chercheur,chercheurs | پژوهشگر,پژوهشگران | 研究员,位 | h",
            "chemist,chemists | m Chemiker,Chemiker | m chimiste,chimistes | شیمی+دان,شیمی+دانان | 化学家,位 | h",
            "student,students | m* Student,Studenten | m étudiant,étudiants | دانشجو,دانشجویان | 学生,名 | h",
            "engineer,engineers | m Ingenieur,Ingenieure | m ingénieur,ingénieurs | مهندس,مهندسان | 工程师,位 | h",
            "biologist,biologists | m* Biologe,Biologen | m biologiste,biologistes | زیست+شناس,زیست+شناسان | 生物学家,位 | h",
            "team,teams | n Team,Teams | f équipe,équipes | تیم | 团队,个",
        ],
        "objects": [
            "sample,samples | f Probe,Proben | m échantillon,échantillons | نمونه | 样本,份",
            "experiment,experiments | n Experiment,Experimente | f expérience,expériences | آزمایش | 实验,项",
            "theory,theories | f Theorie,Theorien | f théorie,théories | نظریه | 理论,种",
            "equation,equations | f Gleichung,Gleichungen | f équation,équations | معادله | 方程,个",
            "molecule,molecules | n Molekül,Moleküle | f molécule,molécules | مولکول | 分子,个",
            "study,studies | f Studie,Studien | f étude,études | پژوهش | 研究报告,份",
            "measurement,measurements | f Messung,Messungen | f mesure,mesures | اندازه+گیری | 测量结果,组",
            "crystal,crystals | m Kristall,Kristalle | m cristal,cristaux | بلور | 晶体,块",
            "hypothesis,hypotheses | f Hypothese,Hypothesen | f hypothèse,hypothèses | فرضیه | 假设,个",
        ],
        "verbs": [
            "analyzed | analysierte,analysierten | analysé | تحلیل کرد | 分析",
            "tested | prüfte,prüften | testé | آزمود | 检验",
            "described | beschrieb,beschrieben | décrit | توصیف کرد | 描述",
            "compared | verglich,verglichen | comparé | مقایسه کرد | 比较",
            "studied | untersuchte,untersuchten | étudié | مطالعه کرد | 研究",
            "presented | präsentierte,präsentierten | présenté | ارائه کرد | 介绍",
        ],
        "places": [
            "in the laboratory | im Labor | au laboratoire | در آزمایشگاه | 在实验室里",
            "at the symposium | auf dem Symposium | au colloque | در همایش | 在研讨会上",
            "in the lecture hall | im Hörsaal | dans l'amphithéâtre | در سالن سخنرانی | 在报告厅里",
            "at the observatory | in der Sternwarte | à l'observatoire | در رصدخانه | 在天文台",
            "at the institute | am Institut | à l'institut | در مؤسسه | 在研究所里",
        ],
        "adjectives": [
            "complex | komplex | complexe,complexe | پیچیده | 复杂的",
            "chemical | chemisch | chimique,chimique | شیمیایی | 化学的",
            "experimental | experimentell | expérimental,expérimentale,expérimentaux,expérimentales | تجربی | 实验性的",
            "precise | präzise | précis,précise | دقیق | 精确的",
            "statistical | statistisch | statistique,statistique | آماری | 统计的",
            "unusual | ungewöhnlich | inhabituel,inhabituelle | غیرعادی | 不寻常的",
        ],
        "frames": [
            "in a recent study | in einer neuen Studie | dans une étude récente | در پژوهشی تازه | 在最近的一项研究中",
            "for several months | mehrere Monate lang | pendant plusieurs mois | به مدت چند ماه | 几个月来",
        ],
    },
    "lore": {
        "subjects": [
            "grandfather,grandfathers | m Großvater,Großväter | m grand-père,grands-pères | پدربزرگ | 爷爷,位 | h",
            "shepherd,shepherds | m* Hirte,Hirten | m berger,bergers | چوپان,چوپانان | 牧羊人,个 | h",
            "villager,villagers | m Dorfbewohner,Dorfbewohner | m villageois,villageois | روستایی,روستاییان | 村民,位 | h",
            "healer,healers | m Heiler,Heiler | m guérisseur,guérisseurs | درمانگر,درمانگران | 民间医生,位 | h",
            "storyteller,storytellers | m Erzähler,Erzähler | m conteur,conteurs | قصه+گو,قصه+گویان | 说书人,位 | h",
            "midwife,midwives | f Hebamme,Hebammen | f sage-femme,sages-femmes | قابله | 接生婆,位 | h",
            "blacksmith,blacksmiths | m Schmied,Schmiede | m forgeron,forgerons | آهنگر,آهنگران | 铁匠,位 | h",
        ],
        "objects": [
            "herb,herbs | n Kraut,Kräuter | f herbe,herbes | گیاه,گیاهان | 草药,种",
            "recipe,recipes | n Rezept,Rezepte | f recette,recettes | دستور پخت,دستورهای پخت | 食谱,份",
            "song,songs | n Lied,Lieder | f chanson,chansons | ترانه | 歌谣,首",
            "legend,legends | f Legende,Legenden | f légende,légendes | افسانه | 传说,个",
            "amulet,amulets | n Amulett,Amulette | f amulette,amulettes | طلسم | 护身符,个",
            "custom,customs | m Brauch,Bräuche | f coutume,coutumes | رسم,رسوم | 习俗,种",
            "proverb,proverbs | n Sprichwort,Sprichwörter | m proverbe,proverbes | ضرب+المثل | 谚语,句",
            "remedy,remedies | n Heilmittel,Heilmittel | m remède,remèdes | دارو | 偏方,个",
            "horseshoe,horseshoes | n Hufeisen,Hufeisen | m fer à cheval,fers à cheval | نعل | 马蹄铁,个",
        ],
        "verbs": [
            "taught | lehrte,lehrten | enseigné | یاد داد | 传授",
            "kept | bewahrte,bewahrten | conservé | حفظ کرد | 保存",
            "used | benutzte,benutzten | utilisé | به کار برد | 使用",
            "learned | lernte,lernten | appris | آموخت | 学会",
            "collected | sammelte,sammelten | recueilli | گردآوری کرد | 收集",
            "described | beschrieb,beschrieben | décrit | توصیف کرد | 描述",
        ],
        "places": [
            "by the fire | am Feuer | près du feu | کنار آتش | 在火炉旁",
            "in the mountains | in den Bergen | dans les montagnes | در کوهستان | 在山里",
            "at the market | auf dem Markt | au marché | در بازار | 在集市上",
            "in the old mill | in der alten Mühle | dans le vieux moulin | در آسیاب قدیمی | 在老磨坊里",
            "on the farm | auf dem Bauernhof | à la ferme | در مزرعه | 在农场上",
        ],
        "adjectives": [
            "traditional | traditionell | traditionnel,traditionnelle | سنتی | 传统的",
            "magical | magisch | magique,magique | جادویی | 神奇的",
            "old-fashioned | altmodisch | démodé,démodée | قدیمی | 老式的",
            "rural | ländlich | rural,rurale,ruraux,rurales | روستایی | 乡村的",
            "bitter | bitter | amer,amère | تلخ | 苦涩的",
            "powerful | mächtig | puissant,puissante | قدرتمند | 强大的",
        ],
        "frames": [
            "as the elders say | wie die Alten sagen, | comme disent les anciens | به قول پیران | 正如老人们所说",
            "long ago | vor langer Zeit | il y a longtemps | مدت+ها پیش | 很久以前",
        ],
    },
    "mystery": {
        "subjects": [
            "detective,detectives | m Detektiv,Detektive | m détective,détectives | کارآگاه,کارآگاهان | 侦探,位 | h",
            "inspector,inspectors | m Inspektor,Inspektoren | m inspecteur,inspecteurs | بازرس,بازرسان | 探长,位 | h",
            "butler,butlers | m Butler,Butler | m majordome,majordomes | سرپیشخدمت | 管家,位 | h",
            "thief,thieves | m Dieb,Diebe | m voleur,voleurs | دزد,دزدان | 小偷,个 | h",
            "witness,witnesses | m* Zeuge,Zeugen | m témoin,témoins | شاهد,شاهدان | 证人,位 | h",
            "murderer,murderers | m Mörder,Mörder | m meurtrier,meurtriers | قاتل,قاتلان | 凶手,个 | h",
            "countess,countesses | f Gräfin,Gräfinnen | f comtesse,comtesses | کنتس | 伯爵夫人,位 | h",
        ],
        "objects": [
            "clue,clues | f Spur,Spuren | m indice,indices | سرنخ | 线索,条",
            "footprint,footprints | m Fußabdruck,Fußabdrücke | f empreinte,empreintes | رد پا,ردهای پا | 脚印,个",
            "knife,knives | n Messer,Messer | m couteau,couteaux | چاقو | 刀,把",
            "note,notes | m Zettel,Zettel | m billet,billets | یادداشت | 字条,张",
            "pistol,pistols | f Pistole,Pistolen | m pistolet,pistolets | تپانچه | 手枪,把",
            "necklace,necklaces | f Halskette,Halsketten | m collier,colliers | گردنبند | 项链,条",
            "glove,gloves | m Handschuh,Handschuhe | m gant,gants | دستکش | 手套,只",
            "bottle,bottles | f Flasche,Flaschen | f bouteille,bouteilles | بطری | 瓶子,个",
            "safe,safes | m Tresor,Tresore | m coffre-fort,coffres-forts | گاوصندوق | 保险箱,个",
        ],
        "verbs": [
            "found | fand,fanden | trouvé | پیدا کرد | 找到",
            "examined | untersuchte,untersuchten | examiné | بررسی کرد | 检查",
            "hid | versteckte,versteckten | caché | پنهان کرد | 藏起",
            "identified | identifizierte,identifizierten | identifié | شناسایی کرد | 辨认出",
            "removed | entfernte,entfernten | enlevé | برداشت | 拿走",
            "buried | vergrub,vergruben | enterré | دفن کرد | 埋",
        ],
        "places": [
            "in the cellar | im Keller | dans la cave | در زیرزمین | 在地窖里",
            "at the manor | im Herrenhaus | au manoir | در عمارت | 在庄园里",
            "on the train | im Zug | dans le train | در قطار | 在火车上",
            "in the hotel room | im Hotelzimmer | dans la chambre d'hôtel | در اتاق هتل | 在酒店房间里",
            "behind the curtain | hinter dem Vorhang | derrière le rideau | پشت پرده | 在窗帘后面",
        ],
        "adjectives": [
            "bloody | blutig | ensanglanté,ensanglantée | خونین | 沾血的",
            "hidden | versteckt | caché,cachée | پنهان | 隐藏的",
            "silver | silbern | en argent,en argent,en argent,en argent | نقره+ای | 银色的",
            "missing | verschwunden | disparu,disparue | گمشده | 丢失的",
            "suspicious | verdächtig | suspect,suspecte | مشکوک | 可疑的",
            "black | schwarz | noir,noire | سیاه | 黑色的",
        ],
        "frames": [
            "shortly after midnight | kurz nach Mitternacht | peu après minuit | کمی پس از نیمه+شب | 午夜过后不久",
            "on the night of the murder | in der Mordnacht | la nuit du meurtre | در شب قتل | 在谋杀案发生的那天晚上",
        ],
    },
    "news": {
        "subjects": [
            "police officer,police officers | m* Polizist,Polizisten | m policier,policiers | مأمور پلیس,مأموران پلیس | 警察,名 | h",
            "firefighter,firefighters | m Feuerwehrmann,Feuerwehrleute | m pompier,pompiers | آتش+نشان,آتش+نشانان | 消防员,名 | h",
            "reporter,reporters | m Reporter,Reporter | m journaliste,journalistes | خبرنگار,خبرنگاران | 记者,名 | h",
            "spokesman,spokesmen | m Sprecher,Sprecher | m porte-parole,porte-parole | سخنگو,سخنگویان | 发言人,位 | h",
            "coach,coaches | m Trainer,Trainer | m entraîneur,entraîneurs | مربی,مربیان | 教练,位 | h",
            "company,companies | n Unternehmen,Unternehmen | f entreprise,entreprises | شرکت | 公司,家",
            "resident,residents | m Anwohner,Anwohner | m habitant,habitants | ساکن,ساکنان | 居民,名 | h",
        ],
        "objects": [
            "car,cars | n Auto,Autos | f voiture,voitures | خودرو | 汽车,辆",
            "bridge,bridges | f Brücke,Brücken | m pont,ponts | پل | 桥,座",
            "statement,statements | f Erklärung,Erklärungen | f déclaration,déclarations | بیانیه | 声明,份",
            "contract,contracts | m Vertrag,Verträge | m contrat,contrats | قرارداد | 合同,份",
            "building,buildings | n Gebäude,Gebäude | m bâtiment,bâtiments | ساختمان | 大楼,栋",
            "trophy,trophies | m Pokal,Pokale | m trophée,trophées | جام | 奖杯,座",
            "factory,factories | f Fabrik,Fabriken | f usine,usines | کارخانه | 工厂,家",
            "truck,trucks | m Lastwagen,Lastwagen | m camion,camions | کامیون | 卡车,辆",
        ],
        "verbs": [
            "closed | schloss,schlossen | fermé | بست | 关闭",
            "inspected | kontrollierte,kontrollierten | inspecté | بازرسی کرد | 视察",
            "damaged | beschädigte,beschädigten | endommagé | خراب کرد | 损坏",
            "bought | kaufte,kauften | acheté | خرید | 买下",
            "sold | verkaufte,verkauften | vendu | فروخت | 卖掉",
            "repaired | reparierte,reparierten | réparé | تعمیر کرد | 修复",
        ],
        "places": [
            "downtown | in der Innenstadt | au centre-ville | در مرکز شهر | 在市中心",
            "near the airport | in der Nähe des Flughafens | près de l'aéroport | نزدیک فرودگاه | 在机场附近",
            "on Main Street | in der Hauptstraße | dans la rue principale | در خیابان اصلی | 在主街上",
            "in Chicago | in Chicago | à Chicago | در شیکاگو | 在芝加哥",
            "at the stadium | im Stadion | au stade | در ورزشگاه | 在体育场",
        ],
        "adjectives": [
            "empty | leer | vide,vide | خالی | 空荡荡的",
            "stolen | gestohlen | volé,volée | دزدیده+شده | 被盗的",
            "abandoned | verlassen | abandonné,abandonnée | متروکه | 废弃的",
            "municipal | städtisch | municipal,municipale,municipaux,municipales | شهری | 市政的",
            "luxurious | luxuriös | luxueux,luxueuse | مجلل | 豪华的",
            "burned | ausgebrannt | incendié,incendiée | سوخته | 烧毁的",
        ],
        "frames": [
            "according to the police | laut Polizei | selon la police | به گفته+ی پلیس | 据警方称",
            "in a surprising move | in einem überraschenden Schritt | dans un geste surprenant | در اقدامی غافلگیرکننده | 出人意料的是",
        ],
    },
    "religion": {
        "subjects": [
            "priest,priests | m Priester,Priester | m prêtre,prêtres | کشیش,کشیشان | 神父,位 | h",
            "monk,monks | m Mönch,Mönche | m moine,moines | راهب,راهبان | 修道士,位 | h",
            "pilgrim,pilgrims | m Pilger,Pilger | m pèlerin,pèlerins | زائر,زائران | 朝圣者,位 | h",
            "nun,nuns | f Nonne,Nonnen | f religieuse,religieuses | راهبه | 修女,位 | h",
            "bishop,bishops | m Bischof,Bischöfe | m évêque,évêques | اسقف | 主教,位 | h",
            "prophet,prophets | m* Prophet,Propheten | m prophète,prophètes | پیامبر,پیامبران | 先知,位 | h",
            "parish,parishes | f Gemeinde,Gemeinden | f paroisse,paroisses | جماعت | 教区,个",
        ],
        "objects": [
            "prayer,prayers | n Gebet,Gebete | f prière,prières | دعا | 祷文,篇",
            "candle,candles | f Kerze,Kerzen | f bougie,bougies | شمع | 蜡烛,支",
            "hymn,hymns | f Hymne,Hymnen | m cantique,cantiques | سرود | 赞美诗,首",
            "sermon,sermons | f Predigt,Predigten | m sermon,sermons | موعظه | 布道词,篇",
            "altar,altars | m Altar,Altäre | m autel,autels | محراب | 祭坛,座",
            "blessing,blessings | m Segen,Segen | f bénédiction,bénédictions | دعای خیر,دعاهای خیر | 祝福,个",
            "scroll,scrolls | f Schriftrolle,Schriftrollen | m rouleau,rouleaux | طومار | 卷轴,卷",
            "icon,icons | f Ikone,Ikonen | f icône,icônes | شمایل | 圣像,幅",
            "psalm,psalms | m Psalm,Psalmen | m psaume,psaumes | مزمور,مزامیر | 诗篇,首",
        ],
        "verbs": [
            "blessed | segnete,segneten | béni | متبرک کرد | 祝福",
            "received | empfing,empfingen | reçu | دریافت کرد | 领受",
            "studied | studierte,studierten | étudié | مطالعه کرد | 研读",
            "honored | ehrte,ehrten | honoré | گرامی داشت | 尊崇",
            "carried | trug,trugen | porté | حمل کرد | 捧起",
            "described | beschrieb,beschrieben | décrit | توصیف کرد | 描述",
        ],
        "places": [
            "in the cathedral | im Dom | dans la cathédrale | در کلیسای جامع | 在大教堂里",
            "in the monastery | im Kloster | au monastère | در صومعه | 在修道院里",
            "at the shrine | am Schrein | au sanctuaire | در زیارتگاه | 在圣祠里",
            "in the chapel | in der Kapelle | dans la chapelle | در نمازخانه | 在小教堂里",
            "in Jerusalem | in Jerusalem | à Jérusalem | در اورشلیم | 在耶路撒冷",
        ],
        "adjectives": [
            "holy | heilig | sacré,sacrée | مقدس | 神圣的",
            "humble | demütig | humble,humble | فروتنانه | 谦卑的",
            "silent | still | silencieux,silencieuse | خاموش | 无声的",
            "medieval | mittelalterlich | médiéval,médiévale,médiévaux,médiévales | قرون وسطایی | 中世纪的",
            "simple | schlicht | simple,simple | ساده | 简朴的",
            "white | weiß | blanc,blanche | سفید | 白色的",
        ],
        "frames": [
            "at Easter | zu Ostern | à Pâques | در عید پاک | 在复活节",
            "during the long fast | während des langen Fastens | pendant le long jeûne | در طول روزه+داری طولانی | 在漫长的斋戒期间",
        ],
    },
    "reviews": {
        "subjects": [
            "reviewer,reviewers | m* Rezensent,Rezensenten | m critique,critiques | منتقد,منتقدان | 评论员,位 | h",
            "conductor,conductors | m* Dirigent,Dirigenten | m chef d'orchestre,chefs d'orchestre | رهبر ارکستر,رهبران ارکستر | 指挥,位 | h",
            "pianist,pianists | m* Pianist,Pianisten | m pianiste,pianistes | پیانیست | 钢琴家,位 | h",
            "actor,actors | m Schauspieler,Schauspieler | m acteur,acteurs | بازیگر,بازیگران | 演员,位 | h",
            "director,directors | m Regisseur,Regisseure | m réalisateur,réalisateurs | کارگردان,کارگردانان | 导演,位 | h",
            "singer,singers | m Sänger,Sänger | m chanteur,chanteurs | آوازخوان,آوازخوانان | 歌手,位 | h",
            "orchestra,orchestras | n Orchester,Orchester | m orchestre,orchestres | ارکستر | 管弦乐团,个",
        ],
        "objects": [
            "symphony,symphonies | f Sinfonie,Sinfonien | f symphonie,symphonies | سمفونی | 交响曲,首",
            "film,films | m Film,Filme | m film,films | فیلم | 电影,部",
            "concert,concerts | n Konzert,Konzerte | m concert,concerts | کنسرت | 音乐会,场",
            "opera,operas | f Oper,Opern | m opéra,opéras | اپرا | 歌剧,部",
            "album,albums | n Album,Alben | m album,albums | آلبوم | 专辑,张",
            "play,plays | n Theaterstück,Theaterstücke | f pièce de théâtre,pièces de théâtre | نمایشنامه | 戏剧,部",
            "performance,performances | f Aufführung,Aufführungen | f représentation,représentations | اجرا | 演出,场",
            "ballet,ballets | n Ballett,Ballette | m ballet,ballets | باله | 芭蕾舞剧,部",
            "sonata,sonatas | f Sonate,Sonaten | f sonate,sonates | سونات | 奏鸣曲,首",
        ],
        "verbs": [
            "praised | lobte,lobten | salué | ستود | 称赞",
            "criticized | kritisierte,kritisierten | critiqué | نقد کرد | 批评",
            "recommended | empfahl,empfahlen | recommandé | توصیه کرد | 推荐",
            "admired | bewunderte,bewunderten | admiré | تحسین کرد | 欣赏",
            "described | beschrieb,beschrieben | décrit | توصیف کرد | 描述",
            "panned | verriss,verrissen | éreinté | به شدت نقد کرد | 严厉批评",
        ],
        "places": [
            "in the Sunday paper | in der Sonntagszeitung | dans le journal du dimanche | در روزنامه+ی یکشنبه | 在周日的报纸上",
            "at the festival | auf dem Festival | au festival | در جشنواره | 在艺术节上",
            "in Vienna | in Wien | à Vienne | در وین | 在维也纳",
            "at the opera house | im Opernhaus | à l'opéra | در سالن اپرا | 在歌剧院",
            "in London | in London | à Londres | در لندن | 在伦敦",
        ],
        "adjectives": [
            "brilliant | brillant | brillant,brillante | درخشان | 精彩的",
            "boring | langweilig | ennuyeux,ennuyeuse | خسته+کننده | 无聊的",
            "recent | aktuell | récent,récente | جدید | 最新的",
            "lengthy | langatmig | interminable,interminable | طولانی | 冗长的",
            "romantic | romantisch | romantique,romantique | عاشقانه | 浪漫的",
            "delightful | reizend | charmant,charmante | دلنشین | 令人愉快的",
        ],
        "frames": [
            "after the premiere | nach der Premiere | après la première | پس از اجرای نخست | 首演之后",
            "in a short review | in einer kurzen Kritik | dans une courte critique | در نقدی کوتاه | 在一篇简短的评论中",
        ],
    },
    "romance": {
        "subjects": [
            "bride,brides | f Braut,Bräute | f mariée,mariées | عروس | 新娘,位 | h",
            "groom,grooms | m Bräutigam,Bräutigame | m marié,mariés | داماد | 新郎,位 | h",
            "lover,lovers | m Liebhaber,Liebhaber | m amoureux,amoureux | عاشق,عاشقان | 恋人,个 | h",
            "princess,princesses | f Prinzessin,Prinzessinnen | f princesse,princesses | شاهدخت | 公主,位 | h",
            "prince,princes | m* Prinz,Prinzen | m prince,princes | شاهزاده,شاهزادگان | 王子,位 | h",
            "dancer,dancers | f Tänzerin,Tänzerinnen | f danseuse,danseuses | رقصنده,رقصندگان | 舞者,位 | h",
            "widow,widows | f Witwe,Witwen | f veuve,veuves | بیوه | 寡妇,位 | h",
        ],
        "objects": [
            "bouquet,bouquets | m Blumenstrauß,Blumensträuße | m bouquet,bouquets | دسته+گل | 花束,束",
            "love letter,love letters | m Liebesbrief,Liebesbriefe | f lettre d'amour,lettres d'amour | نامه+ی عاشقانه,نامه+های عاشقانه | 情书,封",
            "ring,rings | m Ring,Ringe | f bague,bagues | انگشتر | 戒指,枚",
            "dress,dresses | n Kleid,Kleider | f robe,robes | لباس | 连衣裙,条",
            "veil,veils | m Schleier,Schleier | m voile,voiles | روبند | 面纱,条",
            "locket,lockets | n Medaillon,Medaillons | m médaillon,médaillons | گردن+آویز | 挂坠盒,个",
            "handkerchief,handkerchiefs | n Taschentuch,Taschentücher | m mouchoir,mouchoirs | دستمال | 手帕,块",
            "invitation,invitations | f Einladung,Einladungen | f invitation,invitations | دعوت+نامه | 请柬,份",
        ],
        "verbs": [
            "received | erhielt,erhielten | reçu | دریافت کرد | 收到",
            "kept | behielt,behielten | gardé | نگه داشت | 珍藏",
            "sent | schickte,schickten | envoyé | فرستاد | 寄出",
            "chose | wählte,wählten | choisi | انتخاب کرد | 挑选",
            "hid | versteckte,versteckten | caché | پنهان کرد | 藏起",
            "bought | kaufte,kauften | acheté | خرید | 买",
        ],
        "places": [
            "at the ball | auf dem Ball | au bal | در مجلس رقص | 在舞会上",
            "in Venice | in Venedig | à Venise | در ونیز | 在威尼斯",
            "by the sea | am Meer | au bord de la mer | کنار دریا | 在海边",
            "under the stars | unter den Sternen | sous les étoiles | زیر ستارگان | 在星空下",
            "in the rose garden | im Rosengarten | dans la roseraie | در گلستان | 在玫瑰园里",
        ],
        "adjectives": [
            "delicate | zart | délicat,délicate | ظریف | 精致的",
            "silk | seiden | en soie,en soie,en soie,en soie | ابریشمی | 丝绸的",
            "perfumed | parfümiert | parfumé,parfumée | معطر | 香喷喷的",
            "precious | kostbar | précieux,précieuse | گران+بها | 珍贵的",
            "pink | rosafarben | rose,rose | صورتی | 粉红色的",
            "secret | geheim | secret,secrète | پنهانی | 秘密的",
        ],
        "frames": [
            "on their wedding day | an ihrem Hochzeitstag | le jour de leur mariage | در روز عروسی+شان | 在他们的婚礼那天",
            "with a trembling heart | mit klopfendem Herzen | le cœur battant | با دلی لرزان | 怀着激动的心情",
        ],
    },
    "science_fiction": {
        "subjects": [
            "astronaut,astronauts | m* Astronaut,Astronauten | m astronaute,astronautes | فضانورد,فضانوردان | 宇航员,名 | h",
            "robot,robots | m Roboter,Roboter | m robot,robots | ربات | 机器人,个",
            "Martian,Martians | m Marsbewohner,Marsbewohner | m Martien,Martiens | مریخی,مریخی+ها | 火星人,个 | h",
            "commander,commanders | m* Kommandant,Kommandanten | m commandant,commandants | فرمانده,فرماندهان | 指挥官,位 | h",
            "scientist,scientists | m Wissenschaftler,Wissenschaftler | m scientifique,scientifiques | دانشمند,دانشمندان | 科学家,位 | h",
            "android,androids | m* Android,Androiden | m androïde,androïdes | آدم+نما | 仿生人,个",
            "navigator,navigators | m Navigator,Navigatoren | m navigateur,navigateurs | ناوبر,ناوبران | 领航员,名 | h",
        ],
        "objects": [
            "spaceship,spaceships | n Raumschiff,Raumschiffe | m vaisseau spatial,vaisseaux spatiaux | سفینه | 飞船,艘",
            "signal,signals | n Signal,Signale | m signal,signaux | سیگنال | 信号,个",
            "planet,planets | m* Planet,Planeten | f planète,planètes | سیاره | 行星,颗",
            "laser,lasers | m Laser,Laser | m laser,lasers | لیزر | 激光器,台",
            "reactor,reactors | m Reaktor,Reaktoren | m réacteur,réacteurs | رآکتور | 反应堆,座",
            "probe,probes | f Sonde,Sonden | f sonde,sondes | کاوشگر | 探测器,个",
            "time machine,time machines | f Zeitmaschine,Zeitmaschinen | f machine temporelle,machines temporelles | ماشین زمان,ماشین+های زمان | 时间机器,台",
            "message,messages | f Nachricht,Nachrichten | m message,messages | پیام | 信息,条",
            "asteroid,asteroids | m* Asteroid,Asteroiden | m astéroïde,astéroïdes | سیارک | 小行星,颗",
        ],
        "verbs": [
            "discovered | entdeckte,entdeckten | découvert | کشف کرد | 发现",
            "repaired | reparierte,reparierten | réparé | تعمیر کرد | 修好",
            "destroyed | zerstörte,zerstörten | détruit | نابود کرد | 摧毁",
            "launched | startete,starteten | lancé | پرتاب کرد | 发射",
            "detected | ortete,orteten | détecté | ردیابی کرد | 探测到",
            "controlled | steuerte,steuerten | contrôlé | کنترل کرد | 控制",
        ],
        "places": [
            "on Mars | auf dem Mars | sur Mars | در مریخ | 在火星上",
            "in orbit | im Orbit | en orbite | در مدار | 在轨道上",
            "on the space station | auf der Raumstation | sur la station spatiale | در ایستگاه فضایی | 在空间站上",
            "on the dark side of the moon | auf der dunklen Seite des Mondes | sur la face cachée de la Lune | در سمت تاریک ماه | 在月球背面",
            "in a distant galaxy | in einer fernen Galaxie | dans une galaxie lointaine | در کهکشانی دوردست | 在遥远的星系里",
        ],
        "adjectives": [
            "mysterious | geheimnisvoll | mystérieux,mystérieuse | اسرارآمیز | 神秘的",
            "nuclear | nuklear | nucléaire,nucléaire | هسته+ای | 核动力的",
            "broken | defekt | défectueux,défectueuse | معیوب | 出了故障的",
            "gigantic | gigantisch | gigantesque,gigantesque | عظیم | 巨型的",
            "invisible | unsichtbar | invisible,invisible | نامرئی | 隐形的",
            "distant | fern | lointain,lointaine | دوردست | 遥远的",
        ],
        "frames": [
            "in the distant future | in ferner Zukunft | dans un futur lointain | در آینده+ای دور | 在遥远的未来",
            "after the invasion | nach der Invasion | après l'invasion | پس از تهاجم | 入侵之后",
        ],
    },
}


def _build_categories() -> dict[str, Category]:
    out = {}
    for name in CATEGORIES:
        lex = _LEXICON[name]
        out[name] = Category(
            name=name,
            subjects=tuple(map(parse_noun, lex["subjects"])),
            objects=tuple(map(parse_noun, lex["objects"])),
            verbs=tuple(map(parse_verb, lex["verbs"])),
            places=tuple(map(parse_phrase, lex["places"])),
            adjectives=tuple(map(parse_adjective, lex["adjectives"])),
            frames=tuple(map(parse_phrase, lex["frames"])),
        )
    return out


LEXICON: dict[str, Category] = _build_categories()


# ------------------------------------------------------------------------------------- content


@dataclass(frozen=True)
class Content:
    """What a sentence says, independent of language (indices into its category's lexicon and
    the shared lists; None = slot left out)."""

    category: str
    subject: int
    subject_adj: int | None  # into PERSON_ADJECTIVES
    subject_plural: bool
    verb: int
    object: int
    object_adj: int | None  # into the category's adjectives
    object_det: Determiner
    object_count: int  # 1, or 2..4 with "num"
    place: int | None
    time: int | None  # into TIMES
    time_front: bool
    manner: int | None  # into MANNERS
    frame: int | None  # into the category's frames


def _subject(c: Content) -> tuple[Noun, Adjective | None, Determiner]:
    """The subject is always definite: "the captain", "the sailors"."""
    adj = None if c.subject_adj is None else PERSON_ADJECTIVES[c.subject_adj]
    return LEXICON[c.category].subjects[c.subject], adj, "defpl" if c.subject_plural else "def"


def _object(c: Content) -> tuple[Noun, Adjective | None, Determiner, int]:
    cat = LEXICON[c.category]
    adj = None if c.object_adj is None else cat.adjectives[c.object_adj]
    return cat.objects[c.object], adj, c.object_det, c.object_count


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---- English

_AN_EXCEPTIONS = ("uni", "use", "usu", "eu", "one")  # vowel letter, consonant sound
_AN_SILENT_H = ("hour", "honest", "honor", "heir")


def _en_article(next_word: str) -> str:
    w = next_word.lower()
    if w.startswith(_AN_SILENT_H):
        return "an"
    return "an" if w[:1] in "aeiou" and not w.startswith(_AN_EXCEPTIONS) else "a"


def _en_np(noun: Noun, adj: Adjective | None, det: Determiner, count: int) -> str:
    plural = det in ("defpl", "num")
    head = (f"{adj.en} " if adj else "") + noun.en[1 if plural else 0]
    if det == "indef":
        return f"{_en_article(head)} {head}"
    if det == "num":
        return f"{NUMBERS[count][0]} {head}"
    return f"the {head}"


def realise_en(c: Content) -> str:
    cat = LEXICON[c.category]
    subj = _en_np(*_subject(c), 1)
    obj = _en_np(*_object(c))
    words: list[str] = []
    time = TIMES[c.time].en if c.time is not None else None
    if c.frame is not None:
        words.append(cat.frames[c.frame].en + ",")
    elif time and c.time_front:
        words.append(time)
        time = None
    words.append(subj)
    if c.manner is not None:
        words.append(MANNERS[c.manner].en)
    words += [cat.verbs[c.verb].en, obj]
    if c.place is not None:
        words.append(cat.places[c.place].en)
    if time:
        words.append(time)
    return _capitalise(" ".join(words)) + "."


# ---- German

_DE_ARTICLES = {
    ("def", "nom"): {"m": "der", "f": "die", "n": "das", "pl": "die"},
    ("def", "acc"): {"m": "den", "f": "die", "n": "das", "pl": "die"},
    ("indef", "nom"): {"m": "ein", "f": "eine", "n": "ein"},
    ("indef", "acc"): {"m": "einen", "f": "eine", "n": "ein"},
}
# adjective endings: weak after the definite article, mixed after ein/eine, strong after numerals
_DE_ENDINGS = {
    ("def", "nom"): {"m": "e", "f": "e", "n": "e", "pl": "en"},
    ("def", "acc"): {"m": "en", "f": "e", "n": "e", "pl": "en"},
    ("indef", "nom"): {"m": "er", "f": "e", "n": "es"},
    ("indef", "acc"): {"m": "en", "f": "e", "n": "es"},
    ("num", "nom"): {"pl": "e"},
    ("num", "acc"): {"pl": "e"},
}


def _de_adj(stem: str, ending: str) -> str:
    return (stem[:-1] if stem.endswith("e") else stem) + ending


def _de_np(noun: Noun, adj: Adjective | None, det: Determiner, count: int, case: str) -> str:
    gender, sg, pl, weak = noun.de
    plural = det in ("defpl", "num")
    g = "pl" if plural else gender
    kind = "def" if det == "defpl" else det
    if plural:
        form = pl
    elif weak and case != "nom":
        form = pl  # weak masculines: den Piloten, den Jungen (= the plural form)
    else:
        form = sg
    words = [NUMBERS[count][1]] if det == "num" else [_DE_ARTICLES[(kind, case)][g]]
    if adj:
        words.append(_de_adj(adj.de, _DE_ENDINGS[(kind, case)][g]))
    words.append(form)
    return " ".join(words)


def realise_de(c: Content) -> str:
    cat = LEXICON[c.category]
    subj = _de_np(*_subject(c), 1, "nom")
    obj = _de_np(*_object(c), "acc")
    verb = cat.verbs[c.verb].de[1 if c.subject_plural else 0]
    time = TIMES[c.time].de if c.time is not None else None
    front = None
    if c.frame is not None:
        front = cat.frames[c.frame].de
    elif time and c.time_front:
        front, time = time, None
    middle = [x for x in (time, MANNERS[c.manner].de if c.manner is not None else None) if x]
    place = [cat.places[c.place].de] if c.place is not None else []
    if front:  # verb second: the fronted adverbial, the verb, then the subject
        words = [front, verb, subj, *middle, obj, *place]
    else:
        words = [subj, verb, *middle, obj, *place]
    return _capitalise(" ".join(words)) + "."


# ---- French

_FR_VOWELS = "aeiouyàâäéèêëîïôöùûüœh"


def _fr_np(noun: Noun, adj: Adjective | None, det: Determiner, count: int) -> str:
    gender, sg, pl = noun.fr
    plural = det in ("defpl", "num")
    head = pl if plural else sg
    if adj:
        head += " " + adj.fr[(2 if plural else 0) + (gender == "f")]
    if det == "indef":
        return ("une " if gender == "f" else "un ") + head
    if det == "num":
        return f"{NUMBERS[count][2]} {head}"
    if plural:
        return "les " + head
    if sg[:1].lower() in _FR_VOWELS:
        return "l'" + head
    return ("la " if gender == "f" else "le ") + head


def realise_fr(c: Content) -> str:
    cat = LEXICON[c.category]
    subj = _fr_np(*_subject(c), 1)
    obj = _fr_np(*_object(c))
    time = TIMES[c.time].fr if c.time is not None else None
    words: list[str] = []
    if c.frame is not None:
        words.append(cat.frames[c.frame].fr + ",")
    elif time and c.time_front:
        words.append(time + ",")
        time = None
    words += [subj, "ont" if c.subject_plural else "a"]
    if c.manner is not None:  # -ment adverbs sit between auxiliary and participle
        words.append(MANNERS[c.manner].fr)
    words += [cat.verbs[c.verb].fr, obj]
    if c.place is not None:
        words.append(cat.places[c.place].fr)
    if time:
        words.append(time)
    return _capitalise(" ".join(words)) + "."


# ---- Persian


def _fa_ezafe(word: str) -> str:
    """The ezafe as written: -ye after a final silent h (with ZWNJ), -ye after a final alef or
    vav (a vowel), unwritten after consonants and after final ye. A final h after alef or vav is
    pronounced (گیاه giyâh, کلاه, کارآگاه, کوه), a consonant, so it takes no written ezafe."""
    if word.endswith("ه") and not word.endswith(("اه", "وه")):
        return word + ZWNJ + "ی"
    if word.endswith(("ا", "و")):
        return word + "ی"
    return word


def _fa_np(noun: Noun, adj: Adjective | None, det: Determiner, count: int, obj: bool) -> str:
    head = noun.fa[1] if det == "defpl" else noun.fa[0]  # numerals take the singular noun
    if adj:
        head = f"{_fa_ezafe(head)} {adj.fa}"
    if det == "indef":
        head = "یک " + head
    elif det == "num":
        head = f"{NUMBERS[count][3]} {head}"
    elif obj:  # a definite direct object is marked with râ
        head += " را"
    return head


def realise_fa(c: Content) -> str:
    cat = LEXICON[c.category]
    noun = cat.subjects[c.subject]
    subj = _fa_np(*_subject(c), 1, False)
    obj = _fa_np(*_object(c), True)
    verb = cat.verbs[c.verb].fa
    if c.subject_plural and noun.human:  # inanimate plural subjects keep a singular verb
        verb += "ند"
    words: list[str] = []
    if c.frame is not None:
        words.append(cat.frames[c.frame].fa + "،")
    words.append(subj)
    if c.time is not None:
        words.append(TIMES[c.time].fa)
    if c.place is not None:
        words.append(cat.places[c.place].fa)
    if c.manner is not None:
        words.append(MANNERS[c.manner].fa)
    words += [obj, verb]
    return " ".join(words) + "."


# ---- Chinese


def _zh_np(noun: Noun, adj: Adjective | None, det: Determiner, count: int, subject: bool) -> str:
    word, classifier = noun.zh
    head = (adj.zh if adj else "") + word
    if subject:
        if det == "defpl":
            return head + "们" if noun.human else "那些" + head
        return head
    if det == "indef":
        return "一" + classifier + head
    if det == "num":
        return NUMBERS[count][4] + classifier + head
    if det == "defpl":
        return "那些" + head
    return "那" + classifier + head


def realise_zh(c: Content) -> str:
    cat = LEXICON[c.category]
    subj = _zh_np(*_subject(c), 1, True)
    obj = _zh_np(*_object(c), False)
    out = cat.frames[c.frame].zh + "，" if c.frame is not None else ""
    out += subj
    if c.time is not None:
        out += TIMES[c.time].zh
    if c.place is not None:
        out += cat.places[c.place].zh
    if c.manner is not None:
        out += MANNERS[c.manner].zh
    return out + cat.verbs[c.verb].zh + "了" + obj + "。"


REALISERS = {"en": realise_en, "de": realise_de, "fr": realise_fr, "fa": realise_fa, "zh": realise_zh}


def realise(c: Content) -> dict[str, str]:
    return {lang: fn(c) for lang, fn in REALISERS.items()}


# ------------------------------------------------------------------------------------- sampling


def sample_content(category: str, rng: np.random.Generator) -> Content:
    """One content with each optional slot present at a fixed rate: about 9 English words on
    average, several content slots, so same-template sentences differ in their content words."""
    cat = LEXICON[category]

    def maybe(p: float, n: int) -> int | None:
        return int(rng.integers(n)) if rng.random() < p else None

    det: Determiner = ("def", "indef", "num", "defpl")[int(rng.choice(4, p=[0.3, 0.35, 0.2, 0.15]))]
    return Content(
        category=category,
        subject=int(rng.integers(len(cat.subjects))),
        subject_adj=maybe(0.4, len(PERSON_ADJECTIVES)),
        subject_plural=bool(rng.random() < 0.2),
        verb=int(rng.integers(len(cat.verbs))),
        object=int(rng.integers(len(cat.objects))),
        object_adj=maybe(0.65, len(cat.adjectives)),
        object_det=det,
        object_count=int(rng.integers(2, 5)) if det == "num" else 1,
        place=maybe(0.7, len(cat.places)),
        time=maybe(0.5, len(TIMES)),
        time_front=bool(rng.random() < 0.5),
        manner=maybe(0.3, len(MANNERS)),
        frame=maybe(0.15, len(cat.frames)),
    )


@dataclass(frozen=True)
class Sentence:
    index: int
    category: str
    content: Content
    texts: dict[str, str]  # language -> sentence

    @property
    def en(self) -> str:
        return self.texts["en"]


def english_words(text: str) -> int:
    return len(text.split())


def generate(n: int, seed: int = 0) -> list[Sentence]:
    """``n`` distinct parallel sentences, categories in turn (balanced), deterministic in
    (n, seed) and prefix-stable: the first k sentences do not depend on n.

    A draw outside 6-12 English words or repeating an earlier sentence is redrawn from the same
    per-sentence generator, so the result depends on nothing but the seed and the index.
    """
    return list(iter_sentences(n, seed))


def iter_sentences(n: int, seed: int = 0) -> Iterator[Sentence]:
    seen: set[str] = set()
    for i in range(n):
        category = CATEGORIES[i % len(CATEGORIES)]
        rng = seeded_rng("clasp_sentence", seed, i)
        for _ in range(1000):
            content = sample_content(category, rng)
            texts = realise(content)
            if MIN_WORDS <= english_words(texts["en"]) <= MAX_WORDS and texts["en"] not in seen:
                break
        else:  # pragma: no cover - the content space is far larger than any corpus asked for
            raise RuntimeError(f"no new sentence for index {i} (category {category}) in 1000 draws")
        seen.add(texts["en"])
        yield Sentence(i, category, content, texts)
