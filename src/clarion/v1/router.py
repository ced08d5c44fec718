"""The /v1 router: every resource's router, mounted under one prefix, with the error answers every
operation may give (docs/api-errors.md) described once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute

from clarion.api_docs import ErrorBody
from clarion.v1 import (
    apps,
    campaigns,
    credentials,
    follow_ups,
    hygiene,
    push_campaigns,
    schedules,
    segments,
    subscribers,
    webhooks,
)

_ERRORS = {
    401: "No credentials, or wrong ones",
    403: "An app's credentials on an admin-only operation",
    404: "No such app (or another app's), campaign or credential",
    409: "Idempotency-Key reused with another body, a campaign or schedule that has finished, or a campaign"
    " not sent yet",
    422: "A field is invalid: `field` names it",
    429: "The free plan's quota",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in _ERRORS.items()
}


def operation_id(route: APIRoute) -> str:
    """The handler's name (`create_campaign`): what a generated client calls the operation."""
    return route.name


router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, generate_unique_id_function=operation_id)
router.include_router(apps.router)
router.include_router(campaigns.router)
router.include_router(follow_ups.router)
router.include_router(credentials.router)
router.include_router(subscribers.router)
router.include_router(segments.router)
router.include_router(push_campaigns.router)
router.include_router(schedules.router)
router.include_router(webhooks.router)
router.include_router(hygiene.router)
