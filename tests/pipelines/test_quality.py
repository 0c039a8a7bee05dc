"""The reader's checks on one translated line (pipelines.quality)."""

from __future__ import annotations

import pytest

from pipelines.quality import (
    dropped_negation,
    foreign_script,
    latin_leftovers,
    length_off,
    mixed_script_words,
    without_foreign_script,
)


@pytest.mark.parametrize(
    ("text", "target", "allowed", "found"),
    [
        ("и как теории, о которых люди argue в журналах", "ru", (), ["argue"]),
        ("Отчёт для Google сдать в пятницу, ok?", "ru", (), ["ok"]),
        ("Купил iPhone и ноутбук Dell", "ru", (), []),  # names and brands: a capital anywhere
        ("Разверните kubernetes на сервере", "ru", ("Kubernetes = kubernetes",), []),  # glossary terms pass
        ("это не rocket science", "uk", (), ["rocket", "science"]),
        ("no es tan complicado, ok", "es", (), []),  # a Latin-script target has no leftovers
        ("Il a dit bonjour", "ru", (), ["dit", "bonjour"]),  # one-letter words are not judged
    ],
)
def test_latin_leftovers(text: str, target: str, allowed: tuple[str, ...], found: list[str]) -> None:
    assert latin_leftovers(text, target, allowed) == found


def test_latin_leftovers_leave_mixed_words_to_the_mixed_check() -> None:
    assert latin_leftovers("люди argueют", "ru") == []
    assert mixed_script_words("люди argueют") == ["argueют"]


SOURCE = "That is to say much of political philosophy develops theories that take no account of reality."


@pytest.mark.parametrize(
    ("source", "text", "pair", "expected"),
    [
        (SOURCE, "То есть политическая философия строит теории, не учитывающие реальность.", ("en", "ru"), None),
        (SOURCE, "То есть философия.", ("en", "ru"), 0.19),  # a dropped clause
        (SOURCE, SOURCE * 3, ("en", "es"), 3.0),  # a runaway answer
        ("Well, good luck.", "Удачи.", ("en", "ru"), None),  # short sources are not judged
        (SOURCE, "政治哲学。", ("en", "zh"), None),  # dense scripts are not judged
    ],
)
def test_length_off(source: str, text: str, pair: tuple[str, str], expected: float | None) -> None:
    assert length_off(source, text, source_language=pair[0], target_language=pair[1],
                      min_ratio=0.4, max_ratio=2.5) == expected


def test_length_off_bound_zero_is_off() -> None:
    kwargs = {"source_language": "en", "target_language": "ru"}
    assert length_off(SOURCE, "Да.", min_ratio=0, max_ratio=2.5, **kwargs) is None
    assert length_off(SOURCE, SOURCE * 4, min_ratio=0.4, max_ratio=0, **kwargs) is None


@pytest.mark.parametrize(
    ("source", "text", "pair", "found"),
    [
        # the demo's line, as the few-shot prompt once rendered it: "ask not" turned into "ask"
        ("And so my fellow Americans, ask not what your country can do for you,",
         "И поэтому наши американцы, спросите, что ваша страна может сделать для вас,", ("en", "ru"), ["not"]),
        ("And so my fellow Americans, ask not what your country can do for you,",
         "И так, мои американские друзья, не спрашивайте, что ваша страна может сделать для вас,", ("en", "ru"), []),
        ("I didn't see that coming.", "Lo vi venir.", ("en", "es"), ["didn't"]),
        ("I didn't see that coming.", "No me lo esperaba.", ("en", "es"), []),
        ("Nobody told us.", "Niemand hat es uns gesagt.", ("en", "de"), []),
        ("Я никогда там не был.", "I have been there.", ("ru", "en"), ["никогда", "не"]),
        ("Я никогда там не был.", "I have never been there.", ("ru", "en"), []),
        ("We all agree.", "Мы все согласны.", ("en", "ru"), []),  # no negation in the source: nothing to lose
        ("I can't say.", "Je ne sais pas.", ("en", "ja"), []),  # no word list for the target: never judged
    ],
)
def test_dropped_negation(source: str, text: str, pair: tuple[str, str], found: list[str]) -> None:
    assert dropped_negation(source, text, source_language=pair[0], target_language=pair[1]) == found


LEAK = "В этом房间里 никто не будет совершать эту ошибку"  # the bench lecture, en->ru, Qwen2.5 1.5B


@pytest.mark.parametrize(
    ("text", "target", "found"),
    [
        (LEAK, "ru", ["房间里"]),
        ("Он сказал 你好 и ушёл, ありがとう", "ru", ["你好", "ありがとう"]),  # Han and kana
        ("Сеул по-корейски 서울", "ru", ["서울"]),
        ("Er sagte สวัสดี und ging", "de", ["สวัสดี"]),
        ("Он написал مرحبا на доске", "ru", ["مرحبا"]),
        ("Il a écrit שלום au tableau", "fr", ["שלום"]),
        ("Nadie en esta habitación cometerá este error, привет", "es", ["привет"]),  # Cyrillic in a Latin target
        ("Это слово λόγος", "ru", ["λόγος"]),  # a Greek word is a slip
        ("Площадь круга равна π r², а Δx мало; α-частицы", "ru", []),  # a lone Greek letter is a symbol
        ("Η περιοχή του κύκλου είναι π r²", "el", []),  # Greek in a Greek target
        ("この部屋では誰もこの間違いをしません。ラーメンは々", "ja", []),  # Han, hiragana, katakana, ー, 々
        ("在这个房间里没有人会犯这个错误。", "zh", []),
        ("이 방에서는 아무도 이 실수를 하지 않을 것입니다", "ko", []),
        ("इस कमरे में कोई भी यह गलती नहीं करेगा", "hi", []),
        ("இந்த அறையில் யாரும் இந்த தவறை செய்ய மாட்டார்கள்", "ta", []),  # a script LANGUAGE_SCRIPT has no ranges for
        ("Купил iPhone в Apple Store за 1000 $", "ru", []),  # Latin names and brands stay allowed
        ("Ｗｉ－Ｆｉ 接続", "ja", []),  # full-width Latin is Latin
    ],
)
def test_foreign_script(text: str, target: str, found: list[str]) -> None:
    assert foreign_script(text, target) == found


def test_a_cjk_leak_glued_to_a_russian_word_is_a_mixed_word_too() -> None:
    assert mixed_script_words(LEAK) == ["этом房间里"]
    assert mixed_script_words("この部屋では") == [] and mixed_script_words("Привет, Dublin и IT-отдел") == []


@pytest.mark.parametrize(
    ("text", "target", "cut"),
    [
        (LEAK, "ru", "В этом никто не будет совершать эту ошибку"),
        ("Он сказал 你好，и ушёл (房间).", "ru", "Он сказал и ушёл."),  # wide punctuation and emptied brackets go
        ("Hola, ¿qué tal? Привет amigo", "es", "Hola, ¿qué tal? amigo"),  # a whole word of another alphabet
        ("Nadie en esta habitaciоn", "es", None),  # a Cyrillic о inside a Spanish word: cutting breaks it
        ("Всё хорошо.", "ru", "Всё хорошо."),
    ],
)
def test_without_foreign_script(text: str, target: str, cut: str | None) -> None:
    assert without_foreign_script(text, target) == cut
