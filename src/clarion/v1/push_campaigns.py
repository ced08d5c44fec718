"""/v1/apps/{app_key}/push-campaigns: Swrve-style Push API campaigns, their push_key, their batches
(with the status report `/push_batch` gives) and their delivery and engagement counters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from clarion.db import as_utc
from clarion.models import Batch, PushCampaign
from clarion.runtime import SessionDep
from clarion.swrve import campaigns, report
from clarion.v1.access import ScopedAppDep
from clarion.v1.body import Body
from clarion.v1.idempotency import OnceDep
from clarion.v1.listing import PageDep, paged
from clarion.v1.pagination import Page, encode_cursor
from clarion.validation import PathId

router = APIRouter(prefix="/apps/{app_key}/push-campaigns", tags=["Push API campaigns"])

BatchId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[0-9a-fA-F-]+$")]


class PushCampaignCreate(Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Order updates", "title": "Your order", "platform": "all"}]},
    )

    name: str = Field(min_length=1, max_length=255, pattern=r"^[^\x00]*$")
    message: str | None = Field(default=None, max_length=4000, pattern=r"^[^\x00]*$")
    title: str | None = Field(default=None, max_length=1000, pattern=r"^[^\x00]*$")
    platform: Literal["all", "ios", "android", "adm", "wns", "web"] = "all"


class PushCampaignRead(BaseModel):
    campaign_id: int
    name: str
    message: str | None
    title: str | None
    platform: str
    created_at: datetime


class PushCampaignCreated(PushCampaignRead):
    """The new campaign and its push_key, shown this once (batches are sent with it)."""

    push_key: str


class Counters(BaseModel):
    """Over all its batches: ledger rows by status, and engagement events by type."""

    batches: int
    delivery: dict[str, int]
    engagement: dict[str, int]


class PushCampaignDetail(PushCampaignRead):
    counters: Counters


class PushKeyRotated(BaseModel):
    campaign_id: int
    push_key: str


class BatchRead(BaseModel):
    batch_id: str
    status: str
    total_users: int
    created_at: datetime
    deadline_at: datetime


def _read(campaign: PushCampaign) -> PushCampaignRead:
    return PushCampaignRead(
        campaign_id=campaign.id,
        name=campaign.name,
        message=campaign.message,
        title=campaign.title,
        platform=campaign.platform,
        created_at=as_utc(campaign.created_at),
    )


def _batch(batch: Batch) -> BatchRead:
    return BatchRead(
        batch_id=batch.id,
        status=batch.status,
        total_users=batch.total_users,
        created_at=as_utc(batch.created_at),
        deadline_at=as_utc(batch.deadline_at),
    )


@router.post("", status_code=201, response_model=PushCampaignCreated)
async def create_push_campaign(
    body: PushCampaignCreate, app: ScopedAppDep, session: SessionDep, once: OnceDep
) -> JSONResponse:
    campaign_id, push_key = await campaigns.create_push_campaign(
        session, app.app_key, body.name, body.message, body.title, body.platform
    )
    campaign = await campaigns.get_push_campaign(session, app, campaign_id)
    return await once.record(201, PushCampaignCreated(**_read(campaign).model_dump(), push_key=push_key))


@router.get("")
async def list_push_campaigns(
    app: ScopedAppDep, session: SessionDep, asked: PageDep
) -> Page[PushCampaignRead]:
    found = await campaigns.push_campaigns(session, app, asked.after, asked.fetch)
    return paged(found, asked, lambda campaign: campaign.id, _read)


@router.get("/{campaign_id}")
async def show_push_campaign(
    campaign_id: PathId, app: ScopedAppDep, session: SessionDep
) -> PushCampaignDetail:
    campaign = await campaigns.get_push_campaign(session, app, campaign_id)
    counted = await report.counters(session, campaign.id, app=app)
    counters = Counters(
        batches=counted["batches"], delivery=counted["delivery"], engagement=counted["engagement"]
    )
    return PushCampaignDetail(**_read(campaign).model_dump(), counters=counters)


@router.post("/{campaign_id}/rotate-push-key")
async def rotate_push_key(campaign_id: PathId, app: ScopedAppDep, session: SessionDep) -> PushKeyRotated:
    """A new push_key, shown this once; batches sent with the old one are refused from now on."""
    return PushKeyRotated(
        campaign_id=campaign_id, push_key=await campaigns.rotate_push_key(session, app, campaign_id)
    )


@router.delete("/{campaign_id}", status_code=204)
async def delete_push_campaign(campaign_id: PathId, app: ScopedAppDep, session: SessionDep) -> Response:
    """The campaign with its batches, their deliveries and their statistics."""
    await campaigns.delete_push_campaign(session, app, campaign_id)
    return Response(status_code=204)


@router.get("/{campaign_id}/batches")
async def list_batches(
    campaign_id: PathId, app: ScopedAppDep, session: SessionDep, asked: PageDep
) -> Page[BatchRead]:
    """Its batches, newest first (the cursor carries a position: a batch id is a UUID)."""
    found = await campaigns.batches(session, app, campaign_id, asked.after, asked.fetch)
    next_cursor = encode_cursor(asked.after + asked.limit) if len(found) > asked.limit else None
    return Page(items=[_batch(batch) for batch in found[: asked.limit]], next_cursor=next_cursor)


@router.get("/{campaign_id}/batches/{batch_id}")
async def batch_status(
    campaign_id: PathId, batch_id: BatchId, app: ScopedAppDep, session: SessionDep
) -> dict[str, Any]:
    """The batch's status report, as `GET /push_batch?batch_id=` gives it (spec/swrve-batch-push-api.txt)."""
    batch = await campaigns.batch_of(session, app, campaign_id, batch_id)
    return await report.status(session, batch.id, app=app)
