"""Which URLs the server may fetch: the SSRF guard of URL inputs. Pure, but for DNS (``resolve`` is injectable).

A URL is fetched only when its scheme is http or https and every address its host resolves to is public
(not loopback, link-local, private, shared, reserved, unspecified or multicast), unless ``allow_hosts`` names
the host, the address or a network holding it. The fetch child (``pipelines.fetch_child``) applies the same
rule to every DNS answer it uses, so redirects and DNS that changes between the check and the download are
caught too: the address checked is the address connected to.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipelines.errors import URLRefused

Resolver = Callable[[str, int], list[str]]
SCHEMES = ("http", "https")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_url(value: str) -> bool:
    """True for anything with a ``scheme://`` prefix (all of them are URL inputs, allowed or not)."""
    head, sep, _ = value.partition("://")
    return bool(sep) and head.isascii() and head.replace("+", "").replace("-", "").replace(".", "").isalnum()


def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver). Raises OSError when it resolves to none."""
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)})


@dataclass(frozen=True)
class AllowList:
    """``fetch.allow_hosts`` parsed: host names (lower case) and IP networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        hosts, networks = set(), []
        for raw in entries:
            entry = raw.strip().lower().strip("[]")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        return host.lower().rstrip(".") in self.hosts or any(address in net for net in self.networks)


def non_public(address: IPAddress) -> bool:
    """True for an address a server-side fetch must not reach by default (IPv4-mapped IPv6 checked as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_multicast or not address.is_global


def check_address(host: str, address: str, allow: AllowList) -> None:
    """URLRefused when ``address`` (an answer for ``host``) is non-public and not allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if non_public(ip) and not allow.allows(host, ip):
        raise URLRefused(
            f"refused to fetch from {host}: it resolves to {ip}, a loopback, link-local, private or multicast "
            "address (fetch.allow_hosts may name it)"
        )


def split_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)``; URLRefused for a scheme other than http(s) or a URL without a host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise URLRefused(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise URLRefused(f"only http and https URLs can be fetched, not {scheme or 'a URL without a scheme'}://")
    if not parts.hostname:
        raise URLRefused("the URL names no host")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def check_url(url: str, allow_hosts: Sequence[str] | AllowList = (), *, resolve: Resolver = system_resolve) -> None:
    """Refuse (URLRefused) a URL the server must not fetch; see the module docstring. A host that does not
    resolve is refused too (FetchFailed would say the same later, without a download)."""
    allow = allow_hosts if isinstance(allow_hosts, AllowList) else AllowList.parse(allow_hosts)
    _, host, port = split_url(url)
    try:
        addresses = resolve(host, port)
    except OSError as exc:
        raise URLRefused(f"cannot resolve the host {host}: {exc.strerror or exc}") from None
    if not addresses:
        raise URLRefused(f"cannot resolve the host {host}")
    for address in addresses:
        check_address(host, address, allow)
