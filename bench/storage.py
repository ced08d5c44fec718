"""Fresh storage for a run: a SQLite file or a new PostgreSQL database plus a flushed Redis database.

Subscribers are bulk-inserted straight into the subscribers table (as tests/e2e does): registering
100,000 of them one by one through the API would measure registration, not delivery.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clarion.provider.webpush import b64url_encode

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
INSERT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class WebSubscription:
    endpoint: str
    p256dh: str
    auth: str

    def to_json(self) -> dict[str, object]:
        """The browser's PushSubscription.toJSON() shape, as pywebpush takes it."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


def make_subscriptions(count: int, origin: str) -> list[WebSubscription]:
    """Browser-like subscriptions: a fresh P-256 key and a 16-byte auth secret each (RFC 8291 §3)."""
    subs = []
    for index in range(count):
        public = ec.generate_private_key(ec.SECP256R1()).public_key()
        raw = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        subs.append(
            WebSubscription(f"{origin}/push/{index}", b64url_encode(raw), b64url_encode(os.urandom(16)))
        )
    return subs


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    """The file lives in the run's temporary directory and goes with it."""
    yield f"sqlite:///{directory / 'clarion.db'}"


@contextmanager
def postgres_database(prefix: str = "clarion_bench") -> Iterator[str]:
    """A new database, dropped (connections and all) however the run ends."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{name}").geturl()
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_admin(statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    parts = urlsplit(POSTGRES_ADMIN_URL)
    connection = await asyncpg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username,
        password=parts.password,
        database=parts.path.lstrip("/"),
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def flushed_redis() -> Iterator[str]:
    """The benchmark's Redis database, empty before the run and after it."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


def bulk_subscribe(
    database_url: str, app_key: str, subs: Sequence[WebSubscription], *, analyze: bool = True
) -> None:
    devices = [Device("web", sub.endpoint, sub.p256dh, sub.auth) for sub in subs]
    asyncio.run(_bulk_insert(database_url, app_key, devices, analyze))


@dataclass(frozen=True, slots=True)
class Device:
    """One subscriber row: a platform and its address (Web Push keys for `web`)."""

    platform: str
    address: str
    p256dh: str | None = None
    auth: str | None = None


def bulk_devices(database_url: str, app_key: str, devices: Sequence[Device]) -> None:
    """Native devices (FCM registration tokens, APNs device tokens) as the SDKs register them."""
    asyncio.run(_bulk_insert(database_url, app_key, devices, analyze=True))


async def _bulk_insert(database_url: str, app_key: str, devices: Sequence[Device], analyze: bool) -> None:
    from sqlalchemy import insert, select, text

    from clarion.db import Database, utcnow
    from clarion.models import App, Subscriber
    from clarion.subscriber.service import address_hash

    db = Database(database_url, pool_size=1)
    try:
        async with db.session() as session:
            app_id = (await session.execute(select(App.id).where(App.app_key == app_key))).scalar_one()
        now = utcnow()
        for start in range(0, len(devices), INSERT_BATCH):
            rows = [
                {
                    "app_id": app_id,
                    "reg_id": f"bench-{app_id}-{start + offset}",
                    "platform": device.platform,
                    "address": device.address,
                    "address_hash": address_hash(device.address),
                    "p256dh": device.p256dh,
                    "auth": device.auth,
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                    "registered_at": now,
                }
                for offset, device in enumerate(devices[start : start + INSERT_BATCH])
            ]
            async with db.session() as session:
                await session.execute(insert(Subscriber), rows)
        if analyze and not database_url.startswith("sqlite"):
            # A table filled over time has planner statistics (autovacuum); one bulk-loaded a second
            # ago has none, and PostgreSQL then plans the audience query badly (see README).
            async with db.session() as session:
                await session.execute(text("ANALYZE subscribers"))
    finally:
        await db.dispose()


@dataclass(frozen=True, slots=True)
class SentCampaign:
    """What Clarion encrypted for every recipient, read back from its own storage."""

    payload: bytes
    ttl_s: int
    vapid_private_pem: str
    vapid_public_key: str


def sent_campaign(database_url: str, secret_key: str, campaign_id: int) -> SentCampaign:
    async def load() -> SentCampaign:
        from clarion.composition import open_database
        from clarion.config import Settings
        from clarion.delivery.context import load

        settings = Settings(database_url=database_url, secret_key=secret_key)
        db = open_database(settings, pool_size=1)
        try:
            async with db.session() as session:
                context = await load(session, campaign_id)
        finally:
            await db.dispose()
        assert context is not None, f"campaign {campaign_id} is gone"
        return SentCampaign(
            context.payload, context.ttl_s, context.vapid_private_pem, context.vapid_public_key
        )

    return asyncio.run(load())
