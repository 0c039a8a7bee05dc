"""The job service: what every adapter (HTTP routes, RabbitMQ bridge) calls to submit, read and cancel jobs."""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from configs.settings import DiarizeSettings
from pipelines.errors import InputNotFound
from pipelines.jobinputs import check_job_inputs
from pipelines.jobvoices import check_job_voices
from pipelines.languages import normalize_language, normalize_targets
from pipelines.schema import JobRequest, safe_stem
from pipelines.subsource import subtitle_kind
from pipelines.urlguard import check_url, is_url
from serve_app.errors import BadRequest, JobNotCancellable, JobNotFound, QueueFull
from serve_app.jobs.models import JobRecord, JobState, job_logger, utcnow
from serve_app.jobs.storage import ANY_OWNER, Storage
from serve_app.jobs.store import JobStore

if TYPE_CHECKING:
    from serve_app.jobs.redub import RedubPlan

logger = logging.getLogger(__name__)


class JobIntake(Protocol):
    """Where ``JobService.enqueue`` sends jobs in queue mode (``serve_app.bridge.JobPublisher``)."""

    async def publish_job(
        self, request: JobRequest, *, file_id: str | None, owner: str | None, idempotency_key: str | None
    ) -> JobRecord:
        """Publish the job (broker confirm) and record it (queued); returns the record. Raises what
        ``JobService.submit`` raises, and QueueUnavailable (nothing recorded) when the broker is unreachable."""
        ...

    async def publish_redub(self, plan: RedubPlan) -> None:
        """Publish a planned re-dub (broker confirm). Raises QueueUnavailable when the broker is unreachable."""
        ...

    async def close(self) -> None:
        """Close the broker connection."""
        ...


class JobService:
    """Submits, reads and cancels jobs over a ``JobStore`` and a ``Storage``; the ``JobWorker`` runs them."""

    def __init__(
        self,
        store: JobStore,
        storage: Storage,
        *,
        max_queued_jobs: int,
        retry_after_s: int = 10,
        publisher: JobIntake | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.max_queued_jobs = max_queued_jobs
        self.retry_after_s = retry_after_s
        # Queue mode (queue.mode = "rabbitmq"): enqueue publishes through it; None: enqueue only records.
        self.publisher = publisher
        # fetch.allow_hosts: the private hosts a URL input may name (build_job_service sets it).
        self.url_allow_hosts: list[str] = []
        # storage.models_dir: where a job's voices must be installed and the separation model is looked for;
        # mix.background: a dub over the separated background is refused at submission when that model is not
        # pulled (build_job_service sets them; None: the runner checks, before any work, when the job starts).
        self.default_background: str = "duck"
        self.models_dir: Path | None = None
        # diarize and tts.speaker_voices: what a job's speaker options are checked against (pipelines.jobinputs).
        self.diarize = DiarizeSettings()
        self.configured_speaker_voices: dict[str, str] = {}

    def check_url(self, url: str) -> None:
        """Refuse (URLRefused) a URL input the fetch stage would refuse: not http(s), or a non-public address."""
        check_url(url, self.url_allow_hosts)

    def subtitle_path(self, file_id: str, owner: str | None | object) -> str:
        """The path of ``owner``'s uploaded subtitle file (``source_subtitles_file_id``). Raises FileNotFound,
        BadRequest when the upload is media, not subtitles."""
        info = self.storage.get_file(file_id, owner=owner)
        if subtitle_kind(info.path) is None:
            raise BadRequest(f"file {file_id} is not a subtitle file (.srt, .vtt, .ass)")
        return str(info.path)

    async def enqueue(
        self,
        request: JobRequest,
        *,
        file_id: str | None = None,
        owner: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobRecord:
        """What the HTTP routes call. Local mode: ``submit`` (a JobWorker sharing the store claims it). Queue
        mode: the publisher publishes the job, then records it; raises QueueUnavailable (503, nothing
        recorded) when the broker is down, else what ``submit`` raises."""
        if self.publisher is None:
            return await asyncio.to_thread(
                self.submit, request, file_id=file_id, owner=owner, idempotency_key=idempotency_key
            )
        return await self.publisher.publish_job(request, file_id=file_id, owner=owner, idempotency_key=idempotency_key)

    def validate(self, request: JobRequest, file_id: str | None, owner: str | None = None) -> JobRequest:
        """The request as ``submit`` would record it (languages normalised, the upload's path as input), after
        the queue-room check. Raises what ``submit`` raises; records nothing."""
        resolved = self._resolve(request, file_id, owner)
        self.check_queue_room()
        return resolved

    def submit(
        self,
        request: JobRequest,
        *,
        file_id: str | None = None,
        owner: str | None = None,
        idempotency_key: str | None = None,
        check_room: bool = True,
        check_file_owner: bool = True,
    ) -> JobRecord:
        """Queue a job. With ``file_id`` the upload's path replaces ``request.input``; without it
        ``request.input`` must be an existing local file (trusted callers only).

        Raises UnknownLanguage, InvalidVoice, InvalidSpeakers, SeparationUnavailable, FileNotFound, InputNotFound,
        QueueFull (past ``max_queued_jobs`` queued jobs).
        A repeated ``idempotency_key`` returns the existing job; keys are per owner, so another owner's same key
        is simply another job (it can neither find nor block this one). ``check_room=False``: skip the cap (the
        job's message is already published, so it runs whatever this answers). The upload named by ``file_id`` must be ``owner``'s (else FileNotFound), unless
        ``check_file_owner=False`` (a keyless bridge: a trusted adapter with no tenants).
        """
        if idempotency_key is not None:
            existing = self.store.get_by_idempotency_key(idempotency_key, owner=owner)
            if existing is not None:
                return existing
        request = self._resolve(request, file_id, owner if check_file_owner else ANY_OWNER)
        candidate = JobRecord(request=request, file_id=file_id, owner=owner, idempotency_key=idempotency_key)
        try:  # the store counts and inserts in one step: concurrent submits cannot pass the cap together
            record = self.store.create(candidate, max_queued=self.max_queued_jobs if check_room else None)
        except QueueFull as exc:
            raise QueueFull(exc.message, retry_after_s=self.retry_after_s) from None
        if record.id != candidate.id:  # lost a race on the same (owner, idempotency key)
            return record
        job_logger(logger, record.id).info(
            "queued: %s -> %s (%s)", Path(request.input).name, ",".join(request.target_languages), request.mode
        )
        return record

    def has_queue_room(self) -> bool:
        """True while fewer than ``max_queued_jobs`` jobs are queued (the cap every intake checks)."""
        return self.store.count({JobState.QUEUED}) < self.max_queued_jobs

    def check_queue_room(self) -> None:
        """Raise QueueFull (with ``retry_after_s``) when ``max_queued_jobs`` jobs are already queued."""
        if not self.has_queue_room():
            raise QueueFull(
                f"too many queued jobs ({self.max_queued_jobs}); try again later", retry_after_s=self.retry_after_s
            )

    def _resolve(self, request: JobRequest, file_id: str | None, file_owner: str | None | object) -> JobRequest:
        targets = normalize_targets(request.target_languages)
        source = normalize_language(request.source_language) if request.source_language else None
        voices = request.voices
        if voices and self.models_dir is not None:  # a network request: catalog voices only, never a file path
            voices = check_job_voices(voices, self.models_dir, allow_paths=False)
        stem = request.output_stem
        if file_id is not None:
            info = self.storage.get_file(file_id, owner=file_owner)  # another owner's upload: FileNotFound
            path = str(info.path)
            stem = stem or safe_stem(info.filename or "")
        elif is_url(request.input):
            path = request.input
            self.check_url(path)
        else:
            path = request.input
            if not Path(path).is_file():
                raise InputNotFound(f"input file not found: {Path(path).name}")
        if request.source_subtitles is not None and not Path(request.source_subtitles).is_file():
            raise InputNotFound(f"subtitle file not found: {Path(request.source_subtitles).name}")
        # Speaker counts, per-speaker voices (catalog voices only) and the separation model: 422 before the job
        # is recorded, by the rules every entrypoint shares.
        request = check_job_inputs(
            request, diarize=self.diarize, configured_voices=self.configured_speaker_voices,
            background=self.default_background, models_dir=self.models_dir, allow_paths=False,
        )  # fmt: skip
        update = {
            "input": path, "target_languages": targets, "source_language": source, "output_stem": stem or None,
            "voices": voices,
        }  # fmt: skip
        return request.model_copy(update=update)

    def get(self, job_id: str) -> JobRecord:
        """The job; raises JobNotFound."""
        record = self.store.get(job_id)
        if record is None:
            raise JobNotFound(f"no job with id {job_id}")
        return record

    def list(self, *, owner: str | None = None, limit: int = 100, offset: int = 0) -> builtins.list[JobRecord]:
        """Jobs newest first (``limit`` capped at 1000)."""
        return self.store.list(owner=owner, limit=min(max(limit, 0), 1000), offset=max(offset, 0))

    def cancel(self, job_id: str) -> JobRecord:
        """Queued → cancelled at once; running → ``cancel_requested`` (the worker stops at the next stage
        boundary); terminal → JobNotCancellable. Raises JobNotFound."""
        log = job_logger(logger, job_id)
        for _ in range(3):  # a state change between the read and the compare-and-set retries
            record = self.get(job_id)
            if record.terminal:
                raise JobNotCancellable(f"job {job_id} is already {record.state.value}")
            if record.state is JobState.QUEUED:
                done = self.store.transition(
                    job_id, {JobState.QUEUED}, state=JobState.CANCELLED, finished_at=utcnow(), eta_s=None
                )
            else:
                done = self.store.transition(job_id, {JobState.RUNNING}, cancel_requested=True)
            if done is not None:
                log.info("cancel: %s", "cancelled" if done.state is JobState.CANCELLED else "requested")
                return done
        raise JobNotCancellable(f"job {job_id} changed state while cancelling; try again")

    async def events(self, job_id: str, poll_s: float = 0.5) -> AsyncIterator[JobRecord]:
        """Yield the record now and whenever its state, stage or progress changes; end after a terminal
        state. Polls the store, so it follows jobs run by other processes. Raises JobNotFound."""
        last: tuple[Any, ...] | None = None
        while True:
            record = await asyncio.to_thread(self.store.get, job_id)
            if record is None:
                raise JobNotFound(f"no job with id {job_id}")
            key = (record.state, record.stage, record.progress, record.cancel_requested)
            if key != last:
                last = key
                yield record
            if record.terminal:
                return
            await asyncio.sleep(poll_s)
