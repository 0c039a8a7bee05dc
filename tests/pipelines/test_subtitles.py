"""SRT/WebVTT writing and reading, and sanitising untrusted cue text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pysubs2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.errors import InputNotFound
from pipelines.schema import Cue
from pipelines.subtitles import (
    parse_cues,
    read_cues,
    sanitize_cue,
    sanitize_cues,
    sanitize_line,
    to_srt,
    to_vtt,
    write_srt,
    write_vtt,
)

CUES = [
    Cue(0.0, 2.5, ("And so my fellow Americans,", "ask not")),
    Cue(2.54, 5.0, ("Итак, мои дорогие американцы,",)),
    Cue(3661.001, 3662.999, ("Fish & chips", "cost 5 > 3")),
]


def test_to_srt_exact_text() -> None:
    assert to_srt(CUES[:2]) == (
        "1\n00:00:00,000 --> 00:00:02,500\nAnd so my fellow Americans,\nask not\n\n"
        "2\n00:00:02,540 --> 00:00:05,000\nИтак, мои дорогие американцы,\n\n"
    )


def test_to_vtt_has_header_and_escapes() -> None:
    text = to_vtt(CUES)
    assert text.startswith("WEBVTT\n\n")
    assert "01:01:01.001 --> 01:01:02.999\nFish &amp; chips\ncost 5 &gt; 3\n" in text
    assert "a <3" not in to_vtt([Cue(0, 1, ("a <3 b",))])
    assert "a &lt;3 b" in to_vtt([Cue(0, 1, ("a <3 b",))])


@pytest.mark.parametrize("writer", [write_srt, write_vtt])
def test_round_trip_through_files(tmp_path: Path, writer: Callable[[Sequence[Cue], Path], Path]) -> None:
    path = tmp_path / "out.sub"
    assert writer(CUES, path) == path
    assert read_cues(path) == CUES
    assert [p.name for p in tmp_path.iterdir()] == ["out.sub"]  # no temp file left behind


def test_write_is_atomic_replace(tmp_path: Path) -> None:
    path = tmp_path / "a.srt"
    path.write_text("old", encoding="utf-8")
    write_srt(CUES[:1], path)
    assert read_cues(path) == CUES[:1]


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "dir_not_file"
    target.mkdir()
    with pytest.raises(OSError):
        write_srt(CUES, target)  # os.replace onto a directory fails
    assert [p.name for p in tmp_path.iterdir()] == ["dir_not_file"]


def test_times_round_to_milliseconds() -> None:
    cues = parse_cues(to_srt([Cue(1.0004, 2.0006, ("x",))]))
    assert cues == [Cue(1.0, 2.001, ("x",))]


def test_read_missing_file_raises_domain_error(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound):
        read_cues(tmp_path / "nope.srt")


def test_read_third_party_files(tmp_path: Path) -> None:
    vtt = tmp_path / "x.vtt"
    vtt.write_text(
        "\ufeffWEBVTT\n\nNOTE a comment\n\n00:01.000 --> 00:02.000 align:start\n<v Roger>Hi &amp; <i>bye</i>\n\n",
        encoding="utf-8",
    )
    assert read_cues(vtt) == [Cue(1.0, 2.0, ("Hi & bye",))]
    srt = tmp_path / "x.srt"
    srt.write_text("1\r\n00:00:01,000 --> 00:00:02,000\r\n<i>Hello</i>\r\nworld\r\n\r\n", encoding="utf-8")
    assert read_cues(srt) == [Cue(1.0, 2.0, ("Hello", "world"))]


# --------------------------------------------------------------------------------- injection

MALICIOUS = [
    "fine\n\n2\n00:00:09,000 --> 00:00:10,000\nINJECTED",
    "a --> b ---> c -- > d",
    "<b>bold</b> <script>alert(1)</script> <font color=red>red</font>",
    "{\\an8}top {\\b1}bold{\\b0} {x{y}z} \\N newline \\h",
    "00:00:01,000 00:00:02,000",
    "12:34.567 --> 12:35.000",
    "1\n00:00:01,000 --> 00:00:02,000",
    "line\r\nbreak\rcarriage\u2028sep\x0bvt\x00nul",
    "x < y and y > z, &amp; &lt;b&gt;",
    "WEBVTT\n\nNOTE evil",
    "<c.yellow>yellow</c> <00:00:01.500>karaoke <v Bob>voice",
    "   ",
    "text\n42",
]


def test_sanitize_line_examples() -> None:
    assert sanitize_line("a --> b ---> c") == "a → b → c"
    assert sanitize_line("<b>bold</b> <script>x</script>") == "bold x"
    assert sanitize_line("{\\an8}top \\N") == "top ∖N"
    assert sanitize_line("x < y and y > z") == "x ‹ y and y > z"
    assert sanitize_line("a <3 b") == "a <3 b"
    assert sanitize_line("00:00:01,000") == "00∶00∶01,000"
    assert sanitize_line("at 10:30 we met") == "at 10:30 we met"  # no seconds fraction: not a timestamp
    assert sanitize_line("  tab\there  ") == "tab here"


def test_sanitize_cue_drops_blank_lines_and_keeps_trailing_number() -> None:
    assert sanitize_cue(Cue(0, 1, ("a\n\nb", "  "))) == Cue(0, 1, ("a", "b"))
    assert sanitize_cue(Cue(0, 1, ("The answer is", "42"))) == Cue(0, 1, ("The answer is 42",))
    assert sanitize_cue(Cue(0, 1, ("<b></b>", ""))) is None
    assert sanitize_cue(Cue(-1, -2, ("x",))) == Cue(0, 0, ("x",))


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
@pytest.mark.parametrize("text", MALICIOUS)
def test_malicious_text_cannot_add_cues_or_styling(text: str, fmt: str) -> None:
    cues = [Cue(0.0, 1.0, ("before",)), Cue(1.5, 3.0, tuple(text.split("\n"))), Cue(4.0, 5.0, ("after",))]
    rendered = to_srt(cues) if fmt == "srt" else to_vtt(cues)
    expected = sanitize_cues(cues)
    assert parse_cues(rendered) == expected
    # An independent reader agrees on the number of cues, and sees no styling.
    subs = pysubs2.SSAFile.from_string(rendered, format_=fmt)
    assert len(subs) == len(expected)
    assert all("{" not in e.text for e in subs)
    for cue in expected:
        for line in cue.lines:
            assert "-->" not in line and "\\" not in line and "{" not in line
            assert line.strip() == line and line


def test_vtt_body_has_no_raw_markup_from_text() -> None:
    body = to_vtt([Cue(0, 1, ("<b>x</b> a < b > c & d",))]).split("\n", 2)[2]
    assert "<" not in body and "&amp;" in body and "&gt;" in body


_nasty = st.lists(
    st.sampled_from(list("ab1:,.-> <{}\\/&\n\r\t") + ["-->", "00:00:01,000", "12:34.567", "<b>", "{\\an8}", "\u2028"]),
    max_size=30,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(_nasty, min_size=1, max_size=3), st.integers(0, 10**7)), max_size=5))
def test_property_any_text_round_trips(cue_spec: list[tuple[list[str], int]]) -> None:
    cues = [Cue(ms / 1000, ms / 1000 + 1.0, tuple(lines)) for lines, ms in sorted(cue_spec, key=lambda c: c[1])]
    expected = sanitize_cues(cues)
    assert parse_cues(to_srt(cues)) == expected
    assert parse_cues(to_vtt(cues)) == expected
