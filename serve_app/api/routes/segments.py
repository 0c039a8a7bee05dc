"""What the web page needs beyond the job API: its config, editing translations (a versioned re-dub of
only the changed sentences), older versions of the outputs, and the original audio for the player's
audio switch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from configs.settings import SPEAKERS_LIMIT
from pipelines import media
from pipelines.fileio import atomic_path
from pipelines.jobvoices import MAX_JOB_VOICES
from pipelines.languages import LANGUAGES
from serve_app.api.deps import JobServiceDep, PrefixDep, SettingsDep, StorageDep
from serve_app.api.schemas import Envelope, JobPublic
from serve_app.errors import OutputNotFound
from serve_app.jobs import JobRecord, Storage
from serve_app.jobs.redub import MAX_TRANSLATION_CHARS, enqueue_redub, version_files, versions_dir

router = APIRouter(tags=["web"])

# What the page's file picker offers and checks before uploading (the server probes with ffprobe anyway).
ACCEPT = ("video/*", "audio/*", ".mkv", ".ts", ".flac", ".opus", ".m4a", ".webm", ".avi", ".wmv", ".flv")
ORIGINAL_AUDIO = "original-audio.m4a"


class Language(BaseModel):
    code: str
    name: str


class WebConfig(BaseModel):
    """GET /config: what the page checks before it uploads."""

    max_file_size: int = Field(description="bytes; larger uploads are refused with 413")
    languages: list[Language]
    accept: list[str]
    max_translation_chars: int
    resumable_threshold_bytes: int = Field(description="files larger than this go as resumable chunked uploads")
    upload_chunk_bytes: int = Field(description="the chunk size of resumable uploads (upload.chunk_max_bytes)")
    speakers_limit: int = Field(description="the most speakers a job may name (speakers, min/max_speakers)")
    speakers_enabled: bool = Field(description="whether jobs take speaker options (settings diarize.enabled)")


class SegmentEdit(BaseModel):
    """One sentence's edit: a new translation, a new speaker, or both."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=0)
    translation: str | None = Field(default=None, max_length=MAX_TRANSLATION_CHARS * 2)
    speaker: str | None = Field(
        default=None, min_length=1, max_length=16, description="A speaker of the job's report ('S2'): who says it."
    )

    @model_validator(mode="after")
    def _some_change(self) -> SegmentEdit:
        if self.translation is None and self.speaker is None:
            raise ValueError(f"segment {self.id}: give a translation, a speaker or both")
        return self


class SegmentsPatch(BaseModel):
    """PATCH /jobs/{id}/segments: new translations or speakers for some sentences of one target language, and
    new voices for some of its speakers."""

    model_config = ConfigDict(extra="forbid")

    target_language: str = Field(min_length=2, max_length=16)
    segments: list[SegmentEdit] = Field(default_factory=list, max_length=5000)
    speaker_voices: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_JOB_VOICES,
        description="Speaker label ('S2') -> a catalog voice of the target language (GET /v1/voices).",
    )

    @model_validator(mode="after")
    def _some_edit(self) -> SegmentsPatch:
        if not self.segments and not self.speaker_voices:
            raise ValueError("nothing to edit: give segments, speaker_voices or both")
        return self


class Redub(BaseModel):
    """The answer to a PATCH: the job (queued again when something changed), the version being made,
    and the sentence ids whose translation, speaker or speaker's voice changed (only those are re-synthesised)."""

    job: JobPublic
    version: int = Field(description="the outputs version the re-dub produces (the current one when nothing changed)")
    target_language: str
    changed: list[int]
    events_url: str


class Version(BaseModel):
    version: int
    current: bool
    outputs: list[str]
    output_urls: dict[str, str]


class Versions(BaseModel):
    job_id: str
    current_version: int
    pending: dict[str, Any] | None = Field(description="the re-dub queued or running, if any")
    versions: list[Version]


@router.get("/config", response_model=Envelope[WebConfig])
def web_config(settings: SettingsDep) -> Envelope[WebConfig]:
    """The upload limit and the languages (code and English name) the page offers."""
    languages = sorted((Language(code=c, name=n) for c, n in LANGUAGES.items()), key=lambda lang: lang.name)
    data = WebConfig(
        max_file_size=settings.MAX_FILE_SIZE,
        languages=languages,
        accept=list(ACCEPT),
        max_translation_chars=MAX_TRANSLATION_CHARS,
        resumable_threshold_bytes=settings.upload.resumable_threshold_bytes,
        upload_chunk_bytes=settings.upload.chunk_max_bytes,
        speakers_limit=SPEAKERS_LIMIT,
        speakers_enabled=settings.diarize.enabled,
    )
    return Envelope(message="config", data=data)


@router.patch("/jobs/{job_id}/segments", status_code=202, response_model=Envelope[Redub])
async def edit_segments(
    job_id: str, body: SegmentsPatch, request: Request, response: Response, jobs: JobServiceDep, prefix: PrefixDep
) -> Envelope[Redub]:
    """Change some translations, some sentences' speakers or some speakers' voices, and re-dub ONLY the sentences
    that changed (their translation, their speaker, or their speaker's voice), as a new version of the outputs.

    202: the job is queued again (follow ``GET /jobs/{id}/events``); when it succeeds ``out/`` holds the new
    version, the previous one stays under ``GET /jobs/{id}/versions``, and the report's
    ``targets[lang].resynthesized`` counts the sentences synthesised again. 200: nothing changed.
    409 ``job_busy`` while the job is queued or running; 422 ``invalid_edit`` for an unknown sentence id or
    speaker, an empty or too long translation, or a language the job has no outputs for; 422 ``invalid_voice``
    for a voice that is not in the catalog, not installed, or of another language. Queue mode: the re-dub is
    published to the broker first; 503 ``queue_unavailable`` (with Retry-After, job untouched) when it is down.
    """
    request.state.job_id = job_id
    edits = [(s.id, s.translation) for s in body.segments if s.translation is not None]
    speakers = {s.id: s.speaker for s in body.segments if s.speaker is not None}
    record, changed = await enqueue_redub(
        jobs, job_id, body.target_language, edits, speakers=speakers, speaker_voices=body.speaker_voices
    )
    version = record.redub["version"] if changed and record.redub else record.output_version
    data = Redub(
        job=JobPublic.from_record(record, prefix=prefix),
        version=version,
        target_language=body.target_language.strip().lower(),
        changed=changed,
        events_url=f"{prefix}/jobs/{job_id}/events",
    )
    if not changed:
        response.status_code = 200
        return Envelope(message="nothing changed: the edits are the same as the current version", data=data)
    n = len(changed)
    message = f"re-dubbing {n} changed sentence{'s' if n != 1 else ''} as version {version}"
    return Envelope(message=message, data=data)


def _version_urls(prefix: str, job_id: str, version: int, names: list[str], current: bool) -> dict[str, str]:
    if current:
        return {n: f"{prefix}/jobs/{job_id}/outputs/{n}" for n in names}
    return {n: f"{prefix}/jobs/{job_id}/versions/{version}/outputs/{n}" for n in names}


@router.get("/jobs/{job_id}/versions", response_model=Envelope[Versions])
def list_versions(
    job_id: str, request: Request, jobs: JobServiceDep, storage: StorageDep, prefix: PrefixDep
) -> Envelope[Versions]:
    """Every version of the job's outputs, oldest first; the current one is what ``outputs`` lists."""
    request.state.job_id = job_id
    record = jobs.get(job_id)
    versions = []
    for n in range(1, record.output_version):
        names = version_files(storage, job_id, n)
        if names:
            versions.append(
                Version(
                    version=n, current=False, outputs=names, output_urls=_version_urls(prefix, job_id, n, names, False)
                )
            )
    current = list(record.outputs)
    versions.append(Version(version=record.output_version, current=True, outputs=current,
                            output_urls=_version_urls(prefix, job_id, record.output_version, current, True)))  # fmt: skip
    data = Versions(job_id=job_id, current_version=record.output_version, pending=record.redub, versions=versions)
    return Envelope(message=f"{len(versions)} version(s)", data=data)


@router.get("/jobs/{job_id}/versions/{version}/outputs/{name}", response_class=FileResponse)
def download_version_output(
    job_id: str, version: int, name: str, request: Request, jobs: JobServiceDep, storage: StorageDep
) -> FileResponse:
    """A file of an earlier version (Range requests give 206)."""
    request.state.job_id = job_id
    jobs.get(job_id)
    if name not in version_files(storage, job_id, version):
        raise OutputNotFound(f"no output named {name!r} in version {version} of job {job_id}")
    path = versions_dir(storage, job_id) / f"v{version}" / name
    return FileResponse(path, filename=name, content_disposition_type="attachment")


def _original_audio(storage: Storage, record: JobRecord) -> Path:
    """The original audio track of the dubbed mp4 (its second track), copied into an .m4a once. Browsers
    rarely let a page pick an mp4's audio track, so the player plays this in sync, with the video muted."""
    target = storage.job_dir(record.id) / ORIGINAL_AUDIO
    if target.is_file():
        return target
    mp4s = [n for n in record.outputs if n.endswith(".mp4")]
    if not mp4s:
        raise OutputNotFound(f"job {record.id} has no video to take the original audio from")
    src = storage.output_path(record.id, mp4s[0])
    track = 1 if record.request.mode == "dub" else 0  # a dub's mp4: dubbed track first, original second
    with atomic_path(target, suffix=".m4a") as tmp:
        media.run_ffmpeg(["-i", str(src), "-map", f"0:a:{track}", "-vn", "-sn", "-c:a", "copy",
                          "-movflags", "+faststart", "-f", "mp4", str(tmp)], what="original audio extraction")  # fmt: skip
    return target


@router.get("/jobs/{job_id}/original-audio", response_class=FileResponse)
async def original_audio(job_id: str, request: Request, jobs: JobServiceDep, storage: StorageDep) -> FileResponse:
    """The original audio (AAC in .m4a) of a finished dub, for the page's dubbed/original switch."""
    request.state.job_id = job_id
    record = await asyncio.to_thread(jobs.get, job_id)  # the store, off the event loop
    path = await asyncio.to_thread(_original_audio, storage, record)
    return FileResponse(path, media_type="audio/mp4", content_disposition_type="inline", filename="original.m4a")
