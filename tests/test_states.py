"""The state enums against what holds or shows their values: the stored strings (no migration renames
them), the columns the migrations created, the delivery policy's outcomes and the vendor surfaces."""

from __future__ import annotations

import ast
import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy import String, update

import clarion.migrations
from clarion.db import Database
from clarion.delivery import policy
from clarion.models import Batch, BatchStatus, Campaign, CampaignStatus, Delivery, DeliveryStatus
from clarion.provider.outcome import Delivered, Gone, Rejected, Retry
from tests.app_tenant.factory import new_app, push, stats
from tests.app_tenant.fixtures import quiet_api
from tests.conftest import Api

__all__ = ["quiet_api"]  # the fixture, for this module's tests

MIGRATIONS = Path(clarion.migrations.__file__).parent / "versions"

# Exactly what the databases already hold: changing a value here needs a migration of the stored rows.
STORED: dict[type[StrEnum], dict[str, str]] = {
    CampaignStatus: {
        "SCHEDULED": "scheduled",
        "SENDING": "sending",
        "SENT": "sent",
        "FAILED": "failed",
        "CANCELLED": "cancelled",
        "PAUSED": "paused",
    },
    DeliveryStatus: {
        "PENDING": "pending",
        "SENT": "sent",
        "GONE": "gone",
        "REJECTED": "rejected",
        "EXPIRED": "expired",
        "FAILED": "failed",
    },
    BatchStatus: {"ACCEPTED": "accepted", "PROCESSED": "processed"},
}
TABLES: dict[type[StrEnum], str] = {
    CampaignStatus: "campaigns",
    DeliveryStatus: "deliveries",
    BatchStatus: "batches",
}


def test_each_state_keeps_its_stored_string() -> None:
    for states, stored in STORED.items():
        assert {state.name: state.value for state in states} == stored, states.__name__


def _migrated_status_lengths() -> dict[str, int]:
    """The length of each table's `status` column as the migrations create it (String(length=N))."""
    lengths: dict[str, int] = {}
    for path in sorted(MIGRATIONS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            assert not (node.func.attr == "alter_column" and "status" in ast.unparse(node)), (
                f"{path.name} alters a status column: check the enums against it"
            )
            if node.func.attr != "create_table" or not isinstance(node.args[0], ast.Constant):
                continue
            for column in node.args[1:]:
                text = ast.unparse(column)
                if text.startswith("sa.Column('status', sa.String(length="):
                    lengths[str(node.args[0].value)] = int(text.split("length=")[1].split(")")[0])
    return lengths


def test_every_value_fits_its_column_in_the_migrations_and_the_models() -> None:
    migrated = _migrated_status_lengths()
    models = {"campaigns": Campaign, "deliveries": Delivery, "batches": Batch}
    for states, table in TABLES.items():
        column_type = models[table].__table__.c.status.type
        assert isinstance(column_type, String)
        assert column_type.length == migrated[table]
        assert all(len(state.value) <= migrated[table] for state in states), table


def test_the_policy_ends_a_row_in_every_final_state_and_only_those() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later, soon = now + timedelta(days=1), now + timedelta(seconds=0.001)
    rules = {"base_s": 1.0, "max_s": 60.0}
    decisions = [
        policy.decide(Delivered(201), attempts=1, now=now, expires_at=later, **rules),
        policy.decide(Gone("HTTP 410"), attempts=1, now=now, expires_at=later, **rules),
        policy.decide(Rejected("HTTP 400"), attempts=1, now=now, expires_at=later, **rules),
        policy.decide(Retry("HTTP 503"), attempts=1, now=now, expires_at=soon, **rules),
        policy.decide(Retry("HTTP 503"), attempts=policy.MAX_ATTEMPTS, now=now, expires_at=later, **rules),
    ]
    finals = [d.status for d in decisions if isinstance(d, policy.Final)]
    assert finals == [
        DeliveryStatus.SENT,
        DeliveryStatus.GONE,
        DeliveryStatus.REJECTED,
        DeliveryStatus.EXPIRED,
        DeliveryStatus.FAILED,
    ]
    assert set(finals) == set(DeliveryStatus) - {DeliveryStatus.PENDING}


async def test_the_gravitec_surface_renders_every_campaign_status(quiet_api: Api, db: Database) -> None:
    """The strings GET /api/v3/messages/{id} shows (Gravitec's vocabulary), one per stored status."""
    client = quiet_api.client
    tenant = await new_app(db)
    later = str(time.time_ns() // 1_000_000 + 3_600_000)
    answer = await push(client, tenant, send_date=later)
    assert answer.status_code == 200, answer.text
    campaign_id = answer.json()["id"]
    assert (await stats(client, tenant, campaign_id))["status"] == "SCHEDULED"
    rendered: dict[str, str] = {}
    for status in CampaignStatus:
        async with db.session() as session:
            await session.execute(
                update(Campaign).where(Campaign.id == int(campaign_id)).values(status=status)
            )
        rendered[status.value] = (await stats(client, tenant, campaign_id))["status"]
    assert rendered == {
        "scheduled": "SCHEDULED",
        "sending": "SENDING",
        "sent": "SENT",
        "failed": "FAILED",
        "cancelled": "CANCELLED",
        "paused": "PAUSED",
    }
