"""Data passed between pipeline stages. Units are in the names (``start_s``, ``sample_rate_hz``).

This module is the single job-request model for every entrypoint (CLI, HTTP, RabbitMQ, Ray Data).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from configs.settings import SPEAKERS_LIMIT, Background

Mode = Literal["dub", "subtitles"]


class Stage(str, Enum):
    """The stages of one job, in order. Progress events name one of these."""

    FETCH = "fetch"  # a URL input only
    EXTRACT = "extract"
    ASR = "asr"
    SUBTITLES = "subtitles"  # in place of ASR: the cues of a subtitle file
    DIARIZE = "diarize"  # who speaks: after ASR, before the sentences are cut
    SEGMENT = "segment"
    SEPARATE = "separate"  # mix.background=separate: the original's background stem, once per input
    TRANSLATE = "translate"
    TTS = "tts"
    MUX = "mux"


class JobRequest(BaseModel):
    """One translation job: what every entrypoint builds and hands to the runner."""

    input: str = Field(
        description="Path (or storage URI) of the input media, an http(s) URL to fetch, or a subtitle file "
        "(.srt/.vtt/.ass) alone to translate."
    )
    target_languages: list[str] = Field(min_length=1)
    source_language: str | None = None
    mode: Mode = "dub"
    burn_in: bool = False
    glossary: dict[str, str] = Field(default_factory=dict)
    source_subtitles: str | None = Field(
        default=None, description="A subtitle file (.srt/.vtt/.ass) whose cues become the transcript: ASR is skipped."
    )
    background: Background | None = Field(
        default=None,
        description="What plays under the dub: 'separate' (the original without its voice), 'duck' (the original "
        "lowered under each line) or 'none'; None: the mix.background setting.",
    )
    speakers: int | None = Field(
        default=None,
        ge=1,
        le=SPEAKERS_LIMIT,
        description="How many people speak (diarization); None: counted automatically.",
    )
    min_speakers: int | None = Field(
        default=None, ge=1, le=SPEAKERS_LIMIT, description="Overrides settings diarize.min_speakers."
    )
    max_speakers: int | None = Field(
        default=None, ge=1, le=SPEAKERS_LIMIT, description="Overrides settings diarize.max_speakers."
    )
    speaker_voices: dict[str, str] = Field(
        default_factory=dict,
        description="Speaker label ('S1') -> voice spec ('piper:bundled:en_US-joe-medium'), for every target "
        "language. Checked before any work (pipelines.jobinputs).",
    )
    output_stem: str | None = Field(
        default=None,
        description="Stem of the output names (<stem>.<lang>.mp4); defaults to the input's stem. "
        "Services set it from the client's file name, since uploads are stored under generated ids.",
    )
    voices: dict[str, str] = Field(
        default_factory=dict,
        description="This job's voices, language -> engine:voice (e.g. ru: rhvoice:irina; see GET /v1/voices "
        "or `videotranslator voices list`). They override settings tts.voices for this job only; other languages "
        "keep the configured or default voice. Checked before any work (pipelines.jobvoices).",
    )


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe tells about an input file."""

    path: str
    duration_s: float
    has_video: bool
    has_audio: bool
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    format_name: str = ""


@dataclass(frozen=True)
class Word:
    start_s: float
    end_s: float
    text: str
    probability: float = 1.0
    speaker: str | None = None  # set by diarization (pipelines/diarize.py): 'S1', 'S2', ...


@dataclass(frozen=True)
class Segment:
    """One ASR segment (a VAD/decoder fragment, not necessarily a sentence)."""

    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: str | None = None  # diarization's label when the segment has no words


@dataclass(frozen=True)
class Transcript:
    language: str
    language_probability: float
    duration_s: float
    segments: tuple[Segment, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = tuple(
            Segment(
                start_s=s["start_s"],
                end_s=s["end_s"],
                text=s["text"],
                words=tuple(Word(**w) for w in s.get("words", ())),
                speaker=s.get("speaker"),
            )
            for s in data.get("segments", ())
        )
        return cls(
            language=data["language"],
            language_probability=data["language_probability"],
            duration_s=data["duration_s"],
            segments=segments,
        )


@dataclass(frozen=True)
class Sentence:
    """A whole sentence for translation; ``id`` is its 0-based index in the transcript."""

    id: int
    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: str | None = None  # who says it (diarization); a sentence never spans two speakers


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: at most two lines of text."""

    start_s: float
    end_s: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Translation:
    """The translation of one sentence, id for id. ``flags`` name what went wrong, if anything."""

    id: int
    source: str
    text: str
    flags: tuple[str, ...] = ()
    voice: str | None = None  # the TTS voice for this line (a voice per speaker); None: the language's voice

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"id", "source", "text", "flags": [...]}`` and ``"voice"`` when set (the stage cache,
        Ray rows, re-dub specs)."""
        data: dict[str, Any] = {"id": self.id, "source": self.source, "text": self.text, "flags": list(self.flags)}
        if self.voice is not None:
            data["voice"] = self.voice
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Translation:
        """The inverse of :meth:`to_dict`; ``flags``, ``source`` and ``voice`` may be missing. KeyError without
        ``id``/``text``."""
        voice = data.get("voice")
        return cls(
            int(data["id"]), str(data.get("source", "")), str(data["text"]), tuple(data.get("flags", ())),
            str(voice) if voice else None,
        )  # fmt: skip


def dump_translations(translations: Iterable[Translation]) -> list[dict[str, Any]]:
    """``[t.to_dict() for t in translations]``: the one serialised form of a target's translations."""
    return [t.to_dict() for t in translations]


def load_translations(rows: Iterable[dict[str, Any]]) -> list[Translation]:
    """The inverse of :func:`dump_translations`."""
    return [Translation.from_dict(r) for r in rows]


@dataclass
class Clip:
    """Synthesised speech for one sentence: float32 mono samples in [-1, 1]."""

    id: int
    samples: np.ndarray
    sample_rate_hz: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / float(self.sample_rate_hz)


@dataclass(frozen=True)
class Slot:
    """Where a dubbed sentence may go: its source start/end and the start of the next sentence."""

    id: int
    start_s: float
    end_s: float
    next_start_s: float | None


@dataclass(frozen=True)
class PlanItem:
    """Where and how fast one clip plays in the dubbed track."""

    id: int
    start_s: float
    end_s: float
    speed: float
    overflow_s: float


@dataclass(frozen=True)
class DubPlan:
    items: tuple[PlanItem, ...] = ()


@dataclass
class StageTimings:
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + seconds, 4)


def output_names(stem: str, target: str, source: str) -> dict[str, str]:
    """File names for one input and one target language, shared by CLI, service and batch."""
    return {
        "mp4": f"{stem}.{target}.mp4",
        "srt": f"{stem}.{target}.srt",
        "vtt": f"{stem}.{target}.vtt",
        "source_srt": f"{stem}.{source}.srt",
        "report": f"{stem}.report.json",
    }


def safe_stem(filename: str, *, max_len: int = 80) -> str:
    """A file-system-safe stem from a client's file name: no directories, no control or path
    characters, no leading dots, at most ``max_len`` characters; "" if nothing usable is left."""
    base = re.split(r"[\\/]", filename)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    cleaned = re.sub(r"[^\w.\-]+", "_", stem, flags=re.UNICODE).strip("._")
    return cleaned[:max_len].rstrip("._")


def ensure_path(value: str | Path) -> Path:
    return value if isinstance(value, Path) else Path(value)
