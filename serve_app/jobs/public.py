"""``JobPublic``: the ONE public view of a job, what the HTTP API and the RabbitMQ bridge send.

Internal records (``JobRecord``) never leave the service; this does. It is a pydantic model without FastAPI,
so the bridge uses it too (``JobPublic.from_record(record).model_dump(mode="json")``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from serve_app.jobs.models import JobRecord

# An absolute server path (POSIX or Windows): ``/srv/vt/jobs/<id>/in.mp4`` → ``in.mp4``; not a URL's path nor
# a relative one (``jobs/<id>/out``), which name nothing on the server's disk.
_PATH = re.compile(r"(?<![\w:/\\.])(?:[A-Za-z]:)?(?:[/\\][^\s/\\:'\"]+)+[/\\]([^\s/\\:'\"]+)")


def public_message(text: str) -> str:
    """``text`` as a client may see it: every server path becomes its last component. The one redaction of
    error messages (stage errors name model files, uploads and temp folders), for the HTTP envelope, a job's
    ``error`` and the bridge's job views."""
    return _PATH.sub(r"\1", text)


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
    voices: dict[str, str] = {}
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_record(cls, record: JobRecord, *, prefix: str = "") -> JobPublic:
        """The public view of ``record``; ``output_urls`` are paths of the HTTP API under ``prefix``."""
        error = None
        if record.error:
            message = public_message(str(record.error.get("message", "")))
            error = JobError(code=str(record.error.get("code", "error")), message=message)
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
            voices=dict(record.request.voices),
            cancel_requested=record.cancel_requested,
            created_at=record.created_at,
            updated_at=record.updated_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
        )
