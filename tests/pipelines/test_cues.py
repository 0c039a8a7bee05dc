"""Subtitle cue layout and compliance: pure functions, no models."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.cues import CueRules, TimedText, compliance, split_cues, timed_from_sentences, timed_from_translations
from pipelines.schema import Cue, Sentence, Translation
from pipelines.segment import merge_sentences
from tests.pipelines.test_segment import JFK_1, JFK_2, segment, transcript

RULES = CueRules()


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


def test_a_users_speakers_override_diarizations_in_the_sentences_and_the_cue_labels() -> None:
    from pipelines.cues import override_speakers, transcript_cues
    from pipelines.schema import Segment, Transcript, Word

    words = (Word(0.0, 0.4, " Hello.", speaker="S1"), Word(1.0, 1.4, " Yes.", speaker="S2"), Word(2.0, 2.4, " Bye.", speaker="S1"))  # fmt: skip
    t = Transcript("en", 1.0, 3.0, (Segment(0.0, 2.4, "Hello. Yes. Bye.", words),))
    sentences, cues = transcript_cues(t, speaker_labels=True, speakers={1: "S1"})
    assert [s.speaker for s in sentences] == ["S1", "S1", "S1"]
    assert not any("S2" in c.text for c in cues)  # the label follows the user's speaker
    assert override_speakers(sentences, None) is sentences
    assert [s.speaker for s in override_speakers(sentences, {2: "S2"})] == ["S1", "S1", "S2"]
