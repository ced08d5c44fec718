"""The /v1 router: every resource's router, mounted under one prefix."""

from __future__ import annotations

from fastapi import APIRouter

from clarion.v1 import apps

router = APIRouter(prefix="/v1")
router.include_router(apps.router)
