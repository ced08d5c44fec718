"""POST /api/v3/push: the documented success body, and every documented rule broken once."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from clarion.campaign import payload as payloads
from clarion.campaign.schemas import Content
from clarion.db import Database
from tests.app_tenant.factory import MESSAGE, add_tags, new_app, push, stats, vendor_error
from tests.conftest import Api

HOUR_MS = 3_600_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def invalid(field: str, why: str) -> dict[str, Any]:
    return vendor_error(f"{field}: {why}", field)


async def test_documented_example_and_defaults(quiet_api: Api, db: Database) -> None:
    tenant = await new_app(db, plan="unlimited")
    before = now_ms()
    answer = await push(
        quiet_api.client, tenant, payload={"message": " Test massage", "redirect_url": "https://gravitec.net"}
    )
    after = now_ms()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert re.fullmatch(r"[1-9][0-9]*", body["id"]), body
    assert re.fullmatch(r"[1-9][0-9]{12}", body["send_date"]), body
    assert before - 1 <= int(body["send_date"]) <= after, (before, body, after)
    assert body == {
        "id": body["id"],
        "send_date": body["send_date"],
        "ttl": 28800,
        "display_time": 60,
        "payload": {"title": "Title"},
    }

    # The vendor's documented request and response (its ttl was 86400).
    example = {
        "ttl": 86400,
        "payload": {
            "message": " Test massage",
            "title": "Test message",
            "redirect_url": "https://gravitec.net",
        },
    }
    answer = await quiet_api.client.post("/api/v3/push", json=example, auth=tenant.auth)
    assert answer.status_code == 200, answer.text
    second = answer.json()
    assert second == {
        "id": second["id"],
        "send_date": second["send_date"],
        "ttl": 86400,
        "display_time": 60,
        "payload": {"title": "Test message"},
    }
    assert int(second["id"]) > int(body["id"])

    # "" and "now" send at once; the limits are inclusive; numbers may come as strings.
    defaults_cases: list[tuple[dict[str, Any], int, int]] = [
        ({"send_date": ""}, 28800, 60),
        ({"send_date": "now", "is_transactional": True}, 28800, 60),
        ({"ttl": 0, "display_time": 0, "is_transactional": "false"}, 0, 0),
        ({"ttl": 2_419_200, "display_time": 2_419_200, "push_tag": "n" * 100}, 2_419_200, 2_419_200),
        ({"ttl": "3600", "display_time": "5", "push_tag": "news", "is_transactional": "true"}, 3600, 5),
        ({"ttl": None, "display_time": None, "send_date": None}, 28800, 60),
    ]
    for extra, ttl, display_time in defaults_cases:
        before = now_ms()
        answer = await push(quiet_api.client, tenant, **extra)
        assert answer.status_code == 200, (extra, answer.text)
        body = answer.json()
        assert body == {
            "id": body["id"],
            "send_date": body["send_date"],
            "ttl": ttl,
            "display_time": display_time,
            "payload": {"title": "Title"},
        }, extra
        assert before - 1 <= int(body["send_date"]) <= now_ms(), extra


async def test_scheduled_send_date_is_echoed_to_the_millisecond(quiet_api: Api, db: Database) -> None:
    tenant = await new_app(db, plan="unlimited")
    base = (now_ms() // 1000 + 3600) * 1000
    for offset, as_text in [
        (1, False),
        (7, True),
        (99, False),
        (123, True),
        (257, False),
        (999, True),
        (0, False),
    ]:
        when = base + offset * 1_000_003 + offset
        answer = await push(quiet_api.client, tenant, send_date=str(when) if as_text else when)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["send_date"] == str(when), (when, body)
        expected = {"status": "SCHEDULED", "send": 0, "received": 0, "clicked": 0, "closed": 0}
        assert await stats(quiet_api.client, tenant, body["id"]) == expected


async def test_full_payload_at_its_limits(quiet_api: Api, db: Database) -> None:
    tenant = await new_app(db, plan="unlimited")
    url = "https://example.com/" + "p" * 970 + ".jpeg"
    assert len(url) == 995
    cases: list[dict[str, Any]] = [
        {"message": "m" * 1000, "title": "t" * 1000, "redirect_url": "https://example.com/"},
        {"message": "m", "redirect_url": "https://example.com/" + "r" * 980, "icon": url},
        {
            "message": "m",
            "redirect_url": "https://example.com/",
            "image": url.upper().replace("HTTPS", "https"),
        },
        {
            "message": "m",
            "redirect_url": "http://example.com:8080/a?b=c#d",
            "icon": "https://cdn.example.com/i.png?v=2",
            "image": "https://cdn.example.com/big.JPG",
            "buttons": [
                {"title": "b" * 48, "url": "https://example.com/" + "u" * 900},
                {"title": "Read", "url": "https://example.com/path?q=%20x&y=[1]#frag"},
            ],
        },
        {
            "message": "m",
            "redirect_url": "https://example.com/",
            "buttons": [{"title": "One", "url": "mailto:a@b.c"}],
        },
    ]
    for payload in cases:
        answer = await push(quiet_api.client, tenant, payload=payload, display_time=10)
        assert answer.status_code == 200, (payload, answer.text)
        assert answer.json()["payload"] == {"title": payload.get("title", "Title")}


def _rules(existing_tag: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(request body, expected 422 body): each body breaks exactly one documented rule."""
    ok_payload: dict[str, Any] = dict(MESSAGE)

    def payload(**change: Any) -> dict[str, Any]:
        body = {**ok_payload, **change}
        return {"payload": {key: value for key, value in body.items() if value is not ...}}

    def button(**change: Any) -> dict[str, Any]:
        body = {"title": "Go", "url": "https://example.com/go", **change}
        return {key: value for key, value in body.items() if value is not ...}

    def segment(*terms: Any) -> dict[str, Any]:
        return {"payload": ok_payload, "audience": {"tags_segment": list(terms)}}

    def term(name: str = existing_tag, association: str = "AND") -> dict[str, str]:
        return {"association": association, "name": name}

    def audience(value: Any) -> dict[str, Any]:
        return {"payload": ok_payload, "audience": value}

    integer_fields = [("ttl", "ttl"), ("display_time", "display_time")]
    long_url = "https://example.com/" + "x" * 977 + ".png"
    assert len(long_url) == 1001
    one_of = "must contain exactly one of tokens, aliases, tags, tags_segment"
    send_date_format = 'must be "", "now" or a UNIX time in milliseconds'
    rules: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"send_date": 1509058800000, "payload": ok_payload}, invalid("send_date", "must be in the future")),
        (
            {"send_date": str(now_ms() - 1000), "payload": ok_payload},
            invalid("send_date", "must be in the future"),
        ),
        ({"send_date": -1, "payload": ok_payload}, invalid("send_date", "must be in the future")),
        ({"send_date": "tomorrow", "payload": ok_payload}, invalid("send_date", send_date_format)),
        ({"send_date": "NOW", "payload": ok_payload}, invalid("send_date", send_date_format)),
        ({"send_date": " ", "payload": ok_payload}, invalid("send_date", send_date_format)),
        (
            {"send_date": float(now_ms() + HOUR_MS), "payload": ok_payload},
            invalid("send_date", send_date_format),
        ),
        ({"send_date": True, "payload": ok_payload}, invalid("send_date", send_date_format)),
        ({"send_date": "-5", "payload": ok_payload}, invalid("send_date", send_date_format)),
        ({"send_date": "²", "payload": ok_payload}, invalid("send_date", send_date_format)),
        ({"send_date": 10**19, "payload": ok_payload}, invalid("send_date", "is not a representable time")),
        ({"send_date": "9" * 40, "payload": ok_payload}, invalid("send_date", "is not a representable time")),
        ({"push_tag": "", "payload": ok_payload}, invalid("push_tag", "must be 1-100 characters")),
        (
            {"push_tag": "p" * 101, "payload": ok_payload},
            invalid("push_tag", "must be at most 100 characters"),
        ),
        ({"push_tag": 7, "payload": ok_payload}, invalid("push_tag", "must be a string")),
        (
            {"is_transactional": "yes", "payload": ok_payload},
            invalid("is_transactional", "must be a boolean"),
        ),
        ({"is_transactional": 1, "payload": ok_payload}, invalid("is_transactional", "must be a boolean")),
        ({}, invalid("payload", "is required")),
        ({"payload": None}, invalid("payload", "is required")),
        ({"payload": ["message"]}, invalid("payload", "must be an object")),
        ({"payload": "Hello"}, invalid("payload", "must be an object")),
        (payload(message=...), invalid("payload.message", "is required")),
        (payload(message=""), invalid("payload.message", "must not be empty")),
        (payload(message="m" * 1001), invalid("payload.message", "must be at most 1000 characters")),
        (payload(message=42), invalid("payload.message", "must be a string")),
        (payload(title="t" * 1001), invalid("payload.title", "must be at most 1000 characters")),
        (payload(title=["t"]), invalid("payload.title", "must be a string")),
        (payload(redirect_url=...), invalid("payload.redirect_url", "is required")),
        (payload(redirect_url=""), invalid("payload.redirect_url", "must not be empty")),
        (
            payload(redirect_url=" https://example.com/"),
            invalid("payload.redirect_url", "must not start or end with spaces or tabs"),
        ),
        (
            payload(redirect_url="https://example.com/\t"),
            invalid("payload.redirect_url", "must not start or end with spaces or tabs"),
        ),
        (payload(redirect_url=long_url), invalid("payload.redirect_url", "must be at most 1000 characters")),
        (
            payload(redirect_url="example.com/news"),
            invalid("payload.redirect_url", "must be a valid http(s) URL"),
        ),
        (
            payload(redirect_url="javascript:alert(1)"),
            invalid("payload.redirect_url", "must be a valid http(s) URL"),
        ),
        (
            payload(redirect_url="https://exa mple.com/"),
            invalid("payload.redirect_url", "must be a valid http(s) URL"),
        ),
        (
            payload(redirect_url="https://[example.com/"),
            invalid("payload.redirect_url", "must be a valid http(s) URL"),
        ),
        (payload(buttons=[]), invalid("payload.buttons", "must be an array of one or two buttons")),
        (
            payload(buttons=[button(), button(), button()]),
            invalid("payload.buttons", "must be an array of one or two buttons"),
        ),
        (payload(buttons=button()), invalid("payload.buttons", "must be an array of one or two buttons")),
        (payload(buttons=["Go"]), invalid("payload.buttons[0]", "must be an object")),
        (
            payload(buttons=[button(title="b" * 49)]),
            invalid("payload.buttons[0].title", "must be at most 48 characters"),
        ),
        (payload(buttons=[button(), button(title=...)]), invalid("payload.buttons[1].title", "is required")),
        (payload(buttons=[button(title="")]), invalid("payload.buttons[0].title", "must not be empty")),
        (payload(buttons=[button(url=...)]), invalid("payload.buttons[0].url", "is required")),
        (
            payload(buttons=[button(), button(url="https://exa mple.com/")]),
            invalid("payload.buttons[1].url", "must be a valid URI (RFC 3986)"),
        ),
        (
            payload(buttons=[button(url="https://example.com/%zz")]),
            invalid("payload.buttons[0].url", "must be a valid URI (RFC 3986)"),
        ),
        (
            payload(buttons=[button(url="/relative/path")]),
            invalid("payload.buttons[0].url", "must be a valid URI (RFC 3986)"),
        ),
        (
            payload(buttons=[button(url="https://example.com/é")]),
            invalid("payload.buttons[0].url", "must be a valid URI (RFC 3986)"),
        ),
        (
            payload(buttons=[button(url=" https://example.com/")]),
            invalid("payload.buttons[0].url", "must not start or end with spaces or tabs"),
        ),
        (
            payload(buttons=[button(url=long_url)]),
            invalid("payload.buttons[0].url", "must be at most 1000 characters"),
        ),
        (
            {"payload": ok_payload, "segments": ["a", "b"]},
            invalid("segments", "must name exactly one segment"),
        ),
        ({"payload": ok_payload, "segments": []}, invalid("segments", "must name exactly one segment")),
        ({"payload": ok_payload, "segments": "a"}, invalid("segments", "must name exactly one segment")),
        ({"payload": ok_payload, "segments": [""]}, invalid("segments[0]", "must be a segment name or id")),
        ({"payload": ok_payload, "segments": [True]}, invalid("segments[0]", "must be a segment name or id")),
        (
            {"payload": ok_payload, "segments": [{"id": 1}]},
            invalid("segments[0]", "must be a segment name or id"),
        ),
        (
            {"payload": ok_payload, "segments": ["nope"]},
            invalid("segments[0]", "there is no segment 'nope' in this app"),
        ),
        (
            {"payload": ok_payload, "segments": [987654]},
            invalid("segments[0]", "there is no segment '987654' in this app"),
        ),
        (
            {"payload": ok_payload, "segments": ["a"], "audience": {"tokens": ["t"]}},
            invalid("segments", "cannot be sent together with audience"),
        ),
        (audience({"tokens": ["t"], "aliases": ["a"]}), invalid("audience", one_of)),
        (audience({"tags": ["t"], "tags_segment": [term()]}), invalid("audience", one_of)),
        (audience({}), invalid("audience", one_of)),
        (audience({"tokens": None}), invalid("audience", one_of)),
        (
            audience({"segments": ["a"]}),
            invalid("audience.segments", "is not a known property (did you mean audience.tags_segment?)"),
        ),
        # A misspelled key must not widen a push to everyone: every undocumented property is refused.
        (
            {"payload": ok_payload, "segmnets": ["vip"]},
            invalid("segmnets", "is not a known property (did you mean segments?)"),
        ),
        (
            {"payload": ok_payload, "audeince": {"tags": ["vip"]}},
            invalid("audeince", "is not a known property (did you mean audience?)"),
        ),
        ({"payload": ok_payload, "priority": 10}, invalid("priority", "is not a known property")),
        (
            payload(titel="Hi"),
            invalid("payload.titel", "is not a known property (did you mean payload.title?)"),
        ),
        (
            audience({"tokens": ["t"], "alias": ["a"]}),
            invalid("audience.alias", "is not a known property (did you mean audience.aliases?)"),
        ),
        (
            payload(buttons=[{"title": "Go", "url": "https://example.com/", "icon": "x.png"}]),
            invalid("payload.buttons[0].icon", "is not a known property"),
        ),
        (
            segment({**term(), "operator": "NOT"}),
            invalid("audience.tags_segment[0].operator", "is not a known property"),
        ),
        (audience(["tokens"]), invalid("audience", "must be an object")),
        (
            audience({"tokens": [f"t{i}" for i in range(101)]}),
            invalid("audience.tokens", "must hold at most 100 entries"),
        ),
        (audience({"tokens": []}), invalid("audience.tokens", "must be a non-empty array")),
        (audience({"tokens": "t"}), invalid("audience.tokens", "must be a non-empty array")),
        (
            audience({"tokens": ["t", 5]}),
            invalid("audience.tokens[1]", "must be a string of 1-255 characters"),
        ),
        (
            audience({"aliases": ["a" * 256]}),
            invalid("audience.aliases[0]", "must be a string of 1-255 characters"),
        ),
        (audience({"tags": [""]}), invalid("audience.tags[0]", "must be a string of 1-255 characters")),
        (segment(), invalid("audience.tags_segment", "must be an array of 1-256 entries")),
        (
            segment(*[term(f"tag{i}") for i in range(257)]),
            invalid("audience.tags_segment", "must be an array of 1-256 entries"),
        ),
        (
            segment(term(association="XOR")),
            invalid("audience.tags_segment[0].association", "must be one of AND, AND_NOT, OR, OR_NOT"),
        ),
        (
            segment(term(), term("b", association="and")),
            invalid("audience.tags_segment[1].association", "must be one of AND, AND_NOT, OR, OR_NOT"),
        ),
        (
            segment({"name": existing_tag}),
            invalid("audience.tags_segment[0].association", "must be one of AND, AND_NOT, OR, OR_NOT"),
        ),
        (segment(term("")), invalid("audience.tags_segment[0].name", "must be a string of 1-255 characters")),
        (
            segment(term("n" * 256)),
            invalid("audience.tags_segment[0].name", "must be a string of 1-255 characters"),
        ),
        (
            segment({"association": "OR"}),
            invalid("audience.tags_segment[0].name", "must be a string of 1-255 characters"),
        ),
        (
            segment(term("CARS"), term("cars", "OR")),
            invalid("audience.tags_segment[1].name", "must be unique (case-insensitive) in tags_segment"),
        ),
        (
            segment(term(existing_tag), term("ghost", "AND_NOT")),
            invalid("audience.tags_segment[1].name", "there is no tag 'ghost' in this app"),
        ),
        (segment("cars"), invalid("audience.tags_segment[0]", "must be an object with association and name")),
    ]
    for key, field in integer_fields:
        out_of_range: tuple[Any, ...] = (-1, 2_419_201, "2419201", 10**30, "9" * 5000)
        not_integers: tuple[Any, ...] = ("abc", "", "-1", "1e3", 1.5, 60.0, True, [60], "²", "٣")
        for value in out_of_range:
            rules.append(
                ({key: value, "payload": ok_payload}, invalid(field, "must be between 0 and 2419200"))
            )
        for value in not_integers:
            rules.append(({key: value, "payload": ok_payload}, invalid(field, "must be an integer")))
    for key in ("icon", "image"):
        field = f"payload.{key}"
        image_cases: list[tuple[Any, str]] = [
            ("https://example.com/icon.gif", "must end with .jpg, .jpeg or .png"),
            ("https://example.com/png", "must end with .jpg, .jpeg or .png"),
            ("https://example.com/icon.png/", "must end with .jpg, .jpeg or .png"),
            (" https://example.com/icon.png", "must not start or end with spaces or tabs"),
            ("https://example.com/icon.png\t", "must not start or end with spaces or tabs"),
            (long_url, "must be at most 1000 characters"),
            ("icon.png", "must be a valid http(s) URL"),
            ("ftp://example.com/icon.png", "must be a valid http(s) URL"),
            ("https://[example.com/icon.png", "must be a valid http(s) URL"),
            (12, "must be a string"),
        ]
        for value, why in image_cases:
            rules.append((payload(**{key: value}), invalid(field, why)))
    return rules


async def test_every_documented_rule_broken_once(quiet_api: Api, db: Database) -> None:
    tenant = await new_app(db, plan="unlimited")
    await add_tags(db, tenant, ["cars", "b"])
    for body, expected in _rules("cars"):
        answer = await quiet_api.client.post("/api/v3/push", json=body, auth=tenant.auth)
        assert (answer.status_code, answer.json()) == (422, expected), json.dumps(body)[:300]


async def test_bodies_that_are_not_json_objects_are_400(quiet_api: Api, db: Database) -> None:
    tenant = await new_app(db)
    not_object = vendor_error("The request body must be a JSON object", "body", "BAD_REQUEST")
    for content in (b"", b"[]", b'[{"payload": {}}]', b"null", b"3", b'"payload"'):
        answer = await quiet_api.client.post("/api/v3/push", content=content, auth=tenant.auth)
        assert (answer.status_code, answer.json()) == (400, not_object), content
    for content in (b"{", b"payload=x", b"{'payload': {}}", b"\xff{}"):
        answer = await quiet_api.client.post("/api/v3/push", content=content, auth=tenant.auth)
        assert answer.status_code == 400, content
        body = answer.json()
        assert body["errorDescription"].startswith("The request body is not valid JSON"), body
        assert body == vendor_error(body["errorDescription"], "body", "BAD_REQUEST")


def _widest_size(content: Content, display_time_s: int = 60) -> int:
    return len(payloads.encode(payloads.build(payloads.WIDEST_CAMPAIGN_ID, content, display_time_s, None)))


async def test_payload_must_fit_one_web_push_message(quiet_api: Api, db: Database) -> None:
    tenant = await new_app(db, plan="unlimited")
    too_big = vendor_error("payload: the notification must fit 3993 bytes once encoded", "payload")
    buttons = [{"title": "€" * 48, "url": "https://example.com/" + "b" * 900}] * 2
    every_field_near_its_limit = {
        "message": "€" * 1000,
        "title": "ü" * 900,
        "redirect_url": "https://example.com/",
        "buttons": buttons,
    }
    answer = await push(quiet_api.client, tenant, payload=every_field_near_its_limit)
    assert (answer.status_code, answer.json()) == (422, too_big)

    # Grow a multibyte message until it sits exactly at the limit: accepted; one byte more: refused.
    base = {"title": "Ω" * 700, "redirect_url": "https://example.com/", "icon": "https://example.com/i.png"}
    content = Content(message="", title=base["title"], redirect_url=base["redirect_url"], icon=base["icon"])
    room = payloads.MAX_PAYLOAD_BYTES - _widest_size(content)
    message = "€" * (room // 3) + "a" * (room % 3)
    assert len(message) <= 1000
    exact = Content(
        message=message, title=base["title"], redirect_url=base["redirect_url"], icon=base["icon"]
    )
    assert _widest_size(exact) == payloads.MAX_PAYLOAD_BYTES
    answer = await push(quiet_api.client, tenant, payload={**base, "message": message})
    assert answer.status_code == 200, answer.text
    answer = await push(quiet_api.client, tenant, payload={**base, "message": message + "a"})
    assert (answer.status_code, answer.json()) == (422, too_big)


async def test_every_clickable_url_follows_one_rule(quiet_api: Api, db: Database) -> None:
    """A button's url and the redirect_url refuse the same unsafe schemes (a button once took
    javascript:); a button keeps other schemes (mailto:, an app's links), redirect_url is http(s)."""
    tenant = await new_app(db, plan="unlimited")
    unsafe = {
        "javascript:alert(1)": "javascript",
        "JavaScript:alert(document.cookie)": "javascript",
        "vbscript:msgbox(1)": "vbscript",
        "data:text/html;base64,PHNjcmlwdD4=": "data",
        "file:///etc/passwd": "file",
        "blob:https://example.com/0a1b": "blob",
        "about:blank": "about",
    }
    for url, scheme in unsafe.items():
        button = {"title": "Go", "url": url}
        answer = await push(quiet_api.client, tenant, payload={**MESSAGE, "buttons": [button]})
        expected = invalid("payload.buttons[0].url", f"must not use the {scheme}: scheme")
        assert (answer.status_code, answer.json()) == (422, expected), url
        answer = await push(quiet_api.client, tenant, payload={**MESSAGE, "redirect_url": url})
        expected = invalid("payload.redirect_url", "must be a valid http(s) URL")
        assert (answer.status_code, answer.json()) == (422, expected), url
    for url in ("java\tscript:alert(1)", "https:no-host", "https://[::1/"):
        answer = await push(
            quiet_api.client, tenant, payload={**MESSAGE, "buttons": [{"title": "G", "url": url}]}
        )
        expected = invalid("payload.buttons[0].url", "must be a valid URI (RFC 3986)")
        assert (answer.status_code, answer.json()) == (422, expected), url
    for url in ("mailto:a@b.c", "myapp://open/42", "tel:+3312345678", "https://example.com/a?b=c#d"):
        answer = await push(
            quiet_api.client, tenant, payload={**MESSAGE, "buttons": [{"title": "G", "url": url}]}
        )
        assert answer.status_code == 200, (url, answer.text)
