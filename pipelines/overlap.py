"""Overlap inside one job: stages as threads joined by bounded queues.

``run_chain(source, stage, ...)`` runs a lazy source (ASR's segments) and generator stages (segment, translate,
TTS) each in a thread of its own, so a sentence is translated while later speech is still being recognised
and a line is spoken while later ones are being translated. The models release the GIL in their native code
(CTranslate2, llama.cpp through ctypes, ONNX Runtime), so the threads really run side by side.

Why it is correct: each stage sees its items in order and makes the same calls as the sequential run would
(the stages stream by construction: ``segment.iter_sentences``, ``LLMTranslator.translate_stream``); only
when they run changes. Errors: an exception in any stage travels down the queues and is raised, the same
object, from the caller's loop; the other threads stop at their next item. Cancellation: ``should_cancel`` is
polled while waiting and raises ``JobCancelled``. Either way every thread is joined before the caller sees
the error, so no stage is still using a model (the models are shared by the next job) when the job ends.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import JobCancelled

logger = logging.getLogger(__name__)

Stage = Callable[[Iterator[Any]], Iterable[Any]]
POLL_S = 0.05  # how often a waiting thread looks at the stop flag (and the caller at should_cancel)
_END = object()


@dataclass
class _Failed:
    error: BaseException


class _Stopped(BaseException):  # a signal, not an error: BaseException, so no stage's `except Exception` takes it
    """Raised inside a stage thread when the chain stops (an error elsewhere, cancel, or the caller left)."""


@dataclass
class StageClock:
    """Seconds each named stage spent working (not waiting on its queues); read after the chain ends."""

    busy_s: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.busy_s[name] = self.busy_s.get(name, 0.0) + seconds


class _Chain:
    def __init__(self, maxsize: int, should_cancel: Callable[[], bool], clock: StageClock) -> None:
        self.maxsize, self.should_cancel, self.clock = maxsize, should_cancel, clock
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def drain(self, q: queue.Queue[Any], name: str | None = None) -> Iterator[Any]:
        """The items of ``q`` until its end; raises an upstream error as is. In stage ``name``'s thread, stopping
        the chain raises ``_Stopped`` (and the wait is taken off its busy time); in the caller (no name),
        ``should_cancel`` raises ``JobCancelled``."""
        while True:
            if name is None and self.should_cancel():
                raise JobCancelled("the job was cancelled")
            if self.stop.is_set():
                raise _Stopped
            waited = time.perf_counter()
            try:
                item = q.get(timeout=POLL_S)
            except queue.Empty:
                continue
            finally:
                if name is not None:
                    self.clock.add(name, waited - time.perf_counter())
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def put(self, q: queue.Queue[Any], item: Any) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue
        raise _Stopped

    def start(self, name: str, items: Iterable[Any], out: queue.Queue[Any]) -> None:
        def work() -> None:
            it = iter(items)
            try:
                while True:
                    started = time.perf_counter()
                    try:
                        item = next(it)
                    except StopIteration:
                        break
                    finally:
                        self.clock.add(name, time.perf_counter() - started)
                    self.put(out, item)
                self.put(out, _END)
            except _Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed on to the caller, raised there
                try:
                    self.put(out, _Failed(exc))
                except _Stopped:
                    pass
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    try:
                        close()  # a generator stops here (faster-whisper's decoding, the translator's loop)
                    except Exception:  # it is stopping because of another error already
                        logger.debug("closing stage %s failed", name, exc_info=True)

        thread = threading.Thread(target=work, name=f"vt-{name}", daemon=True)
        self.threads.append(thread)
        thread.start()


def run_chain(
    source: Iterable[Any],
    *stages: tuple[str, Stage],
    source_name: str = "source",
    maxsize: int = 8,
    should_cancel: Callable[[], bool] | None = None,
    clock: StageClock | None = None,
) -> Iterator[Any]:
    """The items of ``source`` passed through each ``(name, stage)`` in turn, each in a thread of its own.

    A stage gets the iterator of the items before it and returns (or yields) its own. Queues hold at most
    ``maxsize`` items, so a fast stage waits for a slow one. Raises what a stage raised, or ``JobCancelled``.
    Closing the returned iterator early stops and joins every thread. ``clock`` gets each stage's busy seconds.
    """
    chain = _Chain(max(1, maxsize), should_cancel or (lambda: False), clock or StageClock())
    try:
        q: queue.Queue[Any] = queue.Queue(chain.maxsize)
        chain.start(source_name, source, q)
        for name, stage in stages:
            out: queue.Queue[Any] = queue.Queue(chain.maxsize)
            chain.start(name, _Lazy(stage, chain.drain(q, name)), out)
            q = out
        yield from chain.drain(q)
    finally:
        chain.stop.set()
        for thread in chain.threads:
            thread.join()


class _Lazy:
    """``stage(items)`` called in the stage's own thread on first use (a plain function stage does its work
    when called, and that work belongs to its thread and its clock)."""

    def __init__(self, stage: Stage, items: Iterator[Any]) -> None:
        self.stage, self.items = stage, items
        self.it: Iterator[Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.it is None:
            self.it = iter(self.stage(self.items))
        return next(self.it)

    def close(self) -> None:
        close = getattr(self.it, "close", None)
        if close is not None:
            close()
