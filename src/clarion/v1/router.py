"""The /v1 router: every resource's router, mounted under one prefix."""

from __future__ import annotations

from fastapi import APIRouter

from clarion.v1 import apps, campaigns, credentials

router = APIRouter(prefix="/v1")
router.include_router(apps.router)
router.include_router(campaigns.router)
router.include_router(credentials.router)
