import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pyreqwest.client import Client

from clarion.content import Button, Notification, RichMedia
from clarion.provider.fcm import FCM_SCOPE, MAX_PAYLOAD_BYTES, FcmClient, fcm_message
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry
from tests.fakes.fcm import (
    GOOGLE_TOKEN_AUDIENCE,
    FakeFcm,
    fcm_error,
    google_error,
    unauthenticated,
)
from tests.fakes.native_service import Failure, Hang, Request, Respond

FAKE = FakeFcm
REFUSED = "ConnectError: connection error (Connection refused (os error 111))"

FULL = Notification(
    campaign_id="cmp-1",
    message="Half price today",
    title="Sale",
    icon="ic_stat_sale",
    image="https://img.example.com/sale.png",
    url="https://shop.example.com/sale",
    buttons=(
        Button("Open", "open_url", "https://shop.example.com/b"),
        Button("Later", "dismiss"),
    ),
    sound="chime",
    badge=3,
    category="OPEN_OFFER",
    data={"deal": "42", "count": 7, "flags": {"vip": True}},
    ttl_s=3600,
    collapse_key="sale",
)
PLAIN = Notification(campaign_id="cmp-2", message="Hello")


@pytest.fixture
def account(fake: FakeFcm) -> dict[str, str]:
    return fake.new_service_account()


@pytest.fixture
def client(http: Client, fake: FakeFcm, account: dict[str, str]) -> FcmClient:
    return FcmClient(http, account, base_url=fake.origin)


def sends(fake: FakeFcm) -> list[Request]:
    return [r for r in fake.requests if r.path != "/token"]


# --- request shape ----------------------------------------------------------------------------------


async def test_notification_message_carries_notification_data_and_android_options(
    fake: FakeFcm, client: FcmClient, account: dict[str, str]
) -> None:
    token = fake.new_token()

    outcome = await client.send(token, FULL)

    assert outcome == Delivered(200)
    [received] = fake.received
    assert received.project_id == "clarion-test"
    assert received.message == {
        "token": token,
        "notification": {
            "title": "Sale",
            "body": "Half price today",
            "image": "https://img.example.com/sale.png",
        },
        "data": {
            "deal": "42",
            "count": "7",
            "flags": '{"vip":true}',
            "campaign_id": "cmp-1",
            "url": "https://shop.example.com/sale",
            "buttons": '[{"title":"Open","action_type":"open_url","action":"https://shop.example.com/b"},'
            '{"title":"Later","action_type":"dismiss","action":null}]',
        },
        "android": {
            "ttl": "3600s",
            "priority": "HIGH",
            "collapse_key": "sale",
            "notification": {
                "icon": "ic_stat_sale",
                "sound": "chime",
                "click_action": "OPEN_OFFER",
                "tag": "sale",
                "notification_count": 3,
            },
        },
    }
    [grant] = fake.token_grants
    assert received.headers["authorization"] == f"Bearer {grant.access_token}"
    assert received.headers["content-type"] == "application/json; charset=utf-8"
    assert fake.errors == []


async def test_silent_message_is_data_only_at_normal_priority(fake: FakeFcm, client: FcmClient) -> None:
    token = fake.new_token()
    silent = Notification(
        campaign_id="cmp-3", message="not shown", title="not shown", data={"sync": "inbox"}, silent=True
    )

    assert await client.send(token, silent) == Delivered(200)

    assert fake.received[0].message == {
        "token": token,
        "data": {"sync": "inbox", "campaign_id": "cmp-3"},
        "android": {"ttl": "28800s", "priority": "NORMAL"},
    }


async def test_plain_message_has_only_what_is_set(fake: FakeFcm, client: FcmClient) -> None:
    token = fake.new_token()

    assert await client.send(token, PLAIN) == Delivered(200)

    assert fake.received[0].message == {
        "token": token,
        "notification": {"body": "Hello"},
        "data": {"campaign_id": "cmp-2"},
        "android": {"ttl": "28800s", "priority": "HIGH"},
    }


def test_normal_priority_and_rich_media_image() -> None:
    message = Notification(
        campaign_id="c",
        message="m",
        high_priority=False,
        rich_media=RichMedia(url="https://img.example.com/r.gif", type="gif"),
    )

    assert fcm_message("tok", message) == {
        "message": {
            "token": "tok",
            "notification": {"body": "m", "image": "https://img.example.com/r.gif"},
            # The full rich media also travels in data, for the app's SDK.
            "data": {
                "campaign_id": "c",
                "media": '{"url":"https://img.example.com/r.gif","type":"gif","title":null,'
                '"subtitle":null,"message":null,"thumbnail_url":null}',
            },
            "android": {"ttl": "28800s", "priority": "NORMAL"},
        }
    }


@pytest.mark.parametrize(("ttl_s", "ttl"), [(0, "0s"), (-5, "0s"), (10**9, "2419200s")])
def test_ttl_is_kept_within_what_fcm_accepts(ttl_s: int, ttl: str) -> None:
    body = fcm_message("tok", Notification(campaign_id="c", message="m", ttl_s=ttl_s))

    assert body["message"]["android"]["ttl"] == ttl


def test_clarion_keys_win_over_the_apps_data() -> None:
    message = Notification(campaign_id="c", message="m", url="https://a", data={"campaign_id": "x", "url": 1})

    assert fcm_message("tok", message)["message"]["data"] == {"campaign_id": "c", "url": "https://a"}


# --- limits checked before sending ------------------------------------------------------------------


def padded(size: int) -> Notification:
    """PLAIN with a data value making the counted payload exactly `size` bytes."""
    empty = fcm_message("tok", Notification(campaign_id="c", message="m", data={"pad": ""}))["message"]
    base = len(json.dumps({k: v for k, v in empty.items() if k != "token"}, separators=(",", ":")))
    return Notification(campaign_id="c", message="m", data={"pad": "x" * (size - base)})


async def test_payload_of_exactly_the_limit_is_sent(fake: FakeFcm, client: FcmClient) -> None:
    assert await client.send(fake.new_token(), padded(MAX_PAYLOAD_BYTES)) == Delivered(200)
    assert fake.errors == []


async def test_payload_over_the_limit_is_rejected_before_sending(fake: FakeFcm, client: FcmClient) -> None:
    outcome = await client.send(fake.new_token(), padded(MAX_PAYLOAD_BYTES + 1))

    assert outcome == Rejected("FCM payload is 4097 bytes; at most 4096 are allowed")
    assert fake.requests == []


def test_a_rehearsal_refuses_what_a_send_would_and_passes_the_rest(client: FcmClient) -> None:
    """CLARION_DELIVERY=sink: the body is built and checked as for a send, with no token fetched."""
    assert client.rehearse("t", padded(MAX_PAYLOAD_BYTES)) == Delivered(201)
    too_big = client.rehearse("t", padded(MAX_PAYLOAD_BYTES + 1))
    assert too_big == Rejected("FCM payload is 4097 bytes; at most 4096 are allowed")
    assert client.rehearse("", PLAIN) == Rejected("empty FCM registration token")


async def test_reserved_data_keys_are_rejected_before_sending(fake: FakeFcm, client: FcmClient) -> None:
    message = Notification(campaign_id="c", message="m", data={"from": "x", "google.sent": "y", "ok": "z"})

    outcome = await client.send(fake.new_token(), message)

    assert outcome == Rejected("FCM reserves these data keys: from, google.sent")
    assert fake.requests == []


async def test_text_that_is_not_unicode_is_rejected(fake: FakeFcm, client: FcmClient) -> None:
    outcome = await client.send(fake.new_token(), Notification(campaign_id="c", message="bad \ud800"))

    assert outcome == Rejected("the message holds text that is not valid Unicode")
    assert fake.requests == []


async def test_empty_token_is_rejected(fake: FakeFcm, client: FcmClient) -> None:
    assert await client.send("", PLAIN) == Rejected("empty FCM registration token")
    assert fake.requests == []


# --- the OAuth token --------------------------------------------------------------------------------


async def test_one_token_request_serves_many_sends(
    fake: FakeFcm, client: FcmClient, account: dict[str, str]
) -> None:
    tokens = [fake.new_token() for _ in range(10)]

    outcomes = await asyncio.gather(*(client.send(token, PLAIN) for token in tokens))
    outcomes.append(await client.send(tokens[0], PLAIN))

    assert outcomes == [Delivered(200)] * 11
    [grant] = fake.token_grants
    claims = dict(grant.details)
    iat, exp = claims.pop("iat"), claims.pop("exp")
    assert exp - iat == 3600
    assert claims == {"iss": account["client_email"], "aud": GOOGLE_TOKEN_AUDIENCE, "scope": FCM_SCOPE}
    assert grant.owner == account["client_email"]
    assert fake.errors == []


async def test_token_is_renewed_five_minutes_before_it_expires(
    fake: FakeFcm, http: Client, account: dict[str, str]
) -> None:
    now = [1000.0]
    client = FcmClient(http, account, base_url=fake.origin, clock=lambda: now[0])
    token = fake.new_token()

    await client.send(token, PLAIN)
    now[0] += 3600 - 300 - 5  # the token has about 5 min 5 s left: still used
    await client.send(token, PLAIN)
    first = len(fake.token_grants)
    now[0] += 10
    await client.send(token, PLAIN)

    assert (first, len(fake.token_grants)) == (1, 2)
    headers = [r.headers["authorization"] for r in fake.received]
    assert headers == [f"Bearer {g.access_token}" for g in fake.token_grants[:1] * 2 + fake.token_grants[1:]]


async def test_refused_token_is_refreshed_once_and_the_send_retried(fake: FakeFcm, client: FcmClient) -> None:
    token = fake.new_token()
    assert await client.send(token, PLAIN) == Delivered(200)
    fake.revoke_tokens()

    assert await client.send(token, PLAIN) == Delivered(200)

    assert len(fake.token_grants) == 2
    assert fake.errors == [Failure(token, 401, "bearer token unknown or revoked")]
    assert fake.accepted == 2


async def test_401_after_a_refresh_fails_the_channel_not_the_token(fake: FakeFcm, client: FcmClient) -> None:
    token = fake.new_token()
    fake.script(token, [unauthenticated(), unauthenticated()])

    outcome = await client.send(token, PLAIN)

    assert outcome == Rejected(
        "channel: credentials refused after a token refresh (HTTP 401: UNAUTHENTICATED: Request had "
        "invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
        "authentication credential.)",
        credentials=True,
    )
    assert len(fake.token_grants) == 2
    assert len(fake.received) == 2


async def test_refused_service_account_fails_the_channel(fake: FakeFcm, http: Client) -> None:
    account = fake.new_service_account(trusted=False)
    client = FcmClient(http, account, base_url=fake.origin)

    first = await client.send(fake.new_token(), PLAIN)
    second = await client.send(fake.new_token(), PLAIN)

    assert first == Rejected(
        "channel: token endpoint: invalid_grant: Invalid JWT Signature.", credentials=True
    )
    assert second == first  # remembered for a moment: the endpoint is not asked again at once
    assert fake.requests == [Request("POST", "/token")]
    assert fake.errors == [
        Failure("token-endpoint", 400, f"iss {account['client_email']!r} is unknown"),
    ]


async def test_token_endpoint_that_is_down_means_retry(fake: FakeFcm, client: FcmClient) -> None:
    # One try: the send is retried later, and TokenCache holds the failure a moment (FAILURE_HOLD_S).
    busy = Respond(503, {"error": "temporarily_unavailable", "error_description": "try later"})
    fake.script_token([busy, busy, busy])

    outcome = await client.send(fake.new_token(), PLAIN)

    assert outcome == Retry("token endpoint: temporarily_unavailable: try later")
    assert sends(fake) == []


async def test_token_endpoint_that_cannot_be_reached_means_retry(
    fake: FakeFcm, http: Client, account: dict[str, str], closed_origin: str
) -> None:
    client = FcmClient(http, account | {"token_uri": f"{closed_origin}/token"}, base_url=fake.origin)

    outcome = await client.send(fake.new_token(), PLAIN)

    assert isinstance(outcome, Retry)
    assert outcome.reason == f"token endpoint: {REFUSED}"
    assert fake.requests == []


def test_service_account_without_project_or_key_is_refused(account: dict[str, str]) -> None:
    http: Any = None  # never used: the constructor fails first
    without_project = {k: v for k, v in account.items() if k != "project_id"}
    with pytest.raises(ValueError, match="no project_id"):
        FcmClient(http, without_project, base_url="http://x")
    with pytest.raises(ValueError, match="not a usable service-account JSON"):
        FcmClient(http, account | {"private_key": "nope"}, base_url="http://x")


# --- what FCM's answers mean ------------------------------------------------------------------------

TOKEN_INVALID = "The registration token is not a valid FCM registration token"
UNAUTHENTICATED_TEXT = "Permission 'cloudmessaging.messages.create' denied"


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (fcm_error("UNREGISTERED"), Gone("HTTP 404: UNREGISTERED: Requested entity was not found.")),
        (
            fcm_error("INVALID_ARGUMENT", TOKEN_INVALID, field="message.token"),
            Gone(f"HTTP 400: INVALID_ARGUMENT: {TOKEN_INVALID}"),
        ),
        (
            fcm_error(
                "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl'", field="message.android.ttl"
            ),
            Rejected("HTTP 400: INVALID_ARGUMENT: Invalid value at 'message.android.ttl'"),
        ),
        (
            fcm_error("INVALID_ARGUMENT"),
            Rejected("HTTP 400: INVALID_ARGUMENT: Request contains an invalid argument."),
        ),
        (
            fcm_error("QUOTA_EXCEEDED"),
            Retry("HTTP 429: QUOTA_EXCEEDED: Quota exceeded for quota metric 'Send requests'.", 60.0),
        ),
        (
            fcm_error("QUOTA_EXCEEDED", retry_after="10"),
            Retry("HTTP 429: QUOTA_EXCEEDED: Quota exceeded for quota metric 'Send requests'.", 60.0),
        ),
        (
            fcm_error("QUOTA_EXCEEDED", retry_after="120"),
            Retry("HTTP 429: QUOTA_EXCEEDED: Quota exceeded for quota metric 'Send requests'.", 120.0),
        ),
        (
            fcm_error("UNAVAILABLE", retry_after="7"),
            Retry("HTTP 503: UNAVAILABLE: The service is currently unavailable.", 7.0),
        ),
        (fcm_error("UNAVAILABLE"), Retry("HTTP 503: UNAVAILABLE: The service is currently unavailable.")),
        (
            fcm_error("INTERNAL", retry_after="3"),
            Retry("HTTP 500: INTERNAL: Internal error encountered.", 3.0),
        ),
        (fcm_error("SENDER_ID_MISMATCH"), Rejected("HTTP 403: SENDER_ID_MISMATCH: SenderId mismatch")),
        (
            google_error(403, "PERMISSION_DENIED", UNAUTHENTICATED_TEXT, []),
            Rejected(f"channel: HTTP 403: PERMISSION_DENIED: {UNAUTHENTICATED_TEXT}"),
        ),
        (
            google_error(404, "NOT_FOUND", "Requested entity was not found.", []),
            Rejected("channel: HTTP 404: NOT_FOUND: Requested entity was not found."),
        ),
        (Respond(502, "<html>Bad gateway</html>"), Retry("HTTP 502: <html>Bad gateway</html>")),
        (Respond(400, "not json"), Rejected("HTTP 400: not json")),
    ],
)
async def test_error_answers_map_to_outcomes(
    fake: FakeFcm, client: FcmClient, answer: Respond, outcome: Outcome
) -> None:
    token = fake.new_token()
    fake.script(token, [answer])

    assert await client.send(token, PLAIN) == outcome
    assert fake.errors == []


async def test_retry_after_as_an_http_date_is_honoured(fake: FakeFcm, client: FcmClient) -> None:
    token = fake.new_token()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    fake.script(token, [fcm_error("UNAVAILABLE", retry_after=when)])

    outcome = await client.send(token, PLAIN)

    assert isinstance(outcome, Retry)
    assert outcome.reason == "HTTP 503: UNAVAILABLE: The service is currently unavailable."
    assert outcome.after_s == pytest.approx(30, abs=2)


async def test_device_states_of_the_fake_map_like_fcms(fake: FakeFcm, client: FcmClient) -> None:
    gone_token, other_project, stranger = fake.new_token(), fake.new_token("other-project"), "never-made"
    fake.unregister(gone_token)

    outcomes = [await client.send(t, PLAIN) for t in (gone_token, other_project, stranger)]

    assert outcomes == [
        Gone("HTTP 404: UNREGISTERED: Requested entity was not found."),
        Rejected("HTTP 403: SENDER_ID_MISMATCH: SenderId mismatch"),
        Gone(f"HTTP 400: INVALID_ARGUMENT: {TOKEN_INVALID}"),
    ]


async def test_unreachable_service_means_retry(http: Client, fake: FakeFcm, closed_origin: str) -> None:
    client = FcmClient(http, fake.new_service_account(), base_url=closed_origin)

    outcome = await client.send(fake.new_token(), PLAIN)

    assert isinstance(outcome, Retry)
    assert outcome.reason == REFUSED
    assert outcome.after_s is None


async def test_timeout_means_retry(new_http: Callable[[float], Client], fake: FakeFcm) -> None:
    client = FcmClient(new_http(0.5), fake.new_service_account(), base_url=fake.origin)
    token = fake.new_token()
    fake.script(token, [Hang()])

    assert await client.send(token, PLAIN) == Retry("TimeoutError")
