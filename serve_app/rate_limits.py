"""Rate limits shared by every ingress replica: the token buckets in the job store's database.

``TokenBuckets`` (``serve_app.auth``) lives in one process, so with N ingress replicas a client gets N times the
configured rate. With ``service.rate_limit_shared`` the buckets are rows of ``<jobs table>_rate`` in the job
store's database instead (SQLite or PostgreSQL), read and written in one write transaction per request, timed
by the database's clock (replicas on several hosts need not agree on the time). That costs a write per API
request; it is meant for several replicas over PostgreSQL.

A bucket that has refilled completely is the same as no row, so such rows are deleted now and then: the table
holds only the identities seen within the last ``burst / rate`` seconds.
"""

from __future__ import annotations

import random
from typing import Any

from serve_app.auth import RateLimiter, spend
from serve_app.jobs.store import PostgresJobStore, SQLiteJobStore

PRUNE_ONE_IN = 100  # requests between clean-ups, on average

_NOW = {
    SQLiteJobStore: "SELECT (julianday('now') - 2440587.5) * 86400.0",
    PostgresJobStore: "SELECT extract(epoch FROM clock_timestamp())::double precision",
}


class StoreTokenBuckets(RateLimiter):
    """``RateLimiter`` over a SQL job store. Blocking (a database round trip): call ``take`` off the event loop."""

    blocking = True

    def __init__(self, store: SQLiteJobStore | PostgresJobStore, rate_per_s: float, burst: int) -> None:
        super().__init__(rate_per_s, burst)
        self.store = store
        self.table = f"{store.table}_rate"
        self._now = _NOW[type(store)]
        if self.enabled:
            with store._tx() as conn:
                if isinstance(store, PostgresJobStore):  # concurrent CREATEs collide in the catalog
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.table} (identity TEXT PRIMARY KEY,"
                    " tokens DOUBLE PRECISION NOT NULL, at DOUBLE PRECISION NOT NULL)"
                )

    def take(self, identity: str) -> int:
        if not self.enabled:
            return 0
        q = self.store._q
        with self.store._tx() as conn:
            now = float(conn.execute(self._now).fetchone()[0])  # type: ignore[index]
            row = conn.execute(
                q(f"SELECT tokens, at FROM {self.table} WHERE identity = ?" + self.store._for_update), (identity,)
            ).fetchone()
            tokens, at = (self.burst, now) if row is None else (float(row[0]), float(row[1]))
            tokens, wait = spend(tokens, now - at, self.rate, self.burst)
            conn.execute(
                q(f"INSERT INTO {self.table} (identity, tokens, at) VALUES (?, ?, ?)"
                  " ON CONFLICT (identity) DO UPDATE SET tokens = excluded.tokens, at = excluded.at"),
                (identity, tokens, now),
            )  # fmt: skip
            if random.randrange(PRUNE_ONE_IN) == 0:
                self._prune(conn, now)
        return wait

    def _prune(self, conn: Any, now: float) -> None:
        """Delete the buckets that are full again (as good as absent)."""
        full_after_s = self.burst / self.rate
        conn.execute(self.store._q(f"DELETE FROM {self.table} WHERE at < ?"), (now - full_after_s,))

    def size(self) -> int:
        """How many buckets are kept (tests, monitoring)."""
        with self.store._tx(write=False) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])  # type: ignore[index]
