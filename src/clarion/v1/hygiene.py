"""/v1/apps/{app_key}/hygiene: the token hygiene rules in force and what they did to the app's
subscribers (docs/token-hygiene.md)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from clarion.runtime import RuntimeDep, SessionDep
from clarion.subscriber import service as subscribers
from clarion.subscriber.tasks import FAILURES, INACTIVE
from clarion.v1.access import ScopedAppDep

router = APIRouter(prefix="/apps/{app_key}/hygiene", tags=["Token hygiene"])


class HygieneRead(BaseModel):
    failure_streak_limit: int = Field(description="Campaigns in a row not reached that deactivate (0: off)")
    fcm_inactive_days: int = Field(description="Days without registering that deactivate an Android device")
    deactivated_for_failures: int
    deactivated_inactive: int
    failing: int = Field(description="Active subscribers with at least one campaign in a row not reached")


@router.get("")
async def show_hygiene(app: ScopedAppDep, session: SessionDep, rt: RuntimeDep) -> HygieneRead:
    counts = await subscribers.hygiene_counts(session, app.id)
    return HygieneRead(
        failure_streak_limit=rt.settings.hygiene_failure_streak,
        fcm_inactive_days=rt.settings.fcm_inactive_days,
        deactivated_for_failures=counts.get(FAILURES, 0),
        deactivated_inactive=counts.get(INACTIVE, 0),
        failing=counts["failing"],
    )
