"""The job store: a ``JobStore`` protocol with SQLite (default) and PostgreSQL implementations.

Both keep each record as JSON plus indexed columns (id, state, created_at, idempotency_key, owner) and
are safe to use from many threads; records survive reopening the store. ``claim_next`` is atomic across
processes: SQLite takes the database write lock (``BEGIN IMMEDIATE``), Postgres uses
``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent workers never claim the same job.

Leases: ``claim_next(worker_id)`` records who runs the job; that worker ``heartbeat``s it, and
``requeue_interrupted(stale_after_s=...)`` puts back only running jobs whose heartbeat is stale, so several
workers (Serve replicas, bridges) can share one store and none requeues another's live job. Heartbeats are
stamped and compared on the STORE's clock (PostgreSQL's ``clock_timestamp()``, SQLite's ``'now'``), never
a worker's, so hosts whose clocks disagree still agree on who holds a lease. ``finish_if_held`` is the
fence: it publishes (a callback) and records the result in one write transaction, only for the holder.

Why one module of ~520 lines: the two implementations are the same state machine (transitions, the queue cap
counted inside the insert, leases) in two SQL dialects; side by side, a change to one is seen next to the other.
The next cut, if it grows: ``store/{protocol,sqlite,postgres}.py``.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from serve_app.errors import JobNotFound, QueueFull
from serve_app.jobs.models import TERMINAL, JobRecord, JobState, utcnow

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,50}$")

STORE_NOW: Any = type("StoreNow", (), {"__repr__": lambda self: "STORE_NOW"})()
"""A field value for ``transition``/``update``: the store's clock at the write (``heartbeat_at=STORE_NOW``)."""


@runtime_checkable
class JobStore(Protocol):
    """Persistent job records. Every method is synchronous and thread-safe."""

    def create(self, record: JobRecord, *, max_queued: int | None = None) -> JobRecord:
        """Insert ``record``. If its ``idempotency_key`` already exists FOR ITS OWNER, return the EXISTING record
        instead (keys are per owner: another owner's same key is another job, never seen from here).
        With ``max_queued``: raise QueueFull when that many jobs are queued already, counted and inserted in
        one step (two callers can never both take the last place)."""
        ...

    def get(self, job_id: str) -> JobRecord | None:
        """The record, or None when there is no such job."""
        ...

    def get_by_idempotency_key(self, key: str, *, owner: str | None) -> JobRecord | None:
        """The record ``owner`` created with ``key``, or None (another owner's record with that key is None)."""
        ...

    def list(
        self,
        *,
        owner: str | None = None,
        limit: int = 100,
        offset: int = 0,
        states: Iterable[JobState] | None = None,
    ) -> builtins.list[JobRecord]:
        """Records newest first, optionally only ``owner``'s and only those in ``states``."""
        ...

    def update(self, job_id: str, **fields: Any) -> JobRecord:
        """Set ``fields`` (JobRecord field names) and ``updated_at``; raises JobNotFound, ValueError on bad fields."""
        ...

    def transition(
        self,
        job_id: str,
        from_states: Iterable[JobState],
        *,
        if_worker_id: str | None = None,
        if_output_version: int | None = None,
        max_queued: int | None = None,
        **fields: Any,
    ) -> JobRecord | None:
        """Like ``update`` but only if the job is in one of ``from_states`` (and, with ``if_worker_id``, still
        held by that worker; with ``if_output_version``, its outputs still at that version): an atomic
        compare-and-set; else None. A job that enters ``queued`` this way (a
        re-dub) joins the END of the queue; with ``max_queued`` it raises QueueFull, like ``create``."""
        ...

    def claim_next(self, worker_id: str | None = None) -> JobRecord | None:
        """Atomically move the longest-queued ``queued`` job to ``running`` (held by ``worker_id``, heartbeat now) and
        return it; None when none is queued."""
        ...

    def heartbeat(self, worker_id: str, job_ids: Iterable[str]) -> builtins.list[str]:
        """Renew the lease on those of ``job_ids`` that are running and held by ``worker_id``; returns them.
        An id missing from the answer was taken over (or finished) and must no longer be written to."""
        ...

    def count(self, states: Iterable[JobState]) -> int:
        """How many jobs are in any of ``states``."""
        ...

    def finish_if_held(
        self, job_id: str, worker_id: str, *, publish: Callable[[], object] | None = None, **fields: Any
    ) -> JobRecord | None:
        """The fence before a worker's outputs become visible: in ONE write transaction (the job's row
        locked, so no other worker can take it meanwhile), if the job is running and held by ``worker_id``,
        call ``publish`` and set ``fields``; else do neither and return None. ``publish`` raising rolls the
        write back and propagates."""
        ...

    def requeue_interrupted(
        self, stale_after_s: float | None = None, *, worker_id: str | None = None
    ) -> builtins.list[str]:
        """Recovery: ``running`` jobs go back to ``queued`` (those with a pending cancel become ``cancelled``).
        With ``stale_after_s`` only jobs whose last heartbeat (else last update) is older than that many
        seconds; with ``worker_id`` only that worker's jobs (its graceful stop). Returns the ids requeued."""
        ...

    def close(self) -> None:
        """Release connections. The store must not be used afterwards."""
        ...


def idempotency_column(owner: str | None, key: str | None) -> str | None:
    """What the unique ``idempotency_key`` column holds: the key, scoped to its owner, so one owner can neither
    find nor take another's keys. Without an owner (auth off: one tenant) the key itself."""
    if key is None or owner is None:
        return key
    return "owner-sha256:" + hashlib.sha256(f"{owner}\n{key}".encode()).hexdigest()


def _apply(record: JobRecord, fields: dict[str, Any]) -> JobRecord:
    unknown = set(fields) - set(JobRecord.model_fields) | ({"id", "created_at"} & set(fields))
    if unknown:
        raise ValueError(f"cannot update job fields {sorted(unknown)}")
    data = {**record.model_dump(), **fields, "updated_at": utcnow(), "version": record.version + 1}
    if JobState(data["state"]) in TERMINAL:  # a re-dub is pending only while queued or running: every way
        data["redub"] = None  # to an end (done, failed, cancelled, by any caller) drops it here, once
    return JobRecord.model_validate(data)


class _SQLJobStore:
    """The SQL shared by both back ends. Queries use ``?`` placeholders and ``{t}`` for the table."""

    table: str
    _placeholder = "?"
    _seq = "rowid"
    _for_update = ""
    _skip_locked = ""

    def _q(self, sql: str) -> str:
        return sql.replace("{t}", self.table).replace("?", self._placeholder)

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def _json(self, record: JobRecord) -> Any:
        return record.model_dump_json()

    def _time(self, value: datetime) -> Any:
        return value

    def _now(self, conn: Any) -> datetime:
        """The store's clock (the database server's, not this host's): leases are stamped and compared on it."""
        raise NotImplementedError

    def _fill_now(self, conn: Any, fields: dict[str, Any]) -> dict[str, Any]:
        if any(v is STORE_NOW for v in fields.values()):
            now = self._now(conn)
            fields = {k: now if v is STORE_NOW else v for k, v in fields.items()}
        return fields

    @staticmethod
    def _load(value: Any) -> JobRecord:
        if isinstance(value, (str, bytes)):
            return JobRecord.model_validate_json(value)
        return JobRecord.model_validate(value)

    def _write(self, conn: Any, record: JobRecord, *, requeued: bool = False) -> None:
        sql = "UPDATE {t} SET state = ?, owner = ?, idempotency_key = ?, record = ?"
        key = idempotency_column(record.owner, record.idempotency_key)
        params: builtins.list[Any] = [record.state.value, record.owner, key, self._json(record)]
        if requeued:  # its place in the queue: now, behind every job already waiting
            sql += ", queued_at = ?"
            params.append(self._time(utcnow()))
        conn.execute(self._q(sql + " WHERE id = ?"), (*params, record.id))

    def _lock_queue(self, conn: Any) -> None:
        """Serialise the capped inserts and requeues (SQLite's BEGIN IMMEDIATE already does)."""

    def _check_room(self, conn: Any, max_queued: int | None) -> None:
        """QueueFull when ``max_queued`` jobs are queued, counted inside the caller's write transaction."""
        if max_queued is None:
            return
        self._lock_queue(conn)
        row = conn.execute(self._q("SELECT COUNT(*) FROM {t} WHERE state = ?"), (JobState.QUEUED.value,)).fetchone()
        if int(row[0]) >= max_queued:
            raise QueueFull(f"too many queued jobs ({max_queued}); try again later")

    def create(self, record: JobRecord, *, max_queued: int | None = None) -> JobRecord:
        with self._tx() as conn:
            key = idempotency_column(record.owner, record.idempotency_key)
            existing = self._by_key(conn, key)  # a repeat is answered even on a full queue
            if existing is not None:
                return existing
            if record.state is JobState.QUEUED:
                self._check_room(conn, max_queued)
            created = self._time(record.created_at)
            cur = conn.execute(
                self._q(
                    "INSERT INTO {t} (id, state, created_at, queued_at, idempotency_key, owner, record)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                (record.id, record.state.value, created, created, key, record.owner, self._json(record)),
            )  # fmt: skip
            if cur.rowcount == 1:
                return record
            existing = self._by_key(conn, key)  # another caller inserted the same key meanwhile
            if existing is not None:
                return existing
        raise ValueError(f"a job with id {record.id} already exists")

    def _by_key(self, conn: Any, key: str | None) -> JobRecord | None:
        """The record whose idempotency column is ``key`` (already scoped: ``idempotency_column``)."""
        if key is None:
            return None
        row = conn.execute(self._q("SELECT record FROM {t} WHERE idempotency_key = ?"), (key,)).fetchone()
        return None if row is None else self._load(row[0])

    def get(self, job_id: str) -> JobRecord | None:
        with self._tx(write=False) as conn:
            row = conn.execute(self._q("SELECT record FROM {t} WHERE id = ?"), (job_id,)).fetchone()
        return None if row is None else self._load(row[0])

    def get_by_idempotency_key(self, key: str, *, owner: str | None) -> JobRecord | None:
        with self._tx(write=False) as conn:
            return self._by_key(conn, idempotency_column(owner, key))

    def list(
        self,
        *,
        owner: str | None = None,
        limit: int = 100,
        offset: int = 0,
        states: Iterable[JobState] | None = None,
    ) -> builtins.list[JobRecord]:
        clauses: builtins.list[str] = []
        params: builtins.list[Any] = []
        if owner is not None:
            clauses.append("owner = ?")
            params.append(owner)
        if states is not None:
            values = [JobState(s).value for s in states] or [""]
            clauses.append(f"state IN ({', '.join('?' * len(values))})")
            params += values
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        sql = f"SELECT record FROM {{t}} {where}ORDER BY created_at DESC, {self._seq} DESC LIMIT ? OFFSET ?"
        with self._tx(write=False) as conn:
            rows = conn.execute(self._q(sql), (*params, max(0, limit), max(0, offset))).fetchall()
        return [self._load(r[0]) for r in rows]

    def _modify(
        self,
        job_id: str,
        from_states: Iterable[JobState] | None,
        fields: dict[str, Any],
        if_worker_id: str | None = None,
        max_queued: int | None = None,
        if_output_version: int | None = None,
        publish: Callable[[], object] | None = None,
    ) -> JobRecord | None:
        with self._tx() as conn:
            row = conn.execute(self._q("SELECT record FROM {t} WHERE id = ?" + self._for_update), (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(f"no job with id {job_id}")
            record = self._load(row[0])
            if from_states is not None and record.state not in set(from_states):
                return None
            if if_worker_id is not None and record.worker_id != if_worker_id:
                return None
            if if_output_version is not None and record.output_version != if_output_version:
                return None
            if publish is not None:  # the job's row is locked: no other worker can take the job meanwhile
                publish()
            new = _apply(record, self._fill_now(conn, fields))
            requeued = new.state is JobState.QUEUED and record.state is not JobState.QUEUED
            if requeued:
                self._check_room(conn, max_queued)
            self._write(conn, new, requeued=requeued)
            return new

    def update(self, job_id: str, **fields: Any) -> JobRecord:
        record = self._modify(job_id, None, fields)
        assert record is not None
        return record

    def transition(
        self,
        job_id: str,
        from_states: Iterable[JobState],
        *,
        if_worker_id: str | None = None,
        if_output_version: int | None = None,
        max_queued: int | None = None,
        **fields: Any,
    ) -> JobRecord | None:
        return self._modify(job_id, builtins.list(from_states), fields, if_worker_id, max_queued, if_output_version)

    def claim_next(self, worker_id: str | None = None) -> JobRecord | None:
        order = f"COALESCE(queued_at, created_at), {self._seq}"
        sql = f"SELECT record FROM {{t}} WHERE state = ? ORDER BY {order} LIMIT 1{self._skip_locked}"
        with self._tx() as conn:
            row = conn.execute(self._q(sql), (JobState.QUEUED.value,)).fetchone()
            if row is None:
                return None
            record = self._load(row[0])
            now = self._now(conn)
            fields = {"state": JobState.RUNNING, "started_at": record.started_at or utcnow(), "eta_s": None}
            new = _apply(record, {**fields, "worker_id": worker_id, "heartbeat_at": now})
            self._write(conn, new)
            return new

    def heartbeat(self, worker_id: str, job_ids: Iterable[str]) -> builtins.list[str]:
        held: builtins.list[str] = []
        ids = builtins.list(dict.fromkeys(job_ids))
        if not ids:
            return held
        with self._tx() as conn:
            now = self._now(conn)
            for job_id in ids:
                row = conn.execute(
                    self._q("SELECT record FROM {t} WHERE id = ?" + self._for_update), (job_id,)
                ).fetchone()
                record = None if row is None else self._load(row[0])
                if record is None or record.state is not JobState.RUNNING or record.worker_id != worker_id:
                    continue
                # Not a revision: version and updated_at stay, so watchers see no change.
                self._write(conn, record.model_copy(update={"heartbeat_at": now}))
                held.append(job_id)
        return held

    def finish_if_held(
        self, job_id: str, worker_id: str, *, publish: Callable[[], object] | None = None, **fields: Any
    ) -> JobRecord | None:
        return self._modify(job_id, [JobState.RUNNING], fields, worker_id, publish=publish)

    def count(self, states: Iterable[JobState]) -> int:
        values = [JobState(s).value for s in states]
        if not values:
            return 0
        marks = ", ".join("?" * len(values))
        with self._tx(write=False) as conn:
            row = conn.execute(self._q(f"SELECT COUNT(*) FROM {{t}} WHERE state IN ({marks})"), values).fetchone()
        return int(row[0])

    def requeue_interrupted(
        self, stale_after_s: float | None = None, *, worker_id: str | None = None
    ) -> builtins.list[str]:
        requeued: builtins.list[str] = []
        released = {"worker_id": None, "heartbeat_at": None, "eta_s": None}
        with self._tx() as conn:
            now = self._now(conn)
            cutoff = None if stale_after_s is None else now - timedelta(seconds=stale_after_s)
            sql = "SELECT record FROM {t} WHERE state = ?" + self._for_update
            rows = conn.execute(self._q(sql), (JobState.RUNNING.value,)).fetchall()
            for row in rows:
                record = self._load(row[0])
                if worker_id is not None and record.worker_id != worker_id:
                    continue
                if cutoff is not None and (record.heartbeat_at or record.updated_at) > cutoff:
                    continue  # a live worker holds it
                if record.cancel_requested:
                    new = _apply(record, {**released, "state": JobState.CANCELLED, "finished_at": now})
                else:
                    new = _apply(record, {**released, "state": JobState.QUEUED})
                    requeued.append(record.id)
                self._write(conn, new)
        if requeued:
            logger.info("requeued %d interrupted job(s): %s", len(requeued), ", ".join(requeued))
        return requeued


def _check_table(table: str) -> str:
    if not _TABLE_NAME.match(table):
        raise ValueError(f"invalid table name {table!r}")
    return table


class SQLiteJobStore(_SQLJobStore):
    """Jobs in one SQLite file (WAL mode). One connection guarded by a lock; other processes may share the file."""

    def __init__(self, path: str | Path, *, table: str = "jobs") -> None:
        self.table = _check_table(table)
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30.0)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
            with self._tx() as conn:
                conn.execute(
                    self._q(
                        "CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, state TEXT NOT NULL,"
                        " created_at TEXT NOT NULL, idempotency_key TEXT UNIQUE, owner TEXT, record TEXT NOT NULL)"
                    )
                )
                conn.execute(self._q("CREATE INDEX IF NOT EXISTS {t}_state_created ON {t} (state, created_at)"))
                conn.execute(self._q("CREATE INDEX IF NOT EXISTS {t}_owner_created ON {t} (owner, created_at)"))
                columns = {row[1] for row in conn.execute(self._q("PRAGMA table_info({t})"))}
                if "queued_at" not in columns:  # a store made before re-dubs were queued behind new jobs
                    conn.execute(self._q("ALTER TABLE {t} ADD COLUMN queued_at TEXT"))
                conn.execute(self._q("CREATE INDEX IF NOT EXISTS {t}_state_queued ON {t} (state, queued_at)"))
        except BaseException:
            self._conn.close()
            raise

    def _time(self, value: datetime) -> Any:
        # Fixed width, always with microseconds, so text order is time order.
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _now(self, conn: Any) -> datetime:
        # SQLite has no server: its clock is the one of the host running the query (a SQLite store is one
        # host's), read by SQLite itself rather than by the worker code.
        row = conn.execute("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')").fetchone()
        return datetime.fromisoformat(row[0])

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if not write:
                yield self._conn
                return
            # IMMEDIATE takes the write lock up front, so a read-modify-write is atomic across processes.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresJobStore(_SQLJobStore):
    """Jobs in PostgreSQL (psycopg 3, sync) over a ``psycopg_pool.ConnectionPool``: one connection per concurrent
    caller, at most ``max_size`` (a caller beyond that waits up to ``pool_timeout_s``, then PoolTimeout)."""

    _placeholder = "%s"
    _seq = "seq"
    _for_update = " FOR UPDATE"
    _skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, table: str = "jobs", max_size: int = 16, pool_timeout_s: float = 30.0) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.table = _check_table(table)
        self.url = url
        # The schema on a connection of its own: an unreachable server fails here at once (psycopg's
        # OperationalError), not after the pool's timeout.
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            # Two processes creating the same table at once would collide in the catalog; serialise them.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
            conn.execute(
                self._q(
                    "CREATE TABLE IF NOT EXISTS {t} (seq BIGSERIAL, id TEXT PRIMARY KEY, state TEXT NOT NULL,"
                    " created_at TIMESTAMPTZ NOT NULL, idempotency_key TEXT UNIQUE, owner TEXT, record JSONB NOT NULL)"
                )
            )
            conn.execute(self._q("CREATE INDEX IF NOT EXISTS {t}_state_created ON {t} (state, created_at, seq)"))
            conn.execute(self._q("CREATE INDEX IF NOT EXISTS {t}_owner_created ON {t} (owner, created_at)"))
            conn.execute(self._q("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS queued_at TIMESTAMPTZ"))
            conn.execute(self._q("CREATE INDEX IF NOT EXISTS {t}_state_queued ON {t} (state, queued_at, seq)"))
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=max_size,
            timeout=pool_timeout_s,
            check=ConnectionPool.check_connection,  # a connection the server dropped is replaced, not handed out
            name=f"vt-{self.table}",
            num_workers=2,
            open=True,
        )

    def _now(self, conn: Any) -> datetime:
        now: datetime = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        return now.astimezone(UTC)

    def _lock_queue(self, conn: Any) -> None:
        # READ COMMITTED lets two transactions count the same rows; this lock (held to commit) orders them.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.table}:queue",))

    def _json(self, record: JobRecord) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(record.model_dump(mode="json"))

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[psycopg.Connection[Any]]:
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        self._pool.close()


def make_job_store(url: str, **kwargs: Any) -> JobStore:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``postgresql://...`` → a store."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        path = rest.removeprefix("/")
        return SQLiteJobStore(path or ":memory:", **kwargs)
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return PostgresJobStore(url.replace("postgresql+psycopg://", "postgresql://", 1), **kwargs)
    raise ValueError(f"unsupported job store url {url!r}; use sqlite:///PATH or postgresql://...")
