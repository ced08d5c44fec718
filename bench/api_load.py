"""The API under load: `POST /api/v3/push` at a fixed rate and `POST /sdk/v1/subscribers` at full
speed, driven by wrk, while a campaign to N web subscribers is being sent.

    python -m bench.api_load [--mode sqlite|postgres-redis] [--n 100000] [--rate 500] [--seconds 15]
                             [--against ../older-checkout]

Both storages in turn unless `--mode` names one (it may be given twice). `--against DIR`: before each
storage's run, the same run with another checkout (its `.venv` and its `clarion`), so an older commit
and this one are measured interleaved, under the same load, and printed side by side.

Needs `wrk` on PATH (Debian: `apt-get install wrk`). The stage is bench.delivery's: fresh storage, the
counting push service, N subscribers bulk-inserted, `clarion serve` (and one `clarion worker` in
`postgres-redis` mode). Once the campaign is sending, two wrk runs follow one another:

1. push: each request a campaign to one subscriber (`audience.tokens`), at `--rate` requests/s: wrk has
   no fixed-rate mode, so its connections pause between requests (Lua `delay()`), the pause set from a
   short calibration run's mean latency. p50/p99 are wrk's, from its `done()` hook.
2. registrations: every request a new browser subscription (a new endpoint), as many as wrk's
   connections get answered; requests/s per CPU-second of the Clarion processes in that window.

Registration limits per address and per app are off (`CLARION_SUBSCRIBER_REGISTER_PER_*=0`): wrk is
one address. See bench/README.md, "The API under load".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/api_load.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import delivery, loopback, processes, storage
from bench.processes import Child, ProcessGroup

MODES = ("sqlite", "postgres-redis")
# Issue 12's targets.
MAX_PUSH_P99_MS = 20.0
MIN_REGISTRATIONS_PER_CPU_S = 1500.0
PUSH_CONNECTIONS = 10
REGISTER_CONNECTIONS = 32
CALIBRATION_S = 3
# The campaign must be under way before wrk starts: this many messages accepted by the push service.
SENDING_AFTER = 1000

# wrk prints one line `RESULT {json}` at the end: percentiles in µs, counts, duration in µs.
_DONE = """
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local e = summary.errors
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      counts[#counts + 1] = string.format('"%d":%d', status, count)
    end
  end
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%d,"max_us":%d,'
    .. '"non2xx":%d,"socket_errors":%d,"statuses":{%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    latency.max, e.status, e.connect + e.read + e.write + e.timeout, table.concat(counts, ",")))
end
"""
_PUSH = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "{authorization}"
wrk.body = '{body}'
function delay() return {delay_ms} end
"""
_REGISTER = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local count = 0
function request()
  count = count + 1
  return wrk.format(nil, nil, nil, string.format('{template}', tid, count))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_us: int
    p50_us: int
    p99_us: int
    mean_us: int
    max_us: int
    non2xx: int
    socket_errors: int
    statuses: dict[str, int]  # answers by HTTP status, summed over wrk's threads (one status, twice: summed)

    @property
    def per_s(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def answered(self) -> int:
        """Requests answered 2xx (a 503 costs little and registers nothing)."""
        return self.requests - self.non2xx


@dataclass(frozen=True)
class Phase:
    name: str
    wrk: WrkResult
    clarion_cpu_s: dict[str, float]  # per Clarion process, over the wrk run
    loadavg: str  # /proc/loadavg at the end of the run
    campaign_status: str  # the campaign's status at the end of the run (SENDING: it overlapped)
    accepted: int  # messages the push service accepted during the run

    @property
    def total_cpu_s(self) -> float:
        return sum(self.clarion_cpu_s.values())


def wrk(url: str, script: Path, *, connections: int, seconds: int, threads: int = 2) -> WrkResult:
    done = subprocess.run(
        [
            "wrk",
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    )
    result = parse_wrk(done.stdout) if done.returncode == 0 else None
    if result is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return result


def parse_wrk(stdout: str) -> WrkResult | None:
    """The `RESULT {json}` line our `done()` hook prints, if wrk got that far."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return None
    return WrkResult(**json.loads(line.removeprefix("RESULT "), object_pairs_hook=_summed))


def _summed(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose repeated keys (one status from two threads) add up."""
    merged: dict[str, Any] = {}
    for key, value in pairs:
        merged[key] = merged[key] + value if key in merged else value
    return merged


def basic(auth: tuple[str, str]) -> str:
    return "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()


def push_script(work: Path, stage: delivery.Stage, reg_id: str, delay_ms: int) -> Path:
    body = json.dumps({**delivery.CAMPAIGN, "ttl": 60, "audience": {"tokens": [reg_id]}})
    script = work / "push.lua"
    script.write_text(_PUSH.format(authorization=basic(stage.auth), body=body, delay_ms=delay_ms) + _DONE)
    return script


def register_script(work: Path, stage: delivery.Stage) -> Path:
    sub = storage.make_subscriptions(1, stage.push_origin)[0]
    body = {
        "app_key": stage.auth[0],
        "platform": "web",
        "subscription": {
            "endpoint": f"{stage.push_origin}/push/reg-TID-COUNT",
            "keys": {"p256dh": sub.p256dh, "auth": sub.auth},
        },
    }
    template = json.dumps(body).replace("TID", "%d").replace("COUNT", "%d")
    script = work / "register.lua"
    script.write_text(_REGISTER.format(template=template) + _DONE)
    return script


def register_one(stage: delivery.Stage) -> str:
    """A subscriber whose push id is not a number, for the push requests' one-recipient campaigns."""
    sub = storage.make_subscriptions(1, stage.push_origin)[0]
    body = {
        "app_key": stage.auth[0],
        "platform": "web",
        "subscription": {"endpoint": f"{stage.push_origin}/push/api-load", "keys": sub.to_json()["keys"]},
    }
    status, answer = loopback.request("POST", f"{stage.server_url}/sdk/v1/subscribers", body)
    if status not in (200, 201):
        raise RuntimeError(f"registration refused: {status} {answer}")
    return str(answer["regId"])


def _cpu(clarion: list[Child]) -> dict[str, float]:
    return {child.name: processes.cpu_seconds(child.pid) for child in clarion}


def _accepted(stage: delivery.Stage) -> int:
    return int(loopback.request("GET", f"{stage.push_origin}/stats")[1]["accepted"])


def _status(stage: delivery.Stage, campaign_id: int) -> str:
    answer = loopback.request("GET", f"{stage.server_url}/api/v3/messages/{campaign_id}", auth=stage.auth)[1]
    return str(answer["status"]) if isinstance(answer, dict) else "?"


def phase(name: str, stage: delivery.Stage, campaign_id: int, run: Callable[[], WrkResult]) -> Phase:
    cpu, accepted = _cpu(stage.clarion), _accepted(stage)
    result = run()
    after = _cpu(stage.clarion)
    return Phase(
        name,
        result,
        {key: after[key] - cpu[key] for key in cpu},
        " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        _status(stage, campaign_id),
        _accepted(stage) - accepted,
    )


def measure(config: delivery.Config, rate: int, seconds: int) -> list[Phase]:
    with tempfile.TemporaryDirectory(prefix="clarion-api-load-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        database_url, queue_url = delivery.open_storage(config, work, stack)
        group = ProcessGroup(work)
        stack.callback(group.close)
        push, origin = processes.start_push_service(group)
        env = delivery.clarion_env(config, database_url, queue_url)
        env["CLARION_SUBSCRIBER_REGISTER_PER_IP_PER_MINUTE"] = "0"
        env["CLARION_SUBSCRIBER_REGISTER_PER_APP_PER_MINUTE"] = "0"
        app = delivery.create_app(config, env)
        subs = storage.make_subscriptions(config.n, origin)
        storage.bulk_subscribe(database_url, app["app_key"], subs, analyze=config.analyze)
        print(f"  {config.n:,} subscribers ready", flush=True)
        server_url, clarion = delivery.start_clarion(config, group, env)
        stage = delivery.Stage(
            group, clarion, push, origin, server_url, (app["app_key"], app["app_secret"]), None
        )
        reg_id = register_one(stage)
        status, answer = loopback.request("POST", f"{server_url}/api/v3/push", delivery.CAMPAIGN, stage.auth)
        if status != 200:
            raise RuntimeError(f"POST /api/v3/push answered {status}: {answer}")
        campaign_id = int(answer["id"])
        while _accepted(stage) < SENDING_AFTER:
            time.sleep(0.1)
        url = f"{server_url}/api/v3/push"
        calibration = wrk(url, push_script(work, stage, reg_id, 0), connections=1, seconds=CALIBRATION_S)
        # Each connection sends, waits for the answer, then pauses: pause + latency = one slot.
        slot_ms = PUSH_CONNECTIONS * 1000 / rate
        delay_ms = max(0, round(slot_ms - calibration.mean_us / 1000))
        print(
            f"  calibration: mean latency {calibration.mean_us / 1000:.1f} ms -> pause {delay_ms} ms",
            flush=True,
        )
        push_phase = phase(
            f"push at {rate}/s",
            stage,
            campaign_id,
            lambda: wrk(
                url, push_script(work, stage, reg_id, delay_ms), connections=PUSH_CONNECTIONS, seconds=seconds
            ),
        )
        register_url = f"{server_url}/sdk/v1/subscribers"
        register_phase = phase(
            "registrations",
            stage,
            campaign_id,
            lambda: wrk(
                register_url, register_script(work, stage), connections=REGISTER_CONNECTIONS, seconds=seconds
            ),
        )
        return [push_phase, register_phase]


def report(config: delivery.Config, phases: list[Phase], checkout: str = "this checkout") -> str:
    push, register = phases
    p99_ms = push.wrk.p99_us / 1000
    api_cpu = register.clarion_cpu_s["serve"]
    registered = register.wrk.answered
    lines = [
        f"== API under load, {config.label}, {checkout}, {os.cpu_count()} CPUs",
        f"  {'phase':<16} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'non-2xx':>7} {'errors':>6}"
        f"  Clarion CPU-s (per process)            campaign  msgs sent meanwhile  load average",
    ]
    for p in phases:
        cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in p.clarion_cpu_s.items())
        lines.append(
            f"  {p.name:<16} {p.wrk.per_s:>7,.0f} {p.wrk.p50_us / 1000:>7.1f} {p.wrk.p99_us / 1000:>7.1f}"
            f" {p.wrk.max_us / 1000:>7.1f} {p.wrk.non2xx:>7} {p.wrk.socket_errors:>6}  {cpu:<38}"
            f" {p.campaign_status:<9} {p.accepted:>10,}  {p.loadavg}"
        )
        lines.append(f"    answers by status: {p.wrk.statuses}")
    lines += [
        f"  push p99 {p99_ms:.1f} ms at {push.wrk.per_s:,.0f} req/s "
        f"(target <= {MAX_PUSH_P99_MS:.0f} ms at 500/s): {'PASS' if p99_ms <= MAX_PUSH_P99_MS else 'MISS'}",
        f"  registrations per CPU-s of all Clarion processes (sending included): "
        f"{registered / register.total_cpu_s:,.0f}",
        f"  registrations per CPU-s of `serve` ({_serve_role(config)}): "
        f"{registered / api_cpu:,.0f} (target >= {MIN_REGISTRATIONS_PER_CPU_S:,.0f} per core; answered 2xx "
        f"only): {'PASS' if registered / api_cpu >= MIN_REGISTRATIONS_PER_CPU_S else 'MISS'}",
    ]
    return "\n".join(lines)


def _serve_role(config: delivery.Config) -> str:
    return "API and sending" if config.mode == "sqlite" else "API only"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_load", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, action="append", help="storage (default: both, in turn)")
    parser.add_argument("--n", type=int, default=100_000, help="recipients of the campaign sent meanwhile")
    parser.add_argument("--rate", type=int, default=500, help="POST /api/v3/push requests per second")
    parser.add_argument("--seconds", type=int, default=15, help="length of each wrk run")
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout with its own .venv (an older commit): each storage is measured with it, "
        "then with this one, in turn, and both are printed side by side",
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one run, for --against
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not on PATH (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    modes: list[str] = args.mode or list(MODES)
    runs: list[tuple[str, str, list[Phase]]] = []
    with delivery.signals_interrupt():
        try:
            for mode in modes:
                config = delivery.Config(mode=mode, n=args.n, workers=1, baselines=False)
                if args.json:
                    print("RUN " + json.dumps([asdict(p) for p in measure(config, args.rate, args.seconds)]))
                    return 0
                if args.against is not None:
                    runs.append((mode, f"{args.against.name} (before)", _other(args.against, mode, args)))
                    print(report(config, runs[-1][2], runs[-1][1]), flush=True)
                runs.append((mode, "this checkout", measure(config, args.rate, args.seconds)))
                print(report(config, runs[-1][2], runs[-1][1]), flush=True)
        except KeyboardInterrupt:
            print("interrupted: every process stopped, temporary databases removed", file=sys.stderr)
            return 130
    print(summary(runs), flush=True)
    return 0


def _other(checkout: Path, mode: str, args: argparse.Namespace) -> list[Phase]:
    """One run of this script under the other checkout's interpreter: this bench's code, that
    checkout's `clarion` (its editable install), for its serve and worker processes too."""
    python = checkout / ".venv" / "bin" / "python"
    command = [str(python), str(Path(__file__).resolve()), "--mode", mode, "--json"]
    command += ["--n", str(args.n), "--rate", str(args.rate), "--seconds", str(args.seconds)]
    done = subprocess.run(command, cwd=checkout, capture_output=True, text=True, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RUN ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"the run in {checkout} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return [_phase(raw) for raw in json.loads(line.removeprefix("RUN "))]


def _phase(raw: dict[str, Any]) -> Phase:
    return Phase(**{**raw, "wrk": WrkResult(**raw["wrk"])})


def summary(runs: list[tuple[str, str, list[Phase]]]) -> str:
    """Every run on one table: the figures the targets are about, and the CPU behind them."""
    lines = [
        "== API under load: summary (CPU-s per request from the processes' own clocks; wall-clock "
        "figures depend on the machine's other load, shown)",
        f"  {'storage':<15} {'checkout':<28} {'push/s':>7} {'p50 ms':>7} {'p99 ms':>8} {'push 503':>8}"
        f" {'ms CPU/push':>11} {'reg/s':>6} {'reg p99':>8} {'reg/CPU-s':>9} {'ms CPU/reg':>10}  load",
    ]
    for mode, name, (push, register) in runs:
        per_push = _serve_ms(push)
        per_reg = _serve_ms(register)
        lines.append(
            f"  {mode:<15} {name:<28} {push.wrk.per_s:>7,.0f} {push.wrk.p50_us / 1000:>7.1f}"
            f" {push.wrk.p99_us / 1000:>8.1f} {push.wrk.statuses.get('503', 0):>8} {per_push:>11.2f}"
            f" {register.wrk.per_s:>6,.0f} {register.wrk.p99_us / 1000:>8.1f} {1000 / per_reg:>9,.0f}"
            f" {per_reg:>10.2f}  {push.loadavg} / {register.loadavg}"
        )
    return "\n".join(lines)


def _serve_ms(phase: Phase) -> float:
    """Milliseconds of `serve` CPU per request answered 2xx (SQLite: the sending included)."""
    return phase.clarion_cpu_s["serve"] * 1000 / max(1, phase.wrk.answered)


if __name__ == "__main__":
    sys.exit(main())
