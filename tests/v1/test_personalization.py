"""Subscriber attributes, templates and per-language content through /v1 and the Web SDK's API, over
real HTTP against `clarion serve` on SQLite and PostgreSQL, delivered to the fake push service and
decrypted there (docs/personalization.md)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.fakes.push_service import FakePushService
from tests.v1.conftest import V1, basic, wait_for

PAYLOAD = {"title": "Breaking", "message": "Hello", "redirect_url": "https://example.com/news"}


def _subscriber(v1: V1, fake: FakePushService, app: dict[str, Any], **extra: Any) -> tuple[str, str]:
    """A Web Push subscriber registered with `extra` fields (language); (regId, the fake's sub id)."""
    sub = fake.new_subscription(application_server_key=app["vapid_public_key"])
    body = {"app_key": app["app_key"], "platform": "web", "subscription": sub.to_json(), **extra}
    response = httpx.post(f"{v1.server.url}/sdk/v1/subscribers", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["regId"], sub.sub_id


def _set(own: httpx.Client, app: dict[str, Any], reg_id: str, attributes: dict[str, Any]) -> httpx.Response:
    return own.patch(
        f"/apps/{app['app_key']}/subscribers/{reg_id}/attributes", json={"attributes": attributes}
    )


def _shown(fake: FakePushService, sub_id: str) -> dict[str, Any]:
    """The one notification the subscriber received, as its service worker reads it, less its id."""
    [received] = fake.received_for(sub_id)
    payload: dict[str, Any] = json.loads(received.payload)
    payload.pop("campaign_id")
    return payload


def _web(title: str, message: str, url: str, buttons: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "title": title,
        "message": message,
        "icon": None,
        "image": None,
        "redirect_url": url,
        "buttons": buttons or [],
        "display_time": 60,
        "tag": None,
    }


def test_attributes_are_merged_read_and_refused_past_their_limits_naming_the_field(
    v1: V1, fake: FakePushService
) -> None:
    app = v1.new_app()
    reg_id, _ = _subscriber(v1, fake, app)
    with v1.client(basic(app)) as own:
        first = _set(own, app, reg_id, {"first_name": "Ada", "plan": "pro"})
        merged = _set(own, app, reg_id, {"plan": None, "city": "London"})
        shown = own.get(f"/apps/{app['app_key']}/subscribers/{reg_id}/attributes")
        bad_key = _set(own, app, reg_id, {"1st": "x"})
        reserved = _set(own, app, reg_id, {"tags": "x"})
        long_value = _set(own, app, reg_id, {"bio": "x" * 256})
        not_text = _set(own, app, reg_id, {"age": 36})
        too_many = _set(own, app, reg_id, {f"k{n}": "v" for n in range(63)})
        after = own.get(f"/apps/{app['app_key']}/subscribers/{reg_id}/attributes")
        unknown = own.get(f"/apps/{app['app_key']}/subscribers/nobody/attributes")
    assert (first.status_code, first.json()) == (200, {"attributes": {"first_name": "Ada", "plan": "pro"}})
    assert merged.json() == {"attributes": {"city": "London", "first_name": "Ada"}}
    assert shown.json() == merged.json()
    assert (bad_key.status_code, bad_key.json()) == (
        422,
        {
            "error": "invalid_field",
            "message": "attributes.1st: a key is 1-64 letters, digits or '_', not starting with a digit",
            "field": "attributes.1st",
        },
    )
    assert (reserved.status_code, reserved.json()["field"]) == (422, "attributes.tags")
    assert (long_value.status_code, long_value.json()["field"]) == (422, "attributes.bio")
    assert (not_text.status_code, not_text.json()["field"]) == (422, "attributes.age")
    assert too_many.json() == {
        "error": "invalid_field",
        "message": "attributes: a subscriber holds at most 64 attributes",
        "field": "attributes",
    }
    assert after.json() == merged.json(), "a refused change changes nothing"
    assert unknown.status_code == 404


def test_templates_render_attributes_alias_tags_and_defaults_and_a_failing_recipient_fails_alone(
    v1: V1, fake: FakePushService
) -> None:
    app = v1.new_app()
    ada, ada_sub = _subscriber(v1, fake, app)
    bob, bob_sub = _subscriber(v1, fake, app)
    nobody, nobody_sub = _subscriber(v1, fake, app)
    key = app["app_key"]
    with v1.client(basic(app)) as own:
        assert _set(own, app, ada, {"first_name": "Ada", "plan": "pro"}).status_code == 200
        assert _set(own, app, bob, {"plan": "free"}).status_code == 200
    auth = basic(app)
    alias = httpx.post(f"{v1.server.url}/api/v3/alias", params={"regId": ada, "name": "ada l"}, auth=auth)
    tagged = httpx.post(f"{v1.server.url}/api/v3/tag", params={"regId": ada, "name": "vip"}, auth=auth)
    assert (alias.status_code, tagged.status_code) == (200, 200)
    payload = {
        "title": 'Hi {{ first_name | default("there") }}',
        "message": "You are on {{ plan }}{% if 'vip' in tags %} (VIP){% endif %}",
        "redirect_url": 'https://example.com/u?a={{ alias | default("") | urlencode }}',
        "buttons": [{"title": "{{ plan | upper }}", "url": "https://example.com/plans/{{ plan }}"}],
    }
    with v1.client(auth) as own:
        created = own.post(f"/apps/{key}/campaigns", json={"payload": payload})
        assert created.status_code == 201, created.text
        path = f"/apps/{key}/campaigns/{created.json()['campaign_id']}"
        shown = wait_for(own, path, "sent")
        outcomes = own.get(f"{path}/outcomes").json()["items"]
    assert _shown(fake, ada_sub) == _web(
        "Hi Ada",
        "You are on pro (VIP)",
        "https://example.com/u?a=ada%20l",
        [{"title": "PRO", "url": "https://example.com/plans/pro"}],
    )
    assert _shown(fake, bob_sub) == _web(
        "Hi there",
        "You are on free",
        "https://example.com/u?a=",
        [{"title": "FREE", "url": "https://example.com/plans/free"}],
    )
    assert fake.received_for(nobody_sub) == []
    rows = {row["reg_id"]: (row["status"], row["reason"]) for row in outcomes}
    assert rows == {
        ada: ("sent", None),
        bob: ("sent", None),
        nobody: ("rejected", "template: message: 'plan' is undefined"),
    }
    assert shown["funnel"]["failed_by_reason"] == {"template": 1}
    assert (shown["title"], shown["message"]) == (payload["title"], payload["message"])


def test_a_template_that_cannot_compile_is_a_422_naming_the_field(v1: V1) -> None:
    app = v1.new_app()
    base = f"/apps/{app['app_key']}/campaigns"
    languages = {"fr": {"message": "{% for t in tags %}{{ t }}{% endfor %}"}}
    with v1.client(basic(app)) as own:
        syntax = own.post(base, json={"payload": {**PAYLOAD, "title": "Hi {{ first_name"}})
        loop = own.post(base, json={"payload": PAYLOAD, "languages": languages})
        call = own.post(base, json={"payload": {**PAYLOAD, "message": "{{ first_name.upper() }}"}})
        filter_ = own.post(base, json={"payload": {**PAYLOAD, "message": "{{ plan | center(99999) }}"}})
        bad_url = own.post(base, json={"payload": {**PAYLOAD, "redirect_url": "ftp://x/{{ plan }}"}})
    assert (syntax.status_code, syntax.json()) == (
        422,
        {
            "error": "invalid_field",
            "message": "payload.title: the template does not compile: unexpected end of template, "
            "expected 'end of print statement'.",
            "field": "payload.title",
        },
    )
    assert loop.json() == {
        "error": "invalid_field",
        "message": "languages.fr.message: templates allow expressions, filters, tests and if/else only, "
        "not For",
        "field": "languages.fr.message",
    }
    assert (call.status_code, call.json()["field"]) == (422, "payload.message")
    assert (filter_.status_code, filter_.json()["field"]) == (422, "payload.message")
    assert (bad_url.status_code, bad_url.json()["field"]) == (422, "payload.redirect_url")


def test_a_sandbox_escape_fails_the_recipient_not_the_server(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app()
    reg_id, sub_id = _subscriber(v1, fake, app)
    payload = {**PAYLOAD, "message": "{{ attributes.__class__.__mro__ }}"}
    with v1.client(basic(app)) as own:
        created = own.post(f"/apps/{app['app_key']}/campaigns", json={"payload": payload})
        path = f"/apps/{app['app_key']}/campaigns/{created.json()['campaign_id']}"
        wait_for(own, path, "sent")
        [row] = own.get(f"{path}/outcomes").json()["items"]
    assert (row["reg_id"], row["status"]) == (reg_id, "rejected")
    assert row["reason"] == "template: message: access to attribute '__class__' of 'dict' object is unsafe."
    assert fake.received_for(sub_id) == []


def test_each_subscriber_gets_its_language_else_the_default(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app()
    _, canadian_sub = _subscriber(v1, fake, app, language="fr-CA")
    _, french_sub = _subscriber(v1, fake, app, language="FR")
    _, german_sub = _subscriber(v1, fake, app, language="de")
    _, unknown_sub = _subscriber(v1, fake, app)
    body = {
        "payload": {**PAYLOAD, "title": "Hello {{ first_name | default('you') }}"},
        "default_language": "en",
        "languages": {
            "fr": {"title": "Bonjour {{ first_name | default('toi') }}", "message": "Salut"},
            "fr-CA": {"message": "Allô", "redirect_url": "https://example.ca/"},
        },
    }
    with v1.client(basic(app)) as own:
        created = own.post(f"/apps/{app['app_key']}/campaigns", json=body)
        assert created.status_code == 201, created.text
        wait_for(own, f"/apps/{app['app_key']}/campaigns/{created.json()['campaign_id']}", "sent")
    assert _shown(fake, canadian_sub) == _web("Hello you", "Allô", "https://example.ca/")
    assert _shown(fake, french_sub) == _web("Bonjour toi", "Salut", "https://example.com/news")
    assert _shown(fake, german_sub) == _web("Hello you", "Hello", "https://example.com/news")
    assert _shown(fake, unknown_sub) == _web("Hello you", "Hello", "https://example.com/news")


def test_language_tags_are_checked_at_registration_and_creation(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app()
    sub = fake.new_subscription(application_server_key=app["vapid_public_key"])
    body = {
        "app_key": app["app_key"],
        "platform": "web",
        "subscription": sub.to_json(),
        "language": "english!",
    }
    refused = httpx.post(f"{v1.server.url}/sdk/v1/subscribers", json=body, timeout=10)
    with v1.client(basic(app)) as own:
        bad_tag = own.post(
            f"/apps/{app['app_key']}/campaigns",
            json={"payload": PAYLOAD, "languages": {"xx_1": {"message": "m"}}},
        )
        twice = own.post(
            f"/apps/{app['app_key']}/campaigns",
            json={"payload": PAYLOAD, "default_language": "fr", "languages": {"FR": {"message": "m"}}},
        )
    assert (refused.status_code, refused.json()["field"]) == (422, "language")
    assert (bad_tag.status_code, bad_tag.json()["field"]) == (422, "languages.xx_1")
    assert (twice.status_code, twice.json()["field"]) == (422, "languages.FR")


def test_audiences_select_by_attribute_equals_in_and_exists(v1: V1, fake: FakePushService) -> None:
    app = v1.new_app()
    pro, pro_sub = _subscriber(v1, fake, app)
    team, team_sub = _subscriber(v1, fake, app)
    free, free_sub = _subscriber(v1, fake, app)
    _, bare_sub = _subscriber(v1, fake, app)
    key = app["app_key"]
    with v1.client(basic(app)) as own:
        for reg_id, plan in ((pro, "pro"), (team, "team"), (free, "free")):
            assert (
                _set(
                    own, app, reg_id, {"plan": plan, "city": "Paris" if plan == "pro" else "Rome"}
                ).status_code
                == 200
            )

        def total(*conditions: dict[str, Any]) -> int:
            answer = own.post(f"/apps/{key}/audience/dry-run", json={"attributes": list(conditions)})
            assert answer.status_code == 200, answer.text
            return int(answer.json()["total"])

        counts = (
            total({"key": "plan", "op": "equals", "value": "pro"}),
            total({"key": "plan", "op": "in", "values": ["pro", "team", "gold"]}),
            total({"key": "plan", "op": "exists"}),
            total({"key": "nothing", "op": "exists"}),
            total(
                {"key": "plan", "op": "in", "values": ["pro", "team"]},
                {"key": "city", "op": "equals", "value": "Rome"},
            ),
        )
        wrong = own.post(
            f"/apps/{key}/audience/dry-run", json={"attributes": [{"key": "plan", "op": "equals"}]}
        )
        created = own.post(
            f"/apps/{key}/campaigns",
            json={"payload": PAYLOAD, "attributes": [{"key": "plan", "op": "in", "values": ["pro", "team"]}]},
        )
        wait_for(own, f"/apps/{key}/campaigns/{created.json()['campaign_id']}", "sent")
    assert counts == (1, 2, 3, 0, 1)
    assert (wrong.status_code, wrong.json()["field"]) == (422, "attributes[0]")
    got = {sub_id for sub_id in (pro_sub, team_sub, free_sub, bare_sub) if fake.received_for(sub_id)}
    assert got == {pro_sub, team_sub}
