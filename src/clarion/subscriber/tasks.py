"""Token hygiene, the subscriber feature's background work: deactivate the devices that will not be
reached again (docs/token-hygiene.md).

Two rules, each configurable and counted: a subscriber that `CLARION_HYGIENE_FAILURE_STREAK` campaigns
in a row could not reach (subscribers.failure_streak, kept by the delivery recorder), and an Android
(FCM) subscriber not registered again for `CLARION_FCM_INACTIVE_DAYS` (FCM expires such tokens itself).
A push service's permanent answers (404/410, UNREGISTERED, ...) deactivate at once, in the recorder;
this job never acts on one transient error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from clarion import metrics
from clarion.app_tenant import service as apps
from clarion.config import Settings
from clarion.db import Database, utcnow
from clarion.event import service as events
from clarion.event.types import EventType
from clarion.queue import Registry
from clarion.subscriber.repository import SubscriberRepository

log = logging.getLogger("clarion.subscriber")

FAILURES = "failures"
INACTIVE = "inactive"
# Subscribers deactivated per transaction (a short write each), and transactions per rule and pass.
BATCH = 1000
BATCHES_PER_PASS = 50
# The platforms with a documented inactivity horizon: Android, through FCM.
INACTIVE_PLATFORM = "android"


@dataclass(frozen=True, slots=True)
class HygieneRules:
    failure_streak: int  # 0: the rule is off
    fcm_inactive_days: int  # 0: the rule is off

    @classmethod
    def from_settings(cls, settings: Settings) -> HygieneRules:
        return cls(settings.hygiene_failure_streak, settings.fcm_inactive_days)


async def subscribers_deactivated(db: Database, ids: list[int], reason: str, now: datetime) -> list[int]:
    """The moment the hygiene job deactivates subscribers for `reason` (FAILURES or INACTIVE): one
    transaction, counted in `clarion_subscribers_deactivated`; returns those it deactivated."""
    async with db.session() as session:
        repo = SubscriberRepository(session)
        owners = await repo.owners(ids)
        done = await repo.retire(ids, reason, now)
        # Each announced in the transaction that deactivates it (docs/webhooks.md).
        announced = [
            (owners[i][0], EventType.SUBSCRIBER_DEACTIVATED, now, _deactivation(i, owners[i][1], reason))
            for i in done
            if i in owners
        ]
        await events.record_many(session, announced)
    if done:
        metrics.subscribers_deactivated(reason, len(done))
    return done


def _deactivation(subscriber_id: int, platform: str, reason: str) -> dict[str, Any]:
    return {events.SUBSCRIBER: subscriber_id, "platform": platform, "reason": f"hygiene: {reason}"}


async def run_pass(db: Database, rules: HygieneRules, now: datetime) -> dict[str, int]:
    """Apply both rules as of `now` (the tests' injected clock); how many each deactivated."""
    counts = {FAILURES: 0, INACTIVE: 0}
    if rules.failure_streak > 0:
        counts[FAILURES] = await _rule(
            db, FAILURES, now, lambda repo: repo.failing_streaks(rules.failure_streak, BATCH)
        )
    if rules.fcm_inactive_days > 0:
        before = now - timedelta(days=rules.fcm_inactive_days)
        counts[INACTIVE] = await _rule(
            db, INACTIVE, now, lambda repo: repo.inactive_since(INACTIVE_PLATFORM, before, BATCH)
        )
    if any(counts.values()):
        log.info(
            "token hygiene: %s subscribers deactivated after failing %s campaigns in a row, %s inactive "
            "for %s days",
            counts[FAILURES],
            rules.failure_streak,
            counts[INACTIVE],
            rules.fcm_inactive_days,
            extra={"deactivated": counts},
        )
    return counts


async def _rule(
    db: Database, reason: str, now: datetime, find: Callable[[SubscriberRepository], Awaitable[list[int]]]
) -> int:
    total = 0
    for _ in range(BATCHES_PER_PASS):
        async with db.session() as session:
            ids = await find(SubscriberRepository(session))
        if not ids:
            break
        total += len(await subscribers_deactivated(db, ids, reason, now))
        if len(ids) < BATCH:
            break
    return total


class Hygiene:
    """The periodic pass, at most every `hygiene_every_s` per process (the runner's `every`)."""

    def __init__(self, settings: Settings, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.rules = HygieneRules.from_settings(settings)
        self.clock = clock

    async def tick(self) -> None:
        await run_pass(self.db, self.rules, self.clock())
        await drop_retired_vapid_keys(self.db)


async def drop_retired_vapid_keys(db: Database) -> int:
    """A VAPID key from before a rotation goes once no active subscription was made with it (its last
    browser re-subscribed with the new key, unsubscribed or went)."""
    async with db.session() as session:
        dropped = await apps.drop_unused_vapid_keys(session)
    if dropped:
        log.info("VAPID key rotation: %s retired keys no subscription uses any more were dropped", dropped)
    return dropped


def register(registry: Registry, settings: Settings, db: Database) -> Hygiene:
    hygiene = Hygiene(settings, db)
    registry.every("token hygiene", hygiene.tick, every_s=settings.hygiene_every_s)
    return hygiene
