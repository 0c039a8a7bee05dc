"""The job's name glossary helpers (pipelines.names)."""

from __future__ import annotations

import json

from pipelines.names import MAX_NAMES, accept_names, candidate_names, merge, names_request


def test_candidate_names_skip_sentence_openers_and_common_capitals() -> None:
    texts = [
        "Last week we looked at how Dublin grew into a capital city.",
        "Thomas Piketty argues that returns outpace wages, as Jane Jacobs said on Monday.",
        "If that sounds abstract, think about rents in Dublin. I mean it.",
    ]
    names = candidate_names(texts, "en")
    assert names[0] == "Dublin"  # most frequent first
    assert set(names) == {"Dublin", "Piketty", "Jane Jacobs"}  # no "Last", "Thomas" (opens), "Monday", "I"


def test_candidate_names_other_languages() -> None:
    assert candidate_names(["Архитектор Алексей Душкин вспоминал о Москве."], "ru") == ["Алексей Душкин", "Москве"]
    assert candidate_names(["¿Por qué? Vive en Ciudad de México, dice."], "es") == ["Ciudad de México"]
    assert candidate_names(["Der Bericht für Google ist fällig."], "de") == []  # every noun has a capital
    many = [f"Kar{chr(97 + i)}" for i in range(26)]
    assert candidate_names([f"We met {name} today." for name in many], "en") == many[:MAX_NAMES]


def test_candidate_names_can_keep_only_those_that_recur() -> None:
    texts = ["We met Anna in Dublin.", "So we met Anna in Cork.", "We wrote to Anna from Dublin."]
    assert candidate_names(texts, "en", min_count=2) == ["Anna", "Dublin"]  # Anna 3 times, Dublin twice
    assert candidate_names(texts, "en", min_count=3) == ["Anna"]
    assert set(candidate_names(texts, "en")) == {"Anna", "Dublin", "Cork"}


def test_candidate_names_leave_out_the_users_terms() -> None:
    assert candidate_names(["We use Ray Serve in Dublin."], "en", exclude={"ray serve": "Рэй Серв"}) == ["Dublin"]


def test_names_request_asks_for_every_name_as_a_key() -> None:
    messages = names_request(["Dublin", "Jane Jacobs"], "en", "ru")
    assert "Russian" in messages[0]["content"]
    last = messages[-1]["content"].splitlines()[-1]
    assert json.loads(last) == {"Dublin": "Dublin", "Jane Jacobs": "Jane Jacobs"}


def test_accept_names_keeps_only_plausible_forms() -> None:
    answer = {
        "Dublin": "Дублин",
        "Piketty": "Пикетти",
        "Google": "Google",  # unchanged: nothing to hold
        "Berlin": "Берлinн",  # mixed script
        "Toronto": "торонто",  # not capitalised
        "Munich": "Мюнхенский город на юге Германии",  # far too long
        "Peter": "Peter Петер",  # not in the target script
    }
    assert accept_names(answer, "en", "ru") == {"Dublin": "Дублин", "Piketty": "Пикетти"}
    assert accept_names({"Москве": "Moscow", "Казани": "Казань"}, "ru", "en") == {"Москве": "Moscow"}
    assert accept_names({"Dublin": "都柏林", "Piketty": "Piketty"}, "en", "es") == {}  # Chinese in a Spanish target


def test_merge_lets_the_users_glossary_win() -> None:
    names = {"Dublin": "Дублин", "Piketty": "Пикетти"}
    assert merge(names, {"piketty": "Пикетти Т."}) == {"Dublin": "Дублин"}
    assert merge(names, None) == names
