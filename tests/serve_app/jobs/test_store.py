"""The JobStore contract, run over SQLite and PostgreSQL alike."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from serve_app.errors import JobNotFound, QueueFull
from serve_app.jobs.models import JobRecord, JobState, utcnow
from serve_app.jobs.store import STORE_NOW, JobStore, PostgresJobStore, SQLiteJobStore, make_job_store

StoreFactory = Callable[[], JobStore]
MakeRecord = Callable[..., JobRecord]


def test_import_leaves_out_ray_and_fastapi() -> None:
    code = "import sys, serve_app.jobs; print(' '.join(sys.modules))"
    mods = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert "serve_app.jobs.worker" in mods
    assert not {m for m in mods if m.split(".")[0] in {"ray", "fastapi", "starlette"}}


def test_create_get_roundtrip(store: JobStore, make_record: MakeRecord) -> None:
    record = store.create(make_record(owner="alice"))
    got = store.get(record.id)
    assert got == record
    assert got is not None and got.created_at.tzinfo is not None
    assert store.get("0" * 32) is None


def test_create_is_idempotent(store: JobStore, make_record: MakeRecord) -> None:
    first = store.create(make_record(idempotency_key="k1"))
    second = store.create(make_record(idempotency_key="k1"))
    assert second.id == first.id
    assert store.count({JobState.QUEUED}) == 1
    assert store.get_by_idempotency_key("k1", owner=None) == first
    assert store.get_by_idempotency_key("nope", owner=None) is None
    assert store.create(make_record(idempotency_key="k2")).id != first.id


def test_idempotency_keys_are_per_owner(store: JobStore, make_record: MakeRecord) -> None:
    """Issue 12, item 12: another owner's same key is another job; it neither finds nor takes the first one."""
    alice = store.create(make_record(owner="key:alice", idempotency_key="k"))
    assert store.get_by_idempotency_key("k", owner="key:mallory") is None  # nothing to detect
    mallory = store.create(make_record(owner="key:mallory", idempotency_key="k"))
    assert mallory.id != alice.id and mallory.owner == "key:mallory"
    assert store.create(make_record(owner="key:alice", idempotency_key="k")).id == alice.id  # not squatted
    assert store.get_by_idempotency_key("k", owner="key:alice") == alice
    assert store.get_by_idempotency_key("k", owner="key:mallory") == mallory
    assert store.get_by_idempotency_key("k", owner=None) is None  # the keyless namespace is a third one
    updated = store.update(alice.id, stage="asr")  # a rewrite keeps the key in its owner's scope
    assert store.get_by_idempotency_key("k", owner="key:alice") == updated
    assert store.count({JobState.QUEUED}) == 2


def test_update_sets_fields_and_updated_at(store: JobStore, make_record: MakeRecord) -> None:
    record = store.create(make_record())
    updated = store.update(record.id, stage="asr", progress=0.3, eta_s=12.5)
    assert (updated.stage, updated.progress, updated.eta_s) == ("asr", 0.3, 12.5)
    assert updated.updated_at >= record.updated_at and updated.version == record.version + 1
    assert store.get(record.id) == updated
    with pytest.raises(JobNotFound):
        store.update("f" * 32, stage="asr")
    with pytest.raises(ValueError):
        store.update(record.id, no_such_field=1)
    with pytest.raises(ValueError):
        store.update(record.id, progress=2.0)  # validated like the model


def test_transition_is_compare_and_set(store: JobStore, make_record: MakeRecord) -> None:
    record = store.create(make_record())
    assert store.transition(record.id, {JobState.RUNNING}, state=JobState.SUCCEEDED) is None
    done = store.transition(record.id, {JobState.QUEUED}, state=JobState.CANCELLED)
    assert done is not None and done.state is JobState.CANCELLED


def test_list_newest_first_with_owner_and_paging(store: JobStore, make_record: MakeRecord) -> None:
    base = utcnow()
    ids = [
        store.create(make_record(owner="a" if i % 2 else "b", created_at=base + timedelta(seconds=i))).id
        for i in range(5)
    ]
    assert [r.id for r in store.list()] == ids[::-1]
    assert [r.id for r in store.list(owner="a")] == [ids[3], ids[1]]
    assert [r.id for r in store.list(limit=2, offset=1)] == [ids[3], ids[2]]


def test_claim_next_takes_the_oldest_queued(store: JobStore, make_record: MakeRecord) -> None:
    base = utcnow()
    newer = store.create(make_record(created_at=base + timedelta(seconds=2)))
    older = store.create(make_record(created_at=base + timedelta(seconds=1)))
    store.create(make_record(created_at=base, state=JobState.CANCELLED))
    claimed = store.claim_next()
    assert claimed is not None and claimed.id == older.id
    assert claimed.state is JobState.RUNNING and claimed.started_at is not None
    assert store.get(older.id).state is JobState.RUNNING  # type: ignore[union-attr]
    assert store.claim_next().id == newer.id  # type: ignore[union-attr]
    assert store.claim_next() is None
    assert store.count({JobState.RUNNING}) == 2
    assert store.count({JobState.QUEUED, JobState.CANCELLED}) == 1
    assert store.count(set()) == 0


def _claim_all(stores: list[JobStore], n_threads: int) -> list[str]:
    claimed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_threads)

    def work(s: JobStore) -> None:
        barrier.wait()
        while (record := s.claim_next()) is not None:
            with lock:
                claimed.append(record.id)

    threads = [threading.Thread(target=work, args=(stores[i % len(stores)],)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return claimed


def test_no_double_claim_across_threads(store: JobStore, make_record: MakeRecord) -> None:
    ids = {store.create(make_record()).id for _ in range(30)}
    claimed = _claim_all([store], 2)
    assert sorted(claimed) == sorted(ids)  # each exactly once


def test_no_double_claim_across_connections(store_factory: StoreFactory, make_record: MakeRecord) -> None:
    """Two store objects (two connections, like two processes) over one database."""
    first, second = store_factory(), store_factory()
    ids = {first.create(make_record()).id for _ in range(30)}
    claimed = _claim_all([first, second], 4)
    assert sorted(claimed) == sorted(ids)


def test_capped_create_counts_and_inserts_in_one_step(store_factory: StoreFactory, make_record: MakeRecord) -> None:
    """Eight callers over four connections race for three places: exactly three get one."""
    stores = [store_factory() for _ in range(4)]
    barrier = threading.Barrier(8)
    created: list[str] = []
    refused: list[QueueFull] = []

    def work(s: JobStore) -> None:
        barrier.wait()
        try:
            created.append(s.create(make_record(), max_queued=3).id)
        except QueueFull as exc:
            refused.append(exc)

    threads = [threading.Thread(target=work, args=(stores[i % 4],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(created) == 3 and len(refused) == 5 and stores[0].count({JobState.QUEUED}) == 3
    assert stores[0].create(make_record(state=JobState.SUCCEEDED), max_queued=3)  # not queued: no cap
    keyed = stores[0].create(make_record(idempotency_key="k", state=JobState.SUCCEEDED))
    assert stores[1].create(make_record(idempotency_key="k"), max_queued=3).id == keyed.id  # a repeat still answers


def test_a_requeued_job_joins_the_end_of_the_queue_within_the_cap(store: JobStore, make_record: MakeRecord) -> None:
    base = utcnow()
    done = store.create(make_record(created_at=base - timedelta(hours=1), state=JobState.SUCCEEDED))
    waiting = store.create(make_record(created_at=base))
    assert store.transition(done.id, {JobState.SUCCEEDED}, max_queued=2, state=JobState.QUEUED) is not None
    assert [store.claim_next().id, store.claim_next().id] == [waiting.id, done.id]  # type: ignore[union-attr]
    store.create(make_record())
    store.create(make_record())
    again = store.transition(done.id, {JobState.RUNNING}, state=JobState.SUCCEEDED)
    assert again is not None
    with pytest.raises(QueueFull):
        store.transition(done.id, {JobState.SUCCEEDED}, max_queued=2, state=JobState.QUEUED)
    assert store.get(done.id).state is JobState.SUCCEEDED  # type: ignore[union-attr]


def test_an_older_sqlite_store_gains_the_queue_column(tmp_path: Path, make_record: MakeRecord) -> None:
    import sqlite3

    db = tmp_path / "old.db"
    record = make_record()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at TEXT NOT NULL,"
                     " idempotency_key TEXT UNIQUE, owner TEXT, record TEXT NOT NULL)")  # fmt: skip
        conn.execute("INSERT INTO jobs VALUES (?, 'queued', ?, NULL, NULL, ?)",
                     (record.id, "2026-01-01T00:00:00.000000Z", record.model_dump_json()))  # fmt: skip
    store = SQLiteJobStore(db)
    try:
        newer = store.create(make_record())
        assert [store.claim_next().id, store.claim_next().id] == [record.id, newer.id]  # type: ignore[union-attr]
    finally:
        store.close()


def test_requeue_interrupted(store: JobStore, make_record: MakeRecord) -> None:
    a = store.create(make_record())
    b = store.create(make_record())
    done = store.create(make_record(state=JobState.SUCCEEDED))
    store.claim_next()
    store.claim_next()
    store.update(b.id, cancel_requested=True)
    assert store.requeue_interrupted() == [a.id]
    assert store.get(a.id).state is JobState.QUEUED  # type: ignore[union-attr]
    assert store.get(b.id).state is JobState.CANCELLED  # type: ignore[union-attr]
    assert store.get(done.id).state is JobState.SUCCEEDED  # type: ignore[union-attr]
    assert store.requeue_interrupted() == []


def test_claim_records_the_worker_and_its_heartbeat(store: JobStore, make_record: MakeRecord) -> None:
    record = store.create(make_record())
    claimed = store.claim_next("w1")
    assert claimed is not None and claimed.id == record.id and claimed.worker_id == "w1"
    assert claimed.heartbeat_at is not None and (utcnow() - claimed.heartbeat_at).total_seconds() < 5


def test_heartbeat_renews_only_the_workers_own_running_jobs(store: JobStore, make_record: MakeRecord) -> None:
    mine, theirs, queued = (store.create(make_record()) for _ in range(3))
    store.claim_next("w1")
    store.claim_next("w2")
    old = utcnow() - timedelta(minutes=5)
    store.update(mine.id, heartbeat_at=old)
    before = store.get(mine.id)
    assert sorted(store.heartbeat("w1", [mine.id, theirs.id, queued.id, "0" * 32])) == [mine.id]
    after = store.get(mine.id)
    assert after is not None and before is not None and after.heartbeat_at is not None and after.heartbeat_at > old
    assert after.version == before.version  # a heartbeat is not a revision: watchers see no change
    assert store.heartbeat("w1", []) == []


def test_requeue_only_expired_leases(store: JobStore, make_record: MakeRecord) -> None:
    """The multi-worker bug: a second worker's start-up must not requeue the first worker's live job."""
    live, dead, legacy = (store.create(make_record()) for _ in range(3))
    store.claim_next("alive")
    store.claim_next("dead")
    store.claim_next(None)  # a record from before leases: its last update counts as its heartbeat
    store.update(dead.id, heartbeat_at=utcnow() - timedelta(seconds=60))
    assert store.requeue_interrupted(stale_after_s=20) == [dead.id]
    got = store.get(dead.id)
    assert got is not None and got.state is JobState.QUEUED and got.worker_id is None and got.heartbeat_at is None
    assert store.get(live.id).state is JobState.RUNNING  # type: ignore[union-attr]
    assert store.get(legacy.id).state is JobState.RUNNING  # type: ignore[union-attr]
    assert sorted(store.requeue_interrupted(stale_after_s=0)) == sorted([live.id, legacy.id])


def test_requeue_one_workers_jobs(store: JobStore, make_record: MakeRecord) -> None:
    a, b = store.create(make_record()), store.create(make_record())
    store.claim_next("w1")
    store.claim_next("w2")
    assert store.requeue_interrupted(worker_id="w1") == [a.id]
    assert store.get(b.id).state is JobState.RUNNING  # type: ignore[union-attr]


def test_transition_checks_the_lease_holder(store: JobStore, make_record: MakeRecord) -> None:
    record = store.create(make_record())
    store.claim_next("w1")
    assert store.transition(record.id, {JobState.RUNNING}, if_worker_id="w2", stage="asr") is None
    done = store.transition(record.id, {JobState.RUNNING}, if_worker_id="w1", stage="asr")
    assert done is not None and done.stage == "asr"


def test_list_by_states(store: JobStore, make_record: MakeRecord) -> None:
    queued = store.create(make_record())
    done = store.create(make_record(state=JobState.SUCCEEDED))
    assert [r.id for r in store.list(states={JobState.QUEUED})] == [queued.id]
    assert {r.id for r in store.list(states=[JobState.QUEUED, JobState.SUCCEEDED])} == {queued.id, done.id}
    assert store.list(states=set()) == []


def test_records_survive_reopening(store_factory: StoreFactory, make_record: MakeRecord) -> None:
    first = store_factory()
    record = first.create(make_record(owner="o", idempotency_key="key"))
    first.update(record.id, stage="asr", progress=0.2)
    first.close()
    again = store_factory()
    got = again.get(record.id)
    assert got is not None and got.stage == "asr" and got.owner == "o"
    assert again.create(make_record(owner="o", idempotency_key="key")).id == record.id


def test_make_job_store(tmp_path: Path, postgres_url: str) -> None:
    s = make_job_store(f"sqlite:///{tmp_path}/x/jobs.db")
    assert isinstance(s, SQLiteJobStore) and s.path == tmp_path / "x" / "jobs.db"
    s.close()
    p = make_job_store(postgres_url, table="vt_test_make_store")
    try:
        assert isinstance(p, PostgresJobStore)
    finally:
        p.close()
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS vt_test_make_store")
    with pytest.raises(ValueError):
        make_job_store("mysql://nope")
    with pytest.raises(ValueError):
        SQLiteJobStore(tmp_path / "y.db", table="jobs; DROP TABLE x")


def test_postgres_store_fails_at_once_when_the_server_is_unreachable() -> None:
    """The schema is made on a connection of its own, so a bad url is psycopg's error now, not a pool timeout."""
    import time

    import psycopg

    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        PostgresJobStore("postgresql://nobody@127.0.0.1:9/test?connect_timeout=3", pool_timeout_s=60)
    assert time.monotonic() - started < 10


def test_postgres_store_pools_its_connections(postgres_url: str, make_record: MakeRecord) -> None:
    import uuid

    import psycopg
    from psycopg_pool import PoolClosed

    table = f"vt_test_pool_{uuid.uuid4().hex[:12]}"
    store = PostgresJobStore(postgres_url, table=table, max_size=2)
    try:
        for _ in range(5):
            store.create(make_record())
        assert store.count({JobState.QUEUED}) == 5
        assert store._pool.get_stats()["pool_max"] == 2
    finally:
        store.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    with pytest.raises(PoolClosed):  # a closed store stays closed
        store.get("0" * 32)


# ----------------------------------------------------------------------------- the store's clock, the publish fence


def test_leases_are_stamped_and_compared_on_the_stores_clock(
    store_factory: StoreFactory, make_record: MakeRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers on hosts whose clocks disagree with the store's by an hour still agree on who holds a lease
    (``utcnow`` patched in the store module: the host's clock, as a skewed worker would read it)."""
    import serve_app.jobs.store as store_module

    store = store_factory()

    def host_clock(skew: timedelta) -> None:
        monkeypatch.setattr(store_module, "utcnow", lambda: utcnow() + skew)

    slow, fast, dead = (store.create(make_record()) for _ in range(3))
    host_clock(-timedelta(hours=1))  # a worker whose clock is an hour behind claims and renews a job
    assert store.claim_next("slow-host") is not None
    assert store.heartbeat("slow-host", [slow.id]) == [slow.id]
    assert store.transition(slow.id, {JobState.RUNNING}, if_worker_id="slow-host", heartbeat_at=STORE_NOW)
    host_clock(timedelta(0))
    assert store.requeue_interrupted(stale_after_s=20) == []  # its lease is fresh, whatever its host said
    assert store.claim_next("here") is not None  # ``fast``: claimed on a host with the store's time
    host_clock(timedelta(hours=1))  # a requeuer whose clock is an hour ahead sees both leases as live
    assert store.requeue_interrupted(stale_after_s=20) == []
    assert store.claim_next("fast-host") is not None  # ``dead``: claimed there, then the worker dies
    host_clock(timedelta(0))
    time.sleep(0.3)
    assert sorted(store.requeue_interrupted(stale_after_s=0.2)) == sorted([slow.id, fast.id, dead.id])
    assert {store.get(j).state for j in (slow.id, fast.id, dead.id)} == {JobState.QUEUED}  # type: ignore[union-attr]


def test_finish_if_held_publishes_only_for_the_lease_holder(store: JobStore, make_record: MakeRecord) -> None:
    record = store.create(make_record())
    published: list[str] = []
    assert store.finish_if_held(record.id, "w1", publish=lambda: published.append("queued")) is None
    store.claim_next("w1")
    assert store.finish_if_held(record.id, "w2", publish=lambda: published.append("w2")) is None  # not its lease

    def broken() -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError):
        store.finish_if_held(record.id, "w1", publish=broken, state=JobState.SUCCEEDED)
    assert store.get(record.id).state is JobState.RUNNING  # type: ignore[union-attr]  # rolled back
    done = store.finish_if_held(
        record.id, "w1", publish=lambda: published.append("w1"), state=JobState.SUCCEEDED, outputs=["a.mp4"]
    )
    assert done is not None and done.state is JobState.SUCCEEDED and done.outputs == ["a.mp4"]
    assert published == ["w1"] and store.get(record.id) == done
    assert store.finish_if_held(record.id, "w1", publish=lambda: published.append("again")) is None
    with pytest.raises(JobNotFound):
        store.finish_if_held("0" * 32, "w1")
