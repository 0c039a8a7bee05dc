"""The overlap chain (pipelines.overlap): order, bounded queues, errors and cancellation across threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pipelines.errors import JobCancelled, ModelError
from pipelines.overlap import StageClock, run_chain


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("vt-")}


def test_items_pass_through_every_stage_in_order_in_threads_of_their_own() -> None:
    seen: dict[str, set[str]] = {"source": set(), "double": set(), "label": set()}

    def source() -> Iterator[int]:
        for i in range(50):
            seen["source"].add(threading.current_thread().name)
            yield i

    def double(items: Iterator[int]) -> Iterator[int]:
        for i in items:
            seen["double"].add(threading.current_thread().name)
            yield 2 * i

    def label(items: Iterator[int]) -> Iterator[str]:
        seen["label"].add(threading.current_thread().name)
        return (f"n{i}" for i in items)

    out = list(run_chain(source(), ("double", double), ("label", label), maxsize=2))
    assert out == [f"n{2 * i}" for i in range(50)]
    assert seen == {"source": {"vt-source"}, "double": {"vt-double"}, "label": {"vt-label"}}
    assert not _threads()  # all joined


def test_a_fast_stage_waits_for_a_slow_one_bounded_queues() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(100):
            produced.append(i)
            yield i

    chain = run_chain(source(), ("same", lambda items: items), maxsize=3)
    assert next(chain) == 0
    time.sleep(0.3)
    # in the queues at most 2 x 3 items, one in each thread's hands, one taken: far from all 100
    assert len(produced) <= 2 * 3 + 2 + 1
    chain.close()
    assert not _threads()


def test_an_error_in_a_stage_is_raised_as_is_and_stops_the_others() -> None:
    closed = threading.Event()
    boom = ModelError("the model broke on item 3")

    def source() -> Iterator[int]:
        try:
            yield from range(10_000)
        finally:
            closed.set()

    def fail_at_3(items: Iterator[int]) -> Iterator[int]:
        for i in items:
            if i == 3:
                raise boom
            yield i

    got: list[int] = []
    with pytest.raises(ModelError) as info:
        got.extend(run_chain(source(), ("fail", fail_at_3), ("after", lambda items: items), maxsize=2))
    assert info.value is boom and got == [0, 1, 2]
    assert closed.is_set() and not _threads()  # the source stopped early and every thread is joined


def test_an_error_in_the_source_reaches_the_caller_through_the_stages() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise ModelError("ASR failed mid-stream")

    seen: list[int] = []

    def stage(items: Iterator[int]) -> Iterator[int]:
        for i in items:
            seen.append(i)
            yield i

    with pytest.raises(ModelError, match="mid-stream"):
        list(run_chain(source(), ("stage", stage)))
    assert seen == [1] and not _threads()


def test_cancel_stops_a_running_chain_promptly() -> None:
    stop_at = time.monotonic() + 0.2

    def endless() -> Iterator[int]:
        i = 0
        while True:
            time.sleep(0.01)
            i += 1
            yield i

    started = time.monotonic()
    with pytest.raises(JobCancelled):
        list(run_chain(endless(), ("same", lambda items: items), should_cancel=lambda: time.monotonic() > stop_at))
    assert time.monotonic() - started < 2.0 and not _threads()


def test_the_clock_counts_work_not_waiting() -> None:
    def source() -> Iterator[int]:
        for i in range(3):
            time.sleep(0.1)  # work of the source
            yield i

    def fast(items: Iterator[int]) -> Iterator[int]:
        yield from items  # waits 0.3 s for its input, works ~0

    clock = StageClock()
    assert list(run_chain(source(), ("fast", fast), clock=clock)) == [0, 1, 2]
    assert clock.busy_s["source"] >= 0.29
    assert clock.busy_s["fast"] < clock.busy_s["source"] / 2
