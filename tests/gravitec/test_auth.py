"""HTTP Basic authentication of every /api/v3 route, with the vendor's error bodies."""

from __future__ import annotations

import base64

import httpx
import pytest
from sqlalchemy import event

from clarion import errors
from clarion.app_tenant import security
from clarion.app_tenant import service as apps
from clarion.db import Database
from tests.app_tenant.factory import MESSAGE, new_app
from tests.conftest import Api

ROUTES: list[tuple[str, str, dict[str, object] | None]] = [
    ("POST", "/api/v3/push", {"payload": MESSAGE}),
    ("GET", "/api/v3/alias?regId=r", None),
    ("POST", "/api/v3/alias?regId=r&name=n", None),
    ("POST", "/api/v3/tag?regId=r&name=n", None),
    ("DELETE", "/api/v3/tag?regId=r&name=n", None),
    ("GET", "/api/v3/messages/1", None),
    ("GET", "/api/v3/messages/", None),
]


def basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def bad_auth(message: str) -> dict[str, str]:
    return {"status": "incomplete by bad auth", "error_message": message}


async def call(
    api: Api, method: str, url: str, body: dict[str, object] | None, **kwargs: object
) -> httpx.Response:
    return await api.client.request(method, url, json=body, **kwargs)  # type: ignore[arg-type]


async def test_every_route_refuses_missing_unknown_and_wrong_credentials(
    quiet_api: Api, db: Database
) -> None:
    tenant, other = await new_app(db), await new_app(db, name="other")
    required = bad_auth("HTTP Basic authentication with APP_KEY:APP_SECRET is required")
    not_basic = bad_auth("The Authorization header is not valid HTTP Basic")
    for method, url, body in ROUTES:
        answer = await call(quiet_api, method, url, body)
        assert (answer.status_code, answer.json()) == (401, required), url
        assert answer.headers["www-authenticate"] == 'Basic realm="clarion"'

        answer = await call(quiet_api, method, url, body, auth=("5459059059405940gpgkj", tenant.app_secret))
        unknown = bad_auth("There is no web site with appKey: 5459059059405940gpgkj")
        assert (answer.status_code, answer.json()) == (403, unknown), url

        # Issue #19 (and #11): a wrong secret is refused exactly like an unknown key (403, the
        # vendor's body), so that the answer does not tell which keys exist.
        for secret in ("wrong", "", other.app_secret, tenant.app_secret.upper()):
            answer = await call(quiet_api, method, url, body, auth=(tenant.app_key, secret))
            wrong = bad_auth(f"There is no web site with appKey: {tenant.app_key}")
            assert (answer.status_code, answer.json()) == (403, wrong), (url, secret)
            assert "www-authenticate" not in answer.headers

        garbage: list[tuple[dict[str, str], dict[str, str]]] = [
            ({"Authorization": "Bearer " + tenant.app_secret}, required),
            ({"Authorization": "Basic"}, required),
            ({"Authorization": "Basic !!not base64!!"}, not_basic),
            (basic(tenant.app_key.encode() + tenant.app_secret.encode()), not_basic),  # no colon
            (basic(b"\xff\xfe:\xff"), not_basic),  # not UTF-8
        ]
        for headers, expected in garbage:
            answer = await call(quiet_api, method, url, body, headers=headers)
            assert (answer.status_code, answer.json()) == (401, expected), (url, headers)

    # The right pair passes (push is the one route that succeeds without other setup).
    answer = await quiet_api.client.post("/api/v3/push", json={"payload": MESSAGE}, auth=tenant.auth)
    assert answer.status_code == 200, answer.text
    # HTTP Basic through the header by hand, and the key is case-sensitive.
    answer = await quiet_api.client.post(
        "/api/v3/push",
        json={"payload": MESSAGE},
        headers=basic(f"{tenant.app_key}:{tenant.app_secret}".encode()),
    )
    assert answer.status_code == 200, answer.text
    answer = await quiet_api.client.get(
        "/api/v3/messages/1", auth=(tenant.app_key.upper(), tenant.app_secret)
    )
    assert answer.status_code == 403


async def test_an_unknown_key_and_a_wrong_secret_cost_the_same_work(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Told apart by time, the two refusals would still tell which keys exist: both run the same
    statement (one that answers one row either way) and hash one secret (an unknown key's against a
    dummy hash), and they are refused with the same error."""
    tenant = await new_app(db)
    hashed: list[str] = []
    statements: list[str] = []
    real_hash = security.hash_secret

    def counting_hash(secret: str) -> str:
        hashed.append(secret)
        return real_hash(secret)

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    monkeypatch.setattr(security, "hash_secret", counting_hash)
    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    work: dict[str, tuple[list[str], list[str], str]] = {}
    unknown_key = "f" * len(tenant.app_key)
    try:
        for case, key in (("unknown", unknown_key), ("wrong", tenant.app_key)):
            hashed.clear()
            statements.clear()
            async with db.session() as session:
                with pytest.raises(errors.UnknownApp) as refused:
                    await apps.authenticate(session, key, "guess")
            message = refused.value.message.replace(key, "KEY")
            work[case] = (
                [s for s in statements if s.lstrip().upper().startswith("SELECT")],
                list(hashed),
                message,
            )
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert work["unknown"] == work["wrong"]
    assert work["wrong"][1:] == (["guess"], "There is no web site with appKey: KEY")
    assert len(work["wrong"][0]) == 1
