"""Language codes: Whisper's set (ISO 639-1 mostly) with English names for prompts and UIs."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from pipelines.errors import UnknownLanguage

LANGUAGES: dict[str, str] = {
    "en": "English", "zh": "Chinese", "de": "German", "es": "Spanish", "ru": "Russian",
    "ko": "Korean", "fr": "French", "ja": "Japanese", "pt": "Portuguese", "tr": "Turkish",
    "pl": "Polish", "ca": "Catalan", "nl": "Dutch", "ar": "Arabic", "sv": "Swedish",
    "it": "Italian", "id": "Indonesian", "hi": "Hindi", "fi": "Finnish", "vi": "Vietnamese",
    "he": "Hebrew", "uk": "Ukrainian", "el": "Greek", "ms": "Malay", "cs": "Czech",
    "ro": "Romanian", "da": "Danish", "hu": "Hungarian", "ta": "Tamil", "no": "Norwegian",
    "th": "Thai", "ur": "Urdu", "hr": "Croatian", "bg": "Bulgarian", "lt": "Lithuanian",
    "la": "Latin", "mi": "Maori", "ml": "Malayalam", "cy": "Welsh", "sk": "Slovak",
    "te": "Telugu", "fa": "Persian", "lv": "Latvian", "bn": "Bengali", "sr": "Serbian",
    "az": "Azerbaijani", "sl": "Slovenian", "kn": "Kannada", "et": "Estonian", "mk": "Macedonian",
    "br": "Breton", "eu": "Basque", "is": "Icelandic", "hy": "Armenian", "ne": "Nepali",
    "mn": "Mongolian", "bs": "Bosnian", "kk": "Kazakh", "sq": "Albanian", "sw": "Swahili",
    "gl": "Galician", "mr": "Marathi", "pa": "Punjabi", "si": "Sinhala", "km": "Khmer",
    "sn": "Shona", "yo": "Yoruba", "so": "Somali", "af": "Afrikaans", "oc": "Occitan",
    "ka": "Georgian", "be": "Belarusian", "tg": "Tajik", "sd": "Sindhi", "gu": "Gujarati",
    "am": "Amharic", "yi": "Yiddish", "lo": "Lao", "uz": "Uzbek", "fo": "Faroese",
    "ht": "Haitian Creole", "ps": "Pashto", "tk": "Turkmen", "nn": "Nynorsk", "mt": "Maltese",
    "sa": "Sanskrit", "lb": "Luxembourgish", "my": "Myanmar", "bo": "Tibetan", "tl": "Tagalog",
    "mg": "Malagasy", "as": "Assamese", "tt": "Tatar", "haw": "Hawaiian", "ln": "Lingala",
    "ha": "Hausa", "ba": "Bashkir", "jw": "Javanese", "su": "Sundanese", "yue": "Cantonese",
}  # fmt: skip

# Unicode ranges of languages whose script is not Latin; used to catch untranslated output.
SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {
    "cyrillic": ((0x0400, 0x04FF), (0x0500, 0x052F)),
    "greek": ((0x0370, 0x03FF),),
    "arabic": ((0x0600, 0x06FF), (0x0750, 0x077F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
    "hebrew": ((0x0590, 0x05FF),),
    "devanagari": ((0x0900, 0x097F),),
    "thai": ((0x0E00, 0x0E7F),),
    "hangul": ((0xAC00, 0xD7AF), (0x1100, 0x11FF), (0x3130, 0x318F)),
    "cjk": ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x3040, 0x30FF)),
    "armenian": ((0x0530, 0x058F),),
    "georgian": ((0x10A0, 0x10FF),),
}

LANGUAGE_SCRIPT: dict[str, str] = {
    "ru": "cyrillic", "uk": "cyrillic", "bg": "cyrillic", "sr": "cyrillic", "mk": "cyrillic",
    "be": "cyrillic", "kk": "cyrillic", "mn": "cyrillic", "tg": "cyrillic", "ba": "cyrillic",
    "tt": "cyrillic", "el": "greek", "ar": "arabic", "fa": "arabic", "ur": "arabic",
    "ps": "arabic", "sd": "arabic", "he": "hebrew", "yi": "hebrew", "hi": "devanagari",
    "mr": "devanagari", "ne": "devanagari", "sa": "devanagari", "th": "thai", "ko": "hangul",
    "zh": "cjk", "ja": "cjk", "yue": "cjk", "hy": "armenian", "ka": "georgian",
}  # fmt: skip

# The letter scripts (letter_script's names) a language is written in besides Latin, which every language may hold
# (names, brands). From LANGUAGE_SCRIPT, with its "cjk" told apart (Chinese: Han; Japanese: Han and kana; Korean:
# Hangul, whose Han letters are rare enough now to count as a slip), plus the scripts LANGUAGE_SCRIPT has no
# ranges for. A language missing here is written in Latin letters.
_WRITTEN_IN: dict[str, tuple[str, ...]] = {
    **{code: (script,) for code, script in LANGUAGE_SCRIPT.items()},
    "zh": ("han",), "yue": ("han",), "ja": ("han", "kana"), "ko": ("hangul",),
    "uz": ("cyrillic",), "pa": ("gurmukhi", "arabic"), "ta": ("tamil",), "te": ("telugu",), "kn": ("kannada",),
    "ml": ("malayalam",), "bn": ("bengali",), "as": ("bengali",), "gu": ("gujarati",), "si": ("sinhala",),
    "km": ("khmer",), "lo": ("lao",), "my": ("myanmar",), "bo": ("tibetan",), "am": ("ethiopic",),
}  # fmt: skip
# First words of Unicode letter names that are no script of their own, or one under another name.
_NAME_SCRIPT = {"cjk": "han", "ideographic": "han", "kangxi": "han", "hiragana": "kana", "katakana": "kana",
                "katakana-hiragana": "kana", "hentaigana": "kana"}  # fmt: skip
_WIDTH_PREFIXES = ("FULLWIDTH ", "HALFWIDTH ")
# Letters named by their use rather than a script (ª, µ, ℏ, ℵ, math and modifier letters): neutral everywhere.
_NO_SCRIPT = frozenset({
    "feminine", "masculine", "micro", "mathematical", "modifier", "superscript", "subscript", "caron", "euler",
    "planck", "turned", "alef", "bet", "gimel", "dalet", "information", "roman", "vertical", "angstrom",
    "kelvin", "ohm", "double-struck", "script", "black-letter",
})  # fmt: skip


def normalize_language(code: str) -> str:
    """Return the canonical code for ``code`` (case/region-insensitive), or raise UnknownLanguage."""
    key = code.strip().lower().replace("_", "-").split("-")[0]
    if key not in LANGUAGES:
        raise UnknownLanguage(f"unknown language code {code!r}; use an ISO 639-1 code such as en, ru, es")
    return key


def normalize_targets(codes: str | Iterable[str]) -> list[str]:
    """Canonical target codes, first occurrence order, no repeats: ``"ru,ES, ru-RU"`` gives ``["ru", "es"]``.

    A comma-separated string or an iterable of codes; blanks are ignored. Raises UnknownLanguage for an
    unknown code, and when no code is left (an empty target list is never a job).
    """
    items = codes.split(",") if isinstance(codes, str) else list(codes)
    targets = list(dict.fromkeys(normalize_language(c) for c in items if c.strip()))
    if not targets:
        raise UnknownLanguage("no target language given; use ISO 639-1 codes such as ru,es")
    return targets


def language_name(code: str) -> str:
    return LANGUAGES[normalize_language(code)]


def script_ratio(text: str, language: str) -> float | None:
    """Share of letters in ``text`` that are in ``language``'s script; None for Latin-script languages."""
    script = LANGUAGE_SCRIPT.get(language)
    if script is None:
        return None
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    ranges = SCRIPTS[script]
    inside = sum(1 for ch in letters if any(lo <= ord(ch) <= hi for lo, hi in ranges))
    return inside / len(letters)


@lru_cache(maxsize=4096)
def letter_script(ch: str) -> str | None:
    """The script of the letter ``ch`` from its Unicode name, lower case: "latin", "cyrillic", "greek", "han",
    "kana" (hiragana and katakana), "hangul", "arabic", "thai", ...; None for a non-letter, an unnamed one, or a
    letter of no one script (ª, µ, math and modifier letters). Full- and half-width forms count as their script."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    for prefix in _WIDTH_PREFIXES:
        name = name.removeprefix(prefix)
    first = name.split(" ", 1)[0].lower()
    if not first or first in _NO_SCRIPT:
        return None
    return _NAME_SCRIPT.get(first, first)


def written_scripts(language: str) -> frozenset[str]:
    """The letter scripts (letter_script's names) a text in ``language`` may use: Latin and the language's own."""
    return frozenset({"latin", *_WRITTEN_IN.get(normalize_language(language), ())})
