"""The consumer inside the job runner (``queue.enabled``), against the REAL RabbitMQ: the JobRunner class as Serve
builds it (fake pipeline), a broker that is late (a TCP proxy this test starts later), a translate_text round
trip, a clean stop; and queue.mode = "rabbitmq" without queue.enabled runs no worker in the app."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from configs.settings import Settings
from serve_app.deployments import JobRunner
from tests.serve_app.bridge.conftest import AMQP_URL, TcpProxy, delete_names, queue_names
from tests.serve_app.conftest import free_port, make_settings

pytestmark = pytest.mark.rabbitmq


class FakeTranslator:
    def translate(self, sentences: Any, *, source_language: str, target_language: str, **_: Any) -> list[Any]:
        from pipelines.schema import Translation

        return [Translation(id=s.id, source=s.text, text=s.text.upper()) for s in sentences]


class FakePipeline:
    translator = FakeTranslator()


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    settings = make_settings(tmp_path / "var")
    settings.queue = queue_names(enabled=True)
    yield settings
    delete_names(settings.queue, settings.queue.request_queue + ".replies")


def rpc_round_trip(settings: Settings, texts: list[str], timeout_s: float = 60) -> tuple[dict[str, Any], int]:
    """Publish translate_text with reply_to; the reply, and the request queue's consumer count."""

    async def go() -> tuple[dict[str, Any], int]:
        connection = await aio_pika.connect(AMQP_URL)
        channel = await connection.channel(publisher_confirms=True)
        replies = await channel.declare_queue(settings.queue.request_queue + ".replies", durable=True)
        body = {"jsonrpc": "2.0", "method": "translate_text", "id": 7,
                "params": {"texts": texts, "target_language": "es"}}  # fmt: skip
        message = aio_pika.Message(json.dumps(body).encode(), reply_to=replies.name, correlation_id="c7")
        await channel.default_exchange.publish(message, routing_key=settings.queue.request_queue)
        deadline = time.monotonic() + timeout_s
        while (got := await replies.get(no_ack=True, fail=False)) is None:
            assert time.monotonic() < deadline, "no reply"
            await asyncio.sleep(0.1)
        assert got.correlation_id == "c7"
        queue = await channel.declare_queue(settings.queue.request_queue, passive=True)
        consumers = queue.declaration_result.consumer_count
        await connection.close()
        return json.loads(got.body), consumers

    return asyncio.run(go())


def consumer_count(settings: Settings) -> int:
    async def go() -> int:
        connection = await aio_pika.connect(AMQP_URL)
        channel = await connection.channel()
        queue = await channel.declare_queue(settings.queue.request_queue, passive=True)
        await connection.close()
        return int(queue.declaration_result.consumer_count or 0)

    return asyncio.run(go())


def test_job_runner_consumes_when_queue_enabled(settings: Settings) -> None:
    proxy = TcpProxy(free_port())
    settings.queue.amqp_url = proxy.url
    runner = JobRunner(settings, pipeline_factory=FakePipeline, poll_s=0.05)
    try:
        assert runner.worker is not None and runner.consumer is not None
        time.sleep(1.5)
        assert not runner.ready()  # the broker is not there yet: the replica started anyway, and retries
        proxy.start()
        assert runner.consumer.wait_connected(30)
        assert runner.ready()
        reply, consumers = rpc_round_trip(settings, ["hola", "mundo"])
        assert reply["id"] == 7 and reply["result"]["translations"] == ["HOLA", "MUNDO"], reply
        assert consumers == 1
        runner.shutdown()
        assert not runner.consumer.thread.is_alive()
        assert consumer_count(settings) == 0  # a clean stop: its consumer is gone from the broker
    finally:
        runner.shutdown()
        proxy.shutdown()
        runner.store.close()


def test_queue_mode_without_enabled_runs_no_worker(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var", queue={"mode": "rabbitmq"})
    runner = JobRunner(settings, pipeline_factory=FakePipeline, poll_s=0.05)
    try:
        assert runner.worker is None and runner.consumer is None and runner.ready()
    finally:
        runner.shutdown()
        runner.store.close()
