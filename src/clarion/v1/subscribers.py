"""/v1/apps/{app_key}/subscribers: list and filter, show, deactivate, delete, export and import.

A subscriber is shown with its endpoint's host only: its address and keys leave Clarion only in an
export, which is what moving to another system needs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from clarion.config import Settings
from clarion.models import App
from clarion.runtime import RuntimeDep, SessionDep
from clarion.subscriber import service, transfer
from clarion.subscriber.schemas import SubscriberFilter
from clarion.v1.access import ScopedAppDep
from clarion.v1.body import Body
from clarion.v1.listing import PageDep, paged
from clarion.v1.pagination import Page

router = APIRouter(prefix="/apps/{app_key}/subscribers", tags=["Subscribers"])

Platform = Literal["web", "android", "ios", "adm", "wns"]
Format = Literal["ndjson", "csv"]
# Text PostgreSQL can store (no NUL), at most a tag's or an alias' length.
Name = Annotated[str | None, Query(min_length=1, max_length=255, pattern=r"^[^\x00]*$")]


class SubscriberRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "x1Yf3…",
                    "platform": "web",
                    "active": True,
                    "endpoint_host": "fcm.googleapis.com",
                    "tags": ["news", "sport"],
                    "alias": "customer-42",
                    "user_id": None,
                    "external_user_id": "42",
                    "created_at": "2026-01-01T00:00:00+00:00",
                    "last_seen_at": "2026-01-02T00:00:00+00:00",
                }
            ]
        }
    )

    id: str
    platform: str
    active: bool
    endpoint_host: str | None
    tags: list[str]
    alias: str | None
    user_id: str | None
    external_user_id: str | None
    timezone: str | None = Field(description="IANA time zone the device recorded (local-time campaigns)")
    created_at: datetime
    last_seen_at: datetime


class RefusalRead(BaseModel):
    line: int
    field: str
    reason: str


class ImportRead(BaseModel):
    """What an import did: lines read, subscribers created or already known, lines refused (the
    first 1,000 with their reasons; past those only counted)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "lines": 3,
                    "created": 1,
                    "existing": 1,
                    "refused": 1,
                    "refusals": [
                        {
                            "line": 3,
                            "field": "endpoint",
                            "reason": "endpoint host x.example is not a push service",
                        }
                    ],
                    "refusals_left_off": 0,
                }
            ]
        }
    )

    lines: int
    created: int
    existing: int
    refused: int
    refusals: list[RefusalRead]
    refusals_left_off: int


async def _exported(settings: Settings, app: App, fmt: str, wanted: SubscriberFilter) -> AsyncIterator[bytes]:
    async with transfer.bulk_database(settings) as db:
        async for piece in transfer.export_subscribers(db, app, fmt, wanted):
            yield piece


def _utc(value: datetime | None) -> datetime | None:
    """A time without an offset is UTC (docs/api.md, "Times")."""
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


async def subscriber_filter(
    platform: Platform | None = None,
    active: bool | None = None,
    tag: Name = None,
    alias: Name = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    seen_from: Annotated[datetime | None, Query(description="last registered at or after")] = None,
    seen_to: Annotated[datetime | None, Query(description="last registered before")] = None,
) -> SubscriberFilter:
    times = [_utc(value) for value in (created_from, created_to, seen_from, seen_to)]
    return SubscriberFilter(platform, active, tag, alias, *times)


FilterDep = Annotated[SubscriberFilter, Depends(subscriber_filter)]


def _read(shown: service.Shown) -> SubscriberRead:
    subscriber = shown.subscriber
    return SubscriberRead(
        id=subscriber.reg_id,
        platform=subscriber.platform,
        active=subscriber.active,
        endpoint_host=shown.endpoint_host,
        tags=shown.tags,
        alias=subscriber.alias,
        user_id=subscriber.user_id,
        external_user_id=subscriber.external_user_id,
        timezone=subscriber.timezone,
        created_at=_utc(subscriber.created_at) or subscriber.created_at,
        last_seen_at=shown.last_seen_at,
    )


@router.get("")
async def list_subscribers(
    app: ScopedAppDep, wanted: FilterDep, session: SessionDep, asked: PageDep
) -> Page[SubscriberRead]:
    """The app's subscribers, oldest first, filtered (ranges: from included, to excluded)."""
    found = await service.listing(session, app, wanted, asked.after, asked.fetch)
    return paged(found, asked, lambda shown: shown.subscriber.id, _read)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def export_subscribers(
    app: ScopedAppDep, wanted: FilterDep, rt: RuntimeDep, format: Format = "ndjson"
) -> StreamingResponse:
    """Every subscriber matching the filters, streamed: one JSON object a line, or CSV with a header,
    in the shape the import reads. It carries endpoints, tokens and keys."""
    transfer.check_format(format)
    body = _exported(rt.settings, app, format, wanted)
    headers = {"Content-Disposition": f'attachment; filename="subscribers.{format}"'}
    return StreamingResponse(body, media_type=transfer.MEDIA_TYPES[format], headers=headers)


_UPLOAD = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


@router.post("/import", openapi_extra=_UPLOAD)
async def import_subscribers(
    request: Request, app: ScopedAppDep, rt: RuntimeDep, format: Format | None = None
) -> ImportRead:
    """Import an NDJSON or CSV file (docs/subscribers-import.md), streamed in chunks. Idempotent on
    each endpoint or token: importing a file again creates nothing."""
    chosen = format or ("csv" if request.headers.get("content-type", "").startswith("text/csv") else "ndjson")
    async with transfer.bulk_database(rt.settings) as db:
        hosts = rt.settings.push_host_set()
        report = await transfer.import_subscribers(db, app, request.stream(), chosen, hosts)
    return ImportRead.model_validate(report.as_dict())


@router.get("/{subscriber_id}")
async def show_subscriber(subscriber_id: str, app: ScopedAppDep, session: SessionDep) -> SubscriberRead:
    return _read(await service.show(session, app, subscriber_id))


class AttributesRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"attributes": {"first_name": "Ada"}}]})

    attributes: dict[str, str]


class AttributesIn(Body):
    """Keys to set (strings) or remove (null), merged into what the subscriber holds."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"attributes": {"first_name": "Ada", "plan": None}}]}
    )
    attributes: dict[str, Any]


@router.get("/{subscriber_id}/attributes")
async def subscriber_attributes(subscriber_id: str, app: ScopedAppDep, session: SessionDep) -> AttributesRead:
    subscriber = (await service.show(session, app, subscriber_id)).subscriber
    return AttributesRead(attributes=await service.attributes(session, subscriber))


@router.patch("/{subscriber_id}/attributes")
async def change_subscriber_attributes(
    subscriber_id: str, body: AttributesIn, app: ScopedAppDep, session: SessionDep
) -> AttributesRead:
    """Limits: 64 attributes, keys of 1-64 letters, digits or '_', string values of up to 255
    characters (docs/personalization.md); a refused change names the key and changes nothing."""
    subscriber = (await service.show(session, app, subscriber_id)).subscriber
    return AttributesRead(attributes=await service.change_attributes(session, subscriber, body.attributes))


@router.post("/{subscriber_id}/deactivate")
async def deactivate_subscriber(subscriber_id: str, app: ScopedAppDep, session: SessionDep) -> SubscriberRead:
    """No campaign reaches it any more, until its device registers again."""
    return _read(await service.deactivate(session, app, subscriber_id))


@router.delete("/{subscriber_id}", status_code=204)
async def delete_subscriber(subscriber_id: str, app: ScopedAppDep, session: SessionDep) -> Response:
    """The subscriber with its tags, delivery records and engagement events."""
    await service.delete(session, app, subscriber_id)
    return Response(status_code=204)
