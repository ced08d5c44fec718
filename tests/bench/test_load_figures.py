"""The figures of the load benchmarks: wrk's result line (bench/api_load.py), peak RSS growth
(bench/report.py, `bench.delivery --rss`) and what saturated in a scale-out run (bench/scale.py)."""

from __future__ import annotations

import json
from dataclasses import asdict

from bench.api_load import Phase, WrkResult, _phase, parse_wrk, summary
from bench.delivery import Config, ProcessFigures, Result
from bench.report import rss_table
from bench.scale import Run, Samples


def test_wrk_result_line_sums_each_status_over_threads() -> None:
    stdout = (
        "Running 15s test @ http://127.0.0.1:1/api/v3/push\n"
        'RESULT {"requests":7500,"duration_us":15000000,"p50_us":4100,"p99_us":18000,"mean_us":5000,'
        '"max_us":40000,"non2xx":3,"socket_errors":0,"statuses":{"200":3700,"503":1,"200":3797,"503":2}}\n'
    )
    result = parse_wrk(stdout)
    assert result == WrkResult(7500, 15_000_000, 4100, 18000, 5000, 40000, 3, 0, {"200": 7497, "503": 3})
    assert result.per_s == 500.0
    assert parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n") is None


def test_an_older_checkouts_run_comes_back_whole_and_is_summed_on_its_2xx_answers() -> None:
    push = Phase(
        "push at 500/s",
        WrkResult(1000, 10_000_000, 9000, 30000, 10000, 50000, 0, 0, {"200": 1000}),
        {"serve": 2.5},
        "1.00 1.00 1.00",
        "SENDING",
        300,
    )
    register = Phase(
        "registrations",
        WrkResult(1200, 10_000_000, 8000, 40000, 9000, 60000, 200, 0, {"201": 1000, "503": 200}),
        {"serve": 2.0},
        "1.10 1.00 1.00",
        "SENDING",
        200,
    )
    sent = json.dumps([asdict(push), asdict(register)])  # what `--json` prints after "RUN "
    back = [_phase(raw) for raw in json.loads(sent)]
    assert back == [push, register]
    table = summary([("sqlite", "before", back)])
    # 2.5 ms of serve CPU per push; registrations: 1,000 answered 201 in 2.0 CPU-s = 500 per CPU-s, 2 ms each.
    row = table.splitlines()[-1].split()
    assert row[:7] == ["sqlite", "before", "100", "9.0", "30.0", "0", "2.50"]
    assert row[7:11] == ["120", "40.0", "500", "2.00"]


def _result(mode: str, n: int, rss_mb: list[float], cpu_s: float = 10.0, **figures: float) -> Result:
    names = ["serve"] + [f"worker-{i}" for i in range(1, len(rss_mb))]
    clarion = [ProcessFigures(name, cpu_s, 0.8 * cpu_s, mb) for name, mb in zip(names, rss_mb, strict=True)]
    return Result(Config(mode=mode, n=n, baselines=False), wall_s=10.0, clarion=clarion, **figures)


def test_rss_growth_is_judged_per_storage_mode_on_the_largest_process() -> None:
    lines = rss_table(
        [
            _result("sqlite", 10_000, [138.0]),
            _result("sqlite", 1_000_000, [190.0]),
            _result("postgres-redis", 10_000, [120.0, 150.0]),
            _result("postgres-redis", 1_000_000, [121.0, 170.0]),
        ]
    ).splitlines()
    assert lines[-2] == (
        "  peak RSS sqlite N=10,000: 138 MB, N=1,000,000: 190 MB, growth +52.0 MB (within 50 MB) MISS"
    )
    assert lines[-1] == (
        "  peak RSS postgres-redis N=10,000: 150 MB, N=1,000,000: 170 MB, growth +20.0 MB (within 50 MB) PASS"
    )


def test_saturated_names_the_busy_resource_or_nothing() -> None:
    # Over 10 s: each worker's loop 8 CPU-s (80 %), PostgreSQL 9 CPU-s (90 %).
    busy = Run(2, _result("postgres-redis", 100_000, [100.0, 100.0, 100.0], postgres_cpu_s=9.0), Samples())
    assert busy.saturated(16) == "postgres (all backends) 90%"
    calm = Run(2, _result("postgres-redis", 100_000, [100.0, 100.0, 100.0], postgres_cpu_s=1.0), Samples())
    assert calm.saturated(16) == "nothing"
    assert busy.saturated(2) == "machine (3.9 of 2 cores)"
    # Clarion 3 x 1 CPU-s, the rest of the machine 15 CPU-s, over 10 s: 1.8 cores busy.
    crowded = _result("postgres-redis", 100_000, [100.0, 100.0, 100.0], cpu_s=1.0, other_cpu_s=15.0)
    assert Run(2, crowded, Samples()).saturated(2) == "machine (1.8 of 2 cores)"
