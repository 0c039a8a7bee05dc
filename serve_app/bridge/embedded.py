"""``BackgroundBridge``: the consumer inside a host that is not an asyncio app (the Serve job runner).

The ``Bridge`` runs on an event loop of its own in a daemon thread. It connects in the background, trying
again every ``queue.reconnect_interval_s`` while the broker is unreachable (a replica must not fail to start
because the broker is late), and ``stop()`` stops it as ``run_bridge`` does on SIGTERM: consuming ends,
in-flight messages finish and are acked (or go back to the broker), the connection closes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

from aio_pika.exceptions import AMQPError

from serve_app.bridge.main import build_bridge

if TYPE_CHECKING:
    from configs.settings import Settings
    from serve_app.bridge.methods import BridgeModels
    from serve_app.jobs.service import JobService

logger = logging.getLogger(__name__)


class BackgroundBridge:
    """``start()`` returns at once; ``connected`` says whether it consumes; ``stop()`` blocks until it is closed."""

    def __init__(
        self, settings: Settings, service: JobService, *, models: BridgeModels | None = None, name: str | None = None
    ) -> None:
        self.settings = settings
        self.bridge = build_bridge(settings, service, models=models, name=name)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run_loop, name="vt-bridge", daemon=True)
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._starter: asyncio.Future[None] | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self.thread.start()
        self._starter = asyncio.run_coroutine_threadsafe(self._connect(), self.loop)  # type: ignore[assignment]

    async def _connect(self) -> None:
        url = self.bridge.amqp_url.split("@")[-1]
        while not self._stopping.is_set():
            try:
                await self.bridge.start()
            except (TimeoutError, OSError, AMQPError) as exc:
                logger.warning("bridge: cannot connect to %s yet (%s); trying again", url, exc)
                if self.bridge.connection is not None:
                    await self.bridge.connection.close()
                await asyncio.sleep(self.settings.queue.reconnect_interval_s)
                continue
            self._connected.set()
            return

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Stop consuming, let in-flight messages finish (``queue.shutdown_timeout_s`` unless ``timeout``), close."""
        if not self.thread.is_alive():
            return
        self._stopping.set()
        wait = (self.settings.queue.shutdown_timeout_s if timeout is None else timeout) + 10.0
        if self._starter is not None:
            self._starter.cancel()
        if self._connected.is_set():
            future = asyncio.run_coroutine_threadsafe(self.bridge.stop(timeout), self.loop)
            try:
                future.result(wait)
            except Exception:
                logger.warning("bridge: unclean stop", exc_info=True)
        try:
            asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self.loop).result(10.0)
        except Exception:
            logger.warning("bridge: tasks left at stop", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10.0)


async def _cancel_the_rest() -> None:
    """Cancel what the closed connection left scheduled (so no coroutine is dropped un-awaited with the loop)."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
