"""Crash tests: real processes, SIGKILLed part-way, against PostgreSQL (+ Redis) and SQLite."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import bulk_subscribe, create_app_cli, engine_env
from tests.e2e.processes import Processes, Server
from tests.fakes.push_service import FakePushService

pytestmark = pytest.mark.e2e

RECIPIENTS = 10_000
# CLARION_WORKER_CONCURRENCY's default: a process's sending lanes, each busy until its outcome is
# recorded, so the most a killed process can have sent without recording it (issue #19's target).
LANES = 64
PAYLOAD = {"message": "Chaos", "title": "Test", "redirect_url": "https://example.com/"}


def _wait(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _push(base_url: str, auth: tuple[str, str], **body: object) -> str:
    response = httpx.post(f"{base_url}/api/v3/push", json={"payload": PAYLOAD, **body}, auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _stats(base_url: str, auth: tuple[str, str], campaign_id: str) -> dict[str, object]:
    response = httpx.get(f"{base_url}/api/v3/messages/{campaign_id}", auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def _assert_graceful(server: Server) -> None:
    """SIGTERM: uvicorn drains, runs the shutdown (engine stop) and re-raises the signal to exit."""
    assert server.terminate() in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in server.log()


def _distinct(fake: FakePushService) -> Counter[str]:
    return Counter(message.sub_id for message in fake.received)


def _prepare(procs: Processes, fake: FakePushService, database_url: str) -> tuple[tuple[str, str], list[str]]:
    app = create_app_cli(procs)
    subs = [fake.new_subscription(application_server_key=app["vapid_public_key"]) for _ in range(RECIPIENTS)]
    bulk_subscribe(database_url, app["app_key"], subs)
    return (app["app_key"], app["app_secret"]), [sub.sub_id for sub in subs]


@pytest.mark.postgres
@pytest.mark.redis
def test_a_killed_worker_loses_nothing(
    tmp_path: Path, postgres_url: str, redis_url: str, fake: FakePushService, processes: list[Processes]
) -> None:
    env = engine_env(postgres_url, redis_url)
    procs = Processes(tmp_path, env)
    processes.append(procs)
    server = procs.server()  # with a Redis queue, serve is the API only
    auth, sub_ids = _prepare(procs, fake, postgres_url)
    victim, survivor = procs.worker(), procs.worker()
    campaign_id = _push(server.url, auth)

    _wait(lambda: fake.accepted >= RECIPIENTS // 2, 120, "half the campaign")
    victim.kill()
    _wait(lambda: len(_distinct(fake)) == RECIPIENTS, 180, "every recipient")
    _wait(lambda: _stats(server.url, auth, campaign_id)["status"] == "SENT", 60, "the campaign to finish")

    received = _distinct(fake)
    assert set(received) == set(sub_ids)
    duplicates = sum(count - 1 for count in received.values())
    # At most what the killed worker had sent and not recorded: one message per lane.
    assert duplicates <= LANES, duplicates
    stats = _stats(server.url, auth, campaign_id)
    assert stats == {"status": "SENT", "send": RECIPIENTS, "received": 0, "clicked": 0, "closed": 0}
    assert fake.errors == []
    assert survivor.terminate() == 0  # SIGTERM: a clean, prompt exit


@pytest.mark.postgres
def test_a_killed_single_process_resumes_after_restart(
    tmp_path: Path, postgres_url: str, fake: FakePushService, processes: list[Processes]
) -> None:
    procs = Processes(tmp_path, engine_env(postgres_url))
    processes.append(procs)
    server = procs.server()
    auth, sub_ids = _prepare(procs, fake, postgres_url)
    campaign_id = _push(server.url, auth)

    _wait(lambda: fake.accepted >= RECIPIENTS // 2, 120, "half the campaign")
    server.kill()
    in_flight_at_kill = fake.accepted
    restarted = procs.server(port=server.port)
    _wait(lambda: len(_distinct(fake)) == RECIPIENTS, 180, "every recipient")
    _wait(lambda: _stats(restarted.url, auth, campaign_id)["status"] == "SENT", 60, "the campaign to finish")

    received = _distinct(fake)
    assert set(received) == set(sub_ids)
    assert in_flight_at_kill < RECIPIENTS
    assert sum(count - 1 for count in received.values()) <= LANES
    stats = _stats(restarted.url, auth, campaign_id)
    assert stats == {"status": "SENT", "send": RECIPIENTS, "received": 0, "clicked": 0, "closed": 0}
    _assert_graceful(restarted)


def test_a_scheduled_campaign_survives_a_crash_and_fires_once_on_time(
    tmp_path: Path, fake: FakePushService, processes: list[Processes]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'clarion.db'}"
    procs = Processes(tmp_path, engine_env(database_url))
    processes.append(procs)
    started = time.monotonic()
    server = procs.server()
    start_s = time.monotonic() - started
    app = create_app_cli(procs)
    auth = (app["app_key"], app["app_secret"])
    sub = fake.new_subscription(application_server_key=app["vapid_public_key"])
    body = {"app_key": app["app_key"], "platform": "web", "subscription": sub.to_json()}
    assert httpx.post(f"{server.url}/sdk/v1/subscribers", json=body, timeout=10).status_code == 201

    # Room for the restart, however long a start takes on this machine (up to ~20 s on a loaded one): it
    # must be up before the campaign is due, or "on time" would measure the restart, not the scheduler.
    send_at_ms = int((time.time() + max(4.0, 3 * start_s)) * 1000)
    campaign_id = _push(server.url, auth, send_date=send_at_ms)
    server.kill()
    restarted = procs.server(port=server.port)
    assert time.time() * 1000 < send_at_ms - 1000, "the restart took longer than the campaign's delay"
    _wait(lambda: fake.accepted >= 1, 30 + send_at_ms / 1000 - time.time(), "the scheduled message")
    arrived_ms = time.time() * 1000
    assert send_at_ms <= arrived_ms <= send_at_ms + 1000
    time.sleep(1.0)  # a second start would show up as a second message
    assert [m.sub_id for m in fake.received] == [sub.sub_id]
    assert _stats(restarted.url, auth, campaign_id)["send"] == 1
    _assert_graceful(restarted)


def test_a_campaign_due_while_the_server_was_down_starts_once_after_restart(
    tmp_path: Path, fake: FakePushService, processes: list[Processes]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'clarion.db'}"
    procs = Processes(tmp_path, engine_env(database_url))
    processes.append(procs)
    server = procs.server()
    app = create_app_cli(procs)
    auth = (app["app_key"], app["app_secret"])
    sub = fake.new_subscription(application_server_key=app["vapid_public_key"])
    body = {"app_key": app["app_key"], "platform": "web", "subscription": sub.to_json()}
    assert httpx.post(f"{server.url}/sdk/v1/subscribers", json=body, timeout=10).status_code == 201
    campaign_id = _push(server.url, auth, send_date=int((time.time() + 1) * 1000))
    server.kill()
    time.sleep(1.5)
    restarted = procs.server(port=server.port)
    _wait(lambda: _stats(restarted.url, auth, campaign_id)["status"] == "SENT", 30, "the campaign")
    time.sleep(0.5)
    assert [m.sub_id for m in fake.received] == [sub.sub_id]
