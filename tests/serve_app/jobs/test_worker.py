"""JobWorker with a fake pipeline (every outcome), and once end to end with the real one."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines.errors import JobCancelled, NoAudioStream
from pipelines.runner import ProgressFn
from pipelines.schema import JobRequest
from serve_app.jobs.models import JobRecord, JobState, utcnow
from serve_app.jobs.service import JobService
from serve_app.jobs.storage import LocalStorage
from serve_app.jobs.store import JobStore
from serve_app.jobs.worker import JobWorker, ProgressTracker
from tests.conftest import make_video

Hook = Callable[[str], None]


class FakePipeline:
    """Honours ``Pipeline.run``: checks for cancel at each stage boundary, reports (stage, fraction, language),
    and writes its outputs only at the end. ``fail`` is raised inside the ``fail_at`` stage."""

    def __init__(
        self, *, fail: BaseException | None = None, fail_at: str = "asr", on_stage: Hook | None = None, mark: str = "x"
    ) -> None:
        self.fail, self.fail_at = fail, fail_at
        self.on_stage = on_stage or (lambda stage: None)
        self.mark = mark  # what every output file holds: tells whose run made it
        self.runs = 0
        self.out_dirs: list[Path] = []

    def run(
        self, request: JobRequest, out_dir: Path, *, progress: ProgressFn, should_cancel: Any
    ) -> object:
        self.runs += 1
        self.out_dirs.append(out_dir)
        stages: list[tuple[str, str | None]] = [("extract", None), ("asr", None), ("segment", None)]
        for lang in request.target_languages:
            per_target = ["translate", "tts", "mux"] if request.mode == "dub" else ["translate", "mux"]
            stages += [(stage, lang) for stage in per_target]
        for stage, lang in stages:
            if should_cancel():
                raise JobCancelled("the job was cancelled")
            progress(stage, 0.0, lang)
            self.on_stage(stage)
            if self.fail is not None and stage == self.fail_at:
                raise self.fail
            for i in range(1, 5):
                progress(stage, i / 4, lang)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = Path(request.input).stem
        for lang in request.target_languages:
            for ext in ("mp4", "srt", "vtt"):
                (out_dir / f"{stem}.{lang}.{ext}").write_text(self.mark)
        (out_dir / f"{stem}.report.json").write_text(self.mark)
        return object()


@pytest.fixture
def service(store: JobStore, storage: LocalStorage) -> JobService:
    return JobService(store, storage, max_queued_jobs=10)


def submit(service: JobService, test_mp3: Path, **fields: Any) -> JobRecord:
    request = JobRequest.model_validate({"input": str(test_mp3), "target_languages": ["es"], **fields})
    return service.submit(request)


def make_worker(service: JobService, pipeline: FakePipeline, **kwargs: Any) -> tuple[JobWorker, list[int]]:
    calls: list[int] = []

    def factory() -> Any:
        calls.append(1)
        return pipeline

    return JobWorker(service, factory, min_update_s=0.0, cancel_check_s=0.0, **kwargs), calls


def test_success_records_outputs(service: JobService, test_mp3: Path) -> None:
    seen: list[tuple[str | None, float]] = []
    worker, calls = make_worker(service, FakePipeline())
    assert worker.run_once() is False and calls == []  # nothing queued: the pipeline is not even built
    first = submit(service, test_mp3, target_languages=["es", "ru"])
    second = submit(service, test_mp3, mode="subtitles")

    def watch(stage: str) -> None:
        record = service.get(first.id)
        if record.state is JobState.RUNNING:
            seen.append((record.stage, record.progress))

    worker.pipeline().on_stage = watch  # type: ignore[attr-defined]
    assert worker.run_once() and worker.run_once() and not worker.run_once()
    assert calls == [1]  # one pipeline for every job
    done = service.get(first.id)
    assert done.state is JobState.SUCCEEDED and done.progress == 1.0 and done.eta_s is None
    assert done.outputs == sorted(
        ["this_is_a_test.es.mp4", "this_is_a_test.es.srt", "this_is_a_test.es.vtt", "this_is_a_test.report.json",
         "this_is_a_test.ru.mp4", "this_is_a_test.ru.srt", "this_is_a_test.ru.vtt"]
    )  # fmt: skip
    assert done.started_at is not None and done.finished_at is not None and done.error is None
    assert service.get(second.id).state is JobState.SUCCEEDED
    progress = [p for _, p in seen]
    assert len(seen) == 9 and progress == sorted(progress) and 0.6 < progress[-1] < 1
    assert [s for s, _ in seen][:4] == ["extract", "asr", "segment", "translate"]


def test_progress_tracker_places_the_fetch_and_subtitles_stages() -> None:
    """Issue 18: a URL's download fills the extract share (never past it); source subtitles stand in for ASR."""
    tracker = ProgressTracker(["ru"], "subtitles", started=0.0, clock=lambda: 10.0)
    assert tracker.update("fetch", 0.5) == pytest.approx(0.02) and tracker.update("fetch", 1.0) == pytest.approx(0.04)
    assert tracker.update("extract", 0.0) == pytest.approx(0.04)  # no step back
    assert tracker.update("extract", 1.0) == pytest.approx(0.05)
    assert tracker.update("subtitles", 1.0) == pytest.approx(0.35)


def test_progress_tracker_weights() -> None:
    clock = iter(range(100)).__next__
    tracker = ProgressTracker(["ru", "es"], "dub", started=0.0, clock=lambda: 10.0)
    assert tracker.update("extract", 1.0) == pytest.approx(0.05)
    assert tracker.update("asr", 0.5) == pytest.approx(0.2)
    assert tracker.update("segment", 1.0) == pytest.approx(0.37)
    values = []
    for target in ("ru", "es"):
        for stage in ("translate", "tts", "mux"):
            for f in (0.0, 0.5, 1.0):
                values.append(tracker.update(stage, f, target))
    assert values == sorted(values)
    assert values[8] == pytest.approx(0.37 + 0.63 / 2)  # the first target's mux done: half of the rest
    assert values[-1] == pytest.approx(0.99)  # 1.0 only once the job has succeeded
    assert tracker.update("asr", 0.0) == pytest.approx(0.99)  # never goes back
    assert tracker.update("unknown-stage", 0.5) == pytest.approx(0.99)
    assert tracker.eta_s() == pytest.approx(0.1, abs=0.01)
    assert ProgressTracker(["ru"], "subtitles", started=0, clock=clock).eta_s() is None
    sub = ProgressTracker(["ru"], "subtitles", started=0, clock=clock)
    sub.update("translate", 1.0, "ru")
    assert sub.progress == pytest.approx(0.37 + 0.63 * 0.7)


def test_progress_tracker_gives_diarization_and_separation_their_shares() -> None:
    """Issue 15: a job that diarizes and separates moves on through both (a long separation is not a frozen bar);
    their shares come out of ASR's, so the input stages still end at 0.37 (what the page's bars assume)."""
    tracker = ProgressTracker(["ru"], "dub", started=0.0, clock=lambda: 1.0, extra=("separate", "diarize"))
    assert list(tracker.inputs) == ["extract", "asr", "diarize", "segment", "separate"]
    assert tracker.update("asr", 1.0) == pytest.approx(0.22)
    assert tracker.update("diarize", 0.5) == pytest.approx(0.235)
    assert tracker.update("diarize", 1.0) == pytest.approx(0.25)
    assert tracker.update("segment", 1.0) == pytest.approx(0.27)
    assert tracker.update("separate", 0.5) == pytest.approx(0.32)
    assert tracker.update("separate", 1.0) == pytest.approx(0.37)
    assert tracker.update("translate", 1.0, "ru") == pytest.approx(0.37 + 0.63 * 0.35)
    plain = ProgressTracker(["ru"], "dub", started=0.0, clock=lambda: 1.0)
    assert plain.update("segment", 1.0) == pytest.approx(0.37) and plain.update("separate", 0.5) == pytest.approx(0.37)
    diarized = ProgressTracker(["ru"], "subtitles", started=0.0, clock=lambda: 1.0, extra=("diarize",))
    assert diarized.update("asr", 1.0) == pytest.approx(0.32) and diarized.update("diarize", 1.0) == pytest.approx(0.35)


def test_progress_tracker_places_each_event_by_its_language() -> None:
    """The target comes with the event, not from the order in which stages start."""
    tracker = ProgressTracker(["ru", "es"], "subtitles", started=0.0, clock=lambda: 1.0)
    assert tracker.update("translate", 1.0, "es") == pytest.approx(0.37 + 0.63 / 2 * 1.7)  # es: the second half
    assert tracker.update("mux", 1.0, "ru") == pytest.approx(0.37 + 0.63 / 2 * 1.7)  # ru done: never goes back
    assert tracker.update("mux", 1.0, "es") == pytest.approx(0.99)


def test_progress_writes_are_throttled_but_stage_changes_always_land(service: JobService, test_mp3: Path) -> None:
    record = submit(service, test_mp3)
    worker = JobWorker(service, FakePipeline, min_update_s=60.0, cancel_check_s=0.0, clock=lambda: 5.0)
    worker.run_once()
    done = service.get(record.id)
    # 1 create + 1 claim + one write per stage (6, though each stage reports 5 times) + 1 finish
    assert done.version == 1 + 1 + 6 + 1 and done.state is JobState.SUCCEEDED


def test_domain_error_fails_the_job(service: JobService, test_mp3: Path) -> None:
    record = submit(service, test_mp3)
    worker, _ = make_worker(service, FakePipeline(fail=NoAudioStream("the input has no audio stream")))
    worker.run_once()
    done = service.get(record.id)
    assert done.state is JobState.FAILED and done.finished_at is not None
    assert done.error == {"code": "no_audio_stream", "message": "the input has no audio stream"}
    assert done.stage == "asr"


def test_unexpected_error_is_internal_and_logged(
    service: JobService, test_mp3: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = submit(service, test_mp3)
    worker, _ = make_worker(service, FakePipeline(fail=RuntimeError("secret /srv/path detail")))
    with caplog.at_level(logging.INFO, logger="serve_app.jobs"):
        worker.run_once()
    done = service.get(record.id)
    assert done.state is JobState.FAILED and done.error is not None
    assert done.error["code"] == "internal_error" and "secret" not in done.error["message"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and errors[0].exc_info is not None and f"[job {record.id}]" in errors[0].getMessage()
    job_lines = [r for r in caplog.records if r.name == "serve_app.jobs.worker" and hasattr(r, "job_id")]
    assert job_lines and all(f"[job {r.job_id}]" in r.getMessage() for r in job_lines)  # type: ignore[attr-defined]


def test_cancel_while_running_stops_at_the_next_stage(service: JobService, test_mp3: Path) -> None:
    record = submit(service, test_mp3)

    def cancel_during_asr(stage: str) -> None:
        if stage == "asr":
            service.cancel(record.id)

    pipeline = FakePipeline(on_stage=cancel_during_asr)
    worker, _ = make_worker(service, pipeline)
    worker.run_once()
    done = service.get(record.id)
    assert done.state is JobState.CANCELLED and done.stage == "asr" and done.outputs == []
    assert not any((service.storage.job_dir(record.id) / "out").glob("*"))  # type: ignore[attr-defined]


def test_a_job_cancelled_before_it_runs_is_skipped(service: JobService, test_mp3: Path) -> None:
    record = submit(service, test_mp3)
    service.cancel(record.id)
    pipeline = FakePipeline()
    worker, _ = make_worker(service, pipeline)
    assert worker.run_once() is False and pipeline.runs == 0
    assert service.get(record.id).state is JobState.CANCELLED


def test_start_requeues_interrupted_jobs_and_runs_in_the_background(service: JobService, test_mp3: Path) -> None:
    interrupted = submit(service, test_mp3)
    service.store.claim_next("dead-worker")  # "running" when the previous process died: its lease expired
    service.store.update(interrupted.id, stage="asr", progress=0.2, heartbeat_at=utcnow() - timedelta(minutes=5))
    fresh = submit(service, test_mp3)
    worker, _ = make_worker(service, FakePipeline(), poll_s=0.02, max_running_jobs=2)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(
            service.get(j.id).state is JobState.SUCCEEDED for j in (interrupted, fresh)
        ):
            time.sleep(0.05)
        late = submit(service, test_mp3)  # picked up by the polling threads
        while time.monotonic() < deadline and service.get(late.id).state is not JobState.SUCCEEDED:
            time.sleep(0.05)
    finally:
        worker.stop(timeout=10)
    assert not worker.running
    assert all(service.get(j.id).state is JobState.SUCCEEDED for j in (interrupted, fresh, late))


@pytest.mark.slow
def test_real_pipeline_end_to_end(tmp_path: Path, test_mp3: Path, sqlite_store: JobStore) -> None:
    from configs.settings import Settings, StorageSettings
    from pipelines.runner import Pipeline

    video = make_video(tmp_path / "talk.mp4", test_mp3, 4.5)
    storage = LocalStorage(tmp_path / "var")
    service = JobService(sqlite_store, storage, max_queued_jobs=4)
    settings = Settings(storage=StorageSettings(root=tmp_path / "var", cache_dir=tmp_path / "var" / "cache"))

    async def chunks() -> AsyncIterator[bytes]:
        yield video.read_bytes()

    upload = asyncio.run(storage.save_upload(chunks(), filename="talk.mp4", content_type="video/mp4", max_bytes=10**7))
    record = service.submit(
        JobRequest(input="", target_languages=["es"], source_language="en", mode="subtitles"), file_id=upload.file_id
    )
    worker = JobWorker(service, lambda: Pipeline(settings))
    assert worker.run_once()
    done = service.get(record.id)
    assert done.state is JobState.SUCCEEDED, done.error
    stem = "talk"  # named after the client's file, like the CLI names its outputs
    assert done.outputs == sorted(
        [
            f"{stem}.es.mp4",
            f"{stem}.es.srt",
            f"{stem}.es.vtt",
            f"{stem}.en.srt",
            f"{stem}.en.vtt",
            f"{stem}.report.json",
        ]
    )
    srt = storage.output_path(record.id, f"{stem}.es.srt").read_text(encoding="utf-8")
    assert srt.strip() and done.progress == 1.0


# ----------------------------------------------------------------------------- leases (several workers, one store)


class Gate:
    """Blocks a FakePipeline inside one stage until ``open()``; ``reached`` says it got there."""

    def __init__(self, stage: str = "asr") -> None:
        self.stage = stage
        self.reached, self.released = threading.Event(), threading.Event()

    def __call__(self, stage: str) -> None:
        if stage == self.stage:
            self.reached.set()
            assert self.released.wait(30)

    def open(self) -> None:
        self.released.set()


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_worker_leaves_a_live_job_alone(
    store_factory: Callable[[], JobStore], storage: LocalStorage, test_mp3: Path
) -> None:
    """The bug this fixes: starting worker B (another replica, another bridge) requeued A's running job."""
    service_a = JobService(store_factory(), storage, max_queued_jobs=10)
    service_b = JobService(store_factory(), storage, max_queued_jobs=10)
    record = submit(service_a, test_mp3)
    gate = Gate()
    pipe_a, pipe_b = FakePipeline(on_stage=gate), FakePipeline()
    a = JobWorker(service_a, lambda: pipe_a, poll_s=0.05, lease_s=0.6, min_update_s=0.0, cancel_check_s=0.0)
    b = JobWorker(service_b, lambda: pipe_b, poll_s=0.05, lease_s=0.6, min_update_s=0.0, cancel_check_s=0.0)
    a.start()
    try:
        assert gate.reached.wait(20)
        b.start()
        time.sleep(2.0)  # > 3 leases: A's heartbeats keep the job; B's sweeps must not take it
        held = service_b.get(record.id)
        assert held.state is JobState.RUNNING and held.worker_id == a.worker_id and pipe_b.runs == 0
        gate.open()
        wait_for(lambda: service_b.get(record.id).state is JobState.SUCCEEDED)
    finally:
        gate.open()
        a.stop(timeout=10)
        b.stop(timeout=10)
    assert (pipe_a.runs, pipe_b.runs) == (1, 0)  # ran once, by A
    assert service_b.get(record.id).worker_id == a.worker_id


def test_a_dead_workers_job_is_taken_over_and_the_old_run_records_nothing(
    store_factory: Callable[[], JobStore], storage: LocalStorage, test_mp3: Path
) -> None:
    """A hangs (no heartbeats): B requeues and finishes the job; when A wakes up it writes nothing."""
    service_a = JobService(store_factory(), storage, max_queued_jobs=10)
    service_b = JobService(store_factory(), storage, max_queued_jobs=10)
    record = submit(service_a, test_mp3)
    gate = Gate()
    pipe_a, pipe_b = FakePipeline(on_stage=gate), FakePipeline()
    a = JobWorker(service_a, lambda: pipe_a, lease_s=0.5, min_update_s=0.0, cancel_check_s=0.0)
    hung = threading.Thread(target=a.run_once)  # run_once: no heartbeat thread, like a frozen process
    hung.start()
    b = JobWorker(service_b, lambda: pipe_b, poll_s=0.05, lease_s=0.5, min_update_s=0.0, cancel_check_s=0.0)
    try:
        assert gate.reached.wait(20)
        b.start()
        wait_for(lambda: service_b.get(record.id).state is JobState.SUCCEEDED)
        finished = service_b.get(record.id)
        assert finished.worker_id == b.worker_id and pipe_b.runs == 1
    finally:
        gate.open()
        hung.join(20)
        b.stop(timeout=10)
    assert not hung.is_alive()
    assert service_a.get(record.id) == finished  # A's late progress and result were refused


def test_a_worker_that_lost_its_lease_publishes_nothing(
    store_factory: Callable[[], JobStore], storage: LocalStorage, test_mp3: Path
) -> None:
    """A hangs inside its LAST stage (after the last stage-boundary lease check); its lease expires, B takes
    the job over and publishes. When A wakes up and finishes, its outputs must not replace B's, and its
    attempt folder (its own, never B's) was left alone while it lived."""
    service_a = JobService(store_factory(), storage, max_queued_jobs=10)
    service_b = JobService(store_factory(), storage, max_queued_jobs=10)
    record = submit(service_a, test_mp3)
    gate = Gate("mux")
    pipe_a, pipe_b = FakePipeline(on_stage=gate, mark="A"), FakePipeline(mark="B")
    a = JobWorker(service_a, lambda: pipe_a, lease_s=0.5, min_update_s=0.0, cancel_check_s=0.0)
    hung = threading.Thread(target=a.run_once)  # no heartbeat thread: the lease runs out while it hangs
    hung.start()
    b = JobWorker(service_b, lambda: pipe_b, poll_s=0.05, lease_s=0.5, min_update_s=0.0, cancel_check_s=0.0)
    out = storage.job_dir(record.id) / "out"
    try:
        assert gate.reached.wait(20)
        b.start()
        wait_for(lambda: service_b.get(record.id).state is JobState.SUCCEEDED)
        assert {p.read_text() for p in out.iterdir()} == {"B"}
        [a_dir], [b_dir] = pipe_a.out_dirs, pipe_b.out_dirs
        assert a_dir != b_dir and a_dir.is_dir()  # B's run neither shared nor swept A's live folder
    finally:
        gate.open()
        hung.join(20)
        b.stop(timeout=10)
    assert not hung.is_alive()
    finished = service_b.get(record.id)
    assert finished.state is JobState.SUCCEEDED and finished.worker_id == b.worker_id
    assert {p.read_text() for p in out.iterdir()} == {"B"}  # A wrote its files, and published none of them
    assert sorted(p.name for p in out.iterdir()) == finished.outputs
    assert not a_dir.exists()  # A's folder went with its run


def test_graceful_stop_requeues_at_once(service: JobService, test_mp3: Path) -> None:
    record = submit(service, test_mp3)
    gate = Gate()
    pipe = FakePipeline(on_stage=gate)
    worker = JobWorker(service, lambda: pipe, poll_s=0.05, lease_s=60.0, min_update_s=0.0, cancel_check_s=0.0)
    worker.start()
    try:
        assert gate.reached.wait(20)
        started = time.monotonic()
        worker.stop(timeout=0, requeue=True)
        requeued = service.get(record.id)
        assert requeued.state is JobState.QUEUED and requeued.worker_id is None
        assert time.monotonic() - started < 2.0  # no waiting for the 60 s lease
    finally:
        gate.open()
        worker.stop(timeout=10)
    assert service.get(record.id).state is JobState.QUEUED  # the dropped run wrote nothing
    other, _ = make_worker(service, FakePipeline())
    assert other.run_once()
    assert service.get(record.id).state is JobState.SUCCEEDED
