"""A/B variants through the real engine: the split over 10,000 recipients, the holdout that is sent
nothing, each recipient's variant content at the push service, the per-variant funnel and the winner
sent to the rest (its time injected)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from clarion.campaign import variants
from clarion.config import Settings
from clarion.db import Database, utcnow
from clarion.delivery.winner import send_winners
from clarion.models import App, Delivery, Subscriber
from clarion.subscriber.service import address_hash
from tests.conftest import Api, make_settings
from tests.fakes.push_service import FakePushService
from tests.helpers import create_app, subscribe, web_subscriber_row

ADMIN = {"Authorization": "Bearer test-admin-token"}


def variant(title: str) -> dict[str, Any]:
    return {"title": title, "message": f"{title} body", "redirect_url": f"https://example.com/{title}"}


async def wait_for(api: Api, path: str, check: Any, timeout_s: float = 60) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        body: dict[str, Any] = (await api.client.get(path, headers=ADMIN)).json()
        if check(body):
            return body
        assert loop.time() < deadline, body
        await asyncio.sleep(0.1)


class TestSplit:
    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        # Sink: every message is built and encrypted as for real, and no push service is needed.
        return make_settings(database_url, delivery="sink")

    async def test_10000_recipients_split_within_2_percent_and_the_holdout_gets_nothing(
        self, api: Api, db: Database, fake: FakePushService
    ) -> None:
        keys = await create_app(api.settings)
        real = fake.new_subscription()  # one real key pair, so that every message can be encrypted
        now = utcnow()
        async with db.session() as session:
            app_id = (await session.execute(select(App.id).where(App.app_key == keys.app_key))).scalar_one()
            rows = []
            for index in range(10_000):
                endpoint = f"{fake.origin}/push/ab-{index}"
                rows.append(
                    web_subscriber_row(
                        app_id,
                        f"ab-{index}-{address_hash(endpoint)[:20]}",
                        endpoint,
                        real.p256dh,
                        real.auth,
                        now,
                    )
                )
            await session.execute(insert(Subscriber), rows)
        body = {
            "ab_test": {
                "variants": [
                    {"percent": 30, "payload": variant("A")},
                    {"percent": 30, "payload": variant("B")},
                    {"percent": 20, "payload": variant("C")},
                ],
                "holdout_percent": 20,
            }
        }
        created = await api.client.post(f"/v1/apps/{keys.app_key}/campaigns", json=body, headers=ADMIN)
        assert created.status_code == 201, created.text
        campaign_id = created.json()["campaign_id"]
        path = f"/v1/apps/{keys.app_key}/campaigns/{campaign_id}"
        await wait_for(api, path, lambda b: b["status"] == "sent", timeout_s=240)
        groups = (await api.client.get(f"{path}/variants", headers=ADMIN)).json()

        shares = {g["group"]: g["audience"] / 10_000 for g in groups["groups"]}
        wanted = {"1": 0.30, "2": 0.30, "3": 0.20, "holdout": 0.20}
        assert shares.keys() == wanted.keys()
        for group, share in wanted.items():
            assert abs(shares[group] - share) <= 0.02, (group, shares)
        holdout = next(g for g in groups["groups"] if g["group"] == "holdout")
        assert (holdout["sent"], holdout["pending"], holdout["failed"]) == (0, 0, 0)
        assert sum(g["sent"] for g in groups["groups"]) == 10_000 - holdout["audience"]

        async with db.session() as session:
            ledger = (
                await session.execute(
                    select(
                        Delivery.subscriber_id, Delivery.variant, Delivery.status, Delivery.attempts
                    ).where(Delivery.campaign_id == int(campaign_id))
                )
            ).all()
        assert len(ledger) == 10_000
        split = variants.Split((30, 30, 20), 20)
        # Deterministic per (campaign, subscriber): the database's group is the documented function's.
        assert all(v == variants.group(split, int(campaign_id), s, 10) for s, v, _status, _a in ledger)
        held = [(status, attempts) for _s, v, status, attempts in ledger if v == 0]
        assert Counter(held) == Counter({("expired", 0): len(held)})  # never attempted: sent nothing


async def test_each_recipient_gets_its_variant_and_the_rest_gets_the_winner(
    api: Api, db: Database, fake: FakePushService
) -> None:
    keys = await create_app(api.settings)
    subs = [await subscribe(api.client, keys, fake) for _ in range(40)]
    body = {
        "ttl": 7200,
        "ab_test": {
            "variants": [{"percent": 25, "payload": variant("A")}, {"percent": 25, "payload": variant("B")}],
            "holdout_percent": 10,
            "winner_after": 3600,
        },
    }
    created = await api.client.post(f"/v1/apps/{keys.app_key}/campaigns", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["campaign_id"]
    path = f"/v1/apps/{keys.app_key}/campaigns/{campaign_id}"

    def settled(groups: dict[str, Any]) -> bool:
        fanned_out = sum(g["audience"] for g in groups["groups"]) == 40
        return fanned_out and all(g["pending"] == 0 for g in groups["groups"] if g["group"] in ("1", "2"))

    before = await wait_for(api, f"{path}/variants", settled)
    async with db.session() as session:
        query = select(Subscriber.reg_id, Delivery.variant).join(
            Subscriber, Subscriber.id == Delivery.subscriber_id
        )
        groups = dict((await session.execute(query.where(Delivery.campaign_id == int(campaign_id)))).all())
    titles = {
        reg_id: [json.loads(m.payload)["title"] for m in fake.received_for(sub.sub_id)]
        for reg_id, sub in subs
    }
    for reg_id, got in titles.items():
        assert got == {1: ["A"], 2: ["B"]}.get(groups[reg_id], []), (groups[reg_id], got)
    # Everyone who got B clicks it; nobody clicks A: B wins.
    for reg_id, sub in subs:
        if groups[reg_id] == 2:
            event = {"app_key": keys.app_key, "regId": reg_id, "campaign_id": campaign_id, "type": "clicked"}
            answer = await api.client.post(
                "/sdk/v1/events", json=event, headers={"X-Clarion-Subscription-Auth": sub.auth}
            )
            assert answer.status_code == 204, answer.text
    assert await send_winners(db, utcnow() + timedelta(seconds=10)) == 0  # not due yet
    assert await send_winners(db, utcnow() + timedelta(seconds=3601)) == 1
    after = await wait_for(api, path, lambda b: b["status"] == "sent")
    shown = (await api.client.get(f"{path}/variants", headers=ADMIN)).json()
    for reg_id, sub in subs:
        got = [json.loads(m.payload)["title"] for m in fake.received_for(sub.sub_id)]
        assert got == {1: ["A"], 2: ["B"], 0: []}.get(groups[reg_id], ["B"]), (groups[reg_id], got)
    counts = Counter(groups.values())
    by_group = {g["group"]: g for g in shown["groups"]}
    assert (shown["winner"], shown["winner_after"]) == (2, 3600)
    assert {g: (by_group[g]["audience"], by_group[g]["sent"]) for g in by_group} == {
        "1": (counts[1], counts[1]),
        "2": (counts[2], counts[2]),
        "holdout": (counts[0], 0),
        "rest": (counts[10], counts[10]),
    }
    assert (by_group["2"]["clicked"], by_group["2"]["click_rate"]) == (counts[2], 1.0 if counts[2] else 0.0)
    assert before["groups"][-1]["pending"] == counts[10]  # the rest waited for the winner
    assert after["funnel"]["sent"] == counts[1] + counts[2] + counts[10]


@pytest.mark.parametrize(
    ("ab_test", "field", "message"),
    [
        ({"variants": [{"percent": 50, "payload": variant("A")}]}, "ab_test.variants", None),
        (
            {
                "variants": [
                    {"percent": 50, "payload": variant("A")},
                    {"percent": 40, "payload": variant("B")},
                ]
            },
            "ab_test",
            "ab_test: the percents must add up to 100, or winner_after must send the rest",
        ),
        (
            {
                "variants": [
                    {"percent": 50, "payload": variant("A")},
                    {"percent": 50, "payload": variant("B")},
                ],
                "holdout_percent": 10,
            },
            "ab_test",
            "ab_test: the variants' and the holdout's percents add up to more than 100",
        ),
        (
            {
                "variants": [
                    {"percent": 40, "payload": variant("A")},
                    {"percent": 40, "payload": variant("B")},
                ],
                "winner_after": 99_999,
            },
            "ab_test.winner_after",
            "ab_test.winner_after: must be whole seconds, more than 0 and less than the ttl (28800)",
        ),
        (
            {
                "variants": [
                    {"percent": 50, "payload": variant("A")},
                    {"percent": 50, "payload": {**variant("B"), "redirect_url": "ftp://x.example/"}},
                ]
            },
            "ab_test.variants[1].payload.redirect_url",
            None,
        ),
    ],
)
async def test_an_invalid_ab_test_is_refused_naming_the_field(
    api: Api, ab_test: dict[str, Any], field: str, message: str | None
) -> None:
    keys = await create_app(api.settings)
    answer = await api.client.post(
        f"/v1/apps/{keys.app_key}/campaigns", json={"ab_test": ab_test}, headers=ADMIN
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    if message is not None:
        assert answer.json() == {"error": "invalid_field", "message": message, "field": field}
