"""Thin handlers for the subscriber endpoints a browser calls for itself (docs/sdk.md).

Every route but the app's public description needs `?app_key=`, the regId in the path and the
subscription's auth secret in the X-Clarion-Subscription-Auth header.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Query, Request

from clarion.runtime import RuntimeDep, SessionDep, wake_scheduler_after_commit
from clarion.subscriber import self_service as service
from clarion.subscriber.self_schemas import (
    AliasSet,
    AppInfo,
    AttributeMap,
    AttributesChange,
    Resubscription,
    SubscriberView,
    TagAdd,
    TagList,
    TagsSet,
    TestNotificationCreate,
    TestSent,
)
from clarion.subscriber.self_service import AUTH_HEADER, SubscriptionCredentials
from clarion.validation import openapi_body, parse_json, validate

router = APIRouter(prefix="/sdk/v1", tags=["Subscriber self-service (Web SDK)"])


async def credentials(
    reg_id: str,
    app_key: Annotated[str, Query(min_length=1, max_length=64)],
    auth: Annotated[str | None, Header(alias=AUTH_HEADER)] = None,
) -> SubscriptionCredentials:
    return SubscriptionCredentials(app_key=app_key, reg_id=reg_id, auth=auth)


CredentialsDep = Annotated[SubscriptionCredentials, Depends(credentials)]


@router.get("/apps/{app_key}")
async def app_info(app_key: str, session: SessionDep) -> AppInfo:
    return await service.app_info(session, app_key)


@router.get("/subscribers/{reg_id}")
async def read(creds: CredentialsDep, session: SessionDep) -> SubscriberView:
    return await service.read(session, creds)


@router.put("/subscribers/{reg_id}/alias", openapi_extra=openapi_body(AliasSet))
async def set_alias(request: Request, creds: CredentialsDep, session: SessionDep) -> SubscriberView:
    body = validate(AliasSet, parse_json(await request.body()))
    return await service.set_alias(session, creds, body.alias)


@router.get("/subscribers/{reg_id}/tags")
async def tags(creds: CredentialsDep, session: SessionDep) -> TagList:
    return await service.tags(session, creds)


@router.post("/subscribers/{reg_id}/tags", openapi_extra=openapi_body(TagAdd))
async def add_tag(request: Request, creds: CredentialsDep, session: SessionDep) -> SubscriberView:
    body = validate(TagAdd, parse_json(await request.body()))
    return await service.add_tag(session, creds, body.tag)


@router.put("/subscribers/{reg_id}/tags", openapi_extra=openapi_body(TagsSet))
async def set_tags(request: Request, creds: CredentialsDep, session: SessionDep) -> SubscriberView:
    body = validate(TagsSet, parse_json(await request.body()))
    return await service.set_tags(session, creds, body.tags)


@router.get("/subscribers/{reg_id}/attributes")
async def attributes(creds: CredentialsDep, session: SessionDep) -> AttributeMap:
    return await service.attributes(session, creds)


@router.patch("/subscribers/{reg_id}/attributes", openapi_extra=openapi_body(AttributesChange))
async def change_attributes(request: Request, creds: CredentialsDep, session: SessionDep) -> AttributeMap:
    body = validate(AttributesChange, parse_json(await request.body()))
    return await service.change_attributes(session, creds, body.attributes)


@router.delete("/subscribers/{reg_id}/tags")
async def remove_all_tags(creds: CredentialsDep, session: SessionDep) -> SubscriberView:
    return await service.remove_all_tags(session, creds)


@router.delete("/subscribers/{reg_id}/tags/{tag:path}")
async def remove_tag(tag: str, creds: CredentialsDep, session: SessionDep) -> SubscriberView:
    return await service.remove_tag(session, creds, tag)


@router.post("/subscribers/{reg_id}/resubscribe", openapi_extra=openapi_body(Resubscription))
async def resubscribe(
    request: Request, creds: CredentialsDep, rt: RuntimeDep, session: SessionDep
) -> SubscriberView:
    body = validate(Resubscription, parse_json(await request.body()))
    return await service.resubscribe(session, creds, body, rt.settings.push_host_set())


@router.post(
    "/subscribers/{reg_id}/test", openapi_extra=openapi_body(TestNotificationCreate), status_code=202
)
async def send_test(request: Request, creds: CredentialsDep, session: SessionDep) -> TestSent:
    raw = await request.body()
    body = validate(TestNotificationCreate, parse_json(raw)) if raw.strip() else TestNotificationCreate()
    demo_url = f"{request.base_url}sdk/v1/demo?{urlencode({'appKey': creds.app_key})}"
    campaign = await service.send_test(session, creds, body, demo_url)
    wake_scheduler_after_commit(session)
    return TestSent(campaign_id=str(campaign.id))
