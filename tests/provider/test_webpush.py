import http.client
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pyreqwest.client import Client

from clarion.provider.outcome import Delivered, Gone, Rejected, Retry, parse_retry_after
from clarion.provider.webpush import (
    MAX_PLAINTEXT_BYTES,
    VapidSigner,
    WebPushRequest,
    b64url_decode,
    b64url_encode,
    encrypt,
    encrypt_with,
    endpoint_origin,
    generate_vapid_keys,
    push_topic,
    send,
)
from clarion.provider.webpush import http_client as webpush_http_client
from tests.fakes.apns import FakeApns
from tests.fakes.push_service import FakePushService, Hang, Request, Respond, Subscription

# RFC 8291 Appendix A, with the line breaks of the RFC's text removed.
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_AS_PUBLIC = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_UA_PUBLIC = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8w"
    "EqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)

SUBJECT = "mailto:ops@example.com"
T0 = 1_700_000_000.0


def private_from_raw(d: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(b64url_decode(d), "big"), ec.SECP256R1())


def make_signer(clock: list[float] | None = None) -> VapidSigner:
    pem, public = generate_vapid_keys()
    if clock is None:
        return VapidSigner(pem, public, SUBJECT)
    return VapidSigner(pem, public, SUBJECT, clock=lambda: clock[0])


def decode_jwt_part(part: str) -> dict[str, object]:
    value: dict[str, object] = json.loads(b64url_decode(part))
    return value


# --- encryption -------------------------------------------------------------------------------------


def test_encrypt_with_reproduces_rfc8291_appendix_a() -> None:
    sender = private_from_raw(RFC_AS_PRIVATE)

    body = encrypt_with(
        RFC_PLAINTEXT, RFC_UA_PUBLIC, RFC_AUTH, salt=b64url_decode(RFC_SALT), sender_private=sender
    )

    assert b64url_encode(body) == RFC_BODY


def test_rfc8291_vector_keys_are_consistent() -> None:
    # Guards the test above against a mistyped key: each private key must yield the RFC's public key.
    for private, public in ((RFC_AS_PRIVATE, RFC_AS_PUBLIC), (RFC_UA_PRIVATE, RFC_UA_PUBLIC)):
        raw = (
            private_from_raw(private)
            .public_key()
            .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
        assert b64url_encode(raw) == public


def test_encrypt_round_trips_with_fresh_salt_and_key_each_call() -> None:
    receiver = ec.generate_private_key(ec.SECP256R1())
    p256dh = b64url_encode(
        receiver.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )
    auth = bytes(range(16))

    first = encrypt(b"hello", p256dh, b64url_encode(auth) + "==")  # padding is accepted
    second = encrypt(b"hello", p256dh, b64url_encode(auth))

    for body in (first, second):
        assert http_ece.decrypt(body, private_key=receiver, auth_secret=auth, version="aes128gcm") == b"hello"
    assert first[:16] != second[:16]  # salt
    assert first[21:86] != second[21:86]  # ephemeral public key (the aes128gcm keyid)


def test_encrypt_fills_exactly_4096_bytes_at_the_plaintext_limit() -> None:
    sub_key = ec.generate_private_key(ec.SECP256R1())
    p256dh = b64url_encode(
        sub_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )

    assert len(encrypt(b"x" * MAX_PLAINTEXT_BYTES, p256dh, RFC_AUTH)) == 4096
    with pytest.raises(ValueError, match="3994 bytes"):
        encrypt(b"x" * (MAX_PLAINTEXT_BYTES + 1), p256dh, RFC_AUTH)


@pytest.mark.parametrize(
    ("p256dh", "auth", "message"),
    [
        (RFC_UA_PUBLIC[:-4], RFC_AUTH, "65 bytes"),
        (RFC_UA_PUBLIC, RFC_AUTH[:-4], "16-byte"),
        (RFC_UA_PUBLIC, "not base64!", "not valid base64url"),
    ],
)
def test_encrypt_refuses_malformed_subscription_keys(p256dh: str, auth: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encrypt(b"hi", p256dh, auth)


# --- VAPID --------------------------------------------------------------------------------------------


def test_vapid_header_is_a_valid_es256_jwt_with_the_expected_claims() -> None:
    clock = [T0]
    signer = make_signer(clock)

    header = signer.authorization("https://fcm.googleapis.com:443/wp/abc?x=1")

    match = re.fullmatch(r"vapid t=([\w-]+)\.([\w-]+)\.([\w-]+), k=([\w-]+)", header)
    assert match is not None
    head, claims, signature, key = match.groups()
    assert key == signer.public_key
    assert decode_jwt_part(head) == {"typ": "JWT", "alg": "ES256"}
    assert decode_jwt_part(claims) == {
        "aud": "https://fcm.googleapis.com",
        "exp": int(T0) + 12 * 3600,
        "sub": SUBJECT,
    }
    raw = b64url_decode(signature)
    assert len(raw) == 64
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if invalid


def test_vapid_header_is_cached_per_origin_until_an_hour_before_expiry() -> None:
    clock = [T0]
    signer = make_signer(clock)
    first = signer.authorization("https://push.example.net/a")

    assert signer.authorization("https://push.example.net/b") == first
    assert signer.authorization("https://other.example.net/a") != first
    clock[0] = T0 + 11 * 3600 - 1  # 1 h 1 s before expiry: still reused
    assert signer.authorization("https://push.example.net/c") == first
    clock[0] = T0 + 11 * 3600  # exactly 1 h before expiry: re-signed
    renewed = signer.authorization("https://push.example.net/c")
    assert renewed != first
    claims = decode_jwt_part(renewed.split(" ")[1].removeprefix("t=").split(".")[1])
    assert claims["exp"] == int(T0) + 23 * 3600


def test_vapid_signer_refuses_a_mismatched_public_key_and_a_bad_subject() -> None:
    pem, _ = generate_vapid_keys()
    _, other_public = generate_vapid_keys()

    with pytest.raises(ValueError, match="does not belong"):
        VapidSigner(pem, other_public, SUBJECT)
    with pytest.raises(ValueError, match="mailto: or https:"):
        VapidSigner(pem, other_public, "ops@example.com")


def test_generate_vapid_keys_gives_pkcs8_pem_and_a_65_byte_point() -> None:
    pem, public = generate_vapid_keys()

    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS8, not "BEGIN EC PRIVATE KEY"
    raw = b64url_decode(public)
    assert (len(raw), raw[0], "=" in public) == (65, 0x04, False)


@pytest.mark.parametrize(
    ("endpoint", "origin"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com"),
        ("https://Push.Example.NET:443/x", "https://push.example.net"),
        ("https://push.example.net:8443/x", "https://push.example.net:8443"),
        ("http://127.0.0.1:5000/push/1", "http://127.0.0.1:5000"),
        ("http://[::1]:80/p", "http://[::1]"),
    ],
)
def test_endpoint_origin(endpoint: str, origin: str) -> None:
    assert endpoint_origin(endpoint) == origin


@pytest.mark.parametrize("endpoint", ["ftp://push.example.net/x", "/push/1", "https:///nohost"])
def test_endpoint_origin_refuses_non_http_urls(endpoint: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        endpoint_origin(endpoint)


# --- Topic ------------------------------------------------------------------------------------------


def test_push_topic_keeps_a_valid_topic() -> None:
    assert push_topic("news-2024_A") == "news-2024_A"
    assert push_topic("a" * 32) == "a" * 32


@pytest.mark.parametrize("topic", ["a" * 33, "breaking news", "ünïcode", ""])
def test_push_topic_derives_a_stable_valid_topic(topic: str) -> None:
    derived = push_topic(topic)

    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", derived)
    assert push_topic(topic) == derived
    assert push_topic(topic + "!") != derived


# --- Retry-After ------------------------------------------------------------------------------------

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("Wed, 01 Jan 2025 12:00:30 GMT", 30.0),
        ("Wed, 01 Jan 2025 11:00:00 GMT", 0.0),  # in the past: now, never negative
        ("Wed, 01 Jan 2025 12:01:00 -0000", 60.0),  # naive per email.utils, taken as UTC
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


# --- send against the fake push service ---------------------------------------------------------------

TIMEOUT_S = 5.0


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


def http_client(timeout_s: float = TIMEOUT_S) -> Client:
    return webpush_http_client(ca_file=None, timeout_s=timeout_s, connect_timeout_s=TIMEOUT_S)


@pytest.fixture
async def session() -> AsyncIterator[Client]:
    client = http_client()
    yield client
    await client.close()


def request_for(
    sub: Subscription,
    payload: bytes = b'{"title":"hi"}',
    *,
    ttl_s: int = 60,
    urgency: str | None = None,
    topic: str | None = None,
) -> WebPushRequest:
    return WebPushRequest(sub.endpoint, sub.p256dh, sub.auth, payload, ttl_s, urgency, topic)


async def test_send_delivers_and_the_service_decrypts_the_exact_payload(
    fake: FakePushService, session: Client
) -> None:
    sub = fake.new_subscription()
    signer = make_signer()

    outcome = await send(session, signer, request_for(sub, urgency="high", topic="news"))

    assert outcome == Delivered(201)
    [received] = fake.received_for(sub.sub_id)
    assert received.payload == b'{"title":"hi"}'
    assert {k: received.headers[k] for k in ("ttl", "urgency", "topic", "content-encoding")} == {
        "ttl": "60",
        "urgency": "high",
        "topic": "news",
        "content-encoding": "aes128gcm",
    }
    assert received.headers["content-type"] == "application/octet-stream"
    assert received.vapid_claims["aud"] == fake.origin
    assert received.vapid_claims["sub"] == SUBJECT
    assert fake.errors == []


async def test_send_derives_a_valid_topic_and_omits_unset_headers(
    fake: FakePushService, session: Client
) -> None:
    sub = fake.new_subscription()

    outcome = await send(session, make_signer(), request_for(sub, topic="breaking news"))

    assert outcome == Delivered(201)
    [received] = fake.received
    assert received.headers["topic"] == push_topic("breaking news")
    assert "urgency" not in received.headers


async def test_send_an_empty_payload_without_a_body(fake: FakePushService, session: Client) -> None:
    sub = fake.new_subscription()

    outcome = await send(session, make_signer(), request_for(sub, payload=b""))

    assert outcome == Delivered(201)
    [received] = fake.received
    assert (received.payload, "content-encoding" in received.headers) == (b"", False)


@pytest.mark.parametrize("status", [404, 410])
async def test_send_maps_404_and_410_to_gone(fake: FakePushService, session: Client, status: int) -> None:
    sub = fake.new_subscription()
    fake.script(sub.sub_id, [Respond(status, body="expired")])

    outcome = await send(session, make_signer(), request_for(sub))

    assert outcome == Gone(f"HTTP {status}: expired")
    assert fake.received == []


async def test_send_maps_429_with_retry_after_seconds_to_retry(
    fake: FakePushService, session: Client
) -> None:
    sub = fake.new_subscription()
    fake.script(sub.sub_id, [Respond(429, retry_after="2")])

    outcome = await send(session, make_signer(), request_for(sub))

    assert outcome == Retry("HTTP 429", 2.0)


async def test_send_maps_429_with_an_http_date_to_retry(fake: FakePushService, session: Client) -> None:
    sub = fake.new_subscription()
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=60)
    fake.script(sub.sub_id, [Respond(429, retry_after=format_datetime(later, usegmt=True))])

    outcome = await send(session, make_signer(), request_for(sub))

    assert isinstance(outcome, Retry)
    assert outcome.reason == "HTTP 429"
    assert outcome.after_s is not None
    assert 55.0 <= outcome.after_s <= 60.0


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (Respond(500, body="boom"), Retry("HTTP 500: boom")),
        (Respond(503, retry_after="30"), Retry("HTTP 503", 30.0)),
        (Respond(400, body="bad request"), Rejected("HTTP 400: bad request")),
        (Respond(413, body="  too\n  big "), Rejected("HTTP 413: too big")),
    ],
)
async def test_send_maps_other_statuses(
    fake: FakePushService,
    session: Client,
    response: Respond,
    expected: Retry | Rejected,
) -> None:
    sub = fake.new_subscription()
    fake.script(sub.sub_id, [response])

    assert await send(session, make_signer(), request_for(sub)) == expected


async def test_send_truncates_an_error_body_and_keeps_the_connection(
    fake: FakePushService, session: Client
) -> None:
    sub = fake.new_subscription()
    fake.script(sub.sub_id, [Respond(500, body="e" * 20_000)])
    signer = make_signer()

    first = await send(session, signer, request_for(sub))
    second = await send(session, signer, request_for(sub))

    assert (first, second) == (Retry("HTTP 500: " + "e" * 200), Delivered(201))
    [one, two] = fake.requests
    assert one.peer == two.peer


async def test_send_does_not_follow_a_redirect(fake: FakePushService, session: Client) -> None:
    sub = fake.new_subscription()
    elsewhere = fake.new_subscription()
    fake.script(sub.sub_id, [Respond(301, location=elsewhere.endpoint)])

    outcome = await send(session, make_signer(), request_for(sub))

    assert outcome == Rejected("HTTP 301")
    assert fake.requests == [Request("POST", f"/push/{sub.sub_id}")]


async def test_send_times_out_into_retry(fake: FakePushService, session: Client) -> None:
    sub = fake.new_subscription()
    fake.script(sub.sub_id, [Hang()])

    impatient = http_client(timeout_s=0.3)
    outcome = await send(impatient, make_signer(), request_for(sub))
    await impatient.close()

    assert outcome == Retry("TimeoutError")


async def test_send_turns_a_refused_connection_into_retry(session: Client) -> None:
    with FakePushService() as stopped:
        sub = stopped.new_subscription()

    outcome = await send(session, make_signer(), request_for(sub))

    assert outcome == Retry("ConnectError: connection error (Connection refused (os error 111))")


async def test_send_follows_scripts_in_order_then_the_default(fake: FakePushService, session: Client) -> None:
    sub = fake.new_subscription()
    fake.script(sub.sub_id, [Respond(500), Respond(202)])
    signer = make_signer()

    outcomes = [await send(session, signer, request_for(sub)) for _ in range(3)]

    assert outcomes == [Retry("HTTP 500"), Delivered(202), Delivered(201)]
    assert [r.sub_id for r in fake.received] == [sub.sub_id, sub.sub_id]
    fake.wait_for(2, timeout_s=0.1)


async def test_send_refuses_invalid_requests_without_a_request(
    fake: FakePushService, session: Client
) -> None:
    sub = fake.new_subscription()
    signer = make_signer()
    cases = [
        (
            request_for(sub, payload=b"x" * (MAX_PLAINTEXT_BYTES + 1)),
            "payload is 3994 bytes; at most 3993 fit",
        ),
        (request_for(sub, urgency="urgent"), "unknown urgency 'urgent'"),
        (request_for(sub, ttl_s=-1), "TTL must not be negative, got -1"),
    ]

    for request, reason in cases:
        assert await send(session, signer, request) == Rejected(reason)
    bad_key = WebPushRequest(sub.endpoint, sub.p256dh[:-4], sub.auth, b"hi", ttl_s=60)
    outcome = await send(session, signer, bad_key)
    assert isinstance(outcome, Rejected)
    assert outcome.reason.startswith("cannot encrypt for this subscription: ")
    assert fake.requests == []


# --- the fake itself must be able to fail ----------------------------------------------------------


async def test_fake_refuses_an_expired_vapid_token(fake: FakePushService, session: Client) -> None:
    sub = fake.new_subscription()
    stale = make_signer([datetime.now(UTC).timestamp() - 13 * 3600])

    outcome = await send(session, stale, request_for(sub))

    assert isinstance(outcome, Rejected)
    assert outcome.reason.startswith("HTTP 401: ")
    assert [(e.sub_id, e.status) for e in fake.errors] == [(sub.sub_id, 401)]
    assert fake.received == []


async def test_fake_refuses_a_key_other_than_the_subscriptions(
    fake: FakePushService, session: Client
) -> None:
    _, registered = generate_vapid_keys()
    sub = fake.new_subscription(application_server_key=registered)

    outcome = await send(session, make_signer(), request_for(sub))

    assert isinstance(outcome, Rejected)
    assert outcome.reason.startswith("HTTP 403: ")
    assert fake.received == []


async def test_fake_refuses_a_body_it_cannot_decrypt(fake: FakePushService, session: Client) -> None:
    sub = fake.new_subscription()
    other = fake.new_subscription()  # encrypted for another subscriber's keys
    request = WebPushRequest(sub.endpoint, other.p256dh, other.auth, b"secret", ttl_s=0)

    outcome = await send(session, make_signer(), request)

    assert isinstance(outcome, Rejected)
    assert outcome.reason.startswith("HTTP 400: ")
    assert fake.errors[0].reason.startswith("cannot decrypt")


def test_fake_in_fast_mode_only_counts() -> None:
    with FakePushService(verify=False) as fast:
        for _ in range(3):
            connection = http.client.HTTPConnection("127.0.0.1", fast.port, timeout=5)
            connection.request("POST", "/push/anything", body=b"junk")
            assert connection.getresponse().status == 201
            connection.close()
        fast.wait_for(3, timeout_s=1)

        assert (fast.accepted, fast.received, fast.errors) == (3, [], [])
        with pytest.raises(TimeoutError, match="3 of 4"):
            fast.wait_for(4, timeout_s=0.05)


def test_fake_stop_leaves_no_thread_or_port_behind() -> None:
    fake = FakePushService()
    fake.script("x", [Hang()])
    port = fake.port
    thread = fake._thread

    fake.stop()
    fake.stop()  # idempotent

    assert not thread.is_alive()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


async def test_send_speaks_http2_to_a_push_service_that_offers_it_over_tls(fake: FakePushService) -> None:
    # The local APNs is the HTTP/2-over-TLS server at hand: it records each request's HTTP version
    # before refusing what is not an APNs request, which is all this test needs of it.
    with FakeApns() as h2_service:
        client = webpush_http_client(
            ca_file=h2_service.ca_file, timeout_s=TIMEOUT_S, connect_timeout_s=TIMEOUT_S
        )
        subscription = fake.new_subscription()
        request = WebPushRequest(
            endpoint=f"{h2_service.origin}/3/device/{'ab' * 32}",
            p256dh=subscription.p256dh,
            auth=subscription.auth,
            payload=b'{"title":"hi"}',
            ttl_s=60,
        )
        outcome = await send(client, make_signer(), request)
        await client.close()
        requests = h2_service.requests

    assert outcome == Rejected('HTTP 403: {"reason": "MissingProviderToken"}')
    assert [(r.method, r.http_version) for r in requests] == [("POST", "2")]
