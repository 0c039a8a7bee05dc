"""Access control and hardening for the HTTP API (pure ASGI middleware, so uploads and SSE keep streaming).

``GuardMiddleware``, in this order, for every request except the public paths (the page, its static files,
the health checks and the API docs):

1. **Rate limit per client IP** (``service.rate_limit_ip_per_s``, before auth, so guessing keys is slow too).
2. **API key** (``service.api_keys``): ``Authorization: Bearer <key>``, else 401 ``unauthorized``. With no
   keys configured auth is off (``require_keys`` allows that only on a loopback address).
3. **Rate limit per key** (``service.rate_limit_key_per_s``). Both limits answer 429 ``rate_limited`` with
   Retry-After. They count per ingress replica, or across all of them with ``service.rate_limit_shared``
   (``serve_app.rate_limits``: the buckets in the job store's database).
4. **Job ownership**: the key's owner (a hash of it, ``serve_app.auth.owner_of``) goes into
   ``request.state.owner``; the job routes store it on the jobs they create and list only its jobs, and any
   ``/jobs/{id}/...`` of a job another key created answers 404, exactly as for a job that does not exist.

``SecurityHeadersMiddleware`` adds ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
``Referrer-Policy`` and a Content-Security-Policy (``frame-ancestors 'none'``) to every response that does
not set them itself (the page sets its own CSP; that one is left alone).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app.api.errors import error_response
from serve_app.auth import KeyRing, RateLimiter, TokenBuckets, bearer_token
from serve_app.errors import JobNotFound, RateLimited, Unauthorized

if TYPE_CHECKING:
    from configs.settings import ServiceSettings
    from serve_app.jobs import JobService


PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json",
                          "/favicon.ico"})  # fmt: skip
PUBLIC_PREFIXES = ("/static/",)
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz"})  # probes are never rate limited
_JOB_PATH = re.compile(r"^/jobs/([0-9a-f]{32})(?:/|$)")

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# FastAPI's /docs and /redoc pages load their scripts and styles from jsDelivr and run one inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def job_id_in_path(path: str) -> str | None:
    """The job id a ``/jobs/{id}`` or ``/jobs/{id}/...`` path names (32 hex digits), else None."""
    match = _JOB_PATH.match(path)
    return match.group(1) if match else None


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class GuardMiddleware:
    """Rate limits, API keys and job ownership (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, service: ServiceSettings, jobs: JobService) -> None:
        self.app = app
        self.keys = KeyRing(service.api_keys)
        buckets: Callable[[float, int], RateLimiter] = TokenBuckets  # per replica
        if service.rate_limit_shared:  # one limit across the replicas, in the job store's database
            from serve_app.rate_limits import StoreTokenBuckets

            buckets = partial(StoreTokenBuckets, jobs.store)  # type: ignore[arg-type]
        self.per_ip = buckets(service.rate_limit_ip_per_s, service.rate_limit_burst)
        self.per_key = buckets(service.rate_limit_key_per_s, service.rate_limit_burst)
        self.jobs = jobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._check(scope)
        except (RateLimited, Unauthorized, JobNotFound) as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _check(self, scope: Scope) -> None:
        path = str(scope.get("path", ""))
        if path not in UNLIMITED_PATHS:
            await self._limit(self.per_ip, "ip:" + client_ip(scope), "this address")
        if is_public(path) or not self.keys.enabled:
            return
        owner = self.keys.owner(bearer_token(_header(scope, b"authorization")))
        if owner is None:
            raise Unauthorized("missing or invalid API key: send 'Authorization: Bearer <key>'")
        await self._limit(self.per_key, owner, "this API key")
        scope.setdefault("state", {})["owner"] = owner
        job_id = job_id_in_path(path)
        if job_id:
            record = await asyncio.to_thread(self.jobs.store.get, job_id)
            if record is not None and record.owner != owner:  # another key's job looks like no job at all
                raise JobNotFound(f"no job with id {job_id}")

    @staticmethod
    async def _limit(buckets: RateLimiter, identity: str, who: str) -> None:
        if not buckets.enabled:
            return
        wait = await asyncio.to_thread(buckets.take, identity) if buckets.blocking else buckets.take(identity)
        if wait:
            raise RateLimited(f"too many requests from {who}; retry in {wait} s", retry_after_s=wait)


class SecurityHeadersMiddleware:
    """Adds the security headers to every response that lacks them (an existing CSP is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        csp = (DOCS_CSP if path in ("/docs", "/redoc") else API_CSP).encode()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {bytes(k).lower() for k, _ in headers}
                for name, value in (*SECURITY_HEADERS, (b"content-security-policy", csp)):
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_wrapper)
