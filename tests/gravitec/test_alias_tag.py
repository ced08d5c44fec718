"""/api/v3/alias and /api/v3/tag: every documented status and body, word for word."""

from __future__ import annotations

from typing import Any

from clarion.db import Database
from clarion.models import App
from clarion.subscriber import service as subscribers
from clarion.subscriber.repository import SubscriberRepository
from tests.app_tenant.factory import Tenant, new_app, subscribe, subscribe_with_proof, vendor_error
from tests.conftest import Api
from tests.fakes.push_service import FakePushService

NO_FOLLOWER = vendor_error("There is no follower with this regId!")
TOO_LONG = vendor_error("Max alias length is 255!")
NO_TAG = vendor_error("The follower doesn't have this tag!")
ALIAS_ADDED = {"success": True, "message": "The alias was successfully added"}
TAG_ADDED = {"success": True, "message": "Tag was successfully added"}
TAG_DELETED = {"success": True, "message": "Tag was successfully deleted"}


def missing(name: str) -> dict[str, Any]:
    return vendor_error(f'Required String parameter "{name}" is not present', name, "BAD_REQUEST")


async def tag_names(db: Database, tenant: Tenant, reg_id: str) -> list[str]:
    async with db.session() as session:
        app = await session.get(App, tenant.app_id)
        assert app is not None
        found = await subscribers.find(session, app, reg_id)
        assert found is not None
        return await SubscriberRepository(session).tag_names(found.id)


async def test_alias(quiet_api: Api, db: Database, fake: FakePushService) -> None:
    tenant, other = await new_app(db), await new_app(db, name="other")
    reg_id, held = await subscribe_with_proof(quiet_api.client, tenant, fake)
    client = quiet_api.client

    async def get_alias(regid: str, auth: tuple[str, str] = tenant.auth) -> tuple[int, Any]:
        answer = await client.get("/api/v3/alias", params={"regId": regid}, auth=auth)
        return answer.status_code, answer.json()

    async def post_alias(params: dict[str, str]) -> tuple[int, Any]:
        answer = await client.post("/api/v3/alias", params=params, auth=tenant.auth)
        return answer.status_code, answer.json()

    # The four documented GET bodies, booleans spelt as the vendor's strings.
    assert await get_alias("okf8kj589ktGF5g3gF#gf3#46g^^6gfGfgfgfg%g5g") == (200, {"regIdExists": "false"})
    no_alias = {"regIdExists": "true", "aliasExists": "false", "isActiveFollower": "true"}
    assert await get_alias(reg_id) == (200, no_alias)

    assert await post_alias({"regId": reg_id, "name": "alias1"}) == (200, ALIAS_ADDED)
    with_alias = {"regIdExists": "true", "aliasExists": "true", "isActiveFollower": "true", "alias": "alias1"}
    assert await get_alias(reg_id) == (200, with_alias)

    unsubscribed = await client.delete(
        f"/sdk/v1/subscribers/{reg_id}", params={"app_key": tenant.app_key}, headers=held
    )
    assert unsubscribed.status_code == 204
    inactive = {"regIdExists": "true", "aliasExists": "true", "isActiveFollower": "false", "alias": "alias1"}
    assert await get_alias(reg_id) == (200, inactive)

    # A new alias replaces the old one; 255 symbols is the most.
    longest = "a" * 254 + "é"
    assert await post_alias({"regId": reg_id, "name": longest}) == (200, ALIAS_ADDED)
    assert (await get_alias(reg_id))[1]["alias"] == longest

    # The documented errors, word for word.
    assert await post_alias({"regId": reg_id, "name": "a" * 256}) == (422, TOO_LONG)
    assert await post_alias({"regId": "someregid", "name": "newalias"}) == (422, NO_FOLLOWER)
    assert await post_alias({"regId": reg_id}) == (400, missing("name"))
    assert await post_alias({"regId": reg_id, "name": ""}) == (400, missing("name"))
    assert await post_alias({"name": "newalias"}) == (400, missing("regId"))
    assert await post_alias({"regId": "", "name": "newalias"}) == (400, missing("regId"))
    assert await post_alias({}) == (400, missing("regId"))
    assert (await get_alias(reg_id))[1]["alias"] == longest, "a refused request changes nothing"
    regid_missing = vendor_error("Required String parameter regId is not present", "regId", "BAD_REQUEST")
    assert await get_alias("") == (400, regid_missing)
    answer = await client.get("/api/v3/alias", auth=tenant.auth)
    assert (answer.status_code, answer.json()) == (400, regid_missing)

    # Names and values are case-sensitive; another app's subscriber is nobody here.
    assert await get_alias(reg_id.swapcase()) == (200, {"regIdExists": "false"})
    assert await get_alias(reg_id, other.auth) == (200, {"regIdExists": "false"})
    answer = await client.post("/api/v3/alias", params={"regId": reg_id, "name": "x"}, auth=other.auth)
    assert (answer.status_code, answer.json()) == (422, NO_FOLLOWER)
    answer = await client.post("/api/v3/alias", params={"RegId": reg_id, "Name": "x"}, auth=tenant.auth)
    assert (answer.status_code, answer.json()) == (400, missing("regId"))

    # Parameters may also come as a JSON body (what some client libraries send).
    answer = await client.post("/api/v3/alias", json={"regId": reg_id, "name": "from-json"}, auth=tenant.auth)
    assert (answer.status_code, answer.json()) == (200, ALIAS_ADDED)
    assert (await get_alias(reg_id))[1]["alias"] == "from-json"


async def test_tags_are_case_insensitive_and_keep_the_first_spelling(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    reg_id, neighbour = (
        await subscribe(quiet_api.client, tenant, fake),
        await subscribe(quiet_api.client, tenant, fake),
    )
    client = quiet_api.client

    async def tag(
        method: str, params: dict[str, str], auth: tuple[str, str] = tenant.auth
    ) -> tuple[int, Any]:
        answer = await client.request(method, "/api/v3/tag", params=params, auth=auth)
        return answer.status_code, answer.json()

    assert await tag("POST", {"regId": reg_id, "name": "News"}) == (200, TAG_ADDED)
    assert await tag("POST", {"regId": reg_id, "name": "news"}) == (200, TAG_ADDED)
    assert await tag("POST", {"regId": reg_id, "name": "NEWS"}) == (200, TAG_ADDED)
    assert await tag("POST", {"regId": neighbour, "name": "nEwS"}) == (200, TAG_ADDED)
    assert await tag("POST", {"regId": reg_id, "name": "Sport"}) == (200, TAG_ADDED)
    assert await tag_names(db, tenant, reg_id) == ["News", "Sport"]
    assert await tag_names(db, tenant, neighbour) == ["News"]

    assert await tag("DELETE", {"regId": reg_id, "name": "NEWS"}) == (200, TAG_DELETED)
    assert await tag("DELETE", {"regId": reg_id, "name": "news"}) == (422, NO_TAG)
    assert await tag_names(db, tenant, reg_id) == ["Sport"]
    assert await tag_names(db, tenant, neighbour) == ["News"], "only this follower lost the tag"
    assert await tag("DELETE", {"regId": reg_id, "name": "never-seen"}) == (422, NO_TAG)

    # 255 symbols is the most (the documented message says "alias" for tags too).
    longest = "t" * 255
    assert await tag("POST", {"regId": reg_id, "name": longest}) == (200, TAG_ADDED)
    assert await tag("DELETE", {"regId": reg_id, "name": longest.upper()}) == (200, TAG_DELETED)
    # A tag is matched by its case-folded form, which must fit the same 255 symbols ("ß" folds to "ss").
    assert await tag("POST", {"regId": reg_id, "name": "Straße" * 36}) == (200, TAG_ADDED)
    assert await tag("DELETE", {"regId": reg_id, "name": "STRASSE" * 36}) == (200, TAG_DELETED)
    for method in ("POST", "DELETE"):
        assert await tag(method, {"regId": reg_id, "name": "ß" * 255}) == (422, TOO_LONG)
        assert await tag(method, {"regId": reg_id, "name": "t" * 256}) == (422, TOO_LONG)
        assert await tag(method, {"regId": "someregid", "name": "Sport"}) == (422, NO_FOLLOWER)
        assert await tag(method, {"regId": reg_id}) == (400, missing("name"))
        assert await tag(method, {"name": "Sport"}) == (400, missing("regId"))
        assert await tag(method, {"regId": "", "name": ""}) == (400, missing("regId"))
        other = await new_app(db, name=f"other {method}")
        assert await tag(method, {"regId": reg_id, "name": "Sport"}, other.auth) == (422, NO_FOLLOWER)
    assert await tag_names(db, tenant, reg_id) == ["Sport"]
