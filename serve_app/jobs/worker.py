"""The job worker: claims queued jobs from the store and runs them through the sequential pipeline runner.

It runs in background threads (``start``/``stop``); ``run_once`` runs one job synchronously (tests, scripts).
Each job's progress, ETA, outputs and errors go back into the store, where ``JobService.events`` reads them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipelines.errors import JobCancelled, VTError
from pipelines.languages import normalize_language
from serve_app.jobs import redub
from serve_app.jobs.models import JobLogAdapter, JobRecord, JobState, job_logger, utcnow

if TYPE_CHECKING:
    from pipelines.runner import Pipeline
    from serve_app.jobs.service import JobService

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

# Shares of the overall progress: the once-per-input stages, then the rest split evenly between the target
# languages and, within one target, between its stages (which depend on the mode).
INPUT_STAGES: dict[str, float] = {"extract": 0.05, "asr": 0.30, "segment": 0.02}
TARGET_STAGES: dict[str, dict[str, float]] = {
    "dub": {"translate": 0.35, "tts": 0.45, "mux": 0.20},
    "subtitles": {"translate": 0.70, "mux": 0.30},
}
# Below 1 until the job has really succeeded (the report is written after the last mux).
_MAX_RUNNING_PROGRESS = 0.99


class ProgressTracker:
    """Maps the runner's ``(stage, fraction)`` events to an overall, non-decreasing progress and an ETA."""

    def __init__(self, n_targets: int, mode: str, *, started: float, clock: Clock, initial: float = 0.0) -> None:
        self.n_targets = max(1, n_targets)
        self.weights = TARGET_STAGES.get(mode, TARGET_STAGES["dub"])
        self.started, self.clock = started, clock
        self.progress = min(max(initial, 0.0), _MAX_RUNNING_PROGRESS)
        self.target = -1
        self.last_stage: str | None = None

    def _raw(self, stage: str, fraction: float) -> float | None:
        if stage in INPUT_STAGES:
            names = list(INPUT_STAGES)
            before = sum(INPUT_STAGES[n] for n in names[: names.index(stage)])
            return before + INPUT_STAGES[stage] * fraction
        weights = self.weights if stage in self.weights else TARGET_STAGES["dub"]
        if stage not in weights:
            return None
        if stage == "translate" and self.last_stage != "translate":
            self.target += 1  # translate opens each target language's block of stages
        index = min(max(self.target, 0), self.n_targets - 1)
        names = list(weights)
        within = sum(weights[n] for n in names[: names.index(stage)]) + weights[stage] * fraction
        share = (1.0 - sum(INPUT_STAGES.values())) / self.n_targets
        return sum(INPUT_STAGES.values()) + share * (index + min(within, 1.0))

    def update(self, stage: str, fraction: float) -> float:
        """Record one event; returns the overall progress (0–1)."""
        raw = self._raw(stage, min(max(fraction, 0.0), 1.0))
        self.last_stage = stage
        if raw is not None:
            self.progress = max(self.progress, min(raw, _MAX_RUNNING_PROGRESS))
        return self.progress

    def eta_s(self) -> float | None:
        """Seconds left, from the time spent so far; None until there is enough to go on."""
        if self.progress < 0.02:
            return None
        elapsed = self.clock() - self.started
        return round(elapsed * (1.0 - self.progress) / self.progress, 1)


class _JobHooks:
    """The ``progress`` and ``should_cancel`` callbacks for one job, throttled against the store."""

    def __init__(self, worker: JobWorker, record: JobRecord, log: JobLogAdapter) -> None:
        self.store = worker.service.store
        self.job_id, self.log = record.id, log
        self.clock = worker.clock
        self.min_update_s, self.cancel_check_s = worker.min_update_s, worker.cancel_check_s
        targets = list(dict.fromkeys(normalize_language(t) for t in record.request.target_languages))
        self.tracker = ProgressTracker(
            len(targets), record.request.mode, started=self.clock(), clock=self.clock, initial=record.progress
        )
        self.written_stage: str | None = None
        self.last_write = float("-inf")
        self.last_cancel_check = float("-inf")
        self.cancelled = False

    def progress(self, stage: str, fraction: float) -> None:
        overall = self.tracker.update(stage, fraction)
        now = self.clock()
        if stage == self.written_stage and now - self.last_write < self.min_update_s:
            return
        if stage != self.written_stage:
            self.log.info("stage %s", stage)
        self.written_stage, self.last_write = stage, now
        try:
            self.store.update(self.job_id, stage=stage, progress=overall, eta_s=self.tracker.eta_s())
        except Exception:  # progress is best effort; the job itself must not fail for it
            self.log.warning("could not record progress", exc_info=True)

    def should_cancel(self) -> bool:
        now = self.clock()
        if not self.cancelled and now - self.last_cancel_check >= self.cancel_check_s:
            self.last_cancel_check = now
            record = self.store.get(self.job_id)
            self.cancelled = record is None or record.cancel_requested
        return self.cancelled


class JobWorker:
    """Runs queued jobs: ``claim_next()``, then ``Pipeline.run`` into ``job_dir/out``, then the result.

    ``pipeline_factory`` is called once, lazily, on the first job. ``max_running_jobs`` threads run jobs
    concurrently (they share the one pipeline). ``poll_s``: how long an idle thread waits before looking again.
    """

    def __init__(
        self,
        service: JobService,
        pipeline_factory: Callable[[], Pipeline],
        *,
        max_running_jobs: int = 1,
        poll_s: float = 0.5,
        min_update_s: float = 0.25,
        cancel_check_s: float = 0.5,
        clock: Clock = time.monotonic,
    ) -> None:
        self.service = service
        self.pipeline_factory = pipeline_factory
        self.max_running_jobs = max(1, max_running_jobs)
        self.poll_s, self.min_update_s, self.cancel_check_s = poll_s, min_update_s, cancel_check_s
        self.clock = clock
        self._pipeline: Pipeline | None = None
        self._pipeline_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def pipeline(self) -> Pipeline:
        with self._pipeline_lock:
            if self._pipeline is None:
                self._pipeline = self.pipeline_factory()
            return self._pipeline

    def start(self) -> None:
        """Requeue jobs a dead process left ``running``, then start the worker threads. Idempotent."""
        if self._threads:
            return
        self.service.store.requeue_interrupted()
        self._stop.clear()
        for i in range(self.max_running_jobs):
            thread = threading.Thread(target=self._loop, name=f"vt-job-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("job worker started (%d thread(s))", self.max_running_jobs)

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking jobs and wait up to ``timeout`` seconds for the running ones to finish. A job still
        running when the process exits stays ``running`` in the store and is requeued by the next ``start``."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]
        logger.info("job worker stopped")

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_once()
            except Exception:  # a store outage must not kill the thread; try again after a pause
                logger.exception("job worker: could not claim or finish a job")
                ran = False
            if not ran:
                self._stop.wait(self.poll_s)

    def run_once(self) -> bool:
        """Claim one queued job and run it to the end in this thread. Returns False when none was queued."""
        record = self.service.store.claim_next()
        if record is None:
            return False
        self._run(record)
        return True

    def _run(self, record: JobRecord) -> None:
        log = job_logger(logger, record.id)
        log.info("running (%s -> %s)", record.request.mode, ",".join(record.request.target_languages))
        hooks = _JobHooks(self, redub.progress_record(record), log)
        out_dir = self.service.storage.job_dir(record.id) / "out"
        started = self.clock()
        extra: dict[str, object] = {}
        try:
            pipeline = self.pipeline()
            if record.redub is not None:  # edited translations: a new version of the outputs
                extra = redub.run_redub(
                    pipeline, self.service.storage, record, progress=hooks.progress, should_cancel=hooks.should_cancel
                )
            else:
                result = pipeline.run(record.request, out_dir, progress=hooks.progress, should_cancel=hooks.should_cancel)
                redub.keep_transcript(out_dir.parent, result)
        except JobCancelled:
            log.info("cancelled")
            self._finish(record.id, log, state=JobState.CANCELLED)
        except VTError as exc:
            log.warning("failed: %s: %s", exc.code, exc.message)
            self._finish(record.id, log, state=JobState.FAILED, error={"code": exc.code, "message": exc.message})
        except Exception:
            log.exception("failed with an unexpected error")
            error = {"code": "internal_error", "message": f"internal error while running job {record.id}"}
            self._finish(record.id, log, state=JobState.FAILED, error=error)
        else:
            files = out_dir.iterdir() if out_dir.is_dir() else iter(())
            outputs = sorted(p.name for p in files if p.is_file() and not p.name.startswith("."))
            log.info("succeeded in %.1f s: %s", self.clock() - started, ", ".join(outputs))
            self._finish(record.id, log, state=JobState.SUCCEEDED, outputs=outputs, progress=1.0, **extra)

    def _finish(self, job_id: str, log: JobLogAdapter, **fields: object) -> None:
        done = self.service.store.transition(job_id, {JobState.RUNNING}, finished_at=utcnow(), eta_s=None, **fields)
        if done is None:
            log.warning("the job left the running state meanwhile; its result is not recorded")
