from __future__ import annotations

from collections.abc import Iterator

import pytest

from clarion.config import Settings
from tests.conftest import make_settings
from tests.fakes.picture_server import PictureServer

PUBLIC_URL = "https://push.example/base"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """A server that processes pictures, with loopback picture hosts allowed (the local PictureServer)."""
    return make_settings(
        database_url, public_url=f"{PUBLIC_URL}/", outbound_allow="127.0.0.1", picture_timeout_s=1.0
    )


@pytest.fixture
def pictures() -> Iterator[PictureServer]:
    with PictureServer() as server:
        yield server
