"""The ONE place where errors become HTTP: every error body is the envelope
``{"status": "error", "message": ..., "error": {"code": ..., "detail": ..., "message": ..., "type": ...}}``.

``error.message`` and ``error.type`` are there for OpenAI SDK clients of ``/v1`` (they read
``body["error"]["message"]``). A 429 carries Retry-After. No traceback ever reaches a body; unexpected
exceptions are logged here with theirs.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.errors import VTError
from serve_app.errors import QueueFull, RateLimited, Unauthorized, UploadConflict
from serve_app.jobs.public import public_message

logger = logging.getLogger(__name__)

_MAX_DETAIL_CHARS = 2000


class CSRFFailed(VTError):
    """A browser POST without a valid CSRF token (see ``serve_app.api.csrf``)."""

    code = "csrf_failed"
    http_status = 403


class InvalidHost(VTError):
    """A request whose Host is not in ``service.allowed_hosts`` (see ``serve_app.api.hosts``: DNS rebinding)."""

    code = "invalid_host"
    http_status = 400


class ModelNotFound(VTError):
    code = "model_not_found"
    http_status = 404


class RequestTooLarge(VTError):
    """A /v1 request over its size limit (text items, characters, audio bytes)."""

    code = "request_too_large"
    http_status = 413


class InvalidRequest(VTError):
    """A well-formed request with unusable content (missing form field, bad field value)."""

    code = "invalid_request"
    http_status = 422


def _redact(text: str) -> str:
    """Server paths become their last component (ffmpeg's stderr names temp files)."""
    return public_message(text)[:_MAX_DETAIL_CHARS]


def envelope(
    status_code: int, code: str, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error envelope as a response."""
    kind = "invalid_request_error" if status_code < 500 else "server_error"
    body = {
        "status": "error",
        "message": message,
        "error": {"code": code, "detail": detail, "message": message, "type": kind},
    }
    return JSONResponse(body, status_code=status_code, headers=headers)


def _status_code_name(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


def _validation_detail(exc: RequestValidationError) -> tuple[str, str, list[dict[str, Any]]]:
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        return "invalid_json", "the request body is not valid JSON", errors
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"] if p != "body")
    return "validation_error", f"invalid request: {where + ': ' if where else ''}{first['msg']}", errors


def error_response(exc: BaseException) -> JSONResponse:
    """Map any exception to the envelope with its status code."""
    if isinstance(exc, VTError):
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, (QueueFull, RateLimited)) else None
        if isinstance(exc, Unauthorized):
            headers = {"WWW-Authenticate": 'Bearer realm="videotranslator"'}
        detail: Any = _redact(exc.detail) if exc.detail and exc.http_status < 500 else None
        if isinstance(exc, UploadConflict):  # where to resume: the header resumable clients read, and the body
            headers, detail = {"Upload-Offset": str(exc.offset)}, {"offset": exc.offset}
        return envelope(exc.http_status, exc.code, public_message(exc.message), detail, headers)
    if isinstance(exc, RequestValidationError):
        code, message, errors = _validation_detail(exc)
        return envelope(422, code, message, errors)
    if isinstance(exc, StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else _status_code_name(exc.status_code).replace("_", " ")
        headers = dict(exc.headers or {})
        if exc.status_code == 429:
            headers.setdefault("Retry-After", "10")
        return envelope(exc.status_code, _status_code_name(exc.status_code), message, None, headers or None)
    return envelope(500, "internal_error", "internal server error")


async def handle_exception(request: Request, exc: Exception) -> JSONResponse:
    """The one exception handler (registered for VTError, HTTPException, validation errors and Exception)."""
    if not isinstance(exc, (VTError, RequestValidationError, StarletteHTTPException)):
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    elif isinstance(exc, VTError) and exc.http_status >= 500:
        logger.warning("%s on %s %s: %s", exc.code, request.method, request.url.path, exc.message)
    return error_response(exc)


def install(app: FastAPI) -> None:
    for exc_type in (VTError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(exc_type, handle_exception)
