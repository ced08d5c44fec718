"""The frequency cap's check is serialized per app on PostgreSQL (delivery/repository.py,
`serialize_cap`): a second job's check of the same app waits until the first job's transaction ends,
so it sees the rows the first one claimed; another app's job does not wait. (SQLite serializes them
by its write lock, which the claim takes before the check.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from clarion.composition import open_database
from clarion.db import Database
from clarion.delivery.repository import LedgerRepository
from tests.conftest import make_settings
from tests.support import PostgresDatabases

pytestmark = pytest.mark.postgres


@pytest.fixture
def url(postgres_databases: PostgresDatabases) -> Iterator[str]:
    fresh = postgres_databases.fresh()
    yield fresh
    postgres_databases.drop(fresh)


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    database = open_database(make_settings(url))
    yield database
    await database.dispose()


async def _check(db: Database, app_id: int, started: asyncio.Event, release: asyncio.Event) -> None:
    """A job's transaction: take the app's cap lock, then hold it until `release`."""
    async with db.session() as session:
        await LedgerRepository(session).serialize_cap(app_id)
        started.set()
        await release.wait()


async def test_a_second_check_of_the_same_app_waits_for_the_first_transaction(db: Database) -> None:
    first_in, second_in, other_in = asyncio.Event(), asyncio.Event(), asyncio.Event()
    release_first, release_rest = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_check(db, 1, first_in, release_first))
    await asyncio.wait_for(first_in.wait(), 10)
    second = asyncio.create_task(_check(db, 1, second_in, release_rest))
    other = asyncio.create_task(_check(db, 2, other_in, release_rest))
    await asyncio.wait_for(other_in.wait(), 10)  # another app's check goes at once
    await asyncio.sleep(0.5)
    assert not second_in.is_set()  # the same app's waits for the first transaction
    release_first.set()
    await asyncio.wait_for(first, 10)
    await asyncio.wait_for(second_in.wait(), 10)
    release_rest.set()
    await asyncio.gather(second, other)
