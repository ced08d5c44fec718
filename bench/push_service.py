"""A counting stand-in for a Web Push service, run as its own process: `python -m bench.push_service`.

It answers every `POST /push/<id>` with `201 Created` at once and counts it; it neither decrypts nor
verifies (tests/fakes/push_service.py does that for correctness tests). `GET /stats` returns the
counters as JSON. It is a bare asyncio protocol rather than aiohttp.web because on a 2-core machine
the push service shares the CPUs with the server it measures: every microsecond it spends parsing is
one Clarion cannot use. It prints `PORT <n>` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

_CREATED = b"HTTP/1.1 201 Created\r\nLocation: /m/0\r\nContent-Length: 0\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_HEADER_END = b"\r\n\r\n"


class Counters:
    def __init__(self) -> None:
        self.accepted = 0
        self.body_bytes = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.connections = 0

    def accept(self, body_bytes: int) -> None:
        now = time.time()
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        self.accepted += 1
        self.body_bytes += body_bytes

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "accepted": self.accepted,
                "body_bytes": self.body_bytes,
                "first_at": self.first_at,
                "last_at": self.last_at,
                "connections": self.connections,
            }
        ).encode()


def _content_length(head: bytes) -> int:
    lowered = head.lower()
    start = lowered.find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    start += len(b"\r\ncontent-length:")
    end = lowered.find(b"\r\n", start)
    return int(lowered[start : end if end >= 0 else None].strip())


class PushProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive; requests are handled in order as their bodies complete."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.counters.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(_HEADER_END)
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            body_length = _content_length(head)
            total = end + len(_HEADER_END) + body_length
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            self._answer(head, body_length)

    def _answer(self, head: bytes, body_length: int) -> None:
        assert self.transport is not None
        if head.startswith(b"POST /push/"):
            self.counters.accept(body_length)
            self.transport.write(_CREATED)
        elif head.startswith(b"GET /stats"):
            body = self.counters.as_json()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
        else:
            self.transport.write(_NOT_FOUND)


async def serve(host: str, port: int) -> None:
    counters = Counters()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: PushProtocol(counters), host, port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed on stdout)")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
