"""Language codes: canonical forms and target lists."""

from __future__ import annotations

import pytest

from pipelines.errors import UnknownLanguage
from pipelines.languages import normalize_language, normalize_targets


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
