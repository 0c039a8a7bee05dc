"""The job API: create (JSON or upload + fields), list, read, follow (SSE), download outputs, cancel.

Async routes never call the job store or the disk on the event loop (a store waiting out SQLite's
busy_timeout would freeze every request of the ingress): they ``asyncio.to_thread`` it; sync routes run in
the thread pool anyway."""

from __future__ import annotations

import asyncio
import json
import mimetypes
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse
from pydantic import ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from pipelines.errors import InvalidGlossary, InvalidSpeakers, InvalidVoice
from pipelines.glossary import parse_glossary
from pipelines.jobinputs import parse_speaker_voice_pairs
from pipelines.jobvoices import parse_voice_pairs
from pipelines.schema import JobRequest
from serve_app.api.deps import CSRFExpectedDep, JobServiceDep, OwnerDep, PrefixDep, SettingsDep, StorageDep
from serve_app.api.errors import InvalidRequest
from serve_app.api.routes.files import discard_upload, receive_upload
from serve_app.api.schemas import Envelope, JobCreate, JobList, JobPublic
from serve_app.api.upload import StreamingForm
from serve_app.errors import QueueFull
from serve_app.jobs import JobRecord, JobService, JobState

router = APIRouter(prefix="/jobs", tags=["jobs"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
INLINE_SUFFIXES = (".mp4", ".vtt", ".srt", ".json")
SSE_POLL_S = 0.5

JOB_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "target_languages"],
                    "properties": {
                        "csrf_token": {"type": "string"},
                        "file": {"type": "string", "format": "binary"},
                        "target_languages": {"type": "string", "description": "comma-separated: ru,es"},
                        "source_language": {"type": "string"},
                        "mode": {"type": "string", "enum": ["dub", "subtitles"]},
                        "burn_in": {"type": "boolean"},
                        "background": {"type": "string", "enum": ["separate", "duck", "none"]},
                        "glossary": {"type": "string", "description": 'JSON object, or "term = translation" lines'},
                        "voices": {
                            "type": "string",
                            "description": 'this job\'s voices: a JSON object {"ru": "rhvoice:irina"}, or "ru=rhvoice:irina" '
                            "pairs separated by commas (GET /v1/voices)",
                        },
                        "speakers": {"type": "string", "description": "how many people speak: 1-20, or auto (empty)"},
                        "min_speakers": {"type": "string", "description": "fewest speakers the count may find"},
                        "max_speakers": {"type": "string", "description": "most speakers the count may find"},
                        "speaker_voices": {
                            "type": "string",
                            "description": 'a voice per speaker: a JSON object {"S2": "rhvoice:irina"}, or '
                            '"S2=rhvoice:irina" pairs separated by commas',
                        },
                    },
                }
            }
        },
    }
}


async def _submit(jobs: JobService, body: JobCreate, idempotency_key: str | None, owner: str | None) -> JobRecord:
    """Record the job (local mode) or publish then record it (queue mode: 503 when the broker is down). The
    service refuses bad speaker options and voices (422) before anything is recorded (pipelines.jobinputs)."""
    if body.url is not None:
        await asyncio.to_thread(jobs.check_url, body.url)  # refused now (4xx), not when the job runs
    subtitles = None
    if body.source_subtitles_file_id is not None:
        subtitles = jobs.subtitle_path(body.source_subtitles_file_id, owner)
    request = JobRequest(
        input=body.url or "",  # an upload: replaced by its path
        target_languages=body.target_languages,
        source_language=body.source_language or None,
        mode=body.mode,
        burn_in=body.burn_in,
        glossary=body.glossary,
        source_subtitles=subtitles,
        voices=body.voices,
        background=body.background,
        speakers=body.speakers,
        min_speakers=body.min_speakers,
        max_speakers=body.max_speakers,
        speaker_voices=body.speaker_voices,
    )
    return await jobs.enqueue(request, file_id=body.file_id, owner=owner, idempotency_key=idempotency_key)


def _public(record: JobRecord, prefix: str) -> JobPublic:
    return JobPublic.from_record(record, prefix=prefix)


def _parse_glossary(raw: str | None) -> dict[str, str]:
    """The form field in either glossary syntax (pipelines.glossary, as the CLI file). Raises InvalidRequest."""
    try:
        return parse_glossary(raw)
    except InvalidGlossary as exc:
        raise InvalidRequest(exc.message) from exc


def _parse_voice_field(
    raw: str | None, name: str, shape: str, pairs: Callable[[list[str]], dict[str, str]]
) -> dict[str, str]:
    """The ``voices`` or ``speaker_voices`` form field: a JSON object ``shape``, or ``key=engine:voice`` pairs
    (commas or lines) read by ``pairs``. Raises InvalidRequest; the voices themselves are checked with the job
    (``JobService``)."""
    text = (raw or "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise InvalidRequest(f"{name} must be a JSON object {shape}")
        return value
    try:
        return pairs([p.strip() for p in text.replace("\n", ",").split(",") if p.strip()])
    except (InvalidVoice, InvalidSpeakers) as exc:
        raise InvalidRequest(exc.message.replace("--voice", "voices")) from exc


def _last(fields: dict[str, list[str]], name: str) -> str:
    """The last value of form field ``name``, stripped ('' when absent)."""
    return (fields.get(name) or [""])[-1].strip()


def job_create_from_form(file_id: str, fields: dict[str, list[str]]) -> JobCreate:
    """The job fields of a multipart POST /jobs/upload. Raises InvalidRequest."""
    targets = [
        t.strip() for v in fields.get("target_languages", []) for t in v.replace(";", ",").split(",") if t.strip()
    ]
    data: dict[str, Any] = {"file_id": file_id, "target_languages": targets}
    for name in ("source_language", "mode", "background"):
        if fields.get(name) and fields[name][-1].strip():
            data[name] = fields[name][-1].strip()
    if fields.get("burn_in"):
        data["burn_in"] = fields["burn_in"][-1].strip().lower() in {"1", "true", "on", "yes"}
    data["glossary"] = _parse_glossary(fields.get("glossary", [None])[-1])
    data["voices"] = _parse_voice_field(
        _last(fields, "voices"), "voices", "{language: engine:voice}", parse_voice_pairs
    )
    for name in ("speakers", "min_speakers", "max_speakers"):
        count = _last(fields, name)
        if count and count.lower() != "auto":
            data[name] = count  # JobCreate: an int within 1..SPEAKERS_LIMIT
    data["speaker_voices"] = _parse_voice_field(
        _last(fields, "speaker_voices"), "speaker_voices", '{"S2": "engine:voice"}',
        lambda items: parse_speaker_voice_pairs(items, name="speaker_voices"),
    )  # fmt: skip
    try:
        return JobCreate.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidRequest(f"invalid job field {where}: {first.get('msg')}") from exc


@router.post("", status_code=202, response_model=Envelope[JobPublic])
async def create_job(
    body: JobCreate, request: Request, jobs: JobServiceDep, prefix: PrefixDep, owner: OwnerDep,
    idempotency_key: IdempotencyKey = None,
) -> Envelope[JobPublic]:  # fmt: skip
    record = await _submit(jobs, body, idempotency_key, owner)
    request.state.job_id = record.id
    return Envelope(message=f"job {record.id} {record.state.value}", data=_public(record, prefix))


@router.post("/upload", status_code=202, response_model=Envelope[JobPublic], openapi_extra=JOB_UPLOAD_BODY)
async def upload_and_create_job(
    request: Request,
    jobs: JobServiceDep,
    storage: StorageDep,
    settings: SettingsDep,
    csrf_expected: CSRFExpectedDep,
    prefix: PrefixDep,
    owner: OwnerDep,
    idempotency_key: IdempotencyKey = None,
) -> Envelope[JobPublic]:
    form = StreamingForm(request, csrf_expected=csrf_expected)
    try:  # refuse before a big upload is streamed (submit checks again); the store call stays off the loop
        await asyncio.to_thread(jobs.check_queue_room)
    except QueueFull:
        await form.drain()
        raise
    info = await receive_upload(form, storage, settings.MAX_FILE_SIZE, owner)
    try:
        record = await _submit(jobs, job_create_from_form(info.file_id, form.fields), idempotency_key, owner)
    except Exception:
        await asyncio.to_thread(discard_upload, storage, info.file_id)  # a refused job leaves no orphan upload
        raise
    request.state.job_id = record.id
    return Envelope(message=f"job {record.id} {record.state.value}", data=_public(record, prefix))


@router.get("", response_model=Envelope[JobList])
def list_jobs(
    jobs: JobServiceDep, prefix: PrefixDep, owner: OwnerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> Envelope[JobList]:  # fmt: skip
    records = jobs.list(owner=owner, limit=limit, offset=offset)
    data = JobList(jobs=[_public(r, prefix) for r in records], limit=limit, offset=offset)
    return Envelope(message=f"{len(records)} job(s)", data=data)


@router.get("/{job_id}", response_model=Envelope[JobPublic])
def get_job(job_id: str, request: Request, jobs: JobServiceDep, prefix: PrefixDep) -> Envelope[JobPublic]:
    request.state.job_id = job_id
    record = jobs.get(job_id)
    return Envelope(message=f"job {record.id} {record.state.value}", data=_public(record, prefix))


@router.get("/{job_id}/events", response_class=EventSourceResponse)
async def job_events(job_id: str, request: Request, jobs: JobServiceDep, prefix: PrefixDep) -> EventSourceResponse:
    """Server-Sent Events: an ``event: job`` (data: the job as JSON) on every state, stage or progress
    change; the stream ends after the terminal state. 404 (not a stream) for an unknown job."""
    request.state.job_id = job_id
    await asyncio.to_thread(jobs.get, job_id)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async for record in jobs.events(job_id, poll_s=SSE_POLL_S):
            public = _public(record, prefix)
            yield ServerSentEvent(data=public.model_dump_json(), event="job", id=str(record.version))

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/{job_id}/outputs/{name}", response_class=FileResponse)
def download_output(job_id: str, name: str, request: Request, storage: StorageDep, jobs: JobServiceDep) -> FileResponse:
    """One output file; Range requests give 206 so players can seek."""
    request.state.job_id = job_id
    jobs.get(job_id)
    path = storage.output_path(job_id, name)
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.endswith(".srt"):
        media_type = "application/x-subrip"
    elif name.endswith(".vtt"):
        media_type = "text/vtt"
    disposition = "inline" if name.endswith(INLINE_SUFFIXES) else "attachment"
    return FileResponse(
        path,
        media_type=media_type,
        filename=name,
        content_disposition_type=disposition,
    )


@router.delete("/{job_id}", response_model=Envelope[JobPublic])
def cancel_job(job_id: str, request: Request, jobs: JobServiceDep, prefix: PrefixDep) -> Envelope[JobPublic]:
    """Cancel a queued job at once, or a running one at its next stage boundary; 409 when already over."""
    request.state.job_id = job_id
    record = jobs.cancel(job_id)
    message = "cancelled" if record.state is JobState.CANCELLED else "cancel requested"
    return Envelope(message=f"job {record.id}: {message}", data=_public(record, prefix))
