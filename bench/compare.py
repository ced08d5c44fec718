"""Two versions of Clarion side by side in one run: the same campaign, interleaved, per Clarion CPU-second.

    python -m bench.compare --base /path/to/other/checkout/.venv/bin/python [--n 20000] [--rounds 3]
                            [--mode sqlite|postgres-redis]

Each round sends one campaign with the other checkout's Clarion (`--base`, its venv's interpreter) and
one with this checkout's, alternately (which goes first alternates too), on fresh storage each time;
the last campaign of this checkout is followed by the yardsticks (crypto-only, the concurrent
baselines), so every ratio comes from one run. On a machine shared with other work the CPU-second
figures still move by ±25 % from one campaign to the next: read the medians and the per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace

from bench import delivery, report
from bench.delivery import Config, Result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the python of the other checkout's venv")
    parser.add_argument("--n", type=int, default=20_000, help="subscribers in each campaign")
    parser.add_argument("--rounds", type=int, default=3, help="campaigns per version")
    parser.add_argument("--mode", choices=("sqlite", "postgres-redis"), default="sqlite")
    parser.add_argument("--baseline-sample", type=int, default=5_000, help="messages per concurrent baseline")
    parser.add_argument("--quiet-wait", type=float, default=5.0, help="seconds to wait for an idle machine")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="SQLite: count serve's instructions under callgrind (slow: --n near 500; no yardsticks)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common = Config(
        mode=args.mode,
        n=args.n,
        crypto_sample=min(args.n, 20_000),
        pywebpush_sample=min(args.n, 500),
        baseline_sample=args.baseline_sample,
        quiet_wait_s=args.quiet_wait,
        baselines=False,
        instructions=args.instructions,
    )
    versions = {"base": replace(common, python=args.base), "this": common}
    results: dict[str, list[Result]] = {"base": [], "this": []}
    with delivery.signals_interrupt():
        for round_no in range(args.rounds):
            order = ["base", "this"] if round_no % 2 == 0 else ["this", "base"]
            for name in order:
                config = versions[name]
                if round_no == args.rounds - 1 and name == "this" and not args.instructions:
                    config = replace(config, baselines=True)
                print(f"-- round {round_no + 1}, {name}: {config.label}", flush=True)
                result = delivery.run(config)
                results[name].append(result)
                print(_line(name, result), flush=True)
    print(instructions_summary(results) if args.instructions else summary(results))
    return 0


def instructions_summary(results: dict[str, list[Result]]) -> str:
    lines = ["== side by side, instructions of clarion serve per message, push to SENT (base / this)"]
    for index, (b, t) in enumerate(zip(results["base"], results["this"], strict=False)):
        per_b, per_t = b.instructions / b.config.n, t.instructions / t.config.n
        lines.append(f"  round {index + 1}: {per_b:,.0f} / {per_t:,.0f} = {per_b / per_t:.2f}x fewer")
    return "\n".join(lines)


def _line(name: str, r: Result) -> str:
    main_s = sum(p.main_thread_cpu_s for p in r.clarion)
    if r.config.instructions:
        return f"   {name}: {r.instructions / r.config.n:,.0f} instructions per message ({r.instructions:,})"
    return (
        f"   {name}: {r.per_cpu_s:,.0f} msg per Clarion CPU-s ({r.clarion_cpu_s:.2f} CPU-s, main thread "
        f"{main_s:.2f}), {r.per_s:,.0f} msg/s, other work {r.other_cpu_s:.1f} CPU-s"
    )


def summary(results: dict[str, list[Result]]) -> str:
    base = [r.per_cpu_s for r in results["base"]]
    this = [r.per_cpu_s for r in results["this"]]
    lines = ["== side by side, msg per Clarion CPU-second (per round: base / this = ratio)"]
    for index, (b, t) in enumerate(zip(base, this, strict=False)):
        lines.append(f"  round {index + 1}: {b:,.0f} / {t:,.0f} = {t / b:.2f}x")
    median_base, median_this = statistics.median(base), statistics.median(this)
    lines.append(f"  median: {median_base:,.0f} / {median_this:,.0f} = {median_this / median_base:.2f}x")
    yardsticks = next((r for r in results["this"] if r.config.baselines), None)
    if yardsticks is not None:
        crypto = yardsticks.crypto.per_s
        lines.append(f"  crypto-only per core (same run): {crypto:,.0f}")
        for name, median in (("base", median_base), ("this", median_this)):
            lines.append(
                f"  {name}: end to end / crypto-only {100 * median / crypto:.0f} % "
                f"(target {100 * report.MIN_CRYPTO_RATIO_12:.0f} %)"
            )
        best = yardsticks.best_baseline
        if best is not None:
            lines.append(f"  best concurrent baseline per core: {best[0]} {best[1].per_cpu_s:,.0f}")
            for name, median in (("base", median_base), ("this", median_this)):
                lines.append(
                    f"  {name}: Clarion / best baseline {median / best[1].per_cpu_s:.2f}x "
                    f"(target {report.MIN_BASELINE_RATIO}x)"
                )
        lines.append(report.run_table(yardsticks))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
