"""POST /files/upload: a streamed upload (MAX_FILE_SIZE enforced while streaming, ffprobe-checked)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from serve_app.api.deps import CSRFExpectedDep, OwnerDep, SettingsDep, StorageDep
from serve_app.api.errors import InvalidRequest
from serve_app.api.schemas import Envelope, FilePublic
from serve_app.api.upload import StreamingForm
from serve_app.jobs import FileInfo, Storage

router = APIRouter(tags=["files"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}, "csrf_token": {"type": "string"}},
                }
            }
        },
    }
}


def discard_upload(storage: Storage, file_id: str) -> None:
    delete = getattr(storage, "delete_file", None)
    if delete is not None:
        delete(file_id)


async def receive_upload(form: StreamingForm, storage: Storage, max_bytes: int, owner: str | None) -> FileInfo:
    """Stream the form's file into storage, then read the fields after it. On an error the rest of the body
    is drained (up to a limit) so the client reads the answer; storage leaves no partial file."""
    try:
        if not await form.open_file():
            raise InvalidRequest("no file: send it in the multipart field 'file'")
        info = await storage.save_upload(
            form.file_chunks(), filename=form.filename, content_type=form.content_type, max_bytes=max_bytes,
            owner=owner,
        )
    except Exception:
        await form.drain()
        raise
    try:
        await form.finish()
    except Exception:
        await asyncio.to_thread(discard_upload, storage, info.file_id)  # rmtree: off the event loop
        raise
    return info


@router.post("/files/upload", status_code=201, response_model=Envelope[FilePublic], openapi_extra=UPLOAD_BODY)
async def upload_file(
    request: Request, storage: StorageDep, settings: SettingsDep, csrf_expected: CSRFExpectedDep, owner: OwnerDep
) -> Envelope[FilePublic]:
    form = StreamingForm(request, csrf_expected=csrf_expected)
    info = await receive_upload(form, storage, settings.MAX_FILE_SIZE, owner)
    return Envelope(message=f"uploaded {info.filename}", data=FilePublic.from_info(info))


@router.get("/files/{file_id}", response_model=Envelope[FilePublic])
async def get_file(file_id: str, storage: StorageDep, owner: OwnerDep) -> Envelope[FilePublic]:
    """The upload's public metadata; another key's upload is 404, like one that does not exist."""
    info = await asyncio.to_thread(storage.get_file, file_id, owner=owner)
    return Envelope(message="file", data=FilePublic.from_info(info))
