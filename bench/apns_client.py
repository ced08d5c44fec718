"""APNs client benchmark: Clarion's ApnsClient against a bare httpx HTTP/2 POST, on the local APNs.

    python -m bench.apns_client [--n 2000] [--in-flight 64] [--runs 3]

Needs the test extras (`pip install -e '.[test]'`): the server is `tests/fakes/apns.py` (HTTP/2 over
TLS with a test CA, hypercorn), run in its own process so that only the client's CPU is counted here.
Each run sends N notifications with `--in-flight` at a time and prints the CPU seconds of every
thread of this process per request and the requests per second. The requests per second are the
fake's ceiling more than the client's; the CPU figure is the one that matters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/apns_client.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvloop

from bench.native import APNS_SERVER, apns_client_for, fake_process
from clarion.content import Notification
from clarion.provider import apns
from clarion.provider.outcome import Delivered


def ssl_context(ca_file: str) -> ssl.SSLContext:
    """httpx's trust for the comparison: the system's CAs plus the fake APNs' test CA."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=ca_file)
    return context


MESSAGE = Notification(campaign_id="1", title="Clarion benchmark", message="m" * 200)
TOKEN = "ab" * 32


async def _timed(n: int, in_flight: int, one: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    left = iter(range(n))

    async def lane() -> None:
        for _ in left:
            await one()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return (time.process_time() - cpu) / n * 1e6, n / (time.perf_counter() - wall)


async def _apns_client(server: dict[str, Any], n: int, in_flight: int) -> tuple[float, float]:
    client = apns_client_for(server)

    async def one() -> None:
        outcome = await client.send(TOKEN, MESSAGE)
        if outcome != Delivered(200):
            raise RuntimeError(f"APNs answered {outcome}")

    try:
        return await _timed(n, in_flight, one)
    finally:
        await client.close()


async def _httpx_h2(server: dict[str, Any], n: int, in_flight: int) -> tuple[float, float]:
    """What ApnsClient cost before it moved to pyreqwest: the same request through httpx + h2."""
    token = apns.ProviderToken(server["key_pem"], key_id=server["key_id"], team_id=server["team_id"])
    headers = apns.build_headers(MESSAGE, topic=server["topic"], now_s=time.time())
    body = json.dumps(apns.build_payload(MESSAGE), separators=(",", ":"), ensure_ascii=False).encode()
    url = f"{server['origin']}/3/device/{TOKEN}"
    async with httpx.AsyncClient(http2=True, verify=ssl_context(server["ca_file"])) as client:

        async def one() -> None:
            response = await client.post(
                url, content=body, headers={**headers, "authorization": f"bearer {token.current()}"}
            )
            if response.status_code != 200:
                raise RuntimeError(f"APNs answered {response.status_code}: {response.text}")

        return await _timed(n, in_flight, one)


async def _run(server: dict[str, Any], args: argparse.Namespace) -> None:
    for run in range(1, args.runs + 1):
        print(f"run {run} of {args.runs}: {args.n:,} notifications, {args.in_flight} in flight", flush=True)
        for name, measure in (("ApnsClient", _apns_client), ("httpx + h2", _httpx_h2)):
            per_request, rate = await measure(server, args.n, args.in_flight)
            print(f"  {name:<12} {per_request:7.0f} µs CPU per request   {rate:7,.0f} requests/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="notifications per client and run")
    parser.add_argument("--in-flight", type=int, default=64, help="requests at a time")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with fake_process(APNS_SERVER) as fake:
        uvloop.run(_run(fake.info, args))


if __name__ == "__main__":
    main()
