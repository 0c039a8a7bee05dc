"""LLMTranslator.translate_stream: the requests of ``translate``, made as soon as their sentences are in."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from configs.settings import TranslatorSettings
from pipelines.errors import BackendUnavailable, TranslationFailed
from pipelines.schema import Sentence
from pipelines.translate import LLMTranslator
from tests.pipelines.test_translate import FakeBackend, RaisingBackend

WORDS = ["Alice", "went", "to", "Paris", "and", "the", "cat", "is", "not", "here", "today"]


def sentences(n: int) -> list[Sentence]:
    out = []
    for i in range(n):
        text = "" if i % 7 == 5 else " ".join(WORDS[(i + k) % len(WORDS)] for k in range(3 + i % 4)) + "."
        out.append(Sentence(i, float(i), i + 0.9, text))
    return out


class SpoilEveryThird:
    """Spoils every third answer of its backend, so batches are halved and lines retried."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, answer: dict[str, str], lines: dict[str, str]) -> str:
        self.calls += 1
        return "not json" if self.calls % 3 == 0 else json.dumps(answer, ensure_ascii=False)


@pytest.mark.parametrize("names", [False, True])
@pytest.mark.parametrize(("batch", "context"), [(8, 2), (3, 0), (1, 1)])
def test_stream_makes_the_requests_of_translate(names: bool, batch: int, context: int) -> None:
    settings = TranslatorSettings(batch_size=batch, context_sentences=context, name_glossary=names)
    items = sentences(23)
    whole, streamed = FakeBackend(SpoilEveryThird()), FakeBackend(SpoilEveryThird())
    expected = LLMTranslator(settings, whole).translate(items, source_language="en", target_language="ru")
    parts = list(
        LLMTranslator(settings, streamed).translate_stream(iter(items), source_language="en", target_language="ru")
    )
    assert [t for part in parts for t in part] == expected
    assert streamed.messages == whole.messages  # the same prompts (batches, context, retries), in the same order
    assert len(parts) > 1 and [t.id for part in parts for t in part] == list(range(23))


def test_a_batch_goes_out_once_its_sentences_and_the_context_after_it_are_in() -> None:
    settings = TranslatorSettings(batch_size=4, context_sentences=2, name_glossary=False)
    backend = FakeBackend()
    arrived: list[int] = []
    at_request: list[int] = []
    real = backend.complete

    def complete(messages, **kwargs):  # type: ignore[no-untyped-def]
        at_request.append(len(arrived))
        return real(messages, **kwargs)

    backend.complete = complete  # type: ignore[method-assign]

    def lazy() -> Iterator[Sentence]:
        for s in [Sentence(i, i, i + 0.9, f"Alice went home at {i}.") for i in range(12)]:
            arrived.append(s.id)
            yield s

    stream = LLMTranslator(settings, backend).translate_stream(lazy(), source_language="en", target_language="ru")
    first = next(stream)
    assert [t.id for t in first] == [0, 1, 2, 3] and at_request == [6]  # sentences 0-3, context 4 and 5
    rest = list(stream)
    assert at_request == [6, 10, 12] and [t.id for part in rest for t in part] == list(range(4, 12))


def test_the_name_glossary_needs_every_sentence_first() -> None:
    settings = TranslatorSettings(batch_size=2, name_glossary=True)
    arrived: list[int] = []
    backend = FakeBackend()

    def lazy() -> Iterator[Sentence]:
        for s in sentences(6):
            arrived.append(s.id)
            yield s

    stream = LLMTranslator(settings, backend).translate_stream(lazy(), source_language="en", target_language="ru")
    next(stream)
    assert arrived == list(range(6))


def test_errors_are_those_of_translate() -> None:
    backend = RaisingBackend(BackendUnavailable("server gone"))
    stream = LLMTranslator(TranslatorSettings(name_glossary=False), backend).translate_stream(
        iter(sentences(10)), source_language="en", target_language="ru"
    )
    with pytest.raises(TranslationFailed, match="unavailable"):
        next(stream)
    failing = RaisingBackend(ValueError("context overflow"))
    stream = LLMTranslator(TranslatorSettings(name_glossary=False), failing).translate_stream(
        iter(sentences(10)), source_language="en", target_language="ru"
    )
    with pytest.raises(TranslationFailed, match="every request"):
        list(stream)
