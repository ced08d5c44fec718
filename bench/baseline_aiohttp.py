"""The Python baseline a skilled user writes without Clarion: pywebpush's encoder, aiohttp, 64 in flight.

    python -m bench.baseline_aiohttp JOB.json

Run in its own process by `bench.baselines.pywebpush_aiohttp`, so that its CPU time is its own. It reads
the job (subscriptions, payload, VAPID key, TTL), sends every message once through one keep-alive
`aiohttp.ClientSession` with `in_flight` requests at a time, and prints one JSON line: messages, failed,
wall_s and cpu_s (the process's CPU time, every thread, over the sending alone; imports and key loading
are not counted). The VAPID header is signed once per push-service origin and reused, as anyone sending
more than a few messages would; each message is encrypted by `pywebpush.WebPusher.encode` (through
`send_async`). uvloop is used where installed, as `clarion serve` does.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# 12 h, as Clarion signs: within the 24 h that RFC 8292 §2 allows a VAPID JWT.
VAPID_EXP_S = 12 * 3600


def vapid_headers(pem: str, subject: str, endpoints: list[str]) -> dict[str, str]:
    """One `Authorization: vapid t=…, k=…` per push-service origin, signed once."""
    from py_vapid import Vapid

    vapid = Vapid.from_pem(pem.encode())
    headers: dict[str, str] = {}
    for endpoint in endpoints:
        parts = urlsplit(endpoint)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in headers:
            claims = {"sub": subject, "aud": origin, "exp": int(time.time()) + VAPID_EXP_S}
            headers[origin] = vapid.sign(claims)["Authorization"]
    return headers


async def send_all(job: dict[str, Any]) -> dict[str, float]:
    import aiohttp
    from pywebpush import WebPusher

    subs: list[dict[str, Any]] = job["subscriptions"]
    authorization = vapid_headers(job["vapid_private_pem"], job["subject"], [s["endpoint"] for s in subs])
    data = job["payload"].encode()
    in_flight = int(job["in_flight"])
    failed = 0
    pending: Iterator[dict[str, Any]] = iter(subs)
    connector = aiohttp.TCPConnector(limit=in_flight, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=15)

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal failed
        for sub in pending:  # the shared iterator hands each subscription to one sender
            parts = urlsplit(sub["endpoint"])
            headers = {"Authorization": authorization[f"{parts.scheme}://{parts.netloc}"]}
            pusher = WebPusher(sub, aiohttp_session=session)
            response = await pusher.send_async(data, headers=headers, ttl=job["ttl_s"], timeout=timeout)
            if not isinstance(response, str) and response.status >= 300:
                failed += 1

    async with aiohttp.ClientSession(connector=connector) as session:
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(sender(session) for _ in range(in_flight)))
        wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    return {"messages": len(subs), "failed": failed, "wall_s": wall_s, "cpu_s": cpu_s}


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(send_all(job))
    else:
        result = uvloop.run(send_all(job))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
