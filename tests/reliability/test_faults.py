"""Faults with the real components and the bundled models: nothing lost, nothing done twice.

* A model replica is killed through the Ray API while a job uses it: Serve replaces it, the handle adapter
  sends the call again, and the job completes (the session's Ray cluster, the CPU profile).
* The whole service (uvicorn + JobWorker in one process) is SIGKILLed mid-job and started again: the job
  resumes from its last finished stage (the report's ``cache_hits``) and completes; no half-written file ever
  appears under a final name.

The disk-full and retention cases are in ``test_quota_retention.py``; the broker restart is
``tests/serve_app/bridge/test_consumer.py::test_broker_restart_mid_stream``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_healthy
from tests.serve_app.conftest import free_port

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "serve.cpu.yaml"
APP = "videotranslator"
JOB_FIELDS = {"target_languages": "es", "source_language": "en", "mode": "subtitles"}


def upload_job(http: httpx.Client, video: Path) -> str:
    with open(video, "rb") as fh:
        r = http.post("/jobs/upload", files={"file": ("talk.mp4", fh, "video/mp4")}, data=JOB_FIELDS)
    assert r.status_code == 202, r.text
    return str(r.json()["data"]["job_id"])


def wait_until(
    http: httpx.Client, job_id: str, done: Callable[[dict[str, Any]], bool], timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()["data"]
        except (httpx.HTTPError, KeyError, ValueError):
            job = {}
        if job and done(job):
            return job
        assert not job or job.get("state") not in {"failed", "cancelled"}, job
        assert time.monotonic() < deadline, f"timed out; last seen {job}"
        time.sleep(0.1)


def final_names(out: Path) -> list[str]:
    """What a client could download: files under their final (non-hidden) name."""
    return sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.is_dir() else []


# ----------------------------------------------------------------------------- (a) a model replica dies


def replica_actors(deployment: str) -> list[str]:
    import ray

    prefix = f"SERVE_REPLICA::{APP}#{deployment}#"
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix))


@pytest.mark.ray
def test_a_killed_translator_replica_is_replaced_and_the_job_completes(
    ray_cluster: None, tmp_path: Path, jfk_video: Path
) -> None:
    import ray
    from ray import serve

    from serve_app.server import start_app

    root = tmp_path / "var"
    args = {"settings": {"storage": {"root": str(root), "cache_dir": str(root / "cache")},
                         "service": {"job_store_url": f"sqlite:///{root / 'jobs.db'}"}}}  # fmt: skip
    info = start_app(CONFIG, port=free_port(8000), app_args=args)
    try:
        with httpx.Client(base_url=info.ui_url.rstrip("/"), timeout=60) as http:
            job_id = upload_job(http, jfk_video)
            wait_until(http, job_id, lambda j: j["stage"] == "translate", 240)  # the LLM call is in flight
            [victim] = replica_actors("TranslatorDeployment")
            ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
            killed_at = time.monotonic()
            job = wait_until(http, job_id, lambda j: j["state"] == "succeeded", 300)
            recovered_s = time.monotonic() - killed_at
            [replacement] = replica_actors("TranslatorDeployment")
            assert replacement != victim  # Serve started a new replica
            srt = next(n for n in job["outputs"] if n.endswith(".es.srt"))
            assert http.get(job["output_urls"][srt]).text.strip()
            print(f"\nreplica killed mid-translate; job done {recovered_s:.1f} s later")
    finally:
        serve.shutdown()  # also stops the HTTP proxy, so the next app in this Ray cluster can bind its own port


# ----------------------------------------------------------------------------- (b) SIGKILL of the service

SERVICE = """
import sys
import uvicorn
from configs.settings import Settings
from pipelines.runner import Pipeline
from serve_app.api.main import get_application
from serve_app.api.services import Services
from serve_app.jobs import JobWorker

settings = Settings()
services = Services.local(settings)
worker = JobWorker(services.jobs, lambda: Pipeline(settings), lease_s=settings.service.job_lease_s, poll_s=0.2)
worker.start()
uvicorn.run(get_application(settings, services=services), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


@pytest.fixture
def service_env(tmp_path: Path) -> dict[str, str]:
    root = tmp_path / "var"
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "VT_STORAGE__ROOT": str(root),
        "VT_STORAGE__CACHE_DIR": str(root / "cache"),
        "VT_SERVICE__JOB_STORE_URL": f"sqlite:///{root / 'jobs.db'}",
        "VT_SERVICE__JOB_LEASE_S": "2",
        "VT_LOG_DIR": str(tmp_path / "log"),
    }


class Service:
    """``python -c SERVICE PORT``: one process, the HTTP app and a job worker."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "ab")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen([sys.executable, "-c", SERVICE, str(self.port)], cwd=REPO, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)  # fmt: skip
        wait_healthy(self.url, self.proc, "the service")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@pytest.fixture
def services_started(service_env: dict[str, str], tmp_path: Path) -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for s in started:
        s.stop()


def test_sigkill_mid_job_then_restart_resumes_from_the_last_stage(
    service_env: dict[str, str], services_started: list[Service], tmp_path: Path, jfk_video: Path
) -> None:
    root = Path(service_env["VT_STORAGE__ROOT"])
    first = Service(service_env, tmp_path / "service.log")
    services_started.append(first)
    with httpx.Client(base_url=first.url, timeout=60) as http:
        job_id = upload_job(http, jfk_video)
        seen = wait_until(http, job_id, lambda j: j["stage"] in {"translate", "mux"}, 240)
    first.kill()  # ASR is done (and cached); the LLM is mid-call
    out = root / "jobs" / job_id / "out"  # published in one swap: nothing there until the run is complete
    assert final_names(out) == []  # only the hidden staging folder, never a half-written final file
    attempts = root / "jobs" / job_id / "outputs"
    leftovers = sorted(p.name for p in attempts.iterdir()) if attempts.is_dir() else []
    assert all(name.startswith(".vt-staging-") for name in leftovers), leftovers

    killed_at = time.monotonic()
    second = Service(service_env, tmp_path / "service.log")
    services_started.append(second)
    with httpx.Client(base_url=second.url, timeout=60) as http:
        job = wait_until(http, job_id, lambda j: j["state"] == "succeeded", 300)
        resumed_s = time.monotonic() - killed_at
        report_name = next(n for n in job["outputs"] if n.endswith(".report.json"))
        report = http.get(job["output_urls"][report_name]).json()
    assert "asr" in report["cache_hits"], report["cache_hits"]  # resumed after the last finished stage
    assert sorted(job["outputs"]) == final_names(out)
    assert not list(attempts.glob(".vt-staging-*"))  # the killed run's staging folder was cleared on resume
    for name in job["outputs"]:
        assert (out / name).stat().st_size > 0
    print(
        f"\nkilled at stage {seen['stage']} ({seen['progress']:.2f}); resumed with cache_hits={report['cache_hits']};"
        f" done {resumed_s:.1f} s after the kill"
    )
    assert json.loads((out / report_name).read_text(encoding="utf-8"))["cache_hits"] == report["cache_hits"]


# ----------------------------------------------------------------------------- the retry, in isolation


class _Method:
    """A handle method whose first ``failures`` calls die with ``error``."""

    def __init__(self, error: BaseException, failures: int) -> None:
        self.error, self.failures, self.calls = error, failures, 0

    def remote(self, *args: Any) -> Any:
        self.calls += 1
        method = self

        class Response:
            def result(self) -> Any:
                if method.calls <= method.failures:
                    raise method.error
                return args

        return Response()


def test_the_handle_adapters_resend_only_when_the_replica_died(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.exceptions import ActorDiedError

    from serve_app.deployments import adapters

    monkeypatch.setattr(adapters, "REPLICA_RETRY_BACKOFF_S", 0.0)
    died = _Method(ActorDiedError(), failures=2)
    assert adapters._call(died, "x", 1) == ("x", 1) and died.calls == 3
    hopeless = _Method(ActorDiedError(), failures=99)
    with pytest.raises(ActorDiedError):
        adapters._call(hopeless)
    assert hopeless.calls == adapters.REPLICA_RETRIES + 1
    bad_input = _Method(ValueError("not a replica failure"), failures=1)
    with pytest.raises(ValueError):
        adapters._call(bad_input)
    assert bad_input.calls == 1  # a domain error is never sent twice
