"""/v1/apps/{app_key}/subscribers over real HTTP: import by upload (whole reports, idempotent), list
and filters, show (the endpoint's host only), deactivate, delete, export; and no app reaching another's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.subscriber.transfer_data import (
    NDJSON_FILE,
    NDJSON_REPORT,
    ONESIGNAL_CSV,
    ONESIGNAL_REPORT,
    ndjson,
    web,
)
from tests.v1.conftest import V1, basic

# The server under test takes push endpoints on its loopback host only (CLARION_PUSH_HOSTS=127.0.0.1).
LOOPBACK = b"http://127.0.0.1:9/"


def local(data: bytes) -> bytes:
    return data.replace(b"https://push.example.net/", LOOPBACK)


NDJSON = {"Content-Type": "application/x-ndjson"}


def upload(client: httpx.Client, app: dict[str, Any], data: bytes, **params: str) -> httpx.Response:
    content_type = "text/csv" if params.pop("csv", None) else "application/x-ndjson"
    path = f"/apps/{app['app_key']}/subscribers/import"
    return client.post(path, content=data, params=params, headers={"Content-Type": content_type})


def listed(client: httpx.Client, app: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    answer = client.get(f"/apps/{app['app_key']}/subscribers", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["next_cursor"] is None
    return list(body["items"])


def shown(found: dict[str, Any], platform: str, tags: list[str], **names: Any) -> dict[str, Any]:
    """What the API shows of a subscriber (its id and times as found: they are the server's)."""
    kept = {key: found[key] for key in ("id", "created_at", "last_seen_at")}
    host = "127.0.0.1" if platform == "web" else None
    ids = {"alias": None, "user_id": None, "external_user_id": None, "timezone": None, **names}
    return {**kept, "platform": platform, "active": True, "endpoint_host": host, "tags": tags, **ids}


def test_import_list_show_and_export(v1: V1) -> None:
    app = v1.new_app("shop")
    with v1.admin() as admin:
        done = upload(admin, app, local(NDJSON_FILE))
        assert done.status_code == 200, done.text
        assert done.json() == NDJSON_REPORT
        again = upload(admin, app, local(NDJSON_FILE))
        assert again.json() == {**NDJSON_REPORT, "created": 0, "existing": 4}
        web1, android, web3 = listed(admin, app)
        assert [web1, android, web3] == [
            shown(web1, "web", ["news", "Sport"], alias="bob", user_id="u-1"),
            shown(android, "android", ["cars", "news"], external_user_id="ext-1"),
            shown(web3, "web", ["vip"]),
        ]
        for found in (web1, android, web3):
            one = admin.get(f"/apps/{app['app_key']}/subscribers/{found['id']}")
            assert one.json() == found
        # Never the endpoint's path, a token or a key.
        text = admin.get(f"/apps/{app['app_key']}/subscribers").text
        for secret in ("/sub/1", "fcm-token-1", json.loads(NDJSON_FILE.splitlines()[0])["auth"]):
            assert secret not in text

        exported = admin.get(f"/apps/{app['app_key']}/subscribers/export")
        assert exported.headers["content-type"] == "application/x-ndjson"
        records = [json.loads(line) for line in exported.text.splitlines()]
        assert [(r["endpoint"], r["token"], r["tags"]) for r in records] == [
            ("http://127.0.0.1:9/sub/1", None, ["news", "Sport"]),
            (None, "fcm-token-1", ["cars", "news"]),
            ("http://127.0.0.1:9/sub/3", None, ["vip"]),
        ]
        as_csv = admin.get(
            f"/apps/{app['app_key']}/subscribers/export", params={"format": "csv", "tag": "vip"}
        )
        assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
        assert as_csv.headers["content-disposition"] == 'attachment; filename="subscribers.csv"'
        header, row = as_csv.text.splitlines()
        assert header.split(",") == list(records[2])
        assert row.startswith("web,http://127.0.0.1:9/sub/3,")


def test_onesignal_csv_upload_with_the_apps_own_credentials(v1: V1) -> None:
    app = v1.new_app("moving")
    with v1.client(basic(app)) as own:
        done = upload(own, app, local(ONESIGNAL_CSV), csv="1")
        assert done.json() == ONESIGNAL_REPORT
        explicit = upload(own, app, local(ONESIGNAL_CSV), format="csv")
        assert explicit.json() == {**ONESIGNAL_REPORT, "created": 0, "existing": 2}
        assert [s["platform"] for s in listed(own, app)] == ["web", "ios"]
        not_csv = upload(own, app, b"name\nbob\n", csv="1")
    assert not_csv.status_code == 422
    assert not_csv.json() == {
        "error": "invalid_field",
        "message": "the CSV header must name an endpoint, token or identifier column",
        "field": "header",
    }


def test_an_import_may_be_larger_than_other_bodies(v1: V1) -> None:
    app = v1.new_app("large")
    # Long lines (a 250-character alias), so that few of them make more than 1 MiB.
    lines = [
        {"platform": "android", "token": f"token-{n:08d}", "alias": f"{n:08d}" + "a" * 242}
        for n in range(4_000)
    ]
    data = ndjson(*lines)
    assert len(data) > 1024 * 1024  # past the 1 MiB every other route refuses
    with v1.admin() as admin:
        done = upload(admin, app, data)
        assert done.json() == {
            **NDJSON_REPORT,
            "lines": 4_000,
            "created": 4_000,
            "existing": 0,
            "refused": 0,
            "refusals": [],
        }
    with httpx.Client(base_url=v1.server.url, timeout=10) as sdk:
        too_large = sdk.post("/sdk/v1/subscribers", content=data, headers=NDJSON)
    assert too_large.status_code == 413
    assert too_large.json()["error"] == "request_entity_too_large"


def test_filters_and_pages(v1: V1) -> None:
    app = v1.new_app("filters")
    lines = [
        web(1, tags=["a"], alias="x"),
        web(2, tags=["b"]),
        {"platform": "ios", "token": "t1", "tags": ["a"]},
        {"platform": "wns", "token": "http://127.0.0.1:9/wns/1"},
    ]
    with v1.admin() as admin:
        assert upload(admin, app, local(ndjson(*lines))).json()["created"] == 4
        every = listed(admin, app)
        ids = [s["id"] for s in every]
        assert [s["endpoint_host"] for s in every] == ["127.0.0.1", "127.0.0.1", None, "127.0.0.1"]

        def found(**params: Any) -> list[str]:
            return [s["id"] for s in listed(admin, app, **params)]

        assert found(platform="ios") == [ids[2]]
        assert found(tag="A") == [ids[0], ids[2]]
        assert found(alias="x") == [ids[0]]
        assert found(active="true") == ids
        assert found(active="false") == []
        now = datetime.now(UTC)
        hour = timedelta(hours=1)
        assert found(created_from=(now - hour).isoformat(), created_to=(now + hour).isoformat()) == ids
        assert found(created_from=(now + hour).isoformat()) == []
        assert found(seen_to=(now - hour).isoformat()) == []
        assert found(seen_from=(now - hour).replace(tzinfo=None).isoformat()) == ids

        first = admin.get(f"/apps/{app['app_key']}/subscribers", params={"limit": 3}).json()
        assert [s["id"] for s in first["items"]] == ids[:3]
        rest = admin.get(
            f"/apps/{app['app_key']}/subscribers", params={"limit": 3, "cursor": first["next_cursor"]}
        )
        assert rest.json() == {"items": every[3:], "next_cursor": None}

        wrong = admin.get(f"/apps/{app['app_key']}/subscribers", params={"platform": "fax"})
    assert wrong.status_code == 422
    assert wrong.json()["field"] == "platform"


def test_deactivate_and_delete(v1: V1) -> None:
    app = v1.new_app("churn")
    with v1.admin() as admin:
        upload(admin, app, local(ndjson(web(1), web(2))))
        one, two = listed(admin, app)
        base = f"/apps/{app['app_key']}/subscribers"
        off = admin.post(f"{base}/{one['id']}/deactivate")
        assert off.json() == {**one, "active": False}
        assert listed(admin, app, active="false") == [{**one, "active": False}]
        assert admin.delete(f"{base}/{two['id']}").status_code == 204
        assert listed(admin, app) == [{**one, "active": False}]
        gone = admin.get(f"{base}/{two['id']}")
        assert gone.status_code == 404
        assert gone.json() == {
            "error": "not_found",
            "message": "There is no subscriber with this id in this app",
            "field": "subscriber_id",
        }
        assert admin.delete(f"{base}/{two['id']}").status_code == 404
        # Imported again, it is a new subscriber (a new id), active.
        assert upload(admin, app, local(ndjson(web(2)))).json()["created"] == 1


def test_an_app_reaches_none_of_another_apps_subscribers(v1: V1) -> None:
    mine, theirs = v1.new_app("mine"), v1.new_app("theirs")
    with v1.admin() as admin:
        upload(admin, theirs, local(ndjson(web(1, tags=["t"]))))
        (their_subscriber,) = listed(admin, theirs)
    sid = their_subscriber["id"]
    with v1.client(basic(mine)) as own:
        theirs_base = f"/apps/{theirs['app_key']}/subscribers"
        for answer in (
            own.get(theirs_base),
            own.get(f"{theirs_base}/export"),
            upload(own, theirs, local(ndjson(web(5)))),
            own.get(f"{theirs_base}/{sid}"),
            own.post(f"{theirs_base}/{sid}/deactivate"),
            own.delete(f"{theirs_base}/{sid}"),
        ):
            assert answer.status_code == 404, answer.request.url
            assert answer.json()["field"] == "app_key"
        mine_base = f"/apps/{mine['app_key']}/subscribers"
        for answer in (
            own.get(f"{mine_base}/{sid}"),
            own.post(f"{mine_base}/{sid}/deactivate"),
            own.delete(f"{mine_base}/{sid}"),
        ):
            assert answer.status_code == 404
            assert answer.json()["field"] == "subscriber_id"
        assert listed(own, mine) == []
        assert own.get(f"{mine_base}/export").text == ""
        # The same address imported into another app is that app's own subscriber.
        assert upload(own, mine, local(ndjson(web(1)))).json()["created"] == 1
    with v1.admin() as admin:
        assert listed(admin, theirs) == [their_subscriber]
