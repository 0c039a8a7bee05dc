"""Sentence merging: pure functions, no models."""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.schema import Segment, Transcript, Word
from pipelines.segment import iter_sentences, merge_sentences


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
    second = evenly("Then we slept well.", first[-1].end_s + 2.0)
    out = merge_sentences(transcript(segment(first + second)))
    assert [s.text for s in out] == ["so we went home", "Then we slept well."]
    # A pause just under the limit keeps the sentence whole.
    second = evenly("Then we slept well.", first[-1].end_s + 1.0)
    assert len(merge_sentences(transcript(segment(first + second)))) == 1
    assert len(merge_sentences(transcript(segment(first + second)), max_gap_s=0.5)) == 2


@pytest.mark.parametrize("continuation", ["that take no account of where we are.", "and slept well."])
def test_pause_before_a_lower_case_continuation_keeps_the_sentence_whole(continuation: str) -> None:
    first = evenly("much of political philosophy develops theories", 0.0)
    second = evenly(continuation, first[-1].end_s + 2.0)
    assert len(merge_sentences(transcript(segment(first), segment(second)))) == 1
    # A very long pause (over 3 x max_gap_s) still ends it; so does end punctuation.
    far = evenly(continuation, first[-1].end_s + 4.0)
    assert len(merge_sentences(transcript(segment(first), segment(far)))) == 2
    ended = evenly("much of political philosophy develops theories.", 0.0)
    assert len(merge_sentences(transcript(segment(ended), segment(second)))) == 2


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


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="abc,.?", min_size=1, max_size=8), min_size=1, max_size=80), st.floats(0.05, 1.0))
def test_property_merge_keeps_every_word_once(tokens: list[str], step_s: float) -> None:
    ws = evenly(" ".join(tokens), 0.0, step_s=step_s, gap_s=0.02)
    out = merge_sentences(transcript(segment(ws)), max_sentence_s=4.0)
    assert [w for s in out for w in s.words] == list(ws)
    assert [s.id for s in out] == list(range(len(out)))
    assert all(s.end_s - s.start_s <= 4.0 or len(s.words) == 1 for s in out)


# ----------------------------------------------------------------------------- streaming (iter_sentences)

_VOCAB = ["hello", "world.", "Mr.", "Smith", "and", "so", "e.g.", "3.", "5", "test,", "go!", "why?", "well...",
          "Then", "U.S.", "A.", "ok;", "«Да»", "и", "Это."]  # fmt: skip


def _random_transcript(rng: random.Random) -> Transcript:
    t, segs = rng.uniform(0, 2), []
    for _ in range(rng.randint(0, 6)):
        start, words = t, []
        for _ in range(rng.randint(0, 12)):
            t += rng.choice([0.05, 0.2, 0.5, 1.0, 1.5, 3.0, 4.0, 13.0]) * rng.random()
            d = rng.uniform(0.1, 0.6)
            words.append(Word(round(t, 3), round(t + d, 3), " " + rng.choice(_VOCAB)))
            t += d
        text = "".join(w.text for w in words).strip() or rng.choice(["", "hi there."])
        segs.append(Segment(round(start, 3), round(t, 3), text, () if rng.random() < 0.1 else tuple(words)))
    return Transcript("en", 1.0, t, tuple(segs))


def test_iter_sentences_gives_the_sentences_of_merge_sentences() -> None:
    rng = random.Random(7)
    for _ in range(500):
        transcript = _random_transcript(rng)
        limits = {"max_sentence_s": rng.choice([12.0, 3.0]), "max_gap_s": rng.choice([1.2, 0.3])}
        assert list(iter_sentences(iter(transcript.segments), **limits)) == merge_sentences(transcript, **limits)


def test_a_sentence_comes_once_the_word_after_it_is_known() -> None:
    said = [("Mr.", 0.0), ("Smith", 0.3), ("came.", 0.6), ("He", 1.0), ("left.", 1.3), ("Then", 5.0), ("we", 5.3)]
    segments = [Segment(s, s + 0.25, w, (Word(s, s + 0.25, " " + w),)) for w, s in said]
    arrived: list[str] = []

    def asr() -> Iterator[Segment]:
        for seg in segments:
            arrived.append(seg.text)
            yield seg

    stream = iter_sentences(asr())
    assert next(stream).text == "Mr. Smith came." and arrived == ["Mr.", "Smith", "came.", "He"]
    assert next(stream).text == "He left." and arrived[-1] == "Then"
    assert next(stream).text == "Then we" and len(arrived) == len(said)
    with pytest.raises(StopIteration):
        next(stream)
