"""Prompts of the translate stage: the system prompt (in English, or in the target language where we have
one) and a short few-shot example per language pair. Both are constant per pair, so llama.cpp reuses its
prompt cache across the batches of a job. What was tried and kept is in docs/BENCHMARKS.md (issue 16).
"""

from __future__ import annotations

import json

from pipelines.languages import language_name

Message = dict[str, str]

# The system prompt written in the target language, with the source language's name in that language.
_NATIVE: dict[str, tuple[str, dict[str, str]]] = {
    "ru": (
        ("Ты профессиональный переводчик субтитров. Переводи с {source} на русский.\n"
        "- Пиши каждую строку по-русски; не копируй исходный текст.\n"
        "- Сохраняй смысл; пиши естественно, как говорят, и достаточно кратко для озвучки.\n"
        "- Сохраняй имена и числа.\n"
        "- Выводи только JSON: те же ключи, у каждого — перевод на русский."),
        {"en": "английского", "es": "испанского", "de": "немецкого", "fr": "французского"},
    ),
    "es": (
        ("Eres un traductor profesional de subtítulos. Traduce del {source} al español.\n"
        "- Escribe cada línea en español; nunca copies el texto original.\n"
        "- Conserva el sentido; usa un estilo hablado y natural, lo bastante breve para el doblaje.\n"
        "- Conserva los nombres y los números.\n"
        "- Responde solo con JSON: las mismas claves, cada una con su traducción al español."),
        {"en": "inglés", "ru": "ruso", "de": "alemán", "fr": "francés"},
    ),
    "de": (
        ("Du bist ein professioneller Untertitel-Übersetzer. Übersetze aus dem {source} ins Deutsche.\n"
        "- Schreibe jede Zeile auf Deutsch; kopiere nie den Ausgangstext.\n"
        "- Behalte die Bedeutung; schreibe natürlich gesprochen und knapp genug für die Synchronisation.\n"
        "- Behalte Namen und Zahlen bei.\n"
        "- Gib nur JSON aus: dieselben Schlüssel, jeweils mit der deutschen Übersetzung."),
        {"en": "Englischen", "ru": "Russischen", "es": "Spanischen", "fr": "Französischen"},
    ),
}

# One short exchange, the same two lines in each language: an idiom and a question with a name and a year.
_EXAMPLES: dict[str, tuple[str, str]] = {
    "en": ("Honestly, I didn't see that coming.", "Dr. Novak moved to Edinburgh in 2015, didn't she?"),
    "ru": ("Честно говоря, я такого не ожидал.", "Доктор Новак ведь переехала в Эдинбург в 2015 году?"),
    "es": ("La verdad, no me lo esperaba.", "La doctora Novak se mudó a Edimburgo en 2015, ¿verdad?"),
    "de": ("Ehrlich gesagt habe ich das nicht kommen sehen.", "Dr. Novak ist 2015 nach Edinburgh gezogen, oder?"),
}


def system_prompt(source_language: str, target_language: str, *, native: bool = False) -> str:
    """The system prompt of a pair; ``native`` writes it in the target language where one is written here."""
    if native and target_language in _NATIVE and source_language in _NATIVE[target_language][1]:
        template, names = _NATIVE[target_language]
        return template.format(source=names[source_language])
    source, target = language_name(source_language), language_name(target_language)
    return (
        f"You are a professional subtitle translator. Translate from {source} to {target}.\n"
        f"- Write every line in {target}; never copy the {source} text.\n"
        "- Keep the meaning; use a natural spoken style, concise enough to be dubbed.\n"
        "- Keep names and numbers.\n"
        f"- Output only JSON: the same keys, each with its {target} translation."
    )


# Targets where the example lowered chrF on bench/mt.py (en→de: 51.83 without, 48.28 with, whole set).
_NO_EXAMPLE_TARGETS = {"de"}


def few_shot(source_language: str, target_language: str) -> list[Message]:
    """A user/assistant exchange translating the example lines; empty where a language has none here, and
    for the targets of _NO_EXAMPLE_TARGETS."""
    if source_language not in _EXAMPLES or target_language not in _EXAMPLES or target_language in _NO_EXAMPLE_TARGETS:
        return []
    lines = {str(n): text for n, text in enumerate(_EXAMPLES[source_language], start=1)}
    answer = {str(n): text for n, text in enumerate(_EXAMPLES[target_language], start=1)}
    user = f"Translate to {language_name(target_language)}:\n{json.dumps(lines, ensure_ascii=False)}"
    return [{"role": "user", "content": user}, {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)}]
