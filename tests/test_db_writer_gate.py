"""SQLite writers of one process take turns through db.WriterGate: handed over without polling, API
requests' writes before queued background writes (a few at a time, so sending never stalls), and a
wait past the lock wait fails as SQLite's own "database is locked" does (a 503 for a request)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from clarion.db import ENGINE_TIMEOUTS, URGENT_IN_A_ROW, Database, Timeouts, WriterGate, unreachable


async def test_a_released_gate_goes_to_waiting_requests_before_background_writers() -> None:
    gate = WriterGate()
    assert await gate.acquire(urgent=False, timeout_s=1)
    order: list[str] = []

    async def wait(name: str, urgent: bool) -> None:
        assert await gate.acquire(urgent=urgent, timeout_s=5)
        order.append(name)
        gate.release()

    waiters = [
        asyncio.create_task(wait("background 1", False)),
        asyncio.create_task(wait("request 1", True)),
        asyncio.create_task(wait("background 2", False)),
        asyncio.create_task(wait("request 2", True)),
    ]
    await asyncio.sleep(0)  # every waiter queued
    gate.release()
    await asyncio.gather(*waiters)
    assert order == ["request 1", "request 2", "background 1", "background 2"]
    assert await gate.acquire(urgent=False, timeout_s=0.01)  # free again once everyone is done


async def test_a_stream_of_requests_lets_a_background_writer_through_every_few_turns() -> None:
    gate = WriterGate()
    assert await gate.acquire(urgent=True, timeout_s=1)
    order: list[str] = []

    async def wait(name: str, urgent: bool) -> None:
        assert await gate.acquire(urgent=urgent, timeout_s=5)
        order.append(name)
        gate.release()

    waiters = [asyncio.create_task(wait("background", False))]
    waiters += [asyncio.create_task(wait(f"request {i}", True)) for i in range(1, 6)]
    await asyncio.sleep(0)
    gate.release()
    await asyncio.gather(*waiters)
    assert URGENT_IN_A_ROW == 3
    assert order == ["request 1", "request 2", "request 3", "background", "request 4", "request 5"]


async def test_a_wait_that_runs_out_leaves_the_queue() -> None:
    gate = WriterGate()
    assert await gate.acquire(urgent=True, timeout_s=1)
    assert not await gate.acquire(urgent=True, timeout_s=0.01)
    gate.release()  # nobody waits any more: the gate is free, not handed to the one who gave up
    assert await gate.acquire(urgent=False, timeout_s=0.01)


@pytest.fixture
async def two_engines(tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    """`clarion serve` on SQLite: the API's engine and the in-process engine's, on one file."""
    url = f"sqlite:///{tmp_path / 'gate.db'}"
    background = Database(url, timeouts=ENGINE_TIMEOUTS)
    requests = Database(url, timeouts=Timeouts.for_requests(0.3))
    async with background.session() as session:
        await session.execute(text("CREATE TABLE notes (body TEXT)"))
    yield requests, background
    await requests.dispose()
    await background.dispose()


async def _count(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("SELECT count(*) FROM notes"))).scalar_one())


async def test_a_request_write_waits_for_the_background_write_then_goes_through(
    two_engines: tuple[Database, Database],
) -> None:
    requests, background = two_engines
    written, finish = asyncio.Event(), asyncio.Event()

    async def long_background_write() -> None:
        async with background.session() as session:
            await session.execute(text("INSERT INTO notes VALUES ('background')"))
            written.set()
            await finish.wait()

    holder = asyncio.create_task(long_background_write())
    await written.wait()

    async def request_write() -> None:
        async with requests.session() as session:
            await session.execute(text("INSERT INTO notes VALUES ('request')"))

    request = asyncio.create_task(request_write())
    await asyncio.sleep(0.05)
    assert not request.done()  # queued behind the background transaction
    finish.set()
    await asyncio.wait_for(asyncio.gather(holder, request), 5)
    assert await _count(requests) == 2


async def test_a_request_that_waits_past_its_lock_wait_fails_as_database_is_locked(
    two_engines: tuple[Database, Database],
) -> None:
    requests, background = two_engines
    written, finish = asyncio.Event(), asyncio.Event()

    async def long_background_write() -> None:
        async with background.session() as session:
            await session.execute(text("INSERT INTO notes VALUES ('background')"))
            written.set()
            await finish.wait()

    holder = asyncio.create_task(long_background_write())
    await written.wait()
    with pytest.raises(OperationalError, match="database is locked") as refused:
        async with requests.session() as session:
            await session.execute(text("INSERT INTO notes VALUES ('request')"))
    assert unreachable(refused.value)  # answered 503, not 500
    finish.set()
    await holder
    # The refused request left nothing held: the next write goes straight through.
    async with requests.session() as session:
        await session.execute(text("INSERT INTO notes VALUES ('after')"))
    assert await _count(requests) == 2
