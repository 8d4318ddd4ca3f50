"""The outbound policy: every HTTP call to another party goes through `request` here.

A party chooses the URLs we call (its versions URL, its endpoints), so a call must not be
turned against us (server-side request forgery) nor hold a worker hostage:

- schemes http and https only;
- every address the host name resolves to must be public (not loopback, private, link-local,
  multicast, reserved or unspecified) unless `OUTBOUND_ALLOW_PRIVATE` is on (development and the
  bundled simulator). The check runs in aiohttp's resolver, on the very addresses it then
  connects to, so a name cannot resolve to a public address for the check and a private one for
  the connection; literal IP addresses are checked before any connection;
- redirects are never followed (a 3xx is an answer like any other);
- one total deadline per call (connect, headers and body together, not per socket read);
- a cap on the reply size, enforced while reading (a huge reply never sits in memory).

Errors carry a short reason ("timeout", "address not allowed", "reply larger than ... bytes"),
never the target's own words: a caller must not be able to read a service through us.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from django.conf import settings

SCHEMES = frozenset({"http", "https"})
USER_AGENT = "smatch-scsp/0.1"
_CHUNK = 64 * 1024
TOO_LARGE = "reply larger than"  # how a reason over the size cap starts (a caller may ask for less)


class OutboundRefused(Exception):
    """A call failed or was refused by the policy. `reason` is short and safe to show to a caller.

    `transient`: worth retrying later (timeouts, connection errors), as opposed to a refusal by
    the policy, which will refuse again.
    """

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class AddressNotAllowed(OSError):
    """Raised inside the resolver: aiohttp wraps it in a connector error, we unwrap it."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    next_url: str | None  # Link rel="next", as the pagination of OCPI list endpoints uses


def allow_private() -> bool:
    return bool(settings.OUTBOUND_ALLOW_PRIVATE)


def address_allowed(address: str, *, private_ok: bool | None = None) -> bool:
    """May we connect to this IP address? Only public unicast addresses, unless private ones are allowed."""
    if private_ok is None:
        private_ok = allow_private()
    if private_ok:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified or not ip.is_global)


def check_url(url: str) -> None:
    """Scheme and literal-address checks that need no DNS (names are checked by the resolver)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise OutboundRefused("malformed URL") from None
    if parts.scheme not in SCHEMES:
        raise OutboundRefused(f"scheme {parts.scheme or '(none)'!r} not allowed (http or https only)")
    if not host:
        raise OutboundRefused("URL without a host")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    if not address_allowed(host):
        raise OutboundRefused("address not allowed")


class PolicyResolver(AbstractResolver):
    """Resolves like aiohttp's default and refuses a name if any of its addresses is not allowed."""

    def __init__(self, private_ok: bool) -> None:
        self._inner = ThreadedResolver()
        self._private_ok = private_ok

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not all(address_allowed(r["host"], private_ok=self._private_ok) for r in results):
            raise AddressNotAllowed(f"{host} resolves to an address that is not allowed")
        return results

    async def close(self) -> None:
        await self._inner.close()


def new_session(connections: int, *, deadline_s: float | None = None) -> aiohttp.ClientSession:
    """An aiohttp session under the policy; create it inside the running event loop."""
    connector = aiohttp.TCPConnector(limit=max(1, connections), resolver=PolicyResolver(allow_private()))
    timeout = aiohttp.ClientTimeout(total=deadline_s or settings.OCPI_HTTP_TIMEOUT_S)
    return aiohttp.ClientSession(connector=connector, timeout=timeout,
                                 headers={"Accept": "application/json", "User-Agent": USER_AGENT})


async def request(http: aiohttp.ClientSession, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                  data: bytes | None = None, deadline_s: float | None = None, max_bytes: int | None = None
                  ) -> Reply:
    """One call under the policy: the reply, or OutboundRefused with a short reason."""
    check_url(url)
    deadline = deadline_s or settings.OCPI_HTTP_TIMEOUT_S
    limit = max_bytes or settings.OUTBOUND_MAX_BYTES
    try:
        async with asyncio.timeout(deadline):
            async with http.request(method, yarl.URL(url, encoded=True), data=data, headers=headers,
                                    allow_redirects=False, timeout=aiohttp.ClientTimeout(total=deadline)) as response:
                declared = response.content_length
                if declared is not None and declared > limit:
                    raise OutboundRefused(f"{TOO_LARGE} {limit} bytes")
                body = bytearray()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > limit:
                        raise OutboundRefused(f"{TOO_LARGE} {limit} bytes")
                next_link = response.links.get("next", {}).get("url")
                return Reply(response.status, dict(response.headers), bytes(body),
                             str(next_link) if next_link is not None else None)
    except OutboundRefused:
        raise
    except TimeoutError:
        raise OutboundRefused("timeout", transient=True) from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, AddressNotAllowed) or isinstance(exc.__cause__, AddressNotAllowed):
            raise OutboundRefused("address not allowed") from None
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            raise OutboundRefused("host name not found", transient=True) from None
        raise OutboundRefused("connection failed", transient=True) from None
    except (aiohttp.ClientError, OSError):
        raise OutboundRefused("connection failed", transient=True) from None


def request_sync(method: str, url: str, *, headers: Mapping[str, str] | None = None, data: bytes | None = None,
                 deadline_s: float | None = None, max_bytes: int | None = None) -> Reply:
    """`request` from synchronous code (web requests, tasks, commands): one connection, then closed."""

    async def one() -> Reply:
        async with new_session(1, deadline_s=deadline_s) as http:
            return await request(http, method, url, headers=headers, data=data, deadline_s=deadline_s,
                                 max_bytes=max_bytes)

    return asyncio.run(one())


def json_body(value: Any) -> bytes:
    """Compact JSON bytes for a request body."""
    return json.dumps(value, separators=(",", ":")).encode()
