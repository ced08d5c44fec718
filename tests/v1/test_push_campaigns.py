"""/v1/apps/{app_key}/push-campaigns over real HTTP: create (push_key shown once), list, show with
counters, rotate the push_key, batches and their reports, delete; apps apart."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.v1.conftest import V1, basic

ZERO_DELIVERY = {"pending": 0, "sent": 0, "gone": 0, "rejected": 0, "expired": 0, "failed": 0}
ZERO_ENGAGEMENT = {"received": 0, "clicked": 0, "closed": 0}


def submit(v1: V1, push_key: str, body: bytes) -> httpx.Response:
    with httpx.Client(base_url=v1.server.url, timeout=10) as client:
        return client.post("/push_batch", params={"push_key": push_key}, content=body)


def swrve_report(v1: V1, batch_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=v1.server.url, timeout=10) as client:
        body: dict[str, Any] = client.get("/push_batch", params={"batch_id": batch_id}).json()
        return body


def processed(client: httpx.Client, path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        body: dict[str, Any] = client.get(path).json()
        if body["status"] != "in_progress" or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_create_show_batches_rotate_delete(v1: V1) -> None:
    app = v1.new_app("swrve")
    base = f"/apps/{app['app_key']}/push-campaigns"
    with v1.client(basic(app)) as own:
        created = own.post(base, json={"name": "Orders", "title": "Your order", "platform": "android"})
        assert created.status_code == 201, created.text
        body = created.json()
        campaign_id, push_key = body["campaign_id"], body["push_key"]
        read = {
            "campaign_id": campaign_id,
            "name": "Orders",
            "message": None,
            "title": "Your order",
            "platform": "android",
            "created_at": body["created_at"],
        }
        assert body == {**read, "push_key": push_key}
        assert len(push_key) == 32
        assert own.get(base).json() == {"items": [read], "next_cursor": None}
        no_batches = {"batches": 0, "delivery": ZERO_DELIVERY, "engagement": ZERO_ENGAGEMENT}
        assert own.get(f"{base}/{campaign_id}").json() == {**read, "counters": no_batches}

        accepted = submit(v1, push_key, b'[{"swrve_user_id": "nobody", "message": "Shipped"}]')
        assert accepted.status_code == 202, accepted.text
        batch_id = accepted.json()["batch_id"]
        status = processed(own, f"{base}/{campaign_id}/batches/{batch_id}")
        assert status == swrve_report(v1, batch_id)
        assert (status["batch_id"], status["status"], status["counts"]["total"]) == (batch_id, "failed", 1)
        (batch,) = own.get(f"{base}/{campaign_id}/batches").json()["items"]
        assert batch == {
            "batch_id": batch_id,
            "status": "processed",
            "total_users": 1,
            "created_at": batch["created_at"],
            "deadline_at": batch["deadline_at"],
        }
        assert own.get(f"{base}/{campaign_id}").json()["counters"] == {**no_batches, "batches": 1}

        rotated = own.post(f"{base}/{campaign_id}/rotate-push-key").json()
        assert rotated == {"campaign_id": campaign_id, "push_key": rotated["push_key"]}
        assert rotated["push_key"] != push_key
        # The old key is now as unknown as one never made.
        never = submit(v1, "0" * 32, b'[{"swrve_user_id": "u"}]')
        old = submit(v1, push_key, b'[{"swrve_user_id": "u"}]')
        assert (old.status_code, old.json()) == (never.status_code, never.json()) == (404, never.json())
        assert submit(v1, rotated["push_key"], b'[{"swrve_user_id": "u"}]').status_code == 202

        assert own.delete(f"{base}/{campaign_id}").status_code == 204
        gone = own.get(f"{base}/{campaign_id}")
        assert gone.status_code == 404
        assert gone.json() == {
            "error": "not_found",
            "message": f"There is no Push API campaign {campaign_id}",
            "field": "campaign_id",
        }
        assert own.get(f"{base}/{campaign_id}/batches/{batch_id}").status_code == 404
        assert submit(v1, rotated["push_key"], b'[{"swrve_user_id": "u"}]').json() == never.json()


def test_pages_and_refusals(v1: V1) -> None:
    app = v1.new_app("pages")
    base = f"/apps/{app['app_key']}/push-campaigns"
    with v1.admin() as admin:
        ids = [admin.post(base, json={"name": f"c{n}"}).json()["campaign_id"] for n in range(3)]
        first = admin.get(base, params={"limit": 2}).json()
        rest = admin.get(base, params={"limit": 2, "cursor": first["next_cursor"]}).json()
        assert [c["campaign_id"] for c in first["items"] + rest["items"]] == ids
        assert rest["next_cursor"] is None
        for body, field in (
            ({"name": ""}, "name"),
            ({"name": "x", "platform": "fax"}, "platform"),
            ({"name": "x", "extra": 1}, "extra"),
            ({"name": "a\u0000b"}, "name"),
        ):
            answer = admin.post(base, json=body)
            assert answer.status_code == 422, body
            assert answer.json()["field"] == field
        unknown_batch = admin.get(f"{base}/{ids[0]}/batches/00000000-0000-0000-0000-000000000000")
        assert unknown_batch.status_code == 404
        assert unknown_batch.json()["field"] == "batch_id"


def test_an_app_reaches_none_of_another_apps_push_campaigns(v1: V1) -> None:
    mine, theirs = v1.new_app("mine"), v1.new_app("theirs")
    with v1.admin() as admin:
        created = admin.post(f"/apps/{theirs['app_key']}/push-campaigns", json={"name": "Theirs"}).json()
    their_id = created["campaign_id"]
    batch_id = submit(v1, created["push_key"], b'[{"swrve_user_id": "u"}]').json()["batch_id"]
    with v1.client(basic(mine)) as own:
        theirs_base = f"/apps/{theirs['app_key']}/push-campaigns"
        mine_base = f"/apps/{mine['app_key']}/push-campaigns"
        for answer in (
            own.get(theirs_base),
            own.post(theirs_base, json={"name": "x"}),
            own.get(f"{theirs_base}/{their_id}"),
            own.post(f"{theirs_base}/{their_id}/rotate-push-key"),
            own.delete(f"{theirs_base}/{their_id}"),
            own.get(f"{theirs_base}/{their_id}/batches"),
            own.get(f"{theirs_base}/{their_id}/batches/{batch_id}"),
        ):
            assert answer.status_code == 404
            assert answer.json()["field"] == "app_key"
        for answer in (
            own.get(f"{mine_base}/{their_id}"),
            own.post(f"{mine_base}/{their_id}/rotate-push-key"),
            own.delete(f"{mine_base}/{their_id}"),
            own.get(f"{mine_base}/{their_id}/batches"),
            own.get(f"{mine_base}/{their_id}/batches/{batch_id}"),
        ):
            assert answer.status_code == 404
            assert answer.json()["field"] == "campaign_id"
        assert own.get(mine_base).json() == {"items": [], "next_cursor": None}
    with v1.admin() as admin:
        assert admin.get(f"/apps/{theirs['app_key']}/push-campaigns/{their_id}").json()["name"] == "Theirs"
