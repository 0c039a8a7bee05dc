"""Names kept consistent within a job: find the capitalised names in the source text, ask the model once for
their target form, and hold the answer as a job glossary under the user's glossary (the user's entry wins).

Pure helpers; pipelines.translate makes the one request.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from pipelines.languages import LANGUAGE_SCRIPT, language_name, script_ratio
from pipelines.quality import foreign_script, mixed_script_words

MAX_NAMES = 24
_TOKEN = re.compile(r"[^\W\d_][\w'’-]*")
# Opening a sentence: what a capital after these says nothing about.
_OPENERS = ".!?…:;«»\"“”„(—–-¿¡"
# Lower-case words inside a name ("Ciudad de México", "Ludwig van Beethoven").
_CONNECTORS = {"de", "del", "da", "di", "do", "dos", "van", "von", "der", "den", "la", "le", "du", "y"}
# Capitalised in English but not names; a name request for them would force one case form.
_NOT_NAMES = {
    "i", "i'm", "i'll", "i've", "i'd", "ok", "okay", "mr", "mrs", "ms", "dr",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december",
}  # fmt: skip
# Languages that capitalise every noun: capitals do not single out names there.
_NOUN_CAPITALS = {"de", "lb"}


def candidate_names(
    texts: Sequence[str], source_language: str, *, exclude: Mapping[str, str] | None = None, min_count: int = 1
) -> list[str]:
    """Capitalised words or runs of them ("Thomas Piketty") that do not open a sentence, most frequent first, each
    found at least ``min_count`` times.

    A run that opens a sentence loses its first word ("Архитектор Алексей Душкин" gives "Алексей Душкин").
    Terms of ``exclude`` (the user's glossary) are left out; at most MAX_NAMES.
    """
    if source_language in _NOUN_CAPITALS:
        return []
    skip = {k.casefold() for k in (exclude or {})}
    counts: Counter[str] = Counter()
    for text in texts:
        run: list[str] = []
        run_opens = False
        last_end = 0
        pending = ""  # a connector seen right after a run
        for match in _TOKEN.finditer(text):
            word, gap = match.group(), text[last_end : match.start()]
            before = text[: match.start()].rstrip()
            opens = not before or before[-1] in _OPENERS
            capital = word[0].isupper() and len(word) >= 2 and word.casefold() not in _NOT_NAMES
            if run and capital and not gap.strip() and pending:
                run.append(pending)
            if run and (not capital or gap.strip()) and not (word in _CONNECTORS and not gap.strip() and not pending):
                _add_run(counts, run, run_opens)
                run = []
            pending = word if run and not capital else ""
            if capital:
                if not run:
                    run_opens = opens
                run.append(word)
            last_end = match.end()
        if run:
            _add_run(counts, run, run_opens)
    names = [n for n, count in counts.most_common() if n.casefold() not in skip and count >= min_count]
    return names[:MAX_NAMES]


def _add_run(counts: Counter[str], run: list[str], opens: bool) -> None:
    words = run[1:] if opens else run
    while words and words[0] in _CONNECTORS:
        words = words[1:]
    if words:
        counts[" ".join(words)] += 1


def names_request(names: Sequence[str], source_language: str, target_language: str) -> list[dict[str, str]]:
    """The messages asking for the target form of ``names`` (answer: a JSON object name -> form)."""
    target = language_name(target_language)
    system = (
        f"You know how names of people, places and organisations are written in {target}. "
        "Output only JSON."
    )
    user = (
        f"These names come from a {language_name(source_language)} text. For each, give how it is written in "
        f"{target}: the established {target} form if there is one, otherwise a transliteration; brand names stay "
        f"as they are. Use the base form (nominative). Answer with the same keys.\n"
        + json.dumps({n: n for n in names}, ensure_ascii=False)
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def accept_names(answer: Mapping[str, str], source_language: str, target_language: str) -> dict[str, str]:
    """The answer's usable entries: a capitalised form in the target's script (a brand may stay as it is),
    no mixed-script word nor letters of a script the target does not use, a plausible length; forms equal to the
    name are dropped (nothing to hold)."""
    target_script = LANGUAGE_SCRIPT.get(target_language)
    accepted: dict[str, str] = {}
    for name, form in answer.items():
        form = form.strip()
        if not form or form == name or mixed_script_words(form) or foreign_script(form, target_language):
            continue
        if not 0.4 <= len(form) / len(name) <= 3.0:
            continue
        if form[0].isalpha() and not form[0].isupper() and form[0].lower() != form[0].upper():
            continue
        if target_script is not None and (script_ratio(form, target_language) or 0.0) < 0.9:
            continue
        if target_script is None and (script_ratio(form, source_language) or 0.0) > 0:
            continue
        accepted[name] = form
    return accepted


def merge(names: Mapping[str, str], user: Mapping[str, str] | None) -> dict[str, str]:
    """The job's name glossary without any term the user's glossary covers (theirs wins)."""
    users = {k.casefold() for k in (user or {})}
    return {k: v for k, v in names.items() if k.casefold() not in users}
