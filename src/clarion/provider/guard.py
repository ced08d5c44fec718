"""Connect-time address policy for the HTTP clients: resolve, judge every address, connect to it only.

Every connection to an address a customer chose (Web Push endpoints, WNS channel URIs) goes through
`GuardedClients` (docs/security.md, "Outbound addresses"). pyreqwest exposes no DNS-resolver or
connector hook, only reqwest's static `ClientBuilder.resolve(name, ip, port)`. So the name is
resolved here, every address it gives is judged by netpolicy, and the request goes through a client
built with `resolve(name, address)` and without proxies: reqwest then connects to exactly the address
that was judged (TLS still checks the certificate against the name), and a DNS answer that changes
later (rebinding) cannot move an existing connection or a new one elsewhere. A pin is refreshed after
`pin_ttl_s`; the new answers are judged again before they are used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.http import Url

from clarion.netpolicy import AddressPolicy, forbidding_rule
from clarion.provider.outcome import Rejected, Retry

log = logging.getLogger("clarion.provider")

Resolve = Callable[[str, int], Awaitable[list[str]]]
# 60 s: long enough that the resolver is asked once a minute per push host, short enough to follow a
# push service's DNS changes; connections already open stay on their judged address anyway.
PIN_TTL_S = 60.0
# 120 s: a replaced client stays open this long so that requests already sent through it finish
# (longer than CLARION_REQUEST_TIMEOUT_S's 15 s default), then it is closed.
RETIRE_AFTER_S = 120.0
# 1,024 pinned hosts: WNS hands out channel URIs on a few hundred hosts under notify.windows.com.
MAX_PINS = 1024
# 4,096 URL prefixes remembered with their host (a few per pinned host: ports, http and https).
MAX_ROUTES = 4096


class AddressRefused(Exception):
    """The URL's host is, or resolves to, an address the policy refuses (never retried)."""

    def __init__(self, host: str, address: str) -> None:
        self.host, self.address = host, address
        self.rule = forbidding_rule(address)
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        """What the ledger keeps: the host and the rule, never the URL (a capability for Web Push)."""
        return f"refused by the outbound address policy: {self.host} resolves to {self.address}, {self.rule}"


class ResolveFailed(Exception):
    """The name did not resolve (a transient failure, worth a retry)."""


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host, in its order, without repeats."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ResolveFailed(f"cannot resolve {host}: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_literal(policy: AddressPolicy, host: str) -> str:
    """An IP literal host is its own connected address: judged as it is. Returns its canonical text."""
    address = str(ipaddress.ip_address(host.strip("[]")))
    if not policy.allows(host, address):
        raise AddressRefused(host, address)
    return address


def _authority_key(url: str) -> str:
    """The URL up to the first "/" after "://": the scheme and authority of a canonical URL."""
    path_at = url.find("/", url.find("://") + 3)
    return url if path_at < 0 else url[:path_at]


def _is_canonical_authority(key: str) -> bool:
    """Whether every URL that starts with `key` followed by "/" (or is `key`) has the same host and
    port as the client reads them: true when `key/` is http(s) and serialises back to itself exactly.

    The URL parser ends the authority at the first "/" and drops tabs and newlines, maps "\\" to "/"
    and rewrites hosts; a key that round-trips has none of those, so what follows it cannot change
    the host. Keys that do not round-trip are simply not remembered (each such URL is parsed anew).
    """
    if not key.startswith(("https://", "http://")):
        return False
    try:
        return str(Url(key + "/")) == key + "/"
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class _Route:
    """What the client will connect to for URLs under one scheme://authority prefix."""

    host: str
    port: int
    literal: bool  # an IP literal, judged when the route was made


@dataclass(slots=True)
class _Pin:
    address: str
    client: Client
    expires_at: float


@dataclass(slots=True)
class GuardedClients:
    """One pinned client per host name, built by `builder` (the shared settings: timeouts, CA, HTTP/2).

    The hot path (a host already pinned, a URL prefix already seen) is two dictionary look-ups: no DNS
    query, no URL parsing and no client construction per request.
    """

    policy: AddressPolicy
    builder: Callable[[], ClientBuilder]
    # None: `system_resolve`, looked up when called (so that a test can stand in for DNS).
    resolve: Resolve | None = None
    pin_ttl_s: float = PIN_TTL_S
    clock: Callable[[], float] = time.monotonic
    _routes: dict[str, _Route] = field(default_factory=dict)
    _pins: dict[str, _Pin] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _literal: Client | None = None
    _retired: list[tuple[float, Client]] = field(default_factory=list)
    _reported: set[tuple[str, str]] = field(default_factory=set)

    async def client_for(self, url: str) -> Client:
        """The client to send `url` with; raises AddressRefused or ResolveFailed (and ValueError for a
        URL that does not parse)."""
        route = self._routes.get(_authority_key(url)) or self._route(url)
        if route.literal:
            return self._literal_client()
        pin = self._pins.get(route.host)
        if pin is not None and pin.expires_at > self.clock():
            return pin.client
        async with self._locks.setdefault(route.host, asyncio.Lock()):
            return await self._repin(route.host, route.port)

    async def client_or_outcome(self, url: str) -> Client | Rejected | Retry:
        """`client_for`, with its refusals as outcomes: a forbidden address is permanent (Rejected),
        a name that does not resolve transient (Retry). Reasons name the host, never the URL."""
        try:
            return await self.client_for(url)
        except AddressRefused as exc:
            self._report(exc)
            return Rejected(exc.reason)
        except ResolveFailed as exc:
            return Retry(str(exc))
        except ValueError:
            return Rejected("not a URL the HTTP client can request")

    def _report(self, refused: AddressRefused) -> None:
        """Log a refusal once per host and address: it means a listed name points somewhere forbidden."""
        key = (refused.host, refused.address)
        if key in self._reported:
            return
        if len(self._reported) >= MAX_PINS:
            self._reported.clear()
        self._reported.add(key)
        log.warning("%s", refused.reason)

    def _route(self, url: str) -> _Route:
        parsed = Url(url)
        host = parsed.host_str or ""
        route = _Route(host, parsed.port_or_known_default or 443, parsed.domain is None)
        if route.literal:
            check_literal(self.policy, host)  # a refused literal is never remembered: judged each time
        key = _authority_key(url)
        if _is_canonical_authority(key):
            if len(self._routes) >= MAX_ROUTES:
                self._routes.clear()
            self._routes[key] = route
        return route

    def _build(self) -> ClientBuilder:
        # A proxy would resolve the name itself and connect wherever its DNS says: never one here.
        return self.builder().no_proxy()

    def _literal_client(self) -> Client:
        """An IP literal is its own connected address (judged by `_route`): sent with an unpinned client."""
        if self._literal is None:
            self._literal = self._build().build()
        return self._literal

    async def _repin(self, host: str, port: int) -> Client:
        pin = self._pins.get(host)
        if pin is not None and pin.expires_at > self.clock():
            return pin.client  # another task refreshed it while this one waited for the lock
        addresses = await (self.resolve or system_resolve)(host, port)
        if not addresses:
            raise ResolveFailed(f"cannot resolve {host}: no address")
        # A name with any forbidden answer is refused as a whole: mixing a public and a private
        # answer is how rebinding tries its luck, and no push service needs it.
        for address in addresses:
            if not self.policy.allows(host, address):
                raise AddressRefused(host, address)
        expires_at = self.clock() + self.pin_ttl_s
        if pin is not None and pin.address in addresses:
            pin.expires_at = expires_at  # keep the client and its open connections
            return pin.client
        client = self._build().resolve(host, addresses[0], 0).build()
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
