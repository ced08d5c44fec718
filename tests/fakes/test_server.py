"""The fakes' shared base on its own: a minimal fake over plain HTTP and over TLS."""

import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass

import httpx
import pytest
from aiohttp import web

from tests.fakes.server import AiohttpFake, Hang


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str


class EchoFake(AiohttpFake[str, str, Seen, int]):
    """POST /k/{key}: answers the key's scripted statuses, else 204; the key "bad" is refused as an error."""

    thread_name = "fake-echo"

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/k/{key}", self._handle)

    def _request_of(self, request: web.Request) -> Seen:
        return Seen(request.method, request.path)

    async def _handle(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key == "bad":
            self._record_error(f"refused {key}")
            return web.Response(status=400)
        self._record_received(key)
        scripted = self._next_scripted(key)
        status = 204 if scripted is None else scripted
        if isinstance(status, Hang):
            return await self._hang()
        if status < 300:
            self._count_accepted()
        return web.Response(status=status)


def test_script_records_and_wait_for() -> None:
    with EchoFake() as fake:
        assert fake.origin == f"http://127.0.0.1:{fake.port}"
        fake.script("a", [503, 200])
        statuses = [httpx.post(f"{fake.origin}/k/{key}").status_code for key in ("a", "a", "a", "bad")]
        fake.wait_for(2, timeout_s=1)

        assert statuses == [503, 200, 204, 400]
        assert (fake.accepted, fake.received, fake.errors) == (2, ["a", "a", "a"], ["refused bad"])
        assert fake.requests == [Seen("POST", "/k/a")] * 3 + [Seen("POST", "/k/bad")]
        with pytest.raises(TimeoutError, match="2 of 3 messages accepted"):
            fake.wait_for(3, timeout_s=0.05)
        with pytest.raises(AttributeError, match="plain HTTP"):
            _ = fake.ca_file


def test_tls_is_served_with_a_test_ca_and_cleaned_up() -> None:
    before = set(threading.enumerate())
    fake = EchoFake(tls=True)
    port, ca_file = fake.port, fake.ca_file
    assert fake.origin == f"https://127.0.0.1:{port}"

    trusting = ssl.create_default_context(cafile=ca_file)
    assert httpx.post(f"{fake.origin}/k/x", verify=trusting).status_code == 204
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{fake.origin}/k/x")  # the system's CAs do not know the test CA
    fake.stop()
    fake.stop()  # idempotent

    assert set(threading.enumerate()) <= before
    assert not os.path.exists(os.path.dirname(ca_file))
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_stop_answers_a_hanging_request() -> None:
    fake = EchoFake()
    fake.script("h", [Hang()])
    answers: list[int] = []
    caller = threading.Thread(target=lambda: answers.append(httpx.post(f"{fake.origin}/k/h").status_code))
    caller.start()
    try:
        deadline = time.monotonic() + 10
        while not fake.received:
            assert time.monotonic() < deadline, "the request never reached the fake"
            time.sleep(0.01)
        caller.join(timeout=0.2)
        assert caller.is_alive()  # hanging: not answered
        assert (fake.received, fake.accepted, answers) == (["h"], 0, [])
    finally:
        fake.stop()
        caller.join(timeout=10)
    assert answers == [503]
