"""`clarion send` and `clarion campaigns cancel` against a running server's database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.fakes.push_service import FakePushService, Respond
from tests.v1.conftest import V1, subscribe, tag


def _clarion(v1: V1, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clarion.cli", *args],
        env={**os.environ, **v1.processes.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_send_follows_the_campaign_until_sent_and_prints_its_funnel(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app()
    news = subscribe(v1, fake, app, Respond(201))
    subscribe(v1, fake, app, Respond(201))  # not tagged: not sent to
    tag(v1, app, news, "news")
    args = ("send", app["app_key"], "--title", "Hi", "--message", "Hello", "--url", "https://example.com/")
    sent = _clarion(v1, *args, "--tags", "news", "--json")
    assert sent.returncode == 0, sent.stderr
    shown = json.loads(sent.stdout)
    assert shown == {
        "campaign_id": shown["campaign_id"],
        "status": "sent",
        "audience": 1,
        "pending": 0,
        "sent": 1,
        "failed": 0,
        "failed_by_reason": {},
        "gone": 0,
        "expired": 0,
        "cancelled": 0,
        "capped": 0,
        "received": 0,
        "clicked": 0,
        "closed": 0,
        "rates": {"delivered": 1.0, "received": 0.0, "clicked": 0.0, "closed": 0.0},
    }
    plain = _clarion(v1, *args)
    assert plain.returncode == 0, plain.stderr
    assert "status: sent" in plain.stdout.splitlines()
    assert "sent: 2" in plain.stdout.splitlines()
    assert "2/2" in plain.stderr  # the progress bar's last state


def test_campaigns_cancel_and_a_refused_send(v1: V1) -> None:
    app = v1.new_app()
    with v1.client((app["app_key"], app["app_secret"])) as own:
        body = {
            "payload": {"message": "m", "redirect_url": "https://example.com/"},
            "send_at": "2100-01-01T00:00:00Z",
        }
        campaign_id = own.post(f"/apps/{app['app_key']}/campaigns", json=body).json()["campaign_id"]
    cancelled = _clarion(v1, "campaigns", "cancel", app["app_key"], campaign_id, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert (json.loads(cancelled.stdout)["status"], json.loads(cancelled.stdout)["audience"]) == (
        "cancelled",
        0,
    )
    again = _clarion(v1, "campaigns", "cancel", app["app_key"], campaign_id)
    assert again.returncode == 2
    assert json.loads(again.stderr.splitlines()[-1])["error"] == "campaign_finished"
    bad = _clarion(
        v1, "send", app["app_key"], "--title", "t", "--message", "m", "--url", "javascript:alert(1)"
    )
    assert bad.returncode == 2
    assert json.loads(bad.stderr.splitlines()[-1]) == {
        "error": "invalid_field",
        "message": "payload.redirect_url: must be a valid http(s) URL",
        "field": "payload.redirect_url",
    }
