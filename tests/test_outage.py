"""Telling an unreachable dependency from a bug, and retrying only the former."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, ProgrammingError

from clarion import metrics, outage


def wrapped(cls: type[Exception], orig: Exception) -> Exception:
    return cls("SELECT 1", {}, orig)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("exc", "dependency"),
    [
        (wrapped(OperationalError, ConnectionRefusedError(111, "refused")), outage.DATABASE),
        (wrapped(InterfaceError, RuntimeError("connection is closed")), outage.DATABASE),
        (ConnectionResetError(104, "reset"), outage.DATABASE),
        (TimeoutError(), outage.DATABASE),
        (outage.QueueUnavailable("Redis unreachable"), outage.QUEUE),
        (wrapped(IntegrityError, ValueError("duplicate key")), None),
        (wrapped(ProgrammingError, ValueError("syntax error")), None),
        (ValueError("a bug"), None),
        (FileNotFoundError("missing"), None),
    ],
)
def test_which_failures_are_outages(exc: Exception, dependency: str | None) -> None:
    assert outage.unreachable(exc) == dependency


async def test_retrying_runs_again_while_unreachable_and_returns_the_answer() -> None:
    calls: list[int] = []

    async def work() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError(111, "refused")
        return "done"

    assert await outage.retrying(work) == "done"
    assert len(calls) == 3


async def test_retrying_raises_any_other_failure_at_once() -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await outage.retrying(work)
    assert len(calls) == 1


async def test_retrying_gives_up_after_its_time() -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        raise outage.QueueUnavailable("Redis unreachable")

    started = asyncio.get_running_loop().time()
    with pytest.raises(outage.QueueUnavailable):
        await outage.retrying(work, for_s=1.0)
    assert asyncio.get_running_loop().time() - started <= 1.0
    assert len(calls) >= 3


def test_an_outage_is_a_metric_while_it_lasts(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = metrics.UNREACHABLE.labels("queue")
    outages = metrics.OUTAGES.labels("queue")
    before = outages._value.get()
    availability = outage.Availability(f"{outage.QUEUE} (Redis)")
    availability.failed(outage.QueueUnavailable("connection refused"))
    availability.failed(outage.QueueUnavailable("connection refused"))  # the same outage
    assert (unreachable._value.get(), outages._value.get() - before) == (1.0, 1.0)
    assert availability.answered()
    assert (unreachable._value.get(), outages._value.get() - before) == (0.0, 1.0)
    assert [(r.getMessage(), getattr(r, "dependency", None)) for r in caplog.records] == [
        (
            "queue (Redis) unreachable (QueueUnavailable: connection refused); retrying until it is back",
            "queue",
        ),
        ("queue (Redis) back", "queue"),
    ]
