"""Pacing tests end: the delivery tests' alarm on each phase (a hang fails, naming the phase)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.delivery import conftest as delivery
from tests.support import PostgresDatabases

pytest_runtest_setup = delivery.pytest_runtest_setup
pytest_runtest_call = delivery.pytest_runtest_call
pytest_runtest_teardown = delivery.pytest_runtest_teardown


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases) -> Iterator[str]:
    """A fresh PostgreSQL database of this test's own."""
    url = postgres_databases.fresh()
    yield url
    postgres_databases.drop(url)
