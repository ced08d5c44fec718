import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace

import pytest
from pyreqwest.client import Client

from clarion.content import Button, Notification
from clarion.provider.adm import MAX_DATA_BYTES, AdmClient, adm_message
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry
from tests.fakes.adm import FakeAdm, adm_error
from tests.fakes.native_service import Failure, Hang, Request, Respond, oauth_error

FAKE = FakeAdm

FULL = Notification(
    campaign_id="cmp-1",
    message="Half price today",
    title="Sale",
    subtitle="Shop",
    icon="https://img.example.com/icon.png",
    image="https://img.example.com/sale.png",
    url="https://shop.example.com/sale",
    buttons=(Button("Open", "open_url", "https://shop.example.com/b"),),
    sound="chime",
    data={"deal": "42", "count": 7},
    ttl_s=3600,
    collapse_key="sale",
)
PLAIN = Notification(campaign_id="cmp-2", message="Hello")


@pytest.fixture
def client(http: Client, fake: FakeAdm, credentials: tuple[str, str]) -> AdmClient:
    return AdmClient(http, *credentials, base_url=fake.origin)


# --- request shape ----------------------------------------------------------------------------------


async def test_message_carries_data_consolidation_key_and_expiry(fake: FakeAdm, client: AdmClient) -> None:
    registration = fake.new_registration()

    assert await client.send(registration, FULL) == Delivered(200)

    [received] = fake.received
    assert received.registration_id == registration
    assert received.body == {
        "data": {
            "deal": "42",
            "count": "7",
            "campaign_id": "cmp-1",
            "url": "https://shop.example.com/sale",
            "title": "Sale",
            "message": "Half price today",
            "subtitle": "Shop",
            "icon": "https://img.example.com/icon.png",
            "image": "https://img.example.com/sale.png",
            "sound": "chime",
            "buttons": '[{"title":"Open","action_type":"open_url","action":"https://shop.example.com/b"}]',
        },
        "expiresAfter": 3600,
        "consolidationKey": "sale",
    }
    [grant] = fake.token_grants
    headers = {k: received.headers[k] for k in ("authorization", "content-type", "accept")}
    amzn = {k: v for k, v in received.headers.items() if k.startswith("x-amzn-")}
    assert headers == {
        "authorization": f"Bearer {grant.access_token}",
        "content-type": "application/json",
        "accept": "application/json",
    }
    assert amzn == {
        "x-amzn-type-version": "com.amazon.device.messaging.ADMMessage@1.0",
        "x-amzn-accept-type": "com.amazon.device.messaging.ADMSendResult@1.0",
    }
    assert fake.errors == []


async def test_silent_message_carries_no_title_or_message(fake: FakeAdm, client: AdmClient) -> None:
    registration = fake.new_registration()
    silent = Notification(
        campaign_id="cmp-3", message="not shown", title="not shown", data={"sync": "inbox"}, silent=True
    )

    assert await client.send(registration, silent) == Delivered(200)

    assert fake.received[0].body == {
        "data": {"sync": "inbox", "campaign_id": "cmp-3"},
        "expiresAfter": 28800,
    }


async def test_registration_id_is_one_path_segment(fake: FakeAdm, client: AdmClient) -> None:
    odd = "amzn1.adm-registration.v3.a+b/c=="
    fake.script(odd, [Respond(200, {"registrationID": odd})])

    assert await client.send(odd, PLAIN) == Delivered(200)
    assert fake.received[0].registration_id == odd


@pytest.mark.parametrize(("ttl_s", "expires"), [(0, 1), (-3, 1), (10**9, 31 * 24 * 3600)])
def test_expiry_is_kept_within_what_adm_accepts(ttl_s: int, expires: int) -> None:
    body = adm_message(Notification(campaign_id="c", message="m", ttl_s=ttl_s))

    assert body["expiresAfter"] == expires


def test_long_collapse_key_becomes_its_digest() -> None:
    key = "k" * 65

    body = adm_message(Notification(campaign_id="c", message="m", collapse_key=key))

    assert body["consolidationKey"] == hashlib.sha256(key.encode()).hexdigest()


def test_clarion_keys_win_over_the_apps_data() -> None:
    message = Notification(campaign_id="c", message="m", data={"campaign_id": "x", "message": 1, "own": None})

    assert adm_message(message)["data"] == {"campaign_id": "c", "message": "m", "own": "null"}


# --- limits checked before sending ------------------------------------------------------------------


def with_data_of(size: int) -> Notification:
    empty = adm_message(Notification(campaign_id="c", message="m", data={"pad": ""}))["data"]
    base = len(json.dumps(empty, separators=(",", ":")))
    return Notification(campaign_id="c", message="m", data={"pad": "x" * (size - base)})


async def test_data_of_exactly_the_limit_is_sent(fake: FakeAdm, client: AdmClient) -> None:
    assert await client.send(fake.new_registration(), with_data_of(MAX_DATA_BYTES)) == Delivered(200)
    assert fake.errors == []


async def test_data_over_the_limit_is_rejected_before_sending(fake: FakeAdm, client: AdmClient) -> None:
    outcome = await client.send(fake.new_registration(), with_data_of(MAX_DATA_BYTES + 1))

    assert outcome == Rejected("ADM data is 6145 bytes; at most 6144 are allowed")
    assert fake.requests == []


def test_a_rehearsal_refuses_what_a_send_would_and_passes_the_rest(client: AdmClient) -> None:
    """CLARION_DELIVERY=sink: the body is built and checked as for a send, with no token fetched."""
    assert client.rehearse("amzn1.adm-registration.v3.x", with_data_of(MAX_DATA_BYTES)) == Delivered(201)
    too_big = client.rehearse("amzn1.adm-registration.v3.x", with_data_of(MAX_DATA_BYTES + 1))
    assert too_big == Rejected("ADM data is 6145 bytes; at most 6144 are allowed")


async def test_empty_registration_and_bad_text_are_rejected(fake: FakeAdm, client: AdmClient) -> None:
    outcomes = [
        await client.send("", PLAIN),
        await client.send("r", Notification(campaign_id="c", message="bad \ud800")),
    ]

    assert outcomes == [
        Rejected("empty ADM registration ID"),
        Rejected("the message holds text that is not valid Unicode"),
    ]
    assert fake.requests == []


# --- the OAuth token --------------------------------------------------------------------------------


async def test_one_token_request_serves_many_sends(
    fake: FakeAdm, client: AdmClient, credentials: tuple[str, str]
) -> None:
    registrations = [fake.new_registration() for _ in range(10)]

    outcomes = await asyncio.gather(*(client.send(r, PLAIN) for r in registrations))
    outcomes.append(await client.send(registrations[0], PLAIN))

    assert outcomes == [Delivered(200)] * 11
    [grant] = fake.token_grants
    assert grant.details == {
        "grant_type": "client_credentials",
        "client_id": credentials[0],
        "scope": "messaging:push",
    }
    assert fake.errors == []


async def test_token_is_renewed_before_it_expires(
    fake: FakeAdm, http: Client, credentials: tuple[str, str]
) -> None:
    now = [0.0]
    client = AdmClient(http, *credentials, base_url=fake.origin, clock=lambda: now[0])
    registration = fake.new_registration()

    await client.send(registration, PLAIN)
    now[0] = 3600 - 300 - 1
    await client.send(registration, PLAIN)
    before = len(fake.token_grants)
    now[0] = 3600 - 300 + 1
    await client.send(registration, PLAIN)

    assert (before, len(fake.token_grants)) == (1, 2)


async def test_refused_token_is_refreshed_once_and_the_send_retried(fake: FakeAdm, client: AdmClient) -> None:
    registration = fake.new_registration()
    assert await client.send(registration, PLAIN) == Delivered(200)
    fake.revoke_tokens()

    assert await client.send(registration, PLAIN) == Delivered(200)

    assert len(fake.token_grants) == 2
    assert fake.errors == [Failure(registration, 401, "bearer token unknown or revoked")]


async def test_401_after_a_refresh_fails_the_channel(fake: FakeAdm, client: AdmClient) -> None:
    registration = fake.new_registration()
    fake.script(registration, [adm_error(401, "AccessTokenExpired"), adm_error(401, "AccessTokenExpired")])

    outcome = await client.send(registration, PLAIN)

    assert outcome == Rejected(
        "channel: credentials refused after a token refresh (HTTP 401: AccessTokenExpired)", credentials=True
    )
    assert len(fake.token_grants) == 2


async def test_wrong_secret_fails_the_channel(
    fake: FakeAdm, http: Client, credentials: tuple[str, str]
) -> None:
    client = AdmClient(http, credentials[0], "wrong", base_url=fake.origin)

    outcome = await client.send(fake.new_registration(), PLAIN)

    assert outcome == Rejected(
        "channel: token endpoint: HTTP 401: invalid_client: Client authentication failed", credentials=True
    )
    assert fake.requests == [Request("POST", "/auth/o2/token")]


async def test_token_endpoint_trouble_means_retry(fake: FakeAdm, client: AdmClient) -> None:
    fake.script_token([replace(oauth_error(500, "server_error", "oops"), retry_after="6")])

    outcome = await client.send(fake.new_registration(), PLAIN)

    assert outcome == Retry("token endpoint: HTTP 500: server_error: oops", 6.0)


async def test_token_answer_without_access_token_fails_the_channel(fake: FakeAdm, client: AdmClient) -> None:
    fake.script_token([Respond(200, {"token_type": "bearer"})])

    outcome = await client.send(fake.new_registration(), PLAIN)

    assert outcome == Rejected("channel: token endpoint answered 200 without a usable access_token")


# --- what ADM's answers mean ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (adm_error(400, "Unregistered"), Gone("HTTP 400: Unregistered")),
        (adm_error(400, "InvalidRegistrationId"), Gone("HTTP 400: InvalidRegistrationId")),
        (adm_error(400, "InvalidData"), Rejected("HTTP 400: InvalidData")),
        (adm_error(400, "InvalidConsolidationKey"), Rejected("HTTP 400: InvalidConsolidationKey")),
        (adm_error(413, "MessageTooLarge"), Rejected("HTTP 413: MessageTooLarge")),
        (adm_error(429, "MaxRateExceeded", retry_after="3"), Retry("HTTP 429: MaxRateExceeded", 3.0)),
        (adm_error(429, "MaxRateExceeded"), Retry("HTTP 429: MaxRateExceeded")),
        (adm_error(500, "InternalServerError"), Retry("HTTP 500: InternalServerError")),
        (adm_error(503, "ServiceUnavailable", retry_after="8"), Retry("HTTP 503: ServiceUnavailable", 8.0)),
        (Respond(403, "Forbidden"), Rejected("HTTP 403: Forbidden")),
    ],
)
async def test_error_answers_map_to_outcomes(
    fake: FakeAdm, client: AdmClient, answer: Respond, outcome: Outcome
) -> None:
    registration = fake.new_registration()
    fake.script(registration, [answer])

    assert await client.send(registration, PLAIN) == outcome
    assert fake.errors == []


async def test_unregistered_and_unknown_registrations_are_gone(fake: FakeAdm, client: AdmClient) -> None:
    registration = fake.new_registration()
    fake.unregister(registration)

    outcomes = [await client.send(registration, PLAIN), await client.send("amzn1.never-made", PLAIN)]

    assert outcomes == [Gone("HTTP 400: Unregistered"), Gone("HTTP 400: InvalidRegistrationId")]


async def test_unreachable_service_means_retry(
    http: Client, fake: FakeAdm, credentials: tuple[str, str], closed_origin: str
) -> None:
    client = AdmClient(http, *credentials, base_url=closed_origin)

    outcome = await client.send(fake.new_registration(), PLAIN)

    assert isinstance(outcome, Retry)
    assert (
        outcome.reason
        == "token endpoint: " + "ConnectError: connection error (Connection refused (os error 111))"
    )


async def test_timeout_means_retry(
    new_http: Callable[[float], Client], fake: FakeAdm, credentials: tuple[str, str]
) -> None:
    client = AdmClient(new_http(0.5), *credentials, base_url=fake.origin)
    registration = fake.new_registration()
    fake.script(registration, [Hang()])

    assert await client.send(registration, PLAIN) == Retry("TimeoutError")
