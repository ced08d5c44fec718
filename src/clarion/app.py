"""create_app(settings): the composition root of the HTTP server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from clarion import errors
from clarion.admin.routes import router as admin_router
from clarion.api_docs import add_docs
from clarion.body_limit import BodyLimit
from clarion.composition import background, open_database
from clarion.config import Settings
from clarion.console import routes as console
from clarion.console.web import error_page as console_error_page
from clarion.db import Database, Timeouts, unreachable
from clarion.gravitec import render as gravitec_render
from clarion.gravitec.routes import router as gravitec_router
from clarion.health import router as health_router
from clarion.migrations import upgrade_on_start
from clarion.pictures.routes import router as pictures_router
from clarion.queue import connect
from clarion.runtime import Runtime
from clarion.sdk.cors import SdkCors
from clarion.sdk.routes import router as sdk_router
from clarion.subscriber.routes import router as subscriber_router
from clarion.subscriber.self_routes import router as subscriber_self_router
from clarion.swrve import render as swrve_render
from clarion.swrve.routes import router as swrve_router
from clarion.telemetry import HttpMetrics
from clarion.telemetry import router as telemetry_router
from clarion.v1.idempotency import Replay
from clarion.v1.router import router as v1_router
from clarion.validation import field_path
from clarion.worker.runner import Runner

log = logging.getLogger("clarion")


def error_response(request: Request, error: errors.ClarionError) -> Response:
    """The one error renderer; each compatible surface renders its vendor's body."""
    path = request.url.path
    headers: dict[str, str] = {}
    retry_after_s = getattr(error, "retry_after_s", None)
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    if path.startswith("/api/v3"):
        body = gravitec_render.body(error)
        if error.status == 401:  # no credentials at all: the challenge says which scheme to use
            headers["WWW-Authenticate"] = 'Basic realm="clarion"'
    elif path.startswith("/console/"):
        page = console_error_page(request, error)
        page.headers.update(headers)
        return page
    elif path.startswith("/push_batch"):
        body = swrve_render.body(error)
        headers.update(swrve_render.headers(error) or {})
    else:
        body = error.as_json()
        if path.startswith("/v1") and error.status == 401:
            headers["WWW-Authenticate"] = 'Bearer, Basic realm="clarion"'
    return JSONResponse(body, status_code=error.status, headers=headers or None)


async def _clarion_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ClarionError)
    return error_response(request, exc)


async def _replay(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Replay)
    return exc.response


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no such route) and 405 (no such method on it), in the error shape of
    the surface asked, like every other error; the Allow header of a 405 is kept. FastAPI turns any
    error raised while it reads a JSON body into a 400: one of ours (the body limit's 413) is kept, and
    the 400 of a body it cannot decode gets the surface's shape too."""
    assert isinstance(exc, StarletteHTTPException)
    error: errors.ClarionError
    if isinstance(exc.__cause__, errors.ClarionError):
        return error_response(request, exc.__cause__)
    if exc.status_code == 404:
        error = errors.NotFound()
    elif exc.status_code == 405:
        error = errors.MethodNotAllowed()
    elif exc.status_code == 400:  # FastAPI's: a JSON body that cannot be decoded (not UTF-8)
        error = errors.BadRequest(f"body: {exc.detail}", field="body")
    else:
        return await http_exception_handler(request, exc)
    response = error_response(request, error)
    response.headers.update(exc.headers or {})
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    loc = tuple(part for part in first.get("loc", ()) if part not in ("query", "path", "body"))
    field = field_path(loc)
    if first.get("type") == "missing":
        error: errors.ClarionError = errors.MissingParameter(f"{field} is required", field=field)
    else:
        error = errors.InvalidField(f"{field}: {first.get('msg')}", field=field)
    return error_response(request, error)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request, errors.ClarionError())


def _queue_unreachable_errors() -> tuple[type[Exception], ...]:
    """Redis' errors for a server that cannot be reached or does not answer in time."""
    try:
        import redis.exceptions
    except ImportError:  # the redis extra is not installed: there is no Redis queue
        return ()
    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


async def _backing_failure(request: Request, exc: Exception) -> Response:
    """A database or queue error: 503 (try again) when the service was unreachable or too slow, else
    it is a bug like any other (500, with its traceback)."""
    if not (unreachable(exc) or isinstance(exc, _queue_unreachable_errors())):
        return await _unexpected(request, exc)
    # Expected while a dependency is down, and one per request: one line each, no traceback.
    log.warning(
        "%s %s: answered 503, database or queue unavailable: %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        str(exc).splitlines()[0] if str(exc) else "",
    )
    return error_response(request, errors.ServiceUnavailable())


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client went away before its request was read: nothing to answer, nothing went wrong here."""
    log.info(
        "%s %s: the client disconnected before sending its whole request", request.method, request.url.path
    )
    # 499 (nginx's "client closed request") is what an access log shows; nobody receives it.
    return Response(status_code=499)


def create_app(settings: Settings, *, run_engine: bool | None = None, migrate: bool = True) -> FastAPI:
    """Build the server. The engine runs in-process with the in-process queue unless told otherwise;
    the schema is brought up to date at start unless the caller did it (`migrate=False`)."""
    in_process = settings.queue_url.startswith("memory:") if run_engine is None else run_engine

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if migrate:
                await asyncio.to_thread(upgrade_on_start, settings.database_url)
        except (OSError, OperationalError, InterfaceError) as exc:
            # Serve anyway: /healthz answers 503 until the database is back (then restart to migrate).
            log.error("database unreachable, migrations not applied: %s", exc)
        # Requests and the engine have their own pools: a request's database work is bounded tightly
        # (an answer, even a 503, within about CLARION_DB_TIMEOUT_S), the engine's loosely.
        db = open_database(settings, timeouts=Timeouts.for_requests(settings.db_timeout_s))
        rt = Runtime(settings=settings, db=db)
        app.state.runtime = rt
        queue = connect(settings.queue_url, consumer="serve", reclaim_after_s=settings.delivery_lease_s)
        rt.queue = queue
        engine_db: Database | None = None
        runner: Runner | None = None
        if in_process:
            engine_db = open_database(settings)
            runner = background(settings, engine_db, queue, rt.scheduler_wakeup)
            await runner.start()
        try:
            yield
        finally:
            if runner is not None:
                await runner.stop()
            await queue.close()
            await db.dispose()
            if engine_db is not None:
                await engine_db.dispose()

    app = FastAPI(
        title="Clarion",
        version="0.1.0",
        description="Self-hosted push notifications with Gravitec- and Swrve-compatible APIs.",
        lifespan=lifespan,
        docs_url=None,  # api_docs serves /docs with its own assets
        redoc_url=None,
    )
    app.add_exception_handler(errors.ClarionError, _clarion_error)
    app.add_exception_handler(Replay, _replay)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    # Handled here rather than by the catch-all below, which Starlette re-raises to the server (a
    # second traceback) after answering.
    # Redis' errors only where there is a Redis queue (importing its client costs start-up time).
    queue_errors = () if settings.queue_url.startswith("memory:") else _queue_unreachable_errors()
    for backing in (SQLAlchemyError, OSError, *queue_errors):
        app.add_exception_handler(backing, _backing_failure)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(gravitec_router)
    app.include_router(subscriber_router)
    app.include_router(swrve_router)
    app.include_router(admin_router)
    app.include_router(v1_router)
    app.include_router(subscriber_self_router)
    app.include_router(sdk_router)
    app.include_router(pictures_router)
    app.include_router(health_router)
    app.include_router(telemetry_router)
    console.mount(app)
    add_docs(app)
    # Web SDK calls come from the customers' own sites: CORS for /sdk/v1 only.
    app.add_middleware(SdkCors)
    app.add_middleware(BodyLimit)
    app.add_middleware(HttpMetrics)  # outermost: it sees every answer, the body limit's 413 too

    return app
