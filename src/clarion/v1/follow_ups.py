"""/v1/apps/{app_key}/campaigns/{id}/update, /retract and /follow-ups: changing a notification after it
was sent (campaign/follow_up.py; docs/follow-ups.md)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from clarion import content
from clarion.campaign import follow_up
from clarion.campaign import service as campaigns
from clarion.db import as_utc
from clarion.gravitec import push_body
from clarion.models import Campaign
from clarion.runtime import SessionDep, wake_scheduler_after_commit
from clarion.v1.access import ScopedAppDep
from clarion.v1.body import Body
from clarion.v1.campaigns import PayloadIn
from clarion.v1.idempotency import OnceDep
from clarion.validation import PathId

router = APIRouter(prefix="/apps/{app_key}/campaigns/{campaign_id}", tags=["Campaigns"])


class UpdateIn(Body):
    """The notification's new content: the same payload rules as a new campaign's."""

    payload: PayloadIn


class FollowUpRead(BaseModel):
    campaign_id: str = Field(description="The follow-up's own id (its delivery is a campaign's)")
    follows: str = Field(description="The campaign it updates or retracts")
    kind: str = Field(description="update or retract")
    status: str
    created_at: datetime
    title: str | None = Field(description="An update's new content; a retraction's is the campaign's")
    message: str
    redirect_url: str | None
    sent: int = Field(description="Recipients it was sent to so far")


class FollowUpList(BaseModel):
    items: list[FollowUpRead]


async def _read(session: SessionDep, row: Campaign) -> FollowUpRead:
    shown = content.decode(row.payload)
    funnel = await campaigns.funnel(session, row)
    return FollowUpRead(
        campaign_id=str(row.id),
        follows=str(row.follows_id),
        kind=str(row.follow_up),
        status=row.status,
        created_at=as_utc(row.created_at),
        title=shown.title,
        message=shown.message,
        redirect_url=shown.url,
        sent=funnel.sent,
    )


@router.post("/update", status_code=202, response_model=FollowUpRead)
async def update_campaign(
    campaign_id: PathId, body: UpdateIn, app: ScopedAppDep, session: SessionDep, once: OnceDep
) -> JSONResponse:
    """Replace the sent notification's content for everyone it reached (where the platform allows)."""
    new = push_body.parse_content({"payload": body.payload.model_dump(exclude_none=True)})
    row = await follow_up.update(session, app, campaign_id, new)
    wake_scheduler_after_commit(session)
    return await once.record(202, await _read(session, row))


@router.post("/retract", status_code=202, response_model=FollowUpRead)
async def retract_campaign(
    campaign_id: PathId, app: ScopedAppDep, session: SessionDep, once: OnceDep
) -> JSONResponse:
    """Close the sent notification for everyone it reached (where the platform allows)."""
    row = await follow_up.retract(session, app, campaign_id)
    wake_scheduler_after_commit(session)
    return await once.record(202, await _read(session, row))


@router.get("/follow-ups")
async def list_follow_ups(campaign_id: PathId, app: ScopedAppDep, session: SessionDep) -> FollowUpList:
    """Every update and retraction of the campaign, oldest first."""
    parent = await campaigns.get(session, app, campaign_id)
    return FollowUpList(items=[await _read(session, row) for row in await follow_up.of(session, parent)])
