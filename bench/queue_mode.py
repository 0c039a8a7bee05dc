"""Queue mode against local mode through HTTP ``POST /jobs`` (issue 13), against the real RabbitMQ and PostgreSQL.

1. Accepted jobs per second: ``--jobs`` (200) ``POST /jobs`` (JSON, one uploaded file id, subtitles en → es) at
   ``--concurrency`` (8) in flight, against the API (uvicorn, one process) in local mode (record only) and in
   queue mode (publish with confirm, then record). No worker runs in this phase, so only intake is measured.
2. POST-to-start in queue mode: two ``serve_app.bridge.main`` instances (JobWorker, real Pipeline) share the
   store; ``--start-jobs`` (10) POSTs spaced ``--spacing-s`` (6) apart (so a handler is free); the time from the
   POST's answer to the job's ``started_at``, p50/p95. The jobs then run to the end.

Each run uses a PostgreSQL schema and queue names of its own and removes them afterwards.

    .venv/bin/python bench/queue_mode.py [--jobs 200] [--concurrency 8] [--start-jobs 10] [--spacing-s 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._media import speech_clip
from serve_app.jobs.store import make_job_store

API = """
import sys
import uvicorn
from configs.settings import Settings
from serve_app.api.main import get_application

uvicorn.run(get_application(Settings()), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def schema(pg_url: str) -> Any:
    name = f"vt_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{pg_url}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def base_env(args: argparse.Namespace, store_url: str, root: Path, sfx: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VT_QUEUE__AMQP_URL": args.amqp_url,
        "VT_QUEUE__REQUEST_QUEUE": f"vt-bench.{sfx}.rpc",
        "VT_QUEUE__DEAD_LETTER_QUEUE": f"vt-bench.{sfx}.rpc.dlq",
        "VT_QUEUE__EVENTS_EXCHANGE": f"vt-bench.{sfx}.events",
        "VT_SERVICE__JOB_STORE_URL": store_url,
        "VT_SERVICE__MAX_QUEUED_JOBS": str(args.jobs + args.start_jobs + 10),
        "VT_SERVICE__MAX_RUNNING_JOBS": "1",
        "VT_STORAGE__ROOT": str(root),
        "VT_LOG_DIR": str(root / "log"),
    }


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = start([sys.executable, "-c", API, str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the API did not start; see {log}")
        time.sleep(0.2)


def upload(url: str, video: Path) -> str:
    with open(video, "rb") as fh:
        r = httpx.post(f"{url}/files/upload", files={"file": (video.name, fh, "video/mp4")}, timeout=60)
    r.raise_for_status()
    return str(r.json()["data"]["file_id"])


async def accept(url: str, file_id: str, n: int, concurrency: int) -> dict[str, Any]:
    body = {"file_id": file_id, "target_languages": ["es"], "mode": "subtitles"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def one() -> None:
            async with sem:
                t0 = time.perf_counter()
                r = await http.post("/jobs", json=body)
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        took = time.perf_counter() - t0
    latencies.sort()
    return {
        "jobs": n,
        "statuses": statuses,
        "jobs_per_s": round(n / took, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1),
    }


def post_to_start(args: argparse.Namespace, env: dict[str, str], root: Path, video: Path) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    bridges = [
        start([sys.executable, "-m", "serve_app.bridge.main"], {**env, "VT_STORAGE__CACHE_DIR": str(root / f"c{i}")},
              root / f"bridge{i}.log")
        for i in range(2)
    ]  # fmt: skip
    api, url = start_api({**env, "VT_QUEUE__MODE": "rabbitmq"}, root / "api-start.log")
    try:
        deadline = time.monotonic() + 180
        while not all("bridge ready" in (root / f"bridge{i}.log").read_text() for i in range(2)):
            if time.monotonic() > deadline:
                raise RuntimeError("the bridges did not start")
            time.sleep(0.2)
        file_id = upload(url, video)
        body = {"file_id": file_id, "target_languages": ["es"], "mode": "subtitles"}
        answered: dict[str, float] = {}
        # A warm-up job each, so model loading is not counted as queueing.
        for _ in range(2):
            answered[httpx.post(f"{url}/jobs", json=body).json()["data"]["job_id"]] = time.time()
        warm = list(answered)
        wait_terminal(url, warm, 600)
        for _ in range(args.start_jobs):
            r = httpx.post(f"{url}/jobs", json=body)
            answered[r.json()["data"]["job_id"]] = time.time()
            time.sleep(args.spacing_s)
        measured = [i for i in answered if i not in warm]
        wait_terminal(url, measured, 900)
        store = make_job_store(env["VT_SERVICE__JOB_STORE_URL"])
        try:
            delays = sorted(
                datetime.timestamp(store.get(i).started_at) - answered[i]  # type: ignore[union-attr,arg-type]
                for i in measured
            )
            states = [store.get(i).state.value for i in measured]  # type: ignore[union-attr]
        finally:
            store.close()
    finally:
        stop(api)
        for b in bridges:
            stop(b)
    return {
        "jobs": len(measured),
        "states": {s: states.count(s) for s in set(states)},
        "post_to_start_p50_s": round(statistics.median(delays), 3),
        "post_to_start_p95_s": round(delays[int(0.95 * (len(delays) - 1))], 3),
    }


def wait_terminal(url: str, ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        states = [httpx.get(f"{url}/jobs/{i}").json()["data"]["state"] for i in ids]
        if all(s in {"succeeded", "failed", "cancelled"} for s in states):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs not done: {states}")
        time.sleep(0.5)


def delete_queues(amqp_url: str, sfx: str) -> None:
    import aio_pika

    async def go() -> None:
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel()
        for name in (f"vt-bench.{sfx}.rpc", f"vt-bench.{sfx}.rpc.dlq"):
            await channel.queue_delete(name)
        await channel.exchange_delete(f"vt-bench.{sfx}.events")
        await connection.close()

    asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--pg-url", default="postgresql://vt_test:vt_test@127.0.0.1:5432/test")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--start-jobs", type=int, default=10)
    parser.add_argument("--spacing-s", type=float, default=6.0)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vt-bench-queue-") as tmp:
        root = Path(tmp)
        video = speech_clip(root / "clip.mp4", 4.0)
        for mode in ("local", "rabbitmq"):
            sfx = uuid.uuid4().hex[:8]
            with schema(args.pg_url) as store_url:
                env = base_env(args, store_url, root / mode, sfx)
                api, url = start_api({**env, "VT_QUEUE__MODE": mode}, root / f"api-{mode}.log")
                try:
                    results[f"accept_{mode}"] = asyncio.run(accept(url, upload(url, video), args.jobs, args.concurrency))
                finally:
                    stop(api)
                    delete_queues(args.amqp_url, sfx)
            print(json.dumps({mode: results[f"accept_{mode}"]}), flush=True)
        if args.start_jobs:
            sfx = uuid.uuid4().hex[:8]
            with schema(args.pg_url) as store_url:
                try:
                    env = base_env(args, store_url, root / "start", sfx)
                    results["post_to_start"] = post_to_start(args, env, root / "start", video)
                finally:
                    delete_queues(args.amqp_url, sfx)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
