"""create_app(settings): the composition root of the HTTP server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError

from clarion import errors
from clarion.admin.routes import router as admin_router
from clarion.body_limit import BodyLimit
from clarion.composition import background
from clarion.config import Settings
from clarion.db import Database
from clarion.gravitec import render as gravitec_render
from clarion.gravitec.routes import router as gravitec_router
from clarion.migrations import upgrade_on_start
from clarion.queue import connect
from clarion.runtime import Runtime
from clarion.sdk.cors import SdkCors
from clarion.sdk.routes import router as sdk_router
from clarion.subscriber.routes import router as subscriber_router
from clarion.subscriber.self_routes import router as subscriber_self_router
from clarion.swrve import render as swrve_render
from clarion.swrve.routes import router as swrve_router
from clarion.validation import field_path
from clarion.worker.runner import Runner

log = logging.getLogger("clarion")


def error_response(request: Request, error: errors.ClarionError) -> JSONResponse:
    """The one error renderer; each compatible surface renders its vendor's body."""
    path = request.url.path
    headers: dict[str, str] | None = None
    if path.startswith("/api/v3"):
        body = gravitec_render.body(error)
        if error.status == 401:
            headers = {"WWW-Authenticate": 'Basic realm="clarion"'}
    elif path.startswith("/push_batch"):
        body, headers = swrve_render.body(error), swrve_render.headers(error)
    else:
        body = error.as_json()
    return JSONResponse(body, status_code=error.status, headers=headers)


async def _clarion_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.ClarionError)
    return error_response(request, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    loc = tuple(part for part in first.get("loc", ()) if part not in ("query", "path", "body"))
    field = field_path(loc)
    if first.get("type") == "missing":
        error: errors.ClarionError = errors.MissingParameter(f"{field} is required", field=field)
    else:
        error = errors.InvalidField(f"{field}: {first.get('msg')}", field=field)
    return error_response(request, error)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, errors.ClarionError())


def create_app(settings: Settings, *, run_engine: bool | None = None) -> FastAPI:
    """Build the server. The engine runs in-process with the in-process queue unless told otherwise."""
    in_process = settings.queue_url.startswith("memory:") if run_engine is None else run_engine

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await asyncio.to_thread(upgrade_on_start, settings.database_url)
        except (OSError, OperationalError, InterfaceError) as exc:
            # Serve anyway: /healthz answers 503 until the database is back (then restart to migrate).
            log.error("database unreachable, migrations not applied: %s", exc)
        db = Database(settings.database_url)
        rt = Runtime(settings=settings, db=db)
        app.state.runtime = rt
        queue = connect(settings.queue_url, consumer="serve", reclaim_after_s=settings.lease_s)
        rt.queue = queue
        runner: Runner | None = None
        if in_process:
            runner = background(settings, db, queue, rt.scheduler_wakeup)
            await runner.start()
        try:
            yield
        finally:
            if runner is not None:
                await runner.stop()
            await queue.close()
            await db.dispose()

    app = FastAPI(
        title="Clarion",
        version="0.1.0",
        description="Self-hosted push notifications with Gravitec- and Swrve-compatible APIs.",
        lifespan=lifespan,
    )
    app.add_exception_handler(errors.ClarionError, _clarion_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(gravitec_router)
    app.include_router(subscriber_router)
    app.include_router(swrve_router)
    app.include_router(admin_router)
    app.include_router(subscriber_self_router)
    app.include_router(sdk_router)
    # Web SDK calls come from the customers' own sites: CORS for /sdk/v1 only.
    app.add_middleware(SdkCors)
    app.add_middleware(BodyLimit)

    @app.get("/healthz", tags=["Operations"])
    async def healthz(request: Request) -> JSONResponse:
        rt: Runtime = request.app.state.runtime
        try:
            await rt.db.ping()
        except Exception as exc:  # any failure to reach the database means "not healthy"
            # The driver's text can name hosts, users and paths: it goes to the log, not to the caller.
            log.warning("health check: database unreachable: %s", exc)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        if rt.queue is not None and not await rt.queue.ping():
            return JSONResponse({"status": "unavailable", "queue": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app
