"""The spec's queue, end to end, in separate processes: the HTTP API in queue mode (uvicorn, no job worker)
publishes ``POST /jobs/upload`` to the REAL RabbitMQ; two ``serve_app.bridge.main`` instances (each with its
own JobWorker, real Pipeline and its own stage cache) share a PostgreSQL job store and the storage folder, and
run the jobs. Only the storage root and the job store are shared between the three processes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from configs.settings import QueueSettings
from serve_app.jobs import JobState
from serve_app.jobs.store import make_job_store
from tests.conftest import make_video, wait_healthy
from tests.serve_app.bridge.conftest import AMQP_URL, delete_names, queue_names
from tests.serve_app.conftest import free_port

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
JOBS = 5
API = """
import sys
import uvicorn
from configs.settings import Settings
from serve_app.api.main import get_application

settings = Settings()
assert settings.queue.mode == "rabbitmq"
uvicorn.run(get_application(settings), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def queue_env(queue: QueueSettings, pg_url: str, root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VT_QUEUE__AMQP_URL": AMQP_URL,
        "VT_QUEUE__REQUEST_QUEUE": queue.request_queue,
        "VT_QUEUE__DEAD_LETTER_QUEUE": queue.dead_letter_queue,
        "VT_QUEUE__EVENTS_EXCHANGE": queue.events_exchange,
        "VT_QUEUE__RECONNECT_INTERVAL_S": "1",
        "VT_SERVICE__JOB_STORE_URL": pg_url,
        "VT_SERVICE__MAX_RUNNING_JOBS": "1",
        "VT_SERVICE__MAX_QUEUED_JOBS": "50",
        "VT_SERVICE__JOB_LEASE_S": "4",  # a SIGKILLed instance's job is taken over within seconds
        "VT_STORAGE__ROOT": str(root),
    }


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self.log = open(log, "ab")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def stack(tmp_path: Path, pg_url: str) -> Iterator[tuple[str, list[Proc], str]]:
    queue = queue_names()
    root = tmp_path / "shared"
    root.mkdir()
    env = queue_env(queue, pg_url, root)
    procs: list[Proc] = []
    try:
        for name in ("a", "b"):
            bridge_env = {**env, "VT_STORAGE__CACHE_DIR": str(tmp_path / f"cache-{name}"),
                          "VT_LOG_DIR": str(tmp_path / f"log-{name}")}  # fmt: skip
            cmd = [sys.executable, "-m", "serve_app.bridge.main"]
            procs.append(Proc(cmd, bridge_env, tmp_path / f"bridge-{name}.log"))
        port = free_port()
        api_env = {**env, "VT_QUEUE__MODE": "rabbitmq", "VT_LOG_DIR": str(tmp_path / "log-api")}
        api = Proc([sys.executable, "-c", API, str(port)], api_env, tmp_path / "api.log")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, api.proc, "the API")
        except AssertionError:
            print(api.text())
            raise
        deadline = time.monotonic() + 120
        while not all("bridge ready" in p.text() for p in procs):
            assert all(p.proc.poll() is None for p in procs), [p.text() for p in procs]
            assert time.monotonic() < deadline, "the bridges did not start"
            time.sleep(0.2)
        yield url, procs, pg_url
        api.stop()
    finally:
        for p in procs:
            p.stop()
        delete_names(queue)


def post_job(http: httpx.Client, video: Path) -> tuple[str, float]:
    """POST /jobs/upload (subtitles, es): the job id and when the answer came back (time.time())."""
    t0 = time.monotonic()
    with open(video, "rb") as fh:
        r = http.post("/jobs/upload", files={"file": (video.name, fh, "video/mp4")},
                      data={"target_languages": "es", "mode": "subtitles"})  # fmt: skip
    assert r.status_code == 202, r.text
    job = r.json()["data"]
    assert job["state"] == "queued" and time.monotonic() - t0 < 5
    return str(job["job_id"]), time.time()


def test_http_jobs_run_once_each_on_two_bridge_instances(
    stack: tuple[str, list[Proc], str], tmp_path: Path, test_mp3: Path
) -> None:
    url, bridges, pg_url = stack
    video = make_video(tmp_path / "this_is_a_test.mp4", test_mp3, 5.0)
    answered: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(JOBS):
            job_id, answered[job_id] = post_job(http, video)
            assert http.get(f"/jobs/{job_id}").json()["data"]["job_id"] == job_id
        deadline = time.monotonic() + 420
        while True:
            states = {i: http.get(f"/jobs/{i}").json()["data"]["state"] for i in answered}
            if all(s in {"succeeded", "failed", "cancelled"} for s in states.values()):
                break
            assert all(b.proc.poll() is None for b in bridges), [b.text()[-3000:] for b in bridges]
            assert time.monotonic() < deadline, states
            time.sleep(1.0)
        assert set(states.values()) == {"succeeded"}, states
        some = next(iter(answered))
        done = http.get(f"/jobs/{some}").json()["data"]
        srt = next(n for n in done["outputs"] if n.endswith(".es.srt"))
        assert http.get(done["output_urls"][srt]).text.strip()  # the API serves what a bridge wrote
    store = make_job_store(pg_url)
    try:
        records = [store.get(i) for i in answered]
    finally:
        store.close()
    assert all(r is not None and r.state is JobState.SUCCEEDED for r in records)
    for r in records:
        assert r is not None and r.started_at is not None
        # The answer came back before the job started (same host clock; 50 ms for writing the answer).
        assert answered[r.id] < datetime.timestamp(r.started_at) + 0.05, r.id
    logs = [b.text() for b in bridges]
    runs = {i: sum(len(re.findall(rf"\[job {i}\] running \(", log)) for log in logs) for i in answered}
    assert set(runs.values()) == {1}, runs  # each job ran exactly once
    per_instance = [sum(f"[job {i}] succeeded" in log for i in answered) for log in logs]
    assert sum(per_instance) == JOBS and all(n > 0 for n in per_instance), per_instance
    assert len({r.worker_id for r in records if r is not None}) == 2
    for b in bridges:
        assert b.stop() == 0


def test_an_instance_sigkilled_mid_job_leaves_the_job_to_the_other(
    stack: tuple[str, list[Proc], str], tmp_path: Path, test_mp3: Path
) -> None:
    """SIGKILL the instance running the job: its lease expires, the other instance takes the job over (resuming
    from the stage cache it can see, else from the start) and it succeeds once."""
    url, bridges, pg_url = stack
    video = make_video(tmp_path / "this_is_a_test.mp4", test_mp3, 5.0)
    with httpx.Client(base_url=url, timeout=30) as http:
        job_id, _ = post_job(http, video)
        deadline = time.monotonic() + 120
        while (job := http.get(f"/jobs/{job_id}").json()["data"])["state"] == "queued":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        assert job["state"] == "running", job
        while not any(f"[job {job_id}] running (" in b.text() for b in bridges):  # its log line follows the claim
            assert time.monotonic() < deadline, "no instance logged the job"
            time.sleep(0.05)
        runner = next(b for b in bridges if f"[job {job_id}] running (" in b.text())
        other = next(b for b in bridges if b is not runner)
        runner.proc.send_signal(signal.SIGKILL)
        runner.proc.wait(30)
        deadline = time.monotonic() + 300
        while (job := http.get(f"/jobs/{job_id}").json()["data"])["state"] not in {"succeeded", "failed", "cancelled"}:
            assert other.proc.poll() is None, other.text()[-3000:]
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["state"] == "succeeded", job
    assert "succeeded" not in runner.text().split(f"[job {job_id}] running (")[-1]  # it died mid-job
    assert other.text().count(f"[job {job_id}] running (") == 1 and f"[job {job_id}] succeeded" in other.text()
    store = make_job_store(pg_url)
    try:
        record = store.get(job_id)
    finally:
        store.close()
    assert record is not None and record.state is JobState.SUCCEEDED
    assert record.worker_id is not None and f"-{other.proc.pid}-" in record.worker_id
    assert other.stop() == 0


def wait_done(http: httpx.Client, job_id: str, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while (job := http.get(f"/jobs/{job_id}").json()["data"])["state"] not in {"succeeded", "failed", "cancelled"}:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def test_a_redub_in_queue_mode_runs_on_a_bridge_instance(
    stack: tuple[str, list[Proc], str], tmp_path: Path, test_mp3: Path
) -> None:
    """PATCH /jobs/{id}/segments on the queue-mode API (which runs no worker): a bridge instance re-runs the
    edited line and the new version is served by the API."""
    url, bridges, _pg_url = stack
    video = make_video(tmp_path / "this_is_a_test.mp4", test_mp3, 5.0)
    with httpx.Client(base_url=url, timeout=30) as http:
        job_id, _ = post_job(http, video)
        job = wait_done(http, job_id, 300)
        assert job["state"] == "succeeded", job
        report_name = next(n for n in job["outputs"] if n.endswith(".report.json"))
        rows = http.get(job["output_urls"][report_name]).json()["targets"]["es"]["sentences"]
        edit = {"target_language": "es", "segments": [{"id": rows[0]["id"], "translation": "Texto corregido a mano."}]}
        r = http.patch(f"/jobs/{job_id}/segments", json=edit)
        assert r.status_code == 202, r.text
        job2 = wait_done(http, job_id, 300)
        assert job2["state"] == "succeeded", job2
        assert http.get(f"/jobs/{job_id}/versions").json()["data"]["current_version"] == 2
        srt = next(n for n in job2["outputs"] if n.endswith(".es.srt"))
        assert "Texto corregido a mano." in http.get(job2["output_urls"][srt]).text
    assert sum(b.text().count(f"[job {job_id}] running (") for b in bridges) == 2  # first run and the re-dub
