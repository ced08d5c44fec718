"""POST /sdk/v1/events: engagement counted once per subscriber, campaign and type."""

from __future__ import annotations

from typing import Any

from clarion.db import Database
from tests.app_tenant.factory import (
    native_error,
    new_app,
    push,
    stats,
    subscribe,
    subscribe_with_proof,
    wait_for_stats,
)
from tests.conftest import Api
from tests.fakes.push_service import FakePushService


def invalid(message: str, field: str) -> dict[str, Any]:
    return native_error("invalid_field", message, field)


async def test_events_count_once_per_subscriber_campaign_and_type(
    api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    # A third subscriber outside the audience: "send" must not count it.
    (first, first_proof), (second, second_proof), _ = [
        await subscribe_with_proof(api.client, tenant, fake) for _ in range(3)
    ]
    proofs = {first: first_proof, second: second_proof}
    created = await push(api.client, tenant, audience={"tokens": [first, second]})
    assert created.status_code == 200, created.text
    campaign_id = created.json()["id"]
    # An event counts only for a campaign sent to the subscriber: wait until it was.
    sent = {"status": "SENT", "send": 2, "received": 0, "clicked": 0, "closed": 0}
    await wait_for_stats(api.client, tenant, campaign_id, sent)

    reports = [
        (first, campaign_id, "received"),
        (first, campaign_id, "received"),  # a repeated report is not counted again
        (second, int(campaign_id), "received"),  # the id may come as a JSON number
        (first, campaign_id, "clicked"),
        (first, campaign_id, "clicked"),
        (first, campaign_id, "clicked"),
        (second, campaign_id, "closed"),
    ]
    for reg_id, cid, kind in reports:
        body = {"app_key": tenant.app_key, "regId": reg_id, "campaign_id": cid, "type": kind}
        answer = await api.client.post("/sdk/v1/events", json=body, headers=proofs[reg_id])
        assert (answer.status_code, answer.content) == (204, b""), answer.text

    expected = {"status": "SENT", "send": 2, "received": 2, "clicked": 1, "closed": 1}
    assert await wait_for_stats(api.client, tenant, campaign_id, expected) == expected


async def test_event_rejections(quiet_api: Api, db: Database, fake: FakePushService) -> None:
    tenant, other = await new_app(db), await new_app(db, name="other")
    reg_id, held = await subscribe_with_proof(quiet_api.client, tenant, fake)
    foreign_reg_id = await subscribe(quiet_api.client, other, fake)
    campaign_id = (await push(quiet_api.client, tenant, audience={"tokens": ["nobody"]})).json()["id"]
    foreign_campaign = (await push(quiet_api.client, other, audience={"tokens": ["nobody"]})).json()["id"]
    good = {"app_key": tenant.app_key, "regId": reg_id, "campaign_id": campaign_id, "type": "clicked"}

    no_campaign = invalid("There is no campaign with this id", "campaign_id")
    no_subscriber = invalid("There is no subscriber with this regId", "regId")
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"type": "opened"}, invalid("type: Input should be 'received', 'clicked' or 'closed'", "type")),
        ({"type": None}, invalid("type: Input should be 'received', 'clicked' or 'closed'", "type")),
        ({"campaign_id": "999999"}, no_campaign),
        ({"campaign_id": 999999}, no_campaign),
        ({"campaign_id": foreign_campaign}, no_campaign),
        ({"campaign_id": "12a"}, invalid("campaign_id must be a numeric id", "campaign_id")),
        ({"campaign_id": "9" * 40}, invalid("campaign_id must be a numeric id", "campaign_id")),
        ({"campaign_id": 1.5}, invalid("campaign_id: Input should be a valid string", "campaign_id")),
        ({"campaign_id": True}, invalid("campaign_id: Input should be a valid string", "campaign_id")),
        ({"regId": "no-such-subscriber"}, no_subscriber),
        ({"regId": foreign_reg_id}, no_subscriber),
        ({"app_key": "nope"}, invalid("There is no app with app_key: nope", "app_key")),
    ]
    for change, expected in cases:
        answer = await quiet_api.client.post("/sdk/v1/events", json={**good, **change}, headers=held)
        assert (answer.status_code, answer.json()) == (422, expected), change
    missing = {key: value for key, value in good.items() if key != "campaign_id"}
    answer = await quiet_api.client.post("/sdk/v1/events", json=missing, headers=held)
    assert (answer.status_code, answer.json()) == (422, invalid("campaign_id: Field required", "campaign_id"))
    answer = await quiet_api.client.post("/sdk/v1/events", content=b"type=clicked")
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"

    # Nothing refused was counted.
    nothing = {"status": "SCHEDULED", "send": 0, "received": 0, "clicked": 0, "closed": 0}
    assert await stats(quiet_api.client, tenant, campaign_id) == nothing
