"""``build_job_service``: the one wiring of store, storage and JobService from the settings."""

from __future__ import annotations

from pathlib import Path

from configs.settings import Settings
from serve_app.jobs.storage import LocalStorage
from serve_app.jobs.store import SQLiteJobStore
from serve_app.jobs.wiring import build_job_service


def test_build_job_service_follows_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        storage={"root": str(tmp_path / "var"), "quota_bytes": 12345},
        service={"job_store_url": f"sqlite:///{tmp_path / 'jobs.db'}", "max_queued_jobs": 5, "retry_after_s": 9},
    )
    service = build_job_service(settings)
    try:
        assert isinstance(service.store, SQLiteJobStore) and service.store.path == tmp_path / "jobs.db"
        assert isinstance(service.storage, LocalStorage)
        assert service.storage.root == tmp_path / "var" and service.storage.quota_bytes == 12345
        assert (service.max_queued_jobs, service.retry_after_s) == (5, 9)
    finally:
        service.store.close()
