"""/v1 campaigns over real HTTP: create, history, funnel, outcomes, series, cancel, dry run."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.push_service import FakePushService, Respond
from tests.v1.conftest import V1, basic, subscribe, tag, wait_for

PAYLOAD = {"title": "Breaking", "message": "Hello", "redirect_url": "https://example.com/news"}
EMPTY_BY_PLATFORM = {"web": 0, "android": 0, "ios": 0, "adm": 0, "wns": 0}


def _later(minutes: int = 60) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def test_a_campaign_is_sent_and_shows_its_funnel_outcomes_and_series(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app()
    ok = subscribe(v1, fake, app, Respond(201))
    gone = subscribe(v1, fake, app, Respond(410))
    bad = subscribe(v1, fake, app, Respond(400, body="bad payload"))
    with v1.client(basic(app)) as own:
        created = own.post(f"/apps/{app['app_key']}/campaigns", json={"payload": PAYLOAD, "ttl": 600})
        assert created.status_code == 201, created.text
        campaign_id = created.json()["campaign_id"]
        path = f"/apps/{app['app_key']}/campaigns/{campaign_id}"
        shown = wait_for(own, path, "sent")
        outcomes = own.get(f"{path}/outcomes").json()
        gone_only = own.get(f"{path}/outcomes", params={"status": "gone"}).json()
        by_reason = own.get(f"{path}/outcomes", params={"reason": "HTTP 400"}).json()
        series = own.get(f"{path}/series", params={"interval": "minute"}).json()
    assert shown["funnel"] == {
        "audience": 3,
        "pending": 0,
        "sent": 1,
        "failed": 1,
        "failed_by_reason": {"HTTP 400": 1},
        "gone": 1,
        "expired": 0,
        "cancelled": 0,
        "capped": 0,
        "received": 0,
        "clicked": 0,
        "closed": 0,
        "rates": {"delivered": 0.3333, "received": 0.0, "clicked": 0.0, "closed": 0.0},
    }
    assert {k: shown[k] for k in ("campaign_id", "status", "title", "message", "redirect_url", "ttl")} == {
        "campaign_id": campaign_id,
        "status": "sent",
        "title": "Breaking",
        "message": "Hello",
        "redirect_url": "https://example.com/news",
        "ttl": 600,
    }
    assert (shown["audience"], shown["platforms"], shown["buttons"]) == ({"kind": "all"}, None, [])
    rows = {row["reg_id"]: (row["status"], row["attempts"], row["reason"]) for row in outcomes["items"]}
    assert rows == {
        ok: ("sent", 1, None),
        gone: ("gone", 1, "HTTP 410"),
        bad: ("rejected", 1, "HTTP 400: bad payload"),
    }
    assert outcomes["next_cursor"] is None
    assert [row["reg_id"] for row in gone_only["items"]] == [gone]
    assert [row["reg_id"] for row in by_reason["items"]] == [bad]
    assert series["interval"] == "minute"
    assert [(p["sent"], p["received"], p["clicked"], p["closed"]) for p in series["points"]] == [(1, 0, 0, 0)]


def test_history_is_newest_first_and_hides_transactional_ones(v1: V1) -> None:
    app = v1.new_app()
    base = f"/apps/{app['app_key']}/campaigns"
    with v1.client(basic(app)) as own:
        first = own.post(base, json={"payload": PAYLOAD, "send_at": _later()}).json()["campaign_id"]
        second = own.post(base, json={"payload": PAYLOAD, "send_at": _later()}).json()["campaign_id"]
        personal = own.post(base, json={"payload": PAYLOAD, "send_at": _later(), "is_transactional": True})
        listed = own.get(base).json()
        everything = own.get(base, params={"transactional": "true"}).json()
        paged = own.get(base, params={"limit": 1}).json()
        rest = own.get(base, params={"limit": 1, "cursor": paged["next_cursor"]}).json()
    assert personal.status_code == 201
    assert [c["campaign_id"] for c in listed["items"]] == [second, first]
    assert [c["campaign_id"] for c in everything["items"]] == [personal.json()["campaign_id"], second, first]
    assert [c["campaign_id"] for c in paged["items"]] == [second]
    assert [c["campaign_id"] for c in rest["items"]] == [first]
    assert rest["next_cursor"] is None
    assert {c["status"] for c in listed["items"]} == {"scheduled"}


def test_a_scheduled_campaign_cancelled_never_starts(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app()
    subscribe(v1, fake, app)
    base = f"/apps/{app['app_key']}/campaigns"
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    with v1.client(basic(app)) as own:
        campaign_id = own.post(base, json={"payload": PAYLOAD, "send_at": soon}).json()["campaign_id"]
        cancelled = own.post(f"{base}/{campaign_id}/cancel")
        again = own.post(f"{base}/{campaign_id}/cancel")
        time.sleep(3)
        after = own.get(f"{base}/{campaign_id}").json()
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert again.status_code == 409
    assert again.json() == {
        "error": "campaign_finished",
        "message": "This campaign has finished: there is nothing to cancel",
    }
    assert (after["status"], after["started_at"], after["funnel"]["audience"]) == ("cancelled", None, 0)
    assert fake.received == []


def test_create_refuses_what_the_push_api_refuses_naming_the_field(v1: V1) -> None:
    app = v1.new_app()
    base = f"/apps/{app['app_key']}/campaigns"
    with v1.client(basic(app)) as own:
        image = own.post(base, json={"payload": {**PAYLOAD, "image": "https://example.com/a.gif"}})
        extra = own.post(base, json={"payload": PAYLOAD, "segmnets": ["x"]})
        platform = own.post(base, json={"payload": PAYLOAD, "platforms": ["fax"]})
        past = own.post(base, json={"payload": PAYLOAD, "send_at": "2000-01-01T00:00:00Z"})
        segment = own.post(base, json={"payload": PAYLOAD, "segments": ["nope"]})
    assert image.status_code == 422
    assert image.json() == {
        "error": "invalid_field",
        "message": "payload.image: must end with .jpg, .jpeg or .png",
        "field": "payload.image",
    }
    assert (extra.status_code, extra.json()["field"]) == (422, "segmnets")
    assert (platform.status_code, platform.json()["field"]) == (422, "platforms[0]")
    assert past.json() == {
        "error": "invalid_field",
        "message": "send_at: must be in the future",
        "field": "send_at",
    }
    assert (segment.status_code, segment.json()["field"]) == (422, "segments[0]")


def test_idempotent_campaign_creation_creates_one(v1: V1) -> None:
    app = v1.new_app()
    base = f"/apps/{app['app_key']}/campaigns"
    body: dict[str, Any] = {"payload": PAYLOAD, "send_at": _later()}
    headers = {"Idempotency-Key": "campaign-1"}
    with v1.client(basic(app)) as own:
        first = own.post(base, json=body, headers=headers)
        again = own.post(base, json=body, headers=headers)
        changed = own.post(base, json={**body, "ttl": 5}, headers=headers)
        listed = own.get(base).json()["items"]
    with v1.admin() as admin:  # the admin's keys are apart from the app's
        admins = admin.post(base, json=body, headers=headers)
    assert again.json() == first.json()
    assert changed.status_code == 409
    assert admins.status_code == 201
    assert admins.json()["campaign_id"] != first.json()["campaign_id"]
    assert len(listed) == 1


def test_dry_run_counts_active_recipients_per_platform(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app()
    tagged = subscribe(v1, fake, app)
    subscribe(v1, fake, app)
    tag(v1, app, tagged, "news")
    path = f"/apps/{app['app_key']}/audience/dry-run"
    with v1.client(basic(app)) as own:
        everyone = own.post(path, json={}).json()
        news = own.post(path, json={"audience": {"tags": ["news"]}}).json()
        tokens = own.post(
            path, json={"audience": {"tokens": [tagged, "unknown"]}, "platforms": ["web"]}
        ).json()
        android = own.post(path, json={"platforms": ["android"]}).json()
        missing = own.post(path, json={"audience": {"tags_segment": [{"association": "AND", "name": "x"}]}})
    assert everyone == {"total": 2, "by_platform": {**EMPTY_BY_PLATFORM, "web": 2}}
    assert news == {"total": 1, "by_platform": {**EMPTY_BY_PLATFORM, "web": 1}}
    assert tokens == {"total": 1, "by_platform": {"web": 1}}
    assert android == {"total": 0, "by_platform": {"android": 0}}
    assert missing.status_code == 422
    assert missing.json()["field"] == "audience.tags_segment[0].name"


def test_platforms_narrow_whom_a_campaign_reaches(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app()
    subscribe(v1, fake, app, Respond(201))
    base = f"/apps/{app['app_key']}/campaigns"
    with v1.client(basic(app)) as own:
        created = own.post(base, json={"payload": PAYLOAD, "platforms": ["ios", "android"]})
        shown = wait_for(own, f"{base}/{created.json()['campaign_id']}", "sent")
    assert shown["platforms"] == ["ios", "android"]
    assert shown["funnel"]["audience"] == 0
    assert fake.received == []


def test_a_sending_campaign_cancelled_stops_and_keeps_what_was_sent(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app()
    delivered = subscribe(v1, fake, app, Respond(201))
    # Each of these is refused for now and due again in 3 s: pending when the cancel comes.
    waiting = [subscribe(v1, fake, app, Respond(503, retry_after="3")) for _ in range(5)]
    base = f"/apps/{app['app_key']}/campaigns"
    with v1.client(basic(app)) as own:
        campaign_id = own.post(base, json={"payload": PAYLOAD}).json()["campaign_id"]
        deadline = time.monotonic() + 20
        while len([r for r in fake.requests if r.method == "POST"]) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        sending = own.get(f"{base}/{campaign_id}").json()
        while sending["funnel"]["sent"] < 1 and time.monotonic() < deadline:  # recorded, not only sent
            time.sleep(0.05)
            sending = own.get(f"{base}/{campaign_id}").json()
        cancelled = own.post(f"{base}/{campaign_id}/cancel")
        time.sleep(4)  # past the retries' time
        after = own.get(f"{base}/{campaign_id}").json()
        rows = own.get(f"{base}/{campaign_id}/outcomes", params={"status": "cancelled"}).json()["items"]
    assert (sending["status"], sending["funnel"]["sent"], sending["funnel"]["pending"]) == ("sending", 1, 5)
    assert cancelled.status_code == 200, cancelled.text
    assert after["status"] == "cancelled"
    assert {k: after["funnel"][k] for k in ("audience", "pending", "sent", "cancelled", "expired")} == {
        "audience": 6,
        "pending": 0,
        "sent": 1,
        "cancelled": 5,
        "expired": 0,
    }
    assert sorted(row["reg_id"] for row in rows) == sorted(waiting)
    assert delivered not in {row["reg_id"] for row in rows}
    assert len([r for r in fake.requests if r.method == "POST"]) == 6  # nothing sent again


def test_a_campaign_shows_its_languages_and_its_ab_test_when_read_and_listed(v1: V1) -> None:
    app = v1.new_app()
    base = f"/apps/{app['app_key']}/campaigns"
    languages = {
        "fr": {"title": "Bonjour", "message": "Salut"},
        "de-AT": {"message": "Servus", "redirect_url": "https://example.at/"},
    }
    ab_test = {
        "variants": [
            {
                "percent": 40,
                "payload": {"title": "Ta", "message": "A", "redirect_url": "https://example.com/a"},
            },
            {"percent": 40, "payload": {**PAYLOAD, "message": "B"}},
        ],
        "holdout_percent": 10,
        "winner_after": 1800,
    }
    with v1.client(basic(app)) as own:
        plain = own.post(base, json={"payload": PAYLOAD, "send_at": _later()})
        local = own.post(
            base,
            json={"payload": PAYLOAD, "send_at": _later(), "default_language": "en", "languages": languages},
        )
        split = own.post(base, json={"ab_test": ab_test, "send_at": _later()})
        made = {"plain": plain, "local": local, "split": split}
        shown = {name: own.get(f"{base}/{r.json()['campaign_id']}").json() for name, r in made.items()}
        listed = own.get(base).json()["items"]
    keys = ("default_language", "languages", "ab_test")
    assert {k: shown["plain"][k] for k in keys} == {
        "default_language": None,
        "languages": {},
        "ab_test": None,
    }
    assert {k: shown["local"][k] for k in keys} == {
        "default_language": "en",
        "languages": {
            # What a language leaves out is the default payload's.
            "fr": {
                "title": "Bonjour",
                "message": "Salut",
                "redirect_url": PAYLOAD["redirect_url"],
                "buttons": [],
            },
            "de-AT": {
                "title": "Breaking",
                "message": "Servus",
                "redirect_url": "https://example.at/",
                "buttons": [],
            },
        },
        "ab_test": None,
    }
    variant = {"title": None, "icon": None, "image": None, "buttons": []}
    assert {k: shown["split"][k] for k in keys} == {
        "default_language": None,
        "languages": {},
        "ab_test": {
            "variants": [
                {
                    **variant,
                    "percent": 40,
                    "title": "Ta",
                    "message": "A",
                    "redirect_url": "https://example.com/a",
                },
                {
                    **variant,
                    "percent": 40,
                    "title": "Breaking",
                    "message": "B",
                    "redirect_url": "https://example.com/news",
                },
            ],
            "holdout_percent": 10,
            "winner_after": 1800,
            "winner": None,
        },
    }
    # The history shows the same (newest first), less the funnel.
    assert [{k: c[k] for k in keys} for c in listed] == [
        {k: shown[name][k] for k in keys} for name in ("split", "local", "plain")
    ]
