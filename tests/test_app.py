"""Operations endpoints: health, OpenAPI and interactive docs."""

from __future__ import annotations

import base64
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from clarion.app import create_app
from clarion.config import Settings
from clarion.db import Database
from tests.app_tenant.factory import new_app
from tests.conftest import Api, make_settings
from tests.support import free_port


async def test_healthz_answers_ok(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_healthz_is_503_while_the_queue_is_unreachable(database_url: str) -> None:
    settings = make_settings(database_url, queue_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings, run_engine=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (503, {"status": "unavailable", "queue": "unreachable"})


async def _get_with_no_database(path: str) -> httpx.Response:
    """`path` from a server whose database does not exist (nothing listens at its port)."""
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_app(make_settings(dead), run_engine=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            return await client.get(path)


async def test_healthz_is_503_while_the_database_is_unreachable(database_url: str) -> None:
    response = await _get_with_no_database("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


async def test_healthz_keeps_the_database_error_to_the_log(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_app(make_settings(dead), run_engine=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            with caplog.at_level(logging.WARNING, logger="clarion"):
                response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (
        503,
        {"status": "unavailable", "database": "unreachable"},
    )
    prefix = "health check: database unreachable: "
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]
    assert len(logged) == 1
    assert len(logged[0]) > len(prefix)  # the driver's own text, kept for the operator


async def test_openapi_and_interactive_docs_are_served(api: Api) -> None:
    spec = await api.client.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in ("/api/v3/push", "/api/v3/alias", "/api/v3/tag", "/api/v3/messages/{campaign_id}"):
        assert path in paths
    assert "/sdk/v1/subscribers" in paths
    docs = await api.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text.lower()


async def test_a_body_over_the_ceiling_is_refused_with_413(api: Api) -> None:
    huge = b'{"payload": {"message": "' + b"x" * (1024 * 1024) + b'"}}'
    response = await api.client.post(
        "/sdk/v1/subscribers", content=huge, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": "request_entity_too_large",
        "message": "Request Entity Too Large: at most 1048576 bytes",
    }


async def test_a_json_body_over_the_ceiling_is_413_on_routes_that_parse_it(api: Api, db: Database) -> None:
    """FastAPI reads a route's JSON body itself (and made any error while reading it a 400)."""
    tenant = await new_app(db)
    huge = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    json_body = {"Content-Type": "application/json"}
    admin = {**json_body, "Authorization": "Bearer test-admin-token"}
    too_large = "Request Entity Too Large: at most 1048576 bytes"
    for path, headers in (("/v1/apps", admin), (f"/v1/apps/{tenant.app_key}/segments", admin)):
        response = await api.client.post(path, content=huge, headers=headers)
        assert (response.status_code, response.json()) == (
            413,
            {"error": "request_entity_too_large", "message": too_large},
        ), path
    vendor = await api.client.post("/api/v3/push", content=huge, headers=json_body, auth=tenant.auth)
    assert (vendor.status_code, vendor.json()) == (
        413,
        {
            "httpStatus": "REQUEST_ENTITY_TOO_LARGE",
            "error": "Request Entity Too Large",
            "errorDescription": too_large,
        },
    )


async def test_a_json_body_that_cannot_be_parsed_is_a_bad_request_in_the_surfaces_shape(api: Api) -> None:
    admin = {"Content-Type": "application/json", "Authorization": "Bearer test-admin-token"}
    response = await api.client.post("/v1/apps", content=b"\xff\xfe{", headers=admin)  # not even UTF-8
    assert (response.status_code, response.json()) == (
        400,
        {"error": "bad_request", "message": "body: There was an error parsing the body", "field": "body"},
    )


async def test_readyz_answers_ok_only_with_the_schema_at_head(api: Api, db: Database) -> None:
    assert (await api.client.get("/readyz")).json() == {"status": "ok"}
    async with db.session() as session:
        (head,) = (await session.execute(text("SELECT version_num FROM alembic_version"))).one()
        await session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    behind = await api.client.get("/readyz")
    assert (behind.status_code, behind.json()) == (503, {"status": "unavailable", "migrations": "pending"})
    # Serving is not the same as ready: the process still answers.
    assert (await api.client.get("/healthz")).status_code == 200
    async with db.session() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
    ready = await api.client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ok"})


async def test_readyz_is_503_while_the_database_is_unreachable(database_url: str) -> None:
    response = await _get_with_no_database("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}


async def _disconnecting(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> list[Any]:
    """Run one request whose client sends part of its body, then goes away; what the app sent back."""
    arrivals = iter(
        [
            {"type": "http.request", "body": b'{"payload": {"message": "Hel', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[Any] = []

    async def receive() -> Any:
        return next(arrivals, {"type": "http.disconnect"})

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"clarion.test"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("clarion.test", 80),
    }
    await app(scope, receive, send)
    return sent


async def test_a_client_that_disconnects_mid_request_is_one_info_line(
    settings: Settings, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await new_app(db)
    basic = b"Basic " + base64.b64encode(f"{tenant.app_key}:{tenant.app_secret}".encode())
    app = create_app(settings, run_engine=False)
    async with app.router.lifespan_context(app):
        for path, headers in (("/api/v3/push", [(b"authorization", basic)]), ("/sdk/v1/subscribers", [])):
            caplog.clear()
            with caplog.at_level(logging.DEBUG):
                sent = await _disconnecting(app, "POST", path, headers)
            starts = [m for m in sent if m["type"] == "http.response.start"]
            assert [m["status"] for m in starts] == [499], path  # for the access log; nobody reads it
            lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("clarion")]
            expected = f"POST {path}: the client disconnected before sending its whole request"
            assert lines == [("INFO", expected)], path
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info], path
