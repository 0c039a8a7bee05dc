"""Subtitle cue layout: timed text (sentences or their translations) -> cues that follow
:class:`CueRules` (line length, line count, reading speed, duration, gap), and :func:`compliance`,
which counts how a list of cues breaks those rules. Pure functions over the schema types.

All times are in seconds (``*_s``) unless a name says ``*_ms``. Nothing here does I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from pipelines.schema import Cue, Sentence, Transcript, Translation, Word
from pipelines.segment import (
    FINAL_CHARS,
    WEAK_CHARS,
    join_word,
    merge_sentences,
    needs_space,
    normalise_space,
    strip_closers,
)


@dataclass(frozen=True)
class CueRules:
    """Subtitle layout rules: characters per line, lines per cue, characters per second, seconds."""

    max_line_chars: int = 42
    max_lines: int = 2
    max_cps: float = 21.0
    min_duration_s: float = 1.0
    max_duration_s: float = 7.0
    min_gap_s: float = 0.04


@dataclass(frozen=True)
class TimedText:
    """Text shown from ``start_s`` to ``end_s`` (seconds); ``words`` give finer timing when known."""

    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...] = ()


def speaker_prefix(sentences: Sequence[Sentence]) -> dict[int, str]:
    """``{sentence id: 'S2: '}`` for each sentence whose speaker differs from the previous sentence's (the first
    labelled one included); empty when no sentence has a speaker or all have the same one."""
    if len({s.speaker for s in sentences}) < 2:
        return {}
    out: dict[int, str] = {}
    previous: str | None = None
    for s in sentences:
        if s.speaker is not None and s.speaker != previous:
            out[s.id] = f"{s.speaker}: "
        previous = s.speaker
    return out


def timed_from_sentences(sentences: Sequence[Sentence], *, speaker_labels: bool = False) -> list[TimedText]:
    """Source-language cue input: each sentence's text, times (seconds) and words; with ``speaker_labels``,
    ``S1: `` before a sentence where the speaker changes (times proportional there: the label has no word)."""
    prefix = speaker_prefix(sentences) if speaker_labels else {}
    return [
        TimedText(s.start_s, s.end_s, prefix[s.id] + s.text)
        if s.id in prefix
        else TimedText(s.start_s, s.end_s, s.text, s.words)
        for s in sentences
    ]


def timed_from_translations(
    sentences: Sequence[Sentence], translations: Sequence[Translation], *, speaker_labels: bool = False
) -> list[TimedText]:
    """Pair each translation with its sentence's times (seconds), id for id, in sentence order.

    Sentences without a (non-empty) translation are skipped. Translations carry no word timing,
    so cues made from them share the sentence's time in proportion to characters.
    Raises ``ValueError`` for a translation whose id names no sentence.
    """
    known = {s.id for s in sentences}
    unknown = sorted({t.id for t in translations} - known)
    if unknown:
        raise ValueError(f"translations for unknown sentence ids: {unknown}")
    by_id = {t.id: t for t in translations}
    prefix = speaker_prefix(sentences) if speaker_labels else {}
    out: list[TimedText] = []
    for s in sentences:
        t = by_id.get(s.id)
        if t is not None and t.text.strip():
            out.append(TimedText(s.start_s, s.end_s, prefix.get(s.id, "") + t.text))
    return out


@dataclass(frozen=True)
class _Tok:
    """A breakable piece of cue text; ``glue`` joins it to the previous piece without a space."""

    text: str
    start_s: float
    end_s: float
    glue: bool = False


def _hard_split(tok: _Tok, limit: int) -> list[_Tok]:
    """Split a piece longer than ``limit`` characters: after punctuation if possible, else by width."""
    if len(tok.text) <= limit:
        return [tok]
    parts: list[str] = []
    for part in (p for p in re.split(r"(?<=[,;:!?.…，、。！？；：])", tok.text) if p):
        if parts and len(parts[-1]) + len(part) <= limit:
            parts[-1] += part
        else:
            parts += [part[i : i + limit] for i in range(0, len(part), limit)]
    out: list[_Tok] = []
    pos, total, dur = 0, len(tok.text), tok.end_s - tok.start_s
    for i, part in enumerate(parts):
        start = tok.start_s + dur * pos / total
        pos += len(part)
        out.append(_Tok(part, start, tok.start_s + dur * pos / total, tok.glue if i == 0 else True))
    return out


def _tokens(item: TimedText, limit: int) -> list[_Tok]:
    text = normalise_space(item.text)
    if not text:
        return []
    toks: list[_Tok] = []
    joined = ""
    for w in item.words:
        piece = normalise_space(w.text)
        if piece:
            toks.append(_Tok(piece, w.start_s, w.end_s, bool(joined) and not needs_space(joined, w.text)))
            joined = join_word(joined, w.text)
    if not toks or joined != text:
        # No usable word timing: share the item's time in proportion to characters.
        dur = max(0.0, item.end_s - item.start_s)
        toks = [
            _Tok(m.group(), item.start_s + dur * m.start() / len(text), item.start_s + dur * m.end() / len(text))
            for m in re.finditer(r"\S+", text)
        ]
    return [piece for tok in toks for piece in _hard_split(tok, limit)]


def _width(toks: Sequence[_Tok]) -> int:
    return sum(len(t.text) for t in toks) + sum(1 for t in toks[1:] if not t.glue)


def _line_count(toks: Sequence[_Tok], max_chars: int) -> int:
    """The fewest lines of at most ``max_chars`` that hold ``toks`` (greedy filling is optimal)."""
    count, width = 1, 0
    for t in toks:
        add = len(t.text) + (1 if width and not t.glue else 0)
        if width and width + add > max_chars:
            count, width = count + 1, len(t.text)
        else:
            width += add
    return count


def _after_punct(tok: _Tok) -> bool:
    t = strip_closers(tok.text)
    return bool(t) and (t[-1] in WEAK_CHARS or t[-1] in FINAL_CHARS or t[-1] in ".…")


def _layout(toks: Sequence[_Tok], max_chars: int) -> tuple[str, ...]:
    """Break ``toks`` into the fewest lines, balanced, preferring breaks after punctuation."""
    n, lines = len(toks), _line_count(toks, max_chars)
    inf = math.inf
    # best[k][j]: cost of laying toks[:j] out as k lines; cost = sum of squared widths + penalties.
    best = [[inf] * (n + 1) for _ in range(lines + 1)]
    back = [[0] * (n + 1) for _ in range(lines + 1)]
    best[0][0] = 0.0
    for k in range(1, lines + 1):
        for j in range(1, n + 1):
            for i in range(j - 1, -1, -1):
                w = _width(toks[i:j])
                if w > max_chars and j - i > 1:
                    break
                penalty = 0 if j == n or _after_punct(toks[j - 1]) else 100
                cost = best[k - 1][i] + w * w + penalty
                if cost < best[k][j]:
                    best[k][j], back[k][j] = cost, i
    out: list[str] = []
    j = n
    for k in range(lines, 0, -1):
        i = back[k][j]
        out.append(_join_toks(toks[i:j]))
        j = i
    return tuple(reversed(out))


def _join_toks(toks: Sequence[_Tok]) -> str:
    return "".join((t.text if i == 0 or t.glue else " " + t.text) for i, t in enumerate(toks))


def _chunk(toks: Sequence[_Tok], rules: CueRules) -> list[tuple[int, int]]:
    """Group tokens into cues: fewest cues first, then balanced, timely and ending at punctuation."""
    n = len(toks)
    best = [math.inf] * (n + 1)
    back = [0] * (n + 1)
    best[0] = 0.0
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            dur = toks[j - 1].end_s - toks[i].start_s
            if j - i > 1 and (
                dur > rules.max_duration_s or _line_count(toks[i:j], rules.max_line_chars) > rules.max_lines
            ):
                break  # adding tokens only makes a cue longer and wider
            w = _width(toks[i:j])
            # Each cue costs more than every soft penalty together, so the fewest cues always win.
            cost = 1000.0 + 0.05 * w * w
            if j < n and not _after_punct(toks[j - 1]):
                # Ending a cue mid-phrase costs less where the speaker pauses anyway.
                pause = toks[j].start_s - toks[j - 1].end_s
                cost += 40 * (1 - min(max(pause, 0.0) / 0.5, 1.0))
            if dur < rules.min_duration_s:
                cost += 100 * (1 - max(dur, 0.0) / rules.min_duration_s)
            need = w / rules.max_cps
            if dur < need:
                cost += 100 * (need - max(dur, 0.0)) / need
            if best[i] + cost < best[j]:
                best[j], back[j] = best[i] + cost, i
    spans: list[tuple[int, int]] = []
    j = n
    while j > 0:
        spans.append((back[j], j))
        j = back[j]
    return spans[::-1]


def _validate(rules: CueRules) -> None:
    if rules.max_line_chars < 1 or rules.max_lines < 1 or rules.max_cps <= 0:
        raise ValueError("max_line_chars, max_lines and max_cps must be positive")
    if not 0 <= rules.min_duration_s <= rules.max_duration_s or rules.max_duration_s <= 0 or rules.min_gap_s < 0:
        raise ValueError("need 0 <= min_duration_s <= max_duration_s, max_duration_s > 0, min_gap_s >= 0")


def split_cues(
    items: Sequence[TimedText], rules: CueRules = CueRules(), *, media_end_s: float | None = None
) -> list[Cue]:
    """Lay timed text out as subtitle cues that follow ``rules``.

    Each item is split into cues of at most ``rules.max_lines`` balanced lines of at most
    ``rules.max_line_chars`` characters, broken at word boundaries (after punctuation where it
    costs little; a word longer than a line is hard-split). Cue times follow the item's words
    when they match its text, else the item's time is shared in proportion to characters.
    A cue is then lengthened toward ``min_duration_s`` and toward ``max_cps`` (characters per
    second, line breaks not counted) by borrowing from the following gap only, never past the next
    cue's start minus ``min_gap_s`` nor past ``media_end_s``; no cue lasts over ``max_duration_s``.

    Returns cues in time order, never overlapping, with times rounded to milliseconds.
    Raises ``ValueError`` for inconsistent rules.
    """
    _validate(rules)
    raw: list[tuple[int, int, tuple[str, ...]]] = []
    for item in items:
        toks = _tokens(item, rules.max_line_chars)
        for i, j in _chunk(toks, rules) if toks else []:
            lines = _layout(toks[i:j], rules.max_line_chars)
            raw.append((_ms(toks[i].start_s), _ms(toks[j - 1].end_s), lines))
    return _finalise(raw, rules, None if media_end_s is None else _ms(media_end_s))


def override_speakers(sentences: list[Sentence], speakers: Mapping[int, str] | None) -> list[Sentence]:
    """``sentences`` with the speakers a user set (``{sentence id: label}``, a re-dub's edits) over diarization's;
    ids not in ``speakers`` keep theirs."""
    if not speakers:
        return sentences
    return [replace(s, speaker=speakers.get(s.id, s.speaker)) for s in sentences]


def transcript_cues(
    transcript: Transcript,
    *,
    media_end_s: float | None = None,
    speaker_labels: bool = False,
    speakers: Mapping[int, str] | None = None,
) -> tuple[list[Sentence], list[Cue]]:
    """The segment stage in one call: the transcript's sentences (for translation) and its source-language cues
    (default rules), none lasting past ``media_end_s`` seconds (default: the transcript's duration); with
    ``speaker_labels``, a cue where the speaker changes starts with ``S1: ``. ``speakers`` (sentence id ->
    label) overrides diarization's speakers (``override_speakers``)."""
    sentences = override_speakers(merge_sentences(transcript), speakers)
    end = transcript.duration_s if media_end_s is None else media_end_s
    return sentences, split_cues(timed_from_sentences(sentences, speaker_labels=speaker_labels), media_end_s=end)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _finalise(raw: list[tuple[int, int, tuple[str, ...]]], rules: CueRules, media_end_ms: int | None) -> list[Cue]:
    """Fix durations and gaps in integer milliseconds, so rounding can never create an overlap."""
    raw.sort(key=lambda c: (c[0], c[1]))
    gap = math.ceil(rules.min_gap_s * 1000 - 1e-9)
    min_ms, max_ms = round(rules.min_duration_s * 1000), round(rules.max_duration_s * 1000)
    starts = [c[0] for c in raw]
    cues: list[Cue] = []
    for k, (_, natural_end, lines) in enumerate(raw):
        start = starts[k]
        chars = sum(len(line) for line in lines)
        want = min(max(natural_end - start, min_ms, math.ceil(chars * 1000 / rules.max_cps)), max_ms)
        end = start + want
        if k + 1 < len(raw):
            end = min(end, starts[k + 1] - gap)
        if media_end_ms is not None and media_end_ms > start:
            end = min(end, media_end_ms)
        if end <= start:
            # Overlapping input: show this cue anyway and push the next one back.
            end = start + want
            if k + 1 < len(raw):
                starts[k + 1] = end + gap
        cues.append(Cue(start / 1000, end / 1000, lines))
    return cues


def compliance(cues: Sequence[Cue], rules: CueRules = CueRules()) -> dict[str, int | float]:
    """Count rule breaks in ``cues``: line widths (characters), lines, cps, durations (seconds), overlaps.

    ``max_cps`` is the highest reading speed found (characters per second, line breaks not counted,
    rounded to 2 decimals); a zero-length cue counts as lasting one millisecond.
    """
    eps = 1e-6
    counts: dict[str, int | float] = {
        "cues": len(cues),
        "lines_over_max_chars": 0,
        "cues_over_max_lines": 0,
        "cues_over_max_cps": 0,
        "cues_under_min_duration": 0,
        "cues_over_max_duration": 0,
        "overlaps": 0,
        "max_cps": 0.0,
    }
    top = 0.0
    for k, cue in enumerate(cues):
        dur = cue.end_s - cue.start_s
        cps = sum(len(line) for line in cue.lines) / max(dur, 0.001)
        top = max(top, cps)
        counts["lines_over_max_chars"] += sum(1 for line in cue.lines if len(line) > rules.max_line_chars)
        counts["cues_over_max_lines"] += int(len(cue.lines) > rules.max_lines)
        counts["cues_over_max_cps"] += int(cps > rules.max_cps + eps)
        counts["cues_under_min_duration"] += int(dur < rules.min_duration_s - eps)
        counts["cues_over_max_duration"] += int(dur > rules.max_duration_s + eps)
        if k + 1 < len(cues):
            counts["overlaps"] += int(cues[k + 1].start_s < cue.end_s)
    counts["max_cps"] = round(top, 2)
    return counts


def layout_text(text: str, rules: CueRules = CueRules()) -> tuple[str, ...]:
    """``text`` in the fewest balanced lines of at most ``rules.max_line_chars`` characters, as many as it takes
    (the cue layout without the timing); ``()`` for blank text."""
    toks = _tokens(TimedText(0.0, 1.0, text), rules.max_line_chars)
    return _layout(toks, rules.max_line_chars) if toks else ()
