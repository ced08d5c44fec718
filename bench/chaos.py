"""Chaos suite (issue #19): one campaign per scenario through real Clarion processes, with a fault in it.

    python -m bench.chaos                       # every scenario, N = 20,000
    python -m bench.chaos --quick               # N = 2,000, for development
    python -m bench.chaos --scenario db-reset   # one scenario (repeat --scenario for more)

Clarion is driven from outside only: `clarion serve` / `clarion worker` processes, the CLI and the HTTP
APIs. What reached the push service (bench/push_service.py, per id) is the truth for lost and
duplicated. See bench/README.md, "Chaos suite", for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # `python bench/chaos.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import loopback, processes, storage
from bench.delivery import ADMIN_TOKEN, CAMPAIGN, VAPID_SUBJECT, cli, signals_interrupt, wait_healthy
from bench.processes import Child, ProcessGroup
from bench.tcp_proxy import Mode, TcpProxy

DEFAULT_N = 20_000
QUICK_N = 2_000
# The targets of issue #19.
MAX_DUPLICATES = 64
MAX_RECOVER_S = 10.0
MAX_API_S = 2.0
OUTAGE_S = 10.0
HANG_S = 20.0
# No recipient newly reached for this long while some remain: delivery has stalled.
STALL_GAP_S = 1.0
PROBE_EVERY_S = 0.2
PROBE_TIMEOUT_S = loopback.TIMEOUT_S  # a request that hangs longer is recorded as no answer
POLL_S = 0.05
DONE_POLL_S = 0.5
STARTUP_S = 60.0
# After the last recipient is reached and the campaign reads SENT: time for late duplicates to show.
SETTLE_S = 2.0


# --- what a scenario is and what it measured ------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """When the fault began and when it ended (wall clock, `time.time()`); equal for a kill."""

    start: float
    end: float


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    store: str  # "sqlite" (serve with the in-process queue), "postgres" (the same on PostgreSQL),
    #             "postgres-redis" (serve for the API plus `workers` clarion workers, a private Redis)
    fault: Callable[[Stage], Window | None]
    ttl_s: int = 600
    cap_s: float = 150.0  # from the push until the scenario gives up and reports what it has
    workers: int = 0
    push_args: tuple[str, ...] = ()
    probe_api: bool = False  # poll the APIs during the fault: latency and 5xx
    recover_label: str = "recover"


@dataclass
class Probe:
    at: float
    name: str
    status: int  # 0: no HTTP answer at all (refused, reset, timed out)
    latency_s: float


@dataclass
class Outcome:
    scenario: Scenario
    recipients: int
    delivered: int = 0
    duplicated: int = 0
    recover_s: float | None = None  # None: never recovered within the cap
    max_api_s: float | None = None
    api_bad: int | None = None  # 5xx other than 503, and requests with no answer at all
    api_503: int = 0
    early_after_429: int | None = None
    sent: bool = False
    elapsed_s: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.recipients - self.delivered

    def misses(self) -> list[str]:
        if self.error is not None:
            return [f"error: {self.error}"]
        found = []
        if self.lost:
            found.append(f"{self.lost} lost")
        if self.duplicated > MAX_DUPLICATES:
            found.append(f"{self.duplicated} duplicates > {MAX_DUPLICATES}")
        if not self.sent:
            found.append(f"not SENT within {self.scenario.cap_s:.0f} s")
        if self.scenario.fault is not _no_fault:
            if self.recover_s is None:
                found.append(f"{self.scenario.recover_label}: never")
            elif self.recover_s > MAX_RECOVER_S:
                found.append(f"{self.scenario.recover_label} {self.recover_s:.1f} s > {MAX_RECOVER_S:.0f} s")
        if self.api_bad:
            found.append(f"{self.api_bad} API 5xx/no answer")
        if self.max_api_s is not None and self.max_api_s > MAX_API_S:
            found.append(f"API request {self.max_api_s:.1f} s > {MAX_API_S:.0f} s")
        if self.early_after_429:
            found.append(f"{self.early_after_429} requests before Retry-After")
        return found


# --- what is running during a scenario ------------------------------------------------------------------


@dataclass
class Stage:
    scenario: Scenario
    n: int
    group: ProcessGroup
    env: dict[str, str]
    push_origin: str
    port: int
    clarion: dict[str, Child] = field(default_factory=dict)
    proxy: TcpProxy | None = None
    redis_port: int | None = None
    auth: tuple[str, str] = ("", "")
    campaign_id: int = 0
    deadline: float = 0.0  # time.time() at which the scenario gives up

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def push_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = loopback.request("GET", f"{self.push_origin}/stats")[1]
        return stats

    def wait_for_share(self, share: float) -> bool:
        """Until the push service has reached `share` of the recipients (False: the cap came first)."""
        while time.time() < self.deadline:
            if self.push_stats()["distinct"] >= share * self.n:
                return True
            time.sleep(POLL_S / 2)
        return False

    def start_serve(self) -> Child:
        name = "serve" if "serve" not in self.clarion else f"serve-{len(self.group.children)}"
        serve = self.group.start_python(name, "clarion.cli", "serve", "--port", str(self.port), env=self.env)
        self.clarion["serve"] = serve
        wait_healthy(serve, self.server_url)
        return serve

    def start_workers(self) -> None:
        started = [
            self.group.start_python(f"worker-{i + 1}", "clarion.cli", "worker", env=self.env)
            for i in range(self.scenario.workers)
        ]
        for worker in started:
            processes.wait_for_line(worker, " running", STARTUP_S)
            self.clarion[worker.name] = worker

    def kill(self, name: str) -> float:
        """SIGKILL a Clarion process (its whole session); the time it was killed."""
        child = self.clarion.pop(name)
        killed_at = time.time()
        os.killpg(child.pid, signal.SIGKILL)
        child.proc.wait(10)
        return killed_at


# --- the faults -----------------------------------------------------------------------------------------


def _no_fault(stage: Stage) -> Window | None:
    return None


def _kill_serve(stage: Stage) -> Window | None:
    if not stage.wait_for_share(0.5):
        return None
    killed_at = stage.kill("serve")
    stage.start_serve()
    return Window(killed_at, killed_at)


def _kill_worker(stage: Stage) -> Window | None:
    if not stage.wait_for_share(0.5):
        return None
    killed_at = stage.kill("worker-1")
    return Window(killed_at, killed_at)


def _database_outage(mode: Mode) -> Callable[[Stage], Window | None]:
    def fault(stage: Stage) -> Window | None:
        assert stage.proxy is not None
        if not stage.wait_for_share(0.5):
            return None
        start = time.time()
        with stage.proxy.broken(mode):
            time.sleep(OUTAGE_S)
        return Window(start, time.time())

    return fault


def _restart_redis(stage: Stage) -> Window | None:
    if not stage.wait_for_share(0.5):
        return None
    redis = next(c for c in stage.group.children if c.name.startswith("redis") and c.proc.poll() is None)
    start = time.time()
    os.killpg(redis.pid, signal.SIGKILL)
    redis.proc.wait(10)
    _start_redis(stage)  # empty: no persistence, as the finding
    return Window(start, time.time())


def _hang_push_service(stage: Stage) -> Window | None:
    if not stage.wait_for_share(0.5):
        return None
    start = time.time()
    loopback.request("POST", f"{stage.push_origin}/control/hang")
    try:
        time.sleep(HANG_S)
    finally:
        loopback.request("POST", f"{stage.push_origin}/control/answer")
    return Window(start, time.time())


SCENARIOS = (
    Scenario("kill-serve", "SQLite: SIGKILL clarion serve at 50 %, restart", "sqlite", _kill_serve),
    Scenario(
        "kill-worker",
        "PostgreSQL + Redis, 2 workers: SIGKILL one at 50 %",
        "postgres-redis",
        _kill_worker,
        workers=2,
        recover_label="takeover",
    ),
    Scenario(
        "db-reset",
        f"PostgreSQL connections reset for {OUTAGE_S:.0f} s at 50 % (TTL 120 s)",
        "postgres",
        _database_outage("reset"),
        ttl_s=120,
        probe_api=True,
    ),
    Scenario(
        "db-blackhole",
        f"PostgreSQL black-holed for {OUTAGE_S:.0f} s at 50 % (TTL 120 s)",
        "postgres",
        _database_outage("blackhole"),
        ttl_s=120,
        probe_api=True,
    ),
    Scenario(
        "redis-restart",
        "PostgreSQL + Redis, 2 workers: Redis killed and restarted empty at 50 %",
        "postgres-redis",
        _restart_redis,
        workers=2,
        probe_api=True,
    ),
    Scenario(
        "push-errors",
        "SQLite: push service answers 30 % 500, 20 % 429 (Retry-After: 2) throughout (TTL 1 h)",
        "sqlite",
        _no_fault,
        ttl_s=3600,
        # The target is "every recipient delivered within its TTL": the TTL is the honest cap. With half
        # the pushes refused, the last of 20,000 recipients needs ~15 attempts, ~15 minutes of back-off.
        cap_s=3600.0,
        push_args=("--fail-500", "0.3", "--fail-429", "0.2", "--retry-after", "2"),
    ),
    Scenario(
        "push-hang",
        f"SQLite: push service accepts and never answers for {HANG_S:.0f} s at 50 %",
        "sqlite",
        _hang_push_service,
    ),
)
BY_NAME = {s.name: s for s in SCENARIOS}


# --- storage and processes ------------------------------------------------------------------------------


def _start_redis(stage: Stage) -> None:
    """A private redis-server (never the machine's shared one), without persistence."""
    if stage.redis_port is None:
        stage.redis_port = loopback.free_port()
    args = ["redis-server", "--port", str(stage.redis_port), "--bind", "127.0.0.1"]
    redis = stage.group.start(
        f"redis-{len(stage.group.children)}", [*args, "--save", "", "--appendonly", "no"], {}
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ping = subprocess.run(
            ["redis-cli", "-p", str(stage.redis_port), "ping"], capture_output=True, check=False, timeout=5
        )
        if ping.stdout.strip() == b"PONG":
            return
        if redis.proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"the private redis-server did not start:\n{redis.log_tail()}")


def _storage(stage: Stage, work: Path, stack: contextlib.ExitStack) -> str:
    """Sets the stage's database and queue; returns the database URL that bypasses the proxy."""
    store = stage.scenario.store
    if store == "sqlite":
        url = stack.enter_context(storage.sqlite_database(work))
        stage.env.update(CLARION_DATABASE_URL=url, CLARION_QUEUE_URL="memory://")
        return url
    direct = stack.enter_context(storage.postgres_database(prefix="clarion_chaos"))
    parts = urlsplit(direct)
    stage.proxy = stack.enter_context(TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432))
    user = f"{parts.username}@" if parts.username else ""
    proxied = parts._replace(netloc=f"{user}127.0.0.1:{stage.proxy.port}").geturl()
    stage.env["CLARION_DATABASE_URL"] = proxied
    stage.env["CLARION_QUEUE_URL"] = "memory://"
    if store == "postgres-redis":
        _start_redis(stage)
        stage.env["CLARION_QUEUE_URL"] = f"redis://127.0.0.1:{stage.redis_port}/0"
    return direct


def _prepare(stage: Stage, direct_url: str) -> None:
    """Migrations, an app, N subscribers bulk-inserted (not timed, not part of any fault)."""
    if stage.scenario.store != "sqlite":
        cli(stage.env, "db", "upgrade")  # `apps create` migrates SQLite itself, not PostgreSQL
    app = json.loads(cli(stage.env, "apps", "create", "chaos", "--plan", "unlimited", "--json"))
    stage.auth = (app["app_key"], app["app_secret"])
    subs = storage.make_subscriptions(stage.n, stage.push_origin)
    storage.bulk_subscribe(direct_url, app["app_key"], subs)


# --- the API probes -------------------------------------------------------------------------------------


class ApiProbes:
    """One thread per API operation, each calling it every PROBE_EVERY_S and recording what it got."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.results: list[Probe] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.subs = storage.make_subscriptions(200, stage.push_origin)
        self.count = 0

    def start(self) -> None:
        reg_id = self._register()
        operations: dict[str, Callable[[], tuple[str, str, object]]] = {
            "push": lambda: (
                "POST",
                "/api/v3/push",
                {**CAMPAIGN, "ttl": 60, "audience": {"tokens": [reg_id]}},
            ),
            "tag": lambda: ("POST", f"/api/v3/tag?regId={reg_id}&name=chaos", None),
            "message": lambda: ("GET", f"/api/v3/messages/{self.stage.campaign_id}", None),
            "subscribe": self._subscribe_body,
        }
        for name, operation in operations.items():
            thread = threading.Thread(target=self._loop, args=(name, operation), daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(PROBE_TIMEOUT_S + 5)

    def _register(self) -> str:
        status, answer = loopback.request(
            "POST", f"{self.stage.server_url}/sdk/v1/subscribers", self._body(0)
        )
        if status not in (200, 201):
            raise RuntimeError(f"the probe subscriber was refused: {status} {answer}")
        return str(answer["regId"])

    def _body(self, index: int) -> dict[str, object]:
        # Not a numeric id: the push service's figures for the campaign's recipients leave it out.
        sub = replace(
            self.subs[index % len(self.subs)], endpoint=f"{self.stage.push_origin}/push/probe-{index}"
        )
        return {"app_key": self.stage.auth[0], "platform": "web", "subscription": sub.to_json()}

    def _subscribe_body(self) -> tuple[str, str, object]:
        self.count += 1
        return "POST", "/sdk/v1/subscribers", self._body(self.count)

    def _loop(self, name: str, operation: Callable[[], tuple[str, str, object]]) -> None:
        while not self.stop.is_set():
            method, path, body = operation()
            started, clock = time.time(), time.perf_counter()
            try:
                status = loopback.request(method, f"{self.stage.server_url}{path}", body, self.stage.auth)[0]
            except (OSError, http.client.HTTPException, ValueError):  # refused, reset, timed out, garbled
                status = 0
            latency = time.perf_counter() - clock
            self.results.append(Probe(started, name, status, latency))
            self.stop.wait(max(0.0, PROBE_EVERY_S - latency))


# --- running one scenario -------------------------------------------------------------------------------


def run(scenario: Scenario, n: int) -> Outcome:
    outcome = Outcome(scenario, n)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clarion-chaos-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        group = ProcessGroup(work)
        stack.callback(group.close)
        stack.push(lambda kind, error, tb: _print_logs_on_error(group, error))
        _, origin = processes.start_push_service(group, *scenario.push_args)
        env = {
            "CLARION_PUSH_HOSTS": "127.0.0.1",
            "CLARION_ADMIN_TOKEN": ADMIN_TOKEN,
            "CLARION_VAPID_SUBJECT": VAPID_SUBJECT,
            # The API probe registers 5 subscribers a second from one address: over the default limit.
            "CLARION_SUBSCRIBER_REGISTER_PER_IP_PER_MINUTE": "0",
        }
        stage = Stage(scenario, n, group, env, origin, loopback.free_port())
        # The storage's own unwinding (drop the database, stop the proxy) must come after the processes.
        inner = contextlib.ExitStack()
        stack.enter_context(inner)
        direct_url = _storage(stage, work, inner)
        inner.callback(group.close)
        _prepare(stage, direct_url)
        stage.start_serve()
        stage.start_workers()
        _campaign(stage, outcome)
    outcome.elapsed_s = time.monotonic() - started
    return outcome


def _campaign(stage: Stage, outcome: Outcome) -> None:
    probes = ApiProbes(stage) if stage.scenario.probe_api else None
    pushed_at = time.time()
    stage.deadline = pushed_at + stage.scenario.cap_s
    body = {**CAMPAIGN, "ttl": stage.scenario.ttl_s}
    status, answer = loopback.request("POST", f"{stage.server_url}/api/v3/push", body, stage.auth)
    if status != 200:
        raise RuntimeError(f"POST /api/v3/push answered {status}: {answer}")
    stage.campaign_id = int(answer["id"])
    try:
        if probes is not None:
            probes.start()
        window = stage.scenario.fault(stage)
        if window is None and stage.scenario.fault is not _no_fault:
            outcome.notes.append("the campaign never reached 50 %: no fault injected")
        outcome.sent = _wait_done(stage)
    finally:
        if probes is not None:
            probes.close()
    ended_at = time.time()
    _count(stage, outcome, window, ended_at)
    if probes is not None and window is not None:
        _api_figures(outcome, probes.results, window)


def _wait_done(stage: Stage) -> bool:
    """Until the campaign reads SENT (every recipient has a final outcome), or the cap; then a settle time.

    SENT with recipients missing is an answer too: nothing more will be sent, they are lost.
    """
    url = f"{stage.server_url}/api/v3/messages/{stage.campaign_id}"
    while time.time() < stage.deadline:
        with contextlib.suppress(OSError):
            status, answer = loopback.request("GET", url, auth=stage.auth)
            if status == 200 and answer["status"] == "SENT":
                time.sleep(SETTLE_S)
                return True
        time.sleep(DONE_POLL_S)
    return False


def _recipient_ids(stage: Stage) -> dict[str, Any]:
    ids: dict[str, Any] = loopback.request("GET", f"{stage.push_origin}/ids")[1]
    return ids


def _is_recipient(key: str, n: int) -> bool:
    return key.isdigit() and int(key) < n


def _count(stage: Stage, outcome: Outcome, window: Window | None, ended_at: float) -> None:
    ids = _recipient_ids(stage)
    counts = {k: v for k, v in ids["counts"].items() if _is_recipient(k, stage.n)}
    outcome.delivered = len(counts)
    outcome.duplicated = sum(counts.values()) - len(counts)
    stats = stage.push_stats()
    if stage.scenario.push_args:
        outcome.early_after_429 = stats["early_after_429"]
        gap = stats["min_gap_after_429"]
        outcome.notes.append(
            f"push service answered {stats['answered_500']} x 500, {stats['answered_429']} x 429; "
            f"shortest wait after a 429: {'-' if gap is None else f'{gap:.2f} s'}"
        )
    if stats["hung"]:
        outcome.notes.append(f"{stats['hung']} pushes left unanswered while hanging")
    if window is not None:
        firsts = sorted(t for k, t in ids["first_time"].items() if _is_recipient(k, stage.n))
        outcome.recover_s = recover_seconds(firsts, window, ended_at, complete=outcome.lost == 0)


def recover_seconds(firsts: list[float], window: Window, ended_at: float, *, complete: bool) -> float | None:
    """Seconds from the fault's end until the last stall it caused was over; None if it never was.

    A stall is a gap of at least STALL_GAP_S in which no recipient was reached for the first time. Stalls
    that began from (just before) the fault's start on count, whether during the fault or after it (work
    picked up before the fault may keep delivery going for a while and hide a stall that comes later).
    If the campaign is incomplete, the time from its last first delivery to the end is a stall that never
    ended. No stall: delivery went on through the fault, 0.
    """
    times = [t for t in firsts if t >= window.start - STALL_GAP_S]
    if not complete:
        return None
    recovered_at = window.end
    for before, after in itertools.pairwise(times):
        if after - before >= STALL_GAP_S and after > window.end:
            recovered_at = after
    return max(0.0, recovered_at - window.end)


def _api_figures(outcome: Outcome, results: list[Probe], window: Window) -> None:
    """Requests started during the fault (and in the 2 s after it): the slowest, and the bad answers."""
    during = [p for p in results if window.start <= p.at <= window.end + MAX_API_S]
    if not during:
        outcome.notes.append("no API probe ran during the fault")
        return
    outcome.max_api_s = max(p.latency_s for p in during)
    bad = [p for p in during if p.status == 0 or (p.status >= 500 and p.status != 503)]
    outcome.api_bad = len(bad)
    outcome.api_503 = sum(1 for p in during if p.status == 503)
    by_status: dict[str, int] = {}
    for probe in during:
        key = f"{probe.name} {probe.status or 'no answer'}"
        by_status[key] = by_status.get(key, 0) + 1
    outcome.notes.append(
        "API during the fault: " + ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items()))
    )


def _print_logs_on_error(group: ProcessGroup, error: BaseException | None) -> None:
    if isinstance(error, Exception):
        for child in group.children:
            print(f"--- {child.name} (last lines of its log) ---\n{child.log_tail(15)}", file=sys.stderr)


# --- the report -----------------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(outcomes: list[Outcome]) -> str:
    header = (
        "scenario",
        "recipients",
        "delivered",
        "lost",
        "dup",
        "recover s",
        "max API s",
        "API 5xx",
        "result",
    )
    rows = [header]
    for o in outcomes:
        misses = o.misses()
        recover = "-" if o.scenario.fault is _no_fault else _seconds(o.recover_s)
        if o.recover_s is None and o.scenario.fault is not _no_fault and o.error is None:
            recover = "never"
        rows.append(
            (
                o.scenario.name,
                f"{o.recipients:,}",
                f"{o.delivered:,}",
                f"{o.lost:,}",
                f"{o.duplicated:,}",
                recover,
                _seconds(o.max_api_s),
                "-" if o.api_bad is None else str(o.api_bad),
                "PASS" if not misses else "MISS: " + "; ".join(misses),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(w) for cell, w in zip(row[1:-1], widths[1:], strict=True)
        ]
        lines.append("  ".join([*cells, row[-1]]))
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, help=f"recipients per campaign (default {DEFAULT_N:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_N:,} recipients, for development")
    parser.add_argument(
        "--scenario", action="append", choices=sorted(BY_NAME), help="run only this one (repeatable)"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:14} {s.title}")
        return 0
    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    chosen = [BY_NAME[name] for name in args.scenario] if args.scenario else list(SCENARIOS)
    outcomes: list[Outcome] = []
    print(f"Clarion chaos suite: {n:,} recipients, {os.cpu_count()} CPUs", flush=True)
    with signals_interrupt():
        try:
            for scenario in chosen:
                print(f"-- {scenario.name}: {scenario.title}", flush=True)
                outcomes.append(_run_one(scenario, n))
        except KeyboardInterrupt:
            print("interrupted: every process stopped, temporary databases removed", file=sys.stderr)
            return 130
    print()
    print(table(outcomes))
    return 0 if all(not o.misses() for o in outcomes) else 1


def _run_one(scenario: Scenario, n: int) -> Outcome:
    try:
        outcome = run(scenario, n)
    except Exception as error:  # one broken scenario does not void the others
        outcome = Outcome(scenario, n, error=f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
    for note in outcome.notes:
        print(f"   {note}", flush=True)
    print(f"   done in {outcome.elapsed_s:.0f} s: {'PASS' if not outcome.misses() else 'MISS'}", flush=True)
    return outcome


if __name__ == "__main__":
    sys.exit(main())
