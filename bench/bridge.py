"""RabbitMQ bridge benchmark (issue 4), against the real broker (``--amqp-url``, default the local one).

1. translate_text: the same requests through the broker (publish with reply_to, wait for the replies) against a
   direct in-process call, in one run: throughput, and the added latency per message (sequential round trips).
   The translator is an instant fake, so the figures are the bridge's own cost, not the LLM's.
2. Jobs accepted per second in queue mode: ``translate_video`` messages (fire-and-forget) taken in by 1 and 2
   bridge processes (``python -m serve_app.bridge.main --no-worker``) until every job is in the job store.
   (HTTP ``POST /jobs`` in queue mode against local mode: bench/queue_mode.py.)
   No pipeline runs (intake only; the jobs stay queued), so this measures intake, not translation.

    .venv/bin/python bench/bridge.py [--texts 500] [--latency 100] [--jobs 300] [--instances 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aio_pika

from configs.settings import QueueSettings, Settings
from pipelines.schema import Transcript
from serve_app.bridge import build_bridge, build_job_service
from serve_app.jobs import JobState

REPO = Path(__file__).resolve().parents[1]


class InstantModels:
    def transcribe(self, media_path: Path, language: str | None) -> Transcript:
        return Transcript(language or "en", 1.0, 0.0)

    def translate_texts(self, texts: list[str], source_language: str, target_language: str) -> list[str]:
        return [t.upper() for t in texts]


def make_settings(root: Path, amqp_url: str) -> Settings:
    sfx = uuid.uuid4().hex[:10]
    settings = Settings()
    settings.storage.root = root / "shared"
    (settings.storage.root / "in").mkdir(parents=True)
    (settings.storage.root / "in" / "clip.mp4").write_bytes(b"stand-in")
    settings.service.job_store_url = f"sqlite:///{root / 'jobs.db'}"
    settings.service.max_queued_jobs = 1_000_000
    settings.queue = QueueSettings(
        amqp_url=amqp_url,
        request_queue=f"vt-bench.{sfx}.rpc",
        dead_letter_queue=f"vt-bench.{sfx}.rpc.dlq",
        events_exchange=f"vt-bench.{sfx}.events",
        prefetch_count=16,
    )
    return settings


def text_request(i: int) -> bytes:
    params = {"texts": [f"line {i}"], "target_language": "es"}
    return json.dumps({"jsonrpc": "2.0", "method": "translate_text", "params": params, "id": i}).encode()


async def cleanup(channel: Any, q: QueueSettings, *extra: str) -> None:
    for name in (q.request_queue, q.dead_letter_queue, *extra):
        await channel.queue_delete(name)
    await channel.exchange_delete(q.events_exchange)


async def bench_text(settings: Settings, n: int, n_latency: int) -> dict[str, Any]:
    service = build_job_service(settings)
    bridge = build_bridge(settings, service, models=InstantModels(), name="bench")
    models = InstantModels()
    direct_s: list[float] = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        models.translate_texts([f"line {i}"], "en", "es")
        direct_s.append(time.perf_counter() - t)
    direct_total = time.perf_counter() - t0
    handler_s: list[float] = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        await bridge.handler.handle(text_request(i), key=f"amqp:d{i}")
        handler_s.append(time.perf_counter() - t)
    handler_total = time.perf_counter() - t0

    await bridge.start()
    connection = await aio_pika.connect_robust(settings.queue.amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    replies = await channel.declare_queue(exclusive=True)
    waiting: dict[str, asyncio.Future[float]] = {}

    async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        future = waiting.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    await replies.consume(on_reply, no_ack=True)
    loop = asyncio.get_running_loop()

    async def send(i: int) -> float:
        cid = uuid.uuid4().hex
        waiting[cid] = loop.create_future()
        started = time.perf_counter()
        message = aio_pika.Message(text_request(i), correlation_id=cid, reply_to=replies.name)
        await channel.default_exchange.publish(message, routing_key=settings.queue.request_queue)
        return await waiting[cid] - started

    t0 = time.perf_counter()
    await asyncio.gather(*(send(i) for i in range(n)))
    broker_total = time.perf_counter() - t0
    latency = [await send(i) for i in range(n_latency)]  # one at a time: round-trip latency
    await bridge.stop()
    await cleanup(channel, settings.queue)
    await connection.close()
    service.store.close()
    direct_med, handler_med, rt_med = (statistics.median(x) * 1000 for x in (direct_s, handler_s, latency))
    return {
        "messages": n,
        "direct_stage_call_per_s": round(n / direct_total),
        "in_process_jsonrpc_per_s": round(n / handler_total),
        "via_broker_per_s": round(n / broker_total, 1),
        "direct_stage_median_ms": round(direct_med, 4),
        "in_process_jsonrpc_median_ms": round(handler_med, 3),
        "broker_round_trip_median_ms": round(rt_med, 2),
        "broker_round_trip_p95_ms": round(statistics.quantiles(latency, n=20)[-1] * 1000, 2),
        "added_latency_median_ms": round(rt_med - direct_med, 2),
    }


def bridge_process(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    q = settings.queue
    env = {
        **os.environ,
        "VT_QUEUE__REQUEST_QUEUE": q.request_queue,
        "VT_QUEUE__DEAD_LETTER_QUEUE": q.dead_letter_queue,
        "VT_QUEUE__EVENTS_EXCHANGE": q.events_exchange,
        "VT_QUEUE__PREFETCH_COUNT": str(q.prefetch_count),
        "VT_SERVICE__JOB_STORE_URL": settings.service.job_store_url,
        "VT_SERVICE__MAX_QUEUED_JOBS": str(settings.service.max_queued_jobs),
        "VT_STORAGE__ROOT": str(settings.storage.root),
        "VT_LOG_DIR": str(log.parent),
    }
    cmd = [sys.executable, "-m", "serve_app.bridge.main", "--amqp-url", q.amqp_url, "--no-worker"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))


async def consumers(amqp_url: str, queue: str) -> int:
    """The queue's consumer count, from a plain channel (a robust channel caches its declarations)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.consumer_count or 0
    finally:
        await connection.close()


async def bench_intake(settings: Settings, n: int, instances: int, log_dir: Path) -> dict[str, Any]:
    service = build_job_service(settings)
    q = settings.queue
    connection = await aio_pika.connect_robust(q.amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.declare_queue(q.dead_letter_queue, durable=True)
    dlx = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q.dead_letter_queue}
    queue = await channel.declare_queue(q.request_queue, durable=True, arguments=dlx)
    procs = [bridge_process(settings, log_dir / f"bridge{instances}-{i}.log") for i in range(instances)]
    try:
        while await consumers(q.amqp_url, q.request_queue) < instances:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a bridge process exited; see {log_dir}")
            await asyncio.sleep(0.1)
        params = {"input": "in/clip.mp4", "target_languages": ["es"], "mode": "subtitles"}
        body = json.dumps({"jsonrpc": "2.0", "method": "translate_video", "params": params}).encode()
        t0 = time.perf_counter()
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(body, message_id=f"job-{i}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=q.request_queue,
                )
                for i in range(n)
            )
        )
        published = time.perf_counter() - t0
        print(f"published {n} in {published:.2f} s", file=sys.stderr, flush=True)
        while service.store.count({JobState.QUEUED}) < n:
            await asyncio.sleep(0.02)
        accepted = time.perf_counter() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
    assert queue is not None
    await cleanup(channel, q)
    await connection.close()
    service.store.close()
    return {"instances": instances, "jobs": n, "publish_s": round(published, 2), "jobs_per_s": round(n / accepted, 1)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--texts", type=int, default=500)
    parser.add_argument("--latency", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--instances", default="1,2")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vt-bench-bridge-") as tmp:
        root = Path(tmp)
        results["translate_text"] = await bench_text(
            make_settings(root / "text", args.amqp_url), args.texts, args.latency
        )
        print(json.dumps(results["translate_text"]), flush=True)
        results["intake"] = []
        for k in (int(x) for x in args.instances.split(",")):
            row = await bench_intake(make_settings(root / f"intake{k}", args.amqp_url), args.jobs, k, root)
            results["intake"].append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
