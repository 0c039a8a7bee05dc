"""Service-level domain errors (on top of pipelines.errors). Mapped to HTTP in one exception handler
and to JSON-RPC codes in the bridge."""

from __future__ import annotations

from pipelines.errors import VTError


class JobNotFound(VTError):
    code = "job_not_found"
    http_status = 404


class FileNotFound(VTError):
    code = "file_not_found"
    http_status = 404


class OutputNotFound(VTError):
    code = "output_not_found"
    http_status = 404


class InvalidEdit(VTError):
    """A re-dub's edit names an unknown sentence, speaker or language, or carries an empty or too long
    translation (``serve_app.jobs.redub``, ``serve_app.jobs.speaker_edits``)."""

    code = "invalid_edit"
    http_status = 422


class FileTooLarge(VTError):
    code = "file_too_large"
    http_status = 413


class QueueFull(VTError):
    """Too many queued jobs; ``retry_after_s`` goes into the Retry-After header."""

    code = "queue_full"
    http_status = 429

    def __init__(self, message: str, *, retry_after_s: int = 10) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class JobNotCancellable(VTError):
    code = "job_not_cancellable"
    http_status = 409


class InsufficientStorage(VTError):
    code = "insufficient_storage"
    http_status = 507


class BadRequest(VTError):
    code = "bad_request"
    http_status = 400


class Unauthorized(VTError):
    """No API key, or one that is not in ``service.api_keys`` (HTTP 401 + ``WWW-Authenticate: Bearer``)."""

    code = "unauthorized"
    http_status = 401


class RateLimited(VTError):
    """Too many requests from one key or one address; ``retry_after_s`` goes into the Retry-After header."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InsecureStartup(VTError):
    """Refusing to serve a non-loopback address (or a remote broker) without API keys."""

    code = "insecure_startup"
    http_status = 500


class QueueUnavailable(QueueFull):
    """Queue mode: the broker could not be reached or did not confirm the job's message in time; nothing was
    recorded. A subclass of QueueFull so it carries ``retry_after_s`` into the Retry-After header."""

    code = "queue_unavailable"
    http_status = 503


class GPUUnavailable(VTError):
    """A profile asks for GPUs the Ray cluster does not have: refused before deploying (``serve.run`` would
    otherwise wait for them forever)."""

    code = "gpu_unavailable"
    http_status = 503


class UploadNotFound(VTError):
    """No resumable upload session with this id for this caller (or it expired, or another key's)."""

    code = "upload_not_found"
    http_status = 404


class UploadConflict(VTError):
    """A chunk that does not start at the session's current ``offset`` (bytes), or a session another request is
    writing to. The answer carries the offset (``Upload-Offset`` header and ``error.detail.offset``)."""

    code = "upload_offset_mismatch"
    http_status = 409

    def __init__(self, message: str, *, offset: int, code: str | None = None) -> None:
        super().__init__(message)
        self.offset = offset
        if code is not None:
            self.code = code


class ChecksumMismatch(VTError):
    """The finished upload's sha256 is not the one declared when the session was created."""

    code = "checksum_mismatch"
    http_status = 422


class LengthRequired(VTError):
    code = "length_required"
    http_status = 411
