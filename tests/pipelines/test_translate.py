"""The translate stage: pure checks, the retry policy over fake backends, and the real bundled GGUF."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from configs.settings import StorageSettings, TranslatorSettings
from pipelines.backends import LLMBackend
from pipelines.errors import BackendUnavailable, ModelError, TranslationFailed, UnknownLanguage
from pipelines.languages import script_ratio
from pipelines.schema import Sentence
from pipelines.translate import (
    FLAG_FAILED,
    FLAG_MIXED_SCRIPT,
    FLAG_UNTRANSLATED,
    LLMTranslator,
    batch_schema,
    is_untranslated,
    make_translator,
    mixed_script_words,
    parse_answer,
    system_prompt,
)

ENGLISH = [
    "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
    "This is a test.",
    "The weather is nice today, so we will go for a walk in the park.",
    "I will call you tomorrow morning.",
]

# ----------------------------------------------------------------------------- fakes

_CYR = dict(zip("abcdefghijklmnopqrstuvwxyz", "абцдефгхийклмнопярстуввхыз"))


def fake_ru(text: str) -> str:
    """A stand-in 'translation' into Cyrillic letters, so the script check passes."""
    return "".join(_CYR.get(ch, _CYR.get(ch.lower(), ch).upper() if ch.isupper() else ch) for ch in text)


def request_lines(messages: list[dict[str, str]]) -> dict[str, str]:
    """The numbered lines a translator request asks for (the last JSON line of the user message)."""
    user = messages[-1]["content"]
    return json.loads(next(line for line in reversed(user.splitlines()) if line.startswith("{")))


Mutate = Callable[[dict[str, str], dict[str, str]], str]


class FakeBackend:
    """Honours LLMBackend: 'translates' with fake_ru, then lets ``mutate`` spoil the answer."""

    name = "fake"

    def __init__(self, mutate: Mutate | None = None) -> None:
        self.mutate = mutate
        self.requests: list[dict[str, str]] = []
        self.messages: list[list[dict[str, str]]] = []
        self.constrained: list[bool] = []

    def complete(
        self, messages: list[dict[str, str]], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        lines = request_lines(messages)
        assert json_schema in (None, batch_schema(list(lines)))
        self.constrained.append(json_schema is not None)
        self.requests.append(lines)
        self.messages.append(messages)
        answer = {key: fake_ru(text) for key, text in lines.items()}
        return self.mutate(answer, lines) if self.mutate else json.dumps(answer, ensure_ascii=False)


class RaisingBackend:
    name = "raising"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    def complete(
        self, messages: list[dict[str, str]], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        self.calls += 1
        raise self.exc


def drop_last(answer: dict[str, str], lines: dict[str, str]) -> str:
    if len(answer) > 1:
        answer.pop(str(len(answer)))
    return json.dumps(answer, ensure_ascii=False)


def merge_first_two(answer: dict[str, str], lines: dict[str, str]) -> str:
    if len(answer) > 1:
        values = list(answer.values())
        values[0:2] = [values[0] + " " + values[1]]
        answer = {str(n): v for n, v in enumerate(values, start=1)}
    return json.dumps(answer, ensure_ascii=False)


def extra_id(answer: dict[str, str], lines: dict[str, str]) -> str:
    if len(answer) > 1:
        answer["99"] = "лишнее"
    return json.dumps(answer, ensure_ascii=False)


def invalid_json_for_batches(answer: dict[str, str], lines: dict[str, str]) -> str:
    return "Sure! Here is the translation: {1: broken" if len(answer) > 1 else json.dumps(answer)


def always_invalid(answer: dict[str, str], lines: dict[str, str]) -> str:
    return "not JSON at all"


def copy_stubborn(answer: dict[str, str], lines: dict[str, str]) -> str:
    """Leaves any line containing 'stubborn' in English, every time."""
    return json.dumps({k: (lines[k] if "stubborn" in lines[k] else v) for k, v in answer.items()}, ensure_ascii=False)


def sentences(texts: list[str], first_id: int = 10) -> list[Sentence]:
    return [Sentence(id=first_id + i, start_s=float(i), end_s=i + 0.9, text=t) for i, t in enumerate(texts)]


def settings(**overrides: Any) -> TranslatorSettings:
    """The retry-policy tests run with the grammar on every request (the split and retry counts they assert);
    the ``json_grammar`` tests below cover the other modes."""
    return TranslatorSettings(
        **{"batch_size": 4, "context_sentences": 1, "max_retries": 2, "json_grammar": "on", **overrides}
    )


MANY = [f"Sentence number {n} is about the weather in town." for n in range(10)]


# ----------------------------------------------------------------------------- pure parts


def test_fake_backend_honours_protocol() -> None:
    assert isinstance(FakeBackend(), LLMBackend)


def test_batch_schema_lists_exactly_the_ids() -> None:
    schema = batch_schema(["1", "2"])
    assert schema["required"] == ["1", "2"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["2"] == {"type": "string", "minLength": 1}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"1": "a", "2": "b"}', ""),
        ('```json\n{"1": "a", "2": "b"}\n```', ""),
        ('{"1": "a"}', "missing ids 2"),
        ('{"1": "a", "2": "b", "3": "c"}', "extra ids 3"),
        ('{"1": "a", "1": "b", "2": "c"}', "repeated ids 1"),
        ('{"1": "a", "2": " "}', "empty ids 2"),
        ('{"1": "a", "2": 5}', "empty ids 2"),
        ("[1, 2]", "invalid JSON"),
        ('{"1": "a", ', "invalid JSON"),
    ],
)
def test_parse_answer(raw: str, problem: str) -> None:
    answer, found = parse_answer(raw, ["1", "2"])
    assert found == problem
    assert (answer == {"1": "a", "2": "b"}) == (not problem)


@pytest.mark.parametrize(
    ("source", "text", "src", "tgt", "flagged"),
    [
        ("This is a test.", "This is a test.", "en", "es", True),
        ("This is a test.", "this is a test", "en", "ru", True),
        ("This is a test.", "Esto es una prueba.", "en", "es", False),
        ("This is a test.", "Это тест.", "en", "ru", False),
        ("The weather is nice today.", "The weather is nice today, да.", "en", "ru", True),
        ("I love Microsoft Windows and Apple.", "Я люблю Microsoft Windows и Apple.", "en", "ru", False),
        ("Barack Obama.", "Barack Obama.", "en", "ru", False),
        ("2024, 15:30", "2024, 15:30", "en", "es", False),
        (
            "The weather is really nice today in the park.",
            "The weather really nice today en el park.",
            "en",
            "es",
            True,
        ),
        ("The hospital is normal.", "El hospital es normal.", "en", "es", False),
        ("Привет, как дела у тебя сегодня?", "Привет, как дела у тебя сегодня, amigo?", "ru", "es", True),
        ("Привет, как дела?", "Hola, ¿qué tal?", "ru", "es", False),
        ("This is a test.", "This is a test.", "en", "en", False),
    ],
)
def test_is_untranslated(source: str, text: str, src: str, tgt: str, flagged: bool) -> None:
    assert is_untranslated(source, text, source_language=src, target_language=tgt) is flagged


def test_script_ratio_detects_cyrillic() -> None:
    assert script_ratio("Это тест.", "ru") == 1.0
    assert script_ratio("This is a test.", "ru") == 0.0
    assert script_ratio("Esto es una prueba.", "es") is None


def test_system_prompt_is_constant_per_pair() -> None:
    prompt = system_prompt("en", "ru")
    assert "from English to Russian" in prompt and "JSON" in prompt
    assert prompt == system_prompt("EN", "ru-RU")


# ----------------------------------------------------------------------------- retry policy


def assert_complete(result: list[Any], inputs: list[Sentence]) -> None:
    assert [t.id for t in result] == [s.id for s in inputs]
    assert [t.source for t in result] == [s.text for s in inputs]


def test_happy_path_batches_context_and_ids() -> None:
    backend = FakeBackend()
    inputs = sentences(MANY)
    result = LLMTranslator(settings(), backend).translate(inputs, source_language="en", target_language="ru")
    assert_complete(result, inputs)
    assert [t.text for t in result] == [fake_ru(s.text) for s in inputs]
    assert all(not t.flags for t in result)
    assert [len(r) for r in backend.requests] == [4, 4, 2]
    second = backend.messages[1][-1]["content"]
    assert "Context, do not translate:\n" + MANY[3] + "\n...\n" + MANY[8] in second
    assert backend.messages[0][0]["content"] == backend.messages[2][0]["content"] == system_prompt("en", "ru")


@pytest.mark.parametrize("mutate", [drop_last, merge_first_two, extra_id, invalid_json_for_batches])
def test_structural_failures_split_until_every_line_is_translated(mutate: Mutate) -> None:
    backend = FakeBackend(mutate)
    inputs = sentences(MANY)
    result = LLMTranslator(settings(), backend).translate(inputs, source_language="en", target_language="ru")
    assert_complete(result, inputs)
    assert [t.text for t in result] == [fake_ru(s.text) for s in inputs]
    assert all(not t.flags for t in result)
    assert {len(r) for r in backend.requests} >= {4, 2, 1}


def test_always_invalid_keeps_every_line_in_source_with_flag() -> None:
    backend = FakeBackend(always_invalid)
    inputs = sentences(MANY[:4])
    result = LLMTranslator(settings(max_retries=1), backend).translate(
        inputs, source_language="en", target_language="ru"
    )
    assert_complete(result, inputs)
    assert [t.text for t in result] == MANY[:4]
    assert all(t.flags == (FLAG_FAILED,) for t in result)
    # one batch of 4, two of 2, then each single: one try plus one retry
    assert [len(r) for r in backend.requests] == [4, 2, 1, 1, 1, 1, 2, 1, 1, 1, 1]


class FailsFirstBatch(FakeBackend):
    """Raises on its first request (a backend error, say a context overflow), then translates."""

    def complete(
        self, messages: list[dict[str, str]], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        if not self.requests:
            self.requests.append(request_lines(messages))
            raise RuntimeError("context overflow")
        return super().complete(messages, json_schema=json_schema, max_tokens=max_tokens)


def test_a_backend_error_on_a_batch_halves_it() -> None:
    """A structural failure (no answer at all), unlike lines failing a check, is halved."""
    backend = FailsFirstBatch()
    inputs = sentences(MANY[:4])
    result = LLMTranslator(settings(), backend).translate(inputs, source_language="en", target_language="ru")
    assert [t.text for t in result] == [fake_ru(s.text) for s in inputs] and all(not t.flags for t in result)
    assert [len(r) for r in backend.requests] == [4, 2, 2]


def test_json_grammar_retries_constrains_only_the_second_try() -> None:
    """``retries`` (the default): first tries go without the schema; an unusable answer gets the same batch once
    more with it, before any split; single-line retries keep it."""
    assert TranslatorSettings().json_grammar == "retries"
    backend = FakeBackend(invalid_json_for_batches)
    inputs = sentences(MANY[:6])
    result = LLMTranslator(settings(json_grammar="retries"), backend).translate(
        inputs, source_language="en", target_language="ru"
    )
    assert [t.text for t in result] == [fake_ru(s.text) for s in inputs]
    assert [len(r) for r in backend.requests][:2] == [4, 4]  # the same batch again, constrained
    assert backend.constrained[:2] == [False, True]


def test_json_grammar_retries_sends_no_schema_when_answers_parse() -> None:
    backend = FakeBackend()
    LLMTranslator(settings(json_grammar="retries"), backend).translate(
        sentences(MANY), source_language="en", target_language="ru"
    )
    assert backend.constrained == [False, False, False]


def test_json_grammar_retries_constrains_the_first_try_where_the_prompt_shows_no_example() -> None:
    for target, few in (("de", True), ("ru", False)):  # no example for German targets; none when few_shot is off
        backend = FakeBackend()
        LLMTranslator(settings(json_grammar="retries", few_shot=few), backend).translate(
            sentences(MANY), source_language="en", target_language=target
        )
        assert len(backend.constrained) >= 3 and all(backend.constrained), target  # (a fake ru answer fails a de check)
    # With the example (ru, few_shot on): no schema while answers parse (the test above).


@pytest.mark.parametrize("mode, expected", [("on", True), ("off", False)])
def test_json_grammar_on_and_off(mode: str, expected: bool) -> None:
    backend = FakeBackend(invalid_json_for_batches)
    inputs = sentences(MANY[:6])
    result = LLMTranslator(settings(json_grammar=mode), backend).translate(
        inputs, source_language="en", target_language="ru"
    )
    assert [t.text for t in result] == [fake_ru(s.text) for s in inputs]
    assert set(backend.constrained) == {expected}
    assert [len(r) for r in backend.requests][:2] == [4, 2]  # no second try of the batch: it is split at once


def test_source_copied_back_is_retried_then_flagged(caplog: pytest.LogCaptureFixture) -> None:
    backend = FakeBackend(copy_stubborn)
    texts = MANY[:3] + ["This stubborn sentence stays in English."] + MANY[3:5]
    inputs = sentences(texts)
    caplog.set_level("INFO", logger="pipelines.translate")
    result = LLMTranslator(settings(), backend).translate(inputs, source_language="en", target_language="ru")
    assert_complete(result, inputs)
    stubborn = result[3]
    assert stubborn.text == texts[3] and stubborn.flags == (FLAG_UNTRANSLATED,)
    assert all(t.text == fake_ru(t.source) and not t.flags for t in result if t is not stubborn)
    singles = [r for r in backend.requests if r == {"1": texts[3]}]
    assert len(singles) == 2  # its batch was the first try; then max_retries single tries
    retries = [m[-1]["content"] for m, r in zip(backend.messages, backend.requests) if r == {"1": texts[3]}]
    assert all("Your previous answer was not in Russian" in content for content in retries)
    assert f"sentence {inputs[3].id}: kept in the source language (untranslated" in caplog.text


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("и теории, о которых люди argueют в журналах", ["argueют"]),
        ("Mосква", ["Mосква"]),  # a Latin M
        ("Привет, Dublin и IT-отдел", []),
        ("plain English", []),
    ],
)
def test_mixed_script_words(text: str, found: list[str]) -> None:
    assert mixed_script_words(text) == found


def test_mixed_script_answer_is_retried_with_a_pointed_hint() -> None:
    def mix_once(answer: dict[str, str], lines: dict[str, str]) -> str:
        first_try = not any("mix alphabets" in m[-1]["content"] for m in backend.messages)
        return json.dumps({k: ("люди argueют" if first_try else v) for k, v in answer.items()}, ensure_ascii=False)

    backend = FakeBackend(mix_once)
    inputs = sentences(["People argue about it in journals."])
    result = LLMTranslator(settings(), backend).translate(inputs, source_language="en", target_language="ru")
    assert result[0].text == fake_ru(inputs[0].text) and not result[0].flags
    assert "argueют" in backend.messages[1][-1]["content"]


def test_mixed_script_answer_that_persists_is_flagged() -> None:
    def always_mixed(answer: dict[str, str], lines: dict[str, str]) -> str:
        return json.dumps(dict.fromkeys(answer, "люди argueют"), ensure_ascii=False)

    inputs = sentences(["People argue about it in journals."])
    result = LLMTranslator(settings(), FakeBackend(always_mixed)).translate(
        inputs, source_language="en", target_language="ru"
    )
    assert result[0].flags == (FLAG_MIXED_SCRIPT,) and result[0].text == inputs[0].text


def test_glossary_in_prompt_only_when_used() -> None:
    backend = FakeBackend()
    glossary = {"weather": "погода", "spaceship": "звездолёт"}
    LLMTranslator(settings(), backend).translate(
        sentences(MANY[:2]), source_language="en", target_language="ru", glossary=glossary
    )
    user = backend.messages[0][-1]["content"]
    assert "Glossary, use these translations:\nweather = погода" in user
    assert "spaceship" not in user


def test_blank_and_same_language_lines_skip_the_model() -> None:
    backend = FakeBackend()
    translator = LLMTranslator(settings(), backend)
    result = translator.translate(sentences(["", "Hello there, friend."]), source_language="en", target_language="ru")
    assert result[0].text == "" and not result[0].flags
    assert backend.requests == [{"1": "Hello there, friend."}]
    same = translator.translate(sentences(["Hello."]), source_language="en", target_language="en")
    assert same[0].text == "Hello." and len(backend.requests) == 1


def test_unknown_language_raises() -> None:
    with pytest.raises(UnknownLanguage):
        LLMTranslator(settings(), FakeBackend()).translate(
            sentences(["Hi."]), source_language="en", target_language="xx"
        )


def test_unavailable_backend_raises_translation_failed_at_once() -> None:
    backend = RaisingBackend(BackendUnavailable("server down"))
    with pytest.raises(TranslationFailed, match="server down"):
        LLMTranslator(settings(), backend).translate(sentences(MANY), source_language="en", target_language="ru")
    assert backend.calls == 1


def test_backend_failing_every_request_raises_translation_failed() -> None:
    backend = RaisingBackend(RuntimeError("boom"))
    with pytest.raises(TranslationFailed, match="failed on every request: RuntimeError: boom"):
        LLMTranslator(settings(max_retries=0), backend).translate(
            sentences(MANY[:2]), source_language="en", target_language="ru"
        )


class Shortener(FakeBackend):
    """Answers a shorten request with ``short``; translates as FakeBackend."""

    def __init__(self, short: str = "Коротко.") -> None:
        super().__init__()
        self.short = short

    def complete(
        self, messages: list[dict[str, str]], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        if json_schema == batch_schema(["text"]):
            return json.dumps({"text": self.short}, ensure_ascii=False)
        return super().complete(messages, json_schema=json_schema, max_tokens=max_tokens)


def test_translate_texts_and_shorten() -> None:
    translator = LLMTranslator(settings(), Shortener())
    assert translator.translate_texts(["Good day."], "en", "ru") == [fake_ru("Good day.")]
    assert translator.shorten("Это очень длинное предложение.", target_language="ru", max_chars=10) == "Коротко."
    assert translator.shorten("Да.", target_language="ru", max_chars=2) is None  # not shorter
    assert (
        LLMTranslator(settings(), RaisingBackend(RuntimeError("x"))).shorten(
            "Да, да.", target_language="ru", max_chars=3
        )
        is None
    )


def test_shorten_refuses_an_answer_with_letters_of_another_script() -> None:
    translator = LLMTranslator(settings(), Shortener("В этом房间里 никто."))
    assert translator.shorten("В этой комнате никто никогда не ошибается.", target_language="ru", max_chars=25) is None


# ----------------------------------------------------------------------------- real model


@pytest.fixture(scope="session")
def llama_translator() -> Iterator[LLMTranslator]:
    """One bundled GGUF loaded for the session (skips when llama.cpp or the model is absent)."""
    pytest.importorskip("llama_cpp")
    try:
        translator = make_translator(TranslatorSettings(backend="llama_cpp"), StorageSettings().models_dir)
    except ModelError as exc:
        pytest.skip(f"bundled translator model unavailable: {exc}")
    yield translator


@pytest.mark.slow
def test_real_english_to_russian(llama_translator: LLMTranslator) -> None:
    inputs = sentences(ENGLISH[:3])
    started = time.monotonic()
    result = llama_translator.translate(inputs, source_language="en", target_language="ru")
    print(f"en->ru in {time.monotonic() - started:.1f}s:", [t.text for t in result])
    assert_complete(result, inputs)
    assert all(not t.flags for t in result)
    assert all((script_ratio(t.text, "ru") or 0.0) >= 0.8 for t in result)
    assert "тест" in result[1].text.lower()


@pytest.mark.slow
def test_real_english_to_spanish(llama_translator: LLMTranslator) -> None:
    inputs = sentences(ENGLISH[1:])
    started = time.monotonic()
    result = llama_translator.translate(inputs, source_language="en", target_language="es")
    print(f"en->es in {time.monotonic() - started:.1f}s:", [t.text for t in result])
    assert_complete(result, inputs)
    assert all(not t.flags and t.text != t.source for t in result)
    assert result[0].text.lower().startswith("esto es")
    assert "parque" in result[1].text.lower()
    spanish = {"el", "la", "es", "hoy", "que", "te", "mañana", "por", "en", "un", "una", "parque"}
    assert all(spanish & set(t.text.lower().replace(",", " ").replace(".", " ").split()) for t in result)


@pytest.mark.slow
def test_real_shorten(llama_translator: LLMTranslator) -> None:
    long = "Сегодня очень хорошая погода, поэтому мы все вместе пойдём гулять в большой городской парк."
    short = llama_translator.shorten(long, target_language="ru", max_chars=50)
    print("shortened:", short)
    assert short is not None and len(short) < len(long) and (script_ratio(short, "ru") or 0) >= 0.8
