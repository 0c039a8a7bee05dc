"""Checks on one translated line, the way a reader would judge it (used by pipelines.translate and bench/mt.py).

* ``is_untranslated``: the source copied back, or mostly not in the target language;
* ``mixed_script_words``: Latin letters inside a Cyrillic word or the reverse ("argueют");
* ``latin_leftovers``: lower-case Latin words left in a target that does not use Latin letters
  (names and brands are allowed: capitalised words, and the glossary's terms);
* ``length_off``: a translation much shorter or longer than its source (a dropped clause, a runaway answer);
* ``dropped_negation``: the source says "not" and the translation has no negation at all ("ask not what your
  country can do" -> "спросите, что ваша страна может сделать": the meaning turned round; chrF barely sees it).

Each returns what it found, so a retry hint can name it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pipelines.languages import LANGUAGE_SCRIPT, script_ratio

WORD = re.compile(r"[^\W\d_]+")
_TOKEN = re.compile(r"\w+")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+")
# Scripts that pack a word into one or two characters: the character-length ratio says nothing there.
_DENSE_SCRIPTS = {"cjk", "hangul", "thai"}
# Flags of the soft checks: after the retries the model's last answer is kept (better than the source), flagged;
# the report lists them in quality_flagged and a re-dub edit clears them.
SOFT_FLAGS = ("latin_words", "length_ratio", "negation")
MIN_LENGTH_CHECKED = 25  # characters of source below which the length ratio is too noisy to judge


def _normalise(text: str) -> str:
    return " ".join(_TOKEN.findall(text.casefold()))


def name_like(text: str) -> bool:
    """No letters, or up to three capitalised words: numbers and names may stay as they are."""
    words = WORD.findall(text)
    return not words or (len(words) <= 3 and all(w[0].isupper() for w in words))


def _copied_share(source: str, text: str) -> float:
    """Share of the output's long words (4+ letters) found in the source; 0 with under 3 of them."""
    source_words = {w.casefold() for w in WORD.findall(source)}
    long_words = [w.casefold() for w in WORD.findall(text) if len(w) >= 4]
    if len(long_words) < 3:
        return 0.0
    return sum(w in source_words for w in long_words) / len(long_words)


def is_untranslated(source: str, text: str, *, source_language: str, target_language: str) -> bool:
    """True when ``text`` looks like the source left (mostly) untranslated.

    Checks: identical after normalisation; for a non-Latin target script, under half of the
    letters in that script (names copied from the source in capitals don't count); for a Latin
    target, most letters still in a non-Latin source script, or 70%+ of the long words copied.
    Sentences that are only numbers or a few capitalised words (names) are never flagged.
    """
    if source_language == target_language or name_like(source):
        return False
    if _normalise(text) == _normalise(source):
        return True
    kept_names = {w for w in WORD.findall(source) if w[0].isupper()}
    residual = " ".join(w for w in WORD.findall(text) if w not in kept_names)
    ratio = script_ratio(residual, target_language)
    if ratio is not None:
        return bool(residual) and ratio < 0.5
    source_script = script_ratio(text, source_language)
    if source_script is not None:
        return source_script > 0.5
    return _copied_share(source, text) >= 0.7


def mixed_script_words(text: str) -> list[str]:
    """Words that mix Latin and Cyrillic letters, e.g. "argueют" or "Mосква" (a Latin M).

    A reader sees these as broken words; a hyphenated compound ("IT-отдел") is two words and
    is not flagged.
    """
    found = []
    for word in WORD.findall(text):
        latin = any("a" <= c.casefold() <= "z" for c in word)
        cyrillic = any("\u0400" <= c <= "\u04ff" for c in word)
        if latin and cyrillic:
            found.append(word)
    return found


def latin_leftovers(text: str, target_language: str, allowed: Iterable[str] = ()) -> list[str]:
    """Latin-only words of 2+ letters, with no capital, in a ``target_language`` not written in Latin letters.

    Capitalised words (names, brands, "iPhone") and the words of ``allowed`` (glossary terms and their
    translations) pass; a Latin-script target never has leftovers. Mixed words are mixed_script_words' job.
    """
    if LANGUAGE_SCRIPT.get(target_language) is None:
        return []
    ok = {w.casefold() for term in allowed for w in WORD.findall(term)}
    found = []
    for word in WORD.findall(text):
        if _LATIN_WORD.fullmatch(word) and len(word) >= 2 and word.islower() and word.casefold() not in ok:
            found.append(word)
    return found


def length_off(source: str, text: str, *, source_language: str, target_language: str,
               min_ratio: float, max_ratio: float) -> float | None:
    """The length ratio ``len(text) / len(source)`` when it is outside [min_ratio, max_ratio], else None.

    Not judged for a source under MIN_LENGTH_CHECKED characters, for dense scripts (Chinese, Japanese,
    Korean, Thai) on either side, or with a ratio bound of 0 (that bound is off).
    """
    dense = {LANGUAGE_SCRIPT.get(source_language), LANGUAGE_SCRIPT.get(target_language)} & _DENSE_SCRIPTS
    if dense or len(source.strip()) < MIN_LENGTH_CHECKED:
        return None
    ratio = len(text.strip()) / len(source.strip())
    if (min_ratio and ratio < min_ratio) or (max_ratio and ratio > max_ratio):
        return round(ratio, 2)
    return None


# Negation words per language (lower case). English contractions ("didn't", "can't") are matched apart.
_NEGATIONS: dict[str, frozenset[str]] = {
    "en": frozenset({"not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "nowhere", "cannot"}),
    "ru": frozenset({
        "не", "ни", "нет", "нельзя", "никогда", "ничего", "ничто", "ничем", "ничему", "никто", "никого", "никому",
        "никем", "нигде", "никуда", "ниоткуда", "никак", "никакой", "никакая", "никакое", "никакие", "никакого",
        "никаких", "никакому", "нисколько", "отнюдь",
    }),
    "es": frozenset({"no", "nunca", "jamás", "nada", "nadie", "ni", "ningún", "ninguno", "ninguna", "tampoco"}),
    "de": frozenset({
        "nicht", "nie", "niemals", "nichts", "niemand", "kein", "keine", "keinen", "keinem", "keiner", "keines",
        "weder", "nirgends", "nirgendwo",
    }),
    "fr": frozenset({"ne", "n", "pas", "jamais", "rien", "personne", "aucun", "aucune", "ni", "non"}),
    "it": frozenset({"non", "mai", "niente", "nulla", "nessuno", "nessuna", "né"}),
    "pt": frozenset({"não", "nunca", "nada", "ninguém", "nenhum", "nenhuma", "nem", "jamais"}),
}
_EN_CONTRACTION = re.compile(r"\b[a-z]+n[\'’]t\b", re.IGNORECASE)


def negation_words(text: str, language: str) -> list[str] | None:
    """The negation words of ``text`` in ``language``; None for a language without a word list here."""
    words = _NEGATIONS.get(language)
    if words is None:
        return None
    found = [w for w in WORD.findall(text) if w.casefold() in words]
    if language == "en":
        found += _EN_CONTRACTION.findall(text)
    return found


def dropped_negation(source: str, text: str, *, source_language: str, target_language: str) -> list[str]:
    """The source's negation words when the source has one and the translation has none, else [].

    Only "some negation" against "none at all" is judged: languages negate in different places and counts
    ("I can't help but laugh" -> "не могу не смеяться"), and a pair without word lists is never flagged.
    """
    source_neg, target_neg = negation_words(source, source_language), negation_words(text, target_language)
    if source_neg is None or target_neg is None or source_language == target_language:
        return []
    return source_neg if source_neg and not target_neg else []
