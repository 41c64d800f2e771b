"""Keeping webhook deliveries away from the operator's own network.

A webhook URL is chosen by a customer, and our worker connects to it: without a guard it
could reach the cloud's metadata service, the database or an admin port. So every address
a host name resolves to is checked, and the connection is made to the checked address
(inside httpcore's network backend, at connect time), which also defeats DNS rebinding:
the name is not resolved again after the check. TLS still verifies the original host name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

from personae.errors import InvalidRequest

# Beyond is_private / is_loopback / is_link_local: shared CGNAT space and 6to4 / NAT64
# ranges that can wrap private IPv4 addresses.
EXTRA_BLOCKED = [
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("2002::/16"),
]


class BlockedAddress(Exception):
    pass


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local  # includes 169.254.169.254, the metadata service
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    ):
        return False
    return not any(ip in net for net in EXTRA_BLOCKED if net.version == ip.version)


async def resolve(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refused(addresses: Iterable[str]) -> list[str]:
    return [a for a in addresses if not is_public(a)]


async def check_url(url: str, allow_private: bool) -> None:
    """400 unless `url` is http(s) with a host that resolves, only to public addresses
    (any address with `allow_private`)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidRequest("url: must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise InvalidRequest("url: must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidRequest("url: invalid port") from exc
    try:
        addresses = await resolve(parts.hostname, port)
    except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
        raise InvalidRequest(f"url: {parts.hostname} does not resolve") from exc
    if not allow_private and (bad := refused(addresses)):
        raise InvalidRequest(
            f"url: {parts.hostname} resolves to a private or reserved address ({bad[0]})",
            details={"field": "url"},
        )


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to checked addresses."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve") from exc
        if not self.allow_private and (bad := refused(addresses)):
            raise BlockedAddress(f"{host} resolves to a private or reserved address ({bad[0]})")
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(allow_private: bool, timeout: float) -> httpx.AsyncClient:
    """An httpx client that connects only to public addresses and follows no redirect."""
    transport = httpx.AsyncHTTPTransport(retries=0)
    # httpx builds its connection pool without a way to pass a network backend; the pool
    # is replaced by an identical one that has ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=GuardedBackend(allow_private),
    )
    return httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(timeout), follow_redirects=False
    )
