"""The printed tables: one per run, and the suite's summary against the targets of issue 3."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.delivery import Result

# Targets from issue 3 ("Benchmark").
MIN_CRYPTO_RATIO = 0.5
MIN_PYWEBPUSH_RATIO = 5.0
MIN_SCALING = 1.8
MAX_RSS_GROWTH_MB = 50.0
# Issue 12: Clarion end to end, per core, at least this many times the best concurrent baseline.
MIN_BASELINE_RATIO = 1.5
# Issue 12: end to end per core at least this share of the crypto-only figure.
MIN_CRYPTO_RATIO_12 = 0.65


def _rate(per_s: float) -> str:
    return f"{per_s:,.0f}"


def _spread(rates: tuple[float, ...]) -> str:
    return f"{min(rates):,.0f} - {max(rates):,.0f}" if rates else "-"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _row(label: str, value: str, target: str = "") -> str:
    return f"  {label:<54} {value:>14}  {target}".rstrip()


def run_table(result: Result) -> str:
    c = result.config
    tuning = ", ".join(
        f"{k.removeprefix('CLARION_').lower()}={v}"
        for k, v in result.settings.items()
        if k in ("CLARION_WORKER_JOBS", "CLARION_WORKER_CONCURRENCY", "CLARION_CHUNK_SIZE")
    )
    lines = [
        f"== {c.label} ({tuning or 'default tuning: worker_jobs=4, worker_concurrency=64, chunk_size=500'})",
        _row("end-to-end wall time, push -> last message", f"{result.wall_s:.2f} s"),
        _row("push -> campaign status SENT", f"{result.sent_s:.2f} s"),
        _row("end-to-end messages/s", f"{result.per_s:,.0f}"),
        _row("Clarion CPU-seconds (all Clarion processes)", f"{result.clarion_cpu_s:.2f}"),
        _row("messages per Clarion CPU-second (per core)", f"{result.per_cpu_s:,.0f}"),
    ]
    if c.baselines:
        lines += [
            _row(
                f"crypto-only messages/s per core ({result.crypto.messages:,} msgs)",
                f"{result.crypto.per_s:,.0f}",
            ),
            _row("  (spread over slices of 5,000: slowest - fastest)", _spread(result.crypto.slices)),
            _row(
                "ratio: end-to-end per core / crypto-only per core",
                f"{100 * result.crypto_ratio:.0f} %",
                f">= {100 * MIN_CRYPTO_RATIO:.0f} %  {_verdict(result.crypto_ratio >= MIN_CRYPTO_RATIO)}",
            ),
            _row(
                f"pywebpush loop messages/s ({result.pywebpush.messages:,} msgs)",
                f"{result.pywebpush.per_s:,.0f}",
            ),
            _row(
                "ratio: end-to-end msg/s / pywebpush loop msg/s",
                f"{result.pywebpush_ratio:.1f} x",
                f">= {MIN_PYWEBPUSH_RATIO:.0f} x  {_verdict(result.pywebpush_ratio >= MIN_PYWEBPUSH_RATIO)}",
            ),
            _row(
                "  (info) pywebpush loop with a requests.Session, msg/s",
                f"{result.pywebpush_session.per_s:,.0f}",
            ),
        ]
        lines += _baseline_rows(result)
    for p in result.clarion:
        lines.append(_row(f"{p.name}: CPU-s / peak RSS (VmHWM)", f"{p.cpu_s:.2f} / {p.peak_rss_mb:.0f} MB"))
        lines.append(
            _row(
                f"  {p.name}: CPU-s of the main thread (event loop) / others",
                f"{p.main_thread_cpu_s:.2f} / {max(0.0, p.cpu_s - p.main_thread_cpu_s):.2f}",
            )
        )
    lines += [
        _row("push service CPU-s (separate process, not counted)", f"{result.push_service_cpu_s:.2f}"),
        _row(
            "PostgreSQL backends / Redis CPU-s (not counted)",
            f"{result.postgres_cpu_s:.2f} / {result.redis_cpu_s:.2f}",
        ),
        _row(
            "  (info) msg per CPU-s incl. database, queue, push service",
            f"{result.config.n / result.system_cpu_s:,.0f}",
        ),
        _row("other CPU-s on the machine meanwhile (noise)", f"{result.other_cpu_s:.2f}"),
        _row("mean encrypted body received, bytes", f"{result.mean_body_bytes:.0f}"),
        _row("setup (keys, app, bulk insert), not timed", f"{result.setup_s:.1f} s"),
    ]
    return "\n".join(lines)


def _baseline_rows(result: Result) -> list[str]:
    """Clarion and the concurrent baselines side by side, per core and per second, and the ratio."""
    lines = ["  side by side, 64 in flight each:  msg per CPU-second of the sender / msg/s (wall)"]
    lines.append(
        _row("  Clarion end to end (durable: database, queue, ledger)", _pair(result.per_cpu_s, result.per_s))
    )
    for name, rate in (
        ("pywebpush encoder + aiohttp", result.pywebpush_aiohttp),
        ("node web-push", result.node_web_push),
    ):
        label = f"  {name} ({rate.messages:,} msgs)"
        if rate.skipped:
            lines.append(_row(f"  {name}", "skipped", rate.skipped))
        elif rate.cpu_s > 0:
            lines.append(_row(label, _pair(rate.per_cpu_s, rate.per_s)))
    best = result.best_baseline
    if best is not None:
        ok = result.baseline_ratio >= MIN_BASELINE_RATIO
        lines.append(
            _row(
                f"ratio per core: Clarion / best baseline ({best[0]})",
                f"{result.baseline_ratio:.2f} x",
                f">= {MIN_BASELINE_RATIO} x  {_verdict(ok)}",
            )
        )
    return lines


def _pair(per_cpu_s: float, per_s: float) -> str:
    return f"{per_cpu_s:,.0f} / {per_s:,.0f}"


def suite_table(results: Sequence[Result]) -> str:
    header = (
        f"  {'run':<36} {'wall s':>7} {'msg/s':>7} {'CPU-s':>7} {'msg/CPU-s':>9} {'crypto/core':>11}"
        f" {'e2e/crypto':>10} {'pywebpush/s':>11} {'x pywebpush':>11} {'peak RSS MB':>12}"
        f" {'db+queue CPU-s':>14} {'noise CPU-s':>11} {'x best/core':>11}"
    )
    lines = ["== suite summary", header]
    for r in results:
        rss = "/".join(f"{p.peak_rss_mb:.0f}" for p in r.clarion)
        lines.append(
            f"  {r.config.label:<36} {r.wall_s:>7.2f} {r.per_s:>7,.0f} {r.clarion_cpu_s:>7.2f}"
            f" {r.per_cpu_s:>9,.0f} {r.crypto.per_s:>11,.0f} {100 * r.crypto_ratio:>9.0f}%"
            f" {r.pywebpush.per_s:>11,.0f} {r.pywebpush_ratio:>10.1f}x {rss:>12}"
            f" {r.postgres_cpu_s + r.redis_cpu_s:>14.2f} {r.other_cpu_s:>11.2f} {r.baseline_ratio:>10.2f}x"
        )
    lines += [
        "  (peak RSS MB: serve, then each worker; noise: CPU-s of other work on the machine meanwhile;",
        "   x best/core: messages per Clarion CPU-second over the best concurrent baseline's)",
        "",
        "  targets (issue 3):",
        *_targets(results),
    ]
    return "\n".join(lines)


def _targets(results: Sequence[Result]) -> list[str]:
    lines = []
    for r in results:
        lines.append(
            f"  {r.config.label:<36} e2e/crypto per core {100 * r.crypto_ratio:4.0f}% (>= 50%) "
            f"{_verdict(r.crypto_ratio >= MIN_CRYPTO_RATIO)};  vs pywebpush {r.pywebpush_ratio:5.1f}x "
            f"(>= 5x) {_verdict(r.pywebpush_ratio >= MIN_PYWEBPUSH_RATIO)}"
        )
    lines += _rss_growth(results, "sqlite")
    by_workers = {r.config.workers: r for r in results if r.config.mode == "postgres-redis"}
    if 1 in by_workers and 2 in by_workers:
        one, two = by_workers[1], by_workers[2]
        scaling = two.per_s / one.per_s
        lines.append(
            f"  postgres-redis 2 workers / 1 worker: {two.per_s:,.0f} / {one.per_s:,.0f} msg/s = "
            f"{scaling:.2f}x (>= {MIN_SCALING}x) {_verdict(scaling >= MIN_SCALING)}"
        )
        cores = os.cpu_count() or 1
        ceiling = cores * one.config.n / one.system_cpu_s
        lines.append(
            f"  approx. ceiling on {cores} CPUs at the 1-worker run's CPU per message (Clarion, PostgreSQL, "
            f"Redis, push service): {ceiling:,.0f} msg/s = {ceiling / one.per_s:.2f}x one worker"
        )
        lines.append(f"  (peak RSS with 1 worker: {_worker_rss(one)}; with 2: {_worker_rss(two)})")
    return lines


def rss_table(results: Sequence[Result]) -> str:
    """`--rss`: the peak RSS of every Clarion process at each N, and its growth from the smallest N."""
    lines = ["== peak RSS (VmHWM) per Clarion process, the campaign alone (issue 12: within 50 MB)"]
    for r in results:
        lines.append(
            f"  {r.config.label:<44} {_worker_rss(r)};  {r.per_s:,.0f} msg/s, {r.per_cpu_s:,.0f} msg/CPU-s"
        )
    for mode in ("sqlite", "postgres-redis"):
        lines += _rss_growth(results, mode)
    return "\n".join(lines)


def _rss_growth(results: Sequence[Result], mode: str) -> list[str]:
    """The largest process's peak RSS at the largest N against the smallest N's, for one storage mode."""
    runs = sorted((r for r in results if r.config.mode == mode), key=lambda r: r.config.n)
    if len(runs) < 2:
        return []
    small, large = runs[0], runs[-1]
    growth = large.peak_rss_mb - small.peak_rss_mb
    return [
        f"  peak RSS {mode} N={small.config.n:,}: {small.peak_rss_mb:.0f} MB, N={large.config.n:,}: "
        f"{large.peak_rss_mb:.0f} MB, growth {growth:+.1f} MB (within {MAX_RSS_GROWTH_MB:.0f} MB) "
        f"{_verdict(growth <= MAX_RSS_GROWTH_MB)}"
    ]


def _worker_rss(result: Result) -> str:
    return ", ".join(f"{p.name} {p.peak_rss_mb:.0f} MB" for p in result.clarion)
