"""Delivery benchmark: one campaign to N web subscribers through real Clarion processes.

    python -m bench.delivery [--n 100000] [--mode sqlite|postgres-redis] [--workers 1|2]
    python -m bench.delivery --suite        # sqlite 10k and N, postgres-redis 1 and 2 workers
    python -m bench.delivery --rss --n 1000000 [--mode postgres-redis]   # peak RSS, 10k against N

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # `python bench/delivery.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import baselines, loopback, processes, storage
from bench.baselines import Rate
from bench.processes import Child, ProcessGroup
from bench.profiling import Profilers
from clarion.secrets_box import new_key

VAPID_SUBJECT = "mailto:bench@localhost"
ADMIN_TOKEN = "bench-admin-token"
CAMPAIGN = {
    "payload": {
        "title": "Clarion benchmark",
        "message": "One campaign to every subscriber, as fast as the server can deliver it.",
        "redirect_url": "https://example.com/landing?utm_source=bench",
        "icon": "https://example.com/icon.png",
    }
}
POLL_S = 0.05
# A campaign that makes no progress for this long has failed; the run stops instead of hanging.
STALL_S = 60.0
STARTUP_S = 60.0
NOT_MEASURED = Rate(0, 0.0)


@dataclass(frozen=True)
class Config:
    mode: str = "sqlite"
    n: int = 100_000
    workers: int = 1
    jobs: int | None = None
    concurrency: int | None = None
    chunk_size: int | None = None
    crypto_sample: int = 20_000
    pywebpush_sample: int = 2_000
    baseline_sample: int = 10_000
    quiet_wait_s: float = 30.0
    analyze: bool = True
    profile_dir: Path | None = None
    baselines: bool = True
    # The interpreter that runs Clarion (another checkout's venv, to compare two versions in one run).
    python: str = sys.executable
    # Count the instructions `clarion serve` executes for the campaign (SQLite only): it runs under
    # valgrind's callgrind, instrumented only from the push until SENT. Tens of times slower, but
    # the count repeats within a few per cent on a machine whose CPU time does not (bench.compare).
    instructions: bool = False

    @property
    def label(self) -> str:
        if self.mode == "sqlite":
            return f"sqlite, in-process, N={self.n:,}"
        fresh = "" if self.analyze else ", no ANALYZE"
        return f"postgres-redis, {self.workers} worker{'s' * (self.workers > 1)}, N={self.n:,}{fresh}"


@dataclass(frozen=True)
class ProcessFigures:
    name: str
    cpu_s: float
    main_thread_cpu_s: float
    peak_rss_mb: float


@dataclass
class Result:
    config: Config
    setup_s: float = 0.0
    wall_s: float = 0.0  # POST /api/v3/push -> the push service accepts the N-th message
    sent_s: float = 0.0  # POST /api/v3/push -> the campaign reads SENT
    instructions: int = 0  # Config.instructions: what serve executed from the push to SENT
    clarion: list[ProcessFigures] = field(default_factory=list)
    push_service_cpu_s: float = 0.0
    postgres_cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    mean_body_bytes: float = 0.0
    settings: dict[str, str] = field(default_factory=dict)
    crypto: Rate = NOT_MEASURED
    pywebpush: Rate = NOT_MEASURED
    pywebpush_session: Rate = NOT_MEASURED
    pywebpush_aiohttp: Rate = NOT_MEASURED
    node_web_push: Rate = NOT_MEASURED

    @property
    def clarion_cpu_s(self) -> float:
        return sum(p.cpu_s for p in self.clarion)

    @property
    def system_cpu_s(self) -> float:
        """Clarion with the services it leans on: the database, the queue and the push service."""
        return self.clarion_cpu_s + self.postgres_cpu_s + self.redis_cpu_s + self.push_service_cpu_s

    @property
    def per_s(self) -> float:
        return self.config.n / self.wall_s

    @property
    def per_cpu_s(self) -> float:
        return self.config.n / self.clarion_cpu_s

    @property
    def crypto_ratio(self) -> float:
        return self.per_cpu_s / self.crypto.per_s

    @property
    def pywebpush_ratio(self) -> float:
        return self.per_s / self.pywebpush.per_s

    @property
    def best_baseline(self) -> tuple[str, Rate] | None:
        """The concurrent baseline with the most messages per CPU-second, if any was measured."""
        measured = [
            (name, rate)
            for name, rate in (
                ("pywebpush + aiohttp", self.pywebpush_aiohttp),
                ("node web-push", self.node_web_push),
            )
            if rate.cpu_s > 0
        ]
        return max(measured, key=lambda item: item[1].per_cpu_s) if measured else None

    @property
    def baseline_ratio(self) -> float:
        """Clarion's messages per CPU-second over the best concurrent baseline's."""
        best = self.best_baseline
        return self.per_cpu_s / best[1].per_cpu_s if best is not None else float("nan")

    @property
    def peak_rss_mb(self) -> float:
        return max(p.peak_rss_mb for p in self.clarion)


# --- running one benchmark ----------------------------------------------------------------------------


# Something to run beside the timed campaign (bench/scale.py samples the queue and the fan-out's
# slices): given the stage, the database URL and the queue URL, entered just before the push.
Watch = Callable[["Stage", str, str], AbstractContextManager[object]]


def run(config: Config, watch: Watch | None = None) -> Result:
    result = Result(config)
    with tempfile.TemporaryDirectory(prefix="clarion-bench-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        database_url, queue_url = open_storage(config, work, stack)
        group = ProcessGroup(work)
        # Unwound in reverse: logs are shown (on error), then processes are killed, then their
        # database and queue are removed.
        stack.callback(group.close)
        stack.push(lambda kind, error, tb: _print_logs_on_error(group, error))
        push, origin = processes.start_push_service(group)
        env = clarion_env(config, database_url, queue_url)
        result.settings = {
            k: v
            for k, v in env.items()
            if k.startswith("CLARION_") and "TOKEN" not in k and "SECRET" not in k
        }

        started = time.perf_counter()
        app = create_app(config, env)
        subs = storage.make_subscriptions(config.n, origin)
        storage.bulk_subscribe(database_url, app["app_key"], subs, analyze=config.analyze)
        result.setup_s = time.perf_counter() - started
        print(f"  {config.n:,} subscribers ready in {result.setup_s:.1f} s", flush=True)

        server_url, clarion = start_clarion(config, group, env)
        database = None if config.mode == "sqlite" else urlsplit(database_url).path.lstrip("/")
        stage = Stage(group, clarion, push, origin, server_url, (app["app_key"], app["app_secret"]), database)
        with watch(stage, database_url, queue_url) if watch else contextlib.nullcontext():
            campaign_id = _measure_campaign(config, result, stage)
        for child in clarion:
            group.stop(child, timeout_s=60 if config.instructions else 30)
        if config.instructions:
            result.instructions = callgrind_total(work / "callgrind.out")

        if config.baselines:
            campaign = storage.sent_campaign(database_url, env["CLARION_SECRET_KEY"], campaign_id)
            _measure_baselines(config, result, subs, campaign, work)
    return result


def _print_logs_on_error(group: ProcessGroup, error: BaseException | None) -> None:
    if isinstance(error, Exception):
        for child in group.children:
            print(f"--- {child.name} (last lines of its log) ---\n{child.log_tail()}", file=sys.stderr)


def open_storage(config: Config, work: Path, stack: contextlib.ExitStack) -> tuple[str, str]:
    if config.mode == "sqlite":
        return stack.enter_context(storage.sqlite_database(work)), "memory://"
    return stack.enter_context(storage.postgres_database()), stack.enter_context(storage.flushed_redis())


def clarion_env(config: Config, database_url: str, queue_url: str) -> dict[str, str]:
    env = {
        "CLARION_DATABASE_URL": database_url,
        "CLARION_QUEUE_URL": queue_url,
        "CLARION_PUSH_HOSTS": "127.0.0.1",
        "CLARION_ADMIN_TOKEN": ADMIN_TOKEN,
        "CLARION_VAPID_SUBJECT": VAPID_SUBJECT,
        # One key for every process of the run, and for reading the campaign back (sent_campaign).
        "CLARION_SECRET_KEY": new_key(),
    }
    tuning = {
        "CLARION_WORKER_JOBS": config.jobs,
        "CLARION_WORKER_CONCURRENCY": config.concurrency,
        "CLARION_CHUNK_SIZE": config.chunk_size,
    }
    env.update({name: str(value) for name, value in tuning.items() if value is not None})
    return env


def cli(env: dict[str, str], *args: str, python: str = sys.executable) -> str:
    done = subprocess.run(
        [python, "-m", "clarion.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"clarion {' '.join(args)} failed:\n{done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


def create_app(config: Config, env: dict[str, str]) -> dict[str, str]:
    if config.mode != "sqlite":
        cli(env, "db", "upgrade", python=config.python)  # `apps create` migrates SQLite, not PostgreSQL
    created: dict[str, str] = json.loads(
        cli(env, "apps", "create", "bench", "--plan", "unlimited", "--json", python=config.python)
    )
    return created


def start_clarion(config: Config, group: ProcessGroup, env: dict[str, str]) -> tuple[str, list[Child]]:
    port = loopback.free_port()
    command = [config.python, "-m", "clarion.cli", "serve", "--port", str(port)]
    if config.instructions:
        out = group.log_dir / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            *command,
        ]
        env = {**env, "CLARION_REQUEST_TIMEOUT_S": "120", "CLARION_DELIVERY_LEASE_S": "60"}
        env["CLARION_DELIVERY_RENEW_S"] = "5"
    serve = group.start("serve", command, env)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(serve, url, STARTUP_S * (5 if config.instructions else 1))
    clarion = [serve]
    if config.mode != "sqlite":
        for index in range(config.workers):
            args = [config.python, "-m", "clarion.cli", "worker"]
            clarion.append(group.start(f"worker-{index + 1}", args, env))
        for worker in clarion[1:]:
            processes.wait_for_line(worker, " running", STARTUP_S)
    return url, clarion


def wait_healthy(serve: Child, url: str, startup_s: float = STARTUP_S) -> None:
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if serve.proc.poll() is not None:
            raise RuntimeError(f"clarion serve exited:\n{serve.log_tail()}")
        with contextlib.suppress(OSError):
            if loopback.request("GET", f"{url}/healthz")[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"clarion serve did not become healthy:\n{serve.log_tail()}")


@dataclass(frozen=True)
class Stage:
    """What is running while a campaign is measured."""

    group: ProcessGroup
    clarion: list[Child]
    push: Child
    push_origin: str
    server_url: str
    auth: tuple[str, str]
    database: str | None  # the PostgreSQL database whose backends are accounted, if any


@dataclass(frozen=True)
class Snapshot:
    clarion_cpu_s: dict[str, float]
    main_thread_cpu_s: dict[str, float]
    push_cpu_s: float
    services: dict[int, tuple[str, float]]
    machine_busy_s: float
    own_cpu_s: float
    push_stats: dict[str, Any]


def _snapshot(stage: Stage) -> Snapshot:
    return Snapshot(
        {child.name: processes.cpu_seconds(child.pid) for child in stage.clarion},
        {child.name: processes.main_thread_cpu_seconds(child.pid) for child in stage.clarion},
        processes.cpu_seconds(stage.push.pid),
        processes.service_cpu_seconds(stage.database),
        processes.machine_busy_s(),
        time.process_time(),
        loopback.request("GET", f"{stage.push_origin}/stats")[1],
    )


def _measure_campaign(config: Config, result: Result, stage: Stage) -> int:
    profilers = Profilers(stage.group, config.profile_dir) if config.profile_dir else None
    if profilers is not None:
        for child in stage.clarion:
            profilers.attach(child)
    processes.wait_for_quiet(config.quiet_wait_s)
    if config.instructions:
        _callgrind(stage.clarion[0].pid, "-i", "on")
    before = _snapshot(stage)
    pushed_at = time.time()
    status, answer = loopback.request("POST", f"{stage.server_url}/api/v3/push", CAMPAIGN, stage.auth)
    if status != 200:
        raise RuntimeError(f"POST /api/v3/push answered {status}: {answer}")
    campaign_id = int(answer["id"])
    stats = _wait_accepted(config.n, before.push_stats["accepted"], stage)
    _wait_sent(stage, campaign_id)
    if config.instructions:
        _callgrind(stage.clarion[0].pid, "-i", "off")
    result.sent_s = time.time() - pushed_at
    after = _snapshot(stage)
    result.wall_s = stats["last_at"] - pushed_at
    result.clarion = [
        ProcessFigures(
            c.name,
            after.clarion_cpu_s[c.name] - before.clarion_cpu_s[c.name],
            after.main_thread_cpu_s[c.name] - before.main_thread_cpu_s[c.name],
            processes.peak_rss_mb(c.pid),
        )
        for c in stage.clarion
    ]
    _account_others(result, before, after)
    if profilers is not None:
        for summary in profilers.finish():
            print(f"  profile: {summary}", flush=True)
    return campaign_id


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


def callgrind_total(out: Path) -> int:
    """The instructions callgrind counted (the `totals:` lines), over every thread and every dump
    (switching instrumentation off dumps what was counted so far into `out.1`, `out.2`, ...)."""
    total = 0
    for dump in out.parent.glob(f"{out.name}*"):
        for line in dump.read_text().splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
    return total


def _account_others(result: Result, before: Snapshot, after: Snapshot) -> None:
    accepted = after.push_stats["accepted"] - before.push_stats["accepted"]
    body_bytes = after.push_stats["body_bytes"] - before.push_stats["body_bytes"]
    result.mean_body_bytes = body_bytes / accepted if accepted else 0.0
    result.push_service_cpu_s = after.push_cpu_s - before.push_cpu_s
    result.postgres_cpu_s = processes.service_cpu_delta(before.services, after.services, "postgres")
    result.redis_cpu_s = processes.service_cpu_delta(before.services, after.services, "redis")
    own = after.own_cpu_s - before.own_cpu_s
    known = result.system_cpu_s + own
    result.other_cpu_s = max(0.0, after.machine_busy_s - before.machine_busy_s - known)


def _check_alive(clarion: list[Child]) -> None:
    for child in clarion:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n{child.log_tail()}")


def _wait_accepted(n: int, offset: int, stage: Stage) -> dict[str, Any]:
    progress_at, last = time.monotonic(), offset
    while True:
        stats: dict[str, Any] = loopback.request("GET", f"{stage.push_origin}/stats")[1]
        if stats["accepted"] - offset >= n:
            return stats
        if stats["accepted"] != last:
            progress_at, last = time.monotonic(), stats["accepted"]
        elif time.monotonic() - progress_at > STALL_S:
            raise RuntimeError(f"stalled: {last - offset} of {n} messages after {STALL_S:.0f} s")
        _check_alive(stage.clarion)
        time.sleep(POLL_S)


def _wait_sent(stage: Stage, campaign_id: int) -> None:
    deadline = time.monotonic() + STALL_S
    while time.monotonic() < deadline:
        url = f"{stage.server_url}/api/v3/messages/{campaign_id}"
        status, answer = loopback.request("GET", url, auth=stage.auth)
        if status == 200 and answer["status"] == "SENT":
            return
        _check_alive(stage.clarion)
        time.sleep(POLL_S * 2)
    raise RuntimeError(f"campaign {campaign_id}: every message delivered but not SENT after {STALL_S:.0f} s")


def _measure_baselines(
    config: Config,
    result: Result,
    subs: list[storage.WebSubscription],
    campaign: storage.SentCampaign,
    work: Path,
) -> None:
    crypto_subs = subs[: min(len(subs), config.crypto_sample)]
    print(f"  crypto-only over {len(crypto_subs):,} subscriptions ...", flush=True)
    result.crypto = baselines.crypto_only(crypto_subs, campaign, VAPID_SUBJECT)
    key_path = work / "vapid.pem"
    key_path.write_text(campaign.vapid_private_pem)
    loop_subs = subs[: min(len(subs), config.pywebpush_sample)]
    print(f"  pywebpush loop over {len(loop_subs):,} subscriptions ...", flush=True)
    processes.wait_for_quiet(config.quiet_wait_s)
    result.pywebpush = baselines.pywebpush_loop(loop_subs, campaign, VAPID_SUBJECT, key_path)
    result.pywebpush_session = baselines.pywebpush_loop(
        loop_subs, campaign, VAPID_SUBJECT, key_path, reuse_connections=True
    )
    concurrent_subs = subs[: min(len(subs), config.baseline_sample)]
    print(
        f"  pywebpush + aiohttp, {baselines.IN_FLIGHT} in flight, {len(concurrent_subs):,} msgs ...",
        flush=True,
    )
    processes.wait_for_quiet(config.quiet_wait_s)
    result.pywebpush_aiohttp = baselines.pywebpush_aiohttp(concurrent_subs, campaign, VAPID_SUBJECT, work)
    print(f"  node web-push, {baselines.IN_FLIGHT} in flight, {len(concurrent_subs):,} msgs ...", flush=True)
    processes.wait_for_quiet(config.quiet_wait_s)
    result.node_web_push = baselines.node_web_push(concurrent_subs, campaign, VAPID_SUBJECT, work)
    if result.node_web_push.skipped:
        print(f"  node web-push skipped: {result.node_web_push.skipped}", flush=True)


# --- the command line ---------------------------------------------------------------------------------


def suite_configs(base: Config) -> list[Config]:
    """sqlite at 10,000 and at N (peak RSS must not grow), postgres-redis with 1 and 2 workers."""
    return [
        replace(base, mode="sqlite", n=min(10_000, base.n), workers=1),
        replace(base, mode="sqlite", workers=1),
        replace(base, mode="postgres-redis", workers=1),
        replace(base, mode="postgres-redis", workers=2),
    ]


def rss_configs(base: Config) -> list[Config]:
    """The campaign alone (no baselines) at 10,000 and at N: peak RSS must not grow with N."""
    return [replace(base, n=min(10_000, base.n), baselines=False), replace(base, baselines=False)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="subscribers in the campaign")
    parser.add_argument("--mode", choices=("sqlite", "postgres-redis"), default="sqlite")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1, help="clarion worker processes")
    parser.add_argument("--suite", "--compare", action="store_true", help="run the four configurations")
    parser.add_argument(
        "--rss", action="store_true", help="peak RSS at N=10,000 and at --n, --mode's storage, no baselines"
    )
    parser.add_argument("--jobs", type=int, help="CLARION_WORKER_JOBS (default: Clarion's)")
    parser.add_argument("--concurrency", type=int, help="CLARION_WORKER_CONCURRENCY (default: Clarion's)")
    parser.add_argument("--chunk-size", type=int, help="CLARION_CHUNK_SIZE (default: Clarion's)")
    parser.add_argument("--crypto-sample", type=int, default=20_000, help="subscriptions for crypto-only")
    parser.add_argument("--pywebpush-sample", type=int, default=2_000, help="subscriptions for pywebpush")
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=10_000,
        help="messages for each concurrent baseline (pywebpush + aiohttp, node web-push)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=30.0, help="seconds to wait for an idle machine before timing"
    )
    parser.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="PostgreSQL: skip ANALYZE after the bulk insert (a campaign right after an import)",
    )
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the Clarion processes into DIR")
    return parser.parse_args(argv)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM unwind as KeyboardInterrupt, so processes and databases are cleaned up.

    SIGINT is set explicitly: a shell starts background jobs with it ignored, and Python keeps that.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    from bench import report

    args = parse_args(argv)
    base = Config(
        mode=args.mode,
        n=args.n,
        workers=args.workers,
        jobs=args.jobs,
        concurrency=args.concurrency,
        chunk_size=args.chunk_size,
        crypto_sample=args.crypto_sample,
        pywebpush_sample=args.pywebpush_sample,
        baseline_sample=args.baseline_sample,
        quiet_wait_s=args.quiet_wait,
        analyze=args.analyze,
    )
    configs = suite_configs(base) if args.suite else rss_configs(base) if args.rss else [base]
    results: list[Result] = []
    failed: list[str] = []
    print(f"Clarion delivery benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}", flush=True)
    with signals_interrupt():
        try:
            for index, config in enumerate(configs):
                if args.profile is not None:
                    out = args.profile / f"{index + 1}-{config.mode}-{config.workers}w-{config.n}"
                    out.mkdir(parents=True, exist_ok=True)
                    config = replace(config, profile_dir=out)
                print(f"-- running: {config.label}", flush=True)
                try:
                    results.append(run(config))
                except Exception as error:  # one failed run does not void the others of a suite
                    print(f"-- FAILED: {config.label}: {error}", file=sys.stderr, flush=True)
                    failed.append(config.label)
                    continue
                print(report.run_table(results[-1]), flush=True)
        except KeyboardInterrupt:
            print("interrupted: every process stopped, temporary databases removed", file=sys.stderr)
            return 130
    if args.rss:
        print(report.rss_table(results))
    elif len(results) > 1:
        print(report.suite_table(results))
    if failed:
        print(f"failed runs: {'; '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
