"""Delivery and engagement counters per Push API campaign, through the admin JSON API."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from clarion import errors
from clarion.app_tenant import service as apps
from clarion.db import utcnow
from clarion.delivery.tasks import fold_step
from clarion.models import Delivery
from clarion.subscriber.proof import AUTH_HEADER
from clarion.swrve import report
from tests.swrve.conftest import Device, PushApi, Swrve

ADMIN = {"Authorization": "Bearer test-admin-token"}  # tests.conftest.make_settings' admin token


async def _counters(api: Swrve, push: PushApi) -> dict[str, Any]:
    response = await api.client.get(f"/admin/v1/push-campaigns/{push.campaign_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _event(api: Swrve, device: Device, campaign_id: str, kind: str) -> None:
    body = {"app_key": api.app_key, "regId": device.reg_id, "campaign_id": campaign_id, "type": kind}
    response = await api.client.post("/sdk/v1/events", json=body, headers={AUTH_HEADER: device.proof})
    assert response.status_code == 204, response.text


def _counts(
    push: PushApi, batches: int, delivery: dict[str, int], engagement: dict[str, int]
) -> dict[str, Any]:
    statuses = ("pending", "sent", "gone", "rejected", "expired", "failed")
    return {
        "campaign_id": push.campaign_id,
        "name": "c",
        "platform": "all",
        "batches": batches,
        "delivery": {status: delivery.get(status, 0) for status in statuses},
        "engagement": {kind: engagement.get(kind, 0) for kind in ("received", "clicked", "closed")},
    }


async def test_counters_of_a_push_api_campaign_over_its_batches(swrve_api: Swrve) -> None:
    push, other = await swrve_api.push_campaign(), await swrve_api.push_campaign()
    android, web = await swrve_api.device("android", "u1"), await swrve_api.device("web", "u2")
    changed = await swrve_api.device("android", "u3")
    swrve_api.fakes.fcm.unregister(changed.token)

    first = await swrve_api.submit(push.push_key, ["u1", "u2"])
    assert (await swrve_api.report(first))["status"] == "done"
    second = await swrve_api.submit(push.push_key, ["u1", "u3", "nobody"])
    assert (await swrve_api.report(second))["status"] == "done_with_warnings"

    # The campaign id an app reports engagement with is the one inside the message it received.
    first_id, second_id = (r.message["data"]["campaign_id"] for r in swrve_api.received(android))
    web_id = json.loads(swrve_api.received(web)[0].payload)["campaign_id"]
    assert web_id == first_id != second_id
    await _event(swrve_api, android, first_id, "received")
    await _event(swrve_api, android, first_id, "clicked")
    await _event(swrve_api, android, first_id, "clicked")  # counted once per device
    await _event(swrve_api, web, web_id, "received")
    await _event(swrve_api, android, second_id, "closed")

    assert await _counters(swrve_api, push) == _counts(
        push, 2, {"sent": 3, "gone": 1}, {"received": 2, "clicked": 1, "closed": 1}
    )
    assert await _counters(swrve_api, other) == _counts(other, 0, {}, {})


async def test_the_counters_need_the_admin_token_and_a_known_campaign(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    path = f"/admin/v1/push-campaigns/{push.campaign_id}"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}):
        response = await swrve_api.client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "error": "unauthorized",
            "message": "A valid admin bearer token is required",
        }
    missing = await swrve_api.client.get(f"/admin/v1/push-campaigns/{push.campaign_id + 1000}", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "not_found",
        "message": f"There is no Push API campaign {push.campaign_id + 1000}",
        "field": "campaign_id",
    }


async def test_a_campaign_id_outside_64_bits_is_an_invalid_field(swrve_api: Swrve) -> None:
    """SQLite's driver cannot even compare such an id (OverflowError, once a 500): refused before."""
    limit = 2**63 - 1
    for campaign_id, bound in ((limit + 1, "less"), (10**4000, "less"), (-(2**63) - 1, "greater")):
        response = await swrve_api.client.get(f"/admin/v1/push-campaigns/{campaign_id}", headers=ADMIN)
        assert response.status_code == 422, (campaign_id, response.text)
        sign = "-" if bound == "greater" else ""
        edge = f"{sign}{2**63 - (0 if sign else 1)}"
        assert response.json() == {
            "error": "invalid_field",
            "message": f"campaign_id: Input should be {bound} than or equal to {edge}",
            "field": "campaign_id",
        }
    for campaign_id in (limit, -(2**63)):  # the largest and smallest ids are looked up: there is none
        response = await swrve_api.client.get(f"/admin/v1/push-campaigns/{campaign_id}", headers=ADMIN)
        assert response.status_code == 404, (campaign_id, response.text)


async def _fold_all(api: Swrve) -> int:
    """Ledger retention with a horizon a day ahead (every finished batch is past it), until done."""
    now = utcnow()
    folded = 0
    deadline = time.monotonic() + 10
    # A batch's campaign becomes `sent` a moment after its report reads done: until then none is due.
    while time.monotonic() < deadline:
        async with api.db.session() as session:
            done = await report.fold_batch_ledger(session, now + timedelta(days=1), now)
        folded += done
        async with api.db.session() as session:
            left = (await session.execute(select(func.count()).select_from(Delivery))).scalar_one()
        if left == 0:
            return folded
        await asyncio.sleep(0.05)
    raise AssertionError(f"{left} ledger rows left after 10 s")


async def test_batch_reports_and_counters_read_the_same_after_retention(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    android, web = await swrve_api.device("android", "u1"), await swrve_api.device("web", "u2")
    changed = await swrve_api.device("android", "u3")
    swrve_api.fakes.fcm.unregister(changed.token)
    first = await swrve_api.submit(push.push_key, ["u1", "u2"])
    second = await swrve_api.submit(push.push_key, ["u1", "u3", "nobody"])
    reports = {batch: await swrve_api.report(batch) for batch in (first, second)}
    assert reports[second]["status"] == "done_with_warnings"
    first_id = swrve_api.received(android)[0].message["data"]["campaign_id"]
    await _event(swrve_api, web, json.loads(swrve_api.received(web)[0].payload)["campaign_id"], "received")
    counters = await _counters(swrve_api, push)
    assert counters == _counts(push, 2, {"sent": 3, "gone": 1}, {"received": 1})

    # The delivery feature's own retention leaves a batch's rows to the Swrve feature.
    now = utcnow()
    assert await fold_step(swrve_api.db)(now + timedelta(days=1), now) == 0
    assert await _fold_all(swrve_api) == 4

    assert {batch: await swrve_api.status(batch) for batch in (first, second)} == reports
    assert await _counters(swrve_api, push) == counters
    body = {"app_key": swrve_api.app_key, "regId": android.reg_id, "campaign_id": first_id, "type": "clicked"}
    response = await swrve_api.client.post("/sdk/v1/events", json=body, headers={AUTH_HEADER: android.proof})
    assert response.status_code == 410
    assert response.json()["error"] == "campaign_past_retention"


async def test_the_report_and_counters_take_the_app_and_hide_another_apps(swrve_api: Swrve) -> None:
    """The service checks the app itself, whichever route calls it: another app's batch and campaign
    are unknown to it, as a missing one is; `app=None` (the admin token, the vendor's status call) sees
    every app's."""
    push = await swrve_api.push_campaign()
    batch_id = await swrve_api.submit(push.push_key, ["nobody"])
    other = await swrve_api.other_app()
    async with swrve_api.db.session() as session:
        mine, theirs = (
            await apps.by_key(session, swrve_api.app_key),
            await apps.by_key(session, other.app_key),
        )
        with pytest.raises(errors.InvalidBatchId):
            await report.status(session, batch_id, app=theirs)
        with pytest.raises(errors.NotFound) as caught:
            await report.counters(session, push.campaign_id, app=theirs)
        assert caught.value.as_json() == {
            "error": "not_found",
            "message": f"There is no Push API campaign {push.campaign_id}",
            "field": "campaign_id",
        }
        seen = [await report.status(session, batch_id, app=whose) for whose in (mine, None)]
        counted = [await report.counters(session, push.campaign_id, app=whose) for whose in (mine, None)]
    assert seen[0] == seen[1]
    assert seen[0]["batch_id"] == batch_id
    assert counted[0] == counted[1] == _counts(push, 1, {}, {})
