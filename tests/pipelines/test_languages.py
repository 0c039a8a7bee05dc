"""Language codes: canonical forms and target lists."""

from __future__ import annotations

import pytest

from pipelines.errors import UnknownLanguage
from pipelines.languages import letter_script, normalize_language, normalize_targets, written_scripts


def test_normalize_language_is_case_and_region_insensitive() -> None:
    assert [normalize_language(c) for c in ("RU", "pt_BR", " en-us ")] == ["ru", "pt", "en"]
    with pytest.raises(UnknownLanguage, match="'klingon'"):
        normalize_language("klingon")


@pytest.mark.parametrize("codes", ["ru,ES, ru-RU", ["ru", "ES", " ", "ru-RU"]])
def test_normalize_targets_keeps_first_occurrence_order(codes: str | list[str]) -> None:
    assert normalize_targets(codes) == ["ru", "es"]


@pytest.mark.parametrize("codes", ["", " , ", [], [" "]])
def test_no_target_left_is_an_error_not_an_empty_job(codes: str | list[str]) -> None:
    with pytest.raises(UnknownLanguage, match="no target language"):
        normalize_targets(codes)


def test_letter_script_names_the_script_of_a_letter_by_unicode_name() -> None:
    scripts = [letter_script(c) for c in "жbéπ房の々ー가กاאक"]
    assert scripts == ["cyrillic", "latin", "latin", "greek", "han", "kana", "han", "kana", "hangul", "thai",
                       "arabic", "hebrew", "devanagari"]  # fmt: skip
    assert [letter_script(c) for c in "1 ,ªµ𝜋"] == [None] * 6  # no letter, or a letter of no one script
    assert letter_script("Ａ") == "latin" and letter_script("ｱ") == "kana"  # full- and half-width forms


def test_written_scripts_add_the_languages_own_to_latin() -> None:
    assert written_scripts("es") == {"latin"}
    assert written_scripts("ru-RU") == {"latin", "cyrillic"}
    assert written_scripts("ja") == {"latin", "han", "kana"} and written_scripts("zh") == {"latin", "han"}
    assert written_scripts("ta") == {"latin", "tamil"}
