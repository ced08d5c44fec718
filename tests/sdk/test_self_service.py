"""The subscriber endpoints a browser calls for itself, authorised by its own subscription (docs/sdk.md)."""

from __future__ import annotations

from typing import Any

import pytest

from clarion.db import Database
from clarion.subscriber.self_schemas import MAX_TAGS_PER_CALL
from clarion.subscriber.self_service import AUTH_HEADER
from tests.app_tenant.factory import native_error, new_app
from tests.conftest import Api
from tests.fakes.push_service import FakePushService
from tests.sdk.visitor import Visitor, new_visitor

REFUSED = native_error("unauthorized", "There is no subscriber with this regId and auth", "regId")
MISSING = native_error("unauthorized", f"The {AUTH_HEADER} header is required", AUTH_HEADER)
TOO_LONG = native_error("alias_too_long", "Max alias length is 255!")

# Every self-service call: (method, path suffix, body).
CALLS: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("PUT", "/alias", {"alias": "intruder"}),
    ("GET", "/tags", None),
    ("POST", "/tags", {"tag": "intruder"}),
    ("PUT", "/tags", {"tags": ["intruder"]}),
    ("DELETE", "/tags/news", None),
    ("DELETE", "/tags", None),
    ("POST", "/test", {}),
]


def view(
    visitor: Visitor, alias: str | None = None, tags: list[str] | None = None, active: bool = True
) -> Any:
    return {"regId": visitor.reg_id, "alias": alias, "tags": tags or [], "active": active}


async def alias_state(api: Api, visitor: Visitor) -> dict[str, str]:
    answer = await api.client.get("/api/v3/alias", params={"regId": visitor.reg_id}, auth=visitor.tenant.auth)
    assert answer.status_code == 200, answer.text
    body: dict[str, str] = answer.json()
    return body


async def test_app_description_is_public(quiet_api: Api, db: Database) -> None:
    tenant = await new_app(db)
    answer = await quiet_api.client.get(f"/sdk/v1/apps/{tenant.app_key}")
    assert answer.status_code == 200
    assert answer.json() == {"app_key": tenant.app_key, "vapid_public_key": tenant.vapid_public_key}
    assert "secret" not in answer.text

    unknown = await quiet_api.client.get("/sdk/v1/apps/no-such-app")
    assert unknown.status_code == 404
    assert unknown.json() == native_error("not_found", "There is no app with app_key: no-such-app", "app_key")


async def test_a_browser_reads_its_own_subscriber(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    visitor = await new_visitor(quiet_api.client, await new_app(db), fake)
    answer = await visitor.call(quiet_api.client, "GET")
    assert answer.status_code == 200
    assert answer.json() == view(visitor)


@pytest.mark.parametrize(("method", "suffix", "body"), CALLS)
async def test_every_call_needs_the_subscription_auth(
    quiet_api: Api, db: Database, fake: FakePushService, method: str, suffix: str, body: Any
) -> None:
    visitor = await new_visitor(quiet_api.client, await new_app(db), fake)
    client = quiet_api.client

    missing = await visitor.call(client, method, suffix, body, headers={})
    assert (missing.status_code, missing.json()) == (401, MISSING)
    # No HTTP authentication challenge: browsers would pop up a login dialog on the site.
    assert "www-authenticate" not in missing.headers
    empty = await visitor.call(client, method, suffix, body, headers=visitor.headers(""))
    assert (empty.status_code, empty.json()) == (401, MISSING)

    for wrong in ("x", visitor.auth[:-1], visitor.auth + "A", visitor.auth.lower()):
        answer = await visitor.call(client, method, suffix, body, headers=visitor.headers(wrong))
        assert (answer.status_code, answer.json()) == (401, REFUSED), wrong
        assert "www-authenticate" not in answer.headers

    # The p256dh key is public (the push service sees it): it is no substitute for the secret.
    by_key = await visitor.call(
        client, method, suffix, body, headers=visitor.headers(visitor.subscription.p256dh)
    )
    assert (by_key.status_code, by_key.json()) == (401, REFUSED)

    # An unknown regId answers exactly like a wrong secret.
    unknown = await client.request(
        method,
        f"/sdk/v1/subscribers/unknown{suffix}",
        json=body,
        params=visitor.params(),
        headers=visitor.headers(),
    )
    assert (unknown.status_code, unknown.json()) == (401, REFUSED)

    # Another app's key does not reach this app's subscriber.
    other = await new_app(db, name="other")
    elsewhere = await visitor.call(client, method, suffix, body, params={"app_key": other.app_key})
    assert (elsewhere.status_code, elsewhere.json()) == (401, REFUSED)

    no_app = await visitor.call(client, method, suffix, body, params={})
    assert no_app.status_code == 400
    assert no_app.json()["field"] == "app_key"

    # Nothing changed.
    assert await alias_state(quiet_api, visitor) == {
        "regIdExists": "true",
        "aliasExists": "false",
        "isActiveFollower": "true",
    }
    assert (await visitor.call(client, "GET")).json() == view(visitor)


async def test_one_visitor_cannot_read_or_change_another(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    alice = await new_visitor(quiet_api.client, tenant, fake)
    bob = await new_visitor(quiet_api.client, tenant, fake)
    client = quiet_api.client
    assert (await alice.call(client, "PUT", "/alias", {"alias": "alice"})).status_code == 200
    assert (await alice.call(client, "POST", "/tags", {"tag": "news"})).status_code == 200

    # Bob knows Alice's regId (say, from a shared link) but only his own secret.
    for method, suffix, body in CALLS:
        answer = await alice.call(client, method, suffix, body, headers=bob.headers())
        assert (answer.status_code, answer.json()) == (401, REFUSED), (method, suffix)
    resubscribe = await alice.call(
        client,
        "POST",
        "/resubscribe",
        {"subscription": fake.new_subscription().to_json()},
        headers=bob.headers(),
    )
    assert (resubscribe.status_code, resubscribe.json()) == (401, REFUSED)

    assert (await alice.call(client, "GET")).json() == view(alice, "alice", ["news"])
    assert (await bob.call(client, "GET")).json() == view(bob)
    assert (await alias_state(quiet_api, alice))["alias"] == "alice"


async def test_alias_follows_the_v3_rules(quiet_api: Api, db: Database, fake: FakePushService) -> None:
    visitor = await new_visitor(quiet_api.client, await new_app(db), fake)
    client = quiet_api.client

    answer = await visitor.call(client, "PUT", "/alias", {"alias": "user-42"})
    assert (answer.status_code, answer.json()) == (200, view(visitor, "user-42"))
    assert await alias_state(quiet_api, visitor) == {
        "regIdExists": "true",
        "aliasExists": "true",
        "isActiveFollower": "true",
        "alias": "user-42",
    }

    longest = "é" * 255
    assert (await visitor.call(client, "PUT", "/alias", {"alias": longest})).json()["alias"] == longest
    too_long = await visitor.call(client, "PUT", "/alias", {"alias": "a" * 256})
    assert (too_long.status_code, too_long.json()) == (422, TOO_LONG)

    empty = await visitor.call(client, "PUT", "/alias", {"alias": ""})
    assert empty.status_code == 422
    assert empty.json()["field"] == "alias"
    number = await visitor.call(client, "PUT", "/alias", {"alias": 42})
    assert (number.status_code, number.json()["field"]) == (422, "alias")
    missing = await visitor.call(client, "PUT", "/alias", {})
    assert (missing.status_code, missing.json()["field"]) == (422, "alias")
    not_json = await client.put(
        visitor.path("/alias"), content=b"{", params=visitor.params(), headers=visitor.headers()
    )
    assert (not_json.status_code, not_json.json()["error"]) == (400, "bad_request")
    nul = await visitor.call(client, "PUT", "/alias", {"alias": "a\u0000b"})
    assert (nul.status_code, nul.json()["field"]) == (422, "alias")

    assert (await alias_state(quiet_api, visitor))["alias"] == longest


async def test_tags_are_case_insensitive_and_keep_the_first_spelling(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    one = await new_visitor(quiet_api.client, tenant, fake)
    two = await new_visitor(quiet_api.client, tenant, fake)
    client = quiet_api.client

    assert (await one.call(client, "POST", "/tags", {"tag": "News"})).json() == view(one, tags=["News"])
    assert (await one.call(client, "POST", "/tags", {"tag": "nEWS"})).json() == view(one, tags=["News"])
    # The app's first spelling holds for everyone.
    assert (await two.call(client, "POST", "/tags", {"tag": "NEWS"})).json() == view(two, tags=["News"])
    assert (await one.call(client, "POST", "/tags", {"tag": "sport/football"})).status_code == 200
    tags = await one.call(client, "GET", "/tags")
    assert (tags.status_code, tags.json()) == (200, {"tags": ["News", "sport/football"]})

    # Removing is case-insensitive too, and a tag name may hold a slash or any character.
    removed = await one.call(client, "DELETE", "/tags/news")
    assert removed.json() == view(one, tags=["sport/football"])
    removed = await one.call(client, "DELETE", "/tags/SPORT%2FFootball")
    assert removed.json() == view(one)
    absent = await one.call(client, "DELETE", "/tags/news")
    assert (absent.status_code, absent.json()) == (
        422,
        native_error("tag_not_on_subscriber", "The follower doesn't have this tag!"),
    )
    assert (await two.call(client, "GET", "/tags")).json() == {"tags": ["News"]}


async def test_tag_names_are_checked(quiet_api: Api, db: Database, fake: FakePushService) -> None:
    visitor = await new_visitor(quiet_api.client, await new_app(db), fake)
    client = quiet_api.client

    assert (await visitor.call(client, "POST", "/tags", {"tag": "t" * 255})).status_code == 200
    for name in ("t" * 256, "ß" * 128):  # "ß" folds to "ss": 256 symbols once folded
        answer = await visitor.call(client, "POST", "/tags", {"tag": name})
        assert (answer.status_code, answer.json()) == (422, TOO_LONG), name
        removal = await visitor.call(client, "DELETE", f"/tags/{name}")
        assert (removal.status_code, removal.json()) == (422, TOO_LONG), name
    for body in ({"tag": ""}, {"tag": ["a"]}, {}, {"tag": None}):
        answer = await visitor.call(client, "POST", "/tags", body)
        assert (answer.status_code, answer.json()["field"]) == (422, "tag"), body
    nul = await visitor.call(client, "DELETE", "/tags/a%00b")
    assert nul.status_code == 422
    assert (await visitor.call(client, "GET", "/tags")).json() == {"tags": ["t" * 255]}


async def test_set_tags_replaces_the_set_all_or_nothing(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    visitor = await new_visitor(quiet_api.client, await new_app(db), fake)
    client = quiet_api.client
    await visitor.call(client, "POST", "/tags", {"tag": "old"})

    answer = await visitor.call(client, "PUT", "/tags", {"tags": ["b", "Apple", "APPLE", "b"]})
    assert (answer.status_code, answer.json()) == (200, view(visitor, tags=["Apple", "b"]))

    # One bad name and nothing changes.
    bad = await visitor.call(client, "PUT", "/tags", {"tags": ["fine", "x" * 256]})
    assert (bad.status_code, bad.json()) == (422, TOO_LONG)
    empty_name = await visitor.call(client, "PUT", "/tags", {"tags": ["fine", ""]})
    assert (empty_name.status_code, empty_name.json()["field"]) == (422, "tags[1]")
    too_many = await visitor.call(
        client, "PUT", "/tags", {"tags": [f"t{i}" for i in range(MAX_TAGS_PER_CALL + 1)]}
    )
    assert (too_many.status_code, too_many.json()["field"]) == (422, "tags")
    not_list = await visitor.call(client, "PUT", "/tags", {"tags": "a"})
    assert (not_list.status_code, not_list.json()["field"]) == (422, "tags")
    assert (await visitor.call(client, "GET", "/tags")).json() == {"tags": ["Apple", "b"]}

    most = [f"t{i}" for i in range(MAX_TAGS_PER_CALL)]
    assert (
        len((await visitor.call(client, "PUT", "/tags", {"tags": most})).json()["tags"]) == MAX_TAGS_PER_CALL
    )
    cleared = await visitor.call(client, "PUT", "/tags", {"tags": []})
    assert cleared.json() == view(visitor)


async def test_remove_all_tags_leaves_other_subscribers_alone(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    one = await new_visitor(quiet_api.client, tenant, fake)
    two = await new_visitor(quiet_api.client, tenant, fake)
    client = quiet_api.client
    await one.call(client, "PUT", "/tags", {"tags": ["a", "b"]})
    await two.call(client, "PUT", "/tags", {"tags": ["a"]})

    answer = await one.call(client, "DELETE", "/tags")
    assert (answer.status_code, answer.json()) == (200, view(one))
    assert (await one.call(client, "DELETE", "/tags")).json() == view(one)
    assert (await two.call(client, "GET", "/tags")).json() == {"tags": ["a"]}


async def test_an_unsubscribed_browser_still_reads_itself(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    visitor = await new_visitor(quiet_api.client, await new_app(db), fake)
    gone = await quiet_api.client.delete(visitor.path(), params=visitor.params(), headers=visitor.headers())
    assert gone.status_code == 204
    assert (await visitor.call(quiet_api.client, "GET")).json() == view(visitor, active=False)


async def native_device(api: Api, tenant: Any, token: str) -> str:
    body = {"app_key": tenant.app_key, "platform": "android", "token": token}
    answer = await api.client.post("/sdk/v1/subscribers", json=body)
    assert answer.status_code == 201, answer.text
    reg_id: str = answer.json()["regId"]
    return reg_id


async def native_call(
    api: Api, tenant: Any, reg_id: str, proof: str | None, method: str, suffix: str = "", body: Any = None
) -> Any:
    headers = {} if proof is None else {AUTH_HEADER: proof}
    return await api.client.request(
        method,
        f"/sdk/v1/subscribers/{reg_id}{suffix}",
        params={"app_key": tenant.app_key},
        json=body,
        headers=headers,
    )


@pytest.mark.parametrize(("method", "suffix", "body"), CALLS)
async def test_a_native_device_proves_itself_with_its_token_on_every_call(
    quiet_api: Api, db: Database, method: str, suffix: str, body: Any
) -> None:
    tenant = await new_app(db)
    token = "fcm-registration-token:APA91bSelfService"
    reg_id = await native_device(quiet_api, tenant, token)
    other = await native_device(quiet_api, tenant, "fcm-registration-token:APA91bSomeoneElse")

    missing = await native_call(quiet_api, tenant, reg_id, None, method, suffix, body)
    assert (missing.status_code, missing.json()) == (401, MISSING)
    # A near miss, the regId itself, another device's token, the dummy: refused like an unknown regId.
    for wrong in (
        token[:-1],
        token + "x",
        token.upper(),
        reg_id,
        "-" * 22,
        "fcm-registration-token:APA91bSomeoneElse",
    ):
        answer = await native_call(quiet_api, tenant, reg_id, wrong, method, suffix, body)
        assert (answer.status_code, answer.json()) == (401, REFUSED), wrong
    # Another device's token does not open this one, and this one's does not open the other.
    crossed = await native_call(quiet_api, tenant, other, token, method, suffix, body)
    assert (crossed.status_code, crossed.json()) == (401, REFUSED)

    answer = await native_call(quiet_api, tenant, reg_id, token, method, suffix, body)
    assert (answer.status_code, answer.json()) == native_answer(reg_id, method, suffix, answer), answer.text


def native_answer(reg_id: str, method: str, suffix: str, answer: Any) -> tuple[int, Any]:
    """What each call answers a device that proved itself (with no alias or tag before it)."""
    plain: dict[str, Any] = {"regId": reg_id, "alias": None, "tags": [], "active": True}
    expected: dict[tuple[str, str], tuple[int, Any]] = {
        ("GET", ""): (200, plain),
        ("PUT", "/alias"): (200, {**plain, "alias": "intruder"}),
        ("GET", "/tags"): (200, {"tags": []}),
        ("POST", "/tags"): (200, {**plain, "tags": ["intruder"]}),
        ("PUT", "/tags"): (200, {**plain, "tags": ["intruder"]}),
        ("DELETE", "/tags/news"): (
            422,
            native_error("tag_not_on_subscriber", "The follower doesn't have this tag!"),
        ),
        ("DELETE", "/tags"): (200, plain),
        # A test notification to the device: a campaign of its own (its id is new).
        ("POST", "/test"): (202, {"campaign_id": answer.json().get("campaign_id")}),
    }
    return expected[(method, suffix)]


async def test_a_native_device_manages_its_own_alias_and_tags(quiet_api: Api, db: Database) -> None:
    tenant = await new_app(db)
    token = "apns-device-token-0123456789abcdef"
    reg_id = await native_device(quiet_api, tenant, token)

    named = await native_call(quiet_api, tenant, reg_id, token, "PUT", "/alias", {"alias": "user-42"})
    assert (named.status_code, named.json()) == (
        200,
        {"regId": reg_id, "alias": "user-42", "tags": [], "active": True},
    )
    tagged = await native_call(quiet_api, tenant, reg_id, token, "PUT", "/tags", {"tags": ["news", "sport"]})
    assert tagged.json() == {"regId": reg_id, "alias": "user-42", "tags": ["news", "sport"], "active": True}
    untagged = await native_call(quiet_api, tenant, reg_id, token, "DELETE", "/tags/news")
    assert untagged.json() == {"regId": reg_id, "alias": "user-42", "tags": ["sport"], "active": True}
    listed = await native_call(quiet_api, tenant, reg_id, token, "GET", "/tags")
    assert (listed.status_code, listed.json()) == (200, {"tags": ["sport"]})
    # Resubscribing is a browser's move onto a new subscription: a device registers its new token.
    moved = await native_call(
        quiet_api,
        tenant,
        reg_id,
        token,
        "POST",
        "/resubscribe",
        {
            "subscription": {
                "endpoint": "http://127.0.0.1:9/push/x",
                "keys": {"p256dh": "A" * 87, "auth": "B" * 22},
            }
        },
    )
    assert moved.status_code == 422, moved.text

    gone = await quiet_api.client.delete(
        f"/sdk/v1/subscribers/{reg_id}", params={"app_key": tenant.app_key}, headers={AUTH_HEADER: token}
    )
    assert gone.status_code == 204
    read = await native_call(quiet_api, tenant, reg_id, token, "GET")
    assert read.json() == {"regId": reg_id, "alias": "user-42", "tags": ["sport"], "active": False}
