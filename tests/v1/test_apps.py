"""/v1/apps over real HTTP: create, list, show, update, rotate, delete; who may do what."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.v1.conftest import V1, basic


def _read(created: dict[str, Any], **changed: Any) -> dict[str, Any]:
    """What show answers for an app created as `created` (its secrets are never shown again)."""
    kept = {k: v for k, v in created.items() if k not in ("app_secret", "identity_secret_key")}
    return {**kept, **changed}


def test_created_app_is_shown_listed_and_updated(v1: V1) -> None:
    app = v1.new_app("News")
    assert set(app) == {
        "app_id", "app_key", "name", "plan", "batch_push", "identity_verification",
        "vapid_public_key", "site_url", "default_icon", "vapid_subject", "created_at", "app_secret",
        "identity_secret_key", "default_timezone", "quiet_start", "quiet_end", "quiet_mode",
        "frequency_cap", "frequency_cap_period_s", "vapid_subject_warning", "vapid_failing",
    }  # fmt: skip
    assert (app["name"], app["plan"], app["batch_push"]) == ("News", "unlimited", True)
    assert (app["site_url"], app["default_icon"], app["vapid_subject"]) == (None, None, None)
    assert (app["frequency_cap"], app["frequency_cap_period_s"]) == (None, None)
    with v1.admin() as admin:
        assert admin.get(f"/apps/{app['app_key']}").json() == _read(app)
        listed = admin.get("/apps", params={"limit": 200}).json()
        assert _read(app) in listed["items"]
        patched = admin.patch(f"/apps/{app['app_key']}", json={"name": "Daily", "plan": "free"})
        assert patched.status_code == 200, patched.text
        assert patched.json() == _read(app, name="Daily", plan="free")
    with v1.client(basic(app)) as own:
        assert own.get(f"/apps/{app['app_key']}").json() == _read(app, name="Daily", plan="free")
        daily = _read(app, name="Daily", plan="free")
        assert own.get("/apps").json() == {"items": [daily], "next_cursor": None}
        off = own.patch(f"/apps/{app['app_key']}", json={"batch_push": False})
        assert off.json() == _read(app, name="Daily", plan="free", batch_push=False)
        site = {"site_url": "https://daily.example.com", "default_icon": "https://daily.example.com/i.png"}
        assert own.patch(f"/apps/{app['app_key']}", json=site).json() == {**off.json(), **site}
        bad_icon = own.patch(f"/apps/{app['app_key']}", json={"default_icon": "https://daily.example.com/i"})
        assert (bad_icon.status_code, bad_icon.json()) == (
            422,
            {
                "error": "invalid_field",
                "message": "default_icon: must end with .jpg, .jpeg or .png",
                "field": "default_icon",
            },
        )
        cleared = own.patch(f"/apps/{app['app_key']}", json={"default_icon": ""})
        assert cleared.json() == {**off.json(), **site, "default_icon": None}
        contact = own.patch(
            f"/apps/{app['app_key']}", json={"vapid_subject": "mailto:push@daily.example.com"}
        )
        assert contact.json()["vapid_subject"] == "mailto:push@daily.example.com"
        for bad in ("push@daily.example.com", "http://daily.example.com", "mailto:a b@example.com"):
            refused = own.patch(f"/apps/{app['app_key']}", json={"vapid_subject": bad})
            assert (refused.status_code, refused.json()) == (
                422,
                {
                    "error": "invalid_field",
                    "message": "vapid_subject: must be a mailto: or https: URI of at most 255 characters",
                    "field": "vapid_subject",
                },
            )


def test_list_pages_with_a_cursor(v1: V1) -> None:
    made = [v1.new_app(f"paged {n}")["app_key"] for n in range(3)]
    seen: list[str] = []
    cursor = None
    with v1.admin() as admin:
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = admin.get("/apps", params=params).json()
            assert len(page["items"]) <= 2
            seen += [item["app_key"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(set(seen), key=seen.index)  # each once
        assert set(made) <= set(seen)
        bad = admin.get("/apps", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422
    assert bad.json() == {
        "error": "invalid_field",
        "message": "cursor: is not a cursor from a previous page",
        "field": "cursor",
    }


def test_rotated_secret_is_shown_once_and_the_old_one_fails_at_once(v1: V1) -> None:
    app = v1.new_app()
    with v1.client(basic(app)) as own:
        rotated = own.post(f"/apps/{app['app_key']}/rotate-secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["app_secret"]
    expected = {"app_key": app["app_key"], "app_secret": new_secret, "identity_secret_key": None}
    assert rotated.json() == expected
    assert new_secret != app["app_secret"]
    with v1.client(basic(app)) as old:
        refused = old.get(f"/apps/{app['app_key']}")
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"
    with v1.client((app["app_key"], new_secret)) as new:
        assert new.get(f"/apps/{app['app_key']}").status_code == 200
        identity = new.post(f"/apps/{app['app_key']}/rotate-identity-key").json()
    assert identity["app_secret"] is None
    assert len(identity["identity_secret_key"]) == 32
    assert identity["identity_secret_key"] != app["identity_secret_key"]


def test_delete_needs_the_admin_and_the_name(v1: V1) -> None:
    app = v1.new_app("Doomed")
    with v1.client(basic(app)) as own:
        forbidden = own.delete(f"/apps/{app['app_key']}", params={"confirm": "Doomed"})
    assert forbidden.status_code == 403
    assert forbidden.json() == {
        "error": "forbidden",
        "message": "These credentials may not do this: the admin token is required",
    }
    with v1.admin() as admin:
        wrong = admin.delete(f"/apps/{app['app_key']}", params={"confirm": "doomed"})
        assert wrong.status_code == 422
        assert wrong.json()["field"] == "confirm"
        assert admin.delete(f"/apps/{app['app_key']}", params={"confirm": "Doomed"}).status_code == 204
        gone = admin.get(f"/apps/{app['app_key']}")
    assert gone.status_code == 404
    assert gone.json() == {
        "error": "not_found",
        "message": f"There is no app with app_key: {app['app_key']}",
        "field": "app_key",
    }


def test_credentials_are_required_and_an_app_sees_only_itself(v1: V1) -> None:
    one, other = v1.new_app("one"), v1.new_app("other")
    with v1.client() as anonymous:
        refused = anonymous.get("/apps")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer, Basic realm="clarion"'
    assert refused.json() == {
        "error": "unauthorized",
        "message": "An admin bearer token, or the app's key and secret as HTTP Basic, is required",
    }
    with v1.client(basic(one)) as own:
        assert own.get(f"/apps/{other['app_key']}").status_code == 404
        assert own.patch(f"/apps/{other['app_key']}", json={"name": "x"}).status_code == 404
        assert own.post(f"/apps/{other['app_key']}/rotate-secret").status_code == 404
        assert own.post("/apps", json={"name": "mine"}).status_code == 403
        plan = own.patch(f"/apps/{one['app_key']}", json={"plan": "free"})
    assert plan.status_code == 403
    assert plan.json()["field"] == "plan"
    with v1.client(basic(other)) as still:
        assert still.get(f"/apps/{other['app_key']}").json() == _read(other)


def test_idempotency_key_replays_the_first_answer(v1: V1) -> None:
    with v1.admin() as admin:
        headers = {"Idempotency-Key": "k-apps-1"}
        first = admin.post("/apps", json={"name": "once"}, headers=headers)
        again = admin.post("/apps", json={"name": "once"}, headers=headers)
        other = admin.post("/apps", json={"name": "twice"}, headers=headers)
        listed = admin.get("/apps", params={"limit": 200}).json()["items"]
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert [item["name"] for item in listed].count("once") == 1
    assert other.status_code == 409
    assert other.json() == {
        "error": "idempotency_conflict",
        "message": "This Idempotency-Key was used with another request",
        "field": "Idempotency-Key",
    }


def test_concurrent_retries_with_one_key_create_one_app(v1: V1) -> None:
    """Requests racing with one key, each on its own connection (the server handles them at once, its
    database serialising the key's row): one app, and every answer is the first one."""
    body = {"name": "raced"}

    def post(_: int) -> tuple[int, dict[str, Any]]:
        with v1.admin() as admin:
            answer = admin.post("/apps", json=body, headers={"Idempotency-Key": "raced-1"})
        return answer.status_code, answer.json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    with v1.admin() as admin:
        listed = admin.get("/apps", params={"limit": 200}).json()["items"]
    assert [item["name"] for item in listed].count("raced") == 1
    assert {status for status, _ in answers} == {201}
    assert len({answer["app_key"] for _, answer in answers}) == 1
