"""Thin handlers for the subscriber API under /sdk/v1: registration, unsubscription, engagement events."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from clarion.app_tenant import service as apps
from clarion.runtime import RuntimeDep, SessionDep
from clarion.subscriber import service
from clarion.subscriber.schemas import EventCreate, SubscriberCreate
from clarion.validation import parse_json, validate

router = APIRouter(prefix="/sdk/v1", tags=["Subscriber API"])


def _schema(model: type[SubscriberCreate] | type[EventCreate]) -> dict[str, object]:
    return {"requestBody": {"content": {"application/json": {"schema": model.model_json_schema()}}}}


@router.post("/subscribers", openapi_extra=_schema(SubscriberCreate), status_code=201)
async def register(request: Request, rt: RuntimeDep, session: SessionDep) -> JSONResponse:
    body = validate(SubscriberCreate, parse_json(await request.body()))
    app = await apps.by_public_key(session, body.app_key)
    registration = await service.register(session, app, body, rt.settings.push_host_set())
    return JSONResponse({"regId": registration.reg_id}, status_code=201 if registration.created else 200)


@router.delete("/subscribers/{reg_id}", status_code=204)
async def unsubscribe(reg_id: str, app_key: str, session: SessionDep) -> Response:
    app = await apps.by_public_key(session, app_key)
    await service.unsubscribe(session, app, reg_id)
    return Response(status_code=204)


@router.post("/events", openapi_extra=_schema(EventCreate), status_code=204)
async def record_event(request: Request, session: SessionDep) -> Response:
    body = validate(EventCreate, parse_json(await request.body()))
    app = await apps.by_public_key(session, body.app_key)
    await service.record_event(session, app, body)
    return Response(status_code=204)
