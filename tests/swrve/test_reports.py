"""The batch report: each failure and warning reason of the spec, produced by its condition, and the
status, retry_possible and counts that follow from them."""

from __future__ import annotations

import asyncio
import time

from clarion.app_tenant import credentials
from tests.fakes.apns import Respond as ApnsRespond
from tests.fakes.fcm import fcm_error
from tests.fakes.push_service import Respond as WebRespond
from tests.swrve.conftest import Swrve, report

NO_TOKEN_ALL = "No Push Token Registered For User all"


async def test_a_syntax_error_part_way_stops_the_batch_at_that_user(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    devices = [await swrve_api.device("android", user) for user in ("u1", "u2", "u3")]
    body = b'[{"swrve_user_id": "u1"}, {"swrve_user_id": "u2", "message": "Hi" "x"}, {"swrve_user_id": "u3"}]'
    batch_id = await swrve_api.submit(push.push_key, body)
    at = body.index(b'"x"')
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=2,
        sent=1,
        failures=[
            ("u2", f"Parsing impossible. Expecting ',' delimiter: line 1 column {at + 1} (char {at})", True)
        ],
        retry_possible=True,
    )
    assert [len(swrve_api.received(device)) for device in devices] == [1, 0, 0]


async def test_a_truncated_batch_of_common_parameters_sends_the_users_before_the_break(
    swrve_api: Swrve,
) -> None:
    push = await swrve_api.push_campaign()
    one, two = await swrve_api.device("android", "u1"), await swrve_api.device("android", "u2")
    body = b'{"message": "Common", "users": ["u1",\n  {"swrve_user_id": "u2", "message": "cut'
    at = body.rindex(b'"cut')
    column = at - body.index(b"\n")
    where = f"line 2 column {column} (char {at})"
    batch_id = await swrve_api.submit(push.push_key, body)
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=2,
        sent=1,
        failures=[("u2", f"Parsing impossible. Unterminated string starting at: {where}", True)],
        retry_possible=True,
    )
    assert [len(swrve_api.received(one)), len(swrve_api.received(two))] == [1, 0]


async def test_a_body_that_is_not_json_or_not_utf8_is_reported_not_refused(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    cases = {
        b"hello": "the batch must be a JSON array of users or a JSON object",
        b'{"message": "no users"}': (
            "the batch object names no users: it needs 'users', 'swrve_user_id' or 'external_user_id'"
        ),
        b"{}": "the batch object names no users: it needs 'users', 'swrve_user_id' or 'external_user_id'",
        '[{"swrve_user_id": "u1", "message": "café"}]'.encode("latin-1"): (
            "the body is not UTF-8: invalid continuation byte at byte 40"
        ),
    }
    for body, detail in cases.items():
        batch_id = await swrve_api.submit(push.push_key, body)
        assert await swrve_api.report(batch_id) == report(
            batch_id,
            "failed",
            total=1,
            sent=0,
            failures=[(None, f"Parsing impossible. {detail}", True)],
            retry_possible=True,
        )


async def test_a_malformed_user_fails_alone(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    one, six = await swrve_api.device("android", "u1"), await swrve_api.device("android", "u6")
    bad_button = {"title": "Go", "action_type": "jump"}
    body = [
        "u1",
        {"swrve_user_id": "u2", "badge": "three"},
        17,
        {"message": "nobody"},
        {"swrve_user_id": ["u4", 5]},
        {"swrve_user_id": "u5", "buttons": [bad_button]},
        {"swrve_user_id": "u\u0000"},
        {"swrve_user_id": "u7", "payload": {"k": "NUL \u0000"}},
        {"swrve_user_id": "u6"},
    ]
    batch_id = await swrve_api.submit(push.push_key, body)
    actions = "one of open_app, open_url, dismiss"
    not_an_id = "'swrve_user_id' must be an id (1-255 characters, no NUL) or an array of ids"
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=9,
        sent=2,
        failures=[
            ("u2", "Failure to parse request. 'badge' must be an integer", True),
            (None, "Failure to parse request. user #2 must be an id or an object", True),
            (None, f"Failure to parse request. user #3: {not_an_id}", True),
            (None, f"Failure to parse request. user #4: {not_an_id}", True),
            ("u5", f"Failure to parse request. 'buttons[0].action_type' must be {actions}", True),
            (None, f"Failure to parse request. user #6: {not_an_id}", True),
            (
                "u7",
                "Failure to parse request. 'payload' must not contain NUL characters or unpaired surrogates",
                True,
            ),
        ],
        retry_possible=True,
    )
    assert [len(swrve_api.received(one)), len(swrve_api.received(six))] == [1, 1]


async def test_malformed_common_parameters_fail_every_user(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    device = await swrve_api.device("android", "u1")
    batch_id = await swrve_api.submit(push.push_key, {"silent": "yes", "users": ["u1", "u2"]})
    reason = "Failure to parse request. 'silent' must be true or false"
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "failed",
        total=2,
        sent=0,
        failures=[("u1", reason, True), ("u2", reason, True)],
        retry_possible=True,
    )
    assert swrve_api.received(device) == []


async def test_parameter_warnings(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    users = ("buttons", "ttl-low", "ttl-high", "empty", "long", "ttl-0", "ttl-max", "long-ok")
    devices = {user: await swrve_api.device("android", user) for user in users}
    button = {"title": "b", "action_type": "dismiss"}
    body = [
        {"swrve_user_id": "buttons", "buttons": [button] * 4},
        {"swrve_user_id": "ttl-low", "time_to_live": -1},
        {"swrve_user_id": "ttl-high", "time_to_live": 2_419_201},
        {"swrve_user_id": "empty", "message": ""},
        {"swrve_user_id": "long", "message": "x" * 4097},
        {"swrve_user_id": "ttl-0", "time_to_live": 0},
        {"swrve_user_id": "ttl-max", "time_to_live": 2_419_200, "buttons": [button] * 3},
        {"swrve_user_id": "long-ok", "message": "é" * 1000},
        {"swrve_user_id": "stranger"},
    ]
    batch_id = await swrve_api.submit(push.push_key, body)
    ttl = "Invalid time_to_live value, must be positive number less than 4 weeks"
    message = "Push Message should be not empty and less than 4096 characters"
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=9,
        sent=3,
        warnings=[
            ("buttons", "Invalid buttons, no more than 3 buttons are supported", True),
            ("ttl-low", ttl, True),
            ("ttl-high", ttl, True),
            ("empty", message, True),
            ("long", message, True),
            ("stranger", NO_TOKEN_ALL, True),
        ],
        retry_possible=True,
    )
    sent = {user: len(swrve_api.received(device)) for user, device in devices.items()}
    assert sent == {user: 1 if user in ("ttl-0", "ttl-max", "long-ok") else 0 for user in users}
    [zero] = swrve_api.received(devices["ttl-0"])
    assert zero.message["android"]["ttl"] == "0s"


async def test_no_token_for_a_platform_campaign(swrve_api: Swrve) -> None:
    await swrve_api.credentials("apns")
    push = await swrve_api.push_campaign(platform="ios")
    android = await swrve_api.device("android", "u1")
    batch_id = await swrve_api.submit(push.push_key, ["u1", "u2"])
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "failed",
        total=2,
        sent=0,
        warnings=[
            ("u1", "No Push Token Registered For User", True),
            ("u2", "No Push Token Registered For User", True),
        ],
        retry_possible=True,
    )
    assert swrve_api.received(android) == []


async def test_wns_needs_a_title(swrve_api: Swrve) -> None:
    await swrve_api.credentials("wns")
    push = await swrve_api.push_campaign(platform="wns", title=None)
    untitled, titled = await swrve_api.device("wns", "u1"), await swrve_api.device("wns", "u2")
    batch_id = await swrve_api.submit(push.push_key, ["u1", {"swrve_user_id": "u2", "title": "Hi"}])
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=2,
        sent=1,
        warnings=[("u1", "For wns platform, title is required", True)],
        retry_possible=True,
    )
    assert [len(swrve_api.received(untitled)), len(swrve_api.received(titled))] == [0, 1]


async def test_a_platform_without_credentials(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()  # the app has FCM credentials only; the web needs none
    devices = [await swrve_api.device(platform, "u1") for platform in ("ios", "wns", "adm", "web")]
    batch_id = await swrve_api.submit(push.push_key, ["u1"])
    no_certificate = ("u1", "Failed to retrieve push certificate for app", True)
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=1,
        sent=1,
        warnings=[no_certificate] * 3,
        retry_possible=True,
    )
    assert [len(swrve_api.received(device)) for device in devices] == [0, 0, 0, 1]


async def test_credentials_the_push_service_refuses_fail_every_user_on_that_channel(
    swrve_api: Swrve,
) -> None:
    apns = swrve_api.fakes.apns
    wrong_team = {
        "key_pem": apns.key_pem,
        "key_id": apns.key_id,
        "team_id": "WRONGTEAM1",
        "topic": apns.topic,
    }
    async with swrve_api.db.session() as session:
        await credentials.store(session, swrve_api.app_key, "apns", wrong_team)
    push = await swrve_api.push_campaign()
    phones = [await swrve_api.device("ios", user) for user in ("u1", "u2")]
    android = await swrve_api.device("android", "u3")
    batch_id = await swrve_api.submit(push.push_key, ["u1", "u2", "u3"])
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=3,
        sent=1,
        warnings=[("u1", "Failure to send message", False), ("u2", "Failure to send message", False)],
    )
    assert [len(apns.received_for(phone.token)) for phone in phones] == [0, 0]
    assert len(swrve_api.received(android)) == 1


async def test_refusals_and_changed_tokens_fail_the_batch_without_retry(swrve_api: Swrve) -> None:
    await swrve_api.credentials("apns", "wns", "adm")
    fakes = swrve_api.fakes
    push = await swrve_api.push_campaign()
    refused_android = await swrve_api.device("android", "refused-android")
    refused_ios = await swrve_api.device("ios", "refused-ios")
    changed = {p: await swrve_api.device(p, f"changed-{p}") for p in ("android", "ios", "wns", "adm", "web")}
    fakes.fcm.script(
        refused_android.token, [fcm_error("INVALID_ARGUMENT", "Invalid value at 'message.data'")]
    )
    fakes.apns.script(refused_ios.token, [ApnsRespond(400, reason="TopicDisallowed")])
    fakes.fcm.unregister(changed["android"].token)
    fakes.apns.script(changed["ios"].token, [ApnsRespond(410, reason="Unregistered")])
    fakes.wns.expire(changed["wns"].token)
    fakes.adm.unregister(changed["adm"].token)
    fakes.web.script(changed["web"].token, [WebRespond(410)])

    users = ["refused-android", "refused-ios", *(f"changed-{p}" for p in changed)]
    batch_id = await swrve_api.submit(push.push_key, users)
    changed_token = "Rejected, User Has Changed Token"
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "failed",
        total=7,
        sent=0,
        warnings=[
            (
                "refused-android",
                "Failure due to: HTTP 400: INVALID_ARGUMENT: Invalid value at 'message.data'",
                False,
            ),
            ("refused-ios", "Failure due to: HTTP 400: TopicDisallowed", False),
            *((f"changed-{p}", changed_token, False) for p in changed),
        ],
    )
    # The changed tokens' devices are inactive now: the next batch finds no token for those users.
    batch_id = await swrve_api.submit(push.push_key, ["changed-android", "refused-android"])
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=2,
        sent=1,
        warnings=[("changed-android", NO_TOKEN_ALL, True)],
        retry_possible=True,
    )


async def test_a_token_replaced_by_a_new_registration_before_the_send_is_a_changed_token(
    swrve_api: Swrve,
) -> None:
    push = await swrve_api.push_campaign()
    old = await swrve_api.device("android", "u1")
    # The push service is busy at the first attempt: the send waits 2 s for its retry.
    swrve_api.fakes.fcm.script(old.token, [fcm_error("UNAVAILABLE", retry_after="2")])
    batch_id = await swrve_api.submit(push.push_key, [{"swrve_user_id": "u1", "message": "Parcel"}])
    deadline = time.monotonic() + 10
    while not swrve_api.fakes.fcm.received_for(old.token):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    # Meanwhile the app gets a new token and registers it for the same user; the old one is dead.
    new = await swrve_api.device("android", "u1")
    swrve_api.fakes.fcm.unregister(old.token)
    assert await swrve_api.report(batch_id) == report(
        batch_id, "failed", total=1, sent=0, warnings=[("u1", "Rejected, User Has Changed Token", False)]
    )
    assert swrve_api.received(new) == []
    # Resending reaches the user's new token, the old one inactive now.
    batch_id = await swrve_api.submit(push.push_key, [{"swrve_user_id": "u1", "message": "Parcel"}])
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
    assert [r.message["notification"]["body"] for r in swrve_api.received(new)] == ["Parcel"]
    assert len(swrve_api.received(old)) == 2  # the busy answer and the UNREGISTERED one


async def test_a_message_that_outlives_its_time_to_live(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    device = await swrve_api.device("android", "u1")
    swrve_api.fakes.fcm.script(device.token, [fcm_error("UNAVAILABLE", retry_after="30")])
    batch_id = await swrve_api.submit(push.push_key, [{"swrve_user_id": "u1", "time_to_live": 5}])
    assert await swrve_api.report(batch_id) == report(
        batch_id, "failed", total=1, sent=0, warnings=[("u1", "Failed to send a Push message", False)]
    )


async def test_a_batch_is_in_progress_while_a_recipient_waits_for_a_retry(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    device = await swrve_api.device("android", "u1")
    swrve_api.fakes.fcm.script(device.token, [fcm_error("UNAVAILABLE", retry_after="2")])
    batch_id = await swrve_api.submit(push.push_key, ["u1", "u2"])
    deadline = time.monotonic() + 10
    while (status := await swrve_api.status(batch_id))["counts"]["total"] == 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    # Processed: the report so far, while u1's device waits for its retry.
    assert status == report(batch_id, "in_progress", total=2, sent=0, warnings=[("u2", NO_TOKEN_ALL, True)])
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=2,
        sent=1,
        warnings=[("u2", NO_TOKEN_ALL, True)],
        retry_possible=True,
    )
    assert len(swrve_api.fakes.fcm.received_for(device.token)) == 2


async def test_an_unreadable_number_fails_its_user_only(swrve_api: Swrve) -> None:
    """An integer longer than Python converts (4,301 digits), a float that overflows, NaN: each fails
    the user it belongs to, with the spec's per-user reason; the others are sent (once a ValueError
    that failed the whole batch after three attempts)."""
    push = await swrve_api.push_campaign()
    devices = {user: await swrve_api.device("android", user) for user in ("u1", "u2", "u3", "u4", "u5")}
    huge = "9" * 4301
    body = (
        '[{"swrve_user_id": "u1", "badge_number": ' + huge + "},"
        ' {"swrve_user_id": "u2", "payload": {"deep": [1, -' + huge + "]}},"
        ' {"swrve_user_id": "u3", "payload": {"k": 1e999}},'
        ' {"swrve_user_id": "u4", "time_to_live": NaN},'
        ' {"swrve_user_id": "u5", "badge_number": 3, "ignored": ' + huge + "}]"
    ).encode()
    batch_id = await swrve_api.submit(push.push_key, body)
    unusable = "which is not a number this server can use"
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=5,
        sent=1,
        failures=[
            (
                "u1",
                f"Failure to parse request. 'badge_number' holds an integer of 4301 digits, {unusable}",
                True,
            ),
            ("u2", f"Failure to parse request. 'payload' holds an integer of 4301 digits, {unusable}", True),
            ("u3", f"Failure to parse request. 'payload' holds the number 1e999, {unusable}", True),
            ("u4", f"Failure to parse request. 'time_to_live' holds the number NaN, {unusable}", True),
        ],
        retry_possible=True,
    )
    assert [len(swrve_api.received(device)) for device in devices.values()] == [0, 0, 0, 0, 1]


async def test_an_unreadable_common_parameter_fails_every_user(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    await swrve_api.device("android", "u1")
    body = ('{"badge": ' + "1" * 4400 + ', "users": ["u1", "u2"]}').encode()
    batch_id = await swrve_api.submit(push.push_key, body)
    reason = (
        "Failure to parse request. 'badge' holds an integer of 4400 digits, "
        "which is not a number this server can use"
    )
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "failed",
        total=2,
        sent=0,
        failures=[("u1", reason, True), ("u2", reason, True)],
        retry_possible=True,
    )


async def test_deeplinks_and_button_actions_follow_the_clickable_url_rule(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    devices = {user: await swrve_api.device("android", user) for user in ("u1", "u2", "u3", "u4")}
    body = [
        {"swrve_user_id": "u1", "deeplink": "javascript:alert(1)"},
        {"swrve_user_id": "u2", "buttons": [{"title": "Go", "action_type": "open_url", "action": "data:,x"}]},
        {"swrve_user_id": "u3", "buttons": [{"title": "Go", "action_type": "open_app", "action": "a b"}]},
        {
            "swrve_user_id": "u4",
            "deeplink": "app://open/1",
            "buttons": [{"title": "Go", "action_type": "open_url", "action": "https://example.com/go"}],
        },
    ]
    batch_id = await swrve_api.submit(push.push_key, body)
    assert await swrve_api.report(batch_id) == report(
        batch_id,
        "done_with_warnings",
        total=4,
        sent=1,
        failures=[
            ("u1", "Failure to parse request. 'deeplink' must not use the javascript: scheme", True),
            ("u2", "Failure to parse request. 'buttons[0].action' must not use the data: scheme", True),
            ("u3", "Failure to parse request. 'buttons[0].action' must be a valid URI (RFC 3986)", True),
        ],
        retry_possible=True,
    )
    assert [len(swrve_api.received(device)) for device in devices.values()] == [0, 0, 0, 1]
