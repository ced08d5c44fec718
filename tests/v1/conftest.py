"""/v1 end to end: one real `clarion serve` per store (SQLite, PostgreSQL) per test module, driven
over real HTTP; each test makes its own apps, so tests share the server and nothing else."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import engine_env
from tests.e2e.processes import Processes, Server
from tests.fakes.adm import FakeAdm
from tests.fakes.fcm import FakeFcm
from tests.fakes.push_service import FakePushService, Hang, Respond
from tests.fakes.wns import FakeWns
from tests.support import PostgresDatabases

ADMIN_TOKEN = "e2e-admin-token"  # engine_env's


@dataclass
class V1:
    server: Server
    database_url: str
    fcm: FakeFcm
    wns: FakeWns
    adm: FakeAdm
    processes: Processes

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
    with ExitStack() as fakes:
        fcm, wns, adm = (fakes.enter_context(fake()) for fake in (FakeFcm, FakeWns, FakeAdm))
        env = {
            **engine_env(url),
            "CLARION_DATA_DIR": str(root / "data"),
            "CLARION_PUSH_HOSTS": "127.0.0.1",
            "CLARION_FCM_URL": fcm.origin,
            "CLARION_WNS_URL": wns.origin,
            "CLARION_ADM_URL": adm.origin,
        }
        processes = Processes(root, env)
        try:
            yield V1(processes.server(), url, fcm, wns, adm, processes)
        finally:
            processes.close()
            if pg is not None:
                pg.drop(url)


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


def subscribe(v1: V1, fake: FakePushService, app: dict[str, Any], *script: Respond | Hang) -> str:
    """A Web Push subscriber of the app at the fake push service, which answers it as scripted; its regId."""
    sub = fake.new_subscription(application_server_key=app["vapid_public_key"])
    if script:
        fake.script(sub.sub_id, list(script))
    body = {"app_key": app["app_key"], "platform": "web", "subscription": sub.to_json()}
    response = httpx.post(f"{v1.server.url}/sdk/v1/subscribers", json=body, timeout=10)
    assert response.status_code == 201, response.text
    reg_id: str = response.json()["regId"]
    return reg_id


def tag(v1: V1, app: dict[str, Any], reg_id: str, name: str) -> None:
    auth = (app["app_key"], app["app_secret"])
    params = {"regId": reg_id, "name": name}
    response = httpx.post(f"{v1.server.url}/api/v3/tag", params=params, auth=auth, timeout=10)
    assert response.status_code == 200, response.text


def wait_for(client: httpx.Client, path: str, status: str, timeout_s: float = 30) -> dict[str, Any]:
    """GET `path` until its `status` is `status`; the last answer."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(path).json()
        if body.get("status") == status:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{path} did not become {status}: {body}")
