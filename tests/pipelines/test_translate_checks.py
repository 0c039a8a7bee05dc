"""The translator's reader checks (English left in Russian, length far off, a lost negation, Chinese leaking into
Russian), the job's name glossary and the prompt variants, through LLMTranslator with a scripted backend above the
LLMBackend seam; plus one quick
real-model test of the name glossary."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from configs.settings import StorageSettings, TranslatorSettings
from pipelines.backends import LLMBackend
from pipelines.errors import ModelError
from pipelines.quality import SOFT_FLAGS
from pipelines.schema import Sentence, Translation
from pipelines.translate import (
    FLAG_FOREIGN_SCRIPT,
    FLAG_LATIN_WORDS,
    FLAG_LENGTH,
    FLAG_MIXED_SCRIPT,
    FLAG_NEGATION,
    LLMTranslator,
    make_translator,
)

Answer = Callable[[str, int], str]  # (source line, attempt number of that line) -> translation


def last_json(messages: list[dict[str, str]]) -> dict[str, str]:
    user = messages[-1]["content"]
    return json.loads(next(line for line in reversed(user.splitlines()) if line.startswith("{")))


class ScriptedBackend:
    """Answers name requests from ``names`` and translation requests through ``answer``."""

    name = "scripted"

    def __init__(self, answer: Answer, names: dict[str, str] | None = None) -> None:
        self.answer, self.names = answer, names or {}
        self.messages: list[list[dict[str, str]]] = []
        self.tries: dict[str, int] = {}

    def complete(
        self, messages: list[dict[str, str]], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        self.messages.append(messages)
        lines = last_json(messages)
        assert json_schema is None or json_schema["required"] == list(lines)
        if is_names_request(messages):
            return json.dumps({k: self.names.get(k, k) for k in lines}, ensure_ascii=False)
        out = {}
        for key, text in lines.items():
            self.tries[text] = self.tries.get(text, 0) + 1
            out[key] = self.answer(text, self.tries[text])
        return json.dumps(out, ensure_ascii=False)

    def translation_requests(self) -> list[list[dict[str, str]]]:
        return [m for m in self.messages if not is_names_request(m)]


def is_names_request(messages: list[dict[str, str]]) -> bool:
    return "names of people" in messages[0]["content"]


def translator(backend: LLMBackend, **overrides: Any) -> LLMTranslator:
    return LLMTranslator(TranslatorSettings(**{"batch_size": 4, "max_retries": 2, **overrides}), backend)


def sentences(texts: list[str]) -> list[Sentence]:
    return [Sentence(id=i, start_s=float(i), end_s=i + 0.9, text=t) for i, t in enumerate(texts)]


def translate_one(answer: Answer, line: str, target: str = "ru") -> tuple[Translation, list[str]]:
    """``line`` translated from English through ``answer``: the result and each translation request's last message."""
    backend = ScriptedBackend(answer)
    result = translator(backend).translate(sentences([line]), source_language="en", target_language=target)
    return result[0], [m[-1]["content"] for m in backend.translation_requests()]


LINE = "People argue about these theories in the journals all the time."
GOOD = "Люди постоянно спорят об этих теориях в журналах."


def test_english_word_left_is_retried_with_a_hint_naming_it() -> None:
    backend = ScriptedBackend(lambda text, n: "Люди постоянно argue об этих теориях." if n == 1 else GOOD)
    result = translator(backend).translate(sentences([LINE]), source_language="en", target_language="ru")
    assert result[0].text == GOOD and not result[0].flags
    retry = backend.translation_requests()[1][-1]["content"]
    assert "argue" in retry and "untranslated" in retry


def test_english_word_that_persists_keeps_the_answer_and_flags_it() -> None:
    stubborn = "Люди постоянно argue об этих теориях в журналах."
    backend = ScriptedBackend(lambda text, n: stubborn)
    result = translator(backend).translate(sentences([LINE]), source_language="en", target_language="ru")
    assert result[0].text == stubborn and result[0].flags == (FLAG_LATIN_WORDS,)
    assert len(backend.translation_requests()) == 3  # the first try and max_retries more


def test_names_and_glossary_terms_may_stay_latin() -> None:
    text = "Отчёт для Google про kubernetes нужно сдать в пятницу."
    backend = ScriptedBackend(lambda source, n: text)
    result = translator(backend, name_glossary=False).translate(
        sentences(["The Google report on Kubernetes is due on Friday."]), source_language="en",
        target_language="ru", glossary={"Kubernetes": "kubernetes"},
    )
    assert result[0].text == text and not result[0].flags


def test_dropped_clause_is_retried_then_flagged_with_the_answer_kept() -> None:
    short = "Люди спорят."
    backend = ScriptedBackend(lambda text, n: short if n < 3 else GOOD)
    result = translator(backend).translate(sentences([LINE]), source_language="en", target_language="ru")
    assert result[0].text == GOOD and not result[0].flags
    assert "too short" in backend.translation_requests()[1][-1]["content"]

    backend = ScriptedBackend(lambda text, n: short)
    result = translator(backend).translate(sentences([LINE]), source_language="en", target_language="ru")
    assert result[0].text == short and result[0].flags == (FLAG_LENGTH,)


def test_runaway_answer_is_flagged_and_length_bounds_are_settings() -> None:
    runaway = GOOD * 4
    backend = ScriptedBackend(lambda text, n: runaway)
    result = translator(backend).translate(sentences([LINE]), source_language="en", target_language="ru")
    assert result[0].flags == (FLAG_LENGTH,)
    backend = ScriptedBackend(lambda text, n: runaway)
    result = translator(backend, max_length_ratio=0).translate(sentences([LINE]), source_language="en",
                                                               target_language="ru")
    assert not result[0].flags and len(backend.translation_requests()) == 1


DUBLIN = [
    "Last week we looked at how Dublin grew from a small port.",
    "Think about what happened to rents in Dublin after 1990.",
    "Thomas Piketty argues that capital outpaces wages.",
    "We will come back to Dublin on Thursday.",
    "Piketty has data for Dublin as well.",
]


def fake_ru(text: str, n: int) -> str:
    return "Перевод: " + "".join("д" if c.isalpha() else c for c in text)


def test_names_are_asked_once_per_job_and_held_in_every_prompt() -> None:
    backend = ScriptedBackend(fake_ru, names={"Dublin": "Дублин", "Piketty": "Пикетти"})
    translator(backend, batch_size=2, name_min_count=1).translate(sentences(DUBLIN), source_language="en",
                                                                  target_language="ru")
    asked = [m for m in backend.messages if is_names_request(m)]
    assert len(asked) == 1 and backend.messages[0] is asked[0]
    assert set(last_json(asked[0])) == {"Dublin", "Piketty"}
    for request in backend.translation_requests():
        lines = " ".join(last_json(request).values())
        prompt = request[-1]["content"]
        assert ("Dublin = Дублин" in prompt) == ("Dublin" in lines)
        assert ("Piketty = Пикетти" in prompt) == ("Piketty" in lines)


def test_by_default_only_names_that_recur_are_asked_and_none_means_no_request() -> None:
    backend = ScriptedBackend(fake_ru, names={"Dublin": "Дублин", "Piketty": "Пикетти"})
    translator(backend, batch_size=2).translate(sentences(DUBLIN), source_language="en", target_language="ru")
    asked = [m for m in backend.messages if is_names_request(m)]
    assert len(asked) == 1 and set(last_json(asked[0])) == {"Dublin"}  # Dublin four times, Piketty once
    assert any("Dublin = Дублин" in r[-1]["content"] for r in backend.translation_requests())
    backend = ScriptedBackend(fake_ru, names={"Dublin": "Дублин"})
    result = translator(backend).translate(sentences(DUBLIN[2:4]), source_language="en", target_language="ru")
    assert not any(is_names_request(m) for m in backend.messages) and len(result) == 2  # each name said once


def test_the_users_glossary_wins_over_the_name_glossary() -> None:
    backend = ScriptedBackend(fake_ru, names={"Dublin": "Дублин", "Piketty": "Пикетти"})
    translator(backend, name_min_count=1).translate(sentences(DUBLIN), source_language="en", target_language="ru",
                                                    glossary={"Piketty": "Т. Пикетти"})
    assert set(last_json(backend.messages[0])) == {"Dublin"}  # not even asked
    prompts = [r[-1]["content"] for r in backend.translation_requests()]
    assert all("Piketty = Т. Пикетти" in p and "Piketty = Пикетти" not in p for p in prompts)


def test_name_glossary_off_or_a_bad_answer_costs_nothing() -> None:
    backend = ScriptedBackend(fake_ru, names={"Dublin": "Dublинн"})  # mixed script: rejected
    result = translator(backend).translate(sentences(DUBLIN), source_language="en", target_language="ru")
    assert all(not t.flags for t in result)
    assert all("Names" not in r[-1]["content"] for r in backend.translation_requests())
    backend = ScriptedBackend(fake_ru, names={"Dublin": "Дублин"})
    translator(backend, name_glossary=False).translate(sentences(DUBLIN), source_language="en", target_language="ru")
    assert not any(is_names_request(m) for m in backend.messages)


def test_prompt_variants_few_shot_and_native_system_prompt() -> None:
    backend = ScriptedBackend(fake_ru)
    translator(backend, few_shot=True, system_prompt_language="target", name_glossary=False).translate(
        sentences(DUBLIN[:1]), source_language="en", target_language="ru"
    )
    messages = backend.messages[0]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"].startswith("Ты профессиональный переводчик")
    assert "Эдинбург" in messages[2]["content"]
    backend = ScriptedBackend(fake_ru)
    translator(backend, name_glossary=False, few_shot=False).translate(sentences(DUBLIN[:1]), source_language="en",
                                                                       target_language="ru")
    assert [m["role"] for m in backend.messages[0]] == ["system", "user"]
    assert backend.messages[0][0]["content"].startswith("You are a professional subtitle translator")


def test_few_shot_is_left_out_for_german_targets() -> None:
    backend = ScriptedBackend(lambda text, n: "Letzte Woche haben wir über Dublin gesprochen, wirklich.")
    translator(backend, name_glossary=False).translate(sentences(DUBLIN[:1]), source_language="en",
                                                       target_language="de")
    assert [m["role"] for m in backend.messages[0]] == ["system", "user"]


# ----------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def llama_translator() -> Iterator[LLMTranslator]:
    pytest.importorskip("llama_cpp")
    try:
        yield make_translator(TranslatorSettings(backend="llama_cpp"), StorageSettings().models_dir)
    except ModelError as exc:
        pytest.skip(f"bundled translator model unavailable: {exc}")


@pytest.mark.slow
def test_real_name_glossary_holds_dublin(llama_translator: LLMTranslator) -> None:
    lines = ["Last week we talked about Dublin.", "Rents in Dublin went up after 1990."]
    started = time.monotonic()
    result = llama_translator.translate(sentences(lines), source_language="en", target_language="ru")
    print(f"en->ru in {time.monotonic() - started:.1f}s:", [t.text for t in result])
    assert all("Дублин" in t.text and not t.flags for t in result)


JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
TURNED = "И поэтому наши американцы, спросите, что ваша страна может сделать для вас, спросите, что вы можете сделать."
KEPT = "Не спрашивайте, что ваша страна может сделать для вас, спрашивайте, что вы можете сделать для своей страны."


def test_a_lost_negation_is_retried_with_a_hint_then_flagged_with_the_answer_kept() -> None:
    result, requests = translate_one(lambda text, n: TURNED if n == 1 else KEPT, JFK)
    assert result.text == KEPT and not result.flags
    assert '"not"' in requests[1] and "negation" in requests[1]

    result, _ = translate_one(lambda text, n: TURNED, JFK)
    assert result.text == TURNED and result.flags == (FLAG_NEGATION,)


def test_a_retry_goes_without_the_few_shot_example() -> None:
    """A retry is a different prompt (no example exchange), so a near-deterministic model need not repeat itself."""
    backend = ScriptedBackend(lambda text, n: TURNED if n == 1 else KEPT)
    translator(backend, few_shot=True).translate(sentences([JFK]), source_language="en", target_language="ru")
    first, retry = backend.translation_requests()[:2]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user"]
    assert [m["role"] for m in retry] == ["system", "user"] and "negation" in retry[-1]["content"]


ROOM = "Nobody in this room will make this mistake."
LEAKED = "В этом房间里 никто не будет совершать эту ошибку."  # the bench lecture, en->ru, Qwen2.5 1.5B
CLEAN = "В этой комнате никто не будет совершать эту ошибку."


def test_a_leak_of_chinese_is_retried_with_a_hint_naming_it_and_the_clean_answer_kept() -> None:
    result, requests = translate_one(lambda text, n: LEAKED if n == 1 else CLEAN, ROOM)
    assert result.text == CLEAN and not result.flags
    assert "another writing system (房间里)" in requests[1] and "Write the whole line in Russian only." in requests[1]


def test_a_leak_that_persists_is_cut_out_and_flagged_where_the_rest_still_reads() -> None:
    result, requests = translate_one(lambda text, n: LEAKED, ROOM)
    assert result.text == "В этом никто не будет совершать эту ошибку." and result.flags == (FLAG_FOREIGN_SCRIPT,)
    assert len(requests) == 3  # the first try and max_retries more
    assert FLAG_FOREIGN_SCRIPT in SOFT_FLAGS  # so the report lists it in quality_flagged and an edit clears it


@pytest.mark.parametrize(
    ("answer", "target"),
    [
        ("В этой комнате 没有人会犯这个错误.", "ru"),  # cut, it is too short and lost its negation
        ("Nadie en esta habitaciоn cometerá este error.", "es"),  # a Cyrillic о: cutting it breaks the word
    ],
)
def test_a_leak_that_persists_and_cannot_be_cut_keeps_the_source_like_a_broken_word(answer: str, target: str) -> None:
    result, requests = translate_one(lambda text, n: answer, ROOM, target)
    assert result.text == ROOM and result.flags == (FLAG_MIXED_SCRIPT,)
    assert "another writing system" in requests[1]


def test_a_japanese_target_keeps_its_kana_and_han() -> None:
    japanese = "この部屋では誰もこの間違いをしません。"
    result, requests = translate_one(lambda text, n: japanese, ROOM, "ja")
    assert result.text == japanese and not result.flags and len(requests) == 1


# ----------------------------------------------------------------------------- retry rounds (issue 17)

MIDDLE = "We will come back to it on Thursday."
MIDDLE_RU = "Мы вернёмся к этому в четверг."
LEFT = "Люди постоянно argue об этих теориях в журналах."  # LINE with an English word left
LEFT_HINT = ("Your previous answer left words untranslated (English words left: argue). "
             "Translate them into Russian; only names may stay as they are.")  # fmt: skip
NEGATION_HINT = 'Your previous answer turned the meaning round: the negation was lost: the line says "not"'
LEAK_HINT = "Your previous answer had characters of another writing system (房间里). Write the whole line in Russian only."


def rounds(*answers: dict[str, str]) -> Answer:
    """The answer to a line on its n-th request: ``answers[n - 1]``'s (the last one's from then on), else MIDDLE_RU."""
    return lambda text, n: answers[min(n, len(answers)) - 1].get(text, MIDDLE_RU)


def test_lines_failing_checks_are_retried_together_each_with_its_own_hint() -> None:
    backend = ScriptedBackend(rounds({LINE: LEFT, JFK: TURNED}, {LINE: GOOD, JFK: KEPT}))
    result = translator(backend, retry_together=True).translate(sentences([LINE, MIDDLE, JFK]), source_language="en",
                                                                target_language="ru")
    assert [(t.text, t.flags) for t in result] == [(GOOD, ()), (MIDDLE_RU, ()), (KEPT, ())]
    first, retry = backend.translation_requests()  # was 3: the batch, then each failed line alone (halved)
    assert last_json(first) == {"1": LINE, "2": MIDDLE, "3": JFK}
    assert last_json(retry) == {"1": LINE, "2": JFK}
    assert [m["role"] for m in retry] == ["system", "user"]  # no example, as any retry
    notes = retry[-1]["content"].split("Notes on your previous answer:\n")[1]
    line_1, line_2 = notes.splitlines()
    assert line_1 == f"- line 1: {LEFT_HINT}"
    assert line_2.startswith(f"- line 2: {NEGATION_HINT}") and "argue" not in line_2


def test_by_default_a_batch_with_two_failed_lines_is_halved_and_each_hint_names_its_own_fault() -> None:
    backend = ScriptedBackend(rounds({LINE: LEFT, JFK: TURNED}, {LINE: LEFT, JFK: TURNED}, {LINE: GOOD, JFK: KEPT}))
    result = translator(backend).translate(sentences([LINE, MIDDLE, JFK]), source_language="en", target_language="ru")
    assert [(t.text, t.flags) for t in result] == [(GOOD, ()), (MIDDLE_RU, ()), (KEPT, ())]
    requests = backend.translation_requests()
    assert [last_json(r) for r in requests] == [{"1": LINE, "2": MIDDLE, "3": JFK}, {"1": LINE}, {"1": LINE},
                                                {"1": JFK}, {"1": JFK}]  # fmt: skip
    assert "Notes on your previous answer" not in " ".join(r[-1]["content"] for r in requests)
    assert requests[2][-1]["content"].endswith("\n\n" + LEFT_HINT)
    hint = requests[4][-1]["content"].rsplit("\n\n", 1)[-1]  # JFK's own fault, not LINE's ("argue" left)
    assert hint.startswith(NEGATION_HINT) and "argue" not in hint


def test_a_line_fixed_in_round_one_leaves_round_two_to_the_stubborn_one_alone() -> None:
    backend = ScriptedBackend(rounds({LINE: LEFT, ROOM: LEAKED}, {LINE: GOOD, ROOM: LEAKED}))
    result = translator(backend, retry_together=True).translate(sentences([LINE, ROOM]), source_language="en", target_language="ru")
    assert [(t.text, t.flags) for t in result] == [
        (GOOD, ()), ("В этом никто не будет совершать эту ошибку.", (FLAG_FOREIGN_SCRIPT,))  # cut and flagged
    ]  # fmt: skip
    requests = backend.translation_requests()  # was 5: the batch, LINE alone, ROOM alone and 2 retries of it
    assert [last_json(r) for r in requests] == [{"1": LINE, "2": ROOM}, {"1": LINE, "2": ROOM}, {"1": ROOM}]
    assert "Notes on your previous answer:\n- line 1: Your previous answer left words" in requests[1][-1]["content"]
    assert requests[2][-1]["content"].endswith("\n\n" + LEAK_HINT)  # a single line: the hint as it always was


class GarbledNotes(ScriptedBackend):
    """Answers a retry of several lines (one with notes) with something that is not JSON."""

    def complete(
        self, messages: list[dict[str, str]], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        if "Notes on your previous answer" in messages[-1]["content"]:
            self.messages.append(messages)
            return "Sorry, I cannot help with that."
        return super().complete(messages, json_schema=json_schema, max_tokens=max_tokens)


def test_a_retry_of_several_lines_that_does_not_parse_falls_back_to_single_lines() -> None:
    backend = GarbledNotes(rounds({LINE: LEFT, JFK: TURNED}, {LINE: GOOD, JFK: TURNED}))
    result = translator(backend, retry_together=True).translate(sentences([LINE, JFK]), source_language="en", target_language="ru")
    assert [(t.text, t.flags) for t in result] == [(GOOD, ()), (TURNED, (FLAG_NEGATION,))]  # the soft answer kept
    requests = backend.translation_requests()  # was 5 too: the batch, each line alone, 2 retries of JFK
    assert [last_json(r) for r in requests] == [
        {"1": LINE, "2": JFK}, {"1": LINE, "2": JFK}, {"1": LINE}, {"1": JFK}, {"1": JFK}
    ]  # fmt: skip
    singles = [r[-1]["content"] for r in requests[2:]]
    assert singles[0].endswith("\n\n" + LEFT_HINT)  # each line's own fault, not the garbled answer's
    assert all(NEGATION_HINT in s and "Notes" not in s for s in singles[1:])
