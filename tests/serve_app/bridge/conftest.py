"""Shared helpers for the queue-mode tests: a PostgreSQL schema of their own, queue names of their own, and a
TCP proxy in front of the real RabbitMQ that a test stops and starts (the broker itself is shared: never stopped).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from configs.settings import QueueSettings

AMQP_URL = os.environ.get("VT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_URL = os.environ.get("VT_TEST_POSTGRES_URL", "postgresql://vt_test:vt_test@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A job-store URL in a fresh schema (the store's table is always ``jobs``; the schema keeps runs apart)."""
    schema = f"vt_q_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL}: {exc}")
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def queue_names(**extra: Any) -> QueueSettings:
    sfx = uuid.uuid4().hex[:10]
    return QueueSettings(
        amqp_url=AMQP_URL,
        request_queue=f"vt-test.{sfx}.rpc",
        dead_letter_queue=f"vt-test.{sfx}.rpc.dlq",
        events_exchange=f"vt-test.{sfx}.events",
        reconnect_interval_s=1.0,
        events_poll_s=0.2,
        backpressure_poll_s=0.2,
        shutdown_timeout_s=10.0,
        **extra,
    )


def delete_names(queue: QueueSettings, *extra_queues: str) -> None:
    import aio_pika

    async def cleanup() -> None:
        connection = await aio_pika.connect(AMQP_URL)
        channel = await connection.channel()
        for name in (queue.request_queue, queue.dead_letter_queue, *extra_queues):
            await channel.queue_delete(name)
        await channel.exchange_delete(queue.events_exchange)
        await connection.close()

    asyncio.run(cleanup())


class TcpProxy:
    """127.0.0.1:``port`` → the broker, in a thread of its own. ``stop()`` closes the listener and every open
    connection (to the client: the broker went away); ``start()`` listens again on the same port."""

    def __init__(self, port: int, target: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.port, self.target = port, target
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    def start(self) -> None:
        async def listen() -> asyncio.AbstractServer:
            return await asyncio.start_server(self._client, "127.0.0.1", self.port, reuse_address=True)

        self.server = self._run(listen())

    def stop(self) -> None:
        async def close() -> None:
            if self.server is not None:
                self.server.close()
            for writer in list(self.writers):
                writer.transport.abort()
            self.writers.clear()
            if self.server is not None:
                await self.server.wait_closed()
            self.server = None

        self._run(close())

    def shutdown(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
