"""The SDK, the service worker and the demo page as files a browser loads (docs/sdk.md)."""

from __future__ import annotations

import httpx
import pytest

from clarion.app import create_app
from clarion.sdk.cors import SdkCors
from clarion.subscriber.self_service import AUTH_HEADER
from tests.conftest import Api, make_settings

FILES = [
    ("/sdk/v1/clarion.js", "text/javascript; charset=utf-8", "Clarion Web SDK"),
    ("/sdk/v1/sw.js", "text/javascript; charset=utf-8", "Clarion service worker"),
    ("/sdk/v1/demo.js", "text/javascript; charset=utf-8", "The demo page"),
    ("/sdk/v1/demo?appKey=abc", "text/html; charset=utf-8", "<title>Clarion: try Web Push</title>"),
]


@pytest.mark.parametrize(("path", "content_type", "text"), FILES)
async def test_files_are_served_with_their_content_type(
    quiet_api: Api, path: str, content_type: str, text: str
) -> None:
    answer = await quiet_api.client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == content_type
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert text in answer.text

    # Revalidation is cheap: the same ETag answers 304 with no body.
    etag = answer.headers["etag"]
    assert answer.headers["cache-control"] == "no-cache"
    again = await quiet_api.client.get(path, headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)


async def test_the_worker_may_control_the_whole_origin(quiet_api: Api) -> None:
    answer = await quiet_api.client.get("/sdk/v1/sw.js")
    assert answer.headers["service-worker-allowed"] == "/"


async def test_the_demo_page_runs_only_its_own_scripts(quiet_api: Api) -> None:
    answer = await quiet_api.client.get("/sdk/v1/demo")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "<script>" not in answer.text  # no inline script: the policy would block it
    assert '<script src="demo.js">' in answer.text


async def test_the_openapi_document_lists_the_self_service_routes(quiet_api: Api) -> None:
    paths = (await quiet_api.client.get("/openapi.json")).json()["paths"]
    for path in (
        "/sdk/v1/apps/{app_key}",
        "/sdk/v1/subscribers/{reg_id}",
        "/sdk/v1/subscribers/{reg_id}/alias",
        "/sdk/v1/subscribers/{reg_id}/tags",
        "/sdk/v1/subscribers/{reg_id}/tags/{tag}",
        "/sdk/v1/subscribers/{reg_id}/resubscribe",
        "/sdk/v1/subscribers/{reg_id}/test",
    ):
        assert path in paths, path


async def test_cors_is_open_for_the_sdk_routes_only(database_url: str) -> None:
    app = create_app(make_settings(database_url), run_engine=False)
    app.add_middleware(SdkCors)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            site = {"Origin": "https://shop.example"}
            preflight = await client.options(
                "/sdk/v1/subscribers/r/alias",
                headers={
                    **site,
                    "Access-Control-Request-Method": "PUT",
                    "Access-Control-Request-Headers": f"content-type,{AUTH_HEADER.lower()}",
                },
            )
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == "*"
            assert "PUT" in preflight.headers["access-control-allow-methods"]
            assert AUTH_HEADER in preflight.headers["access-control-allow-headers"]
            assert "access-control-allow-credentials" not in preflight.headers

            sdk = await client.get("/sdk/v1/apps/nope", headers=site)
            assert (sdk.status_code, sdk.headers["access-control-allow-origin"]) == (404, "*")
            script = await client.get("/sdk/v1/clarion.js", headers=site)
            assert script.headers["access-control-allow-origin"] == "*"

            api = await client.get("/api/v3/alias", headers=site)
            assert "access-control-allow-origin" not in api.headers
            api_preflight = await client.options(
                "/api/v3/push", headers={**site, "Access-Control-Request-Method": "POST"}
            )
            assert "access-control-allow-origin" not in api_preflight.headers
            same_origin = await client.get("/sdk/v1/clarion.js")
            assert "access-control-allow-origin" not in same_origin.headers
