"""Serves the Web SDK, the service worker and the demo page from the package's static files."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, Response

router = APIRouter(prefix="/sdk/v1", tags=["Web SDK"])

JAVASCRIPT = "text/javascript; charset=utf-8"  # RFC 9239
HTML = "text/html; charset=utf-8"
# The demo page runs only its own scripts and talks only to this server.
DEMO_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: https:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@cache
def _static(name: str) -> tuple[bytes, str]:
    """A static file and its ETag, read once on first use (not at import)."""
    content = (resources.files("clarion.sdk") / "static" / name).read_bytes()
    return content, '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _serve(request: Request, name: str, media_type: str, headers: dict[str, str] | None = None) -> Response:
    content, etag = _static(name)
    # Browsers revalidate every time (cheap with the ETag), so a new server version takes effect at once.
    common = {
        "ETag": etag,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        **(headers or {}),
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=common)
    return Response(content, media_type=media_type, headers=common)


def _static_file(media_type: str) -> dict[str, Any]:
    """The OpenAPI description of a static file's answers."""
    return {
        "response_class": Response,
        "responses": {
            200: {"content": {media_type: {"schema": {"type": "string"}}}},
            304: {"description": "Not Modified: the ETag sent in If-None-Match is the file's"},
        },
    }


@router.get("/clarion.js", **_static_file(JAVASCRIPT))
async def sdk_script(request: Request) -> Response:
    return _serve(request, "clarion.js", JAVASCRIPT)


@router.get("/sw.js", **_static_file(JAVASCRIPT))
async def service_worker(request: Request) -> Response:
    # Lets a site served by this same origin register the worker for the whole origin (scope "/").
    return _serve(request, "sw.js", JAVASCRIPT, {"Service-Worker-Allowed": "/"})


@router.get("/demo", name="demo_page", **_static_file(HTML))
async def demo_page(request: Request) -> Response:
    return _serve(request, "demo.html", HTML, {"Content-Security-Policy": DEMO_CSP})


@router.get("/demo.js", **_static_file(JAVASCRIPT))
async def demo_script(request: Request) -> Response:
    return _serve(request, "demo.js", JAVASCRIPT)
