"""``build_job_service(settings)``: the ONE place where the job store, the storage and ``JobService`` are wired.

Every entrypoint gets its job service here: the Serve ingress and job runner, ``Services.local`` and the
RabbitMQ bridge. Tests that need other limits build ``JobService`` themselves. With ``queue.mode =
"rabbitmq"`` the service gets its ``JobPublisher`` here too, so ``POST /jobs`` publishes (the one plug).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serve_app.jobs.resumable import UploadSessions
from serve_app.jobs.service import JobService
from serve_app.jobs.storage import LocalStorage, Storage
from serve_app.jobs.store import make_job_store

if TYPE_CHECKING:
    from configs.settings import Settings


def build_job_service(settings: Settings) -> JobService:
    """The job service over ``service.job_store_url`` and the local storage root (with its quota), with the
    queue limits of ``settings.service``, and a ``JobPublisher`` in queue mode. Raises ValueError for an unsupported store url; the store's own
    errors (an unreachable PostgreSQL) propagate."""
    store = make_job_store(settings.service.job_store_url)
    storage = LocalStorage(
        settings.storage.root, quota_bytes=settings.storage.quota_bytes, max_duration_s=settings.MAX_DURATION
    )
    service = JobService(
        store,
        storage,
        max_queued_jobs=settings.service.max_queued_jobs,
        retry_after_s=settings.service.retry_after_s,
    )
    service.url_allow_hosts = list(settings.fetch.allow_hosts)
    service.default_background, service.models_dir = settings.mix.background, settings.storage.models_dir
    service.diarize, service.configured_speaker_voices = settings.diarize, dict(settings.tts.speaker_voices)
    if settings.queue.mode == "rabbitmq":
        from serve_app.bridge.publisher import JobPublisher  # the bridge imports this module: import late

        service.publisher = JobPublisher(settings.queue, service)  # connects on the first job
    return service


def build_upload_sessions(settings: Settings, storage: Storage) -> UploadSessions:
    """The resumable upload sessions on ``storage`` (a LocalStorage: the sessions live in its uploads folder),
    with MAX_FILE_SIZE and the ``upload`` settings. They hold no state but the disk, so this is cheap."""
    if not isinstance(storage, LocalStorage):
        raise TypeError(f"resumable uploads need a LocalStorage, not {type(storage).__name__}")
    return UploadSessions(
        storage,
        max_file_size=settings.MAX_FILE_SIZE,
        chunk_max_bytes=settings.upload.chunk_max_bytes,
        ttl_s=settings.upload.session_ttl_s,
    )
