"""The third batch shape: one object naming its users itself (`swrve_user_id` or `external_user_id`,
one id or an array), its own parameters applied to every user it names; and its bad inputs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tests.swrve.conftest import Device, Entry, Swrve, report

NOT_AN_ID = "must be an id (1-255 characters, no NUL) or an array of ids"


def _nobody_sent(
    batch_id: str, total: int, *, warnings: Sequence[Entry] = (), failures: Sequence[Entry] = ()
) -> dict[str, Any]:
    """The status of a batch that reached none of its users, every entry safe to resend."""
    return report(
        batch_id, "failed", total=total, sent=0, warnings=warnings, failures=failures, retry_possible=True
    )


def _bodies(api: Swrve, *devices: Device) -> list[list[str]]:
    """The notification bodies each Android device received."""
    return [[r.message["notification"]["body"] for r in api.received(d)] for d in devices]


async def test_one_object_naming_its_users_sends_its_parameters_to_each(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign(message="Default", title="Campaign title")
    one, two = await swrve_api.device("android", "user-1"), await swrve_api.device("web", "user-2")
    body = {"swrve_user_id": ["user-1", "user-2"], "message": "Hello there!", "title": "Hi"}
    batch_id = await swrve_api.submit(push.push_key, body)
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=2, sent=2)
    [android] = swrve_api.received(one)
    assert android.message["notification"] == {"title": "Hi", "body": "Hello there!"}
    [web] = swrve_api.received(two)
    shown = json.loads(web.payload)
    assert (shown["title"], shown["message"]) == ("Hi", "Hello there!")


async def test_one_object_naming_one_user_and_the_campaigns_defaults(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign(message="Default")
    device = await swrve_api.device("android", "user-1")
    batch_id = await swrve_api.submit(push.push_key, {"swrve_user_id": "user-1"})
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
    assert _bodies(swrve_api, device) == [["Default"]]


async def test_one_object_naming_external_ids(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    e1 = await swrve_api.device("android", external="crm-1")
    e2 = await swrve_api.device("android", external="crm-2")
    key = swrve_api.identity_key
    body = {"external_user_id": ["crm-1", "crm-2", "crm-9"], "message": "Your invoice is ready"}
    batch_id = await swrve_api.submit(push.push_key, body, identity_secret_key=key)
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=3,
        sent=2,
        failures=[("crm-9", "No user mapping found for external user id 'crm-9'", True)],
        retry_possible=True,
    )
    # One id, not an array.
    batch_id = await swrve_api.submit(push.push_key, {"external_user_id": "crm-1"}, identity_secret_key=key)
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
    # Without the identity key nobody is sent.
    batch_id = await swrve_api.submit(push.push_key, {"external_user_id": "crm-2", "message": "No key"})
    no_key = "Attempted to send batch push using external ids, but no identity key provided"
    assert await swrve_api.report(batch_id) == _nobody_sent(batch_id, 1, failures=[("crm-2", no_key, True)])
    assert _bodies(swrve_api, e1, e2) == [["Your invoice is ready", "Default"], ["Your invoice is ready"]]


async def test_an_object_may_name_users_itself_and_in_users(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    devices = [await swrve_api.device("android", user) for user in ("u1", "u2", "u3")]
    body = {
        "users": ["u2", {"swrve_user_id": "u3", "message": "Mine"}],
        "swrve_user_id": "u1",
        "message": "All",
    }
    batch_id = await swrve_api.submit(push.push_key, body)
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=3, sent=3)
    assert _bodies(swrve_api, *devices) == [["All"], ["All"], ["Mine"]]


async def test_bad_ids_in_the_batch_object_fail_it(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    device = await swrve_api.device("android", "u1")
    for ids, key in (
        (17, "swrve_user_id"),
        ([], "swrve_user_id"),
        (["u1", ""], "swrve_user_id"),
        (None, "external_user_id"),
    ):
        batch_id = await swrve_api.submit(push.push_key, {key: ids, "message": "Hello there!"})
        reason = f"Failure to parse request. the batch object: '{key}' {NOT_AN_ID}"
        assert await swrve_api.report(batch_id) == _nobody_sent(batch_id, 1, failures=[(None, reason, True)])
    assert swrve_api.received(device) == []


async def test_a_bad_parameter_of_the_batch_object_fails_every_user_it_names(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    device = await swrve_api.device("android", "u1")
    batch_id = await swrve_api.submit(push.push_key, {"swrve_user_id": ["u1", "u2"], "message": 5})
    reason = "Failure to parse request. 'message' must be a string"
    assert await swrve_api.report(batch_id) == _nobody_sent(
        batch_id, 2, failures=[("u1", reason, True), ("u2", reason, True)]
    )
    # A rule of the spec broken by the object's parameters is a warning for each user it names.
    batch_id = await swrve_api.submit(push.push_key, {"swrve_user_id": ["u1", "u2"], "time_to_live": -1})
    ttl = "Invalid time_to_live value, must be positive number less than 4 weeks"
    assert await swrve_api.report(batch_id) == _nobody_sent(
        batch_id, 2, warnings=[("u1", ttl, True), ("u2", ttl, True)]
    )
    assert swrve_api.received(device) == []


async def test_a_syntax_error_in_the_batch_object_names_its_first_user(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    device = await swrve_api.device("android", "user-1")
    body = b'{"swrve_user_id": ["user-1", "user-2"], "message": "Hello" "there"}'
    at = body.index(b'"there"')
    batch_id = await swrve_api.submit(push.push_key, body)
    detail = f"""expected ',' at char {at}, found '"there"}}'"""
    assert await swrve_api.report(batch_id) == _nobody_sent(
        batch_id, 1, failures=[("user-1", f"Parsing impossible. {detail}", True)]
    )
    assert swrve_api.received(device) == []
