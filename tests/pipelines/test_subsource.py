"""Subtitle files as a source: strict SRT/WebVTT/ASS parsing (errors name the line), the language, rough timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.errors import InvalidSubtitles, UnknownLanguage
from pipelines.schema import Cue, Translation
from pipelines.subjob import retime, subtitle_stem
from pipelines.subsource import (
    check_timing,
    parse_srt,
    read_subtitles,
    subtitle_kind,
    subtitle_language,
    transcript_from_cues,
)

SRT = """1
00:00:00,500 --> 00:00:02,000
<i>Hello</i> there.

2
00:00:02,500 --> 00:00:04,000
How are
you today?
"""


def test_srt_cues_text_and_timing() -> None:
    cues = parse_srt(SRT)
    assert cues == [Cue(0.5, 2.0, ("Hello there.",)), Cue(2.5, 4.0, ("How are", "you today?"))]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("1\n00:00:01,000 -> 00:00:02,000\nHi\n", 2),  # a broken arrow
        ("1\n00:00:01,000 --> 00:00:02,000\nHi\n\n2\nno timing here\nHi\n", 6),
        ("1\n00:00:03,000 --> 00:00:02,000\nHi\n", 2),  # ends before it starts
        ("1\n00:00:01,000 --> 00:00:02,000\nHi\n2\n00:00:02,500 --> 00:00:03,000\nthere\n", 5),  # no blank line
        ("1\n00:00:01,000 --> 00:00:02,000\n\n", 2),  # no text
    ],
)
def test_malformed_srt_is_an_error_naming_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "bad.srt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidSubtitles, match=rf"bad\.srt line {line}\b"):
        read_subtitles(path)


def test_vtt_and_ass_and_sniffing(tmp_path: Path) -> None:
    vtt = tmp_path / "a.vtt"
    vtt.write_text("WEBVTT\n\nNOTE a note\n\nintro\n00:01.000 --> 00:02.500 align:start\nFish &amp; <b>chips</b>\n", encoding="utf-8")
    assert read_subtitles(vtt) == [Cue(1.0, 2.5, ("Fish & chips",))]
    ass = tmp_path / "a.ass"
    ass.write_text(
        "[Script Info]\nScriptType: v4.00+\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, "
        "MarginV, Effect, Text\nDialogue: 0,0:00:01.00,0:00:03.00,Default,,0,0,0,,{\\i1}Line one\\Nline two\n",
        encoding="utf-8",
    )
    assert read_subtitles(ass) == [Cue(1.0, 3.0, ("Line one", "line two"))]
    unnamed = tmp_path / "upload.bin"
    unnamed.write_text(SRT, encoding="utf-8")
    assert subtitle_kind(unnamed) == "srt" and subtitle_kind(vtt) == "vtt" and subtitle_kind(tmp_path / "x.mp4") is None
    bad_vtt = tmp_path / "b.vtt"
    bad_vtt.write_text("00:01.000 --> 00:02.000\nHi\n", encoding="utf-8")
    with pytest.raises(InvalidSubtitles, match="line 1"):
        read_subtitles(bad_vtt)


def test_not_utf8_and_empty_files_are_errors(tmp_path: Path) -> None:
    latin = tmp_path / "l.srt"
    latin.write_bytes(b"1\n00:00:01,000 --> 00:00:02,000\nCaf\xe9\n")
    with pytest.raises(InvalidSubtitles, match="line 3: not UTF-8"):
        read_subtitles(latin)
    empty = tmp_path / "e.srt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InvalidSubtitles, match="no subtitle cues"):
        read_subtitles(empty)


def test_language_from_flag_or_file_name() -> None:
    assert subtitle_language(["talk.srt"], "EN") == "en"
    assert subtitle_language(["talk.de.srt"], None) == "de"
    with pytest.raises(UnknownLanguage, match="--from"):
        subtitle_language(["talk.srt"], None)
    assert subtitle_stem(Path("talk.en.srt")) == "talk" and subtitle_stem(Path("my.talk.srt")) == "my.talk"


def test_rough_timing_is_found() -> None:
    cues = [Cue(0.0, 2.0, ("a",)), Cue(1.5, 3.0, ("b",)), Cue(3.0, 9.0, ("c",))]
    check = check_timing(cues, media_end_s=8.0)
    assert check.rough and check.overlapping == (2,) and check.past_media_end == (3,)
    assert not check_timing(cues[:1], media_end_s=8.0).rough


def test_cues_become_a_transcript_with_words_inside_each_cue() -> None:
    t = transcript_from_cues(parse_srt(SRT), "en", 5.0)
    assert [s.text for s in t.segments] == ["Hello there.", "How are you today?"]
    second = t.segments[1]
    assert second.words[0].start_s == 2.5 and second.words[-1].end_s == pytest.approx(4.0)
    assert "".join(w.text for w in second.words).strip() == "How are you today?"


def test_retime_keeps_timing_and_resplits_only_what_breaks_the_rules() -> None:
    cues = [Cue(0.0, 2.0, ("Hi.",)), Cue(3.0, 9.0, ("Long one.",))]
    long = "una frase muy larga que no cabe en dos lineas de cuarenta y dos caracteres cada una, de verdad"
    out, resplit = retime(cues, [Translation(0, "Hi.", "Hola."), Translation(1, "Long one.", long)])
    assert out[0] == Cue(0.0, 2.0, ("Hola.",)) and resplit == 1 and len(out) == 3
    assert out[1].start_s == 3.0 and out[-1].end_s <= 9.0
    assert all(len(c.lines) <= 2 and all(len(line) <= 42 for line in c.lines) for c in out)
    same, none = retime(cues, [Translation(0, "Hi.", "Hola."), Translation(1, "Long one.", "Uno largo.")])
    assert none == 0 and [(c.start_s, c.end_s) for c in same] == [(0.0, 2.0), (3.0, 9.0)]
