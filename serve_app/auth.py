"""API keys, job owners and rate limits, free of any transport (the HTTP guard and the bridge both use them).

- ``KeyRing``: the configured keys (``VT_API_KEYS``), kept only as SHA-256 digests. A presented key is
  compared in constant time; its **owner** is ``"key:" + sha256(key)[:32]``, so a job record, a log line or
  a database row never holds a key, and one key's jobs are invisible to another.
- ``require_keys``: the start-up rule. Without keys, only a loopback address may be served.
- ``TokenBuckets``: a small, bounded token-bucket rate limiter per identity (a key's owner, an IP), in this
  process (one ingress replica); ``serve_app.rate_limits.StoreTokenBuckets`` keeps the same buckets in the job
  store's database, shared by every replica.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from serve_app.errors import InsecureStartup

OWNER_PREFIX = "key:"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def owner_of(key: str) -> str:
    """The job owner for an API key: a hash, never the key."""
    return OWNER_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class KeyRing:
    """The accepted API keys. ``enabled`` is False when there are none (auth off)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [hashlib.sha256(k.encode("utf-8")).digest() for k in keys if k and k.strip()]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def owner(self, presented: str | None) -> str | None:
        """The owner of ``presented`` when it is one of the keys, else None (constant time in the key)."""
        if not presented or not self._digests:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
        ok = False
        for known in self._digests:  # no early exit: the time does not tell which key was close
            ok |= hmac.compare_digest(digest, known)
        return owner_of(presented) if ok else None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None for other schemes or none)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost. ``0.0.0.0``, ``::`` and every other name are not."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def require_keys(
    host: str, api_keys: Iterable[str], *, what: str = "the service", otherwise: str = "bind to 127.0.0.1"
) -> None:
    """Raise InsecureStartup when ``host`` is not loopback and there are no API keys."""
    if not is_loopback(host) and not KeyRing(api_keys).enabled:
        raise InsecureStartup(
            f"refusing to start {what} on {host} without API keys: set VT_API_KEYS "
            f"(a JSON list or comma-separated keys), or {otherwise}"
        )


def spend(tokens: float, elapsed_s: float, rate_per_s: float, burst: float) -> tuple[float, int]:
    """One request against a bucket that held ``tokens`` ``elapsed_s`` ago: (tokens left, whole seconds to wait).
    Refilled at ``rate_per_s`` up to ``burst``; a token is spent only when there is one (then the wait is 0)."""
    tokens = min(burst, tokens + max(0.0, elapsed_s) * rate_per_s)
    if tokens >= 1.0:
        return tokens - 1.0, 0
    return tokens, max(1, math.ceil((1.0 - tokens) / rate_per_s))


class RateLimiter:
    """Token buckets per identity: ``rate_per_s`` tokens a second, at most ``burst`` saved up. ``take(identity)``
    spends a token and returns 0, or returns the whole seconds to wait (Retry-After). A ``rate_per_s`` of 0 turns
    the limit off. ``blocking``: ``take`` does I/O (call it off the event loop)."""

    blocking = False

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = float(rate_per_s)
        self.burst = max(1.0, float(burst))

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, identity: str) -> int:
        raise NotImplementedError


class TokenBuckets(RateLimiter):
    """The buckets in this process (one ingress replica). At most ``max_identities`` buckets are kept (least
    recently used dropped), so memory stays bounded. Thread-safe."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_identities: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(rate_per_s, burst)
        self.max_identities = max_identities
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, identity: str) -> int:
        if not self.enabled:
            return 0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(identity, (self.burst, now))
            tokens, wait = spend(tokens, now - last, self.rate, self.burst)
            self._buckets[identity] = (tokens, now)
            while len(self._buckets) > self.max_identities:
                self._buckets.popitem(last=False)
        return wait
