"""Fixtures for the job layer: every store test runs over SQLite (a temp file) and the real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipelines.schema import JobRequest
from serve_app.jobs.models import JobRecord
from serve_app.jobs.storage import LocalStorage
from serve_app.jobs.store import JobStore, PostgresJobStore, SQLiteJobStore

# `make test` (.ci/services.sh) creates this role and database; trust auth accepts it as well.
PG_URL = os.environ.get("VT_TEST_POSTGRES_URL", "postgresql://vt_test:vt_test@127.0.0.1:5432/test")

StoreFactory = Callable[[], JobStore]


def _postgres_reachable() -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not _postgres_reachable():
        # Never a silent skip: `make test` installs and starts PostgreSQL, so an absent one is a failure.
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL}; `make test` starts it (or set VT_TEST_POSTGRES_URL)")
    return PG_URL


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens new store objects over ONE database (a restart, or a second process, is a second object)."""
    opened: list[JobStore] = []
    if request.param == "sqlite":
        db = tmp_path / "jobs.db"

        def make() -> JobStore:
            opened.append(SQLiteJobStore(db))
            return opened[-1]

        yield make
    else:
        url = request.getfixturevalue("postgres_url")
        table = f"vt_test_jobs_{uuid.uuid4().hex[:12]}"  # unique per test, so parallel runs never collide

        def make() -> JobStore:
            opened.append(PostgresJobStore(url, table=table))
            return opened[-1]

        yield make
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}, {table}_rate")  # the jobs and the shared rate limits
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> JobStore:
    return store_factory()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteJobStore]:
    store = SQLiteJobStore(tmp_path / "jobs.db")
    yield store
    store.close()


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "var")


def _make_record(**fields: object) -> JobRecord:
    request = JobRequest(input="/media/in.mp4", target_languages=["es"])
    return JobRecord.model_validate({"request": request, **fields})


@pytest.fixture
def make_record() -> Callable[..., JobRecord]:
    """Builds a JobRecord for a made-up input (store tests never read it)."""
    return _make_record
