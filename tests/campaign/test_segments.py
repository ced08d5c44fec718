"""Saved segments: created by the service (the CLI's path), sent to by name or id through the API."""

from __future__ import annotations

import pytest

from clarion import errors
from clarion.campaign import service
from clarion.db import Database
from clarion.models import App
from tests.app_tenant.factory import add_tags, new_app, new_segment, push, stats, vendor_error
from tests.conftest import Api


async def test_push_to_a_segment_by_name_or_id(quiet_api: Api, db: Database) -> None:
    client = quiet_api.client
    tenant, other = await new_app(db, plan="unlimited"), await new_app(db, name="other")
    await add_tags(db, tenant, ["cars", "Bikes"])
    segment_id = await new_segment(db, tenant, "Car lovers", [("AND", "CARS"), ("AND_NOT", "bikes")])
    await add_tags(db, other, ["cars"])
    foreign_id = await new_segment(db, other, "Theirs", [("OR", "cars")])

    for reference in ("Car lovers", segment_id, str(segment_id)):
        answer = await push(client, tenant, segments=[reference])
        assert answer.status_code == 200, (reference, answer.text)
        scheduled = {"status": "SCHEDULED", "send": 0, "received": 0, "clicked": 0, "closed": 0}
        assert await stats(client, tenant, answer.json()["id"]) == scheduled

    for reference in ("Theirs", foreign_id, "Car", "Car lovers ", segment_id + 1000):
        answer = await push(client, tenant, segments=[reference])
        expected = vendor_error(
            f"segments[0]: there is no segment {str(reference)!r} in this app", "segments[0]"
        )
        assert (answer.status_code, answer.json()) == (422, expected), reference


async def test_segment_rules(db: Database) -> None:
    tenant = await new_app(db)
    await add_tags(db, tenant, ["cars"])
    await new_segment(db, tenant, "Cars", [("AND", "cars")])
    refused = [
        ("Cars", [("AND", "cars")], "name", "A segment named 'Cars' exists already"),
        ("", [("AND", "cars")], "name", "name must be 1-255 characters"),
        ("s" * 256, [("AND", "cars")], "name", "name must be 1-255 characters"),
        ("a\x00b", [("AND", "cars")], "name", "name must be 1-255 characters without NUL characters"),
        ("Boats", [("AND", "cars"), ("OR", "boats")], "tags_segment[1].name", None),
    ]
    for name, terms, field, message in refused:
        with pytest.raises(errors.InvalidField) as caught:
            await new_segment(db, tenant, name, terms)
        assert caught.value.field == field, name
        if message is not None:
            assert caught.value.message == message
    assert "there is no tag 'boats'" in caught.value.message
    assert await new_segment(db, tenant, "s" * 255, [("OR_NOT", "CARS")]) > 0


async def test_a_segment_named_like_another_ones_id_is_told_apart(db: Database) -> None:
    """A name always wins over an id: "5" is the segment named "5" when there is one; the number 5,
    and a string of digits that names no segment, are ids."""
    tenant = await new_app(db)
    await add_tags(db, tenant, ["cars"])
    first = await new_segment(db, tenant, "Cars", [("AND", "cars")])
    named = await new_segment(db, tenant, str(first), [("AND_NOT", "cars")])  # was "exists already"
    assert named != first
    async with db.session() as session:
        app = await session.get(App, tenant.app_id)
        assert app is not None
        found = [
            await service.find_segment(session, app, reference)
            for reference in (
                str(first),
                first,
                str(named),
                named,
                "Cars",
                str(named + 1000),
                named + 1000,
                2**70,
            )
        ]
    assert [segment.id if segment else None for segment in found] == [
        named,
        first,
        named,
        named,
        first,
        None,
        None,
        None,
    ]
