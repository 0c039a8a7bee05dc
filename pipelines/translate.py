"""Translate stage: sentences -> translations, id for id, through an LLM with structured JSON output.

Sentences go to the model in numbered batches with a few neighbours as context. Each answer is
validated as a whole (JSON, every id exactly once, non-empty), then line by line (really in the target language,
the checks below). An answer unusable as a whole (or a backend error), or with several lines failing a check, gets
its batch halved until single sentences; a single line that fails a check is retried ``max_retries`` times, each
with a hint naming its own fault. With ``retry_together`` a batch's lines that fail a check are instead retried
together: up to ``max_retries`` rounds, each one request holding every line still failing, renumbered, with
"Notes on your previous answer:" and a note per line number (a round unusable as a whole falls back to single-line
retries). Off by default: on the bench lecture it cost more tokens and the 1.5B model mixed the lines up. A line
that still fails keeps its source text and a flag. Lines are never dropped, merged or reordered.

Soft checks (English words left, length far off, a lost negation) keep the model's last answer, flagged, rather
than the source. Letters of another writing system (the 1.5B model leaks Chinese into Russian: "В этом房间里
никто...") are retried with a hint naming them; when no answer comes clean, the last one that still reads with
them cut out (``without_foreign_script``: whole words go, and what is left passes every check again) is kept, cut,
and flagged ``foreign_script``: a viewer must never see or hear them, and one missing word reads better than a
line in the source language. When cutting would break a word ("habitaciоn" with a Cyrillic о) or leave a line
that fails a check (too short, lost negation), the line keeps its source text flagged ``mixed_script``, like a
broken word.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipelines import names as job_names
from pipelines.backends import LLMBackend, Message, make_backend
from pipelines.errors import BackendUnavailable, TranslationFailed
from pipelines.glossary import filter_glossary, load_glossary
from pipelines.languages import language_name, normalize_language, script_ratio
from pipelines.prompts import few_shot, system_prompt
from pipelines.quality import (
    SOFT_FLAGS,
    dropped_negation,
    foreign_script,
    is_untranslated,
    latin_leftovers,
    length_off,
    mixed_script_words,
    without_foreign_script,
)
from pipelines.schema import Sentence, Translation

if TYPE_CHECKING:
    from configs.settings import TranslatorSettings

# The glossary helpers live in pipelines.glossary; they stay importable from here for older importers.
# The checks live in pipelines.quality and the prompts in pipelines.prompts; importable from here too.
__all__ = [
    "LLMTranslator", "Translator", "filter_glossary", "foreign_script", "is_untranslated", "latin_leftovers",
    "length_off", "load_glossary", "make_translator", "mixed_script_words", "system_prompt",
]  # fmt: skip

logger = logging.getLogger(__name__)

FLAG_UNTRANSLATED = "untranslated"
FLAG_FAILED = "translation_failed"
FLAG_MIXED_SCRIPT = "mixed_script"
# Soft failures: after the retries the model's last answer is kept (better than the source), with the flag;
# foreign_script's answer with the foreign letters cut out, where that reads (see the module docstring).
FLAG_LATIN_WORDS, FLAG_LENGTH, FLAG_NEGATION, FLAG_FOREIGN_SCRIPT = SOFT_FLAGS


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


@dataclass
class _TranslateCall:
    """The state of one ``translate`` call: inputs, finished lines and call counts."""

    sentences: list[Sentence]
    source: str
    target: str
    glossary: Mapping[str, str] | None
    system: str
    names: dict[str, str] = field(default_factory=dict)  # the job's name glossary (see pipelines.names)
    texts: dict[int, str] = field(default_factory=dict)
    flags: dict[int, str] = field(default_factory=dict)
    answered: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Outcome:
    accepted: dict[int, str]
    failed: dict[int, str]  # position -> flag
    problems: dict[int, str]  # position -> what its check found (or what was wrong with the whole answer)
    kept: dict[int, str] = field(default_factory=dict)  # answers that failed only a soft check
    unparsed: bool = False  # the answer as a whole was unusable (not JSON, ids missing or extra)
    error: bool = False  # the request raised (a backend error): no answer at all

    @property
    def unusable(self) -> bool:
        """No line was judged: the answer as a whole failed (a structural failure), not some lines' checks."""
        return self.unparsed or self.error


class LLMTranslator:
    """Translator over any LLMBackend (see the module docstring for the retry policy).

    ``settings.batch_size`` lines per request, ``context_sentences`` neighbours each side as
    context. A batch whose answer is unusable as a whole is halved; lines failing a check get
    ``max_retries`` rounds, all of a batch's in one request a round.
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
        stream = self.translate_stream(
            sentences, source_language=source_language, target_language=target_language, glossary=glossary
        )
        return [t for part in stream for t in part]

    def translate_stream(
        self,
        sentences: Iterable[Sentence],
        *,
        source_language: str,
        target_language: str,
        glossary: Mapping[str, str] | None = None,
    ) -> Iterator[list[Translation]]:
        """``translate`` over sentences as they come (a lazy ASR): yields the translations in order, a batch at a
        time, each as soon as its batch and the context after it have arrived. The same requests as ``translate``
        (which is this, joined), so the same lines. The name glossary needs every sentence: with it on, nothing is
        translated before the input ends. Errors as ``translate``, raised where they happen."""
        source, target = normalize_language(source_language), normalize_language(target_language)
        system = system_prompt(source, target, native=self.settings.system_prompt_language == "target")
        job = _TranslateCall([], source, target, glossary, system)
        incoming = iter(sentences)
        if source != target and self.settings.name_glossary:
            job.sentences, incoming = list(incoming), iter(())
            texts = [s.text for s in job.sentences if s.text.strip()]
            if texts:
                job.names = job_names.merge(self._ask_names(job, texts), glossary)
        size, after = max(1, self.settings.batch_size), max(0, self.settings.context_sentences)
        todo = [i for i, s in enumerate(job.sentences) if s.text.strip()]  # positions with text, in order
        done = 0  # positions [0, done) are solved and yielded
        ended = False
        while not ended or done < len(job.sentences):
            nxt = next(incoming, None)
            if nxt is None:
                ended = True
            else:
                job.sentences.append(nxt)
                if nxt.text.strip():
                    todo.append(len(job.sentences) - 1)
            while True:  # solve every batch whose sentences and context are in
                batch = [p for p in todo if p >= done][:size]
                ready = bool(batch) and (
                    ended or (len(batch) == size and len(job.sentences) > batch[-1] + after)
                )
                if not ready:
                    break
                if source == target:
                    job.texts.update({p: job.sentences[p].text for p in batch})
                else:
                    self._solve(job, batch)
                end = len(job.sentences) if ended and batch[-1] == todo[-1] else batch[-1] + 1
                yield [self._result(job, i, job.sentences[i]) for i in range(done, end)]
                done = end
            if ended and done < len(job.sentences):  # no text left: the empty lines at the end
                yield [self._result(job, i, job.sentences[i]) for i in range(done, len(job.sentences))]
                done = len(job.sentences)
        if todo and source != target and job.answered == 0:
            raise TranslationFailed(f"translation backend {self.name} failed on every request: {job.errors[-1]}")

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

        Returns None when the backend fails or the answer is not shorter, empty, in the wrong script or holds
        letters of a script the target does not use (foreign_script).
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
        foreign = foreign_script(short, target_language)
        if problem or len(short) >= len(text) or (ratio is not None and ratio < 0.5) or foreign:
            logger.info("shorten gave no usable answer: %s", problem or repr(short))
            return None
        return short

    # ------------------------------------------------------------------------- internals

    def _solve(self, job: _TranslateCall, positions: list[int]) -> None:
        # 'retries' leaves the first try free only where the prompt shows the JSON (the example): without one (German
        # targets, few_shot off) the model's free answer ran away to its token budget (en→de: 1076 tokens, 123 s).
        shown = bool(self._examples(job, hint=""))
        first = self.settings.json_grammar == "on" or (self.settings.json_grammar == "retries" and not shown)
        outcome = self._attempt(job, positions, hint="", constrained=first)
        if outcome.unparsed and self.settings.json_grammar == "retries" and not first:
            outcome = self._attempt(job, positions, hint="", constrained=True)
        job.texts.update(outcome.accepted)
        pending = sorted(outcome.failed)
        for pos in pending:
            logger.info("sentence %d: retrying (%s)", job.sentences[pos].id, outcome.problems[pos])
        if len(pending) > 1 and (outcome.unusable or not self.settings.retry_together):
            half = len(pending) // 2
            self._solve(job, pending[:half])
            self._solve(job, pending[half:])
        elif pending:
            self._retry(job, pending, outcome, {})

    def _retry(
        self, job: _TranslateCall, pending: list[int], outcome: _Outcome, kept: dict[int, tuple[str, str]]
    ) -> None:
        """Up to ``max_retries`` rounds over the failed lines ``pending`` of ``outcome``, one request a round for
        all still failing; ``kept``: position -> (text, flag) of earlier soft-failed answers."""
        constrained = self.settings.json_grammar != "off"
        for _ in range(self.settings.max_retries):
            kept.update({p: (t, outcome.failed[p]) for p, t in outcome.kept.items()})
            hint = _hints(outcome, pending, job.target)
            answer = self._attempt(job, pending, hint=hint, constrained=constrained)
            if answer.unusable and len(pending) > 1:  # no per-line verdict: each line on its own, as before
                for pos in pending:
                    self._retry(job, [pos], outcome, kept)
                return
            job.texts.update(answer.accepted)
            outcome, pending = answer, sorted(answer.failed)
            if not pending:
                return
        kept.update({p: (t, outcome.failed[p]) for p, t in outcome.kept.items()})
        for pos in pending:
            # Foreign letters that could not be cut out: the source stays, as for a broken word.
            job.flags[pos] = FLAG_MIXED_SCRIPT if outcome.failed[pos] == FLAG_FOREIGN_SCRIPT else outcome.failed[pos]
            if pos in kept:  # a soft failure: the model's last such answer, flagged, reads better than the source
                job.texts[pos], job.flags[pos] = kept[pos]
            logger.info(
                "sentence %d: kept in the source language (%s: %s)",
                job.sentences[pos].id,
                job.flags[pos],
                outcome.problems[pos],
            )

    def _attempt(self, job: _TranslateCall, positions: list[int], *, hint: str, constrained: bool) -> _Outcome:
        """One request for ``positions``; ``constrained``: the answer's JSON schema goes to the backend (a grammar
        in llama.cpp), else the answer is only parsed and checked (``json_grammar``: what the grammar costs)."""
        keys = [str(n) for n in range(1, len(positions) + 1)]
        try:
            raw = self.backend.complete(
                self._messages(job, positions, hint),
                json_schema=batch_schema(keys) if constrained else None,
                max_tokens=self._budget(job, positions),
            )
        except BackendUnavailable as exc:
            raise TranslationFailed(f"translation backend {self.name} is unavailable: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - one bad request (context overflow, 400, ...) is a failed attempt
            job.errors.append(f"{type(exc).__name__}: {exc}")
            error = f"backend error {job.errors[-1]}"
            return _Outcome({}, dict.fromkeys(positions, FLAG_FAILED), dict.fromkeys(positions, error), error=True)
        job.answered += 1
        answer, problem = parse_answer(raw, keys)
        if problem:
            return _Outcome({}, dict.fromkeys(positions, FLAG_FAILED), dict.fromkeys(positions, problem), unparsed=True)
        outcome = _Outcome({}, {}, {})
        for key, pos in zip(keys, positions):
            flag, problem = self._check(job, job.sentences[pos].text, answer[key])
            if not flag:
                outcome.accepted[pos] = answer[key]
                continue
            outcome.failed[pos], outcome.problems[pos] = flag, problem
            if flag == FLAG_FOREIGN_SCRIPT:
                cut = without_foreign_script(answer[key], job.target)
                if cut and self._check(job, job.sentences[pos].text, cut) == ("", ""):
                    outcome.kept[pos] = cut
            elif flag in SOFT_FLAGS:
                outcome.kept[pos] = answer[key]
        return outcome

    def _check(self, job: _TranslateCall, source: str, text: str) -> tuple[str, str]:
        """(flag, problem) of the first check ``text`` fails, or ("", "") when it passes them all."""
        if is_untranslated(source, text, source_language=job.source, target_language=job.target):
            return FLAG_UNTRANSLATED, "not translated"
        if foreign := foreign_script(text, job.target):
            return FLAG_FOREIGN_SCRIPT, "characters of another writing system (" + ", ".join(dict.fromkeys(foreign)) + ")"
        if mixed := mixed_script_words(text):
            return FLAG_MIXED_SCRIPT, "mixed-script words: " + ", ".join(mixed)
        allowed = [*(job.glossary or {}).keys(), *(job.glossary or {}).values(), *job.names.values()]
        if latin := latin_leftovers(text, job.target, allowed):
            return FLAG_LATIN_WORDS, "English words left: " + ", ".join(dict.fromkeys(latin))
        ratio = length_off(source, text, source_language=job.source, target_language=job.target,
                           min_ratio=self.settings.min_length_ratio, max_ratio=self.settings.max_length_ratio)
        if ratio is not None:
            return FLAG_LENGTH, f"{'too short' if ratio < 1 else 'too long'} ({ratio:.1f} times the source length)"
        if negation := dropped_negation(source, text, source_language=job.source, target_language=job.target):
            return FLAG_NEGATION, "the negation was lost: the line says " + ", ".join(f'"{w}"' for w in negation)
        return "", ""

    def _ask_names(self, job: _TranslateCall, texts: list[str]) -> dict[str, str]:
        """The target form of the job's capitalised names that recur (``name_min_count``), asked once; {} when there
        are none (no request) or it fails."""
        names = job_names.candidate_names(texts, job.source, exclude=job.glossary, min_count=self.settings.name_min_count)
        if not names:
            return {}
        messages = job_names.names_request(names, job.source, job.target)
        budget = 16 + sum(8 + 2 * len(n) for n in names)
        try:
            raw = self.backend.complete(messages, json_schema=batch_schema(names), max_tokens=budget)
        except BackendUnavailable as exc:
            raise TranslationFailed(f"translation backend {self.name} is unavailable: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - the name glossary is a help; the job goes on without it
            logger.info("name glossary request failed: %s", exc)
            return {}
        answer, problem = parse_answer(raw, names)
        accepted = job_names.accept_names(answer, job.source, job.target)
        logger.info("name glossary: %s%s", accepted, f" ({problem})" if problem else "")
        return accepted

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
        if names := filter_glossary(job.names, batch):
            parts.append("Names, write them so (in the case the sentence needs):\n"
                         + "\n".join(f"{k} = {v}" for k, v in names.items()))
        lines = json.dumps({str(n): text for n, text in enumerate(batch, start=1)}, ensure_ascii=False)
        parts.append(f"Translate to {language_name(job.target)}:\n{lines}")
        if hint:
            parts.append(hint)
        system: Message = {"role": "system", "content": job.system}
        return [system, *self._examples(job, hint=hint), {"role": "user", "content": "\n\n".join(parts)}]

    def _examples(self, job: _TranslateCall, *, hint: str) -> list[Message]:
        """The pair's example exchange; none where switched off or the pair has none, and none for a retry
        (``hint``): a different prompt, so a near-deterministic model does not give the same answer again (the
        demo's "ask not" kept losing its negation with the example, never without)."""
        return few_shot(job.source, job.target) if self.settings.few_shot and not hint else []

    def _budget(self, job: _TranslateCall, positions: list[int]) -> int:
        """Generous max_tokens: about 1.5 tokens per source character plus JSON overhead."""
        chars = sum(len(job.sentences[p].text) for p in positions)
        return 32 + 12 * len(positions) + int(1.5 * chars)

    def _result(self, job: _TranslateCall, pos: int, sentence: Sentence) -> Translation:
        if pos in job.texts:
            flags = (job.flags[pos],) if pos in job.flags else ()
            return Translation(id=sentence.id, source=sentence.text, text=job.texts[pos], flags=flags)
        if not sentence.text.strip():
            return Translation(id=sentence.id, source=sentence.text, text=sentence.text)
        return Translation(
            id=sentence.id, source=sentence.text, text=sentence.text, flags=(job.flags.get(pos, FLAG_FAILED),)
        )


# Retry hints per failed check; {problem} is what the check found, {name} the target language's name.
_HINTS: dict[str, str] = {
    FLAG_UNTRANSLATED: "Your previous answer was not in {name}. Translate the line into {name}.",
    FLAG_LATIN_WORDS: (
        "Your previous answer left words untranslated ({problem}). "
        "Translate them into {name}; only names may stay as they are."
    ),
    FLAG_LENGTH: "Your previous answer was {problem}. Translate the whole line, every clause, and nothing more.",
    FLAG_NEGATION: (
        "Your previous answer turned the meaning round: {problem}, and your {name} has no negation. "
        "Translate the line again and keep its negation."
    ),
    FLAG_FOREIGN_SCRIPT: "Your previous answer had {problem}. Write the whole line in {name} only.",
    FLAG_MIXED_SCRIPT: (
        "Your previous answer had broken words that mix alphabets ({problem}). "
        "Translate every word fully into {name}; do not leave English inside a word."
    ),
}
_INVALID_HINT = 'Your previous answer was invalid ({problem}). Answer with the JSON object {{"1": "..."}}.'


def _hint(outcome: _Outcome, pos: int, target: str) -> str:
    """A corrective note on line ``pos``'s own fault, so a deterministic model does not repeat its answer."""
    template = _HINTS.get(outcome.failed.get(pos, ""), _INVALID_HINT)
    return template.format(name=language_name(target), problem=outcome.problems.get(pos, ""))


def _hints(outcome: _Outcome, positions: list[int], target: str) -> str:
    """The hint of a retry request for ``positions``: one line's note as it is; several, a note per line number."""
    if len(positions) == 1:
        return _hint(outcome, positions[0], target)
    notes = [f"- line {n}: {_hint(outcome, pos, target)}" for n, pos in enumerate(positions, start=1)]
    return "Notes on your previous answer:\n" + "\n".join(notes)


def make_translator(settings: TranslatorSettings, models_dir: Path) -> LLMTranslator:
    """An LLMTranslator over the backend chosen by ``settings.backend``."""
    return LLMTranslator(settings, make_backend(settings, models_dir))
