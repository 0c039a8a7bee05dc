"""Cut long audio into chunks at VAD boundaries, and put the chunk transcripts back together.

Used by the Ray Data batch (``pipelines.batch.actors``) so that one long video spreads over many
ASR workers, and by the Serve ASR paths so that long audio never travels or decodes whole. Plain
Python: no Ray. Times are in seconds (``*_s``), sample counts in ``*_samples``.

* :func:`speech_spans` finds speech with faster-whisper's bundled Silero VAD.
* :func:`plan_chunks` (pure) groups the speech spans into windows of at most ``max_s`` seconds whose
  borders lie in silence, so no word is cut in two and no audio is transcribed twice.
* :func:`merge_transcripts` (pure) rebuilds one Transcript from the chunk transcripts: each chunk's
  times are shifted by its offset, in chunk order; words are neither duplicated nor dropped.
* :func:`plan_file`, :func:`read_chunk` and :func:`transcribe_file` do the same from a WAV file a window
  or a chunk at a time, so memory does not grow with the audio's length (the batch's extract task, the
  Serve handle adapter and ``/v1/audio/*``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from pipelines.errors import InvalidMedia
from pipelines.schema import Segment, Transcript, Word

SAMPLE_RATE_HZ = 16000
# Long audio is read, VAD'd and transcribed this many seconds at a time (~38 MB of float32), never whole.
VAD_WINDOW_S = 600.0


class Recognize(Protocol):
    """A recogniser call (``WhisperASR``): float32 16 kHz samples -> Transcript, times from 0."""

    def __call__(self, audio: np.ndarray, *, language: str | None = None) -> Transcript: ...

DEFAULT_PAD_S = 1.0


@dataclass(frozen=True)
class Span:
    """A stretch of audio from ``start_s`` to ``end_s`` (seconds)."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Chunk:
    """One piece of a file's audio for ASR: ``index`` in time order, ``offset_s`` into the file;
    ``speech`` holds the VAD's speech spans inside it as ``[start_s, end_s]`` in file time."""

    index: int
    offset_s: float
    end_s: float
    speech: tuple[tuple[float, float], ...] = ()

    @property
    def duration_s(self) -> float:
        return self.end_s - self.offset_s


def speech_spans(
    audio: np.ndarray,
    *,
    max_span_s: float,
    min_silence_ms: int = 500,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> list[Span]:
    """Speech in ``audio`` (float32 mono at 16 kHz) as spans no longer than ``max_span_s`` seconds.

    Silero (bundled with faster-whisper) splits longer speech at its last pause of 100 ms or more,
    or hard before ``max_span_s`` when there is none. The spans are unpadded.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        min_silence_duration_ms=min_silence_ms, max_speech_duration_s=max_span_s, speech_pad_ms=0
    )
    stamps = get_speech_timestamps(np.asarray(audio, dtype=np.float32), options, sampling_rate=sample_rate_hz)
    return [Span(s["start"] / sample_rate_hz, s["end"] / sample_rate_hz) for s in stamps]


def plan_chunks(spans: Sequence[Span], total_s: float, max_s: float, *, pad_s: float = DEFAULT_PAD_S) -> list[Chunk]:
    """Group speech ``spans`` into chunks of at most ``max_s`` seconds, cut in the longest silences.

    Each span is widened by up to ``pad_s`` each side (never past the midpoint of the silence to
    its neighbour, nor outside ``[0, total_s]``). A chunk takes as many spans as fit in ``max_s``;
    when the rest does not fit, it ends at the longest pause in its second half (a pause between
    sentences, rather than a breath inside one, which the recogniser might drop). A span longer than
    ``max_s`` is cut hard into equal parts (the VAD normally prevents that). Chunks never overlap and
    keep time order. Audio without speech gives one chunk over the first ``max_s`` seconds, so the
    recogniser still reports a language. Raises ValueError for a non-positive ``max_s`` or a negative
    ``pad_s``.
    """
    if max_s <= 0 or pad_s < 0:
        raise ValueError("max_s must be positive and pad_s non-negative")
    if total_s <= 0:
        return []
    ordered = sorted((s for s in spans if s.end_s > s.start_s), key=lambda s: s.start_s)
    if not ordered:
        return [Chunk(0, 0.0, round(min(total_s, max_s), 3))]
    windows: list[tuple[Span, float]] = []  # (padded span, silence after it in seconds)
    owner: list[Span] = []
    for i, span in enumerate(ordered):
        lo = 0.0 if i == 0 else (ordered[i - 1].end_s + span.start_s) / 2
        hi = total_s if i == len(ordered) - 1 else (span.end_s + ordered[i + 1].start_s) / 2
        start, end = max(0.0, lo, span.start_s - pad_s), min(total_s, hi, span.end_s + pad_s)
        gap = (ordered[i + 1].start_s - span.end_s) if i + 1 < len(ordered) else 0.0
        parts = _hard_split(Span(start, max(end, start)), max_s)
        windows += [(p, 0.0) for p in parts[:-1]] + [(parts[-1], gap)]
        owner += [span] * len(parts)
    chunks: list[Chunk] = []
    i = 0
    while i < len(windows):
        start = windows[i][0].start_s
        j = i
        while j + 1 < len(windows) and windows[j + 1][0].end_s - start <= max_s:
            j += 1
        if j + 1 < len(windows):
            late = [k for k in range(i, j + 1) if windows[k][0].end_s - start >= max_s / 2] or [j]
            j = max(late, key=lambda k: (windows[k][1], k))
        inside = {(round(max(s.start_s, start), 3), round(min(s.end_s, windows[j][0].end_s), 3)) for s in owner[i : j + 1]}
        chunks.append(Chunk(len(chunks), round(start, 3), round(windows[j][0].end_s, 3), tuple(sorted(inside))))
        i = j + 1
    return chunks


def plan_audio(audio: np.ndarray, max_s: float, *, min_silence_ms: int = 500, pad_s: float = DEFAULT_PAD_S) -> list[Chunk]:
    """Chunks of at most ``max_s`` seconds for 16 kHz mono ``audio``: :func:`speech_spans`, then
    :func:`plan_chunks`."""
    spans = speech_spans(audio, max_span_s=max(1.0, max_s - 2 * pad_s), min_silence_ms=min_silence_ms)
    return plan_chunks(spans, len(audio) / SAMPLE_RATE_HZ, max_s, pad_s=pad_s)


def plan_file(
    wav: str | Path, max_s: float, *, min_silence_ms: int = 500, pad_s: float = DEFAULT_PAD_S, window_s: float = VAD_WINDOW_S
) -> list[Chunk]:
    """:func:`plan_audio` for a 16 kHz mono WAV file, read ``window_s`` seconds at a time: memory holds one
    window whatever the file's length. A file no longer than ``window_s`` gives exactly :func:`plan_audio`'s
    chunks; in a longer one the VAD starts afresh at each window's border (a span may be cut there)."""
    import soundfile as sf

    max_span_s = max(1.0, max_s - 2 * pad_s)
    spans: list[Span] = []
    with sf.SoundFile(str(wav)) as f:
        if f.samplerate != SAMPLE_RATE_HZ or f.channels != 1:
            raise InvalidMedia(f"expected 16 kHz mono audio, got {f.samplerate} Hz x {f.channels}")
        total_s = f.frames / SAMPLE_RATE_HZ
        step = max(1, round(window_s * SAMPLE_RATE_HZ))
        for start in range(0, f.frames, step):
            audio = f.read(step, dtype="float32")
            offset = start / SAMPLE_RATE_HZ
            found = speech_spans(audio, max_span_s=max_span_s, min_silence_ms=min_silence_ms)
            spans += [Span(offset + s.start_s, offset + s.end_s) for s in found]
    return plan_chunks(spans, total_s, max_s, pad_s=pad_s)


def read_chunk(wav: str | Path, chunk: Chunk) -> np.ndarray:
    """The samples of ``chunk`` read from a 16 kHz mono WAV file (the same as :func:`cut` of the whole)."""
    import soundfile as sf

    lo, hi = round(chunk.offset_s * SAMPLE_RATE_HZ), round(chunk.end_s * SAMPLE_RATE_HZ)
    data, _ = sf.read(str(wav), start=lo, stop=hi, dtype="float32", always_2d=False)
    return np.asarray(data, dtype=np.float32).reshape(-1)


def transcribe_file(
    recognize: Recognize,
    wav: str | Path,
    *,
    language: str | None = None,
    max_s: float = VAD_WINDOW_S,
    min_silence_ms: int = 500,
) -> Transcript:
    """Transcribe a 16 kHz mono WAV file in bounded memory: a file of at most ``max_s`` seconds goes to
    ``recognize`` whole (exactly as before); a longer one is cut in silences (:func:`plan_file`) and its
    chunks are read one at a time, transcribed (:func:`transcribe_chunk`) and put back together. The language
    the first chunk finds is given to the others."""
    import soundfile as sf

    info = sf.info(str(wav))
    if info.samplerate != SAMPLE_RATE_HZ or info.channels != 1:
        raise InvalidMedia(f"expected {SAMPLE_RATE_HZ} Hz mono audio, got {info.samplerate} Hz x {info.channels}")
    duration_s = info.frames / SAMPLE_RATE_HZ
    if duration_s <= max_s:
        data, _ = sf.read(str(wav), dtype="float32", always_2d=False)
        return recognize(np.asarray(data, dtype=np.float32).reshape(-1), language=language)
    parts: list[tuple[Chunk, Transcript]] = []
    found = language
    for chunk in plan_file(wav, max_s, min_silence_ms=min_silence_ms):
        parts.append((chunk, transcribe_chunk(recognize, read_chunk(wav, chunk), chunk, language=found)))
        found = found or parts[0][1].language
    merged = merge_transcripts(parts, duration_s=duration_s, language=found)
    if language is None and parts:  # detected once, on the first chunk: its confidence, not the forced ones'
        merged = replace(merged, language_probability=parts[0][1].language_probability)
    return merged


def _hard_split(span: Span, max_s: float) -> list[Span]:
    if span.duration_s <= max_s:
        return [span]
    parts = int(np.ceil(span.duration_s / max_s))
    step = span.duration_s / parts
    return [Span(span.start_s + k * step, span.start_s + (k + 1) * step) for k in range(parts)]


def cut(audio: np.ndarray, chunk: Chunk, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """The samples of ``chunk`` (a view into ``audio``)."""
    return audio[round(chunk.offset_s * sample_rate_hz) : round(chunk.end_s * sample_rate_hz)]


def transcribe_chunk(
    recognize: Recognize, audio: np.ndarray, chunk: Chunk, *, language: str | None = None, max_rounds: int = 4
) -> Transcript:
    """Transcribe one chunk's samples (times relative to the chunk) without losing speech.

    Whisper sometimes ends a window early: after a short line and a pause it emits one closing
    timestamp and skips the rest of the window. When a VAD speech span of ``chunk.speech`` starts
    after the last recognised word, the rest of the chunk is transcribed again from just before it
    (at most ``max_rounds`` calls in all), with the language found first.
    """
    duration_s = len(audio) / SAMPLE_RATE_HZ
    start_s, first = 0.0, None
    segments: list[Segment] = []
    speech = sorted((a - chunk.offset_s, b - chunk.offset_s) for a, b in chunk.speech)
    for _ in range(max_rounds):
        part = recognize(audio[int(start_s * SAMPLE_RATE_HZ) :], language=language or (first.language if first else None))
        first = first or part
        found = shift(part, start_s, limit_s=duration_s)
        segments += found
        heard_s = max((w.end_s for seg in found for w in seg.words), default=max((s.end_s for s in found), default=start_s))
        missed = [a for a, _ in speech if a > heard_s + 0.5 and a > start_s + 0.5]
        if not missed:
            break
        start_s = max(heard_s, missed[0] - 0.5)
    assert first is not None
    return Transcript(first.language, first.language_probability, round(duration_s, 3), tuple(segments))


def shift(transcript: Transcript, offset_s: float, *, limit_s: float | None = None) -> tuple[Segment, ...]:
    """The segments of a chunk's ``transcript`` moved by ``offset_s`` seconds into file time.

    Times are clamped to ``[offset_s, limit_s]`` (the chunk's end), because the decoder may place a
    last word a few milliseconds past the audio it was given.
    """
    top = float("inf") if limit_s is None else limit_s

    def at(t: float) -> float:
        return round(min(max(t + offset_s, offset_s), top), 3)

    return tuple(
        Segment(
            start_s=at(seg.start_s),
            end_s=at(seg.end_s),
            text=seg.text,
            words=tuple(Word(at(w.start_s), at(w.end_s), w.text, w.probability) for w in seg.words),
        )
        for seg in transcript.segments
    )


def merge_transcripts(
    parts: Sequence[tuple[Chunk, Transcript]], *, duration_s: float, language: str | None = None
) -> Transcript:
    """One Transcript for a whole file from its chunks' transcripts (any order in, time order out).

    ``language`` (a forced source language) wins; otherwise the language is the one the chunks
    detected with the most speech behind it (detection probability × chunk duration), and its
    probability is the duration-weighted mean over the chunks that agreed. Raises ValueError when two
    parts have the same chunk index (a chunk delivered twice).
    """
    ordered = sorted(parts, key=lambda p: p[0].index)
    indexes = [c.index for c, _ in ordered]
    if len(set(indexes)) != len(indexes):
        raise ValueError(f"duplicate chunk indexes: {indexes}")
    segments: list[Segment] = []
    for chunk, tr in ordered:
        segments += shift(tr, chunk.offset_s, limit_s=chunk.end_s)
    lang, prob = _vote(ordered) if language is None else (language, 1.0)
    return Transcript(language=lang, language_probability=prob, duration_s=round(duration_s, 3), segments=tuple(segments))


def _vote(parts: Sequence[tuple[Chunk, Transcript]]) -> tuple[str, float]:
    if not parts:
        return "en", 0.0
    weight: dict[str, float] = {}
    for chunk, tr in parts:
        speech = sum(s.end_s - s.start_s for s in tr.segments) or chunk.duration_s * 1e-3
        weight[tr.language] = weight.get(tr.language, 0.0) + tr.language_probability * speech
    best = max(weight, key=lambda k: weight[k])
    agreed = [(c.duration_s, t.language_probability) for c, t in parts if t.language == best]
    total = sum(d for d, _ in agreed) or 1.0
    return best, round(sum(d * p for d, p in agreed) / total, 4)
