"""Thin handlers for /api/v3: alias, tag, push and message statistics."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from clarion import errors
from clarion.app_tenant import security
from clarion.app_tenant import service as apps
from clarion.campaign import service as campaigns
from clarion.gravitec import push_body
from clarion.gravitec.schemas import PushBody
from clarion.models import App, CampaignStatus
from clarion.runtime import SessionDep, wake_scheduler_after_commit
from clarion.subscriber import service as subscribers
from clarion.validation import ascii_int, openapi_body, parse_json, storable

router = APIRouter(prefix="/api/v3", tags=["Gravitec v3"])


def _documented(*names: str) -> dict[str, Any]:
    """`openapi_extra` naming the query parameters a handler reads itself (`_param`), as the vendor
    documents them: required strings of 1-255 characters."""
    schema = {"type": "string", "minLength": 1, "maxLength": 255}
    return {"parameters": [{"name": n, "in": "query", "required": True, "schema": schema} for n in names]}


async def authenticated_app(request: Request, session: SessionDep) -> App:
    key, secret = security.basic_credentials(request.headers.get("authorization", ""))
    return await apps.authenticate(session, key, secret)


AppDep = Annotated[App, Depends(authenticated_app)]


async def _param(request: Request, name: str, *, quoted: bool = True) -> str:
    """Parameters come in the query string (the vendor's examples), or else in a JSON body.

    The vendor's 400 text quotes the name on POST alias/tag and not on GET alias; each is kept.
    """
    value = request.query_params.get(name)
    if not value and request.headers.get("content-type", "").startswith("application/json"):
        body = await request.body()
        data: Any = parse_json(body) if body.strip() else {}
        candidate = data.get(name) if isinstance(data, dict) else None
        value = candidate if isinstance(candidate, str) else None
    if value and not storable(value):
        raise errors.InvalidField(f"{name}: must not contain NUL characters", field=name)
    if not value:
        shown = f'"{name}"' if quoted else name
        raise errors.MissingParameter(f"Required String parameter {shown} is not present", field=name)
    return value


@router.post("/alias", openapi_extra=_documented("regId", "name"))
async def set_alias(request: Request, app: AppDep, session: SessionDep) -> dict[str, object]:
    reg_id, name = await _param(request, "regId"), await _param(request, "name")
    await subscribers.set_alias(session, app, reg_id, name)
    return {"success": True, "message": "The alias was successfully added"}


@router.get("/alias", openapi_extra=_documented("regId"))
async def get_alias(request: Request, app: AppDep, session: SessionDep) -> dict[str, str]:
    reg_id = await _param(request, "regId", quoted=False)
    found = await subscribers.find(session, app, reg_id)
    # The vendor's documented bodies spell these booleans as the strings "true" and "false".
    if found is None:
        return {"regIdExists": "false"}
    answer = {
        "regIdExists": "true",
        "aliasExists": "true" if found.alias else "false",
        "isActiveFollower": "true" if found.active else "false",
    }
    if found.alias:
        answer["alias"] = found.alias
    return answer


@router.post("/tag", openapi_extra=_documented("regId", "name"))
async def add_tag(request: Request, app: AppDep, session: SessionDep) -> dict[str, object]:
    reg_id, name = await _param(request, "regId"), await _param(request, "name")
    await subscribers.add_tag(session, app, reg_id, name)
    return {"success": True, "message": "Tag was successfully added"}


@router.delete("/tag", openapi_extra=_documented("regId", "name"))
async def remove_tag(request: Request, app: AppDep, session: SessionDep) -> dict[str, object]:
    reg_id, name = await _param(request, "regId"), await _param(request, "name")
    await subscribers.remove_tag(session, app, reg_id, name)
    return {"success": True, "message": "Tag was successfully deleted"}


@router.post("/push", openapi_extra=openapi_body(PushBody))
async def push(request: Request, app: AppDep, session: SessionDep) -> dict[str, object]:
    spec = push_body.parse(parse_json(await request.body()))
    campaign = await campaigns.create(session, app, spec)
    wake_scheduler_after_commit(session)
    return {
        "id": str(campaign.id),
        "send_date": str((campaign.send_at - push_body.EPOCH) // timedelta(milliseconds=1)),
        "ttl": campaign.ttl_s,
        "display_time": campaign.display_time_s,
        "payload": {"title": spec.content.title},
    }


@router.get("/messages")
@router.get("/messages/")
async def message_without_id(app: AppDep) -> JSONResponse:
    raise errors.MissingParameter('Required parameter "campaignID" is not present', field="campaignID")


@router.get("/messages/{campaign_id}")
async def message_stats(campaign_id: str, app: AppDep, session: SessionDep) -> dict[str, object]:
    numeric_id = ascii_int(campaign_id)
    if numeric_id is None:
        raise errors.UnknownMessage()
    stats = await campaigns.stats(session, app, numeric_id)
    return {
        # The vendor has no pause: a paused campaign is still under way (docs/pacing.md).
        "status": "SENDING" if stats.status == CampaignStatus.PAUSED else stats.status.upper(),
        "send": stats.sent,
        "received": stats.received,
        "clicked": stats.clicked,
        "closed": stats.closed,
    }
