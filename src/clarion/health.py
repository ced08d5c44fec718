"""/healthz and /readyz: what a load balancer or an orchestrator asks, answered without details.

`/healthz`: the process serves, and its database and queue answer (503 while either does not).
`/readyz`: the same, and the schema is at the migrations this version ships (503 until it is).
Each check is bounded like an API request's database work, so neither hangs with the database. The
driver's text, which can name hosts, users and paths, goes to the log, never to the anonymous caller.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from clarion.migrations import applied_revisions, head_revisions
from clarion.runtime import RuntimeDep

log = logging.getLogger("clarion")
router = APIRouter(tags=["Operations"])


def _unavailable(component: str, state: str = "unreachable") -> JSONResponse:
    return JSONResponse({"status": "unavailable", component: state}, status_code=503)


async def _schema_revisions(rt: RuntimeDep) -> frozenset[str] | None:
    """The schema's applied revisions, or None when the database does not answer."""
    try:
        return await rt.db.inspect(applied_revisions)
    except Exception as exc:  # any failure to reach the database means "not healthy"
        log.warning("health check: database unreachable: %s", exc)
        return None


async def _queue_answers(rt: RuntimeDep) -> bool:
    if rt.queue is None:
        return True
    try:
        return await asyncio.wait_for(rt.queue.ping(), rt.settings.db_timeout_s)
    except TimeoutError:
        log.warning("health check: the queue did not answer within %s s", rt.settings.db_timeout_s)
        return False


async def _check(rt: RuntimeDep, *, ready: bool) -> JSONResponse:
    revisions = await _schema_revisions(rt)
    if revisions is None:
        return _unavailable("database")
    if not await _queue_answers(rt):
        return _unavailable("queue")
    if ready and revisions != head_revisions():
        return _unavailable("migrations", "pending")
    return JSONResponse({"status": "ok"})


@router.get("/healthz")
async def healthz(rt: RuntimeDep) -> JSONResponse:
    return await _check(rt, ready=False)


@router.get("/readyz")
async def readyz(rt: RuntimeDep) -> JSONResponse:
    return await _check(rt, ready=True)
