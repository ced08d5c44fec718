"""Connect-time checks for pyreqwest (provider/guard.py): resolve, judge, pin; DNS rebinding refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from pyreqwest.client import ClientBuilder

from clarion.netpolicy import AddressPolicy
from clarion.provider.guard import (
    AddressRefused,
    GuardedClients,
    GuardedResolver,
    ResolveFailed,
    check_literal,
    system_resolve,
)


class Dns:
    """A resolver the test scripts: each name's answers can change between calls (rebinding)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise ResolveFailed(f"{host}: no such name")
        return list(self.answers[host])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[int]:
    """A local HTTP server on 127.0.0.1 that answers 204 to anything; its port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()


def guarded(dns: Dns, clock: Clock, push_hosts: tuple[str, ...] = (), allow: str = "") -> GuardedClients:
    policy = AddressPolicy.from_settings(allow, push_hosts)
    return GuardedClients(policy, lambda: ClientBuilder().follow_redirects(False), resolve=dns, clock=clock)


async def status_of(clients: GuardedClients, url: str) -> int:
    client = await clients.client_for(url)
    async with client.get(url).build_streamed() as response:
        return response.status


async def test_the_client_connects_to_the_judged_address_only(server: int) -> None:
    """ "push.invalid" exists in no DNS: the request reaches the server only through the pin."""
    dns, clock = Dns({"push.invalid": ["127.0.0.1"]}), Clock()
    clients = guarded(dns, clock, allow="push.invalid")
    try:
        assert await status_of(clients, f"http://push.invalid:{server}/push/1") == 204
        assert await status_of(clients, f"http://push.invalid:{server}/push/2") == 204
        assert dns.asked == ["push.invalid"], "the pin is reused until it expires"
        assert clients.pinned_address("push.invalid") == "127.0.0.1"
    finally:
        await clients.aclose()


async def test_a_name_resolving_to_a_forbidden_address_is_refused_at_send_time(server: int) -> None:
    dns = Dns({"push.invalid": ["127.0.0.1"], "meta.invalid": ["169.254.169.254"], "v6.invalid": ["::1"]})
    clients = guarded(dns, Clock(), push_hosts=("127.0.0.1",))
    try:
        for host, address in [
            ("push.invalid", "127.0.0.1"),
            ("meta.invalid", "169.254.169.254"),
            ("v6.invalid", "::1"),
        ]:
            with pytest.raises(AddressRefused) as caught:
                await clients.client_for(f"http://{host}:{server}/push/1")
            assert (caught.value.host, caught.value.address) == (host, address)
            assert clients.pinned_address(host) is None
        # The listed loopback literal itself is reachable (tests' fake push services).
        assert await status_of(clients, f"http://127.0.0.1:{server}/push/1") == 204
    finally:
        await clients.aclose()


async def test_dns_rebinding_after_the_pin_expires_is_refused(server: int) -> None:
    dns, clock = Dns({"push.invalid": ["127.0.0.1"]}), Clock()
    clients = guarded(dns, clock, allow="127.0.0.1/32")
    try:
        assert await status_of(clients, f"http://push.invalid:{server}/push/1") == 204
        dns.answers["push.invalid"] = ["169.254.169.254"]
        clock.now += 59.0
        assert await status_of(clients, f"http://push.invalid:{server}/push/1") == 204  # still pinned
        clock.now += 2.0
        with pytest.raises(AddressRefused, match=r"169\.254\.169\.254"):
            await clients.client_for(f"http://push.invalid:{server}/push/1")
        # Mixing an allowed and a forbidden answer is refused as a whole, whatever the order.
        dns.answers["push.invalid"] = ["127.0.0.1", "10.0.0.7"]
        with pytest.raises(AddressRefused, match=r"10\.0\.0\.7"):
            await clients.client_for(f"http://push.invalid:{server}/push/1")
    finally:
        await clients.aclose()


async def test_a_changed_answer_is_judged_and_pinned_anew(server: int) -> None:
    dns, clock = Dns({"push.invalid": ["127.0.0.2"]}), Clock()
    clients = guarded(dns, clock, allow="127.0.0.0/8")
    try:
        first = await clients.client_for(f"http://push.invalid:{server}/")
        assert clients.pinned_address("push.invalid") == "127.0.0.2"
        clock.now += 61.0
        dns.answers["push.invalid"] = ["127.0.0.2", "127.0.0.1"]
        assert await clients.client_for(f"http://push.invalid:{server}/") is first, "same address, same pool"
        clock.now += 61.0
        dns.answers["push.invalid"] = ["127.0.0.1"]
        assert await status_of(clients, f"http://push.invalid:{server}/") == 204
        assert clients.pinned_address("push.invalid") == "127.0.0.1"
    finally:
        await clients.aclose()


async def test_ip_literals_are_judged_as_they_are(server: int) -> None:
    clients = guarded(Dns({}), Clock())
    try:
        for url in (
            "http://127.0.0.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]/",
            "https://[::ffff:a9fe:a9fe]/",
        ):
            with pytest.raises(AddressRefused):
                await clients.client_for(url)
        assert await clients.client_for("https://8.8.8.8/") is await clients.client_for("https://1.1.1.1/")
    finally:
        await clients.aclose()


async def test_a_name_that_does_not_resolve_is_a_transient_failure() -> None:
    clients = guarded(Dns({"empty.invalid": []}), Clock())
    try:
        with pytest.raises(ResolveFailed):
            await clients.client_for("https://nowhere.invalid/")
        with pytest.raises(ResolveFailed):
            await clients.client_for("https://empty.invalid/")
    finally:
        await clients.aclose()


async def test_the_system_resolver_gives_each_address_once() -> None:
    # localhost is answered from the hosts file: no test asks a DNS server.
    addresses = await system_resolve("localhost", 443)
    assert addresses
    assert len(addresses) == len(set(addresses))
    assert set(addresses) <= {"127.0.0.1", "::1"}


class ScriptedResolver(AbstractResolver):
    """aiohttp's side of `Dns`: answers from a dict the test changes."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[ResolveResult]:  # type: ignore[override]
        return [
            {"hostname": host, "host": address, "port": port, "family": 0, "proto": 0, "flags": 0}
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        return None


async def test_aiohttp_connects_only_where_the_resolver_allows(server: int) -> None:
    answers = {"push.invalid": ["127.0.0.1"]}
    policy = AddressPolicy.from_settings("127.0.0.1/32")
    resolver = GuardedResolver(policy, ScriptedResolver(answers))
    # No DNS cache: each request asks again, as a rebinding attacker would wish.
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"http://push.invalid:{server}/channel") as response:
            assert response.status == 204
        answers["push.invalid"] = ["169.254.169.254"]
        with pytest.raises(AddressRefused) as caught:
            await session.get(f"http://push.invalid:{server}/channel")
        assert (caught.value.host, caught.value.address) == ("push.invalid", "169.254.169.254")
        answers["push.invalid"] = ["127.0.0.1", "fe80::1"]
        with pytest.raises(AddressRefused, match="fe80::1"):
            await session.get(f"http://push.invalid:{server}/channel")


def test_literals_are_judged_before_aiohttp_sends() -> None:
    policy = AddressPolicy.from_settings("", ["127.0.0.1"])
    assert check_literal(policy, "127.0.0.1") == "127.0.0.1"
    assert check_literal(policy, "[2606:4700:4700::1111]") == "2606:4700:4700::1111"
    for host in ("127.0.0.2", "[::1]", "169.254.169.254", "[::ffff:169.254.169.254]"):
        with pytest.raises(AddressRefused):
            check_literal(policy, host)
