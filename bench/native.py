"""Native providers at speed: FCM and APNs messages per CPU-second of Clarion's clients.

    python -m bench.native [--n 20000] [--in-flight 64] [--runs 2]
    python -m bench.native --e2e [--n 20000]     # through `clarion serve`: database, queue, ledger

Needs the test extras (`pip install -e '.[test]'`): the services are `tests/fakes/fcm.py` (FCM HTTP v1
and its OAuth token endpoint, aiohttp) and `tests/fakes/apns.py` (HTTP/2 over TLS with a test CA,
hypercorn), each in its own process, so only Clarion's CPU is counted here. They check every request
as the real services do (the grant's RS256 assertion, the bearer token, the message against the v1
reference; the ES256 provider token, the headers, the payload), so a message counted was a valid one.

Each run sends N messages through `FcmClient.send` and `ApnsClient.send` (what a worker's lanes call)
with `--in-flight` at a time, after a warm-up that opens the connections and gets the first token, and
prints messages per CPU-second of every thread of this process (the event loop and pyreqwest's runtime)
and messages per second (the fakes' ceiling more than the client's). It also prints how many OAuth
tokens FCM's endpoint issued and how many provider tokens APNs saw during the timed part (0 and 1:
no per-request OAuth or signing work), and what `TokenCache.get` costs when the token is cached.

`--e2e` measures Clarion end to end instead: one `clarion serve` on SQLite (in-process queue and
workers) with `CLARION_FCM_URL` and `CLARION_APNS_URL` at the fakes, two apps (one with the fake's
service account and N Android devices, one with its .p8 key and N iOS devices, bulk-inserted), one
campaign each through `POST /api/v3/push`; messages per CPU-second of every thread of the Clarion
process from the push until the fake accepted the N-th message and the campaign reads SENT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/native.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from bench import delivery, loopback, storage
from bench.processes import ProcessGroup, cpu_seconds
from clarion.content import Notification
from clarion.provider import apns, fcm
from clarion.provider.httpio import reqwest_client
from clarion.provider.oauth import AccessToken, TokenCache
from clarion.provider.outcome import Delivered, Outcome

ROOT = Path(__file__).resolve().parent.parent
# Issue 12: at least this many messages per CPU-second, each provider (gorush: about 5,000/s).
TARGET_PER_CPU_S = 5000
WARM_UP = 256
# Registration tokens the fake FCM makes (it refuses tokens it never issued); sends cycle through them.
FCM_DEVICES = 1000
MESSAGE = Notification(
    campaign_id="1",
    title="Clarion benchmark",
    message="One campaign to every device, as fast as the server can deliver it.",
    url="https://example.com/landing?utm_source=bench",
    icon="ic_notification",
    data={"screen": "offers"},
)

# Each fake in a child process prints what a client needs as one JSON line, then answers every line
# read on stdin with its counters, until stdin closes.
FCM_SERVER = """
import json, sys
from tests.fakes.fcm import FakeFcm
with FakeFcm() as fake:
    account = fake.new_service_account()
    tokens = [fake.new_token() for _ in range(int(sys.argv[1]))]
    print(json.dumps({"origin": fake.origin, "account": account, "tokens": tokens}), flush=True)
    for _ in sys.stdin:
        print(json.dumps({"tokens": len(fake.token_grants), "received": len(fake.received)}), flush=True)
"""
APNS_SERVER = """
import json, sys
from tests.fakes.apns import FakeApns
with FakeApns() as fake:
    print(json.dumps({"origin": fake.origin, "ca_file": fake.ca_file, "key_pem": fake.key_pem,
                      "key_id": fake.key_id, "team_id": fake.team_id, "topic": fake.topic}), flush=True)
    for _ in sys.stdin:
        print(json.dumps({"tokens": len(fake.provider_tokens), "received": len(fake.received)}),
              flush=True)
"""


class Fake:
    """A fake service in its own process: what it printed at start, and its counters on request."""

    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.proc = proc
        self.info = info

    def counters(self) -> dict[str, int]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        answer: dict[str, int] = json.loads(self.proc.stdout.readline())
        return answer


@contextlib.contextmanager
def fake_process(script: str, *args: str) -> Iterator[Fake]:
    """Run `script` (it imports tests.fakes, hence the repository root as cwd); stop it however we end."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the local service did not start (are the test extras installed?)")
        yield Fake(proc, json.loads(line))
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Measured:
    messages: int
    cpu_s: float
    wall_s: float
    tokens: int  # OAuth tokens issued (FCM) or distinct provider tokens seen (APNs) while timed
    accepted: int  # messages the fake accepted while timed

    @property
    def per_cpu_s(self) -> float:
        return self.messages / self.cpu_s

    @property
    def per_s(self) -> float:
        return self.messages / self.wall_s


async def lanes(n: int, in_flight: int, send: Callable[[int], Awaitable[Outcome]]) -> None:
    """`n` sends, `in_flight` at a time, as a worker's lanes make them; any other outcome than 200 fails."""
    left = iter(range(n))

    async def lane() -> None:
        for index in left:
            outcome = await send(index)
            if outcome != Delivered(200):
                raise RuntimeError(f"message {index}: {outcome}")

    await asyncio.gather(*(lane() for _ in range(in_flight)))


async def measure(fake: Fake, n: int, in_flight: int, send: Callable[[int], Awaitable[Outcome]]) -> Measured:
    await lanes(WARM_UP, in_flight, send)
    before = fake.counters()
    cpu, wall = time.process_time(), time.perf_counter()
    await lanes(n, in_flight, send)
    cpu_s, wall_s = time.process_time() - cpu, time.perf_counter() - wall
    after = fake.counters()
    accepted = after["received"] - before["received"]
    return Measured(n, cpu_s, wall_s, after["tokens"] - before["tokens"], accepted)


async def measure_fcm(fake: Fake, n: int, in_flight: int) -> Measured:
    # The client FcmProvider gives every app: one pooled pyreqwest client (registry.build_providers).
    http = reqwest_client(ca_file=None, timeout_s=15, connect_timeout_s=5)
    client = fcm.FcmClient(http, fake.info["account"], base_url=fake.info["origin"])
    devices: list[str] = fake.info["tokens"]
    try:
        return await measure(fake, n, in_flight, lambda i: client.send(devices[i % len(devices)], MESSAGE))
    finally:
        await http.close()


def apns_client_for(info: dict[str, Any]) -> apns.ApnsClient:
    """Clarion's APNs client for the fake APNs that printed `info` (its origin, CA and .p8 key)."""
    return apns.ApnsClient(
        base_url=info["origin"],
        key_pem=info["key_pem"],
        key_id=info["key_id"],
        team_id=info["team_id"],
        topic=info["topic"],
        ca_file=info["ca_file"],
        timeout_s=15,
        connect_timeout_s=5,
    )


async def measure_apns(fake: Fake, n: int, in_flight: int) -> Measured:
    client = apns_client_for(fake.info)
    device = "ab" * 32
    try:
        return await measure(fake, n, in_flight, lambda _: client.send(device, MESSAGE))
    finally:
        await client.close()


async def cached_token_cost_us(calls: int = 100_000) -> float:
    """CPU µs of one `TokenCache.get` that finds its token cached: all the OAuth work a send does."""

    async def fetch() -> AccessToken:
        return AccessToken("token", 3600.0)

    cache = TokenCache(fetch, provider="fcm")
    await cache.get()
    started = time.process_time()
    for _ in range(calls):
        await cache.get()
    return (time.process_time() - started) / calls * 1e6


def row(name: str, result: Measured) -> str:
    verdict = "PASS" if result.per_cpu_s >= TARGET_PER_CPU_S else "MISS"
    return (
        f"  {name:<5} {result.per_cpu_s:>8,.0f} msg per CPU-s ({1e6 / result.per_cpu_s:4.0f} µs)"
        f"  {result.per_s:>7,.0f} msg/s   accepted {result.accepted:,}/{result.messages:,}"
        f"   tokens while timed: {result.tokens}   >= {TARGET_PER_CPU_S:,} per core {verdict}"
    )


async def run(fcm_fake: Fake, apns_fake: Fake, args: argparse.Namespace) -> None:
    for index in range(1, args.runs + 1):
        print(f"run {index} of {args.runs}: {args.n:,} messages each, {args.in_flight} in flight", flush=True)
        print(row("FCM", await measure_fcm(fcm_fake, args.n, args.in_flight)), flush=True)
        print(row("APNs", await measure_apns(apns_fake, args.n, args.in_flight)), flush=True)
    print(
        f"FCM OAuth tokens issued in all: {fcm_fake.counters()['tokens']} "
        f"(one per FcmClient, fetched in the warm-up); TokenCache.get with the token cached: "
        f"{await cached_token_cost_us():.2f} µs CPU per send",
        flush=True,
    )


# --- end to end: clarion serve ------------------------------------------------------------------------


def _native_app(
    config: delivery.Config, env: dict[str, str], work: Path, provider: str, credential: dict[str, Any]
) -> dict[str, str]:
    app = delivery.create_app(config, env)
    if provider == "fcm":
        (work / "account.json").write_text(json.dumps(credential["account"]))
        args = ["--fcm", str(work / "account.json")]
    else:
        (work / "key.p8").write_text(credential["key_pem"])
        args = ["--apns-key", str(work / "key.p8"), "--apns-key-id", credential["key_id"]]
        args += ["--apns-team-id", credential["team_id"], "--apns-topic", credential["topic"]]
    delivery.cli(env, "apps", "credentials", app["app_key"], *args, python=config.python)
    return app


def _campaign(server_url: str, app: dict[str, str], fake: Fake, n: int, pid: int) -> Measured:
    auth = (app["app_key"], app["app_secret"])
    before, cpu, wall = fake.counters(), cpu_seconds(pid), time.perf_counter()
    status, answer = loopback.request("POST", f"{server_url}/api/v3/push", delivery.CAMPAIGN, auth)
    if status != 200:
        raise RuntimeError(f"POST /api/v3/push answered {status}: {answer}")
    url = f"{server_url}/api/v3/messages/{answer['id']}"
    deadline = time.monotonic() + delivery.STALL_S + n / 100
    while (
        fake.counters()["received"] - before["received"] < n
        or loopback.request("GET", url, auth=auth)[1]["status"] != "SENT"
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"campaign {answer['id']} not SENT in time: {fake.counters()}")
        time.sleep(delivery.POLL_S * 2)
    cpu_s, wall_s = cpu_seconds(pid) - cpu, time.perf_counter() - wall
    after = fake.counters()
    return Measured(
        n, cpu_s, wall_s, after["tokens"] - before["tokens"], after["received"] - before["received"]
    )


def end_to_end(fcm_fake: Fake, apns_fake: Fake, n: int, python: str = sys.executable) -> None:
    with tempfile.TemporaryDirectory(prefix="clarion-native-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        config = delivery.Config(mode="sqlite", n=n, python=python)
        database_url, queue_url = delivery.open_storage(config, work, stack)
        group = ProcessGroup(work)
        stack.callback(group.close)
        env = delivery.clarion_env(config, database_url, queue_url)
        env["CLARION_FCM_URL"] = fcm_fake.info["origin"]
        env["CLARION_APNS_URL"] = apns_fake.info["origin"]
        env["CLARION_CA_FILE"] = apns_fake.info["ca_file"]
        android = _native_app(config, env, work, "fcm", fcm_fake.info)
        ios = _native_app(config, env, work, "apns", apns_fake.info)
        tokens: list[str] = fcm_fake.info["tokens"][:n]
        storage.bulk_devices(database_url, android["app_key"], [storage.Device("android", t) for t in tokens])
        devices = [storage.Device("ios", f"{index:064x}") for index in range(n)]
        storage.bulk_devices(database_url, ios["app_key"], devices)
        server_url, clarion = delivery.start_clarion(config, group, env)
        pid = clarion[0].pid
        print(
            f"end to end: clarion serve (SQLite, in-process workers; {python}), one campaign of {n:,} each",
            flush=True,
        )
        print(row("FCM", _campaign(server_url, android, fcm_fake, n, pid)), flush=True)
        print(row("APNs", _campaign(server_url, ios, apns_fake, n, pid)), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.native", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="messages per provider and run")
    parser.add_argument("--in-flight", type=int, default=64, help="sends at a time (worker lanes)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--e2e", action="store_true", help="through clarion serve (SQLite) instead")
    parser.add_argument(
        "--base",
        metavar="PYTHON",
        help="--e2e: also run another checkout's Clarion (its venv's python), alternating, --runs times each",
    )
    args = parser.parse_args(argv)
    devices = max(FCM_DEVICES, args.n) if args.e2e else FCM_DEVICES
    with fake_process(FCM_SERVER, str(devices)) as fcm_fake, fake_process(APNS_SERVER) as apns_fake:
        if args.e2e and args.base:
            for _ in range(args.runs):
                end_to_end(fcm_fake, apns_fake, args.n, args.base)
                end_to_end(fcm_fake, apns_fake, args.n)
        elif args.e2e:
            end_to_end(fcm_fake, apns_fake, args.n)
        else:
            uvloop.run(run(fcm_fake, apns_fake, args))


if __name__ == "__main__":
    main()
