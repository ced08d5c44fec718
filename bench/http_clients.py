"""HTTP client benchmark: the figures behind Clarion's choice of Web Push client.

    python -m bench.http_clients [--n 10000] [--in-flight 64] [--runs 3]

Against the benchmark's own push service (a separate process on 127.0.0.1), it sends N POSTs of a
389-byte body, the size of the delivery benchmark's encrypted message, with `--in-flight` requests
at a time, and prints for each run the CPU seconds of every thread of this process per request and
the requests per second:

- `aiohttp`: one ClientSession with the options Clarion used, on uvloop;
- `pyreqwest`: the client `clarion.provider.webpush.http_client` builds, a streamed read as in
  `webpush.send`;
- `webpush.send`: Clarion's whole send path over pyreqwest (RFC 8291 encryption, VAPID header,
  request, outcome) for N distinct subscriptions, message by message, next to the encryption alone;
- `prepare+transmit`: the same, but a window of 64 messages is prepared (encrypted) back to back
  and then sent, as the Deliverer does.

The last lines are what the delivery benchmark cannot show: what a message costs without the
database and the engine, how much of it is the encryption, and what alternating costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

if __package__ in (None, ""):  # `python bench/http_clients.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import uvloop
from pyreqwest.client import Client

from bench import processes, storage
from bench.processes import ProcessGroup
from clarion.provider import webpush
from clarion.provider.outcome import Delivered

BODY = os.urandom(389)
WINDOW = 64  # the Deliverer's PREPARE_WINDOW
PAYLOAD = b'{"title":"Clarion benchmark","message":"' + b"m" * 250 + b'"}'
HEADERS = {
    "TTL": "86400",
    "Authorization": "vapid t=" + "j" * 260 + ", k=" + "k" * 87,
    "Content-Encoding": "aes128gcm",
    "Content-Type": "application/octet-stream",
}


async def _timed(n: int, in_flight: int, one: Callable[[int], Awaitable[None]]) -> tuple[float, float, float]:
    """(µs of process CPU per request, µs of this thread's CPU per request, requests per second)."""
    numbers = iter(range(n))

    async def lane() -> None:
        for i in numbers:
            await one(i)

    cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return (
        (time.process_time() - cpu) / n * 1e6,
        (time.thread_time() - thread) / n * 1e6,
        n / (time.perf_counter() - wall),
    )


def _print(name: str, figures: tuple[float, float, float]) -> None:
    per_request, loop_thread, rate = figures
    others = per_request - loop_thread
    print(
        f"  {name:<16} {per_request:7.1f} µs CPU per request "
        f"(event loop {loop_thread:6.1f}, other threads {others:6.1f})   {rate:9,.0f} requests/s",
        flush=True,
    )


async def _aiohttp(origin: str, n: int, in_flight: int) -> tuple[float, float, float]:
    connector = aiohttp.TCPConnector(limit=in_flight * 4)
    timeout = aiohttp.ClientTimeout(total=15, connect=5)
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def one(i: int) -> None:
            url = f"{origin}/push/{i}"
            async with session.post(
                url, data=BODY, headers=HEADERS, timeout=timeout, allow_redirects=False
            ) as response:
                await response.read()

        return await _timed(n, in_flight, one)


async def _pyreqwest(origin: str, n: int, in_flight: int) -> tuple[float, float, float]:
    client = webpush.http_client(ca_file=None, timeout_s=15, connect_timeout_s=5)

    async def one(i: int) -> None:
        request = client.post(f"{origin}/push/{i}").headers(HEADERS).body_bytes(BODY).build_streamed()
        async with request as response:
            await response.body_reader.read(65536)

    try:
        return await _timed(n, in_flight, one)
    finally:
        await client.close()


async def _transmit_all(client: Client, prepared: Iterator[webpush.PreparedPush], in_flight: int) -> None:
    async def lane() -> None:
        for ready in prepared:
            await webpush.transmit(client, ready)

    await asyncio.gather(*(lane() for _ in range(in_flight)))


async def _send_path(
    origin: str, n: int, in_flight: int, subs: list[storage.WebSubscription]
) -> tuple[tuple[float, float, float], tuple[float, float, float], float]:
    client = webpush.http_client(ca_file=None, timeout_s=15, connect_timeout_s=5)
    private_pem, public_key = webpush.generate_vapid_keys()
    signer = webpush.VapidSigner(private_pem, public_key, "mailto:bench@localhost")

    async def one(i: int) -> None:
        sub = subs[i % len(subs)]
        request = webpush.WebPushRequest(f"{origin}/push/{i}", sub.p256dh, sub.auth, PAYLOAD, 86400)
        outcome = await webpush.send(client, signer, request)
        if outcome != Delivered(201):
            raise RuntimeError(f"the push service answered {outcome}")

    async def windows() -> None:
        for start in range(0, n, WINDOW):
            prepared = []
            for i in range(start, min(n, start + WINDOW)):
                sub = subs[i % len(subs)]
                request = webpush.WebPushRequest(f"{origin}/push/{i}", sub.p256dh, sub.auth, PAYLOAD, 86400)
                ready = webpush.prepare(signer, request)
                assert isinstance(ready, webpush.PreparedPush), ready
                prepared.append(ready)
            await _transmit_all(client, iter(prepared), in_flight)

    try:
        figures = await _timed(n, in_flight, one)
        cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
        await windows()
        windowed = (
            (time.process_time() - cpu) / n * 1e6,
            (time.thread_time() - thread) / n * 1e6,
            n / (time.perf_counter() - wall),
        )
    finally:
        await client.close()
    started = time.thread_time()
    for sub in subs:
        webpush.encrypt(PAYLOAD, sub.p256dh, sub.auth)
    encrypt_us = (time.thread_time() - started) / len(subs) * 1e6
    return figures, windowed, encrypt_us


async def _run(origin: str, args: argparse.Namespace, subs: list[storage.WebSubscription]) -> None:
    for run in range(1, args.runs + 1):
        print(f"run {run} of {args.runs}: {args.n:,} requests, {args.in_flight} in flight", flush=True)
        _print("aiohttp", await _aiohttp(origin, args.n, args.in_flight))
        _print("pyreqwest", await _pyreqwest(origin, args.n, args.in_flight))
        send_figures, windowed, encrypt_us = await _send_path(origin, args.n, args.in_flight, subs)
        _print("webpush.send", send_figures)
        _print("prepare+transmit", windowed)
        print(f"  {'':<16} encryption alone ≈ {encrypt_us:.1f} µs per message", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="requests per client and run")
    parser.add_argument("--in-flight", type=int, default=64, help="requests at a time")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    subs = storage.make_subscriptions(min(args.n, 2000), "http://127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="clarion-bench-http-") as tmp:
        group = ProcessGroup(Path(tmp))
        try:
            _, origin = processes.start_push_service(group)
            uvloop.run(_run(origin, args, subs))
        finally:
            group.close()


if __name__ == "__main__":
    main()
