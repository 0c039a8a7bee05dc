"""``JobPublisher``: how the HTTP API submits a job in ``queue.mode = "rabbitmq"``.

``publish_job`` first records the job as ``queued`` in the shared job store (through ``JobService.submit``,
with the idempotency key the bridge derives from the message's ``message_id``), then publishes a
fire-and-forget ``translate_video`` request with that ``message_id`` and waits for the broker's confirm.

Why record first: ``GET /jobs/{id}`` works the moment ``POST /jobs`` returns; the API still answers 429
when the job queue is full; and a job is never lost between the two steps, because the store (which every
bridge instance's worker claims from) is the durable record. The bridge's intake is idempotent: it finds
the job by the key and only acks, then follows it (progress events on ``videotranslator.events``). External
systems that publish straight to ``videotranslator.rpc`` get the same job through the same intake.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

import aio_pika

from pipelines.schema import JobRequest
from serve_app.bridge.consumer import OWNER_HEADER
from serve_app.bridge.rpc import message_key, request_body

if TYPE_CHECKING:
    from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

    from configs.settings import QueueSettings
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
        if self.connection is not None:
            await self.connection.close()
        self.connection = self.channel = None

    async def publish_job(
        self,
        request: JobRequest,
        *,
        file_id: str | None = None,
        owner: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Record the job (queued) and publish it; returns the job id.

        With the client's ``idempotency_key`` the message_id is derived from (owner, key), so a retried
        ``POST /jobs`` finds the same job (and its re-publish is deduplicated by the bridge's intake).

        Raises what ``JobService.submit`` raises (QueueFull, UnknownLanguage, FileNotFound, InputNotFound).
        A publish that fails after the record was written is logged, not raised: the job is durable and any
        bridge instance's worker runs it; only its progress events are missing.
        """
        await self.start()
        if idempotency_key is None:
            message_id = uuid.uuid4().hex
        else:
            message_id = hashlib.sha256(f"{owner or ''}\0{idempotency_key}".encode()).hexdigest()[:32]
        key = message_key(message_id, b"")
        record = await asyncio.to_thread(
            self.service.submit, request, file_id=file_id, owner=owner, idempotency_key=key
        )
        params: dict[str, Any] = {
            "input": file_id or record.request.input,
            "target_languages": record.request.target_languages,
            "source_language": record.request.source_language,
            "mode": record.request.mode,
            "burn_in": record.request.burn_in,
        }
        message = aio_pika.Message(
            request_body("translate_video", params, request_id=record.id),
            message_id=message_id,
            content_type="application/json",
            headers={OWNER_HEADER: owner} if owner else None,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            assert self.channel is not None
            await self.channel.default_exchange.publish(message, routing_key=self.settings.request_queue)
        except Exception:
            logger.warning("job %s recorded but not published; a worker still runs it", record.id, exc_info=True)
        return record.id
