"""The one glossary parser: both syntaxes, clear errors, the same rules for a file and a form field."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.errors import InvalidGlossary
from pipelines.glossary import filter_glossary, load_glossary, parse_glossary

LINES = "# product names\nRay Serve = Рэй Серв\n\n  GPU =  ГПУ  \nkey = a = b\n"
EXPECTED = {"Ray Serve": "Рэй Серв", "GPU": "ГПУ", "key": "a = b"}


def test_filter_glossary_keeps_only_terms_in_batch() -> None:
    glossary = {f"term{n}": f"термин{n}" for n in range(10_000)}
    glossary.update({"Ray Serve": "Рэй Серв", "GPU": "ГПУ", "cat": "кот"})
    found = filter_glossary(glossary, ["We deploy on ray serve with a gpu.", "Concatenate term42 files."])
    assert found == {"Ray Serve": "Рэй Серв", "GPU": "ГПУ", "term42": "термин42"}
    assert filter_glossary(None, ["x"]) == {}


def test_load_glossary(tmp_path: Path) -> None:
    path = tmp_path / "glossary.txt"
    path.write_text(LINES, encoding="utf-8")
    assert load_glossary(path) == EXPECTED


@pytest.mark.parametrize(
    "text", ['{"Ray Serve": "Рэй Серв", "GPU": " ГПУ"}', '\ufeff\n  {"Ray Serve": "Рэй Серв", "GPU": "ГПУ"}\n']
)
def test_json_object_syntax(text: str) -> None:
    assert parse_glossary(text) == {"Ray Serve": "Рэй Серв", "GPU": "ГПУ"}


def test_blank_text_is_an_empty_glossary() -> None:
    assert parse_glossary(None) == parse_glossary("  \n# only a comment\n") == {}


@pytest.mark.parametrize("line", ["no separator here", "= missing term", "missing translation ="])
def test_load_glossary_rejects_malformed_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "glossary.txt"
    path.write_text(f"\nok = fine\n{line}\n", encoding="utf-8")  # line numbers count the blank first line
    with pytest.raises(InvalidGlossary, match=r"glossary.txt:3: expected 'term = translation'"):
        load_glossary(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{x", "glossary: not a JSON object"),
        ('{"a": 1}', "a JSON object of strings"),
        ('{"a": "b"} trailing', "not a JSON object"),
        ('{"": "b"}', "empty"),
        ('{"a": "  "}', "empty"),
    ],
)
def test_bad_json_is_refused_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(InvalidGlossary, match=message):
        parse_glossary(text)


def test_load_glossary_missing_or_undecodable_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidGlossary, match="cannot read glossary"):
        load_glossary(tmp_path / "absent.txt")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"caf\xe9 = cafe\n")  # Latin-1, not UTF-8
    with pytest.raises(InvalidGlossary, match="cannot read glossary"):
        load_glossary(latin1)


@pytest.mark.parametrize("text", [LINES, '{"Ray Serve": "Рэй Серв", "GPU": "ГПУ", "key": "a = b"}'])
def test_a_file_and_the_upload_form_accept_the_same_glossaries(tmp_path: Path, text: str) -> None:
    """The drift this parser removed: the file loader refused a JSON object that the form accepted."""
    from serve_app.api.routes.jobs import job_create_from_form

    path = tmp_path / "glossary.txt"
    path.write_text(text, encoding="utf-8")
    form = job_create_from_form("f" * 32, {"target_languages": ["ru"], "glossary": [text]})
    assert load_glossary(path) == form.glossary == EXPECTED
