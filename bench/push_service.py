"""A counting stand-in for a Web Push service, run as its own process: `python -m bench.push_service`.

It answers every `POST /push/<id>` with `201 Created` at once and counts it; it neither decrypts nor
verifies (tests/fakes/push_service.py does that for correctness tests). `GET /stats` returns the
counters as JSON. It is a bare asyncio protocol rather than aiohttp.web because on a 2-core machine
the push service shares the CPUs with the server it measures: every microsecond it spends parsing is
one Clarion cannot use. It prints `PORT <n>` on stdout once it listens.

Faults, for the chaos suite (bench/chaos.py): `--fail-500 P` and `--fail-429 P` answer that share of
pushes with 500, or with 429 and `Retry-After: --retry-after`; a request for an id that comes sooner
than its last 429's Retry-After is counted as early. `POST /control/hang` makes it accept pushes and
never answer them, `POST /control/answer` ends that. `GET /ids` gives, per id, how many pushes it
accepted and when it accepted the id for the first time: what lost and duplicated are counted from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import time
from dataclasses import dataclass

_CREATED = b"HTTP/1.1 201 Created\r\nLocation: /m/0\r\nContent-Length: 0\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_SERVER_ERROR = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
_HEADER_END = b"\r\n\r\n"
_PUSH_PREFIX = b"POST /push/"


@dataclass(frozen=True)
class Faults:
    fail_500: float = 0.0
    fail_429: float = 0.0
    retry_after_s: int = 2
    seed: int = 19


class Counters:
    def __init__(self) -> None:
        self.accepted = 0
        self.body_bytes = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.connections = 0
        # Per id: pushes answered 201, and the time of the first one (lost/duplicated are counted from it).
        self.per_id: dict[str, int] = {}
        self.first_time: dict[str, float] = {}
        self.answered_500 = 0
        self.answered_429 = 0
        self.hung = 0
        # Per id: when its last 429 was answered; the next request for it is checked against Retry-After.
        self.throttled_at: dict[str, float] = {}
        self.early = 0
        self.min_gap_after_429: float | None = None

    def accept(self, body_bytes: int, push_id: str) -> None:
        now = time.time()
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        self.accepted += 1
        self.body_bytes += body_bytes
        seen = self.per_id.get(push_id, 0)
        self.per_id[push_id] = seen + 1
        if not seen:
            self.first_time[push_id] = now

    def arrived(self, push_id: str, retry_after_s: float) -> None:
        """A push for `push_id` came in: was it before the Retry-After of its last 429?"""
        throttled = self.throttled_at.pop(push_id, None)
        if throttled is None:
            return
        gap = time.monotonic() - throttled
        if self.min_gap_after_429 is None or gap < self.min_gap_after_429:
            self.min_gap_after_429 = gap
        if gap < retry_after_s:
            self.early += 1

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "accepted": self.accepted,
                "distinct": len(self.per_id),
                "body_bytes": self.body_bytes,
                "first_at": self.first_at,
                "last_at": self.last_at,
                "connections": self.connections,
                "answered_500": self.answered_500,
                "answered_429": self.answered_429,
                "hung": self.hung,
                "early_after_429": self.early,
                "min_gap_after_429": self.min_gap_after_429,
            }
        ).encode()

    def ids_json(self) -> bytes:
        return json.dumps({"counts": self.per_id, "first_time": self.first_time}).encode()


class Service:
    """What every connection shares: the counters, the faults and whether it hangs right now."""

    def __init__(self, faults: Faults) -> None:
        self.counters = Counters()
        self.faults = faults
        self.random = random.Random(faults.seed)
        self.hanging = False
        self.too_many = (
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: %d\r\nContent-Length: 0\r\n\r\n"
            % faults.retry_after_s
        )

    def push(self, push_id: str, body_length: int) -> bytes | None:
        """The answer to one push, or None to leave it unanswered."""
        counters = self.counters
        if self.hanging:
            counters.hung += 1
            return None
        counters.arrived(push_id, self.faults.retry_after_s)
        if self.faults.fail_500 or self.faults.fail_429:
            draw = self.random.random()
            if draw < self.faults.fail_500:
                counters.answered_500 += 1
                return _SERVER_ERROR
            if draw < self.faults.fail_500 + self.faults.fail_429:
                counters.answered_429 += 1
                counters.throttled_at[push_id] = time.monotonic()
                return self.too_many
        counters.accept(body_length, push_id)
        return _CREATED


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

    def __init__(self, service: Service) -> None:
        self.service = service
        self.counters = service.counters
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
        if head.startswith(_PUSH_PREFIX):
            end = head.find(b" ", len(_PUSH_PREFIX))
            answer = self.service.push(head[len(_PUSH_PREFIX) : end].decode(errors="replace"), body_length)
            if answer is not None:
                self.transport.write(answer)
        elif head.startswith(b"GET /stats"):
            self._json(self.counters.as_json())
        elif head.startswith(b"GET /ids"):
            self._json(self.counters.ids_json())
        elif head.startswith(b"POST /control/hang"):
            self.service.hanging = True
            self.transport.write(_OK)
        elif head.startswith(b"POST /control/answer"):
            self.service.hanging = False
            self.transport.write(_OK)
        else:
            self.transport.write(_NOT_FOUND)

    def _json(self, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )


async def serve(host: str, port: int, faults: Faults) -> None:
    service = Service(faults)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: PushProtocol(service), host, port, backlog=1024)
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
    parser.add_argument("--fail-500", type=float, default=0.0, help="share of pushes answered 500")
    parser.add_argument("--fail-429", type=float, default=0.0, help="share of pushes answered 429")
    parser.add_argument("--retry-after", type=int, default=2, help="Retry-After (seconds) of a 429")
    parser.add_argument("--seed", type=int, default=19, help="seed of the fault draws")
    args = parser.parse_args()
    faults = Faults(args.fail_500, args.fail_429, args.retry_after, args.seed)
    asyncio.run(serve(args.host, args.port, faults))


if __name__ == "__main__":
    main()
