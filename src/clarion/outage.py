"""Telling an unreachable dependency from a bug, and logging its outage once, not once per attempt.

Background work meets two dependencies that can go away for a while: the database and the queue
(Redis). While one is away every attempt fails the same way, so a traceback per attempt says nothing
new and buries everything else: the outage is logged when it starts and when it ends, and the work is
retried with back-off in between.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc

from clarion import metrics

log = logging.getLogger("clarion.outage")

T = TypeVar("T")

DATABASE = "database"
QUEUE = "queue"

# Back-off between attempts while a dependency is unreachable: short at first, so that work resumes
# within seconds of its return, and capped so that a long outage is not hammered.
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 2.0


class QueueUnavailable(ConnectionError):
    """The queue's server cannot be reached (raised by a queue backend in place of its client's error)."""


def unreachable(exc: BaseException) -> str | None:
    """Which dependency `exc` says is unreachable (DATABASE, QUEUE), or None for any other failure."""
    if isinstance(exc, QueueUnavailable):
        return QUEUE
    if isinstance(exc, sa_exc.DBAPIError):
        connection = isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
        return DATABASE if connection or exc.connection_invalidated else None
    if isinstance(exc, sa_exc.TimeoutError | ConnectionError | TimeoutError | socket.gaierror):
        # Pool exhaustion, a refused or reset connection, a connect or statement timeout, a name that
        # does not resolve. The queue's own errors arrive as QueueUnavailable: what is left is the database's.
        return DATABASE
    return None


def _cause(exc: BaseException) -> BaseException:
    """The driver's own error: SQLAlchemy's wrapper adds the statement (and its parameters) to its text."""
    if isinstance(exc, sa_exc.DBAPIError) and isinstance(exc.orig, BaseException):
        return exc.orig
    return exc


def next_delay(delay_s: float) -> float:
    """The back-off after `delay_s` (0: the first retry)."""
    return RETRY_FIRST_S if delay_s <= 0 else min(delay_s * 2, RETRY_MAX_S)


async def retrying(work: Callable[[], Awaitable[T]], *, for_s: float | None = None) -> T:
    """`work()`, run again with back-off while it fails because a dependency is unreachable.

    For at most `for_s` seconds (None: until it succeeds or is cancelled); then that failure is raised.
    Any other failure is raised at once. `work` must be safe to run again after a failed run.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    delay = 0.0
    while True:
        try:
            return await work()
        except Exception as exc:
            if unreachable(exc) is None:
                raise
            delay = next_delay(delay)
            if for_s is not None and loop.time() + delay - started > for_s:
                raise
        await asyncio.sleep(delay)


class Availability:
    """Whether one dependency answers, as last seen; each change is logged once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True
        # The metric's label: `database` or `queue`, whatever the name adds (e.g. "queue (Redis)").
        self._label = name.split(" ", 1)[0]

    def failed(self, exc: BaseException) -> None:
        if self.up:
            self.up = False
            metrics.dependency_changed(self._label, up=False)
            cause = _cause(exc)
            log.warning(
                "%s unreachable (%s: %s); retrying until it is back",
                self.name,
                type(cause).__name__,
                cause,
                extra={"dependency": self._label},
            )

    def answered(self) -> bool:
        """Record an answer; True when it ends an outage."""
        if self.up:
            return False
        self.up = True
        metrics.dependency_changed(self._label, up=True)
        log.warning("%s back", self.name, extra={"dependency": self._label})
        return True
