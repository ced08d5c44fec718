import asyncio
import base64
import hashlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from clarion.content import Button, Notification, RichMedia
from clarion.provider.apns import (
    MAX_PAYLOAD_BYTES,
    PROVIDER_TOKEN_REFRESH_S,
    ApnsClient,
    ProviderToken,
    build_payload,
    collapse_id,
    load_p8_key,
    outcome,
)
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry
from tests.fakes.apns import Failure, FakeApns, Hang, Received, Respond, new_p8_key

TIMESTAMP_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
MESSAGE = Notification(campaign_id="c-1", message="Hello")


def unb64(part: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def jwt_parts(authorization: str) -> tuple[dict[str, Any], dict[str, Any]]:
    scheme, _, token = authorization.partition(" ")
    assert scheme == "bearer"
    header, claims, _signature = token.split(".")
    return unb64(header), unb64(claims)


def apns_headers(received: Received) -> dict[str, str]:
    return {name: value for name, value in received.headers.items() if name.startswith("apns-")}


def make_client(fake: FakeApns, **overrides: Any) -> ApnsClient:
    values: dict[str, Any] = {
        "base_url": fake.origin,
        "key_pem": fake.key_pem,
        "key_id": fake.key_id,
        "team_id": fake.team_id,
        "topic": fake.topic,
        "ca_file": fake.ca_file,
        "timeout_s": 5.0,
        "connect_timeout_s": 2.0,
    }
    values.update(overrides)
    return ApnsClient(**values)


@pytest.fixture
def fake() -> Iterator[FakeApns]:
    with FakeApns() as service:
        yield service


@pytest.fixture
def now() -> int:
    return int(time.time())


@pytest.fixture
async def client(fake: FakeApns, now: int) -> AsyncIterator[ApnsClient]:
    apns = make_client(fake, clock=lambda: now)
    yield apns
    await apns.close()


# --- request shape ---------------------------------------------------------------------------------


async def test_alert_request_carries_aps_headers_and_custom_data(
    fake: FakeApns, client: ApnsClient, now: int
) -> None:
    token = fake.new_token()
    message = Notification(
        campaign_id="c-1",
        message="Half price today",
        title="Sale",
        subtitle="Shoes",
        url="https://shop.example/sale",
        buttons=(
            Button("Open", "open_url", "https://shop.example/b"),
            Button("Later", "dismiss"),
        ),
        sound="default",
        badge=3,
        category="SALE",
        data={"order": 7, "nested": {"a": [1, 2]}},
        ttl_s=3600,
        collapse_key="sale-1",
    )

    result = await client.send(token, message)

    assert result == Delivered(200)
    [received] = fake.received
    assert received.token == token
    assert apns_headers(received) == {
        "apns-topic": "com.example.app",
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": str(now + 3600),
        "apns-collapse-id": "sale-1",
    }
    assert received.payload == {
        "aps": {
            "alert": {"title": "Sale", "subtitle": "Shoes", "body": "Half price today"},
            "badge": 3,
            "sound": "default",
            "category": "SALE",
        },
        "campaign_id": "c-1",
        "url": "https://shop.example/sale",
        "buttons": [
            {"title": "Open", "action_type": "open_url", "action": "https://shop.example/b"},
            {"title": "Later", "action_type": "dismiss"},
        ],
        "order": 7,
        "nested": {"a": [1, 2]},
    }
    assert fake.errors == []


async def test_minimal_alert_has_only_a_body(fake: FakeApns, client: ApnsClient, now: int) -> None:
    token = fake.new_token()

    assert await client.send(token, MESSAGE) == Delivered(200)

    [received] = fake.received
    assert apns_headers(received) == {
        "apns-topic": "com.example.app",
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": str(now + 28_800),
    }
    assert received.payload == {"aps": {"alert": {"body": "Hello"}}, "campaign_id": "c-1"}


async def test_silent_message_is_a_background_push_with_data_only(
    fake: FakeApns, client: ApnsClient, now: int
) -> None:
    token = fake.new_token()
    message = Notification(
        campaign_id="c-2",
        message="ignored",
        title="ignored",
        sound="default",
        badge=1,
        silent=True,
        data={"sync": "inbox"},
        ttl_s=60,
    )

    assert await client.send(token, message) == Delivered(200)

    [received] = fake.received
    assert apns_headers(received) == {
        "apns-topic": "com.example.app",
        "apns-push-type": "background",
        "apns-priority": "5",
        "apns-expiration": str(now + 60),
    }
    assert received.payload == {"aps": {"content-available": 1}, "campaign_id": "c-2", "sync": "inbox"}


async def test_normal_priority_alert_uses_priority_5(fake: FakeApns, client: ApnsClient) -> None:
    token = fake.new_token()

    await client.send(token, Notification(campaign_id="c", message="m", high_priority=False))

    assert apns_headers(fake.received[0])["apns-priority"] == "5"


async def test_zero_ttl_means_expiration_zero(fake: FakeApns, client: ApnsClient) -> None:
    token = fake.new_token()

    await client.send(token, Notification(campaign_id="c", message="m", ttl_s=0))

    assert apns_headers(fake.received[0])["apns-expiration"] == "0"


async def test_image_and_rich_media_set_mutable_content(fake: FakeApns, client: ApnsClient) -> None:
    token = fake.new_token()
    message = Notification(
        campaign_id="c-3",
        message="Look",
        image="https://cdn.example/i.png",
        rich_media=RichMedia(url="https://cdn.example/v.mp4", type="video", title="Clip"),
    )

    await client.send(token, message)

    assert fake.received[0].payload == {
        "aps": {"alert": {"body": "Look"}, "mutable-content": 1},
        "campaign_id": "c-3",
        "image": "https://cdn.example/i.png",
        "media": {"url": "https://cdn.example/v.mp4", "type": "video", "title": "Clip"},
    }


def test_image_alone_sets_mutable_content() -> None:
    message = Notification(campaign_id="c", message="m", image="https://cdn.example/i.png")

    assert build_payload(message) == {
        "aps": {"alert": {"body": "m"}, "mutable-content": 1},
        "campaign_id": "c",
        "image": "https://cdn.example/i.png",
    }


def test_data_keys_never_override_aps_or_clarion_keys() -> None:
    message = Notification(
        campaign_id="c", message="m", url="https://a.example", data={"aps": {}, "campaign_id": "x", "k": 1}
    )

    assert build_payload(message) == {
        "aps": {"alert": {"body": "m"}},
        "campaign_id": "c",
        "url": "https://a.example",
        "k": 1,
    }


async def test_long_collapse_key_is_sent_as_a_stable_64_character_id(
    fake: FakeApns, client: ApnsClient
) -> None:
    token = fake.new_token()
    key = "k" * 65

    await client.send(token, Notification(campaign_id="c", message="m", collapse_key=key))

    sent = apns_headers(fake.received[0])["apns-collapse-id"]
    assert sent == collapse_id(key)
    assert len(sent) == 64
    assert fake.errors == []


def test_collapse_id_keeps_valid_keys_and_replaces_others_by_their_sha256() -> None:
    assert collapse_id("k" * 64) == "k" * 64
    assert collapse_id("k" * 65) == hashlib.sha256(b"k" * 65).hexdigest()
    assert collapse_id("ünï") == hashlib.sha256("ünï".encode()).hexdigest()
    assert collapse_id("line\nbreak") == hashlib.sha256(b"line\nbreak").hexdigest()


# --- payload limit ---------------------------------------------------------------------------------


def _message_with_payload_bytes(size: int) -> Notification:
    base = len(json.dumps(build_payload(Notification(campaign_id="c", message="")), separators=(",", ":")))
    return Notification(campaign_id="c", message="x" * (size - base))


async def test_payload_of_exactly_4096_bytes_is_sent(fake: FakeApns, client: ApnsClient) -> None:
    token = fake.new_token()

    assert await client.send(token, _message_with_payload_bytes(MAX_PAYLOAD_BYTES)) == Delivered(200)
    assert fake.errors == []


async def test_payload_over_4096_bytes_is_rejected_before_sending(fake: FakeApns, client: ApnsClient) -> None:
    token = fake.new_token()

    result = await client.send(token, _message_with_payload_bytes(MAX_PAYLOAD_BYTES + 1))

    assert result == Rejected("payload is 4097 bytes; APNs takes at most 4096")
    assert fake.requests == []


def test_a_rehearsal_refuses_what_a_send_would_and_passes_the_rest(client: ApnsClient) -> None:
    """CLARION_DELIVERY=sink: body, headers and provider token made as for a send, nothing sent."""
    assert client.rehearse("a" * 64, _message_with_payload_bytes(MAX_PAYLOAD_BYTES)) == Delivered(201)
    too_big = client.rehearse("a" * 64, _message_with_payload_bytes(MAX_PAYLOAD_BYTES + 1))
    assert too_big == Rejected("payload is 4097 bytes; APNs takes at most 4096")


async def test_payload_size_counts_utf8_bytes(fake: FakeApns, client: ApnsClient) -> None:
    token = fake.new_token()

    result = await client.send(token, Notification(campaign_id="c", message="é" * 2100))

    # 2100 two-byte characters inside the 47 bytes of {"aps":{"alert":{"body":""}},"campaign_id":"c"}
    assert result == Rejected("payload is 4247 bytes; APNs takes at most 4096")
    assert fake.requests == []


# --- provider token (JWT) --------------------------------------------------------------------------


async def test_one_provider_token_serves_many_concurrent_sends(
    fake: FakeApns, client: ApnsClient, now: int
) -> None:
    tokens = [fake.new_token() for _ in range(50)]

    results = await asyncio.gather(*(client.send(token, MESSAGE) for token in tokens))

    assert results == [Delivered(200)] * 50
    [jwt] = fake.provider_tokens
    assert jwt_parts(f"bearer {jwt}") == (
        {"alg": "ES256", "kid": "KEY1234567"},
        {"iss": "TEAM123456", "iat": now},
    )


async def test_provider_token_is_renewed_after_40_minutes(fake: FakeApns) -> None:
    start = int(time.time()) - 45 * 60  # APNs takes tokens up to an hour old
    clock = [float(start)]
    apns = make_client(fake, clock=lambda: clock[0])
    token = fake.new_token()
    try:
        await apns.send(token, MESSAGE)
        clock[0] = start + PROVIDER_TOKEN_REFRESH_S - 1
        await apns.send(token, MESSAGE)
        clock[0] = start + PROVIDER_TOKEN_REFRESH_S
        await apns.send(token, MESSAGE)
    finally:
        await apns.close()

    iats = [jwt_parts(r.headers["authorization"])[1]["iat"] for r in fake.received]
    assert iats == [start, start, start + PROVIDER_TOKEN_REFRESH_S]
    assert len(fake.provider_tokens) == 2
    assert fake.errors == []


def test_discard_renews_only_the_token_that_was_refused() -> None:
    pem, _ = new_p8_key()
    clock = [1_000.0]
    tokens = ProviderToken(pem, key_id="K", team_id="T", clock=lambda: clock[0])
    first = tokens.current()

    tokens.discard(first)
    second = tokens.current()
    tokens.discard(first)  # a late answer about the old token changes nothing

    assert second != first
    assert tokens.current() == second


@pytest.mark.parametrize("reason", ["ExpiredProviderToken", "InvalidProviderToken"])
async def test_refused_provider_token_is_renewed_and_the_send_retried_once(
    fake: FakeApns, client: ApnsClient, reason: str
) -> None:
    token = fake.new_token()
    fake.script(token, [Respond(403, reason=reason)])

    result = await client.send(token, MESSAGE)

    assert result == Delivered(200)
    first, second = fake.received_for(token)
    assert first.headers["authorization"] != second.headers["authorization"]
    assert len(fake.provider_tokens) == 2


@pytest.mark.parametrize("reason", ["ExpiredProviderToken", "InvalidProviderToken"])
async def test_provider_token_refused_twice_fails_the_channel(
    fake: FakeApns, client: ApnsClient, reason: str
) -> None:
    token = fake.new_token()
    fake.script(token, [Respond(403, reason=reason), Respond(403, reason=reason)])

    result = await client.send(token, MESSAGE)

    # A key refused even when freshly signed condemns the credentials; an expired token is the channel's.
    assert result == Rejected(f"channel: HTTP 403: {reason}", credentials=reason == "InvalidProviderToken")
    assert len(fake.received_for(token)) == 2


async def test_concurrent_refusals_renew_the_provider_token_once(fake: FakeApns, client: ApnsClient) -> None:
    tokens = [fake.new_token() for _ in range(10)]
    for token in tokens:
        fake.script(token, [Respond(403, reason="ExpiredProviderToken")])

    results = await asyncio.gather(*(client.send(token, MESSAGE) for token in tokens))

    assert results == [Delivered(200)] * 10
    assert len(fake.provider_tokens) == 2


async def test_token_older_than_an_hour_is_refused_by_apns_and_fails_the_channel(fake: FakeApns) -> None:
    stale = time.time() - 2 * 3600
    apns = make_client(fake, clock=lambda: stale)
    token = fake.new_token()
    try:
        result = await apns.send(token, MESSAGE)
    finally:
        await apns.close()

    assert result == Rejected("channel: HTTP 403: ExpiredProviderToken")
    assert fake.errors == [Failure(token, 403, "ExpiredProviderToken")] * 2


async def test_token_signed_with_another_key_fails_the_channel(fake: FakeApns) -> None:
    other_pem, _ = new_p8_key()
    apns = make_client(fake, key_pem=other_pem)
    token = fake.new_token()
    try:
        result = await apns.send(token, MESSAGE)
    finally:
        await apns.close()

    assert result == Rejected("channel: HTTP 403: InvalidProviderToken", credentials=True)
    assert fake.errors == [Failure(token, 403, "InvalidProviderToken")] * 2


@pytest.mark.parametrize(("key_id", "team_id"), [("OTHERKEY00", "TEAM123456"), ("KEY1234567", "OTHERTEAM0")])
async def test_wrong_key_id_or_team_fails_the_channel(fake: FakeApns, key_id: str, team_id: str) -> None:
    apns = make_client(fake, key_id=key_id, team_id=team_id)
    try:
        result = await apns.send(fake.new_token(), MESSAGE)
    finally:
        await apns.close()

    assert result == Rejected("channel: HTTP 403: InvalidProviderToken", credentials=True)


def test_key_must_be_a_p256_private_key() -> None:
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        load_p8_key("not a key")
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        ApnsClient(
            base_url="https://127.0.0.1:1",
            key_pem="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            key_id="K",
            team_id="T",
            topic="t",
            ca_file=None,
            timeout_s=1,
            connect_timeout_s=1,
        )


# --- error mapping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (Respond(410, reason="Unregistered", timestamp=TIMESTAMP_MS), Gone("HTTP 410: Unregistered")),
        (Respond(410, reason="ExpiredToken"), Gone("HTTP 410: ExpiredToken")),
        (Respond(400, reason="BadDeviceToken"), Gone("HTTP 400: BadDeviceToken")),
        (Respond(400, reason="DeviceTokenNotForTopic"), Gone("HTTP 400: DeviceTokenNotForTopic")),
        (
            Respond(429, reason="TooManyRequests", retry_after="1"),
            Retry("HTTP 429: TooManyRequests", 1.0),
        ),
        (Respond(429, reason="TooManyRequests"), Retry("HTTP 429: TooManyRequests", None)),
        (Respond(500), Retry("HTTP 500", None)),
        (Respond(500, reason="InternalServerError"), Retry("HTTP 500: InternalServerError", None)),
        (
            Respond(503, reason="ServiceUnavailable", retry_after="30"),
            Retry("HTTP 503: ServiceUnavailable", 30.0),
        ),
        (Respond(503, reason="Shutdown"), Retry("HTTP 503: Shutdown", None)),
        (Respond(413, reason="PayloadTooLarge"), Rejected("HTTP 413: PayloadTooLarge")),
        (Respond(400, reason="BadTopic"), Rejected("HTTP 400: BadTopic")),
        (Respond(400, reason="MissingTopic"), Rejected("HTTP 400: MissingTopic")),
        (Respond(400, reason="BadCollapseId"), Rejected("HTTP 400: BadCollapseId")),
        (Respond(403, reason="Forbidden"), Rejected("channel: HTTP 403: Forbidden")),
        (Respond(404, reason="BadPath"), Rejected("HTTP 404: BadPath")),
        (Respond(307, location="https://elsewhere.example/"), Rejected("HTTP 307")),
    ],
)
async def test_apns_answers_map_to_outcomes(
    fake: FakeApns, client: ApnsClient, response: Respond, expected: Outcome
) -> None:
    token = fake.new_token()
    fake.script(token, [response])

    result = await client.send(token, MESSAGE)

    assert result == expected
    assert len(fake.requests) == 1  # no retry, and no redirect followed


@pytest.mark.parametrize(
    ("registered_at", "expected"),
    [
        (None, Gone("HTTP 410: Unregistered")),
        (datetime(2023, 11, 14, 22, 13, 19, tzinfo=UTC), Gone("HTTP 410: Unregistered")),
        (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), Gone("HTTP 410: Unregistered")),
        (datetime(2023, 11, 14, 22, 13, 21, tzinfo=UTC), Rejected("stale Unregistered")),
        (datetime(2023, 11, 14, 22, 13, 21), Rejected("stale Unregistered")),  # naive means UTC
    ],
)
async def test_unregistered_is_stale_when_the_token_registered_again_later(
    fake: FakeApns, client: ApnsClient, registered_at: datetime | None, expected: Outcome
) -> None:
    token = fake.new_token()
    fake.script(token, [Respond(410, reason="Unregistered", timestamp=TIMESTAMP_MS)])

    result = await client.send(token, MESSAGE, token_registered_at=registered_at)

    assert result == expected


def test_unregistered_without_timestamp_is_gone_whenever_registered() -> None:
    registered_at = datetime.now(UTC)

    result = outcome(410, "Unregistered", token_registered_at=registered_at)

    assert result == Gone("HTTP 410: Unregistered")


def test_retry_after_as_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    header = when.strftime("%a, %d %b %Y %H:%M:%S GMT")

    result = outcome(503, "ServiceUnavailable", retry_after=header)

    assert isinstance(result, Retry)
    assert result.reason == "HTTP 503: ServiceUnavailable"
    assert result.after_s is not None
    assert 110 <= result.after_s <= 120


async def test_non_hex_device_token_is_gone(fake: FakeApns, client: ApnsClient) -> None:
    result = await client.send("not-a-token", MESSAGE)

    assert result == Gone("HTTP 400: BadDeviceToken")
    assert fake.errors == [Failure("not-a-token", 400, "BadDeviceToken")]


async def test_device_token_cannot_change_the_path(fake: FakeApns, client: ApnsClient) -> None:
    result = await client.send("../../x", MESSAGE)

    assert result == Gone("HTTP 400: BadDeviceToken")
    assert [r.path for r in fake.requests] == ["/3/device/..%2F..%2Fx"]


async def test_topic_apns_does_not_allow_is_rejected(fake: FakeApns) -> None:
    apns = make_client(fake, topic="com.example.other")
    token = fake.new_token()
    try:
        result = await apns.send(token, MESSAGE)
    finally:
        await apns.close()

    assert result == Rejected("HTTP 400: TopicDisallowed")
    assert fake.errors == [Failure(token, 400, "TopicDisallowed")]


# --- network ---------------------------------------------------------------------------------------


async def test_hanging_request_times_out_as_retry_and_the_connection_stays_usable(fake: FakeApns) -> None:
    apns = make_client(fake, timeout_s=0.3)
    stuck, fine = fake.new_token(), fake.new_token()
    fake.script(stuck, [Hang()])
    try:
        results = await asyncio.gather(apns.send(stuck, MESSAGE), apns.send(fine, MESSAGE))
        again = await apns.send(fine, MESSAGE)
    finally:
        await apns.close()

    assert list(results) == [Retry("TimeoutError"), Delivered(200)]
    assert again == Delivered(200)
    assert len({r.peer for r in fake.requests}) == 1


async def test_connection_refused_is_retry() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pem, _ = new_p8_key()
    apns = ApnsClient(
        base_url=f"https://127.0.0.1:{port}",
        key_pem=pem,
        key_id="K",
        team_id="T",
        topic="t",
        ca_file=None,
        timeout_s=2,
        connect_timeout_s=1,
    )
    try:
        result = await apns.send("ab" * 32, MESSAGE)
    finally:
        await apns.close()

    assert isinstance(result, Retry)
    assert result.reason.startswith("ConnectError: ")
    assert result.after_s is None


# --- transport: HTTP/2 and TLS ---------------------------------------------------------------------


async def test_sends_multiplex_over_one_http2_connection(fake: FakeApns, client: ApnsClient) -> None:
    tokens = [fake.new_token() for _ in range(64)]

    results = await asyncio.gather(*(client.send(token, MESSAGE) for token in tokens))

    assert results == [Delivered(200)] * 64
    requests = fake.requests
    assert {r.http_version for r in requests} == {"2"}
    assert len({r.peer for r in requests}) == 1
    assert sorted(r.path for r in requests) == sorted(f"/3/device/{t}" for t in tokens)


async def test_fake_refuses_http1(fake: FakeApns) -> None:
    context = ssl.create_default_context(cafile=fake.ca_file)
    async with httpx.AsyncClient(verify=context) as http1:
        response = await http1.post(f"{fake.origin}/3/device/{'ab' * 32}", content=b"{}")

    assert (response.http_version, response.status_code) == ("HTTP/1.1", 505)
    assert fake.errors == [Failure("ab" * 32, 505, "HTTP/1.1 request; APNs speaks HTTP/2 only")]
    assert fake.received == []


async def test_server_certificate_is_refused_without_the_test_ca(fake: FakeApns) -> None:
    apns = make_client(fake, ca_file=None)
    try:
        result = await apns.send(fake.new_token(), MESSAGE)
    finally:
        await apns.close()

    assert result == Retry("ConnectError: connection error (invalid peer certificate: UnknownIssuer)")
    assert fake.requests == []


async def test_localhost_name_is_trusted_too(fake: FakeApns) -> None:
    apns = make_client(fake, base_url=fake.origin.replace("127.0.0.1", "localhost"))
    try:
        result = await apns.send(fake.new_token(), MESSAGE)
    finally:
        await apns.close()

    assert result == Delivered(200)


# --- the fake itself -------------------------------------------------------------------------------


def test_fake_leaves_no_thread_port_or_file_behind() -> None:
    before = set(threading.enumerate())
    fake = FakeApns()
    port, directory = fake.port, os.path.dirname(fake.ca_file)
    assert os.path.exists(fake.ca_file)

    fake.stop()
    fake.stop()

    assert set(threading.enumerate()) <= before
    assert not os.path.exists(directory)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


async def test_fake_stops_while_a_request_hangs(fake: FakeApns) -> None:
    apns = make_client(fake, timeout_s=10)
    token = fake.new_token()
    fake.script(token, [Hang()])
    try:
        pending = asyncio.ensure_future(apns.send(token, MESSAGE))
        await _until(lambda: len(fake.received) == 1)
        started = time.monotonic()
        await asyncio.to_thread(fake.stop)
        result = await pending
    finally:
        await apns.close()

    assert time.monotonic() - started < 5  # not the client's 10 s, nor asyncio's 30 s TLS shutdown
    assert result == Retry("HTTP 503: Shutdown")


def test_fake_accepts_an_external_public_key() -> None:
    private, public = new_p8_key()
    with FakeApns(public_key_pem=public, team_id="ABCDE12345", key_id="XYZ9876543") as fake:
        assert fake.key_pem is None
        apns = make_client(fake, key_pem=private, team_id="ABCDE12345", key_id="XYZ9876543")

        async def send_one() -> Outcome:
            try:
                return await apns.send(fake.new_token(), MESSAGE)
            finally:
                await apns.close()

        assert asyncio.run(send_one()) == Delivered(200)
        fake.wait_for(1, timeout_s=1)


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)
