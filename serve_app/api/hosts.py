"""The Host allow-list (``service.allowed_hosts``): the defence against DNS rebinding.

A page on ``attacker.example`` can make the browser resolve that name to 127.0.0.1 and then call the service on
the user's machine as a same-origin site: its requests carry ``Host: attacker.example:8000`` and a matching
``Origin``, so neither the port nor an Origin-equals-Host rule stops them. Only the name the browser was told
reveals it. So every request's ``Host`` must name one of the allowed hosts (by default the loopback names);
anything else is 400 ``invalid_host``, before the rate limits, keys and routes see it. The health probes are
exempt (load balancers and Kubernetes call them by IP; they answer nothing but ok).

Patterns: an exact name (``videos.example.com``, ``127.0.0.1``, ``::1``), ``*.example.com`` (its subdomains)
or ``*`` (any: only behind a proxy that checks the Host itself, and with API keys).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from serve_app.api.errors import InvalidHost, error_response

PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def host_name(value: str | None) -> str | None:
    """The name in a ``Host`` header or an origin's netloc, without the port, lower case, without a trailing dot
    (``[::1]:8000`` → ``::1``). None when there is none."""
    if not value:
        return None
    value = value.strip().lower()
    if value.startswith("["):  # an IPv6 literal: [::1] or [::1]:8000
        end = value.find("]")
        name = value[1:end] if end > 0 else ""
    else:
        name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    name = name.rstrip(".")
    return name or None


class HostAllowList:
    """``allows(name)``: True when ``name`` (see ``host_name``) matches one of the patterns."""

    def __init__(self, patterns: Iterable[str]) -> None:
        cleaned = [p.strip().lower().rstrip(".") for p in patterns if p and p.strip()]
        self.any = "*" in cleaned
        self.exact = frozenset(p.strip("[]") for p in cleaned if not p.startswith("*"))
        self.suffixes = tuple(p[1:] for p in cleaned if p.startswith("*."))

    def allows(self, name: str | None) -> bool:
        if name is None:
            return False
        return self.any or name in self.exact or name.endswith(self.suffixes)


def request_host(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"host":
            return bytes(value).decode("latin-1")
    return None


class AllowedHostsMiddleware:
    """Answers 400 ``invalid_host`` to a request whose Host is not allowed (pure ASGI: streams stay streams)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = HostAllowList(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") not in PROBE_PATHS:
            raw = request_host(scope)
            if not self.allowed.allows(host_name(raw)):
                shown = (raw or "")[:100]
                message = (
                    f"host {shown!r} is not served here: add it to service.allowed_hosts (VT_SERVICE__ALLOWED_HOSTS)"
                )
                await error_response(InvalidHost(message))(scope, receive, send)
                return
        await self.app(scope, receive, send)
