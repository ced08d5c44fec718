"""Scale-out: one campaign to N web subscribers sent by W `clarion worker` processes, for each W.

    python -m bench.scale [--workers 1 2 4 8] [--n 120000] [--n-per-worker 0]

PostgreSQL + Redis as in `python -m bench.delivery --mode postgres-redis` (a fresh `clarion_bench_*`
database per W, the Redis database at BENCH_REDIS_URL flushed), `clarion serve` for the API and W
workers, the counting push service in its own process. While the campaign is sent, a sampler reads
every 0.2 s the length of the job stream (`clarion:jobs`) and which owner holds which of the
campaign's fan-out slices (`fanout_slices`): a fan-out that is not serial shows every worker holding
slices. Per W it prints messages/s, the speed-up over the first W, messages per Clarion CPU-second,
the share of a core each resource used and what, if anything, saturated. See bench/README.md,
"Scale-out".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

if __package__ in (None, ""):  # `python bench/scale.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import delivery

SAMPLE_EVERY_S = 0.2
# A resource busier than this share of one core is called saturated (one process uses one core at most).
SATURATED = 0.85
# Issue 12's targets on a 16-core machine.
TARGETS = {2: 1.9, 8: 6.5}


@dataclass
class Samples:
    """What the sampler saw while the campaign was sent."""

    queue_lengths: list[int] = field(default_factory=list)
    slices: set[int] = field(default_factory=set)  # every slice of the campaign
    holders: dict[str, set[int]] = field(default_factory=dict)  # owner -> slices seen held by it

    @property
    def queue_mean(self) -> float:
        return sum(self.queue_lengths) / len(self.queue_lengths) if self.queue_lengths else 0.0


async def _sample(database_url: str, queue_url: str, samples: Samples, stop: threading.Event) -> None:
    import asyncpg  # type: ignore[import-untyped]
    import redis.asyncio as redis

    connection = await asyncpg.connect(database_url)
    queue = redis.Redis.from_url(queue_url)
    try:
        while not stop.is_set():
            rows = await connection.fetch("SELECT id, owner FROM fanout_slices")
            for row in rows:
                samples.slices.add(row["id"])
                if row["owner"] is not None:
                    samples.holders.setdefault(row["owner"], set()).add(row["id"])
            samples.queue_lengths.append(await queue.xlen("clarion:jobs"))
            await asyncio.sleep(SAMPLE_EVERY_S)
    finally:
        await connection.close()
        await queue.aclose()


@contextlib.contextmanager
def sampling(samples: Samples, database_url: str, queue_url: str) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=asyncio.run, args=(_sample(database_url, queue_url, samples, stop),))
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


@dataclass(frozen=True)
class Run:
    workers: int
    result: delivery.Result
    samples: Samples

    def busy(self) -> dict[str, float]:
        """Share of one core each resource used over the campaign's wall time."""
        wall = self.result.wall_s
        shares = {
            f"{p.name} loop": p.main_thread_cpu_s / wall for p in self.result.clarion if p.name != "serve"
        }
        shares["postgres (all backends)"] = self.result.postgres_cpu_s / wall
        shares["redis"] = self.result.redis_cpu_s / wall
        shares["push service"] = self.result.push_service_cpu_s / wall
        return shares

    def saturated(self, cores: int) -> str:
        busy = self.busy()
        machine = (self.result.system_cpu_s + self.result.other_cpu_s) / self.result.wall_s
        if machine >= SATURATED * cores:
            return f"machine ({machine:.1f} of {cores} cores)"
        hot = [f"{name} {share:.0%}" for name, share in busy.items() if share >= SATURATED]
        if "push service" in " ".join(hot):
            return f"push service: measurement invalid ({', '.join(hot)})"
        return ", ".join(hot) if hot else "nothing"


def measure(config: delivery.Config, workers: int) -> Run:
    samples = Samples()

    def watch(
        stage: delivery.Stage, database_url: str, queue_url: str
    ) -> contextlib.AbstractContextManager[None]:
        return sampling(samples, database_url, queue_url)

    result = delivery.run(replace(config, workers=workers), watch)
    return Run(workers, result, samples)


def table(runs: list[Run]) -> str:
    base, cores = runs[0], os.cpu_count() or 1
    lines = [
        f"== scale-out, {os.cpu_count()} CPUs: one campaign, W workers on one PostgreSQL and one Redis",
        f"  {'W':>2} {'N':>9} {'msg/s':>8} {'vs W=' + str(base.workers):>7} {'msg/CPU-s':>9}"
        f" {'queue mean/max':>14}  fan-out: owners (slices each held) of slices  saturated",
    ]
    for run in runs:
        r = run.result
        s = run.samples
        held = " / ".join(str(len(ids)) for ids in s.holders.values())
        lines.append(
            f"  {run.workers:>2} {r.config.n:>9,} {r.per_s:>8,.0f} {r.per_s / base.result.per_s:>6.2f}x"
            f" {r.per_cpu_s:>9,.0f} {s.queue_mean:>9.1f}/{max(s.queue_lengths, default=0):<4}"
            f" {len(s.holders):>2} owners ({held or '-'}) of {len(s.slices)}  {run.saturated(cores)}"
        )
        busy = ", ".join(f"{name} {share:.0%}" for name, share in run.busy().items())
        lines.append(
            f"       busy (share of one core): {busy}; other work on the machine {r.other_cpu_s:.1f} CPU-s"
        )
    for workers, target in TARGETS.items():
        found = next((r for r in runs if r.workers == workers), None)
        if found is not None and base.workers == 1:
            speedup = found.result.per_s / base.result.per_s
            lines.append(
                f"  {workers} workers / 1: {speedup:.2f}x (target on 16 cores >= {target}x) "
                f"{'PASS' if speedup >= target else 'MISS'}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8], help="worker counts to run")
    parser.add_argument("--n", type=int, default=120_000, help="recipients per campaign")
    parser.add_argument(
        "--n-per-worker", type=int, default=0, help="if set, N = max(--n, W x this): runs of similar length"
    )
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="seconds to wait for an idle machine")
    args = parser.parse_args(argv)
    base = delivery.Config(mode="postgres-redis", baselines=False, quiet_wait_s=args.quiet_wait)
    runs: list[Run] = []
    print(f"Clarion scale-out benchmark: {os.cpu_count()} CPUs, workers {args.workers}", flush=True)
    with delivery.signals_interrupt():
        try:
            for workers in args.workers:
                n = max(args.n, workers * args.n_per_worker)
                print(f"-- running: W={workers}, N={n:,}", flush=True)
                runs.append(measure(replace(base, n=n), workers))
                print(table(runs), flush=True)
        except KeyboardInterrupt:
            print("interrupted: every process stopped, temporary databases removed", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
