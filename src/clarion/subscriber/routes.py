"""Thin handlers for the subscriber API under /sdk/v1: registration, unsubscription, engagement events.

Calls on an existing subscriber carry its proof in the X-Clarion-Subscription-Auth header
(subscriber.proof); registration and events are rate-limited per client and per app (subscriber.limits).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from clarion.app_tenant import service as apps
from clarion.runtime import RuntimeDep, SessionDep
from clarion.subscriber import limits, service
from clarion.subscriber.limits import LimitsDep
from clarion.subscriber.proof import AUTH_HEADER, SubscriptionCredentials
from clarion.subscriber.schemas import EventCreate, Registered, SubscriberCreate
from clarion.validation import openapi_body, parse_json, validate

router = APIRouter(prefix="/sdk/v1", tags=["Subscriber API"])

ProofHeader = Annotated[str | None, Header(alias=AUTH_HEADER)]


# 201 for a new subscriber; 200 for an address the app knows already (docs/sdk.md, "Registering again").
_REGISTERED = {200: {"description": "Registered again: the same regId", "model": Registered}}


@router.post(
    "/subscribers",
    openapi_extra=openapi_body(SubscriberCreate),
    status_code=201,
    response_model=Registered,
    responses=_REGISTERED,  # type: ignore[arg-type]
)
async def register(
    request: Request, rt: RuntimeDep, session: SessionDep, limit: LimitsDep, held: ProofHeader = None
) -> JSONResponse:
    limits.check(limit.register_per_ip, limits.client_key(request))
    body = validate(SubscriberCreate, parse_json(await request.body()))
    app = await apps.by_public_key(session, body.app_key)
    limits.check(limit.register_per_app, str(app.id))
    registration = await service.register(session, app, body, rt.settings.push_host_set(), held)
    return JSONResponse({"regId": registration.reg_id}, status_code=201 if registration.created else 200)


@router.delete("/subscribers/{reg_id}", status_code=204)
async def unsubscribe(
    reg_id: str, app_key: Annotated[str, Query()], session: SessionDep, held: ProofHeader = None
) -> Response:
    await service.unsubscribe(session, SubscriptionCredentials(app_key=app_key, reg_id=reg_id, auth=held))
    return Response(status_code=204)


@router.post("/events", openapi_extra=openapi_body(EventCreate), status_code=204)
async def record_event(
    request: Request, session: SessionDep, limit: LimitsDep, held: ProofHeader = None
) -> Response:
    limits.check(limit.events_per_ip, limits.client_key(request))
    body = validate(EventCreate, parse_json(await request.body()))
    app = await apps.by_public_key(session, body.app_key)
    limits.check(limit.events_per_app, str(app.id))
    await service.record_event(session, app, body, held)
    return Response(status_code=204)
