"""Fixtures the FCM, WNS and ADM client tests share: the fake service, its HTTP client, credentials,
and (for WNS channel URIs) the guarded clients under the tests' policy: 127.0.0.1 is a push host.

A test module names its fake's class as `FAKE`; `fake` starts one per test and stops it after.
"""

import functools
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pyreqwest.client import Client

from clarion.netpolicy import AddressPolicy
from clarion.provider.guard import GuardedClients
from clarion.provider.httpio import reqwest_builder, reqwest_client

TIMEOUT_S = 5.0


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[Any]:
    with request.module.FAKE() as fake:
        yield fake


@pytest.fixture
async def new_http() -> AsyncIterator[Callable[[float], Client]]:
    """Make pyreqwest clients with a given total timeout, as the providers' own; closed after the test."""
    made: list[Client] = []

    def make(timeout_s: float) -> Client:
        made.append(reqwest_client(ca_file=None, timeout_s=timeout_s, connect_timeout_s=timeout_s))
        return made[-1]

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def http(new_http: Callable[[float], Client]) -> Client:
    return new_http(TIMEOUT_S)


@pytest.fixture
async def new_channels() -> AsyncIterator[Callable[[float], GuardedClients]]:
    """Make guarded clients with a given total timeout (CLARION_PUSH_HOSTS=127.0.0.1); closed after."""
    made: list[GuardedClients] = []
    policy = AddressPolicy.from_settings("", ["127.0.0.1"])

    def make(timeout_s: float) -> GuardedClients:
        builder = functools.partial(
            reqwest_builder, ca_file=None, timeout_s=timeout_s, connect_timeout_s=timeout_s
        )
        made.append(GuardedClients(policy, builder))
        return made[-1]

    yield make
    for clients in made:
        await clients.aclose()


@pytest.fixture
def channels(new_channels: Callable[[float], GuardedClients]) -> GuardedClients:
    return new_channels(TIMEOUT_S)


@pytest.fixture
def credentials(fake: Any) -> tuple[str, str]:
    """A client id and secret the fake (WNS or ADM) issues tokens for."""
    result: tuple[str, str] = fake.new_client()
    return result


@pytest.fixture
def closed_origin() -> str:
    """An origin where nothing listens: the port was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
