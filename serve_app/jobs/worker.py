"""The job worker: claims queued jobs from the store and runs them through the sequential pipeline runner.

It runs in background threads (``start``/``stop``); ``run_once`` runs one job synchronously (tests, scripts).
Each job's progress, ETA, outputs and errors go back into the store, where ``JobService.events`` reads them.

Leases: every worker has a ``worker_id``; a claimed job carries it, and a heartbeat thread renews the lease
every ``lease_s / 3`` seconds and requeues running jobs whose lease has expired (their worker died). A worker
whose job was taken over notices (heartbeat or a refused write), stops at the next stage and records nothing.
Several workers (Serve replicas, bridge instances) may therefore share one store; leases are stamped and
compared on the store's clock, so the workers' host clocks need not agree. ``run_once`` does not heartbeat
(only its progress writes renew the lease).

Outputs: each attempt runs in a folder of its own (``outputs.attempt``) and is published in one step
(``outputs.publish``: one symlink swap) inside the store's fence, ``finish_if_held``: a worker that lost its
lease between its last stage and the publish publishes nothing, and its folder goes with it.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import JobCancelled, VTError
from pipelines.languages import normalize_targets
from serve_app.errors import InsufficientStorage
from serve_app.jobs import outputs, redub
from serve_app.jobs.models import JobLogAdapter, JobRecord, JobState, job_logger, utcnow
from serve_app.jobs.store import STORE_NOW

if TYPE_CHECKING:
    from pipelines.runner import Pipeline
    from serve_app.jobs.service import JobService

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

# Shares of the overall progress: the once-per-input stages, then the rest split evenly between the target
# languages and, within one target, between its stages (which depend on the mode).
INPUT_STAGES: dict[str, float] = {"extract": 0.05, "asr": 0.30, "segment": 0.02}
# Input stages a job may add (diarization on; a dub over the separated background), each placed after the stage
# named and given a share taken from ASR's, so the input stages keep their 0.37 in all (the page's bars,
# web/jobs.js, rely on it). Separation runs at about 0.15 x real time on 2 cores, diarization at 0.02-0.03.
OPTIONAL_INPUT_STAGES: dict[str, tuple[str, float]] = {"diarize": ("asr", 0.03), "separate": ("segment", 0.10)}
TARGET_STAGES: dict[str, dict[str, float]] = {
    "dub": {"translate": 0.35, "tts": 0.45, "mux": 0.20},
    "subtitles": {"translate": 0.70, "mux": 0.30},
}
# A URL input's download fills the extract stage's share (it comes first; the progress never goes back), and
# source subtitles stand in for ASR.
FETCH_SHARE = 0.04
STAGE_ALIASES = {"subtitles": "asr"}
# Below 1 until the job has really succeeded (the report is written after the last mux).
_MAX_RUNNING_PROGRESS = 0.99
DEFAULT_LEASE_S = 20.0


def default_worker_id() -> str:
    """``host-pid-random``: unique per JobWorker object, readable in the job record."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class ProgressTracker:
    """Maps the runner's ``(stage, fraction, language)`` events to an overall, non-decreasing progress and an ETA.

    ``targets``: the job's normalised target languages, in the order the runner runs them; ``extra``: the
    OPTIONAL_INPUT_STAGES this job runs (``diarize``, ``separate``), each with a share of its own.
    """

    def __init__(
        self, targets: list[str], mode: str, *, started: float, clock: Clock, initial: float = 0.0,
        extra: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        shares = {**INPUT_STAGES, **{name: OPTIONAL_INPUT_STAGES[name][1] for name in extra}}
        shares["asr"] -= sum(OPTIONAL_INPUT_STAGES[name][1] for name in extra)
        names = list(INPUT_STAGES)
        for name in sorted(extra, key=list(OPTIONAL_INPUT_STAGES).index):
            names.insert(names.index(OPTIONAL_INPUT_STAGES[name][0]) + 1, name)
        self.inputs = {name: shares[name] for name in names}
        self.targets = list(targets)
        self.n_targets = max(1, len(self.targets))
        self.weights = TARGET_STAGES.get(mode, TARGET_STAGES["dub"])
        self.started, self.clock = started, clock
        self.progress = min(max(initial, 0.0), _MAX_RUNNING_PROGRESS)

    def _raw(self, stage: str, fraction: float, language: str | None) -> float | None:
        if stage == "fetch":
            return FETCH_SHARE * fraction
        stage = STAGE_ALIASES.get(stage, stage)
        if stage in self.inputs:
            names = list(self.inputs)
            before = sum(self.inputs[n] for n in names[: names.index(stage)])
            return before + self.inputs[stage] * fraction
        weights = self.weights if stage in self.weights else TARGET_STAGES["dub"]
        if stage not in weights:
            return None
        index = self.targets.index(language) if language in self.targets else 0
        names = list(weights)
        within = sum(weights[n] for n in names[: names.index(stage)]) + weights[stage] * fraction
        share = (1.0 - sum(self.inputs.values())) / self.n_targets
        return sum(self.inputs.values()) + share * (index + min(within, 1.0))

    def update(self, stage: str, fraction: float, language: str | None = None) -> float:
        """Record one event (``language``: the target of a per-target stage); returns the overall progress (0–1)."""
        raw = self._raw(stage, min(max(fraction, 0.0), 1.0), language)
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
        self.worker_id = worker.worker_id
        self.check_quota: Callable[[], object] | None = getattr(worker.service.storage, "check_quota", None)
        self.job_id, self.log = record.id, log
        self.clock = worker.clock
        self.min_update_s, self.cancel_check_s = worker.min_update_s, worker.cancel_check_s
        service, request = worker.service, record.request
        extra = ("diarize",) if service.diarize.enabled else ()
        if request.mode == "dub" and (request.background or service.default_background) == "separate":
            extra += ("separate",)
        self.tracker = ProgressTracker(
            normalize_targets(request.target_languages), request.mode, started=self.clock(), clock=self.clock,
            initial=record.progress, extra=extra,
        )  # fmt: skip
        self.written_stage: str | None = None
        self.last_write = float("-inf")
        self.last_cancel_check = float("-inf")
        self.cancelled = False
        self.lost = False  # the lease went to another worker (or back to the queue): write nothing more

    def progress(self, stage: str, fraction: float, language: str | None) -> None:
        overall = self.tracker.update(stage, fraction, language)
        if self.check_quota is not None and (stage != self.written_stage or fraction >= 1.0):
            self.check_quota()  # InsufficientStorage fails the job (the runner removes its staging folder)
        now = self.clock()
        if self.lost or (stage == self.written_stage and now - self.last_write < self.min_update_s):
            return
        if stage != self.written_stage:
            self.log.info("stage %s", stage)
        self.written_stage, self.last_write = stage, now
        try:
            done = self.store.transition(
                self.job_id, {JobState.RUNNING}, if_worker_id=self.worker_id,
                stage=stage, progress=overall, eta_s=self.tracker.eta_s(), heartbeat_at=STORE_NOW,
            )  # fmt: skip
        except Exception:  # progress is best effort; the job itself must not fail for it
            self.log.warning("could not record progress", exc_info=True)
            return
        if done is None:
            self.lose("the job is no longer running under this worker")

    def lose(self, why: str) -> None:
        if not self.lost:
            self.lost = True
            self.log.warning("lease lost (%s); this run stops at the next stage and records nothing", why)

    def should_cancel(self) -> bool:
        now = self.clock()
        if not self.lost and not self.cancelled and now - self.last_cancel_check >= self.cancel_check_s:
            self.last_cancel_check = now
            record = self.store.get(self.job_id)
            self.cancelled = record is None or record.cancel_requested
            if record is not None and (record.state is not JobState.RUNNING or record.worker_id != self.worker_id):
                self.lose(f"the job is {record.state.value} under worker {record.worker_id}")
        return self.cancelled or self.lost


class JobWorker:
    """Runs queued jobs: ``claim_next()``, then ``Pipeline.run`` into an attempt folder, then publishes it as
    ``job_dir/out`` and records the result, both only while it still holds the job.

    ``pipeline_factory`` is called once, lazily, on the first job. ``max_running_jobs`` threads run jobs
    concurrently (they share the one pipeline). ``poll_s``: how long an idle thread waits before looking again.
    ``lease_s``: a job whose heartbeat is older than this is requeued (by this worker or any other on the store).
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
        lease_s: float = DEFAULT_LEASE_S,
        worker_id: str | None = None,
    ) -> None:
        self.service = service
        self.pipeline_factory = pipeline_factory
        self.max_running_jobs = max(1, max_running_jobs)
        self.poll_s, self.min_update_s, self.cancel_check_s = poll_s, min_update_s, cancel_check_s
        self.clock = clock
        self.lease_s = lease_s
        self.worker_id = worker_id or default_worker_id()
        self._pipeline: Pipeline | None = None
        self._pipeline_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lease_thread: threading.Thread | None = None
        self._active: dict[str, _JobHooks] = {}
        self._active_lock = threading.Lock()

    def pipeline(self) -> Pipeline:
        with self._pipeline_lock:
            if self._pipeline is None:
                self._pipeline = self.pipeline_factory()
            return self._pipeline

    def start(self) -> None:
        """Requeue jobs whose lease expired (a dead process left them ``running``), then start the worker
        threads and the heartbeat thread (which keeps requeueing expired jobs every ``lease_s / 3``). Idempotent."""
        if self._threads:
            return
        self.service.store.requeue_interrupted(stale_after_s=self.lease_s)
        self._stop.clear()
        for i in range(self.max_running_jobs):
            thread = threading.Thread(target=self._loop, name=f"vt-job-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self._lease_thread is None or not self._lease_thread.is_alive():
            self._lease_thread = threading.Thread(target=self._lease_loop, name="vt-job-lease", daemon=True)
            self._lease_thread.start()
        logger.info(
            "job worker %s started (%d thread(s), lease %.0f s)", self.worker_id, self.max_running_jobs, self.lease_s
        )

    def stop(self, timeout: float | None = None, *, requeue: bool = False) -> None:
        """Stop taking jobs and wait up to ``timeout`` seconds for the running ones to finish. With ``requeue``
        this worker's running jobs go back to the queue at once (a graceful shutdown: another worker, or the
        next start, resumes them from the stage cache) and its threads drop them at the next stage. Without
        it, a job still running when the process exits is requeued once its lease expires."""
        self._stop.set()
        if requeue:
            self.release()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]
        logger.info("job worker %s stopped", self.worker_id)

    def release(self) -> list[str]:
        """Put this worker's running jobs back in the queue now; returns their ids."""
        requeued = self.service.store.requeue_interrupted(worker_id=self.worker_id)
        with self._active_lock:
            hooks = [self._active[j] for j in requeued if j in self._active]
        for h in hooks:
            h.lose("released by this worker's shutdown")
        return requeued

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def heartbeat(self) -> None:
        """Renew the leases of this worker's running jobs (flagging the ones it lost), then requeue any job
        whose lease expired. The heartbeat thread calls this every ``lease_s / 3`` seconds."""
        with self._active_lock:
            active = dict(self._active)
        if active:
            held = set(self.service.store.heartbeat(self.worker_id, active))
            for job_id, hooks in active.items():
                if job_id not in held and not hooks.lost:
                    current = self.service.store.get(job_id)
                    if current is None or current.state is JobState.RUNNING:  # not merely finished meanwhile
                        hooks.lose("its heartbeat was refused")
        if not self._stop.is_set():
            self.service.store.requeue_interrupted(stale_after_s=self.lease_s)

    def _lease_loop(self) -> None:
        interval = self.lease_s / 3
        while not (self._stop.is_set() and not self.running):
            if self._stop.wait(interval):
                time.sleep(min(interval, 1.0))  # stopping: keep beating while job threads still finish
            try:
                self.heartbeat()
            except Exception:  # a store outage must not kill the thread
                logger.warning("job worker: heartbeat failed", exc_info=True)

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
        record = self.service.store.claim_next(self.worker_id)
        if record is None:
            return False
        log = job_logger(logger, record.id)
        hooks = _JobHooks(self, redub.progress_record(record), log)
        with self._active_lock:
            self._active[record.id] = hooks
        try:
            self._run(record, hooks, log)
        finally:
            with self._active_lock:
                self._active.pop(record.id, None)
        return True

    def _run(self, record: JobRecord, hooks: _JobHooks, log: JobLogAdapter) -> None:
        log.info(
            "running (%s -> %s) on %s", record.request.mode, ",".join(record.request.target_languages), self.worker_id
        )
        job_dir = self.service.storage.job_dir(record.id)
        started = self.clock()
        try:
            pipeline = self.pipeline()
            if hooks.check_quota is not None:
                hooks.check_quota()  # a full store fails the job before any work
            plan = record.redub.get("spec") if record.redub is not None else None  # names a re-dub's folder
            with outputs.attempt(job_dir, record.output_version, keep=redub.own_prefix(record)) as folder:
                if record.redub is not None:  # edited translations: a new version of the outputs
                    made, extra = redub.run_redub(
                        pipeline, self.service.storage, record, folder,
                        progress=hooks.progress, should_cancel=hooks.should_cancel,
                    )  # fmt: skip
                else:
                    result = pipeline.run(
                        record.request, folder, progress=hooks.progress, should_cancel=hooks.should_cancel
                    )
                    redub.keep_transcript(job_dir, result)
                    made, extra = folder, {}
                if hooks.check_quota is not None:
                    hooks.check_quota()  # over the quota: the job fails and its folder goes, nothing published
                self._publish(record, job_dir, made, extra, log, started, plan)
        except JobCancelled:
            if hooks.lost:
                log.info("dropped: another worker (or the queue) has the job now")
                return
            log.info("cancelled")
            self._finish(record.id, log, state=JobState.CANCELLED)
        except VTError as exc:
            log.warning("failed: %s: %s", exc.code, exc.message)
            self._finish(record.id, log, state=JobState.FAILED, error={"code": exc.code, "message": exc.message})
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                self._fail_internal(record.id, log)
                return
            log.warning("failed: the disk is full")
            error = {"code": InsufficientStorage.code, "message": "not enough disk space to write the job's outputs"}
            self._finish(record.id, log, state=JobState.FAILED, error=error)
        except Exception:  # noqa: BLE001  (logged with its traceback by _fail_internal)
            self._fail_internal(record.id, log)

    def _publish(
        self,
        record: JobRecord,
        job_dir: Path,
        made: Path,
        extra: dict[str, Any],
        log: JobLogAdapter,
        started: float,
        plan: str | None,
    ) -> None:
        """Publish ``made`` as the job's outputs and record the success, in the store's fence: only if this
        worker still holds the job (checked with the job's row locked, right before the swap)."""
        version = int(extra.get("output_version", record.output_version))
        previous = record.output_version if record.redub is not None else None
        names = outputs.names(made)
        done = self.service.store.finish_if_held(
            record.id, self.worker_id,
            publish=lambda: outputs.publish(job_dir, made, version, previous=previous, tag=plan),
            state=JobState.SUCCEEDED, outputs=names, progress=1.0, finished_at=utcnow(), eta_s=None, **extra,
        )  # fmt: skip
        if done is None:
            log.warning("lease lost before publishing: another worker (or the queue) has the job; nothing published")
            return
        log.info("succeeded in %.1f s: %s", self.clock() - started, ", ".join(names))

    def _fail_internal(self, job_id: str, log: JobLogAdapter) -> None:
        log.exception("failed with an unexpected error")
        error = {"code": "internal_error", "message": f"internal error while running job {job_id}"}
        self._finish(job_id, log, state=JobState.FAILED, error=error)

    def _finish(self, job_id: str, log: JobLogAdapter, **fields: object) -> None:
        done = self.service.store.transition(
            job_id, {JobState.RUNNING}, if_worker_id=self.worker_id, finished_at=utcnow(), eta_s=None, **fields
        )
        if done is None:
            log.warning("the job left the running state or this worker meanwhile; its result is not recorded")
