"""Query plans of a fan-out page for small list audiences, on both databases: a push to a few tokens or
aliases searches subscribers through an index driven by the campaign's targets, instead of walking
every subscriber of the app (a correlated EXISTS cost 43 ms per page at 50,000 subscribers on SQLite).
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from sqlalchemy import insert, text

from clarion.audience import service as audiences
from clarion.campaign.schemas import AudienceSpec
from clarion.db import Database, utcnow
from clarion.models import Campaign, Subscriber
from tests.audience.test_audience import create_campaign, make_app

SUBSCRIBERS = 3000


async def add_many(db: Database, app_id: int) -> None:
    now = utcnow()
    rows = []
    for n in range(SUBSCRIBERS):
        address = f"https://push.example.net/plan/{app_id}/{n}"
        rows.append(
            {
                "app_id": app_id,
                "reg_id": f"plan-{app_id}-{n}",
                "platform": "web",
                "address": address,
                "address_hash": hashlib.sha256(address.encode()).hexdigest(),
                "alias": f"user-{n % 1000}",
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
        )
    async with db.session() as session:
        await session.execute(insert(Subscriber), rows)
        if session.bind.dialect.name == "postgresql":
            await session.execute(text("ANALYZE subscribers"))
            await session.execute(text("ANALYZE campaign_targets"))


async def plan_of(db: Database, app_id: int, spec: AudienceSpec) -> str:
    campaign_id = await create_campaign(db, app_id, spec)
    async with db.session() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        audience = campaign.audience
    condition = audiences.recipients(app_id, campaign_id, audience, ("web", "android"))
    async with db.session() as session:
        dialect = session.bind.dialect
        page = audiences.page(condition, 0, 500)
        sql = page.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN" if dialect.name == "sqlite" else "EXPLAIN"
        rows = (await session.execute(text(f"{explain} {sql}"))).all()
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(
    ("spec", "sqlite_search", "postgres_index"),
    [
        (
            AudienceSpec(kind="tokens", values=("plan-x-7", "nobody")),
            "ix_subscriber_app_reg (app_id=? AND reg_id=?)",
            "Index Scan using ix_subscriber_app_reg on subscribers",
        ),
        (
            AudienceSpec(kind="aliases", values=("user-7",)),
            "ix_subscriber_app_alias (app_id=? AND alias=?)",
            "Index Scan using ix_subscriber_app_alias on subscribers",
        ),
    ],
    ids=["tokens", "aliases"],
)
async def test_a_small_list_audience_is_searched_through_an_index(
    db: Database, spec: AudienceSpec, sqlite_search: str, postgres_index: str
) -> None:
    app_id = await make_app(db)
    await add_many(db, app_id)
    if spec.kind == "tokens":
        spec = dataclasses.replace(spec, values=(f"plan-{app_id}-7", "nobody"))

    plan = await plan_of(db, app_id, spec)

    async with db.session() as session:
        sqlite = session.bind.dialect.name == "sqlite"
    if sqlite:
        assert any(
            line.startswith("SEARCH subscribers") and sqlite_search in line for line in plan.splitlines()
        ), plan
        assert "SCAN subscribers" not in plan, plan
        assert "CORRELATED" not in plan, plan
        assert "ix_subscriber_app_id" not in plan, "not walked in id order over the whole app:\n" + plan
    else:
        assert postgres_index in plan, plan
        assert "Seq Scan on subscribers" not in plan, plan
        assert "ix_subscriber_app_id" not in plan, plan
