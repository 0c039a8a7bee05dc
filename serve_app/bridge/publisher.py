"""``JobPublisher``: how the HTTP API submits a job in ``queue.mode = "rabbitmq"`` (``JobService.enqueue``).

``publish_job`` checks the request (languages, the upload, the queue cap: the same 4xx/429 as local mode),
PUBLISHES a ``translate_video`` request (``input`` = the file id, ``message_id`` = the job's idempotency key)
and waits for the broker's confirm, THEN records the job as ``queued`` under the key the bridge derives from
that ``message_id``, and answers.

Strategy for a broker that is down (publish first, record second): the publish fails, QueueUnavailable (503 +
Retry-After) is raised, and nothing was recorded, so no job is left that no message will ever run. Once the
confirm has come, the job cannot be lost: if this process dies before recording it, the bridge's intake
records it from the message (same key, so never twice); if the bridge gets there first, ``submit`` finds its
record by the key and returns that. Bridge instances' JobWorkers claim the recorded job from the shared store
(leases: exactly one runs it).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aio_pika

from pipelines.schema import JobRequest
from pipelines.urlguard import is_url
from serve_app.bridge.consumer import OWNER_HEADER
from serve_app.bridge.rpc import message_key, request_body
from serve_app.errors import BadRequest, QueueUnavailable

if TYPE_CHECKING:
    from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

    from configs.settings import QueueSettings
    from serve_app.jobs.models import JobRecord
    from serve_app.jobs.redub import RedubPlan
    from serve_app.jobs.service import JobService

logger = logging.getLogger(__name__)


class JobPublisher:
    """Publishes jobs to the request queue. ``await start()`` once, ``await close()`` at shutdown."""

    def __init__(self, queue: QueueSettings, service: JobService, *, amqp_url: str | None = None) -> None:
        self.settings = queue
        self.service = service
        self.amqp_url = amqp_url or queue.amqp_url
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractRobustChannel | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect (robustly) and declare the request queue and DLQ exactly as the bridge does."""
        async with self._lock:
            if self.connection is not None:
                return
            s = self.settings
            self.connection = await aio_pika.connect_robust(
                self.amqp_url,
                reconnect_interval=s.reconnect_interval_s,
                client_properties={"connection_name": "videotranslator-api-publisher"},
            )
            self.channel = await self.connection.channel(publisher_confirms=True)
            assert self.channel is not None
            await self.channel.declare_queue(s.dead_letter_queue, durable=True)
            await self.channel.declare_queue(
                s.request_queue,
                durable=True,
                arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": s.dead_letter_queue},
            )

    async def close(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None:
            await connection.close()

    async def publish_job(
        self,
        request: JobRequest,
        *,
        file_id: str | None = None,
        owner: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobRecord:
        """Publish the job (confirmed), then record it (queued); returns the record.

        With the client's ``idempotency_key`` the message_id is derived from (owner, key), so a retried
        ``POST /jobs`` returns the same job (and publishes nothing). Raises BadRequest without ``file_id``
        (bridges take file ids only), what ``JobService.submit`` raises (QueueFull, UnknownLanguage,
        FileNotFound) before anything is published, and QueueUnavailable when the broker cannot be reached or
        does not confirm within ``queue.publish_timeout_s`` (then nothing is recorded).
        """
        url = request.input if file_id is None and is_url(request.input) else None
        if file_id is None and url is None:
            raise BadRequest("queue mode takes uploaded files or URLs only: give a file_id or a url")
        if idempotency_key is None:
            message_id = uuid.uuid4().hex
        else:
            message_id = hashlib.sha256(f"{owner or ''}\0{idempotency_key}".encode()).hexdigest()[:32]
        key = message_key(message_id, b"")
        existing = await asyncio.to_thread(self.service.store.get_by_idempotency_key, key, owner=owner)
        if existing is not None:
            return existing
        resolved = await asyncio.to_thread(self.service.validate, request, file_id, owner)
        params: dict[str, Any] = {
            **({"url": url} if url is not None else {"input": file_id}),
            "target_languages": resolved.target_languages,
            "source_language": resolved.source_language,
            "mode": resolved.mode,
            "burn_in": resolved.burn_in,
            "glossary": dict(resolved.glossary),
        }
        if resolved.voices:  # checked by ``validate`` (InvalidVoice: 422, nothing published)
            params["voices"] = dict(resolved.voices)
        if resolved.background is not None:
            params["background"] = resolved.background
        for name in ("speakers", "min_speakers", "max_speakers"):
            if getattr(resolved, name) is not None:
                params[name] = getattr(resolved, name)
        if resolved.speaker_voices:
            params["speaker_voices"] = dict(resolved.speaker_voices)
        if resolved.source_subtitles is not None:  # an upload, stored as <file_id>.<ext>: the bridge takes its id
            params["source_subtitles"] = Path(resolved.source_subtitles).stem
        message = aio_pika.Message(
            request_body("translate_video", params, request_id=message_id),
            message_id=message_id,
            content_type="application/json",
            headers={OWNER_HEADER: owner} if owner else None,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._publish(message)
        return await asyncio.to_thread(
            self.service.submit, request, file_id=file_id, owner=owner, idempotency_key=key, check_room=False
        )

    async def publish_redub(self, plan: RedubPlan) -> None:
        """Publish a ``redub_job`` message for a planned re-dub and wait for the confirm. Raises
        QueueUnavailable (the caller then leaves the job untouched). The bridge's intake requeues the job for
        that plan unless the API already did (``serve_app.jobs.redub.accept_redub``: idempotent)."""
        message_id = f"redub-{plan.job_id}-v{plan.version}-{plan.spec_id}"
        params = {"job_id": plan.job_id, "version": plan.version, "spec": plan.spec_id}
        message = aio_pika.Message(
            request_body("redub_job", params, request_id=message_id),
            message_id=message_id,
            content_type="application/json",
            headers={OWNER_HEADER: plan.owner} if plan.owner else None,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._publish(message)

    async def _publish(self, message: aio_pika.Message) -> None:
        """Connect if needed, publish and wait for the confirm, all within ``publish_timeout_s``; on any failure
        drop the connection (the next call connects afresh) and raise QueueUnavailable."""
        try:
            async with asyncio.timeout(self.settings.publish_timeout_s):
                await self.start()
                assert self.channel is not None
                await self.channel.default_exchange.publish(
                    message, routing_key=self.settings.request_queue, mandatory=True
                )
        except (
            Exception
        ) as exc:  # unreachable, refused, closed channel, nack, returned, timed out: all mean "not queued"
            logger.warning("queue: job message not confirmed (%s: %s)", type(exc).__name__, exc)
            try:
                await asyncio.wait_for(self.close(), 2.0)
            except Exception:
                logger.debug("queue: closing the failed connection", exc_info=True)
            self.connection = self.channel = None
            retry = self.service.retry_after_s
            raise QueueUnavailable("the job queue is unavailable; try again later", retry_after_s=retry) from exc
