"""The bridge against the REAL RabbitMQ on 127.0.0.1:5672 (``VT_TEST_AMQP_URL`` overrides).

Every test uses its own queue and exchange names (a random suffix through ``QueueSettings``), so parallel
runs never collide, and deletes them afterwards. The job store is a real SQLite file in tmp. The one
round trip runs the real Pipeline on a 5 s video; elsewhere the models are fakes honouring ``BridgeModels``,
injected above the seam under test (the broker, the consumer and the job store are all real).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.exceptions import AMQPError

from configs.settings import QueueSettings, Settings
from pipelines.schema import Segment, Transcript
from serve_app.bridge import Bridge, RpcHandler, build_bridge, build_job_service
from serve_app.jobs import JobService, JobState, JobWorker
from tests.conftest import make_video
from tests.serve_app.bridge.conftest import delete_names, queue_names

pytestmark = pytest.mark.rabbitmq

AMQP_URL = os.environ.get("VT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REPO = Path(__file__).resolve().parents[3]


class FakeModels:
    """Honours ``BridgeModels``: 'translates' by upper-casing, after ``delay_s`` (to keep messages in flight)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def transcribe(self, media_path: Path, language: str | None) -> Transcript:
        return Transcript(language or "en", 1.0, 1.0, (Segment(0.0, 1.0, "fake"),))

    def translate_texts(self, texts: list[str], source_language: str, target_language: str) -> list[str]:
        time.sleep(self.delay_s)
        return [t.upper() for t in texts]


def _broker_up() -> bool:
    async def ping() -> None:
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
        await connection.close()

    try:
        asyncio.run(ping())
    except (OSError, AMQPError, TimeoutError):
        return False
    return True


@pytest.fixture(scope="module", autouse=True)
def _needs_broker() -> None:
    if not _broker_up():
        pytest.fail(f"RabbitMQ is not reachable at {AMQP_URL} (start it: rabbitmq-server -detached)")


@pytest.fixture
def names() -> Iterator[QueueSettings]:
    queue = queue_names(prefetch_count=4)
    yield queue
    stem = queue.request_queue.removesuffix(".rpc")
    delete_names(queue, f"{stem}.replies", f"{stem}.ev")


@pytest.fixture
def settings(tmp_path: Path, names: QueueSettings) -> Settings:
    settings = Settings()
    settings.storage.root = tmp_path / "shared"
    settings.storage.root.mkdir()
    settings.service.job_store_url = f"sqlite:///{tmp_path / 'jobs.db'}"
    settings.queue = names
    return settings


@pytest.fixture
def media(settings: Settings) -> Path:
    """A stand-in input under the storage root (intake only checks that it exists)."""
    path = settings.storage.root / "inputs" / "clip.mp4"
    path.parent.mkdir()
    path.write_bytes(b"stand-in")
    return path


class Client:
    """A publisher with a durable reply queue (replies survive a broker restart), read by polling."""

    def __init__(self, queue: QueueSettings) -> None:
        self.settings = queue
        self.reply_queue = queue.request_queue.removesuffix(".rpc") + ".replies"

    async def open(self) -> Client:
        self.connection = await aio_pika.connect_robust(AMQP_URL, reconnect_interval=1.0)
        self.channel = await self.connection.channel(publisher_confirms=True)
        await self.channel.declare_queue(self.reply_queue, durable=True)
        # Declared as the bridge declares it, so a message published before a bridge starts is kept.
        q = self.settings
        await self.channel.declare_queue(q.dead_letter_queue, durable=True)
        dlx = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q.dead_letter_queue}
        await self.channel.declare_queue(q.request_queue, durable=True, arguments=dlx)
        return self

    async def publish(
        self, body: Any, *, message_id: str | None = None, reply: bool = True, correlation_id: str | None = None
    ) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        message = aio_pika.Message(
            raw,
            message_id=message_id,
            correlation_id=correlation_id,
            reply_to=self.reply_queue if reply else None,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self.channel.default_exchange.publish(message, routing_key=self.settings.request_queue)

    async def take(self, queue: str, n: int, timeout_s: float, *, settle_s: float = 0.0) -> list[Any]:
        """At least ``n`` messages from ``queue`` (fails after ``timeout_s``); then ``settle_s`` more for extras."""
        got: list[Any] = []
        deadline = time.monotonic() + timeout_s
        settle_until: float | None = None
        while True:
            now = time.monotonic()
            if len(got) >= n and settle_until is None:
                settle_until = now + settle_s
            if settle_until is not None and now >= settle_until:
                return got
            if now > deadline and len(got) < n:
                raise AssertionError(f"{len(got)} of {n} messages from {queue} after {timeout_s} s: {got}")
            try:
                q = await self.channel.get_queue(queue, ensure=False)
                message = await q.get(no_ack=True, fail=False, timeout=5)
            except (AMQPError, OSError, TimeoutError, RuntimeError):  # the broker is restarting; the channel comes back
                message = None
            if message is None:
                await asyncio.sleep(0.05)
            else:
                got.append(message)

    async def replies(self, n: int, timeout_s: float = 30.0, *, settle_s: float = 0.0) -> list[tuple[str, Any]]:
        messages = await self.take(self.reply_queue, n, timeout_s, settle_s=settle_s)
        return [(m.correlation_id, json.loads(m.body)) for m in messages]

    async def close(self) -> None:
        await self.connection.close()


@asynccontextmanager
async def running(
    settings: Settings, service: JobService, *, models: Any = None, name: str = "b"
) -> AsyncIterator[Bridge]:
    bridge = build_bridge(settings, service, amqp_url=AMQP_URL, models=models or FakeModels(), name=name)
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


def req(method: str, params: Any, id_: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": id_}


@pytest.mark.slow
def test_round_trip_translate_video_with_the_real_pipeline(settings: Settings, test_mp3: Path) -> None:
    """translate_video with reply_to and wait: the {job_id, state} reply, events, then the final result."""
    (settings.storage.root / "inputs").mkdir()
    video = make_video(settings.storage.root / "inputs" / "this_is_a_test.mp4", test_mp3, 5.0)
    service = build_job_service(settings)

    async def scenario() -> None:
        from pipelines.runner import Pipeline

        worker = JobWorker(service, lambda: Pipeline(settings), poll_s=0.1)
        client = await Client(settings.queue).open()
        events = await client.channel.declare_queue(settings.queue.request_queue.removesuffix(".rpc") + ".ev")
        async with running(settings, service):
            assert client.channel is not None
            exchange = await client.channel.get_exchange(settings.queue.events_exchange)
            await events.bind(exchange, routing_key="job.#")
            params = {"input": f"inputs/{video.name}", "target_languages": ["es"], "mode": "subtitles", "wait": True}
            await client.publish(req("translate_video", params, "rt"), message_id="rt-1", correlation_id="c-rt")
            [(cid, first)] = await client.replies(1, 30)
            assert cid == "c-rt" and first["id"] == "rt" and first["result"]["state"] == "queued"
            job_id = first["result"]["job_id"]
            worker.start()
            try:
                [(cid, final)] = await client.replies(1, 240)
            finally:
                await asyncio.to_thread(worker.stop, 30)
            assert cid == "c-rt" and final["id"] == "rt"
            result = final["result"]
            assert result["final"] is True and result["job_id"] == job_id and result["state"] == "succeeded", result
            out = settings.storage.root / result["output_dir"]  # relative to the shared storage root
            for name in ("this_is_a_test.es.mp4", "this_is_a_test.es.srt", "this_is_a_test.report.json"):
                assert name in result["outputs"] and (out / name).stat().st_size > 0
            keys = [m.routing_key for m in await client.take(events.name, 2, 10, settle_s=0.5)]
            assert keys[-1] == f"job.{job_id}.succeeded"  # the first may already be 'running': the worker is quick
            assert all(k.rsplit(".", 1)[0] == f"job.{job_id}" for k in keys) and f"job.{job_id}.running" in keys
        await client.close()

    asyncio.run(scenario())
    service.store.close()


def test_error_codes_dead_letters_and_keeps_consuming(settings: Settings) -> None:
    service = build_job_service(settings)
    bad = {
        "-32700": b"{not json",
        "-32600": json.dumps({"method": "get_job", "id": 1}).encode(),
        "-32601": json.dumps(req("no_such_method", {})).encode(),
        "-32602": json.dumps(req("get_job", {"job_id": "x", "bogus": 1})).encode(),
    }

    async def scenario() -> None:
        client = await Client(settings.queue).open()
        async with running(settings, service) as bridge:
            for code, body in bad.items():
                await client.publish(body, correlation_id=code)
            await client.publish(b"[]", reply=False)  # poison without reply_to: dead-lettered, no reply
            await client.publish(req("get_job", ["f" * 32], 7), correlation_id="domain")
            await client.publish(
                req("translate_text", {"texts": ["still here"], "target_language": "es"}, 8), correlation_id="ok"
            )
            replies = dict(await client.replies(6, 30, settle_s=0.5))
            assert len(replies) == 6
            for code in bad:
                assert replies[code]["error"]["code"] == int(code), replies[code]
            assert replies["domain"]["error"]["code"] == -32001
            assert replies["domain"]["error"]["data"]["error"]["code"] == "job_not_found"
            assert replies["ok"]["result"]["translations"] == ["STILL HERE"]
            dead = await client.take(settings.queue.dead_letter_queue, 5, 10, settle_s=0.5)
            reasons = sorted(str(m.headers["x-vt-reason"]).split()[0] for m in dead)
            assert reasons == ["-32600", "-32600", "-32601", "-32602", "-32700"]
            assert {m.body for m in dead} == {*bad.values(), b"[]"}
            assert bridge.stats["poison"] == 5 and bridge.stats["processed"] == 7
        await client.close()

    asyncio.run(scenario())
    service.store.close()


def test_same_message_twice_gives_one_job(settings: Settings, media: Path) -> None:
    """The same message_id twice (as a redelivery or a re-publish would bring it): one job. (aiormq stamps a random
    message_id on every publish, so the body-hash fallback for other clients is covered in test_rpc.py.)"""
    service = build_job_service(settings)
    params = {"input": "inputs/clip.mp4", "target_languages": ["es"]}

    async def scenario() -> None:
        client = await Client(settings.queue).open()
        async with running(settings, service):
            await client.publish(req("translate_video", params, 1), message_id="dup-1", correlation_id="a")
            await client.publish(req("translate_video", params, 1), message_id="dup-1", correlation_id="b")
            await client.publish(req("translate_video", params, 2), message_id="other", correlation_id="c")
            replies = dict(await client.replies(3, 30))
        ids = {cid: r["result"]["job_id"] for cid, r in replies.items()}
        assert ids["a"] == ids["b"] != ids["c"]
        assert sorted(r.idempotency_key or "" for r in service.list()) == ["amqp:dup-1", "amqp:other"]
        await client.close()

    asyncio.run(scenario())
    service.store.close()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def test_broker_restart_mid_stream(settings: Settings) -> None:
    """20 translate_text requests; ``rabbitmqctl stop_app``/``start_app`` while they are in flight. The translator
    is a fake that takes 0.5 s a call (the broker restart is what is under test): every request gets exactly one
    successful reply, and the bridge reconnects by itself."""
    settings.queue.prefetch_count = 2
    service = build_job_service(settings)

    async def scenario() -> None:
        client = await Client(settings.queue).open()
        async with running(settings, service, models=FakeModels(delay_s=0.5)) as bridge:
            for i in range(20):
                body = req("translate_text", {"texts": [f"line {i}"], "target_language": "es"}, i)
                await client.publish(body, message_id=f"m{i}", correlation_id=str(i))
            got = await client.replies(1, 30)
            try:
                await asyncio.to_thread(_rabbitmqctl, "stop_app")
                assert bridge.stats["processed"] < 20, "the restart came too late to test anything"
                await asyncio.sleep(1.0)
            finally:
                await asyncio.to_thread(_rabbitmqctl, "start_app")
            got += await client.replies(20 - len(got), 120, settle_s=3.0)
            by_id: dict[str, list[Any]] = {}
            for cid, reply in got:
                by_id.setdefault(cid, []).append(reply)
            assert sorted(by_id, key=int) == [str(i) for i in range(20)]
            for cid, replies in by_id.items():
                assert len(replies) == 1, (cid, replies)
                assert replies[0]["result"]["translations"] == [f"LINE {cid}"]
            await client.publish(
                req("translate_text", {"texts": ["after"], "target_language": "es"}, 99), correlation_id="after"
            )
            [(_, after)] = await client.replies(1, 30)
            assert after["result"]["translations"] == ["AFTER"]
            assert bridge.connection is not None and not bridge.connection.is_closed
        await client.close()

    try:
        asyncio.run(scenario())
    finally:
        _rabbitmqctl("start_app")  # idempotent; the broker must never be left stopped
        service.store.close()


def _bridge_process(settings: Settings, *extra_env: tuple[str, str]) -> subprocess.Popen[bytes]:
    q = settings.queue
    env = {
        **os.environ,
        "VT_QUEUE__REQUEST_QUEUE": q.request_queue,
        "VT_QUEUE__DEAD_LETTER_QUEUE": q.dead_letter_queue,
        "VT_QUEUE__EVENTS_EXCHANGE": q.events_exchange,
        "VT_QUEUE__RECONNECT_INTERVAL_S": "1",
        "VT_SERVICE__JOB_STORE_URL": settings.service.job_store_url,
        "VT_STORAGE__ROOT": str(settings.storage.root),
        **dict(extra_env),
    }
    cmd = [sys.executable, "-m", "serve_app.bridge.main", "--amqp-url", AMQP_URL, "--no-worker"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_bridge_killed_between_record_and_ack(settings: Settings, media: Path) -> None:
    """SIGKILL after the job is in the store but before the ack: the message comes back, still one job."""
    service = build_job_service(settings)
    key = "amqp:kill-1"

    async def scenario() -> None:
        client = await Client(settings.queue).open()
        first = _bridge_process(settings, ("VT_BRIDGE_TEST_PAUSE_BEFORE_ACK_S", "120"))
        try:
            params = {"input": "inputs/clip.mp4", "target_languages": ["es"]}
            await client.publish(req("translate_video", params, 1), message_id="kill-1", correlation_id="k")
            deadline = time.monotonic() + 60
            while service.store.get_by_idempotency_key(key, owner=None) is None:
                assert first.poll() is None, first.stderr.read() if first.stderr else b""
                assert time.monotonic() < deadline, "the bridge never recorded the job"
                await asyncio.sleep(0.1)
            recorded = service.store.get_by_idempotency_key(key, owner=None)
        finally:
            first.kill()
            first.wait(10)
        assert recorded is not None
        assert await client.take(client.reply_queue, 0, 1, settle_s=0.5) == []  # it died before replying
        second = _bridge_process(settings)
        try:
            [(cid, reply)] = await client.replies(1, 60)
            assert cid == "k" and reply["result"]["job_id"] == recorded.id
            assert len(service.list()) == 1
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0  # a clean shutdown on SIGTERM
        finally:
            if second.poll() is None:
                second.kill()
        await client.close()

    asyncio.run(scenario())
    service.store.close()


def test_two_instances_share_the_load(settings: Settings) -> None:
    settings.queue.prefetch_count = 1
    service = build_job_service(settings)

    async def scenario() -> None:
        client = await Client(settings.queue).open()
        async with (
            running(settings, service, models=FakeModels(delay_s=0.1), name="one") as one,
            running(settings, service, models=FakeModels(delay_s=0.1), name="two") as two,
        ):
            for i in range(12):
                await client.publish(
                    req("translate_text", {"texts": [str(i)], "target_language": "es"}, i), correlation_id=str(i)
                )
            replies = dict(await client.replies(12, 30))
            assert sorted(replies, key=int) == [str(i) for i in range(12)]
            assert one.stats["processed"] > 0 and two.stats["processed"] > 0
            assert one.stats["processed"] + two.stats["processed"] == 12
        await client.close()

    asyncio.run(scenario())
    service.store.close()


def test_full_job_queue_pauses_consuming_until_there_is_room(settings: Settings, media: Path) -> None:
    settings.service.max_queued_jobs = 1
    service = build_job_service(settings)
    params = {"input": "inputs/clip.mp4", "target_languages": ["es"]}

    async def scenario() -> None:
        client = await Client(settings.queue).open()
        async with running(settings, service) as bridge:
            await client.publish(req("translate_video", params, 1), message_id="bp-1", correlation_id="1")
            [(_, first)] = await client.replies(1, 30)
            await client.publish(req("translate_video", params, 2), message_id="bp-2", correlation_id="2")
            deadline = time.monotonic() + 20
            while not bridge.paused:
                assert time.monotonic() < deadline, "the bridge did not pause"
                await asyncio.sleep(0.05)
            assert await client.take(client.reply_queue, 0, 1, settle_s=0.5) == []
            assert len(service.list()) == 1
            service.cancel(first["result"]["job_id"])  # room again
            [(cid, second)] = await client.replies(1, 30)
            assert cid == "2" and second["result"]["state"] == JobState.QUEUED.value
            assert not bridge.paused and bridge.stats["requeued"] >= 1
        await client.close()

    asyncio.run(scenario())
    service.store.close()


def test_publishes_are_retried_then_the_last_error_propagates(settings: Settings) -> None:
    """Events and final replies are sent again while the robust connection reconnects (tenacity), a bounded
    number of times; no broker is needed for this."""
    from serve_app.bridge import consumer

    settings.queue.reconnect_interval_s = 0.01  # caps the backoff at 0.02 s after the first 0.5 s wait
    service = build_job_service(settings)
    bridge = Bridge(settings.queue, RpcHandler({}), service)
    calls: list[str] = []

    async def flaky(routing_key: str) -> None:
        calls.append(routing_key)
        if len(calls) < 3:
            raise ConnectionError("channel closed")

    asyncio.run(bridge._publish_retrying(flaky, "job.x.running"))
    assert calls == ["job.x.running"] * 3
    calls.clear()

    async def dead(routing_key: str) -> None:
        calls.append(routing_key)
        raise ConnectionError("still down")

    with pytest.raises(ConnectionError, match="still down"):
        asyncio.run(bridge._publish_retrying(dead, "job.x.done"))
    assert len(calls) == consumer._PUBLISH_TRIES
    service.store.close()
