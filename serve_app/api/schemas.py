"""Request and response schemas, one per direction (``JobCreate`` in, ``JobPublic`` out).

Internal records (``JobRecord``, ``FileInfo``) never leave an endpoint; these do. Every JSON answer is
the envelope ``{status, message, data}`` (errors: ``{status, message, error}``, see ``errors.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from serve_app.jobs import FileInfo, JobRecord

T = TypeVar("T")
# One glossary entry's bounds (a job's glossary goes into every translation prompt).
GlossaryTerm = Annotated[str, Field(min_length=1, max_length=200)]
GlossaryText = Annotated[str, Field(max_length=500)]


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


class JobCreate(BaseModel):
    """POST /jobs."""

    model_config = ConfigDict(extra="forbid")

    file_id: str = Field(min_length=1, max_length=64)
    target_languages: list[str] = Field(min_length=1, max_length=16)
    source_language: str | None = None
    mode: Literal["dub", "subtitles"] = "dub"
    burn_in: bool = False
    glossary: dict[GlossaryTerm, GlossaryText] = Field(default_factory=dict, max_length=2000)


class JobError(BaseModel):
    code: str
    message: str


class JobPublic(BaseModel):
    """A job as clients see it: ``progress`` 0–1 overall, ``eta_s`` seconds left, ``outputs`` file names
    (download each from ``output_urls[name]``)."""

    job_id: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    stage: str | None
    progress: float
    eta_s: float | None
    error: JobError | None
    outputs: list[str]
    output_urls: dict[str, str]
    file_id: str | None
    target_languages: list[str]
    source_language: str | None
    mode: str
    burn_in: bool
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_record(cls, record: JobRecord, *, prefix: str = "") -> JobPublic:
        error = None
        if record.error:
            error = JobError(code=str(record.error.get("code", "error")), message=str(record.error.get("message", "")))
        return cls(
            job_id=record.id,
            state=record.state.value,
            stage=record.stage,
            progress=round(record.progress, 4),
            eta_s=record.eta_s,
            error=error,
            outputs=list(record.outputs),
            output_urls={name: f"{prefix}/jobs/{record.id}/outputs/{name}" for name in record.outputs},
            file_id=record.file_id,
            target_languages=list(record.request.target_languages),
            source_language=record.request.source_language,
            mode=record.request.mode,
            burn_in=record.request.burn_in,
            cancel_requested=record.cancel_requested,
            created_at=record.created_at,
            updated_at=record.updated_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
        )


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
    """POST /v1/audio/speech (OpenAI's shape; ``model`` and ``speed`` are accepted and ignored)."""

    input: str = Field(min_length=1)
    voice: str = "default"
    response_format: Literal["wav", "mp3"] = "mp3"
    model: str | None = None
    speed: float | None = None


class ModelList(BaseModel):
    status: Literal["success"] = "success"
    message: str
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]


class Health(BaseModel):
    version: str
    components: dict[str, bool] = Field(default_factory=dict)
