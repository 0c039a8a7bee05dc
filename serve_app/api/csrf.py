"""CSRF protection by double-submit cookie.

``GET /`` sets the ``csrftoken`` cookie (random, SameSite=Strict) and embeds the same token in the page
(a ``<meta name="csrf-token">`` and hidden ``csrf_token`` fields). The rule for unsafe methods
(POST, PUT, PATCH, DELETE):

1. A request with an ``Authorization`` header is exempt: browsers never attach one on their own.
2. A request that carries the ``csrftoken`` cookie must also carry the token, either in the
   ``X-CSRF-Token`` header or, for ``multipart/form-data``, in a ``csrf_token`` form field placed
   before the file (the upload is streamed, so the field is checked before any file byte is stored).
   Otherwise: 403 ``csrf_failed``.
3. A request without the cookie is refused when it comes from another site (``Sec-Fetch-Site:
   cross-site|same-site``, or an ``Origin`` that is not this host OR whose name is not in
   ``service.allowed_hosts``); API clients (curl, SDKs) send neither and pass. The Host header is the
   client's to choose (DNS rebinding sends the attacker's name in both), so an Origin equal to it proves
   nothing alone: the origin's name must be an allowed one (``serve_app.api.hosts``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from serve_app.api.errors import CSRFFailed, error_response
from serve_app.api.hosts import HostAllowList, host_name

COOKIE_NAME = "csrftoken"
HEADER_NAME = "x-csrf-token"
FORM_FIELD = "csrf_token"
STATE_KEY = "csrf_expected"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected.encode(), (given or "").encode())


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookie(headers: dict[str, str]) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:  # a malformed Cookie header means no token
        return None
    morsel = jar.get(COOKIE_NAME)
    return morsel.value if morsel is not None and morsel.value else None


def _cross_site(headers: dict[str, str], allowed: HostAllowList) -> bool:
    fetch_site = headers.get("sec-fetch-site", "").lower()
    if fetch_site in {"cross-site", "same-site"}:
        return True
    origin = headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"
    netloc = urlsplit(origin).netloc.lower()
    return netloc != headers.get("host", "").lower() or not allowed.allows(host_name(netloc))


def check(scope: Scope, allowed: HostAllowList) -> str | None:
    """Apply the rule to one request (``allowed``: the names an Origin may have). Returns the token a
    multipart body must carry in ``csrf_token`` (None when nothing is left to check). Raises CSRFFailed."""
    if scope.get("method", "GET") not in UNSAFE_METHODS:
        return None
    headers = _headers(scope)
    if "authorization" in headers:
        return None
    cookie = _cookie(headers)
    if cookie is None:
        if _cross_site(headers, allowed):
            raise CSRFFailed("cross-site request refused: load the page first, then post with its CSRF token")
        return None
    given = headers.get(HEADER_NAME)
    if given is not None:
        if not tokens_match(cookie, given):
            raise CSRFFailed("the CSRF token does not match the csrftoken cookie")
        return None
    if headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return cookie  # checked against the csrf_token field by the streaming form parser
    raise CSRFFailed("missing CSRF token: send the X-CSRF-Token header (or a csrf_token form field)")


class CSRFMiddleware:
    """Pure ASGI middleware (it never touches the body, so uploads keep streaming)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = HostAllowList(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                expected = check(scope, self.allowed)
            except CSRFFailed as exc:
                await error_response(exc)(scope, receive, send)
                return
            if expected is not None:
                scope.setdefault("state", {})[STATE_KEY] = expected
        await self.app(scope, receive, send)
