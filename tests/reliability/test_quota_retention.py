"""The disk fills (a storage quota) and retention (a TTL): real storage, store, pipeline and HTTP app; only
the model stages are fakes (the quota and the sweep are what is under test, not the models)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from configs.settings import Settings
from pipelines.cache import file_digest
from pipelines.schema import JobRequest
from serve_app.api.services import Services
from serve_app.errors import InsufficientStorage
from serve_app.jobs import JobState, JobWorker, LocalStorage, make_job_store
from serve_app.jobs.retention import RetentionTask, start_retention, sweep
from tests.serve_app.conftest import FakeASR, FakeTranslator, FakeTTS, make_services, make_settings

DAY_S = 86_400.0


def build_services(settings: Settings) -> Services:
    settings.service.max_queued_jobs = 8
    return make_services(settings, {"asr": FakeASR(), "translator": FakeTranslator(), "tts": FakeTTS()})


@pytest.fixture
def quota_app(tmp_path: Path, jfk_video: Path) -> Iterator[tuple[Any, Services]]:
    """The HTTP app over storage whose quota fits ONE upload of the test video and a little more."""
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    quota = int(jfk_video.stat().st_size * 1.5)
    services = build_services(make_settings(tmp_path / "var", storage={"quota_bytes": quota}))
    with TestClient(
        get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
    ) as client:
        yield client, services
    services.jobs.store.close()


def post_video(client: Any, path: Path, url: str = "/files/upload", **fields: str) -> Any:
    with open(path, "rb") as fh:
        return client.post(url, files={"file": ("talk.mp4", fh, "video/mp4")}, data=fields)


def leftovers(storage: LocalStorage) -> list[str]:
    return sorted(p.name for p in storage.uploads_dir.iterdir()) if storage.uploads_dir.is_dir() else []


def test_uploads_past_the_quota_get_507_and_leave_nothing(quota_app: tuple[Any, Services], jfk_video: Path) -> None:
    client, services = quota_app
    storage = services.storage
    assert isinstance(storage, LocalStorage)
    first = post_video(client, jfk_video)
    assert first.status_code == 201, first.text
    kept = leftovers(storage)
    for url, fields in (("/files/upload", {}), ("/jobs/upload", {"target_languages": "es"})):
        r = post_video(client, jfk_video, url, **fields)
        assert r.status_code == 507, r.text
        body = r.json()
        assert body["status"] == "error" and body["error"]["code"] == "insufficient_storage"
        assert "quota" in body["message"] and "Traceback" not in r.text
        assert leftovers(storage) == kept  # no partial file, no metadata
    assert services.jobs.store.count({JobState.QUEUED}) == 0
    assert client.get("/healthz").status_code == 200  # still up


async def _slow_chunks(data: bytes, piece: int = 16_384) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        await asyncio.sleep(0)  # interleave with the other upload
        yield data[i : i + piece]


def test_parallel_uploads_cannot_pass_the_quota_together(tmp_path: Path, jfk_video: Path) -> None:
    """Checked while streaming, with the bytes of uploads in flight reserved: two at once, room for one."""
    data = jfk_video.read_bytes()
    storage = LocalStorage(tmp_path / "var", quota_bytes=int(len(data) * 1.5))

    async def both() -> list[Any]:
        return await asyncio.gather(
            *(
                storage.save_upload(_slow_chunks(data), filename="a.mp4", content_type="video/mp4", max_bytes=10**8)
                for _ in range(2)
            ),
            return_exceptions=True,
        )

    results = asyncio.run(both())
    # Sizes are unknown up front, so when both are half-way neither may finish; the quota holds either way.
    assert sum(isinstance(r, InsufficientStorage) for r in results) >= 1, results
    stored = [r.file_id for r in results if not isinstance(r, BaseException)]
    assert len(stored) <= 1 and leftovers(storage) == stored  # no partial file of the refused one
    assert storage.usage_bytes() <= storage.quota_bytes  # type: ignore[operator]


def _job(services: Services, file_id: str) -> str:
    request = JobRequest(input="", target_languages=["es"], source_language="en", mode="subtitles")
    return services.jobs.submit(request, file_id=file_id).id


def test_a_job_whose_outputs_pass_the_quota_fails_cleanly(tmp_path: Path, jfk_video: Path) -> None:
    """The upload fits; its outputs (a muxed copy of the video) would not: the job fails with a clear error,
    no output and no staging folder is left, and the worker goes on with the next job."""
    from pipelines.runner import Pipeline

    size = jfk_video.stat().st_size
    settings = make_settings(tmp_path / "var", storage={"quota_bytes": int(size * 1.5)})
    services = build_services(settings)
    storage = services.storage
    assert isinstance(storage, LocalStorage)
    pipeline = Pipeline(settings, asr=FakeASR(), translator=FakeTranslator(), tts=FakeTTS())
    worker = JobWorker(services.jobs, lambda: pipeline)

    async def chunks() -> AsyncIterator[bytes]:
        yield jfk_video.read_bytes()

    info = asyncio.run(storage.save_upload(chunks(), filename="t.mp4", content_type="video/mp4", max_bytes=10**8))
    job_id = _job(services, info.file_id)
    assert worker.run_once()
    failed = services.jobs.get(job_id)
    assert failed.state is JobState.FAILED and failed.error is not None, failed
    assert failed.error["code"] == "insufficient_storage" and "quota" in failed.error["message"]
    assert not (storage.job_dir(job_id) / "out").exists()  # nothing published
    attempts = storage.job_dir(job_id) / "outputs"
    assert not attempts.exists() or list(attempts.iterdir()) == []  # and no attempt folder left

    storage.quota_bytes = None  # room again: the same worker runs the next job to the end
    again = _job(services, info.file_id)
    assert worker.run_once()
    assert services.jobs.get(again).state is JobState.SUCCEEDED
    services.jobs.store.close()


def test_a_full_store_fails_a_job_before_any_work(tmp_path: Path, jfk_video: Path) -> None:
    settings = make_settings(tmp_path / "var")
    services = build_services(settings)
    storage = services.storage
    assert isinstance(storage, LocalStorage)

    async def chunks() -> AsyncIterator[bytes]:
        yield jfk_video.read_bytes()

    info = asyncio.run(storage.save_upload(chunks(), filename="t.mp4", content_type="video/mp4", max_bytes=10**8))
    job_id = _job(services, info.file_id)
    storage.quota_bytes = storage.usage_bytes() - 1  # someone else filled it meanwhile
    asr = FakeASR()
    worker = JobWorker(services.jobs, lambda: __import__("pipelines.runner").runner.Pipeline(settings, asr=asr))
    assert worker.run_once()
    done = services.jobs.get(job_id)
    assert done.state is JobState.FAILED and done.error is not None and done.error["code"] == "insufficient_storage"
    assert asr.calls == []
    services.jobs.store.close()


# ----------------------------------------------------------------------------- retention


def age(path: Path, seconds: float) -> None:
    """Move the modification time of ``path`` and everything under it ``seconds`` into the past."""
    then = time.time() - seconds
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (then, then), follow_symlinks=False)


def test_retention_removes_old_artifacts_but_never_those_of_live_jobs(tmp_path: Path, jfk_video: Path) -> None:
    settings = make_settings(tmp_path / "var")
    services = build_services(settings)
    storage, store = services.storage, services.jobs.store
    assert isinstance(storage, LocalStorage)
    cache_dir = settings.storage.cache_dir

    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        yield data

    def upload(data: bytes) -> str:
        info = asyncio.run(
            storage.save_upload(chunks(data), filename="v.mp4", content_type="video/mp4", max_bytes=10**8)
        )
        return info.file_id

    video = jfk_video.read_bytes()
    old_upload, live_upload, fresh_upload = upload(video), upload(video + b"\0"), upload(video + b"\0\0")
    finished, queued, running = _job(services, old_upload), _job(services, live_upload), _job(services, live_upload)
    store.transition(finished, {JobState.QUEUED}, state=JobState.SUCCEEDED)
    store.transition(running, {JobState.QUEUED}, state=JobState.RUNNING)
    for job_id in (finished, queued, running):
        (storage.job_dir(job_id) / "out").mkdir(parents=True)
        (storage.job_dir(job_id) / "out" / "x.srt").write_text("1\n")
    live_digest = file_digest(storage.get_file(live_upload).path)[:24]
    old_digest = file_digest(storage.get_file(old_upload).path)[:24]
    for d in (live_digest, old_digest):
        (cache_dir / d).mkdir(parents=True)
        (cache_dir / d / "asr.k.json").write_text("{}")
    (cache_dir / "tts").mkdir()
    (cache_dir / "tts" / "old.wav").write_bytes(b"RIFF")
    (cache_dir / "tts" / "new.wav").write_bytes(b"RIFF")
    part = storage.uploads_dir / ".upload-0123.part"  # a crash in the middle of an upload
    part.write_bytes(b"half")
    for path in (
        storage.uploads_dir / old_upload, storage.uploads_dir / live_upload, part,
        storage.job_dir(finished), storage.job_dir(queued), storage.job_dir(running),
        cache_dir / live_digest, cache_dir / old_digest, cache_dir / "tts" / "old.wav",
    ):  # fmt: skip
        age(path, 2 * DAY_S)

    result = sweep(storage, store, ttl_s=DAY_S, cache_dir=cache_dir)

    assert result.uploads == [old_upload] and result.jobs == [finished]
    assert result.cache_files == 2 and result.bytes_freed > len(video)
    assert sorted(p.name for p in storage.uploads_dir.iterdir()) == sorted([live_upload, fresh_upload])
    assert sorted(p.name for p in storage.jobs_dir.iterdir()) == sorted([queued, running])
    assert (cache_dir / live_digest / "asr.k.json").is_file() and not (cache_dir / old_digest).exists()
    assert sorted(p.name for p in (cache_dir / "tts").iterdir()) == ["new.wav"]
    assert store.get(finished).state is JobState.SUCCEEDED  # type: ignore[union-attr]  # the record stays
    assert sweep(storage, store, ttl_s=DAY_S, cache_dir=cache_dir).bytes_freed == 0  # nothing more to do
    store.close()


def test_the_retention_task_runs_by_itself(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var", storage={"retention_ttl_s": 60.0, "retention_interval_s": 0.1})
    storage = LocalStorage(settings.storage.root)
    store = make_job_store(settings.service.job_store_url)
    idle = start_retention(make_settings(tmp_path / "other"), store, storage)  # no TTL: only upload sessions expire
    idle.stop()
    assert idle.ttl_s is None and idle.sessions is not None
    stale = storage.jobs_dir / ("a" * 32)
    stale.mkdir(parents=True)
    (stale / "report.json").write_text("{}")
    task = start_retention(settings, store, storage)
    assert isinstance(task, RetentionTask)
    try:
        time.sleep(0.3)
        assert stale.exists()  # younger than the TTL
        age(stale, 120)
        deadline = time.monotonic() + 10
        while stale.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not stale.exists()
    finally:
        task.stop()
        store.close()
