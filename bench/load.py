"""Load: a bounded asyncio load generator (httpx, loopback only) against the real Serve app, which it starts itself.

In ONE run, all at once:
  * ``--uploads`` (50) concurrent ``POST /jobs/upload`` of the sample video (subtitles, en → es): the job queue's
    cap (``--max-queued``) must hold, and the uploads past it get 429 with Retry-After;
  * ``--polls`` (500) ``GET /jobs/{id}`` status polls over the accepted jobs;
  * ``--translate`` (200) ``POST /v1/translate`` calls with one short text each, through the real LLM, at most
    ``--translate-concurrency`` in flight.
A monitor samples the server's RSS (every process under this one: the Ray head, its workers and the Serve
replicas; psutil) and the number of queued jobs every ``--sample-s``. Errors are any answer other than the
expected 2xx, or a 429 somewhere other than the uploads. When every request is done (or ``--deadline-s``
passes) the queued and running jobs are cancelled and Serve and Ray shut down, so the script stops by itself.

    .venv/bin/python bench/load.py [--uploads 50 --polls 500 --translate 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CONFIG = REPO / "configs" / "serve.cpu.yaml"
TEXTS = [
    "Good morning.", "Thank you very much.", "Where is the station?", "The meeting starts at nine.",
    "Please close the door.", "It is raining today.", "I like this song.", "See you tomorrow.",
]  # fmt: skip


@dataclass
class Endpoint:
    """Latencies (ms) and status codes of one endpoint; ``allowed``: the codes that are not errors."""

    allowed: frozenset[int]
    ms: list[float] = field(default_factory=list)
    codes: Counter[int | str] = field(default_factory=Counter)
    retry_after_missing: int = 0

    def add(self, started: float, response: httpx.Response | None, error: str | None = None) -> None:
        self.ms.append((time.perf_counter() - started) * 1000)
        if response is None:
            self.codes[error or "error"] += 1
            return
        self.codes[response.status_code] += 1
        if response.status_code == 429 and not response.headers.get("Retry-After"):
            self.retry_after_missing += 1

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.ms)

        def pct(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1) if ordered else 0.0

        errors = sum(n for code, n in self.codes.items() if code not in self.allowed)
        return {"requests": len(self.ms), "codes": {str(k): v for k, v in sorted(self.codes.items(), key=str)},
                "errors": errors, "p50_ms": round(statistics.median(ordered), 1) if ordered else 0.0,
                "p95_ms": pct(0.95), "max_ms": pct(1.0), "429_without_retry_after": self.retry_after_missing}  # fmt: skip


class Load:
    def __init__(self, base: str, video: Path, opts: argparse.Namespace) -> None:
        self.base, self.video, self.opts = base, video, opts
        self.video_bytes = video.read_bytes()
        self.uploads = Endpoint(frozenset({202, 429}))
        self.polls = Endpoint(frozenset({200}))
        self.translate = Endpoint(frozenset({200}))
        self.job_ids: list[str] = []
        self.first_job = asyncio.Event()
        self.max_queued_seen = 0
        self.peak_rss_mb = 0.0
        self.peak_workers_rss_mb = 0.0
        self.done = asyncio.Event()

    async def upload_one(self, client: httpx.AsyncClient, i: int) -> None:
        files = {"file": (f"talk{i}.mp4", self.video_bytes, "video/mp4")}
        data = {"target_languages": "es", "source_language": "en", "mode": "subtitles"}
        started = time.perf_counter()
        try:
            r = await client.post("/jobs/upload", files=files, data=data)
        except httpx.HTTPError as exc:
            self.uploads.add(started, None, type(exc).__name__)
            return
        self.uploads.add(started, r)
        if r.status_code == 202:
            self.job_ids.append(r.json()["data"]["job_id"])
            self.first_job.set()

    async def poll_loop(self, client: httpx.AsyncClient, n: int, sem: asyncio.Semaphore) -> None:
        await asyncio.wait_for(self.first_job.wait(), timeout=600)

        async def one() -> None:
            async with sem:
                job_id = random.choice(self.job_ids)
                started = time.perf_counter()
                try:
                    r = await client.get(f"/jobs/{job_id}")
                except httpx.HTTPError as exc:
                    self.polls.add(started, None, type(exc).__name__)
                    return
                self.polls.add(started, r)
                await asyncio.sleep(0.05)  # a client polling, not a flood

        await asyncio.gather(*(one() for _ in range(n)))

    async def translate_loop(self, client: httpx.AsyncClient, n: int, sem: asyncio.Semaphore) -> None:
        async def one(i: int) -> None:
            async with sem:
                body = {"texts": [TEXTS[i % len(TEXTS)]], "source_language": "en", "target_language": "es"}
                started = time.perf_counter()
                try:
                    r = await client.post("/v1/translate", json=body)
                except httpx.HTTPError as exc:
                    self.translate.add(started, None, type(exc).__name__)
                    return
                self.translate.add(started, r)

        await asyncio.gather(*(one(i) for i in range(n)))

    async def monitor(self, client: httpx.AsyncClient) -> None:
        me = psutil.Process(os.getpid())
        while not self.done.is_set():
            total = workers = 0.0
            for proc in me.children(recursive=True):
                try:
                    rss = proc.memory_info().rss / 2**20
                    total += rss
                    if "ray::" in " ".join(proc.cmdline()[:1]) or proc.name().startswith("ray::"):
                        workers += rss
                except psutil.Error:
                    continue
            self.peak_rss_mb = max(self.peak_rss_mb, total)
            self.peak_workers_rss_mb = max(self.peak_workers_rss_mb, workers)
            try:
                r = await client.get("/jobs", params={"limit": 1000})
                queued = sum(1 for j in r.json()["data"]["jobs"] if j["state"] == "queued")
                self.max_queued_seen = max(self.max_queued_seen, queued)
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            try:
                await asyncio.wait_for(self.done.wait(), timeout=self.opts.sample_s)
            except TimeoutError:
                pass

    async def run(self) -> dict[str, Any]:
        limits = httpx.Limits(max_connections=self.opts.uploads + 64)
        timeout = httpx.Timeout(self.opts.deadline_s)
        async with httpx.AsyncClient(base_url=self.base, timeout=timeout, limits=limits) as client:
            mon = asyncio.create_task(self.monitor(client))
            started = time.perf_counter()
            walls: dict[str, float] = {}

            async def timed(name: str, coro: Any) -> None:
                t0 = time.perf_counter()
                await coro
                walls[name] = round(time.perf_counter() - t0, 1)

            work = asyncio.gather(
                timed("uploads", asyncio.gather(*(self.upload_one(client, i) for i in range(self.opts.uploads)))),
                timed("polls", self.poll_loop(client, self.opts.polls, asyncio.Semaphore(self.opts.poll_concurrency))),
                timed("translate", self.translate_loop(
                    client, self.opts.translate, asyncio.Semaphore(self.opts.translate_concurrency))),
            )  # fmt: skip
            try:
                await asyncio.wait_for(work, timeout=self.opts.deadline_s)
                finished = True
            except TimeoutError:
                finished = False
            wall = time.perf_counter() - started
            self.done.set()
            await mon
            cancelled = 0
            for job_id in self.job_ids:  # the queued jobs would run for an hour on 2 cores: stop them
                r = await client.delete(f"/jobs/{job_id}")
                cancelled += r.status_code == 200
        endpoints = {
            "POST /jobs/upload": self.uploads,
            "GET /jobs/{id}": self.polls,
            "POST /v1/translate": self.translate,
        }
        return {
            "finished_before_deadline": finished,
            "wall_s": round(wall, 1),
            "phase_wall_s": walls,
            "endpoints": {name: ep.summary() for name, ep in endpoints.items()},
            "errors": sum(ep.summary()["errors"] for ep in endpoints.values()),
            "jobs_accepted": len(self.job_ids),
            "max_queued_jobs": self.opts.max_queued,
            "max_queued_seen": self.max_queued_seen,
            "queue_cap_held": self.max_queued_seen <= self.opts.max_queued,
            "jobs_cancelled_at_end": cancelled,
            "peak_rss_mb_all_server_processes": round(self.peak_rss_mb),
            "peak_rss_mb_ray_workers": round(self.peak_workers_rss_mb),
            "translate_rate_per_s": round(len(self.translate.ms) / walls["translate"], 2)
            if "translate" in walls
            else None,
        }


def sample_video(tmp: Path) -> Path:
    from bench._media import speech_clip

    return speech_clip(tmp / "sample.mp4", 13.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--polls", type=int, default=500)
    parser.add_argument("--translate", type=int, default=200)
    parser.add_argument("--translate-concurrency", type=int, default=4)
    parser.add_argument("--poll-concurrency", type=int, default=20)
    parser.add_argument("--max-queued", type=int, default=16, help="service.max_queued_jobs for this run")
    parser.add_argument("--sample-s", type=float, default=0.5)
    parser.add_argument("--deadline-s", type=float, default=1800.0, help="stop whatever is still running after this")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    opts = parser.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from serve_app.server import start_app, stop_app
    from tests.serve_app.conftest import free_port

    tmp = Path(tempfile.mkdtemp(prefix="vt-load-"))
    root = tmp / "var"
    args = {"settings": {"storage": {"root": str(root), "cache_dir": str(root / "cache")},
                         "service": {"job_store_url": f"sqlite:///{root / 'jobs.db'}",
                                     "max_queued_jobs": opts.max_queued}}}  # fmt: skip
    video = sample_video(tmp)
    t0 = time.perf_counter()
    info = start_app(CONFIG, host="127.0.0.1", port=free_port(), dashboard_port=free_port(), app_args=args)
    startup_s = time.perf_counter() - t0
    try:
        result = asyncio.run(Load(info.ui_url.rstrip("/"), video, opts).run())
    finally:
        stop_app()
    result = {"cpus": os.cpu_count(), "startup_s": round(startup_s, 1), "video_bytes": video.stat().st_size,
              "settings": {k: v for k, v in vars(opts).items() if k != "json"}, **result}  # fmt: skip
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if opts.json is not None:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(text + "\n", encoding="utf-8")
    ok = result["errors"] == 0 and result["queue_cap_held"] and result["finished_before_deadline"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
