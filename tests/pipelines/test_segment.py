"""Sentence merging and cue splitting: pure functions, no models."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.schema import Cue, Segment, Sentence, Transcript, Translation, Word
from pipelines.segment import (
    CueRules,
    TimedText,
    compliance,
    merge_sentences,
    split_cues,
    timed_from_sentences,
    timed_from_translations,
)

RULES = CueRules()


def words(*spec: tuple[float, float, str]) -> tuple[Word, ...]:
    return tuple(Word(start, end, text) for start, end, text in spec)


def evenly(text: str, start_s: float, step_s: float = 0.3, gap_s: float = 0.05) -> tuple[Word, ...]:
    """Words the way faster-whisper gives them: a leading space, back to back."""
    out = []
    t = start_s
    for w in text.split():
        out.append(Word(round(t, 3), round(t + step_s, 3), " " + w))
        t += step_s + gap_s
    return tuple(out)


def segment(ws: tuple[Word, ...]) -> Segment:
    return Segment(ws[0].start_s, ws[-1].end_s, "".join(w.text for w in ws), ws)


def transcript(*segments: Segment) -> Transcript:
    return Transcript("en", 0.99, segments[-1].end_s if segments else 0.0, tuple(segments))


JFK_1 = words(
    (0.0, 0.74, " And"),
    (0.74, 0.96, " so"),
    (0.96, 1.34, " my"),
    (1.34, 1.82, " fellow"),
    (1.82, 3.08, " Americans,"),
    (3.54, 3.90, " ask"),
    (3.90, 4.42, " not"),
)
JFK_2 = words(
    (5.32, 5.62, " what"),
    (5.62, 5.84, " your"),
    (5.84, 6.24, " country"),
    (6.24, 6.56, " can"),
    (6.56, 7.18, " do"),
    (7.18, 7.44, " for"),
    (7.44, 8.16, " you,"),
    (8.50, 8.72, " ask"),
    (8.72, 9.06, " what"),
    (9.06, 9.30, " you"),
    (9.30, 9.62, " can"),
    (9.62, 9.86, " do"),
    (9.86, 10.10, " for"),
    (10.10, 10.34, " your"),
    (10.34, 10.94, " country."),
)


# ----------------------------------------------------------------------------- merge_sentences


def test_jfk_sentence_split_across_two_segments_is_merged() -> None:
    out = merge_sentences(transcript(segment(JFK_1), segment(JFK_2)))
    assert len(out) == 1
    s = out[0]
    assert s.id == 0
    assert s.text == (
        "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    )
    assert (s.start_s, s.end_s) == (0.0, 10.94)
    assert s.words == JFK_1 + JFK_2


def test_sentences_split_at_final_punctuation_with_ids_in_order() -> None:
    ws = evenly("Hello there. How are you? I am fine! Good", 0.0)
    out = merge_sentences(transcript(segment(ws)))
    assert [s.text for s in out] == ["Hello there.", "How are you?", "I am fine!", "Good"]
    assert [s.id for s in out] == [0, 1, 2, 3]
    assert out[1].start_s == ws[2].start_s and out[1].end_s == ws[4].end_s
    assert all(a.end_s <= b.start_s for a, b in pairwise(out))


@pytest.mark.parametrize(
    "text",
    [
        "Mr. Smith met Dr. Jones at St. Mary's church today.",
        "We need fruit, e.g. apples and pears, for the cake.",
        "It grew by 3.5 percent in the third quarter.",
        "John F. Kennedy spoke in Washington that winter.",
        "The U.S. economy is big, i.e. very big indeed.",
        "Prices rose to 3. 5 dollars each last week.",
    ],
)
def test_abbreviations_initials_and_decimals_do_not_end_a_sentence(text: str) -> None:
    out = merge_sentences(transcript(segment(evenly(text, 0.0, step_s=0.2, gap_s=0.02))))
    assert [s.text for s in out] == [text]


def test_ellipsis_and_cjk_punctuation_end_sentences() -> None:
    ws = evenly("Wait… Then we left... and came back. Done", 0.0)
    assert [s.text for s in merge_sentences(transcript(segment(ws)))] == [
        "Wait…",
        "Then we left... and came back.",
        "Done",
    ]
    cjk = (Word(0.0, 0.5, "你好"), Word(0.5, 1.0, "世界。"), Word(1.1, 1.5, "再见"), Word(1.5, 2.0, "！"))
    assert [s.text for s in merge_sentences(transcript(segment(cjk)))] == ["你好世界。", "再见！"]


def test_long_pause_splits_a_sentence() -> None:
    first = evenly("so we went home", 0.0)
    second = evenly("and slept well.", first[-1].end_s + 2.0)
    out = merge_sentences(transcript(segment(first + second)))
    assert [s.text for s in out] == ["so we went home", "and slept well."]
    # A pause just under the limit keeps the sentence whole.
    second = evenly("and slept well.", first[-1].end_s + 1.0)
    assert len(merge_sentences(transcript(segment(first + second)))) == 1
    assert len(merge_sentences(transcript(segment(first + second)), max_gap_s=0.5)) == 2


def test_max_duration_split_prefers_comma_near_the_middle() -> None:
    text = (
        "this is a long sentence that keeps going on and on, without a stop "
        "because the speaker never breathes at all until the very end"
    )
    ws = evenly(text, 0.0, step_s=0.5, gap_s=0.05)  # 24 words, about 13 s
    out = merge_sentences(transcript(segment(ws)), max_sentence_s=8.0)
    assert all(s.end_s - s.start_s <= 8.0 for s in out)
    assert out[0].text.endswith("on and on,")
    assert " ".join(s.text for s in out) == text


def test_max_duration_split_falls_back_to_the_largest_gap() -> None:
    ws = evenly("one two three four five six", 0.0, step_s=1.0, gap_s=0.1)
    pause = 0.9  # larger than the other gaps but under max_gap_s
    ws += evenly("seven eight nine ten eleven twelve", ws[-1].end_s + pause, step_s=1.0, gap_s=0.1)
    out = merge_sentences(transcript(segment(ws)), max_sentence_s=10.0)
    assert [s.text for s in out] == ["one two three four five six", "seven eight nine ten eleven twelve"]


def test_very_long_sentence_is_split_recursively() -> None:
    ws = evenly(" ".join(f"w{i}" for i in range(120)), 0.0, step_s=0.3, gap_s=0.02)
    out = merge_sentences(transcript(segment(ws)), max_sentence_s=5.0)
    assert len(out) >= 8
    assert all(s.end_s - s.start_s <= 5.0 for s in out)
    assert [w for s in out for w in s.words] == list(ws)
    assert [s.id for s in out] == list(range(len(out)))


def test_segments_without_words_fall_back_to_segment_text() -> None:
    segs = (
        Segment(0.0, 2.0, " And so my fellow Americans,"),
        Segment(2.2, 5.0, " ask not what your country can do for you."),
        Segment(5.5, 7.0, "  Thank   you. "),
    )
    out = merge_sentences(transcript(*segs))
    assert [(s.text, s.start_s, s.end_s, s.words) for s in out] == [
        ("And so my fellow Americans, ask not what your country can do for you.", 0.0, 5.0, ()),
        ("Thank you.", 5.5, 7.0, ()),
    ]


def test_mixed_word_and_wordless_segments() -> None:
    segs = (segment(evenly("Hello my", 0.0)), Segment(1.0, 2.0, "friend."))
    out = merge_sentences(transcript(*segs))
    assert [(s.text, s.words) for s in out] == [("Hello my friend.", ())]


def test_empty_words_and_segments_are_skipped() -> None:
    segs = (Segment(0.0, 1.0, "   "), Segment(1.0, 2.0, " ", (Word(1.0, 1.5, " "), Word(1.5, 2.0, " Hi."))))
    assert [(s.text, s.start_s) for s in merge_sentences(transcript(*segs))] == [("Hi.", 1.5)]
    assert merge_sentences(Transcript("en", 1.0, 0.0)) == []


def test_whitespace_is_normalised_and_words_without_leading_space_are_spaced() -> None:
    ws = (Word(0.0, 0.5, "Hello"), Word(0.5, 1.0, "  big\tworld"), Word(1.0, 1.2, ","), Word(1.2, 1.5, " ok."))
    assert merge_sentences(transcript(segment(ws)))[0].text == "Hello big world, ok."


def test_cyrillic_sentences() -> None:
    ws = evenly("Привет, мир. Как дела? Т.е. всё хорошо.", 0.0)
    assert [s.text for s in merge_sentences(transcript(segment(ws)))] == [
        "Привет, мир.",
        "Как дела?",
        "Т.е. всё хорошо.",
    ]


def test_invalid_limits_raise() -> None:
    with pytest.raises(ValueError):
        merge_sentences(Transcript("en", 1.0, 0.0), max_gap_s=0)


# ---------------------------------------------------------------------------------- split_cues

LONG_EN = (
    "The committee reviewed every proposal that was submitted during the spring session, "
    "and after a long discussion about budgets, timelines and the expected benefits for the "
    "local community, it decided to fund three of them; the remaining proposals will be "
    "reconsidered next year, once the new rules about public funding have come into force."
)
LONG_RU = (
    "Комитет рассмотрел все предложения, поступившие во время весенней сессии, и после долгого "
    "обсуждения бюджетов, сроков и ожидаемой пользы для местного сообщества решил "
    "профинансировать три из них; остальные предложения будут пересмотрены в следующем году."
)


def assert_cues_ok(cues: list[Cue], rules: CueRules = RULES) -> None:
    for cue in cues:
        assert 1 <= len(cue.lines) <= rules.max_lines
        assert all(0 < len(line) <= rules.max_line_chars for line in cue.lines)
        assert all(line == line.strip() and "  " not in line for line in cue.lines)
        assert cue.start_s < cue.end_s
        assert cue.end_s - cue.start_s <= rules.max_duration_s + 1e-9
    for a, b in pairwise(cues):
        assert b.start_s - a.end_s >= rules.min_gap_s - 1e-9


def flat(cues: list[Cue]) -> str:
    return " ".join(line for c in cues for line in c.lines)


@pytest.mark.parametrize("text", [LONG_EN, LONG_RU])
def test_long_text_obeys_all_rules_when_time_allows(text: str) -> None:
    duration = len(text) / 15  # comfortably under 21 cps
    cues = split_cues([TimedText(2.0, 2.0 + duration, text)])
    assert_cues_ok(cues)
    assert flat(cues) == text
    report = compliance(cues)
    assert report["cues"] == len(cues) > 2
    assert {k: v for k, v in report.items() if k not in ("cues", "max_cps")} == dict.fromkeys(
        [
            "lines_over_max_chars",
            "cues_over_max_lines",
            "cues_over_max_cps",
            "cues_under_min_duration",
            "cues_over_max_duration",
            "overlaps",
        ],
        0,
    )
    assert report["max_cps"] <= RULES.max_cps
    assert cues[0].start_s == 2.0


def test_short_sentence_is_one_line_and_stretched_to_min_duration() -> None:
    cues = split_cues([TimedText(1.0, 1.3, "Yes."), TimedText(5.0, 6.0, "No.")])
    assert cues == [Cue(1.0, 2.0, ("Yes.",)), Cue(5.0, 6.0, ("No.",))]


def test_stretching_never_overlaps_the_next_cue() -> None:
    cues = split_cues([TimedText(1.0, 1.3, "Yes."), TimedText(1.5, 2.0, "No.")])
    assert cues[0] == Cue(1.0, 1.46, ("Yes.",))
    assert cues[1].start_s == 1.5
    assert compliance(cues)["cues_under_min_duration"] == 1


def test_cps_is_met_by_borrowing_from_the_following_gap() -> None:
    text = "This line is spoken far too quickly for anybody to read it."
    cues = split_cues([TimedText(0.0, 1.2, text), TimedText(10.0, 11.0, "Next.")])
    assert compliance(cues)["cues_over_max_cps"] == 0
    assert cues[0].end_s <= 10.0 - RULES.min_gap_s


def test_media_end_caps_the_last_cue() -> None:
    cues = split_cues([TimedText(9.5, 9.8, "The end.")], media_end_s=10.0)
    assert cues == [Cue(9.5, 10.0, ("The end.",))]


def test_lines_are_balanced_and_prefer_punctuation() -> None:
    cues = split_cues([TimedText(0.0, 4.0, "I went to the market, and I bought some fresh bread")])
    assert cues == [Cue(0.0, 4.0, ("I went to the market,", "and I bought some fresh bread"))]
    cues = split_cues([TimedText(0.0, 4.0, "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj")])
    widths = [len(line) for line in cues[0].lines]
    assert len(widths) == 2 and abs(widths[0] - widths[1]) <= 5


def test_word_timestamps_drive_cue_times() -> None:
    sentence = merge_sentences(transcript(segment(JFK_1), segment(JFK_2)))
    cues = split_cues(timed_from_sentences(sentence))
    assert_cues_ok(cues)
    assert cues[0].start_s == 0.0
    # Every cue starts where one of its words starts.
    starts = {w.start_s for w in JFK_1 + JFK_2}
    assert all(c.start_s in starts for c in cues)
    assert flat(cues) == sentence[0].text


def test_max_duration_splits_a_slow_short_text() -> None:
    cues = split_cues([TimedText(0.0, 20.0, "one two three four five six seven eight")])
    assert_cues_ok(cues)
    assert len(cues) >= 3
    assert flat(cues) == "one two three four five six seven eight"


def test_overlong_word_is_hard_split_only_when_unavoidable() -> None:
    word = "x" * 100
    cues = split_cues([TimedText(0.0, 8.0, f"see {word} here")])
    assert_cues_ok(cues)
    assert flat(cues).replace(" ", "") == f"see{word}here"
    assert split_cues([TimedText(0.0, 3.0, "y" * 42)])[0].lines == ("y" * 42,)


def test_cjk_text_without_spaces_breaks_after_punctuation() -> None:
    text = "这是一个非常长的中文句子，它没有空格，所以必须在标点符号处进行分割，否则就会超过每行的最大字符数限制。我们看看效果如何吧！"
    cues = split_cues([TimedText(0.0, 6.0, text)], CueRules(max_line_chars=16))
    assert_cues_ok(cues, CueRules(max_line_chars=16))
    assert "".join(line for c in cues for line in c.lines) == text
    assert all(c.lines[-1][-1] in "，。！" for c in cues)


def test_cues_sorted_and_non_overlapping_for_overlapping_input() -> None:
    items = [TimedText(5.0, 6.0, "later"), TimedText(0.0, 3.0, "first"), TimedText(0.0, 3.0, "same time")]
    cues = split_cues(items)
    assert_cues_ok(cues)
    assert [c.lines[0] for c in cues] == ["first", "same time", "later"]


def test_empty_items_are_skipped_and_rules_validated() -> None:
    assert split_cues([TimedText(0.0, 1.0, "  \n ")]) == []
    with pytest.raises(ValueError):
        split_cues([], CueRules(min_duration_s=8.0))


def test_translations_pair_with_sentence_times() -> None:
    sentences = [Sentence(0, 0.0, 2.0, "Hello."), Sentence(1, 3.0, 5.0, "Bye."), Sentence(2, 6.0, 7.0, "Hm.")]
    translations = [Translation(1, "Bye.", "Пока."), Translation(0, "Hello.", "Привет."), Translation(2, "Hm.", " ")]
    timed = timed_from_translations(sentences, translations)
    assert timed == [TimedText(0.0, 2.0, "Привет."), TimedText(3.0, 5.0, "Пока.")]
    with pytest.raises(ValueError):
        timed_from_translations(sentences, [Translation(9, "?", "?")])


def test_compliance_counts_violations() -> None:
    cues = [
        Cue(0.0, 0.5, ("x" * 43, "y", "z")),
        Cue(0.4, 9.0, ("ok",)),
    ]
    report = compliance(cues)
    assert report == {
        "cues": 2,
        "lines_over_max_chars": 1,
        "cues_over_max_lines": 1,
        "cues_over_max_cps": 1,
        "cues_under_min_duration": 1,
        "cues_over_max_duration": 1,
        "overlaps": 1,
        "max_cps": 90.0,
    }


_text = st.lists(
    st.one_of(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyzабвгд", min_size=1, max_size=12),
        st.sampled_from([",", ".", "Mr.", "—", "e.g.", "x" * 50, "你好，世界。"]),
    ),
    min_size=1,
    max_size=60,
).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(
    items=st.lists(
        st.tuples(st.floats(0, 100), st.floats(0, 15), _text),
        min_size=0,
        max_size=6,
    ),
    max_line_chars=st.integers(10, 50),
    max_lines=st.integers(1, 3),
)
def test_property_cues_obey_layout_and_never_overlap(
    items: list[tuple[float, float, str]], max_line_chars: int, max_lines: int
) -> None:
    rules = CueRules(max_line_chars=max_line_chars, max_lines=max_lines)
    timed = [TimedText(start, start + dur, text) for start, dur, text in items]
    cues = split_cues(timed, rules)
    assert_cues_ok(cues, rules)
    report = compliance(cues, rules)
    assert report["lines_over_max_chars"] == report["cues_over_max_lines"] == report["overlaps"] == 0
    assert report["cues_over_max_duration"] == 0
    assert sorted(c.start_s for c in cues) == [c.start_s for c in cues]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="abc,.?", min_size=1, max_size=8), min_size=1, max_size=80), st.floats(0.05, 1.0))
def test_property_merge_keeps_every_word_once(tokens: list[str], step_s: float) -> None:
    ws = evenly(" ".join(tokens), 0.0, step_s=step_s, gap_s=0.02)
    out = merge_sentences(transcript(segment(ws)), max_sentence_s=4.0)
    assert [w for s in out for w in s.words] == list(ws)
    assert [s.id for s in out] == list(range(len(out)))
    assert all(s.end_s - s.start_s <= 4.0 or len(s.words) == 1 for s in out)
