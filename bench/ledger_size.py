"""The delivery ledger's bytes per recipient on PostgreSQL (docs/architecture.md, "Ledger retention").

    python -m bench.ledger_size [--n 100000]

A new `clarion_ledger_*` database (dropped at the end) is migrated, N subscribers are bulk-inserted as
bench.delivery does, and one campaign's N ledger rows are added as the fan-out adds them (pending, no
owner). `pg_total_relation_size('deliveries')` (table, TOAST and its three indexes) is divided by N
then, and again once every row has been recorded `sent` and the table vacuumed (the steady state
of a finished campaign that retention will fold).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bench import storage
from clarion.db import Database, utcnow

SIZE = text("SELECT pg_total_relation_size('deliveries'), pg_relation_size('deliveries')")


def _app_with_subscribers(database_url: str, n: int) -> None:
    from bench.delivery import cli
    from clarion.secrets_box import new_key

    env = {"CLARION_DATABASE_URL": database_url, "CLARION_SECRET_KEY": new_key()}
    cli(env, "db", "upgrade")
    app = json.loads(cli(env, "apps", "create", "ledger size", "--plan", "unlimited", "--json"))
    # Subscriptions shaped like a browser's (the ledger does not look at them): no keys to generate.
    origin = "https://fcm.googleapis.com/fcm/send"
    subs = [storage.WebSubscription(f"{origin}/{i:022d}", "B" + "x" * 86, "a" * 22) for i in range(n)]
    storage.bulk_subscribe(database_url, app["app_key"], subs)


async def _ledger(database_url: str) -> list[tuple[str, int, int]]:
    db = Database(database_url, pool_size=1)
    try:
        now = utcnow()
        async with db.session() as session:
            campaign_id = await _campaign(session, now)
            # The fan-out's rows (LedgerRepository.add_page): pending, due now, queued for a while.
            await session.execute(
                text(
                    "INSERT INTO deliveries (campaign_id, subscriber_id, status, attempts, lease_until,"
                    " next_attempt_at, updated_at)"
                    " SELECT :c, id, 'pending', 0, :q, :now, :now FROM subscribers"
                ),
                {"c": campaign_id, "q": now + timedelta(seconds=300), "now": now},
            )
        sizes = [("fanned out (pending)", *await _size(db))]
        async with db.session() as session:
            await session.execute(
                # Recorded sent when the campaign ran: 60 days ago, past the default retention.
                text("UPDATE deliveries SET status='sent', attempts=1, updated_at=:at"),
                {"at": utcnow() - timedelta(days=60)},
            )
        await _vacuum(db, "VACUUM ANALYZE deliveries")
        sizes.append(("sent, after VACUUM", *await _size(db)))
        await _vacuum(db, "VACUUM FULL deliveries")
        sizes.append(("sent, after VACUUM FULL (compacted)", *await _size(db)))
        await _time_folds(db, campaign_id)
        return sizes
    finally:
        await db.dispose()


async def _time_folds(db: Database, campaign_id: int) -> None:
    """Retention's transactions over this ledger: the campaign finished long ago; each one folds
    FOLD_BATCH rows, and how long it holds its locks is how long delivery may wait behind it."""
    from clarion.delivery.tasks import FOLD_BATCH, fold_step

    async with db.session() as session:
        await session.execute(
            text("UPDATE campaigns SET status='sent', finished_at=:at WHERE id=:c"),
            {"at": utcnow() - timedelta(days=60), "c": campaign_id},
        )
    step, durations = fold_step(db, FOLD_BATCH), []
    while True:
        started = time.perf_counter()
        if await step(utcnow() - timedelta(days=30), utcnow()) == 0:
            break
        durations.append(time.perf_counter() - started)
    print(
        f"retention: {len(durations)} transactions of {FOLD_BATCH:,} rows, each "
        f"{1000 * min(durations):.0f}-{1000 * max(durations):.0f} ms (median "
        f"{1000 * statistics.median(durations):.0f} ms)"
    )


async def _vacuum(db: Database, statement: str) -> None:
    async with db.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text(statement))


async def _campaign(session: AsyncSession, now: datetime) -> int:
    row = await session.execute(
        text(
            "INSERT INTO campaigns (app_id, status, send_at, ttl_s, display_time_s, is_transactional,"
            " urgency, payload, audience, created_at, fanout_done, counts_toward_quota)"
            " SELECT id, 'sending', :now, 86400, 0, false, 'normal', '{}', '{\"kind\": \"all\"}', :now, true,"
            " false FROM apps RETURNING id"
        ),
        {"now": now},
    )
    return int(row.scalar_one())


async def _size(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        total, heap = (await session.execute(SIZE)).one()
    return int(total), int(heap)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_size", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="recipients of the campaign")
    args = parser.parse_args(argv)
    with storage.postgres_database("clarion_ledger") as database_url:
        _app_with_subscribers(database_url, args.n)
        sizes = asyncio.run(_ledger(database_url))
    print(
        f"deliveries on PostgreSQL, {args.n:,} rows: bytes per recipient"
        " (table + TOAST + indexes; heap alone)"
    )
    for label, total, heap in sizes:
        print(f"  {label:<40} {total / args.n:7.1f}  ({heap / args.n:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
