"""`GET /metrics` of `clarion serve`, and the HTTP API's request metrics (an ASGI middleware).

Besides the process's own metrics (clarion.metrics), a scrape reads the deployment's state from the
database: campaigns by status, the ledger's backlog and the event outbox's. They describe every
process at once, so only `serve` exports them (a worker's /metrics has its own process's counters only).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clarion import errors, metrics
from clarion.campaign.repository import CampaignRepository
from clarion.db import as_utc, utcnow
from clarion.delivery.repository import LedgerRepository
from clarion.event import service as events
from clarion.models import CampaignStatus
from clarion.runtime import Runtime, RuntimeDep

router = APIRouter(tags=["Operations"])
METRICS_UNAUTHORIZED = "A valid CLARION_METRICS_TOKEN bearer token is required"
# Methods counted by name; anything else a client sends counts as OTHER (labels stay few).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def scrape(request: Request, rt: RuntimeDep) -> Response:
    token = rt.settings.metrics_token
    expected = token.get_secret_value() if token is not None else None
    if not metrics.token_accepted(expected, request.headers.get("authorization")):
        raise errors.Unauthorized(METRICS_UNAUTHORIZED)
    body = metrics.render(await _deployment(rt))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def _deployment(rt: Runtime) -> list[Metric]:
    """Gauges read from the database at scrape time; none when it does not answer (the scrape still
    shows the process's own metrics, and `clarion_up`-style alerts come from /readyz)."""
    now = utcnow()
    try:
        async with rt.db.session() as session:
            by_status = await CampaignRepository(session).count_by_status()
            pending, oldest_due = await LedgerRepository(session).backlog(now)
            outbox = await events.outbox(session)
    except Exception:  # a scrape during an outage: the outage is logged and alerted elsewhere
        return []
    return [*_families(by_status, pending, oldest_due, now), *_outbox(outbox, now)]


def _outbox(outbox: tuple[int, datetime | None], now: datetime) -> Iterator[Metric]:
    depth, oldest = outbox
    yield GaugeMetricFamily(
        "clarion_outbox_depth",
        "Events recorded and not yet delivered to an enabled webhook endpoint (once per endpoint)",
        value=depth,
    )
    age_s = 0.0 if oldest is None else max(0.0, (now - as_utc(oldest)).total_seconds())
    yield GaugeMetricFamily(
        "clarion_outbox_oldest_age_seconds",
        "Age of the oldest event not yet delivered to an enabled webhook endpoint (0: none waits)",
        value=age_s,
    )


def _families(
    by_status: dict[str, int], pending: int, oldest_due: datetime | None, now: datetime
) -> Iterator[Metric]:
    campaigns = GaugeMetricFamily("clarion_campaigns", "Campaigns by status", labels=["status"])
    for status in CampaignStatus:
        campaigns.add_metric([status.value], by_status.get(status.value, 0))
    yield campaigns
    yield GaugeMetricFamily(
        "clarion_deliveries_pending",
        "Ledger rows not yet in a final state (queued, in flight or waiting to retry)",
        value=pending,
    )
    age_s = 0.0 if oldest_due is None else max(0.0, (now - as_utc(oldest_due)).total_seconds())
    yield GaugeMetricFamily(
        "clarion_deliveries_oldest_due_age_seconds",
        "How long the longest-waiting due delivery has been due (0: nothing due waits)",
        value=age_s,
    )


class HttpMetrics:
    """Counts each HTTP request by method, route template (`/api/v3/messages/{message_id}`, never the
    raw path with its ids) and status, and times it. Requests no route matched count as `unmatched`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before starting a response

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)
