"""Resumable uploads: ``POST /files/uploads`` starts a session, ``PUT /files/uploads/{id}`` sends one chunk
(``Content-Range: bytes START-END/SIZE``, at most ``upload.chunk_max_bytes``), ``HEAD``/``GET`` tell the
offset to resume from, ``DELETE`` cancels. Every body is small whatever the file's size, and each chunk is
written to disk as it arrives (``serve_app.jobs.resumable``)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.requests import ClientDisconnect

from serve_app.api.deps import OwnerDep, SettingsDep, StorageDep
from serve_app.api.errors import RequestTooLarge
from serve_app.api.schemas import Envelope, FilePublic, UploadCreate, UploadPublic
from serve_app.errors import BadRequest, LengthRequired
from serve_app.jobs.resumable import UploadSessions, UploadState
from serve_app.jobs.wiring import build_upload_sessions

router = APIRouter(tags=["files"])

_RANGE = re.compile(r"^bytes (\d{1,15})-(\d{1,15})/(\d{1,15})$")
OFFSET_HEADER = "Upload-Offset"


def get_sessions(storage: StorageDep, settings: SettingsDep) -> UploadSessions:
    return build_upload_sessions(settings, storage)


SessionsDep = Annotated[UploadSessions, Depends(get_sessions)]


def public(state: UploadState, sessions: UploadSessions, response: Response) -> UploadPublic:
    response.headers[OFFSET_HEADER] = str(state.offset)
    response.headers["Upload-Length"] = str(state.session.size)
    return UploadPublic(
        upload_id=state.session.upload_id,
        filename=state.session.filename,
        size=state.session.size,
        offset=state.offset,
        complete=state.complete,
        chunk_max_bytes=sessions.chunk_max_bytes,
        expires_at=state.expires_at,
        file=FilePublic.from_info(state.file) if state.file is not None else None,
    )


def parse_content_range(value: str | None) -> tuple[int, int, int]:
    """``bytes START-END/SIZE`` (END inclusive) → (start, length, size). Raises BadRequest."""
    match = _RANGE.match((value or "").strip())
    if match is None:
        raise BadRequest("send the chunk's place as 'Content-Range: bytes START-END/SIZE' (END inclusive)")
    start, end, size = (int(g) for g in match.groups())
    if end < start:
        raise BadRequest(f"the Content-Range {value!r} ends before it starts")
    return start, end - start + 1, size


def chunk_length(request: Request, limit: int) -> int:
    """The declared body length, checked against ``limit`` before any byte is read. Raises LengthRequired
    without a Content-Length, RequestTooLarge past the limit."""
    raw = request.headers.get("content-length")
    if raw is None or not raw.isdigit():
        raise LengthRequired("send each chunk with a Content-Length header")
    length = int(raw)
    if length > limit:
        raise RequestTooLarge(f"the chunk is {length} bytes; send at most {limit} bytes per request")
    return length


@router.post("/files/uploads", status_code=201, response_model=Envelope[UploadPublic])
async def create_upload(
    body: UploadCreate, sessions: SessionsDep, owner: OwnerDep, response: Response
) -> Envelope[UploadPublic]:
    """Start a resumable upload of ``size`` bytes. Larger than MAX_FILE_SIZE: 413; no room in the storage
    quota: 507. Then PUT the bytes in chunks to ``Location``."""
    state = await asyncio.to_thread(
        sessions.create, filename=body.filename, size=body.size, content_type=body.content_type, sha256=body.sha256,
        owner=owner,
    )  # fmt: skip
    response.headers["Location"] = f"/files/uploads/{state.session.upload_id}"
    return Envelope(message="upload started", data=public(state, sessions, response))


CHUNK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    "parameters": [
        {"name": "Content-Range", "in": "header", "required": True, "description": "bytes START-END/SIZE, END inclusive",
         "schema": {"type": "string", "pattern": r"^bytes \d+-\d+/\d+$"}},
    ],
}  # fmt: skip


@router.put("/files/uploads/{upload_id}", response_model=Envelope[UploadPublic], openapi_extra=CHUNK_BODY)
async def put_chunk(
    upload_id: str, request: Request, sessions: SessionsDep, owner: OwnerDep, response: Response
) -> Envelope[UploadPublic]:
    """One chunk at the upload's current offset. A wrong offset is 409 with the offset to resume from (header
    ``Upload-Offset`` and ``error.detail.offset``); a body over ``upload.chunk_max_bytes`` is 413 before it is
    read. The last chunk answers with ``complete: true`` and the stored ``file``."""
    length = chunk_length(request, sessions.chunk_max_bytes)
    start, span, size = parse_content_range(request.headers.get("content-range"))
    if span != length:
        raise BadRequest(f"the Content-Range covers {span} bytes but the body has {length}")
    try:
        state = await sessions.write_chunk(
            upload_id, owner, start=start, length=length, total=size, body=request.stream()
        )
    except ClientDisconnect:  # expected with flaky links: no error log, and what arrived is kept
        raise BadRequest("the connection dropped during the chunk; resume from the offset HEAD tells") from None
    message = "upload complete" if state.complete else f"{state.offset} of {size} bytes received"
    return Envelope(message=message, data=public(state, sessions, response))


@router.head("/files/uploads/{upload_id}", response_model=Envelope[UploadPublic], operation_id="head_upload")
@router.get("/files/uploads/{upload_id}", response_model=Envelope[UploadPublic])
async def get_upload(
    upload_id: str, sessions: SessionsDep, owner: OwnerDep, response: Response
) -> Envelope[UploadPublic]:
    """Where the upload stands: resume with a PUT at ``offset`` (also the ``Upload-Offset`` header, which HEAD
    answers alone). Another key's session is 404, like one that does not exist."""
    state = await asyncio.to_thread(sessions.get, upload_id, owner)
    return Envelope(message="upload", data=public(state, sessions, response))


@router.delete("/files/uploads/{upload_id}", response_model=Envelope[UploadPublic])
async def cancel_upload(
    upload_id: str, sessions: SessionsDep, owner: OwnerDep, response: Response
) -> Envelope[UploadPublic]:
    """Cancel the upload: its session and bytes are removed (a complete upload is a file now: 404)."""
    state = await asyncio.to_thread(sessions.cancel, upload_id, owner)
    return Envelope(message="upload cancelled", data=public(state, sessions, response))
