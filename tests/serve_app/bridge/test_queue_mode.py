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
    with TestClient(
        get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
    ) as client:
        with open(tiny_video, "rb") as fh:
            file_id = client.post("/files/upload", files={"file": ("talk.mp4", fh, "video/mp4")}).json()["data"][
                "file_id"
            ]
        body = {"file_id": file_id, "target_languages": ["es"], "mode": "subtitles", "glossary": {"test": "prueba"}}
        who = {"speakers": 2, "min_speakers": 1, "max_speakers": 3, "speaker_voices": {"S2": "espeak:en-us"}}
        body |= who  # issue 15: carried to the bridge
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
    assert request["params"]["speakers"] == 2 and request["params"]["speaker_voices"] == {"S2": "espeak:en-us"}
    assert (request["params"]["min_speakers"], request["params"]["max_speakers"]) == (1, 3)
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
        with TestClient(
            get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
        ) as client:
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


def _finished(client: Any, services: Any, settings: Settings, video: Path) -> tuple[str, int]:
    """A succeeded subtitles job (es) made through the queue-mode API and run by a JobWorker on the shared
    store (a bridge would do the same); its message drained. Returns the job id and a sentence id."""
    from pipelines.runner import Pipeline
    from serve_app.jobs import JobWorker
    from tests.serve_app.conftest import FakeASR, FakeTranslator, FakeTTS

    r = upload_job(client, video)
    assert r.status_code == 202, r.text
    job_id = r.json()["data"]["job_id"]
    queued_messages(settings)
    worker = JobWorker(
        services.jobs, lambda: Pipeline(settings, asr=FakeASR(), translator=FakeTranslator(), tts=FakeTTS())
    )
    assert worker.run_once()
    job = client.get(f"/jobs/{job_id}").json()["data"]
    assert job["state"] == "succeeded", job
    report = next(n for n in job["outputs"] if n.endswith(".report.json"))
    rows = client.get(job["output_urls"][report]).json()["targets"]["es"]["sentences"]
    return job_id, rows[0]["id"]


def test_a_redub_is_published_then_recorded(settings: Settings, fakes: dict[str, Any], tiny_video: Path) -> None:
    """PATCH /jobs/{id}/segments in queue mode publishes a ``redub_job`` message (confirmed) and requeues the
    job; the bridge's intake of that message is a no-op then, and requeues the job itself when the API died
    between the confirm and its own requeue."""
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application
    from serve_app.jobs.redub import plan_redub

    services = make_services(settings, fakes)
    jobs = services.jobs
    try:
        with TestClient(
            get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
        ) as client:
            job_id, sid = _finished(client, services, settings, tiny_video)
            edit = {"target_language": "es", "segments": [{"id": sid, "translation": "Corregido a mano."}]}
            r = client.patch(f"/jobs/{job_id}/segments", json=edit)
            assert r.status_code == 202, r.text
            assert r.json()["data"]["version"] == 2 and r.json()["data"]["job"]["state"] == "queued"
            [message] = queued_messages(settings)
            rpc = json.loads(message.body)
            record = jobs.get(job_id)
            assert rpc["method"] == "redub_job" and rpc["params"]["job_id"] == job_id
            assert rpc["params"]["version"] == 2 and record.redub and rpc["params"]["spec"] == record.redub["spec"]
            assert deliver(settings, jobs, [message]) == {"processed": 1, "poison": 0}
            assert jobs.get(job_id).version == record.version  # already recorded: the intake changed nothing

            # The API died after the confirm, before its requeue: the bridge's intake requeues the job.
            jobs.store.update(job_id, state=JobState.SUCCEEDED)  # back to finished at version 1
            assert jobs.get(job_id).redub is None and jobs.get(job_id).output_version == 1
            _, plan = plan_redub(jobs, job_id, "es", [(sid, "Otra corrección.")])
            assert plan is not None
            asyncio.run(_publish_only(settings, jobs, plan))
            [orphan] = queued_messages(settings)
            assert jobs.get(job_id).state is JobState.SUCCEEDED
            assert deliver(settings, jobs, [orphan]) == {"processed": 1, "poison": 0}
            after = jobs.get(job_id)
            assert after.state is JobState.QUEUED and after.redub == plan.redub
    finally:
        jobs.store.close()


async def _publish_only(settings: Settings, jobs: Any, plan: Any) -> None:
    publisher = JobPublisher(settings.queue, jobs, amqp_url=AMQP_URL)
    await publisher.publish_redub(plan)
    await publisher.close()


def deliver(settings: Settings, jobs: Any, messages: list[Any]) -> dict[str, int]:
    """Publish ``messages`` again and let a bridge (no JobWorker) take them; its processed/poison counts."""

    async def run() -> dict[str, int]:
        connection = await aio_pika.connect(AMQP_URL)
        channel = await connection.channel()
        for m in messages:
            out = aio_pika.Message(m.body, message_id=m.message_id, headers=m.headers)
            await channel.default_exchange.publish(out, routing_key=settings.queue.request_queue)
        await connection.close()
        bridge = build_bridge(settings, jobs, amqp_url=AMQP_URL, models=fakes_models())
        await bridge.start()
        for _ in range(200):
            if bridge.stats["processed"] + bridge.stats["poison"] >= len(messages):
                break
            await asyncio.sleep(0.05)
        await bridge.stop()
        return {"processed": bridge.stats["processed"], "poison": bridge.stats["poison"]}

    return asyncio.run(run())


def test_broker_down_redub_is_503_and_the_job_is_untouched(
    settings: Settings, fakes: dict[str, Any], tiny_video: Path
) -> None:
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    proxy = TcpProxy(free_port())
    settings.queue.amqp_url = proxy.url
    services = make_services(settings, fakes)
    jobs = services.jobs
    proxy.start()
    try:
        with TestClient(
            get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
        ) as client:
            job_id, sid = _finished(client, services, settings, tiny_video)
            before = jobs.get(job_id)
            proxy.stop()
            edit = {"target_language": "es", "segments": [{"id": sid, "translation": "Corregido a mano."}]}
            r = client.patch(f"/jobs/{job_id}/segments", json=edit)
            assert r.status_code == 503 and r.headers["Retry-After"] == "7", r.text
            assert r.json()["error"]["code"] == "queue_unavailable"
            now = jobs.get(job_id)
            assert (now.state, now.redub, now.output_version, now.version) == (
                JobState.SUCCEEDED,
                None,
                1,
                before.version,
            )
            assert client.get(f"/jobs/{job_id}/versions").json()["data"]["pending"] is None
            proxy.start()
            again = client.patch(f"/jobs/{job_id}/segments", json=edit)
            assert again.status_code == 202, again.text
            assert jobs.get(job_id).state is JobState.QUEUED
        assert [json.loads(m.body)["method"] for m in queued_messages(settings)] == ["redub_job"]
    finally:
        proxy.shutdown()
        jobs.store.close()


def test_a_url_job_is_published_with_its_url_and_subtitles(
    settings: Settings, fakes: dict[str, Any], media_server: Any, tmp_path: Path
) -> None:
    """Issue 18: queue mode publishes a URL job as translate_video ``url`` (and an uploaded subtitle file as
    ``source_subtitles``, by its file id); a refused URL is a 400 envelope and publishes nothing."""
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    settings.fetch.allow_hosts = ["127.0.0.1"]
    services = make_services(settings, fakes)
    srt = tmp_path / "talk.en.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nHi.\n", encoding="utf-8")
    with TestClient(get_application(services=services), base_url="http://localhost", raise_server_exceptions=False) as client:
        with open(srt, "rb") as fh:
            subs_id = client.post("/files/upload", files={"file": (srt.name, fh)}).json()["data"]["file_id"]
        url = media_server.url("/talk.mp4")
        body = {"url": url, "source_subtitles_file_id": subs_id, "target_languages": ["es"], "mode": "subtitles"}
        r = client.post("/jobs", json=body)
        assert r.status_code == 202, r.text
        refused = client.post("/jobs", json={**body, "url": "http://169.254.169.254/latest"})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "url_refused"
    [message] = queued_messages(settings)
    params = json.loads(message.body)["params"]
    assert params["url"] == url and "input" not in params and params["source_subtitles"] == subs_id
    services.jobs.store.close()
