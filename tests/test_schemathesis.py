"""Every operation of the app's OpenAPI schema, fuzzed with schemathesis: no answer is ever a 5xx, and
every answer of /v1, /api/v3, /sdk/v1, /admin/v1 and /push_batch, its errors too, matches its documented
schema and media type.

The app runs in-process over ASGI on SQLite, with a real app, its key and secret, the admin token and a
registered subscriber, so that the authenticated routes are reached and not only their 401s: each
generated request carries the right credentials for its surface, and half of them name the real app,
subscriber and campaign in place of the generated values. `CLARION_FUZZ_EXAMPLES` (default 12 per
operation, about 30 s in all) sets how many requests each operation gets; CI keeps the default, and
derandomized generation makes each run the same.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("schemathesis")

import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from clarion.app import create_app
from clarion.composition import open_database
from clarion.migrations import upgrade
from tests.app_tenant.factory import MESSAGE, Tenant, new_app
from tests.conftest import make_settings

MAX_EXAMPLES = int(os.environ.get("CLARION_FUZZ_EXAMPLES", "12"))
ADMIN_TOKEN = "test-admin-token"  # make_settings' admin token
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# The surfaces whose every answer, an error's too, must match the documented schema and media type.
CHECKED = ("/v1", "/api/v3", "/sdk/v1", "/admin/v1", "/push_batch")
CONFORMANCE = [status_code_conformance, response_schema_conformance, content_type_conformance]


@dataclass(frozen=True)
class Known:
    """Real values the fuzzer may put in place of generated ones."""

    tenant: Tenant
    reg_id: str
    auth: str
    campaign_id: str
    # /v1 is fuzzed with the admin token on an app of its own, so that a generated rotation or update
    # leaves the /api/v3 tenant's secret alone.
    v1_app_key: str = ""
    v1_campaign_id: str = ""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _web_subscription() -> dict[str, Any]:
    point = ec.generate_private_key(ec.SECP256R1()).public_key()
    p256dh = point.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    keys = {"p256dh": _b64url(p256dh), "auth": _b64url(os.urandom(16))}
    return {"endpoint": "https://push.example.net/push/fuzz", "keys": keys}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Known]]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'clarion.db'}"
    upgrade(url)
    tenant = asyncio.run(_new_app(url))
    app = create_app(make_settings(url), run_engine=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app's lifespan
    try:
        with asgi.get_client(app) as client:
            subscription = _web_subscription()
            body = {"app_key": tenant.app_key, "platform": "web", "subscription": subscription}
            registered = client.post("/sdk/v1/subscribers", json=body)
            assert registered.status_code == 201, registered.text
            pushed = client.post("/api/v3/push", json={"payload": MESSAGE}, auth=tenant.auth)
            assert pushed.status_code == 200, pushed.text
            v1_app = client.post("/v1/apps", json={"name": "fuzzed"}, headers=ADMIN)
            assert v1_app.status_code == 201, v1_app.text
            v1_key = v1_app.json()["app_key"]
            later = {"payload": MESSAGE, "send_at": "2100-01-01T00:00:00Z"}
            v1_campaign = client.post(f"/v1/apps/{v1_key}/campaigns", json=later, headers=ADMIN)
            assert v1_campaign.status_code == 201, v1_campaign.text
        known = Known(
            tenant,
            registered.json()["regId"],
            subscription["keys"]["auth"],
            pushed.json()["id"],
            v1_key,
            v1_campaign.json()["campaign_id"],
        )
        yield schema, known
    finally:
        asgi.shutdown_lifespans()


async def _new_app(url: str) -> Tenant:
    db = open_database(make_settings(url), pool_size=1)
    try:
        return await new_app(db, plan="unlimited")
    finally:
        await db.dispose()


def _operations() -> list[Any]:
    """The operations, read from the schema of an app that is never started (it needs no database)."""
    spec = create_app(make_settings("sqlite:///unused.db")).openapi()
    return [
        pytest.param(method.upper(), path, id=f"{method.upper()} {path}")
        for path, methods in sorted(spec["paths"].items())
        for method in sorted(methods)
    ]


def _credentials(path: str, known: Known) -> dict[str, str]:
    if path.startswith("/api/v3"):
        secret = f"{known.tenant.app_key}:{known.tenant.app_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(secret).decode()}
    if path.startswith(("/admin", "/v1")):
        return ADMIN
    if path.startswith("/sdk/v1/subscribers/"):
        return {"X-Clarion-Subscription-Auth": known.auth}
    return {}


def _use_known(case: Any, known: Known, path: str) -> None:
    """The real app, subscriber and campaign in place of the generated ones, where the request has them."""
    v1 = path.startswith("/v1")
    real = {
        "reg_id": known.reg_id,
        "regId": known.reg_id,
        "app_key": known.v1_app_key if v1 else known.tenant.app_key,
        "campaign_id": known.v1_campaign_id if v1 else known.campaign_id,
        "provider": "wns",
    }
    for values in (case.path_parameters, case.query):
        if values:
            for name in values.keys() & real.keys():
                values[name] = real[name]
    if isinstance(case.body, dict):
        for name in case.body.keys() & real.keys():
            case.body[name] = real[name]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_no_generated_request_gets_a_5xx(fuzzed: tuple[Any, Known], method: str, path: str) -> None:
    schema, known = fuzzed
    operation = schema[path][method]

    # Valid requests (positive) and requests that break the schema on purpose (negative).
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, realistic=st.booleans())
    def check(case: Any, realistic: bool) -> None:
        if realistic:
            _use_known(case, known, path)
        response = case.call(headers=_credentials(path, known))
        assert response.status_code < 500, (case.as_curl_command(), response.status_code, response.text[:500])
        if path.startswith(CHECKED):  # every answer, errors too, as documented
            case.validate_response(response, checks=CONFORMANCE)

    check()


def test_each_surfaces_errors_match_their_documentation(fuzzed: tuple[Any, Known]) -> None:
    """One error of each shape, made on purpose (the fuzzer may not reach them all): each body, as
    docs/api-errors.md gives it, is the documented schema of its answer."""
    schema, known = fuzzed
    basic = _credentials("/api/v3", known)
    made = [
        ("POST", "/api/v3/push", {}, {}, {}, 401, "status"),  # no credentials: the vendor's auth body
        ("POST", "/api/v3/push", basic, {}, {"payload": 1}, 422, "httpStatus"),
        ("GET", "/api/v3/messages/{campaign_id}", basic, {"campaign_id": "0"}, None, 422, "httpStatus"),
        ("GET", "/push_batch", {}, {}, None, 404, "code"),  # Swrve: an unknown batch id
        ("GET", "/v1/apps", {}, {}, None, 401, "error"),
        ("GET", "/v1/apps/{app_key}", ADMIN, {"app_key": "nope"}, None, 404, "error"),
        ("POST", "/v1/apps", ADMIN, {}, {"name": ""}, 422, "error"),
        ("GET", "/sdk/v1/apps/{app_key}", {}, {"app_key": "nope"}, None, 404, "error"),
        (
            "GET",
            "/admin/v1/push-campaigns/{campaign_id}",
            ADMIN,
            {"campaign_id": str(2**62)},
            None,
            404,
            "error",
        ),
    ]
    for method, path, headers, parameters, body, status, key in made:
        case = schema[path][method].Case(
            headers=headers, path_parameters=parameters, query={"batch_id": "x"} if "batch" in path else None
        )
        if body is not None:
            case.body = body
            case.media_type = "application/json"
        response = case.call()
        assert (response.status_code, key in response.json()) == (status, True), (path, response.text)
        case.validate_response(response, checks=CONFORMANCE)
