"""/v1/apps/{app_key}/segments over real HTTP: create, list, show with its live size, delete; apps apart."""

from __future__ import annotations

from typing import Any

from tests.subscriber.transfer_data import ndjson, web
from tests.v1.conftest import V1, basic
from tests.v1.test_subscribers import local, upload

CARS_NOT_BIKES = [{"association": "AND", "name": "Cars"}, {"association": "AND_NOT", "name": "bikes"}]


def _populated(v1: V1, name: str) -> dict[str, Any]:
    """An app with subscribers tagged cars (3, one also bikes, one inactive in the source) and bikes."""
    app = v1.new_app(name)
    lines = [
        web(1, tags=["cars"]),
        web(2, tags=["cars", "bikes"]),
        {"platform": "android", "token": "a-1", "tags": ["cars"]},
        {"platform": "ios", "token": "i-1", "tags": ["bikes"]},
    ]
    with v1.admin() as admin:
        assert upload(admin, app, local(ndjson(*lines))).json()["created"] == 4
    return app


def test_create_show_list_delete(v1: V1) -> None:
    app = _populated(v1, "segments")
    base = f"/apps/{app['app_key']}/segments"
    with v1.client(basic(app)) as own:
        created = own.post(base, json={"name": "Car people", "tags_segment": CARS_NOT_BIKES})
        assert created.status_code == 201, created.text
        segment_id = created.json()["segment_id"]
        by_platform = {"web": 1, "android": 1, "ios": 0, "adm": 0, "wns": 0}
        expected = {
            "segment_id": segment_id,
            "name": "Car people",
            "tags_segment": CARS_NOT_BIKES,
            "size": 2,
            "size_by_platform": by_platform,
        }
        assert created.json() == expected
        assert own.get(f"{base}/{segment_id}").json() == expected
        everyone = own.post(
            base, json={"name": "All", "tags_segment": [{"association": "OR", "name": "cars"}]}
        )
        assert everyone.json()["size_by_platform"] == {"web": 2, "android": 1, "ios": 1, "adm": 0, "wns": 0}
        assert everyone.json()["size"] == 4
        unsized = {"size": None, "size_by_platform": None}
        listing = own.get(base, params={"limit": 1}).json()
        assert listing == {"items": [{**expected, **unsized}], "next_cursor": listing["next_cursor"]}
        rest = own.get(base, params={"limit": 1, "cursor": listing["next_cursor"]}).json()
        assert rest == {"items": [{**everyone.json(), **unsized}], "next_cursor": None}

        # The size is live: a subscriber deactivated leaves it.
        subscribers = own.get(f"/apps/{app['app_key']}/subscribers", params={"tag": "cars"}).json()["items"]
        own.post(f"/apps/{app['app_key']}/subscribers/{subscribers[0]['id']}/deactivate")
        after = own.get(f"{base}/{segment_id}").json()
        assert (after["size"], after["size_by_platform"]) == (1, {**by_platform, "web": 0})

        assert own.delete(f"{base}/{segment_id}").status_code == 204
        gone = own.get(f"{base}/{segment_id}")
        assert gone.status_code == 404
        assert gone.json() == {
            "error": "not_found",
            "message": f"There is no segment {segment_id} in this app",
            "field": "segment_id",
        }
        assert [s["name"] for s in own.get(base).json()["items"]] == ["All"]


def test_what_a_segment_refuses(v1: V1) -> None:
    app = _populated(v1, "refusals")
    base = f"/apps/{app['app_key']}/segments"
    with v1.admin() as admin:
        admin.post(base, json={"name": "Cars", "tags_segment": CARS_NOT_BIKES})
        refused = [
            (
                {"name": "Cars", "tags_segment": CARS_NOT_BIKES},
                "name",
                "A segment named 'Cars' exists already",
            ),
            (
                {"name": "Boats", "tags_segment": [{"association": "AND", "name": "boats"}]},
                "tags_segment[0].name",
                "tags_segment[0].name: there is no tag 'boats' in this app",
            ),
            ({"name": "Empty", "tags_segment": []}, "tags_segment", None),
            ({"name": "Bad", "tags_segment": [{"association": "XOR", "name": "cars"}]}, None, None),
            ({"name": "", "tags_segment": CARS_NOT_BIKES}, "name", None),
        ]
        for body, field, message in refused:
            answer = admin.post(base, json=body)
            assert answer.status_code == 422, body
            if field is not None:
                assert answer.json()["field"] == field, answer.json()
            if message is not None:
                assert answer.json()["message"] == message


def test_idempotent_creation(v1: V1) -> None:
    app = _populated(v1, "once")
    base = f"/apps/{app['app_key']}/segments"
    with v1.admin() as admin:
        headers = {"Idempotency-Key": "segment-1"}
        body = {"name": "Cars", "tags_segment": CARS_NOT_BIKES}
        first, again = (
            admin.post(base, json=body, headers=headers),
            admin.post(base, json=body, headers=headers),
        )
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        assert len(admin.get(base).json()["items"]) == 1


def test_an_app_reaches_none_of_another_apps_segments(v1: V1) -> None:
    mine, theirs = _populated(v1, "mine"), _populated(v1, "theirs")
    with v1.admin() as admin:
        their_id = admin.post(
            f"/apps/{theirs['app_key']}/segments", json={"name": "Theirs", "tags_segment": CARS_NOT_BIKES}
        ).json()["segment_id"]
    with v1.client(basic(mine)) as own:
        theirs_base = f"/apps/{theirs['app_key']}/segments"
        for answer in (
            own.get(theirs_base),
            own.get(f"{theirs_base}/{their_id}"),
            own.delete(f"{theirs_base}/{their_id}"),
            own.post(theirs_base, json={"name": "Mine", "tags_segment": CARS_NOT_BIKES}),
        ):
            assert answer.status_code == 404
            assert answer.json()["field"] == "app_key"
        mine_base = f"/apps/{mine['app_key']}/segments"
        for answer in (own.get(f"{mine_base}/{their_id}"), own.delete(f"{mine_base}/{their_id}")):
            assert answer.status_code == 404
            assert answer.json()["field"] == "segment_id"
        assert own.get(mine_base).json() == {"items": [], "next_cursor": None}
    with v1.admin() as admin:
        assert admin.get(f"/apps/{theirs['app_key']}/segments/{their_id}").json()["size"] == 2
