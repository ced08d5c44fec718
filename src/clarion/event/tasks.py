"""Webhook delivery and event retention, handed to the runner by the composition root.

On every scheduler tick a worker claims endpoints that have events waiting (a conditional update
sets its lease, so any number of workers share them and a dead one's endpoints are taken over when
its lease lapses) and sends each one's next batch beside the scheduler: up to BATCH_EVENTS events,
oldest first, in one signed request. A 2xx moves the endpoint's cursor past the batch; anything else
(an HTTP error, a timeout, a refused address) is tried again after a delay that doubles from
`CLARION_WEBHOOK_RETRY_BASE_S` up to an hour; a batch that has failed for 24 hours is given up (the
cursor moves past it, the endpoint goes on with the next). At least once: a batch whose answer was
lost is sent again, so receivers dedupe by each event's `id`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from clarion import metrics, outage
from clarion.config import Settings
from clarion.db import Database, as_utc, utcnow
from clarion.event import service, signing
from clarion.event.repository import EndpointRepository, EventRepository
from clarion.event.sender import Sender
from clarion.models import WebhookEndpoint
from clarion.queue import Registry

log = logging.getLogger("clarion.webhooks")

# Events per request: a 100,000-recipient campaign is 200 requests per endpoint, not 100,000
# (≈ 250 bytes an event: ≈ 125 KB a request).
BATCH_EVENTS = 500
# Outbox rows read per request (a row of delivery outcomes holds up to 64 events).
BATCH_ROWS = 500
# Endpoints one process sends to at once, and how long it holds each (past the request timeout).
IN_FLIGHT = 16
LEASE_S = 120.0
RETRY_MAX_S = 3600.0
GIVE_UP_AFTER = timedelta(hours=24)
# How often a worker looks for endpoints with events waiting: webhooks arrive within about this.
CLAIM_EVERY_S = 0.5
RETENTION_EVERY_S = 60.0
RETENTION_BATCH = 5000
REASON_CHARS = 255


def backoff_s(attempts: int, base_s: float) -> float:
    """The wait before attempt `attempts + 1`: base, doubled per failure, at most an hour."""
    return float(min(RETRY_MAX_S, base_s * 2 ** min(attempts, 20)))


class WebhookTasks:
    def __init__(
        self, settings: Settings, db: Database, registry: Registry, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry
        self.clock = clock
        self.owner = uuid.uuid4().hex[:12]
        self.sender: Sender | None = None
        self._sending: set[int] = set()
        self._retaining = False

    async def open(self) -> None:
        self.sender = Sender.from_settings(self.settings)

    async def close(self) -> None:
        if self.sender is not None:
            await self.sender.aclose()

    async def reset_leases(self) -> None:
        async with self.db.session() as session:
            await EndpointRepository(session).reset_leases()

    async def _claim(self) -> list[int]:
        room = IN_FLIGHT - len(self._sending)
        if room <= 0:
            return []
        now = self.clock()
        async with self.db.session() as session:
            return await EndpointRepository(session).claim_due(
                now, service.settled(now), self.owner, now + timedelta(seconds=LEASE_S), room
            )

    async def tick(self) -> None:
        """Claim what is due; each endpoint's batch is sent beside the scheduler."""
        for endpoint_id in await self._claim():
            self._sending.add(endpoint_id)
            self.registry.spawn(self._beside(endpoint_id), name=f"webhook-{endpoint_id}")

    async def run_once(self) -> int:
        """Claim and send in place (tests, with an injected clock); how many endpoints were tried."""
        claimed = await self._claim()
        for endpoint_id in claimed:
            await self.send(endpoint_id)
        return len(claimed)

    async def _beside(self, endpoint_id: int) -> None:
        try:
            # A full batch delivered: the next one goes at once, under the same lease.
            while await self.send(endpoint_id):
                pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the lease lapses and another pass tries again
            if outage.unreachable(exc) is None:
                log.exception("webhook endpoint %s: sending failed", endpoint_id)
        finally:
            self._sending.discard(endpoint_id)

    async def send(self, endpoint_id: int) -> bool:
        """The endpoint's next batch: read, signed, posted, and the endpoint's state written back.
        True when a full batch was delivered and the lease kept: more is likely waiting."""
        assert self.sender is not None, "open() first"
        now = self.clock()
        async with self.db.session() as session:
            endpoint = await EndpointRepository(session).held(endpoint_id, self.owner)
            if endpoint is None:
                return False
            batch = await self._batch(EventRepository(session), endpoint, now)
            secrets = service.signing_secrets(session, endpoint, now)
            url, replaying = endpoint.url, endpoint.replay_from is not None
        through, events = batch
        if not events:
            await self._release(endpoint_id, self._moved(through, replaying))
            return False
        body = json.dumps(
            {"type": "event.batch", "timestamp": _iso(now), "data": {"events": events}}, separators=(",", ":")
        )
        msg_id = f"msg_{endpoint_id}_{events[0]['id']}_{events[-1]['id']}"
        answer = await self.sender.post(url, signing.headers(msg_id, now, body, secrets), body.encode())
        if answer.failure is None:
            metrics.webhook_request(endpoint_id, "delivered", len(events))
            full = len(events) >= BATCH_EVENTS
            return await self._release(endpoint_id, self._moved(through, replaying), keep=full) and full
        await self._release(endpoint_id, self._failed(endpoint, through, replaying, answer.failure))
        return False

    async def _batch(
        self, events: EventRepository, endpoint: WebhookEndpoint, now: datetime
    ) -> tuple[int, list[dict[str, Any]]]:
        """(the event id the batch covers through, the events it carries in order).

        The endpoint's filter is applied in SQL; a batch that is not full covers every settled event
        up to now, so the cursor moves past the events the filter skipped too."""
        if endpoint.replay_from is not None:
            start, upto = endpoint.replay_from - 1, endpoint.replay_to
        else:
            start, upto = endpoint.cursor, None
        settled, wanted = service.settled(now), endpoint.event_types
        types = service.stored_types(wanted)
        rows = await events.after(endpoint.app_id, start, settled, BATCH_ROWS, upto, types)
        last, found = await service.bodies(events.session, rows, wanted, BATCH_EVENTS)
        if last is not None and (
            last != rows[-1].id or len(rows) == BATCH_ROWS or (not types and upto is None)
        ):
            through = last  # more rows wait, or nothing was skipped by the filter
        elif upto is not None:
            through = upto  # the replay's range is done once this batch is delivered
        elif types:
            through = await events.last_id(endpoint.app_id, start, settled)
        else:
            through = start
        return through, found

    def _moved(self, through: int, replaying: bool) -> dict[str, Any]:
        done: dict[str, Any] = {"attempts": 0, "failing_since": None, "next_attempt_at": self.clock()}
        if replaying:
            return {**done, **self._replay_past(through)}
        return {**done, "cursor": through}

    def _replay_past(self, through: int) -> dict[str, Any]:
        # The row still holds replay_to; moving replay_from past it ends the replay (see _release).
        return {"replay_from": through + 1}

    def _failed(
        self, endpoint: WebhookEndpoint, through: int, replaying: bool, reason: str
    ) -> dict[str, Any]:
        now = self.clock()
        since = as_utc(endpoint.failing_since) if endpoint.failing_since is not None else now
        metrics.webhook_request(endpoint.id, "failed", 0)
        if now - since >= GIVE_UP_AFTER:
            metrics.webhook_request(endpoint.id, "given_up", 0)
            log.warning("webhook endpoint %s: a batch failing for 24 hours given up: %s", endpoint.id, reason)
            return {**self._moved(through, replaying), "last_error": f"given up: {reason}"[:REASON_CHARS]}
        wait_s = backoff_s(endpoint.attempts, self.settings.webhook_retry_base_s)
        return {
            "attempts": endpoint.attempts + 1,
            "failing_since": since,
            "next_attempt_at": now + timedelta(seconds=wait_s),
            "last_error": reason[:REASON_CHARS],
        }

    async def _release(self, endpoint_id: int, values: dict[str, Any], *, keep: bool = False) -> bool:
        keep_until = self.clock() + timedelta(seconds=LEASE_S) if keep else None
        async with self.db.session() as session:
            repo = EndpointRepository(session)
            if "replay_from" in values:
                endpoint = await repo.held(endpoint_id, self.owner)
                replay_to = None if endpoint is None else endpoint.replay_to
                if replay_to is not None and values["replay_from"] > replay_to:
                    values = {**values, "replay_from": None, "replay_to": None}
            return await repo.release(endpoint_id, self.owner, values, keep_until)

    async def retain(self) -> None:
        """Events past the retention deleted, a batch per transaction, beside the scheduler."""
        if self._retaining:
            return
        self._retaining = True
        self.registry.spawn(self._retain(), name="event retention")

    async def _retain(self) -> None:
        try:
            horizon = self.clock() - timedelta(days=self.settings.event_retention_days)
            while True:
                async with self.db.session() as session:
                    deleted = await EventRepository(session).delete_before(horizon, RETENTION_BATCH)
                if deleted < RETENTION_BATCH:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if outage.unreachable(exc) is None:
                log.exception("event retention: a pass failed; the next one resumes it")
        finally:
            self._retaining = False


def _iso(at: datetime) -> str:
    return as_utc(at).isoformat().replace("+00:00", "Z")


def register(registry: Registry, settings: Settings, db: Database) -> WebhookTasks:
    tasks = WebhookTasks(settings, db, registry)
    registry.on_start(tasks.open)
    registry.on_reset(tasks.reset_leases)
    registry.every("deliver webhooks", tasks.tick, every_s=CLAIM_EVERY_S)
    registry.every("delete events past retention", tasks.retain, every_s=RETENTION_EVERY_S)
    registry.on_stop(tasks.close)
    return tasks
