"""`/docs` (Swagger UI) and `/redoc` (ReDoc) for `/openapi.json`, their scripts and styles served by
Clarion itself from the `fastapi-offline` package, so that both pages work offline and load nothing
from a CDN (FastAPI's own pages load theirs from jsDelivr). ReDoc's script still asks for its maker's
logo from cdn.redoc.ly (it has no option to leave it out); offline, the page shows without it."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

ASSETS = "/docs/assets"
TITLE = "Clarion API"
REDOC_JS = "/docs/redoc/redoc.standalone.js"
REDOC_LOGO = b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"'


@cache
def _redoc_script() -> bytes:
    script = (files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    return script.replace(REDOC_LOGO, b'src:""')


def add_docs(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=TITLE,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

    @app.get(REDOC_JS, include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(_redoc_script(), media_type="text/javascript")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        # with_google_fonts=False: ReDoc's page would otherwise load its fonts from Google.
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=TITLE,
            redoc_js_url=REDOC_JS,
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
