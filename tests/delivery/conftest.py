"""Every delivery test ends: a phase (setup, call or teardown) that runs past PHASE_LIMIT_S fails.

A lost wake-up or a shutdown that never finishes shows as a hang: the full run once sat for good in a
fixture's teardown (test_recorder's deliverer, closed while its writer missed its stop). Here it fails,
naming the phase, and the run goes on. Each phase has its own alarm, so a teardown that hangs after a
call that timed out is cut short too.
"""

from __future__ import annotations

import signal
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from types import FrameType

import pytest

# Far above the slowest delivery test on a loaded 2-core machine (about 15 s).
PHASE_LIMIT_S = 120.0


class PhaseTimeout(BaseException):
    """A BaseException, like KeyboardInterrupt: code that catches Exception (a lane, a retry loop)
    must not take the alarm for one of its own failures and carry on."""


@contextmanager
def _bounded(phase: str) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise PhaseTimeout(f"the test's {phase} ran past {PHASE_LIMIT_S:.0f} s (a hang?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, PHASE_LIMIT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _bounded("setup"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _bounded("call"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    with _bounded("teardown"):
        return (yield)
