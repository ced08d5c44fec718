"""A device's time zone: recorded at registration (web and native), changed by a later registration,
refused with a 422 naming `timezone` when zoneinfo does not know it."""

from __future__ import annotations

from sqlalchemy import select

from clarion.db import Database
from clarion.models import Subscriber
from tests.app_tenant.factory import native_error, new_app, web_body
from tests.conftest import Api
from tests.fakes.push_service import FakePushService


async def _zone(db: Database, reg_id: str) -> str | None:
    async with db.session() as session:
        query = select(Subscriber.timezone).where(Subscriber.reg_id == reg_id)
        return (await session.execute(query)).scalar_one()


async def test_the_zone_is_recorded_and_follows_a_later_registration(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    sub = fake.new_subscription()
    body = web_body(tenant.app_key, sub.to_json())
    first = await quiet_api.client.post("/sdk/v1/subscribers", json={**body, "timezone": "Asia/Tokyo"})
    assert first.status_code == 201, first.text
    reg_id = first.json()["regId"]
    assert await _zone(db, reg_id) == "Asia/Tokyo"
    # The browser moved (the Web SDK registers again when Intl's zone changed).
    moved = await quiet_api.client.post("/sdk/v1/subscribers", json={**body, "timezone": "Europe/Lisbon"})
    assert (moved.status_code, moved.json()) == (200, {"regId": reg_id})
    assert await _zone(db, reg_id) == "Europe/Lisbon"
    # A registration without a zone keeps the one recorded.
    again = await quiet_api.client.post("/sdk/v1/subscribers", json=body)
    assert again.status_code == 200
    assert await _zone(db, reg_id) == "Europe/Lisbon"


async def test_a_native_token_takes_a_zone_and_an_unknown_one_is_refused(
    quiet_api: Api, db: Database
) -> None:
    tenant = await new_app(db)
    native = {"app_key": tenant.app_key, "platform": "android", "token": "fcm-token:APA91b-zone"}
    created = await quiet_api.client.post(
        "/sdk/v1/subscribers", json={**native, "timezone": "America/Sao_Paulo"}
    )
    assert created.status_code == 201, created.text
    assert await _zone(db, created.json()["regId"]) == "America/Sao_Paulo"
    for bad, message in [
        (
            "Mars/Olympus_Mons",
            "timezone: unknown time zone 'Mars/Olympus_Mons' (an IANA name such as Europe/Paris)",
        ),
        ("../../etc/passwd", "timezone: must be an IANA time zone name such as Europe/Paris"),
        ("", "timezone: must be an IANA time zone name such as Europe/Paris"),
    ]:
        refused = await quiet_api.client.post(
            "/sdk/v1/subscribers", json={**native, "token": "fcm-token:other", "timezone": bad}
        )
        assert (refused.status_code, refused.json()) == (
            422,
            native_error("invalid_field", message, "timezone"),
        )
