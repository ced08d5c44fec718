"""/v1/apps/{app_key}/webhooks and /events: webhook endpoints (secret, rotation, replay) and the
event feed (docs/webhooks.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, Field

from clarion.db import as_utc
from clarion.event import service
from clarion.event.types import EventType
from clarion.models import WebhookEndpoint
from clarion.netpolicy import AddressPolicy
from clarion.runtime import RuntimeDep, SessionDep
from clarion.v1.access import ScopedAppDep
from clarion.v1.body import Body
from clarion.v1.idempotency import OnceDep
from clarion.v1.listing import PageDep, paged
from clarion.v1.pagination import Page
from clarion.validation import PathId

router = APIRouter(prefix="/apps/{app_key}", tags=["Webhooks and events"])

TypeName = Annotated[
    str, Field(description="An event type (docs/webhooks.md)", examples=[EventType.DELIVERY_GONE])
]
# The longest a long-poll of the feed waits for an event.
MAX_WAIT_S = 30.0


class WebhookCreate(Body):
    url: str = Field(
        min_length=1, max_length=service.URL_CHARS, examples=["https://example.com/hooks/clarion"]
    )
    event_types: list[TypeName] = Field(default_factory=list, description="Empty: every type")
    description: str | None = Field(default=None, max_length=255)
    enabled: bool = True


class WebhookUpdate(Body):
    url: str | None = Field(default=None, min_length=1, max_length=service.URL_CHARS)
    event_types: list[TypeName] | None = None
    description: str | None = Field(default=None, max_length=255)
    enabled: bool | None = None


class WebhookRead(BaseModel):
    webhook_id: int
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    created_at: datetime
    failing_since: datetime | None = Field(
        description="Set while requests fail; null when the last one worked"
    )
    last_error: str | None
    next_attempt_at: datetime
    replaying: bool
    secret: str | None = Field(default=None, description="Shown once: on creation and on rotation")


class RotateSecret(Body):
    overlap_s: int = Field(
        default=service.ROTATION_DEFAULT_S, description="How long the previous secret keeps signing too"
    )


class Replay(Body):
    since: AwareDatetime
    until: AwareDatetime


class ReplayRead(BaseModel):
    events: int = Field(description="Events recorded in the range (the endpoint's filter still applies)")


class FeedRead(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str = Field(description="Pass as `after` to read on")


class FeedSwitch(BaseModel):
    enabled: bool


class FeedSwitchBody(Body):
    enabled: bool


def _read(endpoint: WebhookEndpoint, secret: str | None = None) -> WebhookRead:
    failing = endpoint.failing_since
    return WebhookRead(
        webhook_id=endpoint.id,
        url=endpoint.url,
        event_types=endpoint.event_types,
        description=endpoint.description,
        enabled=endpoint.enabled,
        created_at=as_utc(endpoint.created_at),
        failing_since=None if failing is None else as_utc(failing),
        last_error=endpoint.last_error if failing is not None else None,
        next_attempt_at=as_utc(endpoint.next_attempt_at),
        replaying=endpoint.replay_from is not None,
        secret=secret,
    )


def _policy(rt: RuntimeDep) -> AddressPolicy:
    return AddressPolicy.from_settings(rt.settings.outbound_allow)


@router.post("/webhooks", status_code=201, response_model=WebhookRead)
async def create_webhook(
    body: WebhookCreate, app: ScopedAppDep, session: SessionDep, rt: RuntimeDep, once: OnceDep
) -> JSONResponse:
    """A new endpoint; it receives the events recorded from now on. Its secret is in this answer only."""
    created = await service.create_endpoint(
        session, app.id, body.url, body.event_types, body.description, body.enabled, _policy(rt)
    )
    return await once.record(201, _read(created.endpoint, created.secret))


@router.get("/webhooks")
async def list_webhooks(app: ScopedAppDep, session: SessionDep, asked: PageDep) -> Page[WebhookRead]:
    found = await service.endpoints(session, app.id, asked.after or None, asked.fetch)
    return paged(found, asked, lambda endpoint: endpoint.id, _read)


@router.get("/webhooks/{webhook_id}")
async def show_webhook(webhook_id: PathId, app: ScopedAppDep, session: SessionDep) -> WebhookRead:
    return _read(await service.get_endpoint(session, app.id, webhook_id))


@router.patch("/webhooks/{webhook_id}")
async def update_webhook(
    webhook_id: PathId, body: WebhookUpdate, app: ScopedAppDep, session: SessionDep, rt: RuntimeDep
) -> WebhookRead:
    changes = body.model_dump(exclude_unset=True)
    return _read(await service.update_endpoint(session, app.id, webhook_id, changes, _policy(rt)))


@router.delete("/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: PathId, app: ScopedAppDep, session: SessionDep) -> Response:
    await service.delete_endpoint(session, app.id, webhook_id)
    return Response(status_code=204)


@router.post("/webhooks/{webhook_id}/rotate-secret")
async def rotate_webhook_secret(
    webhook_id: PathId, body: RotateSecret, app: ScopedAppDep, session: SessionDep
) -> WebhookRead:
    """A new secret, shown once; the previous one signs beside it for `overlap_s` seconds."""
    endpoint, secret = await service.rotate_secret(session, app.id, webhook_id, body.overlap_s)
    return _read(endpoint, secret)


@router.post("/webhooks/{webhook_id}/replay", status_code=202)
async def replay_webhook(
    webhook_id: PathId, body: Replay, app: ScopedAppDep, session: SessionDep
) -> ReplayRead:
    """Send the events of [since, until) again, in order, before the endpoint's live events."""
    count = await service.replay(session, app.id, webhook_id, as_utc(body.since), as_utc(body.until))
    return ReplayRead(events=count)


@router.get("/events")
async def read_events(
    app: ScopedAppDep,
    rt: RuntimeDep,
    after: Annotated[str | None, Query(description="The `next_cursor` of the last page")] = None,
    limit: Annotated[int, Query(ge=1, le=service.FEED_MAX_PAGE)] = service.FEED_PAGE,
    wait_s: Annotated[float, Query(ge=0, le=MAX_WAIT_S, description="Long-poll: wait this long for one")] = 0,
) -> FeedRead:
    """The app's events after the cursor, oldest first (the order webhooks get them in)."""
    page = await service.poll(rt.db, app.id, service.parse_cursor(after), limit, wait_s)
    return FeedRead(items=page.events, next_cursor=page.next_cursor)


@router.get("/events/feed")
async def show_event_feed(app: ScopedAppDep, session: SessionDep) -> FeedSwitch:
    return FeedSwitch(enabled=await service.feed_on(session, app.id))


@router.put("/events/feed")
async def switch_event_feed(body: FeedSwitchBody, app: ScopedAppDep, session: SessionDep) -> FeedSwitch:
    """On: the app records events even with no webhook endpoint (for the feed)."""
    await service.switch_feed(session, app.id, body.enabled)
    return FeedSwitch(enabled=body.enabled)
