"""/v1 local time, quiet hours and recurring schedules over real HTTP (docs/scheduling.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.push_service import FakePushService, Respond
from tests.v1.conftest import V1, basic, subscribe, wait_for

PAYLOAD = {"title": "Morning", "message": "Good morning", "redirect_url": "https://example.com/am"}


def _error(field: str, message: str) -> dict[str, Any]:
    return {"error": "invalid_field", "message": message, "field": field}


def test_an_apps_default_zone_and_quiet_hours_are_set_checked_and_cleared(v1: V1) -> None:
    app = v1.new_app()
    path = f"/apps/{app['app_key']}"
    with v1.client(basic(app)) as own:
        changed = own.patch(
            path, json={"default_timezone": "Asia/Tokyo", "quiet_start": "22:00", "quiet_end": "07:00"}
        ).json()
        assert {k: changed[k] for k in ("default_timezone", "quiet_start", "quiet_end", "quiet_mode")} == {
            "default_timezone": "Asia/Tokyo",
            "quiet_start": "22:00",
            "quiet_end": "07:00",
            "quiet_mode": "hold",
        }
        refusals = [
            ({"default_timezone": "Asia/Atlantis"}, "default_timezone"),
            ({"quiet_start": "25:00"}, "quiet_start"),
            ({"quiet_end": ""}, "quiet_end"),
            ({"quiet_mode": "later"}, "quiet_mode"),
        ]
        for body, field in refusals:
            refused = own.patch(path, json=body)
            assert (refused.status_code, refused.json()["field"]) == (422, field), refused.text
        cleared = own.patch(path, json={"quiet_start": "", "quiet_end": "", "default_timezone": ""}).json()
        assert (cleared["quiet_start"], cleared["quiet_end"], cleared["default_timezone"]) == (
            None,
            None,
            None,
        )


def test_a_local_time_campaign_shows_its_releases_and_past_zones_may_get_it_at_once(
    v1: V1, fake: FakePushService
) -> None:
    app = v1.new_app()
    subscribe(v1, fake, app, Respond(201))
    with v1.client(basic(app)) as own:
        base = f"/apps/{app['app_key']}/campaigns"
        # 00:00 has passed today in every zone: with past_zones "now", everyone gets it at once.
        created = own.post(base, json={"payload": PAYLOAD, "local_time": "00:00", "past_zones": "now"})
        assert created.status_code == 201, created.text
        assert (created.json()["local_time"], created.json()["past_zones"]) == ("00:00", "now")
        shown = wait_for(own, f"{base}/{created.json()['campaign_id']}", "sent")
        assert shown["funnel"]["sent"] == 1
        [release] = shown["releases"]
        assert (release["zones"], release["dropped"]) == (["(default)"], False)
        assert datetime.fromisoformat(release["at"]) <= datetime.now(UTC)

        # ... and with "tomorrow" (the default) it waits for tomorrow's 00:00 UTC: cancel it meanwhile.
        later = own.post(base, json={"payload": PAYLOAD, "local_time": "00:00"}).json()
        waiting = wait_for(own, f"{base}/{later['campaign_id']}", "sending")
        for _ in range(50):
            waiting = own.get(f"{base}/{later['campaign_id']}").json()
            if waiting["funnel"]["pending"] == 1:
                break
        assert (waiting["funnel"]["pending"], waiting["funnel"]["sent"]) == (1, 0)
        [tomorrow] = waiting["releases"]
        assert datetime.fromisoformat(tomorrow["at"]).time().isoformat() == "00:00:00"
        cancelled = own.post(f"{base}/{later['campaign_id']}/cancel").json()
        assert (cancelled["status"], cancelled["funnel"]["cancelled"]) == ("cancelled", 1)

        refused = own.post(base, json={"payload": PAYLOAD, "local_time": "9am"})
        assert refused.json() == _error(
            "local_time", "local_time: must be a time of day as HH:MM (00:00-23:59)"
        )


def test_a_schedule_is_created_listed_paused_resumed_and_cancelled(v1: V1) -> None:
    app = v1.new_app()
    with v1.client(basic(app)) as own:
        base = f"/apps/{app['app_key']}/schedules"
        body = {
            "rrule": "FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
            "timezone": "Europe/Paris",
            "starts_at": "2026-01-01T09:00:00",
            "campaign": {"payload": PAYLOAD, "local_time": "09:00"},
        }
        created = own.post(base, json=body)
        assert created.status_code == 201, created.text
        schedule = created.json()
        schedule_id = schedule["schedule_id"]
        next_at = datetime.fromisoformat(schedule["next_at"])
        assert next_at > datetime.now(UTC)
        assert next_at.astimezone(UTC).minute == 0
        assert schedule == {
            "schedule_id": schedule_id,
            "status": "active",
            "rrule": "FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
            "timezone": "Europe/Paris",
            "starts_at": "2026-01-01T08:00:00Z",
            "ends_at": None,
            "next_at": schedule["next_at"],
            "occurrences": 0,
            "created_at": schedule["created_at"],
        }
        assert own.get(base).json() == {"items": [schedule], "next_cursor": None}
        paused = own.post(f"{base}/{schedule_id}/pause").json()
        assert paused == {**schedule, "status": "paused"}
        resumed = own.post(f"{base}/{schedule_id}/resume").json()
        assert resumed == {**schedule, "status": "active"}
        cancelled = own.post(f"{base}/{schedule_id}/cancel").json()
        assert cancelled == {**schedule, "status": "cancelled", "next_at": None}
        again = own.post(f"{base}/{schedule_id}/cancel")
        assert (again.status_code, again.json()) == (
            409,
            {"error": "schedule_finished", "message": "The schedule has ended or was cancelled"},
        )
        assert own.get(f"{base}/999").status_code == 404


def test_a_schedule_that_cannot_be_made_is_refused_naming_the_field(v1: V1) -> None:
    app = v1.new_app()
    good = {"rrule": "FREQ=WEEKLY", "timezone": "Europe/Paris", "campaign": {"payload": PAYLOAD}}
    with v1.client(basic(app)) as own:
        base = f"/apps/{app['app_key']}/schedules"
        for change, field in [
            ({"rrule": "FREQ=SECONDLY"}, "rrule"),
            ({"rrule": "FREQ=DAILY;BYHOUR=99"}, "rrule"),
            ({"timezone": "Europe/Atlantis"}, "timezone"),
            ({"ends_at": "2020-01-01T00:00:00Z"}, "ends_at"),
            ({"campaign": {"payload": {**PAYLOAD, "redirect_url": "ftp://x"}}}, "payload.redirect_url"),
            ({"campaign": {"payload": PAYLOAD, "audience": {"tags": []}}}, "audience.tags"),
        ]:
            refused = own.post(base, json={**good, **change})
            assert (refused.status_code, refused.json().get("field")) == (422, field), refused.text


def test_a_best_time_campaign_needs_local_time_and_shows_each_recipients_hour(
    v1: V1, fake: FakePushService
) -> None:
    app = v1.new_app()
    reg_id = subscribe(v1, fake, app, Respond(201))
    with v1.client(basic(app)) as own:
        base = f"/apps/{app['app_key']}/campaigns"
        refused = own.post(base, json={"payload": PAYLOAD, "best_time": True})
        assert (refused.status_code, refused.json()) == (
            422,
            _error(
                "local_time", "local_time: best_time needs it, the time for subscribers without recent clicks"
            ),
        )
        # No clicks yet: the fallback, 00:00 UTC, has passed today and past_zones "now" sends at once.
        body = {"payload": PAYLOAD, "best_time": True, "local_time": "00:00", "past_zones": "now"}
        created = own.post(base, json=body)
        assert created.status_code == 201, created.text
        assert (created.json()["best_time"], created.json()["local_time"]) == (True, "00:00")
        campaign_id = created.json()["campaign_id"]
        assert wait_for(own, f"{base}/{campaign_id}", "sent")["funnel"]["sent"] == 1
        [outcome] = own.get(f"{base}/{campaign_id}/outcomes").json()["items"]
        assert outcome == {
            "delivery_id": outcome["delivery_id"],
            "reg_id": reg_id,
            "platform": "web",
            "status": "sent",
            "attempts": 1,
            "reason": None,
            "best_hour": None,
            "updated_at": outcome["updated_at"],
        }


def test_a_scheduled_campaign_is_paused_resumed_and_cancelled(v1: V1) -> None:
    app = v1.new_app()
    with v1.client(basic(app)) as own:
        base = f"/apps/{app['app_key']}/campaigns"
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        created = own.post(base, json={"payload": PAYLOAD, "send_at": later}).json()
        path = f"{base}/{created['campaign_id']}"
        paused = own.post(f"{path}/pause")
        assert (paused.status_code, paused.json()) == (200, {**created, "status": "paused"})
        again = own.post(f"{path}/pause")
        assert (again.status_code, again.json()) == (
            409,
            {
                "error": "campaign_not_sending",
                "message": "Only a scheduled or sending campaign can be paused",
            },
        )
        resumed = own.post(f"{path}/resume")
        assert (resumed.status_code, resumed.json()) == (200, {**created, "status": "scheduled"})
        twice = own.post(f"{path}/resume")
        assert (twice.status_code, twice.json()) == (
            409,
            {"error": "campaign_not_paused", "message": "Only a paused campaign can be resumed"},
        )
        own.post(f"{path}/pause")
        assert own.post(f"{path}/cancel").json()["status"] == "cancelled"
        assert own.post(f"{base}/1/pause").status_code == 404
