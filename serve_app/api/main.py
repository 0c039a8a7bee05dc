"""The spec's app factory: ``get_application(settings=None, *, services=None) -> FastAPI``.

In the Serve app, ``serve_app.app.build_app`` passes services over deployment handles; without Ray,
``Services.local(settings)`` runs the stages in this process (tests, plain uvicorn).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from configs.settings import Settings
from serve_app.api import errors
from serve_app.api.csrf import CSRFMiddleware
from serve_app.api.hosts import AllowedHostsMiddleware
from serve_app.api.routes import files, health, jobs, segments, uploads, v1, web
from serve_app.api.schemas import ErrorEnvelope
from serve_app.api.security import GuardMiddleware, SecurityHeadersMiddleware, job_id_in_path
from serve_app.api.services import Services

logger = logging.getLogger("serve_app.api.access")


class AccessLogMiddleware:
    """One log line per request (method, path, status, ms), with ``job_id`` when the request concerns a
    job (from the path, or set by the route in ``request.state.job_id``). Pure ASGI, so streams stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            job_id = scope.get("state", {}).get("job_id") or job_id_in_path(path)
            ms = (time.perf_counter() - started) * 1000
            extra = {"job_id": job_id} if job_id else {}
            suffix = f" [job {job_id}]" if job_id else ""
            logger.info("%s %s %d %.1fms%s", scope.get("method"), path, status, ms, suffix, extra=extra)


def _closing_publisher(services: Services) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: in queue mode, close the broker connection on shutdown (on the loop that opened it;
    left to the garbage collector, its close coroutine is never awaited)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        publisher = services.jobs.publisher
        if publisher is not None:
            try:
                await asyncio.wait_for(publisher.close(), 5.0)
            except Exception:  # shutting down: a broker that is gone must not fail the stop
                logger.warning("queue: closing the publisher's connection failed", exc_info=True)

    return lifespan


def get_application(
    settings: Settings | None = None, *, services: Services | None = None, web_dir: Path | None = None
) -> FastAPI:
    """The FastAPI ingress. ``services`` default to in-process ones built from ``settings``."""
    if settings is None:
        settings = services.settings if services is not None else Settings()
    if services is None:
        services = Services.local(settings)
    app = FastAPI(
        lifespan=_closing_publisher(services),
        title=settings.PROJECT_NAME,
        version=settings.VERSION,
        description="Translate videos: subtitles and a dubbed voice track. Every JSON answer is the envelope "
        "{status, message, data} or {status: error, message, error: {code, detail}}.",
        debug=False,  # never a traceback in a body, whatever DEBUG says
        # Every error is the envelope; documenting 4XX also replaces FastAPI's own 422 schema (HTTPValidationError).
        responses={"4XX": {"model": ErrorEnvelope, "description": "the error envelope"},
                   "5XX": {"model": ErrorEnvelope, "description": "the error envelope"}},
    )  # fmt: skip
    app.state.services = services
    app.state.web_dir = Path(web_dir) if web_dir is not None else web.default_web_dir()
    errors.install(app)
    for router in (web.router, health.router, uploads.router, files.router, jobs.router, v1.router):
        app.include_router(router)
    app.include_router(segments.router)  # the web page's config, translation edits (re-dub), versions
    app.mount("/static", StaticFiles(directory=app.state.web_dir), name="static")
    app.add_middleware(CSRFMiddleware, allowed_hosts=settings.service.allowed_hosts)
    app.add_middleware(GuardMiddleware, service=settings.service, jobs=services.jobs)  # keys, rate limits, owners
    app.add_middleware(AllowedHostsMiddleware, allowed_hosts=settings.service.allowed_hosts)  # DNS rebinding
    if settings.service.cors_origins:  # CORS is off unless origins are configured
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.service.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-CSRF-Token", "Range", "Content-Range"],
            expose_headers=["Upload-Offset", "Upload-Length", "Location"],
        )  # fmt: skip
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
