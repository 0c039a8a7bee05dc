"""Retention: artifacts older than ``storage.retention_ttl_s`` are removed; those of live jobs never are.

``sweep`` does one pass over the storage root and the stage cache:

* ``uploads/<file_id>/`` whose newest file is older than the TTL, and partial uploads a crash left behind
  (``uploads/.upload-*.part``);
* ``jobs/<job_id>/`` (outputs, versions, transcripts) whose newest file is older than the TTL;
* stage-cache files (``cache_dir/<input digest>/...``, the TTS clip cache) older than the TTL, then folders
  left empty.

* resumable upload sessions (``uploads/.sessions/<id>/``) idle for ``upload.session_ttl_s``, whether or not
  ``storage.retention_ttl_s`` is set (``UploadSessions.sweep_expired``).

Queued and running jobs keep their upload, their job folder and their input's stage-cache folder (a requeued
job resumes from it), whatever their age. Job records stay in the store: a job whose folder was removed
still reads as succeeded, and its downloads answer 404. ``RetentionTask`` runs ``sweep`` every
``storage.retention_interval_s`` in a daemon thread, next to the job worker (with no TTL it only expires upload
sessions).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines import cache
from serve_app.jobs.models import JobState, is_valid_id
from serve_app.jobs.storage import LocalStorage, tree_bytes

if TYPE_CHECKING:
    from configs.settings import Settings
    from serve_app.jobs.resumable import UploadSessions
    from serve_app.jobs.store import JobStore

logger = logging.getLogger(__name__)

_LIVE = (JobState.QUEUED, JobState.RUNNING)
_MAX_LIVE_JOBS = 100_000


@dataclass
class SweepResult:
    """What one sweep removed: upload, upload-session and job ids, stage-cache file count, and the bytes freed."""

    uploads: list[str] = field(default_factory=list)
    upload_sessions: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    cache_files: int = 0
    bytes_freed: int = 0


def newest_mtime(path: Path) -> float:
    """The latest modification time of ``path`` and everything under it (seconds since the epoch)."""
    latest = path.lstat().st_mtime
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            try:
                latest = max(latest, os.lstat(os.path.join(dirpath, name)).st_mtime)
            except OSError:
                continue
    return latest


def _remove_tree(path: Path, result: SweepResult) -> None:
    size = tree_bytes(path)
    shutil.rmtree(path, ignore_errors=True)
    result.bytes_freed += size


class _Digests:
    """sha256 of live inputs, remembered by (path, size, mtime) so a sweep does not re-read big videos."""

    def __init__(self) -> None:
        self.memo: dict[tuple[str, int, float], str] = {}

    def of(self, path: Path) -> str | None:
        try:
            st = path.stat()
        except OSError:
            return None
        k = (str(path), st.st_size, st.st_mtime)
        if k not in self.memo:
            self.memo[k] = cache.file_digest(path)[:24]  # StageCache's folder name
        return self.memo[k]


def sweep(
    storage: LocalStorage,
    store: JobStore,
    *,
    ttl_s: float | None,
    cache_dir: Path | None = None,
    now: float | None = None,
    digests: _Digests | None = None,
    sessions: UploadSessions | None = None,
) -> SweepResult:
    """Remove what is older than ``ttl_s`` seconds (None: nothing but expired upload ``sessions``; see the module
    docstring); ``now`` defaults to the wall clock. Errors on single files are skipped (the next sweep tries
    again); a store error propagates."""
    now = time.time() if now is None else now
    result = SweepResult()
    if sessions is not None:
        result.upload_sessions, result.bytes_freed = sessions.sweep_expired(now)
    if ttl_s is None:
        return result
    cutoff = now - ttl_s
    live = store.list(states=_LIVE, limit=_MAX_LIVE_JOBS)
    live_jobs = {r.id for r in live}
    inputs = [Path(r.request.input) for r in live if r.request.input]
    live_uploads = {r.file_id for r in live if r.file_id} | {p.parent.name for p in inputs}
    if storage.uploads_dir.is_dir():
        for entry in storage.uploads_dir.iterdir():
            try:
                if entry.name.startswith(".upload-") and entry.is_file() and entry.stat().st_mtime < cutoff:
                    result.bytes_freed += entry.stat().st_size
                    entry.unlink(missing_ok=True)
                elif is_valid_id(entry.name) and entry.name not in live_uploads and newest_mtime(entry) < cutoff:
                    _remove_tree(entry, result)
                    result.uploads.append(entry.name)
            except OSError:
                continue
    if storage.jobs_dir.is_dir():
        for entry in storage.jobs_dir.iterdir():
            try:
                if is_valid_id(entry.name) and entry.name not in live_jobs and newest_mtime(entry) < cutoff:
                    _remove_tree(entry, result)
                    result.jobs.append(entry.name)
            except OSError:
                continue
    if cache_dir is not None and Path(cache_dir).is_dir():
        memo = digests or _Digests()
        keep = {d for d in (memo.of(p) for p in inputs) if d}
        _sweep_cache(Path(cache_dir), keep, cutoff, result)
    if result.uploads or result.jobs or result.cache_files:
        logger.info(
            "retention: removed %d upload(s), %d job folder(s), %d cache file(s); %d bytes freed",
            len(result.uploads), len(result.jobs), result.cache_files, result.bytes_freed,
        )  # fmt: skip
    return result


def _sweep_cache(root: Path, keep: set[str], cutoff: float, result: SweepResult) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in keep]  # a live job's stage cache stays whole
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
                if st.st_mtime < cutoff:
                    os.unlink(path)
                    result.cache_files += 1
                    result.bytes_freed += st.st_size
            except OSError:
                continue
    for dirpath, _dirnames, _filenames in os.walk(root, topdown=False):
        if Path(dirpath) != root:
            try:
                os.rmdir(dirpath)  # only succeeds when empty
            except OSError:
                continue


class RetentionTask:
    """Runs ``sweep`` every ``interval_s`` seconds in a daemon thread (the first pass right at ``start``)."""

    def __init__(
        self,
        storage: LocalStorage,
        store: JobStore,
        *,
        ttl_s: float | None,
        interval_s: float,
        cache_dir: Path | None = None,
        sessions: UploadSessions | None = None,
    ) -> None:
        self.storage, self.store, self.sessions = storage, store, sessions
        self.ttl_s, self.interval_s, self.cache_dir = ttl_s, interval_s, cache_dir
        self._digests = _Digests()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> SweepResult:
        return sweep(
            self.storage, self.store, ttl_s=self.ttl_s, cache_dir=self.cache_dir, digests=self._digests,
            sessions=self.sessions,
        )  # fmt: skip

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="vt-retention", daemon=True)
        self._thread.start()
        what = f"artifacts older than {self.ttl_s:.0f} s" if self.ttl_s is not None else "nothing but expired uploads"
        logger.info("retention: removing %s, every %.0f s", what, self.interval_s)

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a store outage must not end the task
                logger.warning("retention sweep failed", exc_info=True)
            self._stop.wait(self.interval_s)


def start_retention(settings: Settings, store: JobStore, storage: LocalStorage) -> RetentionTask:
    """A started RetentionTask: it expires idle upload sessions (``upload.session_ttl_s``) and, when
    ``storage.retention_ttl_s`` is set, removes the artifacts older than that."""
    from serve_app.jobs.wiring import build_upload_sessions  # wiring imports the job service: import late

    s = settings.storage
    task = RetentionTask(
        storage, store, ttl_s=s.retention_ttl_s, interval_s=s.retention_interval_s, cache_dir=Path(s.cache_dir),
        sessions=build_upload_sessions(settings, storage),
    )  # fmt: skip
    task.start()
    return task
