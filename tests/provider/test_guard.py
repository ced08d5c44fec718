"""Connect-time checks for pyreqwest (provider/guard.py): resolve, judge, pin; DNS rebinding refused."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from pyreqwest.client import ClientBuilder

from clarion.netpolicy import AddressPolicy
from clarion.provider.guard import (
    AddressRefused,
    GuardedClients,
    ResolveFailed,
    check_literal,
    system_resolve,
)
from clarion.provider.outcome import Rejected, Retry


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


class Local:
    """A local HTTP server on 127.0.0.1 that answers 204 to anything and keeps each request line."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.port = 0

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.lines.append(head.split(b"\r\n", 1)[0])
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def start_local() -> tuple[Local, asyncio.Server]:
    local = Local()
    listener = await asyncio.start_server(local.answer, "127.0.0.1", 0)
    local.port = listener.sockets[0].getsockname()[1]
    return local, listener


@pytest.fixture
async def local() -> AsyncIterator[Local]:
    served, listener = await start_local()
    yield served
    listener.close()
    await listener.wait_closed()


@pytest.fixture
def server(local: Local) -> int:
    """The local server's port."""
    return local.port


class CountingBuilder:
    """The guard's `builder`, counting the clients it is asked for."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> ClientBuilder:
        self.calls += 1
        return ClientBuilder().follow_redirects(False)


def guarded(
    dns: Dns,
    clock: Clock,
    push_hosts: tuple[str, ...] = (),
    allow: str = "",
    builder: Callable[[], ClientBuilder] | None = None,
) -> GuardedClients:
    policy = AddressPolicy.from_settings(allow, push_hosts)
    make = builder or (lambda: ClientBuilder().follow_redirects(False))
    return GuardedClients(policy, make, resolve=dns, clock=clock)


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


def test_literals_are_judged_by_check_literal() -> None:
    policy = AddressPolicy.from_settings("", ["127.0.0.1"])
    assert check_literal(policy, "127.0.0.1") == "127.0.0.1"
    assert check_literal(policy, "[2606:4700:4700::1111]") == "2606:4700:4700::1111"
    for host in ("127.0.0.2", "[::1]", "169.254.169.254", "[::ffff:169.254.169.254]"):
        with pytest.raises(AddressRefused):
            check_literal(policy, host)


async def test_the_hot_path_asks_no_dns_and_builds_no_client(local: Local) -> None:
    """A campaign's endpoints on one push host: one DNS question and one client for all of them."""
    dns, clock, builder = Dns({"push.invalid": ["127.0.0.1"]}), Clock(), CountingBuilder()
    clients = guarded(dns, clock, allow="push.invalid", builder=builder)
    try:
        first = await clients.client_for(f"http://push.invalid:{local.port}/push/0")
        for n in range(1, 2000):
            assert await clients.client_for(f"http://push.invalid:{local.port}/push/{n}") is first
        assert (dns.asked, builder.calls) == (["push.invalid"], 1)
        literal = await clients.client_for(f"http://8.8.8.8:{local.port}/a")
        for n in range(500):
            assert await clients.client_for(f"http://8.8.8.8:{local.port}/{n}") is literal
        assert builder.calls == 2
    finally:
        await clients.aclose()


async def test_a_remembered_prefix_never_stands_for_another_host(local: Local) -> None:
    """URLs the parser rewrites ("http:/host", a backslash) are judged by the host the client reads."""
    dns = Dns({"push.invalid": ["127.0.0.1"], "meta.invalid": ["169.254.169.254"]})
    clients = guarded(dns, Clock(), allow="push.invalid")
    try:
        assert await status_of(clients, f"http:/push.invalid:{local.port}/1") == 204
        with pytest.raises(AddressRefused, match=r"meta\.invalid resolves to 169\.254\.169\.254"):
            await clients.client_for(f"http:/meta.invalid:{local.port}/2")
        assert await status_of(clients, f"http://push.invalid:{local.port}/3") == 204
        with pytest.raises(AddressRefused, match=r"meta\.invalid"):
            await clients.client_for(f"http://meta.invalid:{local.port}\\@push.invalid/4")
        with pytest.raises(AddressRefused, match=r"127\.0\.0\.2"):
            await clients.client_for(f"http://127.0.0.2\\.push.invalid:{local.port}/5")
    finally:
        await clients.aclose()
    assert local.lines == [b"GET /1 HTTP/1.1", b"GET /3 HTTP/1.1"]


async def test_refusals_become_outcomes_that_name_the_rule_and_the_host_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dns = Dns({"meta.invalid": ["169.254.169.254"], "lan.invalid": ["8.8.8.8", "10.1.2.3"]})
    clients = guarded(dns, Clock())
    secret = "dGhpcy1pcy1hLWNhcGFiaWxpdHk"
    try:
        with caplog.at_level(logging.WARNING, logger="clarion.provider"):
            meta = await clients.client_or_outcome(f"https://meta.invalid/push/{secret}")
            again = await clients.client_or_outcome(f"https://meta.invalid/push/{secret}2")
            lan = await clients.client_or_outcome(f"https://lan.invalid/wpush/{secret}")
            loopback = await clients.client_or_outcome(f"https://[::1]/push/{secret}")
            unresolved = await clients.client_or_outcome(f"https://nowhere.invalid/push/{secret}")
            unparsable = await clients.client_or_outcome("https://exa mple.com/")
    finally:
        await clients.aclose()
    assert (
        meta
        == again
        == Rejected(
            "refused by the outbound address policy: meta.invalid resolves to 169.254.169.254, "
            "169.254.169.254/32 (cloud metadata)"
        )
    )
    assert lan == Rejected(
        "refused by the outbound address policy: lan.invalid resolves to 10.1.2.3, 10.0.0.0/8 (private)"
    )
    assert loopback == Rejected(
        "refused by the outbound address policy: [::1] resolves to ::1, ::1/128 (loopback)"
    )
    assert isinstance(unresolved, Retry)
    assert "nowhere.invalid" in unresolved.reason
    assert unparsable == Rejected("not a URL the HTTP client can request")
    for outcome in (meta, lan, loopback, unresolved):
        assert isinstance(outcome, Rejected | Retry)
        assert secret not in outcome.reason
        assert "/push" not in outcome.reason
    logged = [record.getMessage() for record in caplog.records]
    assert logged == [meta.reason, lan.reason, loopback.reason], "logged once per host and address"


async def test_guarded_clients_ignore_system_proxies(local: Local, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy resolves the name itself, so the judged address would mean nothing: none is used."""
    proxy, listener = await start_local()
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(variable, f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    clients = guarded(
        Dns({"push.invalid": ["127.0.0.1"]}), Clock(), push_hosts=("127.0.0.1",), allow="push.invalid"
    )
    unguarded = ClientBuilder().build()
    try:
        assert await status_of(clients, f"http://push.invalid:{local.port}/named") == 204
        assert await status_of(clients, f"http://127.0.0.1:{local.port}/literal") == 204
        # The same environment sends an ordinary client through the proxy: the check above can fail.
        async with unguarded.get(f"http://push.invalid:{local.port}/proxied").build_streamed() as response:
            assert response.status == 204
    finally:
        await clients.aclose()
        await unguarded.close()
        listener.close()
        await listener.wait_closed()
    assert local.lines == [b"GET /named HTTP/1.1", b"GET /literal HTTP/1.1"]
    assert proxy.lines == [f"GET http://push.invalid:{local.port}/proxied HTTP/1.1".encode()]
