"""Does a webhook endpoint slow delivery? Messages per Clarion CPU-second, with and without one.

One `clarion serve` (SQLite, in-process workers) and two apps with N web subscribers each at the
local push service: `plain` has no webhook endpoint, `hooked` has one at a local receiver (in this
process) that takes every event. Campaigns alternate plain, hooked, plain, hooked … (`--rounds`),
so the machine's noise falls on both alike. A hooked campaign is measured until its receiver has
every event (one `delivery.sent` per message, `campaign.started`, `campaign.finished`), so its
figure includes recording the events in the ledger's transactions and sending them.

    .venv/bin/python -m bench.webhooks --n 20000 --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench import loopback, processes, storage
from bench.delivery import (
    CAMPAIGN,
    Config,
    _wait_accepted,
    _wait_sent,
    clarion_env,
    cli,
    start_clarion,
)
from bench.processes import Child, ProcessGroup


class Receiver:
    """Counts the events of every batch; answers 204."""

    def __init__(self) -> None:
        self.events = 0
        self.requests = 0
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.events += len(json.loads(body)["data"]["events"])
                    receiver.requests += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/hook"
        finally:
            server.shutdown()
            server.server_close()


def _app(env: dict[str, str], name: str) -> dict[str, str]:
    created: dict[str, str] = json.loads(cli(env, "apps", "create", name, "--plan", "unlimited", "--json"))
    return created


def _campaign(
    serve: Child, push: str, server_url: str, app: dict[str, str], n: int, done: Receiver | None, want: int
) -> tuple[float, float]:
    """(Clarion CPU-seconds, wall seconds) for one campaign, until sent (and its events received)."""
    auth = (app["app_key"], app["app_secret"])
    processes.wait_for_quiet(10)
    before_cpu, started = processes.cpu_seconds(serve.proc.pid), time.monotonic()
    before = loopback.request("GET", f"{push}/stats")[1]["accepted"]
    status, answer = loopback.request("POST", f"{server_url}/api/v3/push", CAMPAIGN, auth)
    if status != 200:
        raise RuntimeError(f"POST /api/v3/push answered {status}: {answer}")
    stage = _Stage(push, server_url, auth, [serve])
    _wait_accepted(n, before, stage)  # type: ignore[arg-type]
    _wait_sent(stage, int(answer["id"]))  # type: ignore[arg-type]
    if done is not None:
        deadline = time.monotonic() + 120
        while done.events < want and time.monotonic() < deadline:
            time.sleep(0.05)
        if done.events < want:
            raise RuntimeError(f"webhook receiver got {done.events} of {want} events")
    return processes.cpu_seconds(serve.proc.pid) - before_cpu, time.monotonic() - started


class _Stage:
    """What bench.delivery's waits read from its Stage."""

    def __init__(self, push: str, server_url: str, auth: tuple[str, str], clarion: list[Child]) -> None:
        self.push_origin, self.server_url, self.auth, self.clarion = push, server_url, auth, clarion


def run(n: int, rounds: int) -> list[tuple[str, float, float]]:
    figures: list[tuple[str, float, float]] = []
    receiver = Receiver()
    with (
        tempfile.TemporaryDirectory(prefix="clarion-bench-webhooks-") as tmp,
        contextlib.ExitStack() as stack,
        receiver.serving() as hook_url,
    ):
        work = Path(tmp)
        database_url = stack.enter_context(storage.sqlite_database(work))
        group = ProcessGroup(work)
        stack.callback(group.close)
        push_child, push = processes.start_push_service(group)
        env = {
            **clarion_env(Config(n=n), database_url, "memory://"),
            "CLARION_OUTBOUND_ALLOW": "127.0.0.1/32",
        }
        plain, hooked = _app(env, "plain"), _app(env, "hooked")
        for app in (plain, hooked):
            storage.bulk_subscribe(database_url, app["app_key"], storage.make_subscriptions(n, push))
        server_url, clarion = start_clarion(Config(n=n), group, env)
        status, body = loopback.request(
            "POST",
            f"{server_url}/v1/apps/{hooked['app_key']}/webhooks",
            {"url": hook_url},
            (hooked["app_key"], hooked["app_secret"]),
        )
        if status != 201:
            raise RuntimeError(f"creating the endpoint answered {status}: {body}")
        for _ in range(rounds):
            cpu_s, wall_s = _campaign(clarion[0], push, server_url, plain, n, None, 0)
            figures.append(("without", cpu_s, wall_s))
            want = receiver.events + n + 2
            cpu_s, wall_s = _campaign(clarion[0], push, server_url, hooked, n, receiver, want)
            figures.append(("with", cpu_s, wall_s))
        print(f"  webhook requests: {receiver.requests:,} for {receiver.events:,} events", flush=True)
        del push_child
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="subscribers per app (messages per campaign)")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of campaigns (without, with)")
    args = parser.parse_args(argv)
    figures = run(args.n, args.rounds)
    for kind in ("without", "with"):
        mine = [(cpu, wall) for k, cpu, wall in figures if k == kind]
        for cpu_s, wall_s in mine:
            rate = args.n / cpu_s
            print(
                f"  {kind:>7} endpoint: {rate:8,.0f} msg per CPU-second ({cpu_s:.2f} s CPU, {wall_s:.1f} s)"
            )
        cpu = sum(c for c, _ in mine)
        print(f"  {kind:>7} endpoint, all rounds: {args.n * len(mine) / cpu:,.0f} messages per CPU-second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
