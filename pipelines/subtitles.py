"""SubRip (SRT) and WebVTT files from cues, and cues from those files, through pysubs2.

Cue text comes from ASR and from an LLM, so it is untrusted. :func:`sanitize_cues` makes it
inert before anything is written: no blank lines, no ``-->``, no timestamps, no HTML/VTT tags,
no ASS override blocks (``{\\an8}``) or escapes (``\\N``). A written file therefore always parses
back to exactly the sanitised cues. Times are in seconds on :class:`Cue` and in whole
milliseconds in the files.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pysubs2

from pipelines.errors import InputNotFound
from pipelines.fileio import atomic_write_text
from pipelines.schema import Cue, ensure_path

logger = logging.getLogger(__name__)

Format = Literal["srt", "vtt"]

# Control characters (and Unicode line/paragraph separators) would act as line breaks or worse.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
# HTML/VTT markup: <b>, </i>, <script src=x>, <font color="red">, <c.yellow>, <v Roger>, <00:01.000>.
_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<\d[\d:.]*>")
_BRACES = re.compile(r"\{[^{}]*\}")
_ARROW = re.compile(r"-{2,}\s*>")
# What pysubs2 takes for a timestamp when reading SRT and VTT; two on one line start a new cue.
_SRT_TIME = re.compile(r"\d{1,2}:\d{1,2}:\d{1,2}[.,]\d")
_VTT_TIME = re.compile(r"(?:\d{0,4}:)?\d{2}:\d{2}\.\d{2}")
_RATIO = "\u2236"  # "∶" looks like a colon but is no timestamp separator.


def _until_stable(pattern: re.Pattern[str], text: str) -> str:
    while True:
        new = pattern.sub("", text)
        if new == text:
            return text
        text = new


def _defuse_times(text: str) -> str:
    for pattern in (_SRT_TIME, _VTT_TIME):
        text = pattern.sub(lambda m: m.group().replace(":", _RATIO), text)
    return text


def _sanitize_block(text: str) -> list[str]:
    """Sanitise a whole cue at once: readers match tags and ``{...}`` blocks across line breaks."""
    text = "\n".join(_CONTROL.sub(" ", line) for line in text.splitlines())
    text = _until_stable(_TAG, text)
    text = _until_stable(_BRACES, text)
    # A "<" before a later ">" could still read back as a tag ("< b >"): make it a look-alike.
    last_gt = text.rfind(">")
    if last_gt > 0:
        text = text[:last_gt].replace("<", "‹") + text[last_gt:]
    text = text.replace("\\", "∖")
    text = _ARROW.sub("→", text)
    text = _defuse_times(text)
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def sanitize_line(text: str) -> str:
    """Make cue text inert in SRT and VTT, as one line; may return ``""``.

    Removes control characters, markup tags and ``{...}`` override blocks; turns ``-->`` into
    ``→``, a ``<`` that precedes a ``>`` into ``‹``, ``\\`` into ``∖`` and the colons of
    timestamp-like text (``00:00:01,000``, ``12:34.567``) into ``∶``; collapses whitespace.
    """
    return " ".join(_sanitize_block(text))


def sanitize_cue(cue: Cue) -> Cue | None:
    """The cue with its text sanitised (see :func:`sanitize_line`) and blank lines dropped.

    Returns ``None`` when no text is left. Times are rounded to milliseconds (the files'
    resolution) and clamped at 0; the end is made no earlier than the start.
    """
    lines = _sanitize_block("\n".join(cue.lines))
    if not lines:
        return None
    if len(lines) > 1 and lines[-1].replace(" ", "").isdigit():
        # pysubs2 drops a trailing digits-only line as "the next cue's number": keep it on the line above.
        lines[-2:] = [f"{lines[-2]} {lines[-1]}"]
    start_ms = max(0, round(cue.start_s * 1000))
    end_ms = max(start_ms, round(cue.end_s * 1000))
    return Cue(start_ms / 1000, end_ms / 1000, tuple(lines))


def sanitize_cues(cues: Sequence[Cue]) -> list[Cue]:
    """Sanitise every cue (see :func:`sanitize_cue`), dropping cues with no text left."""
    kept = [c for c in map(sanitize_cue, cues) if c is not None]
    if len(kept) < len(cues):
        logger.debug("dropped %d cues with no text left after sanitising", len(cues) - len(kept))
    return kept


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render(cues: Sequence[Cue], fmt: Format) -> str:
    subs = pysubs2.SSAFile()
    for cue in sanitize_cues(cues):
        lines = [_vtt_escape(line) for line in cue.lines] if fmt == "vtt" else list(cue.lines)
        subs.append(
            pysubs2.SSAEvent(start=round(cue.start_s * 1000), end=round(cue.end_s * 1000), text=r"\N".join(lines))
        )
    text: str = subs.to_string(fmt)
    return text


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip text for ``cues`` (sanitised first; cues numbered from 1 in the given order)."""
    return _render(cues, "srt")


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT text for ``cues``: starts with ``WEBVTT``; ``&``, ``<`` and ``>`` are escaped."""
    return _render(cues, "vtt")


def _write_atomic(text: str, path: str | Path) -> Path:
    """Write UTF-8 text through a temporary file in the same folder, so readers never see half a file."""
    return atomic_write_text(ensure_path(path), text)


def write_srt(cues: Sequence[Cue], path: str | Path) -> Path:
    """Write ``cues`` as SRT to ``path`` atomically; returns the path. OS errors propagate."""
    return _write_atomic(to_srt(cues), path)


def write_vtt(cues: Sequence[Cue], path: str | Path) -> Path:
    """Write ``cues`` as WebVTT to ``path`` atomically; returns the path. OS errors propagate."""
    return _write_atomic(to_vtt(cues), path)


def write_subtitles(cues: Sequence[Cue], folder: str | Path, stem: str, language: str) -> dict[str, Path]:
    """``<stem>.<language>.srt`` and ``.vtt`` in ``folder`` (atomically): ``{"srt": path, "vtt": path}``."""
    base = ensure_path(folder) / f"{stem}.{language}"
    return {"srt": write_srt(cues, f"{base}.srt"), "vtt": write_vtt(cues, f"{base}.vtt")}


def parse_cues(text: str) -> list[Cue]:
    """Cues from SRT or WebVTT text (WebVTT when it starts with ``WEBVTT``); times in seconds.

    Markup is dropped and WebVTT character references (``&amp;``) are decoded.
    """
    fmt: Format = "vtt" if text.lstrip("\ufeff \t\r\n").startswith("WEBVTT") else "srt"
    subs = pysubs2.SSAFile.from_string(text, format_=fmt)
    cues: list[Cue] = []
    for event in subs:
        lines = event.plaintext.split("\n")
        if fmt == "vtt":
            lines = [html.unescape(line) for line in lines]
        cues.append(Cue(event.start / 1000, event.end / 1000, tuple(line for line in lines if line)))
    return cues


def read_cues(path: str | Path) -> list[Cue]:
    """Cues from an SRT or WebVTT file (UTF-8, BOM allowed); raises ``InputNotFound`` if it is missing."""
    source = ensure_path(path)
    if not source.is_file():
        raise InputNotFound(f"subtitle file not found: {source}")
    return parse_cues(source.read_text(encoding="utf-8-sig"))
