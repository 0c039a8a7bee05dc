"""Checks on one translated line, the way a reader would judge it (used by pipelines.translate and bench/mt.py).

* ``is_untranslated``: the source copied back, or mostly not in the target language;
* ``mixed_script_words``: Latin letters inside a Cyrillic word or the reverse ("argueют"), or another script glued
  to a Cyrillic word ("этом房间里");
* ``foreign_script``: letters of a script the target is not written in and that is not Latin: Chinese leaking into
  Russian ("В этом房间里 никто..." -> "房间里"), Cyrillic in Spanish, Arabic, Thai, Greek words...; a lone Greek
  letter is a symbol (π, Δx, α-частицы) and passes. ``without_foreign_script`` cuts such runs out where that
  leaves whole words;
* ``latin_leftovers``: lower-case Latin words left in a target that does not use Latin letters
  (names and brands are allowed: capitalised words, and the glossary's terms);
* ``length_off``: a translation much shorter or longer than its source (a dropped clause, a runaway answer);
* ``dropped_negation``: the source says "not" and the translation has no negation at all ("ask not what your
  country can do" -> "спросите, что ваша страна может сделать": the meaning turned round; chrF barely sees it).

Each returns what it found, so a retry hint can name it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from pipelines.languages import LANGUAGE_SCRIPT, letter_script, script_ratio, written_scripts

WORD = re.compile(r"[^\W\d_]+")
_TOKEN = re.compile(r"\w+")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+")
# Scripts that pack a word into one or two characters: the character-length ratio says nothing there.
_DENSE_SCRIPTS = {"cjk", "hangul", "thai"}
# Alphabets with look-alike letters: a run of one glued to a word's letters is a broken word ("habitaciоn" with a
# Cyrillic о), not an insert that can be cut out.
_LOOKALIKE_SCRIPTS = frozenset({"latin", "cyrillic", "greek"})
# Flags of the soft checks: after the retries the model's last answer is kept (better than the source), flagged
# ("foreign_script": the last answer whose foreign letters could be cut out, cut); the report lists them in
# quality_flagged and a re-dub edit clears them.
SOFT_FLAGS = ("latin_words", "length_ratio", "negation", "foreign_script")
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
    """Words that mix Cyrillic letters with Latin ones, e.g. "argueют" or "Mосква" (a Latin M), or with letters
    of any other script, e.g. "этом房间里" (Chinese glued to a Russian word).

    A reader sees these as broken words; a hyphenated compound ("IT-отдел") is two words and
    is not flagged. Latin means a-z here, so a stress written with a Latin "ó" is no mix.
    """
    found = []
    for word in WORD.findall(text):
        latin = any("a" <= c.casefold() <= "z" for c in word)
        cyrillic = any("\u0400" <= c <= "\u04ff" for c in word)
        other = any(letter_script(c) not in (None, "latin", "cyrillic") for c in word)
        if cyrillic and (latin or other):
            found.append(word)
    return found


def _foreign_runs(text: str, target_language: str) -> list[tuple[int, int]]:
    """(start, end) of each run of letters in a script that ``target_language`` is not written in (see
    languages.written_scripts; Latin is always allowed); a combining mark stays with its letter's run. A run of
    one Greek letter is a symbol (π, Δx, α-частицы), not a slip, and is left out."""
    allowed = written_scripts(target_language)
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, ch in enumerate(text):
        if start is not None and unicodedata.category(ch).startswith("M"):
            continue
        script = letter_script(ch)
        foreign = script is not None and script not in allowed
        if foreign and start is None:
            start = i
        elif not foreign and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(text)))
    return [(a, b) for a, b in runs if not (b - a == 1 and letter_script(text[a]) == "greek")]


def foreign_script(text: str, target_language: str) -> list[str]:
    """The runs of letters in ``text`` written in a script ``target_language`` does not use, Latin aside: "房间里"
    in "В этом房间里 никто не будет совершать эту ошибку" for ru, "Привет" in a Spanish line, never kana or Han
    in a Japanese one. Latin stays allowed everywhere (names, brands; lower-case words are latin_leftovers' job)."""
    return [text[a:b] for a, b in _foreign_runs(text, target_language)]


def _wide_punctuation(ch: str) -> bool:
    """A full-width punctuation mark or space ("。", "，", "　"): it belongs to the CJK run before it."""
    return unicodedata.category(ch)[0] in "PZ" and unicodedata.east_asian_width(ch) in "FW"


def without_foreign_script(text: str, target_language: str) -> str | None:
    """``text`` with its foreign_script runs cut out (with the wide punctuation right after them, "。", "，") and
    the spacing tidied; None when a run cannot go: one of an alphabet with look-alike letters (Latin, Cyrillic,
    Greek) glued to a word's letters, whose removal would leave a broken word. Whether the rest still says the
    line is the caller's judgement (pipelines.translate runs its checks on it again)."""
    parts, last = [], 0
    for a, b in _foreign_runs(text, target_language):
        glued = (a > 0 and text[a - 1].isalpha()) or (b < len(text) and text[b].isalpha())
        if glued and letter_script(text[a]) in _LOOKALIKE_SCRIPTS:
            return None
        while b < len(text) and _wide_punctuation(text[b]):
            b += 1
        parts.append(text[last:a])
        last = b
    parts.append(text[last:])
    cut = re.sub(r"\(\s*\)|\[\s*\]|«\s*»|\"\s*\"", "", "".join(parts))
    cut = re.sub(r"\s+([,.;:!?…])", r"\1", cut)
    return re.sub(r"\s{2,}", " ", cut).strip()


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
