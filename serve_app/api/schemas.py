"""Request and response schemas, one per direction (``JobCreate`` in, ``JobPublic`` out).

Internal records (``JobRecord``, ``FileInfo``) never leave an endpoint; these do (``JobPublic``, the one
public view of a job, lives in ``serve_app.jobs.public``: the bridge sends it too). Every JSON answer is
the envelope ``{status, message, data}`` (errors: ``{status, message, error}``, see ``errors.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from configs.settings import SPEAKERS_LIMIT
from serve_app.jobs import FileInfo
from serve_app.jobs.public import JobError, JobPublic

__all__ = [
    "Envelope", "ErrorDetail", "ErrorEnvelope", "FilePublic", "Health", "JobCreate", "JobError", "JobList",
    "JobPublic", "ModelList", "SpeechRequest", "TranslateRequest", "TranslateResponse", "UploadCreate",
    "UploadPublic", "VoiceList",
]  # fmt: skip

T = TypeVar("T")
# One glossary entry's bounds (a job's glossary goes into every translation prompt).
GlossaryTerm = Annotated[str, Field(min_length=1, max_length=200)]
GlossaryText = Annotated[str, Field(max_length=500)]
VoiceLanguage = Annotated[str, Field(min_length=2, max_length=16)]
VoiceId = Annotated[str, Field(min_length=3, max_length=200)]
SpeakerLabel = Annotated[str, Field(min_length=2, max_length=8)]  # S1, S2, ...


class Envelope(BaseModel, Generic[T]):
    status: Literal["success"] = "success"
    message: str
    data: T


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable name, e.g. job_not_found")
    detail: Any = None
    message: str
    type: str = Field(description="invalid_request_error (4xx) or server_error (5xx), as OpenAI SDKs expect")


class ErrorEnvelope(BaseModel):
    """Every error body (``serve_app.api.errors``): documented as the 4XX/5XX response of every operation."""

    status: Literal["error"] = "error"
    message: str
    error: ErrorDetail


class FilePublic(BaseModel):
    file_id: str
    filename: str
    content_type: str | None
    size: int = Field(description="bytes")
    upload_time: datetime

    @classmethod
    def from_info(cls, info: FileInfo) -> FilePublic:
        return cls(
            file_id=info.file_id,
            filename=info.filename,
            content_type=info.content_type,
            size=info.size,
            upload_time=info.upload_time,
        )


class UploadCreate(BaseModel):
    """POST /files/uploads: start a resumable upload of ``size`` bytes (at most MAX_FILE_SIZE)."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=1024)
    size: int = Field(gt=0, description="the whole file's size in bytes")
    content_type: str | None = Field(default=None, max_length=255)
    sha256: str | None = Field(default=None, description="the whole file's sha256 (hex), checked when it is complete")


class UploadPublic(BaseModel):
    """A resumable upload: ``offset`` bytes of ``size`` received; the next chunk starts at ``offset``. Once
    ``complete``, ``file`` is the stored file (``file.file_id`` is the ``upload_id``), ready for POST /jobs."""

    upload_id: str
    filename: str
    size: int = Field(description="bytes")
    offset: int = Field(description="bytes received so far")
    complete: bool
    chunk_max_bytes: int = Field(description="the largest chunk a PUT may carry (bytes)")
    expires_at: datetime | None = Field(description="when the idle session expires (UTC); null once complete")
    file: FilePublic | None = None


class JobCreate(BaseModel):
    """POST /jobs: the input is an upload (``file_id``: media, or a subtitle file alone) or a ``url`` to fetch;
    ``source_subtitles_file_id``: an uploaded subtitle file whose cues replace ASR."""

    model_config = ConfigDict(extra="forbid")

    file_id: str | None = Field(default=None, min_length=1, max_length=64)
    url: str | None = Field(default=None, min_length=1, max_length=4096, description="http(s) URL of the media")
    source_subtitles_file_id: str | None = Field(default=None, min_length=1, max_length=64)
    target_languages: list[str] = Field(min_length=1, max_length=16)
    source_language: str | None = None
    mode: Literal["dub", "subtitles"] = "dub"
    burn_in: bool = False
    glossary: dict[GlossaryTerm, GlossaryText] = Field(default_factory=dict, max_length=2000)
    voices: dict[VoiceLanguage, VoiceId] = Field(
        default_factory=dict,
        max_length=32,
        description="This job's voices: language -> engine:voice from GET /v1/voices, e.g. ru: rhvoice:irina. "
        "Other languages get the default voice. An unknown, not installed or opt-in voice is a 422 before the job "
        "is queued.",
    )
    background: Literal["separate", "duck", "none"] | None = Field(
        default=None, description="Under the dub: 'separate', 'duck' or 'none'; default: the mix.background setting."
    )
    speakers: int | None = Field(
        default=None, ge=1, le=SPEAKERS_LIMIT, description="How many people speak; None: counted."
    )
    min_speakers: int | None = Field(
        default=None, ge=1, le=SPEAKERS_LIMIT, description="Fewest speakers the count may find."
    )
    max_speakers: int | None = Field(
        default=None, ge=1, le=SPEAKERS_LIMIT, description="Most speakers the count may find."
    )
    speaker_voices: dict[SpeakerLabel, VoiceId] = Field(
        default_factory=dict,
        max_length=SPEAKERS_LIMIT,
        description="Speaker label ('S2') -> voice ('rhvoice:irina') from GET /v1/voices, one that speaks every "
        "target language. A bad count, a count that contradicts min/max, or an unknown voice is a 422 before the "
        "job is queued.",
    )

    @model_validator(mode="after")
    def _one_input(self) -> JobCreate:
        if (self.file_id is None) == (self.url is None):
            raise ValueError("give exactly one input: file_id (an upload) or url")
        return self


class JobList(BaseModel):
    jobs: list[JobPublic]
    limit: int
    offset: int


class TranslateRequest(BaseModel):
    """POST /v1/translate (limits: service.max_text_items texts, service.max_text_chars characters)."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str]
    source_language: str
    target_language: str
    glossary: dict[str, str] = Field(default_factory=dict)


class TranslateResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str
    translations: list[str]
    data: dict[str, Any]


class SpeechRequest(BaseModel):
    """POST /v1/audio/speech (OpenAI's shape; ``model`` and ``speed`` are accepted and ignored; ``language`` is ours)."""

    input: str = Field(min_length=1)
    voice: str = Field(
        default="default",
        max_length=200,
        description="A voice id from GET /v1/voices (rhvoice:irina, espeak:de), a language code (ru: its default "
        "voice), or an OpenAI voice name (alloy, echo, fable, onyx, nova, shimmer, …: the default voice of "
        "`language`, English without it).",
    )
    language: str | None = Field(
        default=None,
        max_length=16,
        description="Not in OpenAI's schema: the language of `input` (ISO 639-1). An OpenAI voice name then means "
        "that language's default voice; a catalog voice must speak it.",
    )
    response_format: Literal["wav", "mp3"] = "mp3"
    model: str | None = None
    speed: float | None = None


class VoiceList(BaseModel):
    """GET /v1/voices: the voice catalog, as a list in the /v1/models style (``object``, ``data``)."""

    status: Literal["success"] = "success"
    message: str
    object: Literal["list"] = "list"
    data: list[dict[str, Any]] = Field(
        description="One voice each: id (engine:voice), object (voice), engine, languages, gender, licence, "
        "commercial_ok, opt_in, installed, source, sample_rate_hz, cer (measured, 0-1), speed_x (seconds of audio per "
        "second), default (the default of one of its languages), default_for (those languages)."
    )
    defaults: dict[str, str] = Field(description="language -> the voice a job gets for it without `voices`")


class ModelList(BaseModel):
    status: Literal["success"] = "success"
    message: str
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]


class Health(BaseModel):
    version: str
    components: dict[str, bool] = Field(default_factory=dict)
