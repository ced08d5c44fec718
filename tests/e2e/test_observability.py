"""What an operator sees of a campaign through a real `clarion serve`: its /metrics and its JSON logs.

One process on SQLite with the in-process queue; the push service is the scripted fake. The campaign
has 3 recipients that accept, 2 that answer 410 and 1 that answers 429 once, then accepts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import create_app_cli, engine_env
from tests.e2e.processes import ClarionProcess, Processes
from tests.fakes.push_service import FakePushService, Respond
from tests.support import free_port

pytestmark = [pytest.mark.e2e]

TOKEN = "scrape-secret"
UNAUTHORIZED = {"error": "unauthorized", "message": "A valid CLARION_METRICS_TOKEN bearer token is required"}


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called `name` (a counter's `_total` included), keyed by its sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def one(text: str, name: str, **labels: str) -> float:
    return samples(text, name)[tuple(sorted(labels.items()))]


def send_campaign(server_url: str, app: dict[str, str], fake: FakePushService) -> int:
    scripts: dict[str, list[Respond]] = {
        **{f"ok{n}": [Respond(201)] for n in range(3)},
        **{f"gone{n}": [Respond(410)] for n in range(2)},
        "throttled": [Respond(429, retry_after="1"), Respond(201)],
    }
    for script in scripts.values():
        sub = fake.new_subscription(application_server_key=app["vapid_public_key"])
        fake.script(sub.sub_id, script)
        body = {"app_key": app["app_key"], "platform": "web", "subscription": sub.to_json()}
        assert httpx.post(f"{server_url}/sdk/v1/subscribers", json=body, timeout=10).status_code == 201
    auth = (app["app_key"], app["app_secret"])
    payload = {"message": "Hi", "title": "T", "redirect_url": "https://example.com/"}
    push = httpx.post(f"{server_url}/api/v3/push", json={"payload": payload}, auth=auth, timeout=10)
    campaign_id = int(push.json()["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stats = httpx.get(f"{server_url}/api/v3/messages/{campaign_id}", auth=auth, timeout=10).json()
        if stats["status"] == "SENT":
            assert stats == {"status": "SENT", "send": 4, "received": 0, "clicked": 0, "closed": 0}
            return campaign_id
        time.sleep(0.2)
    raise AssertionError(f"campaign {campaign_id} did not finish: {stats}")


def log_lines(process: ClarionProcess) -> list[dict[str, Any]]:
    """Every line the process logged, each one a JSON object (json.loads fails the test otherwise)."""
    return [json.loads(line) for line in process.log().splitlines() if line.strip()]


def test_metrics_and_json_logs_of_a_campaign(
    tmp_path: Path, fake: FakePushService, processes: list[Processes]
) -> None:
    env = {
        **engine_env(f"sqlite:///{tmp_path}/clarion.db"),
        "CLARION_LOG_FORMAT": "json",
        "CLARION_METRICS_TOKEN": TOKEN,
    }
    procs = Processes(tmp_path, env)
    processes.append(procs)
    server = procs.server()
    app = create_app_cli(procs)
    campaign_id = send_campaign(server.url, app, fake)

    refused = httpx.get(f"{server.url}/metrics", timeout=10)
    assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED)
    wrong = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    scrape = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=")
    text = scrape.text

    outcomes = {dict(k)["outcome"]: v for k, v in samples(text, "clarion_messages_total").items()}
    assert samples(text, "clarion_messages_total").keys() == {
        (("outcome", o), ("provider", "webpush")) for o in ("sent", "gone", "retry")
    }
    assert outcomes == {"sent": 4.0, "gone": 2.0, "retry": 1.0}
    # 7 requests: 3 + 2 answered once, the throttled one twice.
    assert one(text, "clarion_provider_request_duration_seconds_count", provider="webpush") == 7.0
    assert one(text, "clarion_provider_request_duration_seconds_bucket", provider="webpush", le="+Inf") == 7.0
    assert one(text, "clarion_provider_requests_in_flight", provider="webpush") == 0.0
    assert samples(text, "clarion_provider_transport_errors_total") == {}
    assert one(text, "clarion_fanout_recipients_total") == 6.0
    assert one(text, "clarion_campaigns_started_total") == 1.0
    assert one(text, "clarion_campaigns_finished_total") == 1.0
    assert one(text, "clarion_scheduler_lag_seconds_count") == 1.0
    assert {dict(k)["status"]: v for k, v in samples(text, "clarion_campaigns").items()} == {
        "scheduled": 0.0,
        "sending": 0.0,
        "sent": 1.0,
        "failed": 0.0,
        "cancelled": 0.0,
        "paused": 0.0,
    }
    assert one(text, "clarion_deliveries_pending") == 0.0
    assert one(text, "clarion_deliveries_oldest_due_age_seconds") == 0.0
    # Requests by route template: the campaign's id never becomes a label.
    assert one(text, "clarion_http_requests_total", method="POST", route="/api/v3/push", status="200") == 1.0
    assert (
        one(text, "clarion_http_requests_total", method="POST", route="/sdk/v1/subscribers", status="201")
        == 6.0
    )
    polled = one(
        text,
        "clarion_http_requests_total",
        method="GET",
        route="/api/v3/messages/{campaign_id}",
        status="200",
    )
    assert polled >= 1.0
    routes = {dict(labels)["route"] for labels in samples(text, "clarion_http_requests_total")}
    assert f"/api/v3/messages/{campaign_id}" not in routes

    logged = log_lines(server)
    # A fresh database: alembic names the migrations it runs, and says nothing else.
    alembic = [line["message"] for line in logged if line["logger"].startswith("alembic")]
    assert alembic
    assert all(message.startswith("Running upgrade ") for message in alembic)
    assert {"time", "level", "logger", "message"} <= logged[0].keys()
    mine = [line for line in logged if line.get("campaign_id") == campaign_id]
    messages = [line["message"] for line in mine]
    assert messages[0].startswith(f"campaign {campaign_id} started, ")
    assert f"campaign {campaign_id}: first `gone` from http://127.0.0.1:{fake.port}: HTTP 410" in messages
    finished = [line for line in mine if line["message"].startswith(f"campaign {campaign_id} finished")]
    assert [(line["message"], line["counts"], line["recipients"]) for line in finished] == [
        (f"campaign {campaign_id} finished: 2 gone, 4 sent", {"gone": 2, "sent": 4}, 6)
    ]


def test_a_worker_serves_its_own_metrics_behind_the_token(tmp_path: Path, processes: list[Processes]) -> None:
    port = free_port()
    env = {
        **engine_env(f"sqlite:///{tmp_path}/clarion.db"),
        "CLARION_LOG_FORMAT": "json",
        "CLARION_METRICS_TOKEN": TOKEN,
        "CLARION_METRICS_PORT": str(port),
    }
    procs = Processes(tmp_path, env)
    processes.append(procs)
    worker = procs.worker()
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        try:
            refused = httpx.get(url, timeout=2)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.1)
    assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED)
    scrape = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert scrape.status_code == 200
    assert "# TYPE clarion_messages_total counter" in scrape.text
    assert "process_cpu_seconds_total" in scrape.text
    # The deployment's gauges come from serve only: N workers would each report them.
    assert "clarion_campaigns{" not in scrape.text
    assert worker.terminate() == 0
    assert any(line["message"] == f"metrics at http://127.0.0.1:{port}/metrics" for line in log_lines(worker))


def test_db_upgrade_says_one_line(tmp_path: Path, processes: list[Processes]) -> None:
    procs = Processes(
        tmp_path, {**engine_env(f"sqlite:///{tmp_path}/clarion.db"), "CLARION_LOG_FORMAT": "text"}
    )
    procs.cli("db", "upgrade")  # the first run migrates, and says which migrations it ran
    again = subprocess.run(
        [sys.executable, "-m", "clarion.cli", "db", "upgrade"],
        env={**os.environ, **procs.env},
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert again.stdout.decode() == "database is up to date\n"
    assert "alembic" not in again.stderr.decode()
    assert "Context impl" not in again.stderr.decode()
