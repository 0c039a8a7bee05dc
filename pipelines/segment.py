"""Sentence merging: ASR fragments (faster-whisper segments and their words) -> whole sentences,
so that translation never sees a VAD fragment on its own. Pure functions over the schema types.

All times are in seconds (``*_s``). Nothing here does I/O. Subtitle cue layout is in
``pipelines.cues``; it shares this module's word-joining rules (``join_word``, ``needs_space``) so that
a cue rebuilt from a sentence's words reads exactly as the sentence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipelines.schema import Segment, Sentence, Transcript, Word

logger = logging.getLogger(__name__)

_CLOSERS = "\"'”’»)]}」』"
_OPENERS = "\"'“‘«([{「『¿¡"
FINAL_CHARS = "!?。！？‼⁇⁈⁉"
WEAK_CHARS = ",;:，、；：–—"
_NO_SPACE_BEFORE = frozenset(",.!?;:%)]}»”’…、。，！？；：」』")
# Titles never end a sentence ("Mr. Smith"); the other abbreviations end one only before a capital.
# fmt: off
_TITLES = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "rev", "gen", "capt", "col", "lt", "sgt", "hon", "vs",
    "messrs", "mme", "mlle",
})
_ABBREVIATIONS = frozenset({
    "e.g", "i.e", "etc", "cf", "al", "approx", "no", "nos", "vol", "fig", "figs", "pp", "ca", "inc", "ltd", "co",
    "corp", "dept", "est", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "т.е", "т.д", "т.п", "т.к", "др", "пр", "см", "напр",
})
_CONJUNCTIONS = frozenset({
    "and", "but", "or", "so", "because", "which", "while", "although", "though", "whereas", "however", "unless",
    "until", "since", "и", "но", "а", "или", "потому", "который", "которая", "которые", "что", "когда", "если",
    "хотя", "und", "aber", "oder", "weil", "et", "mais", "ou", "parce", "y", "pero", "porque",
})
# fmt: on
_DOTTED = re.compile(r"(?:\w\.)+\w")


def _is_cjk(ch: str) -> bool:
    """True for characters of scripts written without spaces between words (Han, kana, CJK punctuation)."""
    o = ord(ch)
    return (
        0x3000 <= o <= 0x30FF
        or 0x3400 <= o <= 0x4DBF
        or 0x4E00 <= o <= 0x9FFF
        or 0xF900 <= o <= 0xFAFF
        or 0xFF00 <= o <= 0xFFEF
    )


def normalise_space(text: str) -> str:
    """``text`` with runs of whitespace collapsed to one space and no edge spaces."""
    return " ".join(text.split())


def needs_space(prev: str, piece: str) -> bool:
    """Whether joining ``piece`` (raw ASR word text) after ``prev`` (normalised) needs a space."""
    stripped = piece.strip()
    if not prev or not stripped:
        return False
    if piece[0].isspace():
        return True
    return not (stripped[0] in _NO_SPACE_BEFORE or _is_cjk(prev[-1]) or _is_cjk(stripped[0]))


def join_word(prev: str, piece: str) -> str:
    """Append raw word text (faster-whisper words carry a leading space) to normalised text."""
    stripped = normalise_space(piece)
    if not stripped:
        return prev
    return prev + (" " if needs_space(prev, piece) else "") + stripped


def strip_closers(token: str) -> str:
    """``token`` without edge spaces and trailing closing quotes/brackets (what punctuation checks look at)."""
    return token.strip().rstrip(_CLOSERS)


def _ends_sentence(token: str, next_token: str | None) -> bool:
    """Whether ``token`` (a word, stripped or not) ends a sentence, given the token after it."""
    t = strip_closers(token)
    nxt = (next_token or "").strip().lstrip(_OPENERS)
    if not t:
        return False
    if t.endswith(("…", "...")):
        # "and then... we left" trails off mid-sentence; a capital (or the end) starts a new one.
        return not nxt[:1].islower()
    if t[-1] in FINAL_CHARS:
        return True
    if not t.endswith(".") or not nxt:
        return t.endswith(".")
    core = t[:-1].lstrip(_OPENERS)
    if core.lower() in _TITLES:
        return False
    if len(core) == 1 and core.isalpha() and core.isupper() and core != "I":
        return False  # an initial: "John F. Kennedy"
    if core[-1:].isdigit() and nxt[0].isdigit():
        return False  # a decimal split across words: "3." "5"
    if core.lower() in _ABBREVIATIONS or _DOTTED.fullmatch(core) or len(core) == 1:
        return not (nxt[0].islower() or nxt[0].isdigit())
    return True


def _soft_break(prev: str, nxt: str) -> bool:
    """A comma/semicolon after ``prev`` or a conjunction at ``nxt``: a good place to split a sentence."""
    p = strip_closers(prev)
    if p and p[-1] in WEAK_CHARS:
        return True
    return nxt.strip().strip(_OPENERS + _CLOSERS + ",.").lower() in _CONJUNCTIONS


def _goes_on(prev: str, nxt: str) -> bool:
    """The text clearly continues: ``prev`` has no end punctuation and ``nxt`` starts in lower case
    or with a conjunction. A pause there is a breath, not a sentence end, so the translator gets
    the whole sentence (``_split_long`` still caps its length for the timing fit)."""
    p = strip_closers(prev.strip())
    n = nxt.strip().lstrip(_OPENERS)
    if not p or not n or p[-1] in FINAL_CHARS or p.endswith("."):
        return False
    return n[0].islower() or n.split()[0].strip(_CLOSERS + ",.").lower() in _CONJUNCTIONS


@dataclass(frozen=True)
class _Unit:
    """One word, or one whole segment when the ASR gave no word timestamps."""

    start_s: float
    end_s: float
    text: str
    word: Word | None
    speaker: str | None = None


def _units(transcript: Transcript) -> list[_Unit]:
    units: list[_Unit] = []
    for seg in transcript.segments:
        if seg.words:
            units += [_Unit(w.start_s, w.end_s, w.text, w, w.speaker) for w in seg.words if w.text.strip()]
        elif seg.text.strip():
            units.append(_Unit(seg.start_s, seg.end_s, seg.text, None, seg.speaker))
    return units


def _split_long(units: list[_Unit], max_s: float) -> list[list[_Unit]]:
    """Split a sentence longer than ``max_s`` near its middle, recursively."""
    if len(units) < 2 or units[-1].end_s - units[0].start_s <= max_s:
        return [units]
    span = units[-1].end_s - units[0].start_s
    mid = units[0].start_s + span / 2

    def at(k: int) -> float:
        return (units[k - 1].end_s + units[k].start_s) / 2

    every = list(range(1, len(units)))
    band = [k for k in every if abs(at(k) - mid) <= 0.3 * span] or every
    soft = [k for k in band if _soft_break(units[k - 1].text, units[k].text)]
    if soft:
        k = min(soft, key=lambda k: abs(at(k) - mid))
    else:
        k = max(band, key=lambda k: (units[k].start_s - units[k - 1].end_s, -abs(at(k) - mid)))
    return _split_long(units[:k], max_s) + _split_long(units[k:], max_s)


def merge_sentences(transcript: Transcript, *, max_sentence_s: float = 12.0, max_gap_s: float = 1.2) -> list[Sentence]:
    """Merge ASR words across segment boundaries into whole sentences.

    A sentence ends at sentence-final punctuation (``. ! ? …`` and ``。！？``, but not after
    abbreviations such as "Mr." or "e.g.", initials, or inside decimals), at a pause longer than
    ``max_gap_s`` seconds (unless the text clearly goes on, see ``_goes_on``, and the pause is
    under ``3 * max_gap_s``), and is split near its middle (at a comma, semicolon or conjunction if
    there is one, else at the largest pause) while it is longer than ``max_sentence_s`` seconds.
    Segments without words (word timestamps off) count as one unit with the segment's text and times.
    A sentence also ends where the speaker changes (words labelled by diarization), so none mixes two people;
    its ``speaker`` is its words' one.

    Returns sentences with ids ``0..n-1`` in time order; ``start_s``/``end_s`` are the first unit's
    start and the last unit's end in seconds. ``words`` is empty when any unit had no words.
    Raises ``ValueError`` for non-positive limits.
    """
    sentences = list(iter_sentences(transcript.segments, max_sentence_s=max_sentence_s, max_gap_s=max_gap_s))
    logger.debug("merged %d segments into %d sentences", len(transcript.segments), len(sentences))
    return sentences


def iter_sentences(
    segments: Iterable[Segment], *, max_sentence_s: float = 12.0, max_gap_s: float = 1.2
) -> Iterator[Sentence]:
    """``merge_sentences`` over segments as they come (a lazy ASR): each sentence is yielded as soon as it is
    final, that is once the unit after its last one has arrived (or the segments have ended), since where a
    sentence ends depends on the next word (``_ends_sentence``, the pause before it, ``_goes_on``). The sentences
    are exactly those of ``merge_sentences``. Raises ``ValueError`` for non-positive limits (on first use)."""
    if max_sentence_s <= 0 or max_gap_s <= 0:
        raise ValueError("max_sentence_s and max_gap_s must be positive")
    count = 0
    current: list[_Unit] = []
    prev: _Unit | None = None  # each unit is judged once the one after it is known
    for unit in _iter_units(segments):
        if prev is not None:
            current, closed = _close(current, prev, unit, max_gap_s)
            for group in closed:
                for sentence in _group_sentences(group, max_sentence_s, count):
                    count += 1
                    yield sentence
        prev = unit
    if prev is not None:
        current, closed = _close(current, prev, None, max_gap_s)
        closed += [current] if current else []
        for group in closed:
            for sentence in _group_sentences(group, max_sentence_s, count):
                count += 1
                yield sentence


def _iter_units(segments: Iterable[Segment]) -> Iterator[_Unit]:
    for seg in segments:
        yield from _units(Transcript("", 0.0, 0.0, (seg,)))


def _close(
    current: list[_Unit], unit: _Unit, nxt: _Unit | None, max_gap_s: float
) -> tuple[list[_Unit], list[list[_Unit]]]:
    """Add ``unit`` (followed by ``nxt``) to the open group: (the open group after it, the groups it closed)."""
    closed: list[list[_Unit]] = []
    gap_s = unit.start_s - current[-1].end_s if current else 0.0
    turn = bool(current) and unit.speaker != current[-1].speaker  # never one sentence across two speakers
    if turn or (gap_s > max_gap_s and not (gap_s <= 3 * max_gap_s and _goes_on(current[-1].text, unit.text))):
        closed.append(current)
        current = []
    current = [*current, unit]
    following = nxt.text.split() if nxt is not None else []
    last = unit.text.split()
    if last and _ends_sentence(last[-1], following[0] if following else None):
        closed.append(current)
        current = []
    return current, closed


def _group_sentences(group: list[_Unit], max_sentence_s: float, first_id: int) -> Iterator[Sentence]:
    """The sentences of one closed group (split while too long), numbered from ``first_id``."""
    next_id = first_id
    for piece in _split_long(group, max_sentence_s):
        text = ""
        for unit in piece:
            text = join_word(text, unit.text)
        if not text:
            continue
        words = [u.word for u in piece if u.word is not None]
        yield Sentence(
            id=next_id,
            start_s=piece[0].start_s,
            end_s=piece[-1].end_s,
            text=text,
            words=tuple(words) if len(words) == len(piece) else (),
            speaker=piece[0].speaker,
        )
        next_id += 1
