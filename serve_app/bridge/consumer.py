"""The RabbitMQ consumer: durable request queue in, JSON-RPC replies and job events out (aio-pika).

Delivery semantics:
- manual ack, only after ``RpcHandler`` returned, i.e. after a ``translate_video`` job is committed to the
  job store (its idempotency key comes from the AMQP ``message_id``, so a redelivery finds the same job);
- every publish (replies, events, dead letters) waits for the broker's confirm;
- replies are at-least-once; a message redelivered to the instance that already replied is only acked
  (a small memory of replied keys), which makes a broker restart reply exactly once;
- poison (parse error, invalid request, unknown method or params, internal error): an error reply when
  ``reply_to`` is set, a copy to the DLQ with ``x-vt-reason``, then ack; never requeued;
- a full job queue (``QueueFull``): the message is requeued and the consumer cancelled (basic.cancel)
  until the store has room again;
- ``connect_robust`` restores the channel, the declarations and the consumer after a broker restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from serve_app.bridge.methods import job_view
from serve_app.bridge.rpc import HandledMessage, RpcHandler, Watch, message_key, response_body

if TYPE_CHECKING:
    from aio_pika.abc import AbstractExchange, AbstractQueue, AbstractRobustChannel, AbstractRobustConnection

    from configs.settings import QueueSettings
    from serve_app.jobs.service import JobService

logger = logging.getLogger(__name__)

REASON_HEADER = "x-vt-reason"
OWNER_HEADER = "x-vt-owner"
# Test hook: seconds to sleep between recording a message's work and acking it (crash-window tests only).
PAUSE_BEFORE_ACK_ENV = "VT_BRIDGE_TEST_PAUSE_BEFORE_ACK_S"
_REPLIED_MEMORY = 10_000
_PUBLISH_TRIES = 5


class Bridge:
    """One consumer instance. ``await start()``, then ``await stop()`` (or ``await wait_stopped()``).

    Usable inside any asyncio app (the Serve ingress) or through ``main.run_bridge``. ``stats`` counts
    ``processed``, ``poison``, ``requeued`` and ``duplicates`` messages.
    """

    def __init__(
        self,
        queue: QueueSettings,
        handler: RpcHandler,
        service: JobService,
        *,
        amqp_url: str | None = None,
        name: str | None = None,
    ) -> None:
        self.settings = queue
        self.handler = handler
        self.service = service
        self.amqp_url = amqp_url or queue.amqp_url
        self.name = name or f"videotranslator-bridge@{socket.gethostname()}:{os.getpid()}"
        self.stats = {"processed": 0, "poison": 0, "requeued": 0, "duplicates": 0}
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractRobustChannel | None = None
        self.queue: AbstractQueue | None = None
        self.events: AbstractExchange | None = None
        self._consumer_tag: str | None = None
        self._paused = False
        self._stopping = False
        self._stopped = asyncio.Event()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._watchers: set[asyncio.Task[Any]] = set()
        self._resume_task: asyncio.Task[None] | None = None
        self._replied: OrderedDict[str, None] = OrderedDict()
        self._pause_before_ack_s = float(os.environ.get(PAUSE_BEFORE_ACK_ENV, "0") or 0)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect (robustly), declare the queues and the events exchange, and start consuming."""
        s = self.settings
        self.connection = await aio_pika.connect_robust(
            self.amqp_url, reconnect_interval=s.reconnect_interval_s, client_properties={"connection_name": self.name}
        )
        self.channel = await self.connection.channel(publisher_confirms=True)
        assert self.channel is not None
        await self.channel.set_qos(prefetch_count=s.prefetch_count)
        self.events = await self.channel.declare_exchange(s.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        await self.channel.declare_queue(s.dead_letter_queue, durable=True)
        self.queue = await self.channel.declare_queue(
            s.request_queue,
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": s.dead_letter_queue},
        )
        await self._consume()
        logger.info("bridge %s consuming %s (prefetch %d)", self.name, s.request_queue, s.prefetch_count)

    async def stop(self, timeout: float | None = None) -> None:
        """Stop consuming, let in-flight messages finish (and be acked), stop following jobs, close."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        timeout = self.settings.shutdown_timeout_s if timeout is None else timeout
        if self._resume_task is not None:
            self._resume_task.cancel()
        try:
            await self._cancel_consumer()
        except Exception:
            logger.warning("bridge: could not cancel the consumer cleanly", exc_info=True)
        if self._inflight:
            _done, pending = await asyncio.wait(set(self._inflight), timeout=timeout)
            if pending:
                logger.warning(
                    "bridge: %d message(s) still in flight at shutdown; the broker requeues them", len(pending)
                )
        for task in list(self._watchers):
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        if self.connection is not None:
            await self.connection.close()
        logger.info("bridge %s stopped: %s", self.name, self.stats)
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    @property
    def paused(self) -> bool:
        return self._paused

    async def _consume(self) -> None:
        assert self.queue is not None
        self._consumer_tag = await self.queue.consume(self._on_message, no_ack=False)

    async def _cancel_consumer(self) -> None:
        tag, self._consumer_tag = self._consumer_tag, None
        if tag is not None and self.queue is not None:
            await self.queue.cancel(tag)

    # ------------------------------------------------------------------ messages

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self._process(message)
        except Exception:
            # Typically the broker went away mid-message: the delivery is void, and the broker redelivers it
            # after the robust connection is back. Any other failure: requeue once the channel allows it.
            logger.warning("bridge: message %s not finished; it will be redelivered", message.message_id, exc_info=True)
            await _quietly(message.nack(requeue=True))
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        if self._paused or self._stopping:
            await message.nack(requeue=True)
            return
        key = message_key(message.message_id, message.body)
        if message.redelivered and key in self._replied:
            self.stats["duplicates"] += 1
            await message.ack()
            return
        owner = (message.headers or {}).get(OWNER_HEADER)
        outcome = await self.handler.handle(message.body, key=key, owner=owner if isinstance(owner, str) else None)
        if outcome.queue_full is not None:
            self.stats["requeued"] += 1
            await message.nack(requeue=True)
            await self._pause()
            return
        if self._pause_before_ack_s:
            await asyncio.sleep(self._pause_before_ack_s)
        if outcome.poison is not None:
            await self._dead_letter(message, outcome)
        body = outcome.reply_body()
        if message.reply_to and body is not None:
            await self._publish_reply(message, body)
        self._remember(key)
        await message.ack()
        self.stats["processed"] += 1
        for watch in outcome.watches:
            self._follow(watch, message.reply_to, message.correlation_id)

    def _remember(self, key: str) -> None:
        self._replied[key] = None
        self._replied.move_to_end(key)
        while len(self._replied) > _REPLIED_MEMORY:
            self._replied.popitem(last=False)

    async def _publish_reply(self, message: AbstractIncomingMessage, body: bytes) -> None:
        assert self.channel is not None and message.reply_to is not None
        reply = aio_pika.Message(
            body,
            content_type="application/json",
            correlation_id=message.correlation_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self.channel.default_exchange.publish(reply, routing_key=message.reply_to)

    async def _dead_letter(self, message: AbstractIncomingMessage, outcome: HandledMessage) -> None:
        assert self.channel is not None
        self.stats["poison"] += 1
        logger.warning("bridge: poison message %s: %s", message.message_id, outcome.poison)
        headers = dict(message.headers or {})
        headers.update(
            {
                REASON_HEADER: outcome.poison,
                "x-vt-error-code": outcome.poison_code,
                "x-vt-queue": self.settings.request_queue,
            }
        )
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            reply_to=message.reply_to,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self.channel.default_exchange.publish(copy, routing_key=self.settings.dead_letter_queue)

    # ------------------------------------------------------------------ backpressure

    async def _pause(self) -> None:
        if self._paused or self._stopping:
            return
        self._paused = True
        logger.info("bridge: the job queue is full; consuming paused")
        await self._cancel_consumer()
        self._resume_task = asyncio.create_task(self._resume_when_room())

    async def _resume_when_room(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.backpressure_poll_s)
            try:
                if await asyncio.to_thread(self.service.has_queue_room):
                    self._paused = False
                    await self._consume()
                    logger.info("bridge: the job queue has room again; consuming resumed")
                    return
            except Exception:
                logger.warning("bridge: could not resume consuming yet", exc_info=True)

    # ------------------------------------------------------------------ following jobs

    def _follow(self, watch: Watch, reply_to: str | None, correlation_id: str | None) -> None:
        task = asyncio.create_task(self._watch(watch, reply_to, correlation_id))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, watch: Watch, reply_to: str | None, correlation_id: str | None) -> None:
        """Progress events to the events exchange (``job.<id>.<state>``) until the job ends; then, for ``wait``,
        the final result as a second reply. Best effort: ``get_job`` is the durable way to the result."""
        last = None
        try:
            async for record in self.service.events(watch.job_id, poll_s=self.settings.events_poll_s):
                last = record
                body = _json(job_view(record, self.service))
                await self._publish_retrying(self._publish_event, f"job.{record.id}.{record.state.value}", body)
            if watch.wait and reply_to and last is not None:
                final = {**job_view(last, self.service), "final": True}
                await self._publish_retrying(
                    self._publish_final, reply_to, response_body(final, watch.request_id), correlation_id
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("bridge: stopped following job %s", watch.job_id, exc_info=True)

    async def _publish_event(self, routing_key: str, body: bytes) -> None:
        assert self.events is not None
        event = aio_pika.Message(body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await self.events.publish(event, routing_key=routing_key)

    async def _publish_final(self, reply_to: str, body: bytes, correlation_id: str | None) -> None:
        assert self.channel is not None
        reply = aio_pika.Message(
            body,
            content_type="application/json",
            correlation_id=correlation_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self.channel.default_exchange.publish(reply, routing_key=reply_to)

    async def _publish_retrying(self, publish: Any, *args: Any) -> None:
        """``await publish(*args)``, tried up to _PUBLISH_TRIES times, backing off from 0.5 s (the robust
        connection may be reconnecting); the last error propagates."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(_PUBLISH_TRIES),
            wait=wait_exponential(multiplier=0.5, max=self.settings.reconnect_interval_s * 2),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await publish(*args)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception:  # the channel is gone: the broker requeues the delivery itself
        logger.debug("bridge: nack not sent", exc_info=True)
