"""The chaos suite's figures (bench/chaos.py): seconds to recover, and what counts as a miss."""

from __future__ import annotations

from bench.chaos import BY_NAME, MAX_DUPLICATES, Outcome, Window, recover_seconds, table


def _steady(start: float, end: float, step: float = 0.1) -> list[float]:
    return [start + i * step for i in range(round((end - start) / step) + 1)]


def test_no_stall_is_zero() -> None:
    firsts = _steady(0.0, 30.0)
    assert recover_seconds(firsts, Window(10.0, 20.0), 31.0, complete=True) == 0.0


def test_a_stall_through_the_fault_ends_when_delivery_resumes() -> None:
    firsts = _steady(0.0, 10.0) + _steady(23.5, 30.0)  # nothing from the kill at 10 s until 23.5 s
    assert recover_seconds(firsts, Window(10.0, 10.0), 31.0, complete=True) == 13.5


def test_a_stall_after_work_picked_up_before_the_fault_counts() -> None:
    # Delivery went on through the outage (10-20 s), then stopped for 40 s once the prepared work ran out.
    firsts = _steady(0.0, 25.0) + _steady(65.0, 70.0)
    assert recover_seconds(firsts, Window(10.0, 20.0), 71.0, complete=True) == 45.0


def test_an_incomplete_campaign_never_recovered() -> None:
    assert recover_seconds(_steady(0.0, 10.0), Window(5.0, 5.0), 150.0, complete=False) is None


def test_misses_name_every_target_missed() -> None:
    outcome = Outcome(BY_NAME["db-reset"], 100, delivered=90, duplicated=MAX_DUPLICATES + 1)
    outcome.recover_s, outcome.max_api_s, outcome.api_bad = 12.0, 2.5, 3
    misses = outcome.misses()
    assert misses == [
        "10 lost",
        f"{MAX_DUPLICATES + 1} duplicates > {MAX_DUPLICATES}",
        "not SENT within 150 s",
        "recover 12.0 s > 10 s",
        "3 API 5xx/no answer",
        "API request 2.5 s > 2 s",
    ]
    passing = Outcome(BY_NAME["kill-serve"], 100, delivered=100, duplicated=MAX_DUPLICATES, sent=True)
    passing.recover_s = 3.0
    assert passing.misses() == []
    lines = table([outcome, passing]).splitlines()
    assert lines[2].startswith("db-reset")
    assert "MISS: 10 lost" in lines[2]
    assert lines[3].startswith("kill-serve")
    assert lines[3].endswith("PASS")
