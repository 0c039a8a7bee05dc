"""The job layer: records and their store, upload storage, the job service and the worker (no Ray, no FastAPI).

See ``docs/SERVICE.md`` for the contract the HTTP routes, the Serve app and the RabbitMQ bridge code against.
"""

from __future__ import annotations

from serve_app.jobs.models import TERMINAL, FileInfo, JobRecord, JobState
from serve_app.jobs.service import JobService
from serve_app.jobs.storage import LocalStorage, Storage
from serve_app.jobs.store import JobStore, PostgresJobStore, SQLiteJobStore, make_job_store
from serve_app.jobs.worker import JobWorker, ProgressTracker

__all__ = [
    "TERMINAL",
    "FileInfo",
    "JobRecord",
    "JobService",
    "JobState",
    "JobStore",
    "JobWorker",
    "LocalStorage",
    "PostgresJobStore",
    "ProgressTracker",
    "SQLiteJobStore",
    "Storage",
    "make_job_store",
]
