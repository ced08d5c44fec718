"""Webhooks and the event feed end to end: a real `clarion serve`, a real local receiver, signatures
verified with the Standard Webhooks library, retries after 500s, batching, replay, a forbidden
address refused, and the feed's order and cursor."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.e2e.conftest import engine_env
from tests.e2e.processes import Processes
from tests.fakes.push_service import FakePushService, Respond
from tests.support import PostgresDatabases
from tests.v1.conftest import V1, basic, subscribe, wait_for

PAYLOAD = {"title": "Breaking", "message": "Hello", "redirect_url": "https://example.com/news"}


@dataclass
class Receiver:
    """A local HTTP server that answers with the scripted statuses (then 200) and keeps every request."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else 200
            self.requests.append((headers, body, status))
            return status

    def delivered(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for h, b, status in self.requests if status == 200]

    def events(self) -> list[dict[str, Any]]:
        return [event for _, body in self.delivered() for event in json.loads(body)["data"]["events"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = found.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def v1(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[V1]:
    root: Path = tmp_path_factory.mktemp("webhooks")
    pg: PostgresDatabases | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'clarion.db'}"
    else:
        pg = request.getfixturevalue("postgres_databases")
        url = pg.fresh()
    env = {
        **engine_env(url),
        "CLARION_DATA_DIR": str(root / "data"),
        # The receiver is on loopback: opened to it explicitly, as an operator would for a private host.
        "CLARION_OUTBOUND_ALLOW": "127.0.0.1/32",
        "CLARION_WEBHOOK_RETRY_BASE_S": "0.2",
    }
    processes = Processes(root, env)
    try:
        yield V1(processes.server(), url, None, None, None, processes)  # type: ignore[arg-type]
    finally:
        processes.close()
        if pg is not None:
            pg.drop(url)


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


def _wait(predicate: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no {name} {labels}")


def _verify(secret: str, headers: dict[str, str], body: bytes) -> Any:
    return Webhook(secret).verify(body, headers)


def test_events_signed_batched_retried_and_replayed(
    v1: V1, fake: FakePushService, receiver: Receiver
) -> None:
    app = v1.new_app("webhooks")
    base = f"/apps/{app['app_key']}"
    with v1.client(basic(app)) as own:
        created = own.post(f"{base}/webhooks", json={"url": receiver.url, "description": "all of them"})
        assert created.status_code == 201, created.text
        hook = created.json()
        secret = hook.pop("secret")
        assert secret.startswith("whsec_")
        assert hook == {
            "webhook_id": hook["webhook_id"],
            "url": receiver.url,
            "event_types": [],
            "description": "all of them",
            "enabled": True,
            "created_at": hook["created_at"],
            "failing_since": None,
            "last_error": None,
            "next_attempt_at": hook["next_attempt_at"],
            "replaying": False,
        }
        # The receiver fails twice: the batch is retried with back-off, then delivered once.
        receiver.statuses = [500, 500]
        subscribe(v1, fake, app)
        subscribe(v1, fake, app, Respond(410))
        campaign = own.post(f"{base}/campaigns", json={"payload": PAYLOAD, "ttl": 600}).json()
        wait_for(own, f"{base}/campaigns/{campaign['campaign_id']}", "sent")
        _wait(lambda: any(e["type"] == "campaign.finished" for e in receiver.events()))

        statuses = [status for _, _, status in receiver.requests]
        assert statuses[:3] == [500, 500, 200]
        # Every request verifies with the library; the retries resent from the same event.
        for headers, body, _ in receiver.requests:
            _verify(secret, headers, body)
        first_ids = {json.loads(receiver.requests[i][1])["data"]["events"][0]["id"] for i in range(3)}
        assert len(first_ids) == 1
        events = receiver.events()
        types = [e["type"] for e in events]
        cid = campaign["campaign_id"]
        assert types[:2] == ["subscriber.created", "subscriber.created"]
        assert sorted(types[2:]) == sorted(
            [
                "campaign.started",
                "delivery.sent",
                "delivery.gone",
                "subscriber.deactivated",
                "campaign.finished",
            ]
        )
        assert types[-1] == "campaign.finished"
        ids = [tuple(int(part) for part in e["id"].split("-")) for e in events]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)
        gone = next(e for e in events if e["type"] == "delivery.gone")
        assert gone["data"] == {
            "campaign_id": cid,
            "subscriber_id": gone["data"]["subscriber_id"],
            "platform": "web",
            "status": "gone",
            "reason": gone["data"]["reason"],
        }
        # Batched: the first delivered request carried the two registrations' events at once or the
        # whole campaign; far fewer requests than events either way.
        assert len(receiver.delivered()) < len(events)
        assert max(len(json.loads(body)["data"]["events"]) for _, body in receiver.delivered()) >= 2

        # Metrics: per endpoint id (no URL in any label), and an outbox emptied.
        scraped = httpx.get(f"{v1.server.url}/metrics", timeout=10).text
        endpoint = str(hook["webhook_id"])
        assert _sample(scraped, "clarion_webhook_requests_total", endpoint=endpoint, result="failed") == 2
        delivered = _sample(scraped, "clarion_webhook_requests_total", endpoint=endpoint, result="delivered")
        assert delivered == len(receiver.delivered())
        assert _sample(scraped, "clarion_webhook_events_delivered_total", endpoint=endpoint) == len(events)
        assert _sample(scraped, "clarion_outbox_depth") == 0
        assert _sample(scraped, "clarion_outbox_oldest_age_seconds") == 0
        assert "127.0.0.1" not in scraped

        # The feed: the same events in the same order, read with a cursor.
        first = own.get(f"{base}/events", params={"limit": 3}).json()
        rest = own.get(f"{base}/events", params={"after": first["next_cursor"]}).json()
        assert first["items"] + rest["items"] == events
        # The cursor is the outbox row's id (an event's id is ROW-N).
        assert first["next_cursor"] == events[2]["id"].split("-")[0]
        assert rest["next_cursor"] == events[-1]["id"].split("-")[0]
        empty = own.get(f"{base}/events", params={"after": rest["next_cursor"], "wait_s": 0.3}).json()
        assert empty == {"items": [], "next_cursor": rest["next_cursor"]}

        # Replay by time range: the same events again, in order, signed by the rotated secrets.
        rotated = own.post(f"{base}/webhooks/{hook['webhook_id']}/rotate-secret", json={"overlap_s": 600})
        new_secret = rotated.json()["secret"]
        before = len(receiver.delivered())
        since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        until = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        replay = own.post(
            f"{base}/webhooks/{hook['webhook_id']}/replay", json={"since": since, "until": until}
        )
        assert (replay.status_code, replay.json()) == (202, {"events": len(events)})
        _wait(lambda: len(receiver.events()) >= 2 * len(events))
        assert receiver.events()[len(events) :] == events
        for headers, body in receiver.delivered()[before:]:
            assert len(headers["webhook-signature"].split(" ")) == 2
            assert _verify(new_secret, headers, body)["type"] == "event.batch"
            _verify(secret, headers, body)  # the previous secret still signs during the overlap
        with pytest.raises(WebhookVerificationError):
            _verify("whsec_" + "A" * 43 + "=", *receiver.delivered()[-1])


def test_filter_and_forbidden_address(v1: V1, fake: FakePushService, receiver: Receiver) -> None:
    app = v1.new_app("filtered")
    base = f"/apps/{app['app_key']}"
    with v1.client(basic(app)) as own:
        refused = own.post(f"{base}/webhooks", json={"url": "http://169.254.169.254/latest"})
        assert refused.status_code == 422
        assert refused.json()["field"] == "url"
        unknown = own.post(f"{base}/webhooks", json={"url": receiver.url, "event_types": ["nope"]})
        assert (unknown.status_code, unknown.json()["field"]) == (422, "event_types")
        hook = own.post(f"{base}/webhooks", json={"url": receiver.url, "event_types": ["campaign.finished"]})
        assert hook.status_code == 201, hook.text
        subscribe(v1, fake, app)
        campaign = own.post(f"{base}/campaigns", json={"payload": PAYLOAD, "ttl": 600}).json()
        _wait(lambda: bool(receiver.events()))
        assert [(e["type"], e["data"]) for e in receiver.events()] == [
            ("campaign.finished", {"campaign_id": campaign["campaign_id"]})
        ]


def test_feed_without_webhooks(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app("feed only")
    base = f"/apps/{app['app_key']}"
    with v1.client(basic(app)) as own:
        subscribe(v1, fake, app)  # before the feed is on: not recorded
        assert own.get(f"{base}/events/feed").json() == {"enabled": False}
        assert own.put(f"{base}/events/feed", json={"enabled": True}).json() == {"enabled": True}
        reg_id = subscribe(v1, fake, app)
        deactivated = own.post(f"{base}/subscribers/{reg_id}/deactivate")
        assert deactivated.status_code == 200, deactivated.text
        # A long-poll answers as soon as the first event has settled.
        first = own.get(f"{base}/events", params={"wait_s": 10}).json()
        assert first["items"][0]["type"] == "subscriber.created"
        _wait(lambda: len(own.get(f"{base}/events").json()["items"]) == 2)
        page = own.get(f"{base}/events").json()
        assert [(e["type"], e["data"]) for e in page["items"]] == [
            ("subscriber.created", {"subscriber_id": reg_id, "platform": "web"}),
            ("subscriber.deactivated", {"subscriber_id": reg_id, "platform": "web", "reason": "deactivated"}),
        ]
        assert own.get(f"{base}/events", params={"after": "x"}).json()["field"] == "after"
