"""Queue mode for the HTTP API (``queue.mode = "rabbitmq"``), in process, against the REAL RabbitMQ and a real
PostgreSQL job store: POST /jobs publishes (confirmed) then records; a broker that is down (a TCP proxy this
test stops; the shared broker itself is never touched) is a 503 envelope with Retry-After and leaves nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from configs.settings import Settings
from serve_app.bridge import JobPublisher, build_bridge
from serve_app.jobs import JobState
from tests.serve_app.bridge.conftest import AMQP_URL, TcpProxy, delete_names, queue_names
from tests.serve_app.conftest import free_port, make_services, make_settings

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def settings(tmp_path: Path, pg_url: str) -> Iterator[Settings]:
    queue = queue_names(mode="rabbitmq", publish_timeout_s=3.0)
    settings = make_settings(tmp_path / "var", service={"job_store_url": pg_url})
    settings.queue = queue
    yield settings
    delete_names(queue)


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory: pytest.TempPathFactory, jfk_flac: Path) -> Path:
    from tests.conftest import make_video

    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", jfk_flac, 2.0, size="64x48")


def queued_messages(settings: Settings) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message now in the request queue (taken off it)."""

    async def drain() -> list[Any]:
        connection = await aio_pika.connect(AMQP_URL)
        channel = await connection.channel()
        queue = await channel.get_queue(settings.queue.request_queue, ensure=True)
        got = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            got.append(message)
        await connection.close()
        return got

    return asyncio.run(drain())


def upload_job(client: Any, video: Path, **fields: str) -> Any:
    with open(video, "rb") as fh:
        files = {"file": (video.name, fh, "video/mp4")}
        return client.post("/jobs/upload", files=files, data={"target_languages": "es", "mode": "subtitles", **fields})


def test_post_jobs_publishes_then_records(settings: Settings, fakes: dict[str, Any], tiny_video: Path) -> None:
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    services = make_services(settings, fakes)
    jobs = services.jobs
    assert isinstance(jobs.publisher, JobPublisher)  # the one wiring place plugged it in
    with TestClient(get_application(services=services), raise_server_exceptions=False) as client:
        with open(tiny_video, "rb") as fh:
            file_id = client.post("/files/upload", files={"file": ("talk.mp4", fh, "video/mp4")}).json()["data"]["file_id"]
        body = {"file_id": file_id, "target_languages": ["es"], "mode": "subtitles", "glossary": {"test": "prueba"}}
        first = client.post("/jobs", json=body, headers={"Idempotency-Key": "k1"})
        assert first.status_code == 202, first.text
        job = first.json()["data"]
        assert job["state"] == "queued"
        seen = client.get(f"/jobs/{job['job_id']}").json()["data"]
        assert seen["state"] == "queued" and seen["job_id"] == job["job_id"]
        again = client.post("/jobs", json=body, headers={"Idempotency-Key": "k1"})
        assert again.status_code == 202 and again.json()["data"]["job_id"] == job["job_id"]
        assert client.post("/jobs", json={**body, "target_languages": ["xx-nope"]}).status_code == 422
    [message] = queued_messages(settings)  # the retry and the bad request published nothing
    request = json.loads(message.body)
    assert request["method"] == "translate_video"
    assert request["params"]["input"] == file_id and request["params"]["glossary"] == {"test": "prueba"}
    record = jobs.get(job["job_id"])
    assert record.idempotency_key == f"amqp:{message.message_id}" and record.request.glossary == {"test": "prueba"}

    # The bridge's intake finds the job by the message id: one job, nothing dead-lettered.
    async def consume() -> dict[str, int]:
        publisher = aio_pika.Message(message.body, message_id=message.message_id)
        connection = await aio_pika.connect(AMQP_URL)
        channel = await connection.channel()
        await channel.default_exchange.publish(publisher, routing_key=settings.queue.request_queue)
        await connection.close()
        bridge = build_bridge(settings, jobs, amqp_url=AMQP_URL, models=fakes_models())
        await bridge.start()
        for _ in range(200):
            if bridge.stats["processed"]:
                break
            await asyncio.sleep(0.05)
        await bridge.stop()
        return bridge.stats

    stats = asyncio.run(consume())
    assert stats["processed"] == 1 and stats["poison"] == 0
    assert [r.id for r in jobs.list()] == [job["job_id"]] and jobs.get(job["job_id"]).state is JobState.QUEUED
    jobs.store.close()


def fakes_models() -> Any:
    from tests.serve_app.bridge.test_consumer import FakeModels

    return FakeModels()


def test_broker_down_is_503_and_records_nothing(settings: Settings, fakes: dict[str, Any], tiny_video: Path) -> None:
    """Down before the first job (nothing listens), back, down while connected, back: each down POST is a 503
    envelope with Retry-After and leaves no job and no upload; each POST after it comes back works."""
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    proxy = TcpProxy(free_port())
    settings.queue.amqp_url = proxy.url
    services = make_services(settings, fakes)
    jobs = services.jobs
    uploads = Path(settings.storage.root) / "uploads"

    def refused(client: Any) -> None:
        before = sorted(uploads.glob("*/meta.json"))
        r = upload_job(client, tiny_video)
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "7"
        body = r.json()
        assert body["status"] == "error" and body["error"]["code"] == "queue_unavailable", body
        assert sorted(uploads.glob("*/meta.json")) == before  # the upload was discarded too

    try:
        with TestClient(get_application(services=services), raise_server_exceptions=False) as client:
            refused(client)
            assert jobs.list() == []
            proxy.start()
            ok = upload_job(client, tiny_video)
            assert ok.status_code == 202 and ok.json()["data"]["state"] == "queued", ok.text
            proxy.stop()
            refused(client)
            proxy.start()
            again = upload_job(client, tiny_video)
            assert again.status_code == 202, again.text
        ids = {ok.json()["data"]["job_id"], again.json()["data"]["job_id"]}
        assert {r.id for r in jobs.list()} == ids and all(r.state is JobState.QUEUED for r in jobs.list())
        messages = queued_messages(settings)
        assert sorted(f"amqp:{m.message_id}" for m in messages) == sorted(jobs.get(i).idempotency_key for i in ids)
    finally:
        proxy.shutdown()
        jobs.store.close()
