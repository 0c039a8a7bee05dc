"""Issue 12, item 15: rate limits shared by every ingress replica (``serve_app.rate_limits``), over SQLite and
PostgreSQL. Each store object below stands for one replica; they share one database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from serve_app import rate_limits
from serve_app.auth import TokenBuckets
from serve_app.jobs.store import JobStore
from serve_app.rate_limits import StoreTokenBuckets

StoreFactory = Callable[[], JobStore]


def test_replicas_share_one_bucket(store_factory: StoreFactory) -> None:
    replicas = [StoreTokenBuckets(store_factory(), 0.1, 3) for _ in range(3)]  # type: ignore[arg-type]
    taken = [replicas[i % 3].take("ip:10.0.0.1") for i in range(5)]
    assert taken[:3] == [0, 0, 0] and taken[3] >= 1 and taken[4] >= 1  # the burst once, not once per replica
    assert replicas[1].take("ip:10.0.0.2") == 0  # another client has its own bucket
    alone = [TokenBuckets(0.1, 3) for _ in range(3)]  # what the replicas would allow each on their own
    assert [alone[i % 3].take("ip:10.0.0.1") for i in range(5)] == [0, 0, 0, 0, 0]


def test_a_shared_bucket_refills_by_the_databases_clock(store_factory: StoreFactory) -> None:
    store = store_factory()
    buckets = StoreTokenBuckets(store, 0.1, 1)  # type: ignore[arg-type]
    assert buckets.take("k") == 0 and buckets.take("k") >= 5  # a token every 10 s
    with store._tx() as conn:  # type: ignore[attr-defined]
        conn.execute(f"UPDATE {buckets.table} SET at = at - 25")  # 25 s later by the database's clock
    assert buckets.take("k") == 0 and buckets.take("k") >= 5  # refilled, capped at the burst of 1


def test_full_buckets_are_dropped_so_the_table_stays_small(
    store_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limits, "PRUNE_ONE_IN", 10**9)
    store = store_factory()
    buckets = StoreTokenBuckets(store, 0.1, 2)  # type: ignore[arg-type]
    for identity in ("a", "b", "c"):
        buckets.take(identity)
    with store._tx() as conn:  # type: ignore[attr-defined]
        conn.execute(f"UPDATE {buckets.table} SET at = at - 30 WHERE identity <> 'c'")  # full again after 20 s
    monkeypatch.setattr(rate_limits, "PRUNE_ONE_IN", 1)
    buckets.take("d")
    assert buckets.size() == 2  # c (still short of a token) and d
    assert not StoreTokenBuckets(store_factory(), 0, 5).enabled  # type: ignore[arg-type]


def test_two_ingress_replicas_enforce_one_limit_over_http(tmp_path: Path) -> None:
    """Two apps over one job store (two replicas): with rate_limit_shared the client gets the burst once."""
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application
    from tests.serve_app.conftest import FakeASR, FakeTranslator, FakeTTS, make_services, make_settings

    def statuses(shared: bool, root: Path) -> list[int]:
        service = {"rate_limit_ip_per_s": 0.05, "rate_limit_burst": 4, "rate_limit_shared": shared}
        fakes: dict[str, Any] = {"asr": FakeASR(), "translator": FakeTranslator(), "tts": FakeTTS()}
        services = [make_services(make_settings(root, service=service), fakes) for _ in range(2)]
        apps = [TestClient(get_application(services=s), base_url="http://localhost") for s in services]
        try:
            return [apps[i % 2].get("/jobs").status_code for i in range(8)]
        finally:
            for s in services:
                s.jobs.store.close()

    assert statuses(True, tmp_path / "shared") == [200] * 4 + [429] * 4
    assert statuses(False, tmp_path / "apart") == [200] * 8  # per replica: twice the burst
