"""Issue 12, item 19: the async routes never wait for the job store (or the disk) on the event loop.

Real uvicorn, the app's own wiring over a real SQLite store. Another connection holds SQLite's write lock, so a
POST /jobs waits in its worker thread for the busy timeout (30 s) while holding the store's connection. A route
that then called the store on the loop would freeze the whole ingress until the lock is gone; here the probe
must still be answered at once."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve_app.conftest import Server, make_services, make_settings

PROMPT_S = 1.5


@pytest.fixture
def served(tmp_path: Path, fakes: dict[str, Any]) -> Iterator[tuple[Server, Any]]:
    from serve_app.api.main import get_application

    services = make_services(make_settings(tmp_path / "var"), fakes)
    try:
        with Server(get_application(services=services)) as server:
            yield server, services
    finally:
        services.jobs.store.close()


def _upload(http: httpx.Client, video: Path) -> str:
    with open(video, "rb") as fh:
        r = http.post("/files/upload", files={"file": ("clip.mp4", fh)})
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["file_id"])


def _wait_until_held(lock: Any) -> None:
    deadline = time.monotonic() + 10
    while lock.acquire(blocking=False):  # free: the POST has not reached the store yet
        lock.release()
        assert time.monotonic() < deadline, "the POST never reached the store"
        time.sleep(0.02)


def _upload_job(http: httpx.Client, video: Path, job_id: str) -> int:
    with open(video, "rb") as fh:  # POST /jobs/upload asks the store for queue room before it streams
        return http.post("/jobs/upload", files={"file": ("b.mp4", fh)}, data={"target_languages": "ru"}).status_code


def _follow(http: httpx.Client, video: Path, job_id: str) -> int:
    with http.stream("GET", f"/jobs/{job_id}/events") as r:  # reads the job before the stream starts
        next(r.iter_lines())
        return r.status_code


def _original_audio(http: httpx.Client, video: Path, job_id: str) -> int:
    return http.get(f"/jobs/{job_id}/original-audio").status_code  # reads the job first


@pytest.mark.parametrize(("blocked", "status"), [(_upload_job, 202), (_follow, 200), (_original_audio, 404)],
                         ids=["upload-queue-room", "events", "original-audio"])  # fmt: skip
def test_a_store_waiting_on_the_sqlite_lock_never_freezes_the_ingress(
    served: tuple[Server, Any], tiny_video: Path, blocked: Callable[[httpx.Client, Path, str], int], status: int
) -> None:
    server, services = served
    results: dict[str, Any] = {}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        file_id = _upload(http, tiny_video)
        job_id = http.post("/jobs", json={"file_id": file_id, "target_languages": ["ru"]}).json()["data"]["job_id"]
        db = services.settings.service.job_store_url.removeprefix("sqlite:///")
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process's write transaction, say

        def run(name: str, call: Callable[[], Any]) -> threading.Thread:
            def target() -> None:
                try:
                    results[name] = call()
                except Exception as exc:  # noqa: BLE001  (reported by the assertions below)
                    results[name] = exc

            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            return thread

        try:
            body = {"file_id": file_id, "target_languages": ["es"]}
            writer = run("writer", lambda: http.post("/jobs", json=body).status_code)
            _wait_until_held(services.jobs.store._lock)  # the POST waits for SQLite, holding the store
            reader = run("blocked", lambda: blocked(http, tiny_video, job_id))
            time.sleep(0.5)  # the second request reaches its store call
            started = time.perf_counter()
            probe = httpx.get(server.url + "/healthz", timeout=10)
            elapsed = time.perf_counter() - started
            page = httpx.get(server.url + "/static/app.js", timeout=10)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        writer.join(60)
        reader.join(60)
    assert probe.status_code == 200 and page.status_code == 200
    assert elapsed < PROMPT_S, f"the ingress froze for {elapsed:.1f} s behind a store call"
    assert results == {"writer": 202, "blocked": status}  # and both finish once the lock is gone
