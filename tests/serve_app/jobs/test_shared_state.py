"""State outside the processes, as the RayService keeps it (cluster/kuberay/shared-state.yaml): two processes
share nothing but the PostgreSQL job store and one storage folder (the ReadWriteMany volume's stand-in).

Process A is an ingress with no job runner (uvicorn, ``get_application()`` from the environment, what an
ingress pod is); process B is the Serve app (the CPU profile) on the session's Ray cluster, whose JobRunner
claims the job. The upload and the job go in through A, B runs the job, and A serves the outputs B wrote."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_video, wait_healthy
from tests.serve_app.conftest import free_port, wait_job

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "configs"


@pytest.fixture
def shared_store(postgres_url: str) -> Iterator[str]:
    """A job store URL on the real PostgreSQL, in a schema of its own (other runs share the server)."""
    import psycopg

    schema = f"vt_shared_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def ingress_a(shared_store: str, tmp_path: Path) -> Iterator[str]:
    """Process A: the API only, settings from the environment as a pod gets them (VT_SERVICE__JOB_STORE_URL,
    VT_STORAGE__ROOT)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VT_SERVICE__JOB_STORE_URL": shared_store,
           "VT_STORAGE__ROOT": str(tmp_path / "shared"), "VT_LOG_DIR": str(tmp_path / "log-a")}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "serve_app.api.main:get_application",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=tmp_path,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, "ingress A")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_upload_through_one_process_job_finished_by_the_other(
    ray_cluster: None, ingress_a: str, shared_store: str, tmp_path: Path, test_mp3: Path
) -> None:
    from ray import serve

    from serve_app.server import start_app

    video = make_video(tmp_path / "clip.mp4", test_mp3, 3.0)
    with httpx.Client(base_url=ingress_a, timeout=60) as a:
        with open(video, "rb") as fh:
            up = a.post("/files/upload", files={"file": ("clip.mp4", fh, "video/mp4")})
        assert up.status_code == 201, up.text
        file_id = up.json()["data"]["file_id"]
        request = {"file_id": file_id, "target_languages": ["es"], "mode": "subtitles", "source_language": "en"}
        r = a.post("/jobs", json=request)
        assert r.status_code == 202, r.text
        job_id = r.json()["data"]["job_id"]
        time.sleep(1.0)
        assert a.get(f"/jobs/{job_id}").json()["data"]["state"] == "queued"  # A runs no jobs

        serve.shutdown()  # a Serve instance left by another module would keep its own HTTP port
        shared = {"storage": {"root": str(tmp_path / "shared"), "cache_dir": str(tmp_path / "cache-b")},
                  "service": {"job_store_url": shared_store}}  # fmt: skip
        info = start_app(CONFIGS / "serve.cpu.yaml", host="127.0.0.1", port=free_port(8000),
                         app_args={"settings": shared})  # fmt: skip
        try:
            job = wait_job(a, job_id, timeout_s=300)  # followed through A: the job store is shared
            with httpx.Client(base_url=info.ui_url.rstrip("/"), timeout=60) as b:
                assert b.get(f"/files/{file_id}").status_code == 200  # B sees A's upload
        finally:
            serve.shutdown()
        assert job["state"] == "succeeded", job
        assert not (tmp_path / "jobs").exists()  # nothing in A's working folder: all on the shared root
        srt = a.get(job["output_urls"]["clip.es.srt"])  # written by B, served by A
        assert srt.status_code == 200 and "-->" in srt.text
        assert a.get(job["output_urls"]["clip.report.json"]).status_code == 200
