"""A campaign's pictures prepared before its fan-out, on both databases: stored once by digest,
served by Clarion, the payload rewritten once; failures keep their URL and leave a warning."""

from __future__ import annotations

import io
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import func, select

from clarion.app import create_app
from clarion.app_tenant import service as apps
from clarion.campaign import payload as payload_rules
from clarion.campaign import service as campaigns
from clarion.config import Settings
from clarion.db import Database
from clarion.gravitec import push_body
from clarion.models import Campaign, Picture
from clarion.pictures import service as pictures_service
from clarion.pictures.fetch import Fetcher
from tests.fakes.picture_server import PictureServer
from tests.pictures.conftest import PUBLIC_URL

FUTURE = (
    "4102444800000"  # 2100-01-01 in ms  # no scheduler runs here; prepare is called as the scheduler would
)


async def _campaign(db: Database, app_key: str, **pictures: str) -> int:
    """A Gravitec push with these payload fields (a message, title and redirect_url by default)."""
    body = {
        "send_date": FUTURE,
        "payload": {"message": "Hi", "title": "T", "redirect_url": "https://e.x/", **pictures},
    }
    async with db.session() as session:
        app = await apps.by_key(session, app_key)
        return (await campaigns.create(session, app, push_body.parse(body))).id


async def _prepare(db: Database, settings: Settings, campaign_id: int) -> tuple[dict[str, Any], Any]:
    fetcher = Fetcher.from_settings(settings)
    try:
        assert settings.public_url is not None
        prepared = pictures_service.Pictures(fetcher, settings.public_url, settings.delivery_lease_s)
        await pictures_service.prepare(db, campaign_id, prepared)
    finally:
        await fetcher.aclose()
    async with db.session() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        return dict(campaign.payload), campaign.picture_warnings


async def test_pictures_are_stored_once_and_served(
    db: Database, settings: Settings, pictures: PictureServer
) -> None:
    async with db.session() as session:
        created = await apps.create(session, "Shop")
        await apps.update(session, created.app_key, default_icon=pictures.url("tiny.png"))
    first = await _campaign(
        db, created.app_key, icon=pictures.url("tiny.png"), image=pictures.url("wide.jpg")
    )
    second = await _campaign(db, created.app_key, image=pictures.url("tall.png"))  # the default icon
    one, warnings_one = await _prepare(db, settings, first)
    two, warnings_two = await _prepare(db, settings, second)
    assert (warnings_one, warnings_two) == ([], [])
    assert one["icon"] == two["icon"]
    assert one["icon"].startswith(f"{PUBLIC_URL}/pictures/")
    assert one["icon"].endswith(".png")
    assert one["image"].endswith(".jpg")
    assert one["image"] != two["image"]
    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(Picture))).scalar_one() == 3

    # Prepared once: a second preparation (a resumed plan) fetches nothing and changes nothing.
    fetched = len(pictures.requests)
    assert await _prepare(db, settings, first) == (one, [])
    assert len(pictures.requests) == fetched == 4

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            for url, size in (
                (one["icon"], (80, 80)),
                (one["image"], (360, 240)),
                (two["image"], (360, 240)),
            ):
                answer = await client.get(url.removeprefix(PUBLIC_URL))
                assert answer.status_code == 200
                assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
                assert Image.open(io.BytesIO(answer.content)).size == size


async def test_a_failed_picture_keeps_its_url_and_leaves_a_warning(
    db: Database, settings: Settings, pictures: PictureServer
) -> None:
    async with db.session() as session:
        created = await apps.create(session, "Shop")
    liar, good = pictures.url("liar.png"), pictures.url("tall.png")
    campaign_id = await _campaign(db, created.app_key, icon=liar, image=good)
    payload, warnings = await _prepare(db, settings, campaign_id)
    assert payload["icon"] == liar
    assert payload["image"].startswith(f"{PUBLIC_URL}/pictures/")
    assert warnings == [{"field": "icon", "url": liar, "reason": "not a JPEG or PNG picture"}]
    async with db.session() as session:
        stats = await campaigns.stats_of_any(session, campaign_id)
    assert stats.picture_warnings == warnings


async def test_a_campaign_without_pictures_is_left_alone(db: Database, settings: Settings) -> None:
    async with db.session() as session:
        created = await apps.create(session, "Shop")
    campaign_id = await _campaign(db, created.app_key)
    payload, warnings = await _prepare(db, settings, campaign_id)
    assert (payload["icon"], payload["image"], warnings) == (None, None, None)


async def test_a_notification_that_would_outgrow_web_push_keeps_its_pictures(
    db: Database, settings: Settings, pictures: PictureServer
) -> None:
    """Clarion's picture URL is longer than a short original: where that would push the encoded
    notification past Web Push's 3993 bytes, the original URLs stay, with a warning."""
    async with db.session() as session:
        created = await apps.create(session, "Shop")
    icon, liar = pictures.url("tiny.png"), pictures.url("liar.png")
    content = {"message": "€" * 1000, "redirect_url": "https://e.x/", "icon": icon, "image": liar}
    title = next(
        "€" * size
        for size in range(330, 0, -1)
        if payload_rules.fits(
            push_body.parse({"payload": {**content, "title": "€" * size}}).content, 60, None
        )
    )
    campaign_id = await _campaign(db, created.app_key, **{**content, "title": title})
    payload, warnings = await _prepare(db, settings, campaign_id)
    assert (payload["icon"], payload["image"]) == (icon, liar)
    reason = "with Clarion's picture URL the notification would exceed the Web Push size limit"
    assert warnings == [
        {"field": "image", "url": liar, "reason": "not a JPEG or PNG picture"},
        {"field": "icon", "url": icon, "reason": reason},
    ]
