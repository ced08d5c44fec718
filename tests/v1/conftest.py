"""/v1 end to end: one real `clarion serve` per store (SQLite, PostgreSQL) per test module, driven
over real HTTP; each test makes its own apps, so tests share the server and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import engine_env
from tests.e2e.processes import Processes, Server
from tests.support import PostgresDatabases

ADMIN_TOKEN = "e2e-admin-token"  # engine_env's


@dataclass
class V1:
    server: Server
    database_url: str

    def client(self, auth: httpx.Auth | tuple[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=f"{self.server.url}/v1", auth=auth, timeout=10)

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.server.url}/v1", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
        )

    def new_app(self, name: str = "test app", **fields: Any) -> dict[str, Any]:
        with self.admin() as admin:
            created = admin.post("/apps", json={"name": name, **fields})
        assert created.status_code == 201, created.text
        body: dict[str, Any] = created.json()
        return body


def basic(app: dict[str, Any]) -> tuple[str, str]:
    return (app["app_key"], app["app_secret"])


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def v1(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[V1]:
    root: Path = tmp_path_factory.mktemp("v1")
    pg: PostgresDatabases | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'clarion.db'}"
    else:
        pg = request.getfixturevalue("postgres_databases")
        url = pg.fresh()
    env = {**engine_env(url), "CLARION_DATA_DIR": str(root / "data"), "CLARION_PUSH_HOSTS": "127.0.0.1"}
    processes = Processes(root, env)
    try:
        yield V1(processes.server(), url)
    finally:
        processes.close()
        if pg is not None:
            pg.drop(url)
