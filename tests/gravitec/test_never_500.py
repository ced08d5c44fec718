"""Whatever arrives, the answer is a 4xx JSON body, never a 500: malformed bodies in every field."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from clarion.config import Settings
from clarion.db import Database
from tests.app_tenant.factory import new_app, push, subscribe
from tests.conftest import Api, make_settings
from tests.fakes.push_service import FakePushService

# Wrong in type, size or content: JSON scalars, containers, NUL, a lone surrogate, odd digits.
WRONG: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    10**30,
    "",
    " x ",
    "²",
    "a\x00b",
    "\ud800",
    "x" * 5000,
    [],
    [None, {}],
    {},
    {"a": {"b": [1]}},
]
RAW_BODIES = [
    b"",
    b"{",
    b"[]",
    b"null",
    b'"x"',
    b"\xff\xfe",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
    b'{"ttl": ' + b"9" * 5000 + b"}",
    b'{"ttl": NaN, "display_time": Infinity}',
    b'{"payload": {"message": "\\ud800", "title": "\\udfff", "redirect_url": "https://example.com/"}}',
    b'{"payload": {"message": "m\\u0000", "redirect_url": "https://example.com/"}, "push_tag": "\\u0000"}',
]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON value: each key, each index, down to the leaves."""
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    copied = copy.deepcopy(body)
    target = copied
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copied


def encode(body: Any) -> bytes:
    # ensure_ascii keeps a lone surrogate as its \\u escape, as a hostile client would send it.
    return json.dumps(body, ensure_ascii=True).encode()


async def check(answer: httpx.Response | Exception, what: object, failures: list[str]) -> None:
    if isinstance(answer, Exception):
        failures.append(f"500 ({type(answer).__name__}: {str(answer)[:120]}) for {str(what)[:200]}")
        return
    if not 400 <= answer.status_code < 500 and answer.status_code not in (200, 201, 204):
        failures.append(f"{answer.status_code} for {str(what)[:200]}: {answer.text[:200]}")
        return
    if answer.status_code >= 400:
        try:
            parsed = answer.json()
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            failures.append(
                f"{answer.status_code} without a JSON object for {str(what)[:200]}: {answer.text[:200]}"
            )


class Client:
    """The ASGI transport re-raises what the app did not handle (after its 500): catch it as a 500."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response | Exception:
        try:
            return await self.client.request(method, url, **kwargs)
        except Exception as exc:  # recorded as a failure by check()
            return exc

    async def post(self, url: str, **kwargs: Any) -> httpx.Response | Exception:
        return await self.request("POST", url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response | Exception:
        return await self.request("GET", url, **kwargs)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """No abuse limits: every malformed request must reach the parsing it is meant to test."""
    return make_settings(
        database_url, subscriber_register_per_ip_per_minute=0, subscriber_events_per_ip_per_minute=0
    )


async def test_malformed_requests_get_4xx_json(quiet_api: Api, db: Database, fake: FakePushService) -> None:
    tenant = await new_app(db, plan="unlimited")
    reg_id = await subscribe(quiet_api.client, tenant, fake)
    campaign_id = (await push(quiet_api.client, tenant, audience={"tokens": ["nobody"]})).json()["id"]
    client = Client(quiet_api.client)
    failures: list[str] = []
    json_headers = {"Content-Type": "application/json"}

    message = {
        "message": "m",
        "title": "t",
        "icon": "https://example.com/i.png",
        "image": "https://example.com/b.jpg",
        "redirect_url": "https://example.com/",
        "buttons": [{"title": "b", "url": "https://example.com/b"}],
    }
    pushes: list[dict[str, Any]] = [
        {
            "send_date": "",
            "ttl": 10,
            "push_tag": "t",
            "display_time": 5,
            "is_transactional": False,
            "payload": message,
        },
        {"payload": {"message": "m", "redirect_url": "https://example.com/"}, "audience": {"tokens": ["r"]}},
        {"payload": {"message": "m", "redirect_url": "https://example.com/"}, "audience": {"aliases": ["a"]}},
        {"payload": {"message": "m", "redirect_url": "https://example.com/"}, "audience": {"tags": ["t"]}},
        {
            "payload": {"message": "m", "redirect_url": "https://example.com/"},
            "audience": {"tags_segment": [{"association": "AND", "name": "t"}]},
        },
        {"payload": {"message": "m", "redirect_url": "https://example.com/"}, "segments": ["s"]},
    ]
    sub = fake.new_subscription().to_json()
    registrations: list[dict[str, Any]] = [
        {
            "app_key": tenant.app_key,
            "platform": "web",
            "subscription": sub,
            "user_id": "u",
            "external_user_id": "e",
            "user_id_hash": tenant.user_id_hash("u"),
            "external_user_id_hash": tenant.user_id_hash("e"),
        },
        {"app_key": tenant.app_key, "platform": "wns", "token": "https://push.example.net/c"},
    ]
    events = [{"app_key": tenant.app_key, "regId": reg_id, "campaign_id": campaign_id, "type": "clicked"}]

    targets: list[tuple[str, list[dict[str, Any]], tuple[str, str] | None]] = [
        ("/api/v3/push", pushes, tenant.auth),
        ("/sdk/v1/subscribers", registrations, None),
        ("/sdk/v1/events", events, None),
    ]
    for url, bodies, auth in targets:
        for index, good in enumerate(bodies):
            # The first body covers every field; the others only what they add (their audience).
            for path in (p for p in paths(good) if index == 0 or p[0] in ("audience", "segments")):
                for value in WRONG:
                    body = replaced(good, path, value)
                    answer = await client.post(url, content=encode(body), headers=json_headers, auth=auth)
                    await check(answer, (url, path, value), failures)
        for raw in RAW_BODIES:
            answer = await client.post(url, content=raw, headers=json_headers, auth=auth)
            await check(answer, (url, raw[:60]), failures)

    # Query strings, paths and the Basic header, as raw bytes: NUL, broken UTF-8 (an encoded
    # surrogate, a lone 0xff), odd digits, a long value, a lone percent sign.
    for raw in [b"\x00", b"a\x00", b"\xed\xa0\x80", b"\xff", "²".encode(), b"x" * 5000, b"%", b"%zz"]:
        value = quote(raw, safe="")
        for method, url in [
            ("GET", "/api/v3/alias"),
            ("POST", "/api/v3/alias"),
            ("POST", "/api/v3/tag"),
            ("DELETE", "/api/v3/tag"),
        ]:
            for query in (f"regId={value}&name=n", f"regId={reg_id}&name={value}"):
                answer = await client.request(method, f"{url}?{query}", auth=tenant.auth)
                await check(answer, (method, url, query), failures)
        for method, url in [
            ("GET", f"/api/v3/messages/{value}"),
            ("DELETE", f"/sdk/v1/subscribers/{value}?app_key={tenant.app_key}"),
            ("DELETE", f"/sdk/v1/subscribers/{reg_id}?app_key={value}"),
        ]:
            answer = await client.request(method, url, auth=tenant.auth)
            await check(answer, (method, url), failures)
        for credentials in (raw + b":" + raw, tenant.app_key.encode() + b":" + raw):
            encoded = base64.b64encode(credentials).decode()
            answer = await client.get("/api/v3/messages/1", headers={"Authorization": f"Basic {encoded}"})
            await check(answer, ("basic", credentials[:40]), failures)

    assert failures == [], "\n".join(failures[:40])
