"""Glossaries: the one parser for every entrypoint (CLI file, settings file, HTTP form, batch), and the
per-batch filter the translator uses.

Two syntaxes, told apart by the first character:

* a JSON object of strings: ``{"Ray Serve": "Рэй Серв"}``;
* ``term = translation`` lines (the first ``=`` separates; blank lines and ``#`` comments are skipped).

In both, a term or a translation that is empty (after stripping spaces) is an error, not an entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipelines.errors import InvalidGlossary

MAX_GLOSSARY_TERMS = 40  # per translation request: more would crowd the prompt


def parse_glossary(text: str | None, *, source: str = "glossary") -> dict[str, str]:
    """Parse glossary ``text`` in either syntax (see the module docstring); blank text gives ``{}``.

    Raises InvalidGlossary whose message starts with ``source`` (a file name, or "glossary") and, for a
    bad line, its 1-based number: ``glossary.txt:2: expected 'term = translation', got 'oops'``.
    """
    body = (text or "").removeprefix("\ufeff")  # a BOM from an editor that writes one
    if not body.strip():
        return {}
    if body.lstrip().startswith("{"):
        return _parse_json(body, source)
    glossary: dict[str, str] = {}
    for number, line in enumerate(body.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        term, sep, translation = entry.partition("=")
        if not sep or not term.strip() or not translation.strip():
            raise InvalidGlossary(f"{source}:{number}: expected 'term = translation', got {entry[:80]!r}")
        glossary[term.strip()] = translation.strip()
    return glossary


def _parse_json(text: str, source: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidGlossary(f"{source}: not a JSON object ({exc})") from exc
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidGlossary(f"{source}: a JSON object of strings is expected")
    glossary = {str(k).strip(): v.strip() for k, v in value.items()}
    if any(not k or not v for k, v in glossary.items()):
        raise InvalidGlossary(f"{source}: a term or translation is empty")
    return glossary


def load_glossary(path: str | Path) -> dict[str, str]:
    """Read a glossary file (UTF-8, either syntax; see :func:`parse_glossary`).

    Raises InvalidGlossary naming the file (and line) on malformed content or an unreadable file.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InvalidGlossary(f"cannot read glossary {path}: {reason}") from exc
    return parse_glossary(text, source=str(path))


def filter_glossary(glossary: Mapping[str, str] | None, texts: Sequence[str]) -> dict[str, str]:
    """The entries whose term occurs (case-insensitively, as whole words) in ``texts``, at most 40."""
    if not glossary:
        return {}
    haystack = "\n".join(texts).casefold()
    found: dict[str, str] = {}
    for term, translation in glossary.items():
        key = term.casefold()
        # The substring test is cheap and rejects nearly all of a large glossary.
        if key and key in haystack and re.search(rf"(?<!\w){re.escape(key)}(?!\w)", haystack):
            found[term] = translation
            if len(found) >= MAX_GLOSSARY_TERMS:
                break
    return found
