"""Subtitles as a source: an SRT, WebVTT or ASS file read strictly (errors name the line), its language, its
timing checked against the media, and its cues turned into the transcript that ASR would have given.

SRT and WebVTT are parsed here line by line, since a lenient reader would silently drop a broken cue; ASS goes
through pysubs2 (its own error, with the offending text). Cue text is made plain: markup, ASS override
blocks and ``\\N`` escapes go. Times are in seconds.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.errors import InputNotFound, InvalidSubtitles, UnknownLanguage
from pipelines.languages import normalize_language
from pipelines.schema import Cue, Segment, Transcript, Word

SUBTITLE_SUFFIXES = (".srt", ".vtt", ".ass", ".ssa")
MAX_SUBTITLE_BYTES = 10 * 1024**2
_SRT_TIME = r"(\d{1,2}):(\d{2}):(\d{2})[,.](\d{1,3})"
_VTT_TIME = r"(?:(\d{1,2}):)?(\d{2}):(\d{2})\.(\d{3})"
_SRT_LINE = re.compile(rf"^\s*{_SRT_TIME}\s*-->\s*{_SRT_TIME}\s*$")
_VTT_LINE = re.compile(rf"^\s*{_VTT_TIME}\s+-->\s+{_VTT_TIME}(?:\s+.*)?$")
_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<\d[\d:.]*>")
_ASS_BLOCK = re.compile(r"\{[^{}]*\}")
# Rough timing: a cue may end this much past the media (rounding) before it counts.
END_TOLERANCE_S = 0.05


def _seconds(groups: Sequence[str | None]) -> float:
    h, m, s = (int(g) if g else 0 for g in groups[:3])
    ms = int((groups[3] or "0").ljust(3, "0")[:3])
    return h * 3600 + m * 60 + s + ms / 1000


def _clean(text: str) -> str:
    text = _ASS_BLOCK.sub("", _TAG.sub("", text)).replace("\\N", " ").replace("\\n", " ")
    return " ".join(html.unescape(text).split())


def _timed_head(row: tuple[int, str], pattern: re.Pattern[str], shape: str, name: str) -> tuple[int, float, float]:
    """A cue's timing line: (line number, start, end in seconds). InvalidSubtitles names the line when it does not
    match ``pattern`` (``shape`` says what it should look like) or the cue ends before it starts."""
    lineno, head = row
    match = pattern.match(head)
    if match is None:
        raise InvalidSubtitles(f"{name} line {lineno}: expected a timing line '{shape}', got {head.strip()[:60]!r}")
    g = match.groups()
    start, end = _seconds(g[:4]), _seconds(g[4:])
    if end <= start:
        raise InvalidSubtitles(f"{name} line {lineno}: the cue ends ({end:.3f} s) before it starts ({start:.3f} s)")
    return lineno, start, end


def _blocks(text: str) -> list[list[tuple[int, str]]]:
    """Blank-line separated blocks of (1-based line number, line)."""
    blocks: list[list[tuple[int, str]]] = [[]]
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            blocks[-1].append((n, line.rstrip()))
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def parse_srt(text: str, name: str = "the SRT") -> list[Cue]:
    """Cues of SubRip text: an optional number line, a ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` line, text lines.
    Raises InvalidSubtitles naming the first line that breaks that shape."""
    cues: list[Cue] = []
    for block in _blocks(text):
        rows = list(block)
        if rows[0][1].strip().isdigit() and len(rows) > 1:
            rows = rows[1:]
        lineno, start, end = _timed_head(rows[0], _SRT_LINE, "HH:MM:SS,mmm --> HH:MM:SS,mmm", name)
        for n, line in rows[1:]:
            if "-->" in line:
                raise InvalidSubtitles(f"{name} line {n}: a timing line inside a cue's text (a missing blank line?)")
        lines = tuple(t for t in (_clean(line) for _, line in rows[1:]) if t)
        if not lines:
            raise InvalidSubtitles(f"{name} line {lineno}: the cue has no text")
        cues.append(Cue(start, end, lines))
    return cues


def parse_vtt(text: str, name: str = "the WebVTT") -> list[Cue]:
    """Cues of WebVTT text (NOTE, STYLE and REGION blocks skipped; cue settings ignored). Raises InvalidSubtitles."""
    blocks = _blocks(text)
    if not blocks or not blocks[0][0][1].lstrip("\ufeff").startswith("WEBVTT"):
        raise InvalidSubtitles(f"{name} line 1: a WebVTT file starts with 'WEBVTT'")
    cues: list[Cue] = []
    for block in blocks[1:]:
        if block[0][1].split(" ", 1)[0] in ("NOTE", "STYLE", "REGION"):
            continue
        rows = block if "-->" in block[0][1] else block[1:]  # an optional cue identifier
        if not rows:
            raise InvalidSubtitles(f"{name} line {block[0][0]}: a cue identifier without a timing line")
        _, start, end = _timed_head(rows[0], _VTT_LINE, "MM:SS.mmm --> MM:SS.mmm", name)
        lines = tuple(t for t in (_clean(line) for _, line in rows[1:]) if t)
        if lines:
            cues.append(Cue(start, end, lines))
    return cues


def parse_ass(text: str, name: str = "the ASS file") -> list[Cue]:
    """Dialogue events of ASS/SSA text (comments skipped). Raises InvalidSubtitles."""
    import pysubs2

    try:
        subs = pysubs2.SSAFile.from_string(text, format_="ass")
    except Exception as exc:  # noqa: BLE001  (pysubs2 raises several kinds)
        raise InvalidSubtitles(f"{name}: not a readable ASS file ({exc})") from None
    cues = []
    for event in subs:
        if event.is_comment or event.end <= event.start:
            continue
        lines = tuple(t for t in (_clean(line) for line in event.plaintext.split("\n")) if t)
        if lines:
            cues.append(Cue(event.start / 1000, event.end / 1000, lines))
    return cues


def subtitle_kind(path: str | Path, name: str | None = None) -> str | None:
    """``srt``, ``vtt`` or ``ass`` by the file's ``name`` (default: its path), else by its first bytes; None for
    anything else (media)."""
    p = Path(path)
    suffix = Path(name or p.name).suffix.lower()
    if suffix in SUBTITLE_SUFFIXES:
        return "ass" if suffix == ".ssa" else suffix[1:]
    try:
        with p.open("rb") as f:
            head = f.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return None
    if head.startswith(b"WEBVTT"):
        return "vtt"
    if head.startswith(b"[Script Info]"):
        return "ass"
    first = head.split(b"\n", 2)
    if len(first) > 1 and first[0].strip().isdigit() and b"-->" in first[1]:
        return "srt"
    return None


def read_subtitles(path: str | Path, *, display_name: str | None = None) -> list[Cue]:
    """The cues of a subtitle file, in time order. Raises InputNotFound, InvalidSubtitles (not UTF-8, no cues,
    a broken line: the message names it)."""
    p = Path(path)
    if not p.is_file():
        raise InputNotFound(f"subtitle file not found: {p.name}")
    name = display_name or p.name
    if p.stat().st_size > MAX_SUBTITLE_BYTES:
        raise InvalidSubtitles(f"{name} is larger than {MAX_SUBTITLE_BYTES} bytes; that is no subtitle file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise InvalidSubtitles(f"{name} line {line}: not UTF-8 text") from None
    kind = subtitle_kind(p) or "srt"
    parse = {"srt": parse_srt, "vtt": parse_vtt, "ass": parse_ass}[kind]
    cues = parse(text, name)
    if not cues:
        raise InvalidSubtitles(f"{name} holds no subtitle cues")
    return sorted(cues, key=lambda c: (c.start_s, c.end_s))


def subtitle_language(names: Sequence[str], given: str | None) -> str:
    """The cues' language: ``given`` (``--from`` / ``source_language``), else a language code in one of the
    file's ``names`` (``talk.en.srt``). Raises UnknownLanguage saying how to give it."""
    if given:
        return normalize_language(given)
    for name in names:
        for part in reversed(Path(name).name.split(".")[1:-1]):
            try:
                return normalize_language(part)
            except UnknownLanguage:
                continue
    raise UnknownLanguage(
        f"the language of {Path(names[0]).name} is unknown: give it (--from, source_language) or name the file "
        "<name>.<lang>.srt"
    )


@dataclass(frozen=True)
class TimingCheck:
    """How rough a subtitle file's timing is: cues that overlap the one before, cues past the media's end."""

    overlapping: tuple[int, ...] = ()
    past_media_end: tuple[int, ...] = ()

    @property
    def rough(self) -> bool:
        return bool(self.overlapping or self.past_media_end)

    def notes(self, name: str) -> list[str]:
        out = []
        if self.overlapping:
            out.append(
                f"{name}: {len(self.overlapping)} cue(s) overlap the cue before (cues {_list(self.overlapping)})"
            )
        if self.past_media_end:
            out.append(
                f"{name}: {len(self.past_media_end)} cue(s) run past the media's end (cues {_list(self.past_media_end)})"
            )
        return out


def _list(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return shown + (", ..." if len(numbers) > 10 else "")


def check_timing(cues: Sequence[Cue], media_end_s: float | None) -> TimingCheck:
    """Cue numbers (1-based, in time order) that overlap the previous cue or end past ``media_end_s``."""
    overlapping = tuple(i + 1 for i in range(1, len(cues)) if cues[i].start_s < cues[i - 1].end_s - 1e-3)
    past: tuple[int, ...] = ()
    if media_end_s is not None:
        past = tuple(i + 1 for i, c in enumerate(cues) if c.end_s > media_end_s + END_TOLERANCE_S)
    return TimingCheck(overlapping, past)


def cue_words(cue: Cue) -> tuple[Word, ...]:
    """The cue's words, timed in proportion to their characters (subtitles carry no word timing)."""
    words = " ".join(cue.lines).split()
    total = sum(len(w) for w in words) or 1
    span, at, out = cue.end_s - cue.start_s, cue.start_s, []
    for w in words:
        end = at + span * len(w) / total
        out.append(Word(round(at, 3), round(end, 3), " " + w))
        at = end
    return tuple(out)


def transcript_from_cues(cues: Sequence[Cue], language: str, duration_s: float) -> Transcript:
    """The transcript ASR would give: one segment per cue (its text and times), words timed by characters."""
    segments = tuple(Segment(c.start_s, c.end_s, " ".join(c.lines), cue_words(c)) for c in cues)
    return Transcript(language, 1.0, duration_s, segments)


def source_report(name: str, cues: Sequence[Cue], check: TimingCheck) -> dict[str, Any]:
    """The report's ``source_subtitles`` entry."""
    return {
        "file": name,
        "cues": len(cues),
        "timing_rough": check.rough,
        "overlapping_cues": list(check.overlapping),
        "cues_past_media_end": list(check.past_media_end),
    }


def load_source_transcript(
    path: str | Path, language: str | None, media_end_s: float
) -> tuple[Transcript, dict[str, Any], list[str]]:
    """``--source-subtitles``: the file's cues as the transcript (``language``: given, else from the file's
    name), its report entry and the notes on rough timing. Raises InvalidSubtitles, UnknownLanguage."""
    p = Path(path)
    cues = read_subtitles(p)
    check = check_timing(cues, media_end_s)
    transcript = transcript_from_cues(cues, subtitle_language([p.name], language), media_end_s)
    return transcript, source_report(p.name, cues, check), check.notes(p.name)
