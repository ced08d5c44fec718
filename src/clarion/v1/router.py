"""The /v1 router: every resource's router, mounted under one prefix."""

from __future__ import annotations

from fastapi import APIRouter

from clarion.v1 import apps, campaigns, credentials, push_campaigns, segments, subscribers

router = APIRouter(prefix="/v1")
router.include_router(apps.router)
router.include_router(campaigns.router)
router.include_router(credentials.router)
router.include_router(subscribers.router)
router.include_router(segments.router)
router.include_router(push_campaigns.router)
