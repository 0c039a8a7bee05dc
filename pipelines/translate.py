"""Translate stage: sentences -> translations, id for id, through an LLM with structured JSON output.

Sentences go to the model in numbered batches with a few neighbours as context. Each answer is
validated (every id exactly once, non-empty, really in the target language). A failed batch is
halved until single sentences, which are retried with a corrective hint; a line that still fails
keeps its source text and a flag. Lines are never dropped, merged or reordered.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipelines.backends import LLMBackend, Message, make_backend
from pipelines.errors import BackendUnavailable, TranslationFailed
from pipelines.glossary import filter_glossary, load_glossary
from pipelines.languages import language_name, normalize_language, script_ratio
from pipelines.schema import Sentence, Translation

if TYPE_CHECKING:
    from configs.settings import TranslatorSettings

# The glossary helpers live in pipelines.glossary; they stay importable from here for older importers.
__all__ = ["LLMTranslator", "Translator", "filter_glossary", "load_glossary", "make_translator"]

logger = logging.getLogger(__name__)

FLAG_UNTRANSLATED = "untranslated"
FLAG_FAILED = "translation_failed"
FLAG_MIXED_SCRIPT = "mixed_script"

_WORD = re.compile(r"[^\W\d_]+")
_TOKEN = re.compile(r"\w+")


class Translator(Protocol):
    """Turns sentences into translations, one per sentence, in input order."""

    name: str

    def translate(
        self,
        sentences: Sequence[Sentence],
        *,
        source_language: str,
        target_language: str,
        glossary: Mapping[str, str] | None = None,
    ) -> list[Translation]:
        """Translate ``sentences``; failed lines keep their source text and carry a flag.

        Raises UnknownLanguage for a bad code and TranslationFailed when the backend is unusable.
        """
        ...


# ----------------------------------------------------------------------------- checks


def _normalise(text: str) -> str:
    return " ".join(_TOKEN.findall(text.casefold()))


def _name_like(text: str) -> bool:
    """No letters, or up to three capitalised words: numbers and names may stay as they are."""
    words = _WORD.findall(text)
    return not words or (len(words) <= 3 and all(w[0].isupper() for w in words))


def _copied_share(source: str, text: str) -> float:
    """Share of the output's long words (4+ letters) found in the source; 0 with under 3 of them."""
    source_words = {w.casefold() for w in _WORD.findall(source)}
    long_words = [w.casefold() for w in _WORD.findall(text) if len(w) >= 4]
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
    if source_language == target_language or _name_like(source):
        return False
    if _normalise(text) == _normalise(source):
        return True
    kept_names = {w for w in _WORD.findall(source) if w[0].isupper()}
    residual = " ".join(w for w in _WORD.findall(text) if w not in kept_names)
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
    for word in _WORD.findall(text):
        latin = any("a" <= c.casefold() <= "z" for c in word)
        cyrillic = any("\u0400" <= c <= "\u04ff" for c in word)
        if latin and cyrillic:
            found.append(word)
    return found


# ----------------------------------------------------------------------------- JSON


def batch_schema(keys: Sequence[str]) -> dict[str, Any]:
    """JSON schema of an answer: exactly ``keys``, each a non-empty string."""
    return {
        "type": "object",
        "properties": {key: {"type": "string", "minLength": 1} for key in keys},
        "required": list(keys),
        "additionalProperties": False,
    }


def _json_pairs(raw: str) -> list[tuple[str, Any]] | None:
    """The top-level key/value pairs of the first JSON object in ``raw`` (duplicates kept)."""
    start, end = raw.find("{"), raw.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        value = json.loads(raw[start : end + 1], object_pairs_hook=list)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def parse_answer(raw: str, keys: Sequence[str]) -> tuple[dict[str, str], str]:
    """Map key -> text from a model answer, or ({}, problem) when it is unusable as a whole."""
    pairs = _json_pairs(raw)
    if pairs is None:
        return {}, "invalid JSON"
    counts = Counter(key for key, _ in pairs)
    problems = [
        f"{label} ids {', '.join(ids)}"
        for label, ids in (
            ("missing", [k for k in keys if k not in counts]),
            ("extra", [k for k in counts if k not in set(keys)]),
            ("repeated", [k for k, n in counts.items() if n > 1]),
            ("empty", [k for k, v in pairs if not isinstance(v, str) or not v.strip()]),
        )
        if ids
    ]
    if problems:
        return {}, "; ".join(problems)
    return {key: str(value).strip() for key, value in pairs}, ""


# ----------------------------------------------------------------------------- prompts


def system_prompt(source_language: str, target_language: str) -> str:
    """Constant per language pair, so llama.cpp reuses its prompt cache across batches."""
    source, target = language_name(source_language), language_name(target_language)
    return (
        f"You are a professional subtitle translator. Translate from {source} to {target}.\n"
        f"- Write every line in {target}; never copy the {source} text.\n"
        "- Keep the meaning; use a natural spoken style, concise enough to be dubbed.\n"
        "- Keep names and numbers.\n"
        f"- Output only JSON: the same keys, each with its {target} translation."
    )


@dataclass
class _TranslateCall:
    """The state of one ``translate`` call: inputs, finished lines and call counts."""

    sentences: list[Sentence]
    source: str
    target: str
    glossary: Mapping[str, str] | None
    system: str
    texts: dict[int, str] = field(default_factory=dict)
    flags: dict[int, str] = field(default_factory=dict)
    answered: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Outcome:
    accepted: dict[int, str]
    failed: dict[int, str]
    problem: str


class LLMTranslator:
    """Translator over any LLMBackend (see the module docstring for the retry policy).

    ``settings.batch_size`` lines per request, ``context_sentences`` neighbours each side as
    context. Multi-line batches that fail are halved; single lines get ``max_retries`` more tries.
    Backend errors: BackendUnavailable (dead server after the backend's own retries) raises
    TranslationFailed at once, because every other line would fail the same way; any other
    exception counts as a failed attempt, and TranslationFailed is raised only if no request
    of the call got an answer at all.
    """

    def __init__(self, settings: TranslatorSettings, backend: LLMBackend) -> None:
        self.settings = settings
        self.backend = backend
        self.name = backend.name

    def translate(
        self,
        sentences: Sequence[Sentence],
        *,
        source_language: str,
        target_language: str,
        glossary: Mapping[str, str] | None = None,
    ) -> list[Translation]:
        """See ``Translator.translate``."""
        source, target = normalize_language(source_language), normalize_language(target_language)
        job = _TranslateCall(list(sentences), source, target, glossary, system_prompt(source, target))
        todo = [i for i, s in enumerate(job.sentences) if s.text.strip()]
        if source == target:
            job.texts.update({i: job.sentences[i].text for i in todo})
            todo = []
        size = max(1, self.settings.batch_size)
        for start in range(0, len(todo), size):
            self._solve(job, todo[start : start + size])
        if todo and job.answered == 0:
            raise TranslationFailed(f"translation backend {self.name} failed on every request: {job.errors[-1]}")
        return [self._result(job, i, s) for i, s in enumerate(job.sentences)]

    def translate_texts(
        self,
        texts: list[str],
        source_language: str,
        target_language: str,
        glossary: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Translate plain strings (failed ones come back unchanged)."""
        sentences = [Sentence(id=i, start_s=0.0, end_s=0.0, text=t) for i, t in enumerate(texts)]
        result = self.translate(
            sentences, source_language=source_language, target_language=target_language, glossary=glossary
        )
        return [t.text for t in result]

    def shorten(self, text: str, *, target_language: str, max_chars: int) -> str | None:
        """A shorter rendering of ``text`` (aiming at ``max_chars`` characters) in the same language.

        Returns None when the backend fails or the answer is not shorter, empty or in the wrong script.
        """
        name = language_name(target_language)
        system = (
            f"You are a subtitle editor. You make {name} lines shorter for dubbing: drop filler words and "
            "minor details, keep the main meaning. Output only JSON."
        )
        user = (
            f"Line ({len(text)} characters):\n{text}\n\n"
            f'Write a shorter {name} version of at most {max_chars} characters as JSON {{"text": "..."}}.'
        )
        messages: list[Message] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            raw = self.backend.complete(messages, json_schema=batch_schema(["text"]), max_tokens=32 + 2 * len(text))
        except Exception as exc:  # noqa: BLE001 - shortening is best effort; the caller keeps the long text
            logger.info("shorten failed: %s", exc)
            return None
        answer, problem = parse_answer(raw, ["text"])
        short = answer.get("text", "")
        ratio = script_ratio(short, normalize_language(target_language))
        if problem or len(short) >= len(text) or (ratio is not None and ratio < 0.5):
            logger.info("shorten gave no usable answer: %s", problem or repr(short))
            return None
        return short

    # ------------------------------------------------------------------------- internals

    def _solve(self, job: _TranslateCall, positions: list[int]) -> None:
        outcome = self._attempt(job, positions, hint="")
        job.texts.update(outcome.accepted)
        pending = sorted(outcome.failed)
        for pos in pending:
            logger.info("sentence %d: retrying (%s)", job.sentences[pos].id, outcome.problem)
        if len(pending) > 1:
            half = len(pending) // 2
            self._solve(job, pending[:half])
            self._solve(job, pending[half:])
        elif pending:
            self._retry_single(job, pending[0], outcome)

    def _retry_single(self, job: _TranslateCall, pos: int, outcome: _Outcome) -> None:
        for _ in range(self.settings.max_retries):
            outcome = self._attempt(job, [pos], hint=_hint(outcome, pos, job.target))
            if outcome.accepted:
                job.texts.update(outcome.accepted)
                return
        job.flags[pos] = outcome.failed[pos]
        logger.info(
            "sentence %d: kept in the source language (%s: %s)", job.sentences[pos].id, job.flags[pos], outcome.problem
        )

    def _attempt(self, job: _TranslateCall, positions: list[int], *, hint: str) -> _Outcome:
        keys = [str(n) for n in range(1, len(positions) + 1)]
        try:
            raw = self.backend.complete(
                self._messages(job, positions, hint),
                json_schema=batch_schema(keys),
                max_tokens=self._budget(job, positions),
            )
        except BackendUnavailable as exc:
            raise TranslationFailed(f"translation backend {self.name} is unavailable: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - one bad request (context overflow, 400, ...) is a failed attempt
            job.errors.append(f"{type(exc).__name__}: {exc}")
            return _Outcome({}, dict.fromkeys(positions, FLAG_FAILED), f"backend error {job.errors[-1]}")
        job.answered += 1
        answer, problem = parse_answer(raw, keys)
        if problem:
            return _Outcome({}, dict.fromkeys(positions, FLAG_FAILED), problem)
        outcome = _Outcome({}, {}, "not translated")
        for key, pos in zip(keys, positions):
            source = job.sentences[pos].text
            if is_untranslated(source, answer[key], source_language=job.source, target_language=job.target):
                outcome.failed[pos] = FLAG_UNTRANSLATED
            elif mixed := mixed_script_words(answer[key]):
                outcome.failed[pos] = FLAG_MIXED_SCRIPT
                outcome.problem = "mixed-script words: " + ", ".join(mixed)
            else:
                outcome.accepted[pos] = answer[key]
        return outcome

    def _messages(self, job: _TranslateCall, positions: list[int], hint: str) -> list[Message]:
        batch = [job.sentences[p].text for p in positions]
        context_n = self.settings.context_sentences
        first, last = positions[0], positions[-1]
        before = [s.text for s in job.sentences[max(0, first - context_n) : first] if s.text.strip()]
        after = [s.text for s in job.sentences[last + 1 : last + 1 + context_n] if s.text.strip()]
        parts: list[str] = []
        if before or after:
            parts.append("Context, do not translate:\n" + "\n".join(before + ["..."] + after))
        terms = filter_glossary(job.glossary, batch)
        if terms:
            parts.append("Glossary, use these translations:\n" + "\n".join(f"{k} = {v}" for k, v in terms.items()))
        lines = json.dumps({str(n): text for n, text in enumerate(batch, start=1)}, ensure_ascii=False)
        parts.append(f"Translate to {language_name(job.target)}:\n{lines}")
        if hint:
            parts.append(hint)
        return [{"role": "system", "content": job.system}, {"role": "user", "content": "\n\n".join(parts)}]

    def _budget(self, job: _TranslateCall, positions: list[int]) -> int:
        """Generous max_tokens: about 1.5 tokens per source character plus JSON overhead."""
        chars = sum(len(job.sentences[p].text) for p in positions)
        return 32 + 12 * len(positions) + int(1.5 * chars)

    def _result(self, job: _TranslateCall, pos: int, sentence: Sentence) -> Translation:
        if pos in job.texts:
            return Translation(id=sentence.id, source=sentence.text, text=job.texts[pos])
        if not sentence.text.strip():
            return Translation(id=sentence.id, source=sentence.text, text=sentence.text)
        return Translation(
            id=sentence.id, source=sentence.text, text=sentence.text, flags=(job.flags.get(pos, FLAG_FAILED),)
        )


def _hint(outcome: _Outcome, pos: int, target: str) -> str:
    """A corrective note for a retry, so a deterministic model does not repeat its answer."""
    name = language_name(target)
    if outcome.failed.get(pos) == FLAG_UNTRANSLATED:
        return f"Your previous answer was not in {name}. Translate the line into {name}."
    if outcome.failed.get(pos) == FLAG_MIXED_SCRIPT:
        return (
            f"Your previous answer had broken words that mix alphabets ({outcome.problem}). "
            f"Translate every word fully into {name}; do not leave English inside a word."
        )
    return f'Your previous answer was invalid ({outcome.problem}). Answer with the JSON object {{"1": "..."}}.'


def make_translator(settings: TranslatorSettings, models_dir: Path) -> LLMTranslator:
    """An LLMTranslator over the backend chosen by ``settings.backend``."""
    return LLMTranslator(settings, make_backend(settings, models_dir))
