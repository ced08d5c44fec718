"""`/docs` (Swagger UI) and `/redoc` (ReDoc) for `/openapi.json`, their scripts and styles served by
Clarion itself from the `fastapi-offline` package, so that both pages work offline and load nothing
from a CDN (FastAPI's own pages load theirs from jsDelivr). ReDoc's script still asks for its maker's
logo from cdn.redoc.ly (it has no option to leave it out); offline, the page shows without it."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from starlette.staticfiles import StaticFiles

ASSETS = "/docs/assets"
TITLE = "Clarion API"
REDOC_JS = "/docs/redoc/redoc.standalone.js"
REDOC_LOGO = b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"'


@cache
def _redoc_script() -> bytes:
    script = (files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    return script.replace(REDOC_LOGO, b'src:""')


class ErrorBody(BaseModel):
    """Every error of Clarion's own surfaces (/v1, /sdk/v1, /admin/v1): a code from the catalogue, a
    message, and the input at fault, if one is (docs/api-errors.md)."""

    error: str = Field(examples=["invalid_field"])
    message: str = Field(examples=["payload.redirect_url: must be a valid http(s) URL"])
    field: str | None = Field(None, examples=["payload.redirect_url"])


class GravitecAuthError(BaseModel):
    """/api/v3: credentials missing (401) or not matching (403), the vendor's body."""

    status: str = Field(examples=["incomplete by bad auth"])
    error_message: str


class GravitecError(BaseModel):
    """/api/v3: every other error, the vendor's body; `field` where the vendor documents no text."""

    httpStatus: str = Field(examples=["UNPROCESSABLE_ENTITY"])  # the vendor's names
    error: str = Field(examples=["Incomplete by wrong param(s)!"])
    errorDescription: str
    field: str | None = None


class SwrveError(BaseModel):
    """/push_batch: the Swrve Batch Push API's error body."""

    code: int = Field(examples=[404])
    message: str = Field(examples=["Invalid Batch ID"])
    error: str = Field(examples=["Invalid Batch ID"])


# Each surface's error bodies, by path prefix (app.error_response renders them).
_SURFACE_ERRORS: tuple[tuple[tuple[str, ...], tuple[type[BaseModel], ...]], ...] = (
    (("/api/v3",), (GravitecAuthError, GravitecError)),
    (("/push_batch",), (SwrveError,)),
    (("/v1", "/sdk/v1", "/admin/v1", "/pictures"), (ErrorBody,)),
)
_ANY_ERROR = {"4XX": "Any other refusal (docs/api-errors.md)", "5XX": "The service is unavailable (503)"}
_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def describe_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Every operation's error answers in the body its surface really gives: FastAPI's own 422 schema
    (never sent: app.py renders validation errors in the surface's shape) replaced, and any other
    4xx and 5xx described too, so that a client (or schemathesis) can check each answer."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for path, operations in spec.get("paths", {}).items():
        models = next((found for prefixes, found in _SURFACE_ERRORS if path.startswith(prefixes)), None)
        if models is None:
            continue
        for model in models:
            schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
        refs = [_ref(model) for model in models]
        content = {"application/json": {"schema": refs[0] if len(refs) == 1 else {"anyOf": refs}}}
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, text in _ANY_ERROR.items():
                responses.setdefault(status, {"description": text})
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = content
    for name in _FASTAPI_ERRORS:  # in that order: the second is referred to by the first only
        if f'"#/components/schemas/{name}"' not in json.dumps(spec):
            schemas.pop(name, None)
    return spec


def add_docs(app: FastAPI) -> None:
    openapi = app.openapi
    described: list[dict[str, Any]] = []

    def with_errors() -> dict[str, Any]:
        if not described:
            described.append(describe_errors(openapi()))
        return described[0]

    app.openapi = with_errors  # type: ignore[method-assign]
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
