"""Thin handlers for /admin/v1, every one behind the admin bearer token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from clarion import errors
from clarion.admin.service import check_admin_token
from clarion.campaign import service as campaigns
from clarion.runtime import RuntimeDep, SessionDep
from clarion.swrve import report as swrve
from clarion.validation import PathId


async def require_admin(request: Request, rt: RuntimeDep, session: SessionDep) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise errors.Unauthorized()
    await check_admin_token(session, rt.settings, token.strip())


router = APIRouter(prefix="/admin/v1", tags=["Admin"], dependencies=[Depends(require_admin)])


@router.get("/push-campaigns/{campaign_id}")
async def push_campaign_counters(campaign_id: PathId, session: SessionDep) -> dict[str, Any]:
    return await swrve.counters(session, campaign_id, app=None)  # the admin token sees every app


@router.get("/campaigns/{campaign_id}")
async def campaign(campaign_id: PathId, session: SessionDep) -> dict[str, Any]:
    """A campaign's status, statistics and picture warnings, whichever app it is."""
    return campaigns.shown(await campaigns.stats_of_any(session, campaign_id))
