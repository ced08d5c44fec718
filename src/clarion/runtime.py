"""What a running server holds (settings, database, queue, the engine's wake-up call), and the
dependencies that hand it to handlers: the runtime itself and the request's one database session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.config import Settings
from clarion.db import Database
from clarion.queue import Queue

# Set in a request's session when its commit makes a campaign due: the scheduler is woken after it.
_WAKE_AFTER_COMMIT = "clarion.wake_scheduler"
# Work a request hands on (a queued job) once what it refers to is committed.
_AFTER_COMMIT = "clarion.after_commit"


@dataclass
class Runtime:
    settings: Settings
    db: Database
    scheduler_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    queue: Queue | None = None

    def wake_scheduler(self) -> None:
        """A new campaign is due now: let an in-process scheduler look without waiting for its tick."""
        self.scheduler_wakeup.set()


async def runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop on every request.
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(runtime)]


async def request_session(rt: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """The request's one session, shared by its auth dependencies and its handler.

    Committed once, after the handler and before the response is sent, by the one session scope
    (`Database.session`); rolled back when the handler raises. A session takes a connection only
    when it first runs a statement.
    """
    async with rt.db.session() as session:
        yield session
    if session.info.pop(_WAKE_AFTER_COMMIT, False):
        rt.wake_scheduler()
    actions: list[Callable[[], Awaitable[None]]] = session.info.pop(_AFTER_COMMIT, [])
    for action in actions:
        await action()


def wake_scheduler_after_commit(session: AsyncSession) -> None:
    """The request created a campaign that is due now: wake the scheduler once it is committed,
    not before (woken earlier, it would find nothing and wait for its next tick)."""
    session.info[_WAKE_AFTER_COMMIT] = True


def after_commit(session: AsyncSession, action: Callable[[], Awaitable[None]]) -> None:
    """Run `action` once the request's session has committed (a job must never precede its data)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


# scope="function": the session closes when the handler returns, before the response is sent, so
# an answer is never sent for work whose commit then fails.
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
