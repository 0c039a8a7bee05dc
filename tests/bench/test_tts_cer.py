"""The TTS intelligibility bench's scoring (bench/tts_cer.py): normalisation, numbers both ways, CER, the
sentence sets and the rule that turns its figures into defaults. Fast: no model, no synthesis."""

from __future__ import annotations

import pytest

from bench import tts_cer
from bench.tts_cer import cer, load_set, measured_default, normalise, score, sentence_errors

TARGETS = ("ru", "es", "de", "fr", "it", "pt", "ja")


def test_punctuation_case_and_yo_do_not_count() -> None:
    assert normalise("Привет! Как ДЕЛА, Алёша?", "ru") == "привет как дела алеша"
    assert normalise("«Cien años de soledad»", "es") == "cien años de soledad"
    assert normalise("こんにちは！ 今日は？", "ja") == "こんにちは今日は"  # no spaces in Japanese
    assert cer("Bonjour ! Comment allez-vous ?", "bonjour comment allez vous", "fr") == 0.0


def test_numbers_compare_equal_in_digits_or_words_both_ways() -> None:
    assert cer("Поезд в 7 часов 45 минут.", "Поезд в семь часов сорок пять минут", "ru") == 0.0
    assert cer("Поезд в семь часов.", "Поезд в 7 часов", "ru") == 0.0
    assert cer("Picasso nació en 1881.", "Picasso nació en mil ochocientos ochenta y uno.", "es") == 0.0
    assert cer("Sie ist 16 Jahre alt.", "Sie ist sechzehn Jahre alt.", "de") == 0.0
    assert cer("Ele tem 16 anos.", "Ele tem dezesseis anos.", "pt") == 0.0  # Brazilian, not "dezasseis"
    assert cer("富士山の高さは3776メートルです。", "富士山の高さは三千七百七十六メートルです", "ja") == 0.0
    assert normalise("3 776 метров", "ru") == normalise("3776 метров", "ru") == normalise("3,776 метров", "ru")


def test_real_errors_count() -> None:
    assert cer("кот", "кит", "ru") == pytest.approx(1 / 3)
    assert cer("Поезд в 7 часов.", "Поезд в 8 часов", "ru") > 0.1
    assert cer("Hola", "", "es") == 1.0
    assert cer("Hola", "hola hola hola hola", "es") > 1.0  # a looping transcript can exceed 100 %


def test_corpus_cer_weights_by_length_and_keeps_median_and_worst() -> None:
    result = score(["кот", "собака лает"], ["кит", "собака лает"], "ru")
    assert result["cer"] == pytest.approx(1 / 14)  # 1 edit over 3 + 11 characters
    assert result["cer_max"] == pytest.approx(1 / 3) and result["cer_median"] == pytest.approx(1 / 3)
    looping = score(["кот", "собака лает"], ["кот кот кот кот кот", "собака лает"], "ru")
    assert looping["cer"] == pytest.approx(3 / 14)  # the looping sentence counts as wholly lost, no more
    assert looping["cer_uncapped"] == pytest.approx(16 / 14) and looping["cer_max"] == pytest.approx(16 / 3)


def test_the_closest_reference_form_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "В 2024 году."
    heard = "В две тысячи двадцать четвертом году"
    assert sentence_errors(text, heard, "ru")[0] == 0  # as pipelines/normalize.py has the TTS say it
    monkeypatch.setattr(tts_cer, "tts_text", lambda t, lang: None)
    assert sentence_errors(text, heard, "ru")[0] > 0  # against the cardinal "четыре" alone it would count
    assert sentence_errors(text, "В 2024 году", "ru")[0] == 0


def test_sentence_sets_are_big_enough_and_distinct() -> None:
    for lang in TARGETS:
        sentences = load_set(lang)
        assert len(sentences) >= 20 and len(set(sentences)) == len(sentences), lang
        assert any(any(c.isdigit() for c in s) for s in sentences), lang  # numbers exercise text normalisation
        assert any(s.rstrip().endswith(("?", "？")) for s in sentences), lang
    assert set(TARGETS) <= set(tts_cer.languages())


def _row(voice: str, cer_: float, speed: float = 10.0, eligible: bool = True) -> dict[str, object]:
    return {"voice": voice, "engine": voice.split(":")[0], "cer": cer_, "speed_x": speed, "default_eligible": eligible}


def test_measured_default_picks_the_lowest_eligible_cer_never_worse_than_espeak() -> None:
    rows = [_row("espeak:ru", 0.4, 100), _row("rhvoice:a", 0.05, 30), _row("rhvoice:b", 0.03, 20),
            _row("mbrola:x", 0.0, 200, eligible=False)]  # fmt: skip
    assert measured_default(rows) == ("rhvoice:b", "lowest CER of the eligible catalog voices")
    tie = [_row("espeak:ru", 0.4), _row("rhvoice:a", 0.03, 30), _row("rhvoice:b", 0.03, 20)]
    assert measured_default(tie)[0] == "rhvoice:a"  # speed breaks the tie
    worse = [_row("espeak:de", 0.1), _row("kokoro:x", 0.2), _row("mbrola:de2", 0.01, eligible=False)]
    assert measured_default(worse) == ("espeak:de", "espeak-ng (no eligible catalog voice better than espeak-ng)")
    assert measured_default([_row("espeak:nl", 0.3)]) == ("espeak:nl", "espeak-ng (no catalog voice)")
