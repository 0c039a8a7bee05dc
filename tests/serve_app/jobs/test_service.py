"""JobService over real stores and real storage: submit, queue cap, idempotency, cancel, events."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pipelines.errors import InputNotFound, UnknownLanguage
from pipelines.schema import JobRequest
from serve_app.errors import FileNotFound, JobNotCancellable, JobNotFound, QueueFull
from serve_app.jobs.models import FileInfo, JobRecord, JobState
from serve_app.jobs.service import JobService
from serve_app.jobs.storage import LocalStorage
from serve_app.jobs.store import JobStore


@pytest.fixture
def service(store: JobStore, storage: LocalStorage) -> JobService:
    return JobService(store, storage, max_queued_jobs=3, retry_after_s=7)


@pytest.fixture
def upload_for(storage: LocalStorage, test_mp3: Path) -> Callable[[str | None], FileInfo]:
    """Uploads made by one owner (None: without API keys)."""

    def make(owner: str | None) -> FileInfo:
        async def chunks() -> AsyncIterator[bytes]:
            yield test_mp3.read_bytes()

        return asyncio.run(
            storage.save_upload(chunks(), filename="talk.mp3", content_type="audio/mpeg", max_bytes=10**6, owner=owner)
        )

    return make


@pytest.fixture
def upload(upload_for: Callable[[str | None], FileInfo]) -> FileInfo:
    return upload_for(None)


def req(**fields: object) -> JobRequest:
    return JobRequest.model_validate({"input": "ignored", "target_languages": ["es"], **fields})


def test_submit_resolves_the_upload_and_languages(service: JobService, upload: FileInfo) -> None:
    record = service.submit(req(target_languages=["ES", "es-MX", "ru"], source_language="EN"), file_id=upload.file_id)
    assert record.state is JobState.QUEUED and record.file_id == upload.file_id
    assert record.request.input == str(upload.path)
    assert record.request.target_languages == ["es", "ru"] and record.request.source_language == "en"
    assert service.get(record.id) == record


def test_submit_with_a_local_path(service: JobService, test_mp3: Path) -> None:
    record = service.submit(req(input=str(test_mp3)), owner="bob")
    assert record.request.input == str(test_mp3) and record.owner == "bob"
    with pytest.raises(InputNotFound):
        service.submit(req(input="/no/such/file.mp4"))


def test_submit_rejects_bad_requests(service: JobService, upload: FileInfo) -> None:
    with pytest.raises(UnknownLanguage):
        service.submit(req(target_languages=["klingon"]), file_id=upload.file_id)
    with pytest.raises(FileNotFound):
        service.submit(req(), file_id="0" * 32)
    with pytest.raises(FileNotFound):
        service.submit(req(), file_id="../../etc")
    assert service.list() == []


def test_queue_full_past_the_cap(service: JobService, store: JobStore, upload: FileInfo) -> None:
    for _ in range(3):
        service.submit(req(), file_id=upload.file_id)
    with pytest.raises(QueueFull) as exc:
        service.submit(req(), file_id=upload.file_id)
    assert exc.value.retry_after_s == 7 and exc.value.http_status == 429
    store.claim_next()  # a running job no longer counts against the queue
    service.submit(req(), file_id=upload.file_id)


def test_queue_room_is_the_one_cap_check(service: JobService, store: JobStore) -> None:
    """``has_queue_room``/``check_queue_room``: what submit, the upload route, re-dub and the bridge ask."""
    for _ in range(2):
        store.create(JobRecord(request=req()))
    assert service.has_queue_room()
    service.check_queue_room()
    store.create(JobRecord(request=req()))
    assert not service.has_queue_room()
    with pytest.raises(QueueFull) as exc:
        service.check_queue_room()
    assert exc.value.retry_after_s == 7 and "3" in exc.value.message
    store.claim_next()
    assert service.has_queue_room()


class _SlowCount:
    """The real store, but ``count`` returns only once every racer has counted: the widest window a
    check-then-act cap could leave open (a cap counted inside the store's insert never calls it)."""

    def __init__(self, store: JobStore, racers: int) -> None:
        self._store, self._barrier = store, threading.Barrier(racers)

    def count(self, states: object) -> int:
        n = self._store.count(states)  # type: ignore[arg-type]
        try:
            self._barrier.wait(timeout=2.0)
        except threading.BrokenBarrierError:
            pass
        return n

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def test_concurrent_submits_never_pass_the_queue_cap(
    store_factory: Callable[[], JobStore], storage: LocalStorage, upload: FileInfo
) -> None:
    services = [JobService(_SlowCount(store_factory(), 6), storage, max_queued_jobs=3, retry_after_s=7)  # type: ignore[arg-type]
                for _ in range(6)]  # fmt: skip
    accepted: list[str] = []
    refused: list[QueueFull] = []

    def submit(service: JobService) -> None:
        try:
            accepted.append(service.submit(req(), file_id=upload.file_id).id)
        except QueueFull as exc:
            refused.append(exc)

    threads = [threading.Thread(target=submit, args=(s,)) for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 3 and len(refused) == 3 and services[0].store.count({JobState.QUEUED}) == 3
    assert all(exc.retry_after_s == 7 and exc.http_status == 429 for exc in refused)


def test_idempotent_submit(service: JobService, upload_for: Callable[[str | None], FileInfo]) -> None:
    upload = upload_for("a")
    first = service.submit(req(), file_id=upload.file_id, owner="a", idempotency_key="abc")
    for _ in range(2):
        service.submit(req(), file_id=upload.file_id, owner="a")
    # The queue is full now, but a retry with the same key still gets its job back.
    again = service.submit(req(), file_id=upload.file_id, owner="a", idempotency_key="abc")
    assert again.id == first.id and len(service.list()) == 3


def test_idempotency_keys_are_per_owner(service: JobService, upload_for: Callable[[str | None], FileInfo]) -> None:
    """Issue 12, item 12: another owner's same key neither finds nor blocks the first owner's job."""
    mallory = service.submit(req(), file_id=upload_for("mallory").file_id, owner="mallory", idempotency_key="abc")
    alice_upload = upload_for("alice")
    alice = service.submit(req(), file_id=alice_upload.file_id, owner="alice", idempotency_key="abc")
    assert alice.id != mallory.id and alice.owner == "alice"  # mallory's key did not squat it
    assert service.submit(req(), file_id=alice_upload.file_id, owner="alice", idempotency_key="abc").id == alice.id


def test_list_and_get(service: JobService, upload_for: Callable[[str | None], FileInfo]) -> None:
    a = service.submit(req(), file_id=upload_for("a").file_id, owner="a")
    b = service.submit(req(), file_id=upload_for("b").file_id, owner="b")
    assert {r.id for r in service.list()} == {a.id, b.id}
    assert [r.id for r in service.list(owner="b")] == [b.id]
    with pytest.raises(JobNotFound):
        service.get("f" * 32)


def test_cancel_queued_is_immediate(service: JobService, upload: FileInfo) -> None:
    record = service.submit(req(), file_id=upload.file_id)
    cancelled = service.cancel(record.id)
    assert cancelled.state is JobState.CANCELLED and cancelled.finished_at is not None
    assert service.store.claim_next() is None  # never runs


def test_cancel_running_sets_the_flag(service: JobService, upload: FileInfo) -> None:
    record = service.submit(req(), file_id=upload.file_id)
    service.store.claim_next()
    requested = service.cancel(record.id)
    assert requested.state is JobState.RUNNING and requested.cancel_requested
    assert service.cancel(record.id).cancel_requested  # asking twice is fine


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
def test_cancel_terminal_is_refused(service: JobService, upload: FileInfo, state: JobState) -> None:
    record = service.submit(req(), file_id=upload.file_id)
    service.store.update(record.id, state=state)
    with pytest.raises(JobNotCancellable) as exc:
        service.cancel(record.id)
    assert exc.value.http_status == 409
    with pytest.raises(JobNotFound):
        service.cancel("f" * 32)


async def _collect(service: JobService, job_id: str, timeout_s: float = 10) -> list[JobRecord]:
    async def run() -> list[JobRecord]:
        return [r async for r in service.events(job_id, poll_s=0.02)]

    return await asyncio.wait_for(run(), timeout_s)


def test_events_follow_progress_and_end(service: JobService, upload: FileInfo) -> None:
    record = service.submit(req(), file_id=upload.file_id)
    store = service.store
    seen: list[JobRecord] = []

    def wait_seen(wanted: Callable[[JobRecord], bool]) -> None:  # lockstep with the reader: no timing guesses
        deadline = time.monotonic() + 30
        while not any(wanted(e) for e in seen) and time.monotonic() < deadline:
            time.sleep(0.01)

    def work() -> None:  # plays the worker, through its own thread like another process would
        wait_seen(lambda e: e.state is JobState.QUEUED)
        store.claim_next()
        for stage, progress in [("extract", 0.05), ("asr", 0.2), ("asr", 0.35), ("translate", 0.6), ("mux", 0.9)]:
            store.update(record.id, stage=stage, progress=progress)
            wait_seen(lambda e, p=progress: e.progress == p)  # type: ignore[misc]
        store.update(record.id, state=JobState.SUCCEEDED, progress=1.0, outputs=["talk.es.mp4"])

    async def collect() -> list[JobRecord]:
        async for event in service.events(record.id, poll_s=0.02):
            seen.append(event)
        return seen

    thread = threading.Thread(target=work)
    thread.start()
    events = asyncio.run(asyncio.wait_for(collect(), 60))
    thread.join()
    assert events[0].state is JobState.QUEUED
    assert events[-1].state is JobState.SUCCEEDED and events[-1].outputs == ["talk.es.mp4"]
    progress = [e.progress for e in events]
    assert progress == sorted(progress) and {0.2, 0.35, 0.6} <= set(progress)
    assert len({(e.state, e.stage, e.progress) for e in events}) == len(events)  # only changes are yielded


def test_events_of_a_finished_job_yield_once(service: JobService, upload: FileInfo) -> None:
    record = service.submit(req(), file_id=upload.file_id)
    service.cancel(record.id)
    events = asyncio.run(_collect(service, record.id))
    assert [e.state for e in events] == [JobState.CANCELLED]
    with pytest.raises(JobNotFound):
        asyncio.run(_collect(service, "f" * 32))


def test_an_upload_serves_only_its_owner(service: JobService, upload_for: Callable[[str | None], FileInfo]) -> None:
    alices = upload_for("alice")
    with pytest.raises(FileNotFound, match=f"no uploaded file with id {alices.file_id}"):
        service.submit(req(), file_id=alices.file_id, owner="bob")
    with pytest.raises(FileNotFound):
        service.submit(req(), file_id=alices.file_id)  # a keyless caller is not the owner either
    assert service.submit(req(), file_id=alices.file_id, owner="alice").owner == "alice"
    trusted = service.submit(req(), file_id=alices.file_id, owner=None, check_file_owner=False)  # keyless bridge
    assert trusted.request.input == str(alices.path)
