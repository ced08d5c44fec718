"""Connect-time address policy for the HTTP clients: resolve, judge every address, connect to it only.

pyreqwest (Web Push, APNs): `GuardedClients`. aiohttp (FCM, WNS, ADM): `GuardedResolver`.

pyreqwest exposes no DNS-resolver or connector hook, only reqwest's static `ClientBuilder.resolve(name,
ip, port)`. So the name is resolved here, every address it gives is judged by netpolicy, and the
request goes through a client built with `resolve(name, address)`: reqwest then connects to exactly
the address that was judged (TLS still checks the certificate against the name), and a DNS answer
that changes later (rebinding) cannot move an existing connection or a new one elsewhere. A pin is
refreshed after `pin_ttl_s`; the new answers are judged again before they are used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.http import Url

from clarion.netpolicy import AddressPolicy

Resolve = Callable[[str, int], Awaitable[list[str]]]
# 60 s: long enough that the resolver is asked once a minute per push host, short enough to follow a
# push service's DNS changes; connections already open stay on their judged address anyway.
PIN_TTL_S = 60.0
# 120 s: a replaced client stays open this long so that requests already sent through it finish
# (longer than CLARION_REQUEST_TIMEOUT_S's 15 s default), then it is closed.
RETIRE_AFTER_S = 120.0
# 1,024 pinned hosts: WNS hands out channel URIs on a few hundred hosts under notify.windows.com.
MAX_PINS = 1024


class AddressRefused(Exception):
    """The URL's host is, or resolves to, an address the policy refuses (never retried)."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to {address}, which outbound connections may not reach")
        self.host, self.address = host, address


class ResolveFailed(Exception):
    """The name did not resolve (a transient failure, worth a retry)."""


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host, in its order, without repeats."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ResolveFailed(f"{host}: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_literal(policy: AddressPolicy, host: str) -> str:
    """An IP literal host is its own connected address: judged as it is. Returns its canonical text."""
    address = str(ipaddress.ip_address(host.strip("[]")))
    if not policy.allows(host, address):
        raise AddressRefused(host, address)
    return address


@dataclass(slots=True)
class _Pin:
    address: str
    client: Client
    expires_at: float


@dataclass(slots=True)
class GuardedClients:
    """One pinned client per host name, built by `builder` (the shared settings: timeouts, CA, HTTP/2)."""

    policy: AddressPolicy
    builder: Callable[[], ClientBuilder]
    resolve: Resolve = system_resolve
    pin_ttl_s: float = PIN_TTL_S
    clock: Callable[[], float] = time.monotonic
    _pins: dict[str, _Pin] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _literal: Client | None = None
    _retired: list[tuple[float, Client]] = field(default_factory=list)

    async def client_for(self, url: str) -> Client:
        """The client to send `url` with; raises AddressRefused or ResolveFailed (and ValueError for a
        URL that does not parse)."""
        parsed = Url(url)
        host = parsed.host_str or ""
        if parsed.domain is None:
            return self._literal_client(host)
        pin = self._pins.get(host)
        if pin is not None and pin.expires_at > self.clock():
            return pin.client
        async with self._locks.setdefault(host, asyncio.Lock()):
            return await self._repin(host, parsed.port_or_known_default or 443)

    def _literal_client(self, host: str) -> Client:
        """An IP literal is its own connected address: judged as it is, sent with an unpinned client."""
        check_literal(self.policy, host)
        if self._literal is None:
            self._literal = self.builder().build()
        return self._literal

    async def _repin(self, host: str, port: int) -> Client:
        pin = self._pins.get(host)
        if pin is not None and pin.expires_at > self.clock():
            return pin.client  # another task refreshed it while this one waited for the lock
        addresses = await self.resolve(host, port)
        if not addresses:
            raise ResolveFailed(f"{host}: no address")
        # A name with any forbidden answer is refused as a whole: mixing a public and a private
        # answer is how rebinding tries its luck, and no push service needs it.
        for address in addresses:
            if not self.policy.allows(host, address):
                raise AddressRefused(host, address)
        expires_at = self.clock() + self.pin_ttl_s
        if pin is not None and pin.address in addresses:
            pin.expires_at = expires_at  # keep the client and its open connections
            return pin.client
        client = self.builder().resolve(host, addresses[0], 0).build()
        self._store(host, _Pin(addresses[0], client, expires_at), replaced=pin)
        await self._close_retired()
        return client

    def _store(self, host: str, pin: _Pin, replaced: _Pin | None) -> None:
        if replaced is not None:
            self._retired.append((self.clock(), replaced.client))
        elif len(self._pins) >= MAX_PINS:
            oldest = next(iter(self._pins))
            self._retired.append((self.clock(), self._pins.pop(oldest).client))
            self._locks.pop(oldest, None)
        self._pins[host] = pin

    async def _close_retired(self) -> None:
        now = self.clock()
        due = [client for at, client in self._retired if now - at >= RETIRE_AFTER_S]
        self._retired = [(at, client) for at, client in self._retired if now - at < RETIRE_AFTER_S]
        for client in due:
            await client.close()

    def pinned_address(self, host: str) -> str | None:
        pin = self._pins.get(host)
        return pin.address if pin is not None else None

    async def aclose(self) -> None:
        """Close every client, the replaced ones too (kept open so requests in flight could finish)."""
        clients = [pin.client for pin in self._pins.values()] + [client for _, client in self._retired]
        if self._literal is not None:
            clients.append(self._literal)
        self._pins.clear()
        self._retired.clear()
        self._literal = None
        for client in clients:
            await client.close()


class GuardedResolver(AbstractResolver):
    """aiohttp's hook: `TCPConnector(resolver=GuardedResolver(policy))`. aiohttp connects to exactly
    the addresses its resolver returns, so judging them here is judging the connected address; a
    forbidden answer raises AddressRefused out of the request (it is no OSError, so aiohttp does not
    turn it into a DNS error). aiohttp never asks its resolver about an IP literal: the sender judges
    those with `check_literal` before the request."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if not self._policy.allows(host, result["host"]):
                raise AddressRefused(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()
