"""Text the engines can say: numbers, dates, ordinals, percentages, currency, units, abbreviations and a few
symbols spelled out in the target language before synthesis.

Measured first (docs/BENCHMARKS.md "TTS engines: mbrola, OpenAI-compatible speech, text normalisation"):
espeak-ng (and so mbrola, piper and Kokoro, which take espeak-ng's phonemes) reads plain integers itself, but
reads "3,5 млн" as "три, пять эм эль эн", "$20" as "dollar twenty", "15%" in Russian without case agreement,
"3,5 kg" in German as "ka ge", German "am 12. Mai" as a cardinal; RHVoice drops or mangles several of these.

* Russian: ``ru-normalizr`` (MIT; pymorphy3 under it), which gets case and gender agreement right ("в две
  тысячи двадцать четвёртом году", "пятнадцать процентов из трёх с половиной миллионов"). ``num2words``
  alone gives nominative forms only ("в две тысячи двадцать четыре году").
* en, es, de, fr, it, pt: a few per-language rules here around ``num2words`` (LGPL) for the words.
* Any other language: unchanged (espeak-ng reads numbers itself in ~100 languages).

``normalize`` is pure and deterministic; TTSStage keys its clip cache on the text it actually speaks, so
changing these rules re-synthesises exactly the clips whose spoken text changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import cast

LANGUAGES = ("ru", "en", "es", "de", "fr", "it", "pt")


@dataclass(frozen=True)
class _Lang:
    code: str
    decimal: str  # the decimal separator in written numbers
    group: str  # thousands separators (regex character class body)
    point: str  # the word for the decimal separator
    minus: str
    percent: str
    and_: str
    plus: str
    one: str  # "1" before a unit or currency ("un kilo", "ein Euro")
    time: tuple[str, str]  # "{h} ... {m}", "{h} ..." (minutes zero)
    currency: dict[str, tuple[str, str]]  # symbol/code -> (singular, plural)
    units: dict[str, tuple[str, str]]
    abbreviations: dict[str, str] = field(default_factory=dict)
    months: tuple[str, ...] = ()


def _cur(
    dollar: tuple[str, str], euro: tuple[str, str], pound: tuple[str, str], real: tuple[str, str]
) -> dict[str, tuple[str, str]]:
    return {
        "$": dollar,
        "US$": dollar,
        "USD": dollar,
        "€": euro,
        "EUR": euro,
        "£": pound,
        "GBP": pound,
        "R$": real,
        "BRL": real,
    }


def _units(kg: tuple[str, str], g: tuple[str, str], km: tuple[str, str], m: tuple[str, str], cm: tuple[str, str],
           l: tuple[str, str], kmh: tuple[str, str], deg: tuple[str, str]) -> dict[str, tuple[str, str]]:  # fmt: skip
    return {"km/h": kmh, "°C": deg, "kg": kg, "km": km, "cm": cm, "g": g, "m": m, "l": l}


LANGS: dict[str, _Lang] = {
    "en": _Lang(
        "en", ".", ",", "point", "minus", "percent", "and", "plus", "one", ("{h} {m}", "{h} o'clock"),
        _cur(("dollar", "dollars"), ("euro", "euros"), ("pound", "pounds"), ("real", "reais")),
        _units(("kilogram", "kilograms"), ("gram", "grams"), ("kilometre", "kilometres"), ("metre", "metres"),
               ("centimetre", "centimetres"), ("litre", "litres"), ("kilometre per hour", "kilometres per hour"),
               ("degree Celsius", "degrees Celsius")),
        {"e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "Mr.": "Mister", "Mrs.": "Missus",
         "Dr.": "Doctor", "vs.": "versus", "approx.": "approximately", "No.": "number"},
        ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
         "November", "December"),
    ),
    "es": _Lang(
        "es", ",", ".", "coma", "menos", "por ciento", "y", "más", "un", ("{h} y {m}", "{h} en punto"),
        _cur(("dólar", "dólares"), ("euro", "euros"), ("libra", "libras"), ("real", "reales")),
        _units(("kilo", "kilos"), ("gramo", "gramos"), ("kilómetro", "kilómetros"), ("metro", "metros"),
               ("centímetro", "centímetros"), ("litro", "litros"), ("kilómetro por hora", "kilómetros por hora"),
               ("grado", "grados")),
        {"p. ej.": "por ejemplo", "etc.": "etcétera", "Sr.": "señor", "Sra.": "señora", "Dr.": "doctor",
         "Dra.": "doctora", "núm.": "número", "aprox.": "aproximadamente", "EE. UU.": "Estados Unidos"},
    ),
    "de": _Lang(
        "de", ",", ".", "Komma", "minus", "Prozent", "und", "plus", "ein", ("{h} Uhr {m}", "{h} Uhr"),
        _cur(("Dollar", "Dollar"), ("Euro", "Euro"), ("Pfund", "Pfund"), ("Real", "Real")),
        _units(("Kilogramm", "Kilogramm"), ("Gramm", "Gramm"), ("Kilometer", "Kilometer"), ("Meter", "Meter"),
               ("Zentimeter", "Zentimeter"), ("Liter", "Liter"), ("Kilometer pro Stunde", "Kilometer pro Stunde"),
               ("Grad", "Grad")),
        {"z. B.": "zum Beispiel", "z.B.": "zum Beispiel", "usw.": "und so weiter", "bzw.": "beziehungsweise",
         "ca.": "circa", "Nr.": "Nummer", "Dr.": "Doktor", "d. h.": "das heißt", "d.h.": "das heißt",
         "u. a.": "unter anderem", "Str.": "Straße", "Mio.": "Millionen", "Mrd.": "Milliarden"},
        ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
         "November", "Dezember", "Jahrhundert", "Platz", "Stock", "Mal"),
    ),
    "fr": _Lang(
        "fr", ",", " \u00a0\u202f.", "virgule", "moins", "pour cent", "et", "plus", "un", ("{h} heures {m}", "{h} heures"),
        _cur(("dollar", "dollars"), ("euro", "euros"), ("livre", "livres"), ("réal", "réaux")),
        _units(("kilo", "kilos"), ("gramme", "grammes"), ("kilomètre", "kilomètres"), ("mètre", "mètres"),
               ("centimètre", "centimètres"), ("litre", "litres"), ("kilomètre heure", "kilomètres heure"),
               ("degré", "degrés")),
        {"p. ex.": "par exemple", "etc.": "et cetera", "M.": "Monsieur", "Mme": "Madame", "Mlle": "Mademoiselle",
         "env.": "environ", "n°": "numéro", "Dr": "Docteur"},
    ),
    "it": _Lang(
        "it", ",", ".", "virgola", "meno", "per cento", "e", "più", "un", ("{h} e {m}", "{h}"),
        _cur(("dollaro", "dollari"), ("euro", "euro"), ("sterlina", "sterline"), ("real", "real")),
        _units(("chilo", "chili"), ("grammo", "grammi"), ("chilometro", "chilometri"), ("metro", "metri"),
               ("centimetro", "centimetri"), ("litro", "litri"), ("chilometro orario", "chilometri orari"),
               ("grado", "gradi")),
        {"ecc.": "eccetera", "Sig.ra": "signora", "Sig.": "signor", "Dott.": "dottor", "ad es.": "ad esempio",
         "n°": "numero"},
    ),
    "pt": _Lang(
        "pt", ",", ".", "vírgula", "menos", "por cento", "e", "mais", "um", ("{h} e {m}", "{h} horas"),
        _cur(("dólar", "dólares"), ("euro", "euros"), ("libra", "libras"), ("real", "reais")),
        _units(("quilo", "quilos"), ("grama", "gramas"), ("quilômetro", "quilômetros"), ("metro", "metros"),
               ("centímetro", "centímetros"), ("litro", "litros"), ("quilômetro por hora", "quilômetros por hora"),
               ("grau", "graus")),
        {"p. ex.": "por exemplo", "etc.": "et cetera", "Sr.": "senhor", "Sra.": "senhora", "Dr.": "doutor",
         "Dra.": "doutora", "nº": "número", "n.º": "número"},
    ),
}  # fmt: skip

# Ordinal suffixes written after the digits, per language.
ORDINAL_SUFFIX = {
    "en": r"st|nd|rd|th",
    "fr": r"er|re|ère|ème|e",
    "es": r"\.?[ºª°]",
    "it": r"\.?[ºª°]",
    "pt": r"\.?[ºª°]",
}


def _words(n: int, code: str, to: str = "cardinal") -> str:
    """``n`` in words; digit by digit where num2words cannot (past its largest number)."""
    from num2words import num2words

    try:
        return str(num2words(n, lang=code, to=to))
    except (OverflowError, NotImplementedError, ValueError):
        return " ".join(str(num2words(int(d), lang=code)) for d in str(n))


def _number(lang: _Lang) -> str:
    """A written number: optional thousands groups, optional decimal part (named groups int, frac)."""
    group = f"[{re.escape(lang.group)}]"
    return rf"(?P<int>\d{{1,3}}(?:{group}\d{{3}})+|\d+)(?:{re.escape(lang.decimal)}(?P<frac>\d+))?"


def _say_number(m: re.Match[str], lang: _Lang) -> str:
    whole = int(re.sub(r"\D", "", m.group("int")))
    text = _words(whole, lang.code)
    frac = m.group("frac")
    if frac:
        lead = len(frac) - len(frac.lstrip("0"))
        digits = " ".join([_words(0, lang.code)] * lead + ([_words(int(frac), lang.code)] if frac.strip("0") else []))
        text = f"{text} {lang.point} {digits}"
    return text


def _is_one(m: re.Match[str]) -> bool:
    return m.group("int") == "1" and not m.group("frac")


def _const(word: str) -> Callable[[re.Match[str]], str]:
    return lambda _m: word


def _rules(lang: _Lang) -> list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]]:
    num = _number(lang)

    def say(m: re.Match[str]) -> str:
        return _say_number(m, lang)

    rules: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = []
    # Abbreviations (longest first), only as whole tokens.
    for abbr in sorted(lang.abbreviations, key=len, reverse=True):
        rules.append((re.compile(rf"(?<!\w){re.escape(abbr)}(?!\w)"), _const(lang.abbreviations[abbr])))
    rules.append((re.compile(rf"(?:(?<=\s)|^)[-\u2212](?={num})"), lambda _m: f"{lang.minus} "))
    # Currency, before or after the amount; cents spoken after the unit.
    codes = "|".join(re.escape(c) for c in sorted(lang.currency, key=len, reverse=True))

    def money(m: re.Match[str]) -> str:
        sg, pl = lang.currency[m.group("cur")]
        whole = int(re.sub(r"\D", "", m.group("int")))
        text = f"{lang.one} {sg}" if whole == 1 else f"{_words(whole, lang.code)} {pl}"
        frac = m.group("frac")
        if frac and int(frac):
            text += f" {_words(int(frac.ljust(2, '0')[:2]), lang.code)}"
        return text

    rules.append((re.compile(rf"(?<![\w$])(?P<cur>{codes})\s?{num}(?!\w)"), money))
    rules.append((re.compile(rf"(?<![\w.,]){num}\s?(?P<cur>{codes})(?![\w$])"), money))
    # Percentages.
    rules.append((re.compile(rf"(?<![\w.,]){num}\s?%"), lambda m: f"{say(m)} {lang.percent}"))
    # Clock times (14:30; French also 14h30).
    hm = r"(?P<h>[01]?\d|2[0-3])(?::|h(?=\d\d))(?P<m>[0-5]\d)"
    if lang.code == "fr":
        hm = r"(?P<h>[01]?\d|2[0-3])(?::|h)(?P<m>[0-5]\d)?"

    def clock(m: re.Match[str]) -> str:
        hour, minute = int(m.group("h")), int(m.group("m") or 0)
        template = lang.time[0] if minute else lang.time[1]
        said = _words(minute, lang.code)
        if lang.code == "en" and minute < 10:
            said = f"oh {said}"  # 9:05 -> "nine oh five"
        return template.format(h=_words(hour, lang.code), m=said)

    after = r"(?:\s?Uhr)?" if lang.code == "de" else ""
    rules.append((re.compile(rf"(?<![\w:.,]){hm}{after}(?![\w:])"), clock))
    # Ordinals with a written suffix (1st, 2e, 3º); German "12." before a month or noun that takes one.
    if lang.code in ORDINAL_SUFFIX:
        rules.append(
            (re.compile(rf"(?<![\w.,])(\d+)(?:{ORDINAL_SUFFIX[lang.code]})(?!\w)"),
             lambda m: _words(int(m.group(1)), lang.code, "ordinal")),
        )  # fmt: skip
    if lang.code == "de":
        nouns = "|".join(lang.months)

        def de_ordinal(m: re.Match[str]) -> str:
            word = _words(int(m.group("n")), "de", "ordinal")
            return f"{m.group('pre')}{word}{'n' if m.group('pre').strip() else ''} "

        rules.append(
            (re.compile(rf"(?P<pre>\b(?i:am|vom|zum|im|beim|dem|den|bis zum)\s+|)(?P<n>\d{{1,2}})\.\s+(?=(?:{nouns})\b)"),
             de_ordinal),
        )  # fmt: skip
    if lang.code == "en":  # "12 May" -> "the twelfth of May"; "May 12" -> "May twelfth"
        months = "|".join(lang.months)
        rules.append(
            (re.compile(rf"(?<![\w.,])(\d{{1,2}})\s+(?=(?:{months})\b)"),
             lambda m: f"the {_words(int(m.group(1)), 'en', 'ordinal')} of "),
        )  # fmt: skip
        rules.append(
            (re.compile(rf"\b((?:{months}))\s+(\d{{1,2}})(?![\w.:]|[.,]\d)"),
             lambda m: f"{m.group(1)} {_words(int(m.group(2)), 'en', 'ordinal')}"),
        )  # fmt: skip
        rules.append(
            (re.compile(r"(?<![\w.,$])(1[1-9]\d\d|20\d\d)(?!\w|%|[.,]\d)"),
             lambda m: _words(int(m.group(1)), "en", "year")),
        )  # fmt: skip
    # Units after a number.
    unit_names = "|".join(re.escape(u) for u in sorted(lang.units, key=len, reverse=True))

    def unit(m: re.Match[str]) -> str:
        sg, pl = lang.units[m.group("unit")]
        return f"{lang.one} {sg}" if _is_one(m) else f"{say(m)} {pl}"

    rules.append((re.compile(rf"(?<![\w.,]){num}\s?(?P<unit>{unit_names})(?![\w/])"), unit))
    # Symbols.
    rules.append((re.compile(r"\s&\s"), lambda _m: f" {lang.and_} "))
    rules.append((re.compile(r"(?<=\d)\s?\+\s?(?=\d)"), lambda _m: f" {lang.plus} "))
    # Every other number, then a percent sign left over (after a number not written the language's way).
    rules.append((re.compile(rf"(?<![\w]){num}(?!\w)"), say))
    rules.append((re.compile(r"\s?%"), lambda _m: f" {lang.percent}"))
    return rules


@cache
def _compiled(code: str) -> list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]]:
    return _rules(LANGS[code])


@lru_cache(maxsize=1)
def _russian() -> Callable[[str], str]:
    from ru_normalizr import normalize as ru_normalize

    return cast("Callable[[str], str]", ru_normalize)


def normalize(text: str, language: str) -> str:
    """``text`` with numbers, dates, currency, units and abbreviations spelled out in ``language``
    (ISO 639-1; a region suffix is ignored). Languages without rules come back unchanged."""
    code = language.strip().lower().replace("_", "-").split("-")[0]
    if code == "ru":
        return _russian()(text)
    if code not in LANGS:
        return text
    for pattern, replace in _compiled(code):
        text = pattern.sub(replace, text)
    return re.sub(r"\s{2,}", " ", text).strip()
