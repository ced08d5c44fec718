"""Token hygiene in the delivery engine against a real ledger and a local push service: a refused VAPID
identity flagged once and not used again, failure streaks counted, and the hygiene job's two rules with
an injected clock (docs/token-hygiene.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from clarion import errors, metrics
from clarion.app_tenant import service as apps
from clarion.config import Settings
from clarion.db import Database, utcnow
from clarion.delivery.service import Deliverer
from clarion.event import service as event_service
from clarion.models import App, AppEvent, Campaign, Delivery, Subscriber
from clarion.subscriber import service as subscriber_service
from clarion.subscriber import tasks as hygiene
from tests.conftest import make_settings
from tests.delivery.test_recorder import OWNER, _deliverer, _web_ledger
from tests.fakes.push_service import FakePushService, Respond
from tests.helpers import create_app, update_app, web_subscriber_row

BAD_JWT = Respond(403, body='{"reason":"BadJwtToken"}')


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


@pytest.fixture
def settings(database_url: str) -> Settings:
    # A retry's back-off outlasts the campaign's hour: a 503 ends the row `expired` at once.
    return make_settings(database_url, retry_base_s=10_000.0, retry_max_s=10_000.0)


def _refusals() -> float:
    return metrics.CREDENTIALS_REJECTED.labels("webpush")._value.get()


async def _statuses(db: Database, campaign_id: int) -> list[tuple[str, str | None]]:
    async with db.session() as session:
        query = select(Delivery.status, Delivery.last_error).where(Delivery.campaign_id == campaign_id)
        return [(str(s), e) for s, e in (await session.execute(query.order_by(Delivery.id))).all()]


async def _app_flags(db: Database, app_id: int) -> tuple[object, ...]:
    async with db.session() as session:
        app = await session.get(App, app_id)
        assert app is not None
        return app.vapid_failing_since, app.vapid_failing_origin, app.vapid_failing_reason


async def test_a_refused_vapid_identity_is_flagged_once_and_not_used_again(
    settings: Settings, db: Database, fake: FakePushService
) -> None:
    first, subs = await _web_ledger(db, settings, fake, 3)
    for sub_id in subs:
        fake.script(sub_id, [BAD_JWT])
    before = _refusals()
    deliverer: Deliverer = _deliverer(settings, db)
    try:
        await deliverer.run(first.campaign_id, first.delivery_ids, OWNER)
        async with db.session() as session:
            query = select(Campaign.app_id).where(Campaign.id == first.campaign_id)
            app_id = (await session.execute(query)).scalar_one()
        flagged = await _app_flags(db, app_id)
        # The rows due again (as another job of the campaign): nothing is sent with the refused identity.
        sent_before = len(fake.requests)
        async with db.session() as session:
            await session.execute(
                update(Delivery).where(Delivery.campaign_id == first.campaign_id).values(status="pending")
            )
        await deliverer.run(first.campaign_id, first.delivery_ids, OWNER)
        again = await _statuses(db, first.campaign_id)
        sent_after = len(fake.requests)
    finally:
        await deliverer.close()

    origin = fake.origin
    reason = 'channel: HTTP 403: {"reason":"BadJwtToken"}'
    assert flagged[1:] == (origin, reason)
    assert flagged[0] is not None
    assert _refusals() - before == 1  # once, not per message
    not_sent = (
        f"channel: not sent, the app's VAPID credentials at {origin} were refused ({reason}); "
        "replace them to send again"
    )
    assert again == [("rejected", not_sent)] * 3
    assert sent_after == sent_before
    # A new subject clears the flag.
    async with db.session() as session:
        app_key = (await session.execute(select(App.app_key).where(App.id == app_id))).scalar_one()
    await update_app(settings, app_key, vapid_subject="mailto:push@news.clarion.dev")
    assert (await _app_flags(db, app_id)) == (None, None, None)


async def test_campaigns_in_a_row_not_reached_are_counted_and_one_sent_resets_them(
    settings: Settings, db: Database, fake: FakePushService
) -> None:
    ledger, subs = await _web_ledger(db, settings, fake, 2)
    fake.script(subs[0], [Respond(201)])
    # The first subscriber missed three campaigns in a row before this one reaches it.
    async with db.session() as session:
        first = select(Delivery.subscriber_id).where(Delivery.id == ledger.delivery_ids[0])
        await session.execute(
            update(Subscriber).where(Subscriber.id == first.scalar_subquery()).values(failure_streak=3)
        )
    deliverer = _deliverer(settings, db)
    try:
        # The second subscriber's push service fails; the back-off outlasts the TTL: `expired`.
        fake.script(subs[1], [Respond(503)])
        await deliverer.run(ledger.campaign_id, ledger.delivery_ids, OWNER)
    finally:
        await deliverer.close()
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Subscriber.failure_streak)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.campaign_id == ledger.campaign_id)
                .order_by(Delivery.id)
            )
        ).all()
        statuses = await _statuses(db, ledger.campaign_id)
    assert [s for s, _ in statuses] == ["sent", "expired"]
    assert [r[0] for r in rows] == [0, 1]


async def test_the_hygiene_job_deactivates_streaks_and_inactive_android_devices_by_an_injected_clock(
    settings: Settings, db: Database, fake: FakePushService
) -> None:
    ledger, _ = await _web_ledger(db, settings, fake, 3)
    now = utcnow()
    async with db.session() as session:
        ids = list(
            (
                await session.execute(
                    select(Delivery.subscriber_id)
                    .where(Delivery.campaign_id == ledger.campaign_id)
                    .order_by(Delivery.id)
                )
            ).scalars()
        )
        await session.execute(update(Subscriber).where(Subscriber.id == ids[0]).values(failure_streak=5))
        await session.execute(update(Subscriber).where(Subscriber.id == ids[1]).values(failure_streak=4))
        # An Android device last registered 200 days ago.
        await session.execute(
            update(Subscriber)
            .where(Subscriber.id == ids[2])
            .values(platform="android", registered_at=now - timedelta(days=200))
        )
        app_id = (
            await session.execute(select(Subscriber.app_id).where(Subscriber.id == ids[0]))
        ).scalar_one()
        await event_service.switch_feed(session, app_id, True)  # so the app records its events
    rules = hygiene.HygieneRules(failure_streak=5, fcm_inactive_days=270)
    before = metrics.SUBSCRIBERS_DEACTIVATED.labels("inactive")._value.get()

    today = await hygiene.run_pass(db, rules, now)
    in_71_days = await hygiene.run_pass(db, rules, now + timedelta(days=71))
    again = await hygiene.run_pass(db, rules, now + timedelta(days=71))

    async with db.session() as session:
        found = (
            await session.execute(
                select(Subscriber.active, Subscriber.deactivated_reason)
                .where(Subscriber.id.in_(ids))
                .order_by(Subscriber.id)
            )
        ).all()
    assert today == {"failures": 1, "inactive": 0}
    assert in_71_days == {"failures": 0, "inactive": 1}
    assert again == {"failures": 0, "inactive": 0}
    assert [tuple(row) for row in found] == [(False, "failures"), (True, None), (False, "inactive")]
    assert metrics.SUBSCRIBERS_DEACTIVATED.labels("inactive")._value.get() - before == 1
    off = await hygiene.run_pass(db, hygiene.HygieneRules(0, 0), now + timedelta(days=999))
    assert off == {"failures": 0, "inactive": 0}
    # Each deactivation is announced once, in its own transaction (docs/webhooks.md).
    async with db.session() as session:
        announced = (await session.execute(select(AppEvent.type, AppEvent.data).order_by(AppEvent.id))).all()
    assert [tuple(row) for row in announced] == [
        ("subscriber.deactivated", {"subscriber": ids[0], "platform": "web", "reason": "hygiene: failures"}),
        (
            "subscriber.deactivated",
            {"subscriber": ids[2], "platform": "android", "reason": "hygiene: inactive"},
        ),
    ]


async def test_a_placeholder_vapid_subject_is_refused_with_safari_subscribers_and_warned_otherwise(
    settings: Settings, db: Database, fake: FakePushService
) -> None:
    keys = await create_app(settings)
    warning = (
        "vapid_subject: localhost is a placeholder domain; Apple's push service refuses such a subject "
        "(403 BadJwtToken), so Safari subscribers would receive nothing"
    )
    await update_app(settings, keys.app_key, vapid_subject="mailto:admin@localhost")
    async with db.session() as session:
        app = await apps.by_key(session, keys.app_key)
        warned = apps.summary(app)["vapid_subject_warning"]
        sub = fake.new_subscription()
        endpoint = f"https://web.push.apple.com/push/{sub.sub_id}"
        session.add(
            Subscriber(**web_subscriber_row(app.id, "reg-apple", endpoint, sub.p256dh, sub.auth, utcnow()))
        )
    with pytest.raises(errors.InvalidField) as refused:
        await update_app(settings, keys.app_key, vapid_subject="mailto:push@example.com")
    await update_app(settings, keys.app_key, vapid_subject="mailto:push@news.clarion.dev")
    async with db.session() as session:
        app = await apps.by_key(session, keys.app_key)
        real = apps.summary(app)
    assert warned == warning
    assert (refused.value.field, refused.value.message) == (
        "vapid_subject",
        warning.replace("localhost is", "example.com is") + ", and this app has Safari subscribers",
    )
    assert (real["vapid_subject"], real["vapid_subject_warning"], real["vapid_failing"]) == (
        "mailto:push@news.clarion.dev",
        None,
        None,
    )


async def test_a_retired_vapid_key_is_dropped_once_no_active_subscription_uses_it(
    settings: Settings, db: Database, fake: FakePushService
) -> None:
    keys = await create_app(settings)
    sub = fake.new_subscription(application_server_key=keys.vapid_public_key)
    async with db.session() as session:
        app = await apps.by_key(session, keys.app_key)
        row = web_subscriber_row(app.id, "reg-old-key", sub.endpoint, sub.p256dh, sub.auth, utcnow())
        session.add(Subscriber(**row))
    async with db.session() as session:
        app = await apps.by_key(session, keys.app_key)
        rotated = await subscriber_service.rotate_vapid(session, app)
        with pytest.raises(errors.InvalidField) as unknown:
            await apps.vapid_key_id(session, app, "BOgus", "vapid_public_key")
        retired_id = rotated["keys"][1]["key_id"]
        assert await apps.vapid_key_id(session, app, keys.vapid_public_key, "vapid_public_key") == retired_id
        assert await apps.vapid_key_id(session, app, app.vapid_public_key, "vapid_public_key") is None
    kept = await hygiene.drop_retired_vapid_keys(db)
    async with db.session() as session:
        await session.execute(
            update(Subscriber).where(Subscriber.reg_id == "reg-old-key").values(active=False)
        )
    dropped = await hygiene.drop_retired_vapid_keys(db)
    async with db.session() as session:
        after = await apps.vapid_progress(session, await apps.by_key(session, keys.app_key))

    assert (unknown.value.field, unknown.value.message) == (
        "vapid_public_key",
        "vapid_public_key: not one of this app's VAPID keys",
    )
    assert [(k["public_key"], k["current"], k["subscribers"]) for k in rotated["keys"]] == [
        (rotated["keys"][0]["public_key"], True, 0),
        (keys.vapid_public_key, False, 1),
    ]
    assert (kept, dropped) == (0, 1)
    assert [k["current"] for k in after["keys"]] == [True]
