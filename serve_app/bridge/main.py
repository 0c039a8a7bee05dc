"""Entrypoints: ``run_bridge`` (blocking, for ``videotranslator bridge``) and ``build_bridge`` (for the Serve app).

Each ``run_bridge`` process is one consumer plus, by default, one ``JobWorker``: handlers scale out by
running more processes. ``python -m serve_app.bridge.main [--amqp-url URL] [--no-worker]`` runs it too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from aio_pika.exceptions import AMQPError

from serve_app.bridge.consumer import Bridge
from serve_app.bridge.methods import BridgeModels, MethodContext, PipelineModels, build_methods
from serve_app.bridge.rpc import RpcHandler
from serve_app.jobs.wiring import build_job_service

if TYPE_CHECKING:
    from configs.settings import Settings
    from serve_app.jobs.service import JobService

logger = logging.getLogger(__name__)


def _pipeline_factory(settings: Settings):  # type: ignore[no-untyped-def]
    def make():  # type: ignore[no-untyped-def]
        from pipelines.runner import Pipeline

        return Pipeline(settings)

    return make


def build_bridge(
    settings: Settings,
    service: JobService,
    *,
    amqp_url: str | None = None,
    models: BridgeModels | None = None,
    name: str | None = None,
) -> Bridge:
    """A ``Bridge`` over ``service``. ``models`` (ASR + translator for transcribe/translate_text) defaults to
    its own lazily built ``Pipeline``: models load on the first such call, separately from the worker's."""
    ctx = MethodContext(
        service=service,
        models=models or PipelineModels(_pipeline_factory(settings)),
        storage_root=Path(settings.storage.root),
        max_text_items=settings.service.max_text_items,
        max_text_chars=settings.service.max_text_chars,
        input_dir=settings.queue.input_dir,
    )
    handler = RpcHandler(
        build_methods(ctx), max_batch_size=settings.queue.max_batch_size, api_keys=settings.service.api_keys
    )
    return Bridge(settings.queue, handler, service, amqp_url=amqp_url, name=name)


def run_bridge(settings: Settings, amqp_url: str | None = None, *, with_worker: bool = True) -> int:
    """Run one bridge instance (and a JobWorker unless ``with_worker`` is False) until SIGTERM/SIGINT.

    Returns the exit status: 0 after a clean shutdown, 1 when the broker cannot be reached at start-up.
    Raises InsecureStartup for a broker that is not on loopback when no API keys are set.
    """
    from urllib.parse import urlsplit

    from serve_app.auth import require_keys

    host = urlsplit(amqp_url or settings.queue.amqp_url).hostname or "127.0.0.1"
    require_keys(host, settings.service.api_keys, what="the bridge for the broker", otherwise="use a broker on 127.0.0.1")
    return asyncio.run(_serve(settings, amqp_url, with_worker))


async def _serve(settings: Settings, amqp_url: str | None, with_worker: bool) -> int:
    from serve_app.jobs import JobWorker, LocalStorage
    from serve_app.jobs.retention import start_retention

    service = build_job_service(settings)
    bridge = build_bridge(settings, service, amqp_url=amqp_url)
    worker = None
    if with_worker:
        worker = JobWorker(
            service,
            _pipeline_factory(settings),
            max_running_jobs=settings.service.max_running_jobs,
            lease_s=settings.service.job_lease_s,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await bridge.start()
    except (OSError, AMQPError) as exc:
        logger.error("bridge: cannot connect to %s: %s", bridge.amqp_url.split("@")[-1], exc)
        service.store.close()
        return 1
    retention = None
    if worker is not None:
        worker.start()
        if isinstance(service.storage, LocalStorage):
            retention = start_retention(settings, service.store, service.storage)
    logger.info("bridge ready%s", " (with a job worker)" if worker else "")
    await stop.wait()
    logger.info("bridge: shutting down")
    await bridge.stop()
    if retention is not None:
        retention.stop()
    if worker is not None:
        await asyncio.to_thread(worker.stop, settings.queue.shutdown_timeout_s)
        worker.release()  # a job still running past the timeout goes back to the queue now, not at lease expiry
    service.store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app.bridge.main", description="Run the RabbitMQ bridge.")
    parser.add_argument("--amqp-url", default=None, help="default: the queue.amqp_url setting")
    parser.add_argument("--no-worker", action="store_true", help="consume only; run no JobWorker")
    args = parser.parse_args(argv)
    from configs.logging import setup_logging
    from configs.settings import Settings

    settings = Settings()
    setup_logging(settings.LOG_DIR, settings.LOG_LEVEL, console=True)
    from serve_app.errors import InsecureStartup

    try:
        return run_bridge(settings, args.amqp_url, with_worker=not args.no_worker)
    except InsecureStartup as exc:
        logger.error("%s", exc.message)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
