"""The job layer's data: job states, the stored job record and uploaded-file metadata."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import MutableMapping
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from pipelines.schema import JobRequest

# Generated ids are 32 lowercase hex digits (uuid4().hex); anything else is rejected before it
# touches the file system, so an id can never name a path outside its folder.
ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: frozenset[JobState] = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh job or file id: 32 lowercase hex digits."""
    return uuid.uuid4().hex


def is_valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))


class JobRecord(BaseModel):
    """One job as the store keeps it. ``request.input`` is the resolved local path of the media.

    ``progress`` is the overall fraction done (0–1); ``eta_s`` the estimated seconds left; ``error`` is
    ``{"code", "message"}`` when the job failed; ``outputs`` are file names in the job's ``out/`` folder.
    ``version`` counts the record's revisions (1 on create, +1 on every store update).
    """

    id: str = Field(default_factory=new_id)
    state: JobState = JobState.QUEUED
    request: JobRequest
    file_id: str | None = None
    stage: str | None = None
    progress: float = Field(default=0.0, ge=0.0, le=1.0)
    eta_s: float | None = None
    error: dict[str, Any] | None = None
    outputs: list[str] = Field(default_factory=list)
    created_at: AwareDatetime = Field(default_factory=utcnow)
    updated_at: AwareDatetime = Field(default_factory=utcnow)
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    owner: str | None = None
    idempotency_key: str | None = None
    version: int = 1
    cancel_requested: bool = False
    # Versioned re-dub (serve_app/jobs/redub.py): which version of the outputs ``out/`` holds, and the
    # pending re-dub ``{"version", "target_language", "edited"}`` while one is queued or running.
    output_version: int = 1
    redub: dict[str, Any] | None = None
    # Job leases (serve_app/jobs/worker.py): the worker running the job and when it last said so. A running
    # job whose heartbeat is older than the lease is requeued by any worker sharing the store.
    worker_id: str | None = None
    heartbeat_at: AwareDatetime | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


class FileInfo(BaseModel):
    """An uploaded media file. ``filename`` is the client's name (display only); ``path`` is where it is stored."""

    file_id: str
    filename: str
    content_type: str | None = None
    size: int = Field(ge=0, description="bytes")
    upload_time: AwareDatetime
    path: Path
    owner: str | None = Field(default=None, description="the uploader's key owner (None without API keys)")


class JobLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every message with ``[job <id>]`` and puts ``job_id`` into the record's extra."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        job_id = (self.extra or {}).get("job_id")
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return f"[job {job_id}] {msg}", kwargs


def job_logger(logger: logging.Logger, job_id: str) -> JobLogAdapter:
    return JobLogAdapter(logger, {"job_id": job_id})
