"""Web Push through real processes: `clarion serve` + `clarion worker` on PostgreSQL and Redis."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import create_app_cli, engine_env
from tests.e2e.processes import Processes
from tests.fakes.push_service import FakePushService, Hang, Respond

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]


def test_scripted_push_service_answers_through_real_processes(
    tmp_path: Path, postgres_url: str, redis_url: str, fake: FakePushService, processes: list[Processes]
) -> None:
    env = {**engine_env(postgres_url, redis_url), "CLARION_REQUEST_TIMEOUT_S": "1"}
    procs = Processes(tmp_path, env)
    processes.append(procs)
    server = procs.server()
    procs.worker()
    app = create_app_cli(procs)
    auth = (app["app_key"], app["app_secret"])

    scripts: dict[str, list[Respond | Hang]] = {
        "ok": [Respond(201)],
        "gone404": [Respond(404)],
        "gone410": [Respond(410)],
        "throttled": [Respond(429, retry_after="1")],
        "broken": [Respond(500)],
        "hanging": [Hang()],
        "bad": [Respond(400)],
    }
    reg_ids: dict[str, str] = {}
    subs = {}
    for name, script in scripts.items():
        sub = fake.new_subscription(application_server_key=app["vapid_public_key"])
        fake.script(sub.sub_id, script)
        body = {"app_key": app["app_key"], "platform": "web", "subscription": sub.to_json()}
        response = httpx.post(f"{server.url}/sdk/v1/subscribers", json=body, timeout=10)
        assert response.status_code == 201, response.text
        reg_ids[name], subs[name] = response.json()["regId"], sub

    payload = {"message": "Hi", "title": "T", "redirect_url": "https://example.com/"}
    push = httpx.post(f"{server.url}/api/v3/push", json={"payload": payload}, auth=auth, timeout=10)
    campaign_id = push.json()["id"]

    deadline = time.monotonic() + 60
    stats: dict[str, object] = {}
    while time.monotonic() < deadline:
        stats = httpx.get(f"{server.url}/api/v3/messages/{campaign_id}", auth=auth, timeout=10).json()
        if stats["status"] == "SENT":
            break
        time.sleep(0.2)
    # ok, throttled (after its Retry-After), broken (after back-off) and hanging (after the timeout).
    assert stats == {"status": "SENT", "send": 4, "received": 0, "clicked": 0, "closed": 0}

    accepted = Counter(message.sub_id for message in fake.received)
    assert accepted == Counter({subs[n].sub_id: 1 for n in ("ok", "throttled", "broken", "hanging")})
    attempts = Counter(r.path.rsplit("/", 1)[-1] for r in fake.requests if r.method == "POST")
    assert attempts[subs["gone404"].sub_id] == 1
    assert attempts[subs["gone410"].sub_id] == 1
    assert attempts[subs["bad"].sub_id] == 1
    assert attempts[subs["throttled"].sub_id] == 2

    for name, active in (("gone404", "false"), ("gone410", "false"), ("bad", "true"), ("ok", "true")):
        answer = httpx.get(
            f"{server.url}/api/v3/alias", params={"regId": reg_ids[name]}, auth=auth, timeout=10
        )
        assert answer.json()["isActiveFollower"] == active, name
