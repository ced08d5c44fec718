import asyncio
from collections.abc import Callable
from dataclasses import replace

import pytest
from pyreqwest.client import Client, ClientBuilder

from clarion.content import Button, Notification
from clarion.netpolicy import AddressPolicy
from clarion.provider.guard import GuardedClients
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry
from clarion.provider.wns import MAX_PAYLOAD_BYTES, WnsClient, wns_notification
from tests.fakes.native_service import Failure, Hang, Request, Respond, oauth_error
from tests.fakes.wns import FakeWns, channel_id_of, wns_error

FAKE = FakeWns

FULL = Notification(
    campaign_id="cmp-1",
    message="Half price today",
    title="Sale",
    subtitle="Shop",
    icon="https://img.example.com/icon.png",
    image="https://img.example.com/sale.png",
    url="https://shop.example.com/sale",
    buttons=(
        Button("Open", "open_url", "https://shop.example.com/b"),
        Button("App", "open_app"),
        Button("Later", "dismiss"),
    ),
    sound="ms-winsoundevent:Notification.Mail",
    data={"deal": 42},
    ttl_s=3600,
    collapse_key="sale",
)
PLAIN = Notification(campaign_id="cmp-2", message="Hello", title="Hi")


@pytest.fixture
def client(http: Client, channels: GuardedClients, fake: FakeWns, credentials: tuple[str, str]) -> WnsClient:
    return WnsClient(http, *credentials, auth_url=fake.origin, channels=channels)


@pytest.fixture
def channel(fake: FakeWns, credentials: tuple[str, str]) -> str:
    return fake.new_channel(credentials[0])


def attr(text: str) -> str:
    return text.replace('"', "&quot;")


# --- request shape ----------------------------------------------------------------------------------


async def test_toast_carries_title_body_images_launch_and_actions(
    fake: FakeWns, client: WnsClient, channel: str
) -> None:
    assert await client.send(channel, FULL) == Delivered(200)

    [received] = fake.received
    launch = attr('{"campaign_id":"cmp-1","url":"https://shop.example.com/sale","data":{"deal":42}}')
    assert received.body.decode() == (
        f'<toast launch="{launch}"><visual><binding template="ToastGeneric">'
        "<text>Sale</text><text>Half price today</text>"
        '<text placement="attribution">Shop</text>'
        '<image placement="appLogoOverride" src="https://img.example.com/icon.png" />'
        '<image placement="hero" src="https://img.example.com/sale.png" />'
        "</binding></visual><actions>"
        '<action content="Open" activationType="protocol" arguments="https://shop.example.com/b" />'
        f'<action content="App" activationType="foreground" arguments="{launch}" />'
        '<action content="Later" activationType="system" arguments="dismiss" />'
        '</actions><audio src="ms-winsoundevent:Notification.Mail" /></toast>'
    )
    [grant] = fake.token_grants
    wns_headers = {k: v for k, v in received.headers.items() if k.startswith("x-wns-")}
    assert wns_headers == {"x-wns-type": "wns/toast", "x-wns-ttl": "3600", "x-wns-tag": "sale"}
    assert received.headers["authorization"] == f"Bearer {grant.access_token}"
    assert received.headers["content-type"] == "text/xml"
    assert fake.errors == []


async def test_toast_text_is_escaped_and_stripped_of_characters_xml_forbids(
    fake: FakeWns, client: WnsClient, channel: str
) -> None:
    message = Notification(
        campaign_id="c", title='<b>"Deals"</b> & more', message="bell\x07 and\ttab", url="https://a/?x=1&y=2"
    )

    assert await client.send(channel, message) == Delivered(200)

    toast = fake.received[0].toast()
    assert [t.text for t in toast.iter("text")] == ['<b>"Deals"</b> & more', "bell and\ttab"]
    assert toast.get("launch") == '{"campaign_id":"c","url":"https://a/?x=1&y=2"}'
    assert fake.errors == []


async def test_toast_without_a_title_is_rejected(fake: FakeWns, client: WnsClient, channel: str) -> None:
    outcome = await client.send(channel, Notification(campaign_id="c", message="no title"))

    assert outcome == Rejected("WNS toast requires a title")
    assert fake.requests == []


async def test_silent_message_is_raw_json(fake: FakeWns, client: WnsClient, channel: str) -> None:
    silent = Notification(
        campaign_id="cmp-3",
        message="sync",
        url="https://a",
        buttons=(Button("Go", "open_url", "https://b"),),
        data={"inbox": 2},
        collapse_key="sync",
        silent=True,
    )

    assert await client.send(channel, silent) == Delivered(200)

    [received] = fake.received
    assert received.raw_json() == {
        "campaign_id": "cmp-3",
        "message": "sync",
        "url": "https://a",
        "buttons": [{"title": "Go", "action_type": "open_url", "action": "https://b"}],
        "data": {"inbox": 2},
    }
    wns_headers = {k: v for k, v in received.headers.items() if k.startswith("x-wns-")}
    assert wns_headers == {"x-wns-type": "wns/raw", "x-wns-ttl": "28800"}
    assert received.headers["content-type"] == "application/octet-stream"


def test_collapse_key_over_16_characters_is_not_a_tag() -> None:
    short = wns_notification(Notification(campaign_id="c", message="m", title="t", collapse_key="x" * 16))
    long = wns_notification(Notification(campaign_id="c", message="m", title="t", collapse_key="x" * 17))

    assert not isinstance(short, Rejected)
    assert not isinstance(long, Rejected)
    assert (short.tag, long.tag) == ("x" * 16, None)


def test_at_most_five_actions() -> None:
    buttons = tuple(Button(f"b{i}", "dismiss") for i in range(7))
    notification = wns_notification(Notification(campaign_id="c", message="m", title="t", buttons=buttons))

    assert not isinstance(notification, Rejected)
    assert notification.body.count(b"<action ") == 5


# --- limits checked before sending ------------------------------------------------------------------


def with_body_of(size: int) -> Notification:
    probe = wns_notification(Notification(campaign_id="c", title="t", message="x"))
    assert not isinstance(probe, Rejected)
    return Notification(campaign_id="c", title="t", message="x" * (size - len(probe.body) + 1))


async def test_payload_of_exactly_the_limit_is_sent(fake: FakeWns, client: WnsClient, channel: str) -> None:
    assert await client.send(channel, with_body_of(MAX_PAYLOAD_BYTES)) == Delivered(200)
    assert fake.errors == []


async def test_payload_over_the_limit_is_rejected_before_sending(
    fake: FakeWns, client: WnsClient, channel: str
) -> None:
    outcome = await client.send(channel, with_body_of(MAX_PAYLOAD_BYTES + 1))

    assert outcome == Rejected("WNS payload is 5121 bytes; at most 5120 are allowed")
    assert fake.requests == []


def test_a_rehearsal_refuses_what_a_send_would_and_passes_the_rest(client: WnsClient, channel: str) -> None:
    """CLARION_DELIVERY=sink: the notification is built and checked as for a send, nothing sent."""
    assert client.rehearse(channel, with_body_of(MAX_PAYLOAD_BYTES)) == Delivered(201)
    too_big = client.rehearse(channel, with_body_of(MAX_PAYLOAD_BYTES + 1))
    assert too_big == Rejected("WNS payload is 5121 bytes; at most 5120 are allowed")


async def test_channel_that_is_not_http_is_rejected(fake: FakeWns, client: WnsClient) -> None:
    assert await client.send("ftp://x/y", PLAIN) == Rejected("not an http(s) channel URI: 'ftp://x/y'")
    assert fake.requests == []


async def test_text_that_is_not_unicode_is_rejected(fake: FakeWns, client: WnsClient, channel: str) -> None:
    outcome = await client.send(channel, Notification(campaign_id="c", title="t", message="bad \ud800"))

    assert outcome == Rejected("the message holds text that is not valid Unicode")
    assert fake.requests == []


# --- the OAuth token --------------------------------------------------------------------------------


async def test_one_token_request_serves_many_sends(
    fake: FakeWns, client: WnsClient, credentials: tuple[str, str]
) -> None:
    channels = [fake.new_channel(credentials[0]) for _ in range(10)]

    outcomes = await asyncio.gather(*(client.send(channel, PLAIN) for channel in channels))
    outcomes.append(await client.send(channels[0], PLAIN))

    assert outcomes == [Delivered(200)] * 11
    [grant] = fake.token_grants
    assert grant.details == {
        "grant_type": "client_credentials",
        "client_id": credentials[0],
        "scope": "notify.windows.com",
    }
    assert fake.errors == []


async def test_token_is_renewed_before_it_expires(
    fake: FakeWns, http: Client, channels: GuardedClients, credentials: tuple[str, str], channel: str
) -> None:
    fake.token_lifetime_s = 86400  # what WNS issues
    now = [0.0]
    client = WnsClient(http, *credentials, auth_url=fake.origin, channels=channels, clock=lambda: now[0])

    await client.send(channel, PLAIN)
    now[0] = 86400 - 300 - 1
    await client.send(channel, PLAIN)
    before = len(fake.token_grants)
    now[0] = 86400 - 300 + 1
    await client.send(channel, PLAIN)

    assert (before, len(fake.token_grants)) == (1, 2)


async def test_refused_token_is_refreshed_once_and_the_send_retried(
    fake: FakeWns, client: WnsClient, channel: str
) -> None:
    assert await client.send(channel, PLAIN) == Delivered(200)
    fake.revoke_tokens()

    assert await client.send(channel, PLAIN) == Delivered(200)

    assert len(fake.token_grants) == 2
    assert fake.errors == [Failure(channel_id_of(channel), 401, "bearer token unknown or revoked")]


async def test_401_after_a_refresh_fails_the_channel(fake: FakeWns, client: WnsClient, channel: str) -> None:
    fake.script(channel_id_of(channel), [wns_error(401, "Token expired"), wns_error(401, "Token expired")])

    outcome = await client.send(channel, PLAIN)

    assert outcome == Rejected(
        "channel: credentials refused after a token refresh (HTTP 401: Token expired)", credentials=True
    )
    assert len(fake.token_grants) == 2


async def test_403_after_a_refresh_fails_the_channel(fake: FakeWns, client: WnsClient) -> None:
    other_app, _ = fake.new_client()
    channel = fake.new_channel(other_app)

    outcome = await client.send(channel, PLAIN)

    assert outcome == Rejected(
        "channel: credentials refused after a token refresh "
        "(HTTP 403: The cloud service is not authorized to send to this URI)",
        credentials=True,
    )
    assert len(fake.token_grants) == 2
    assert len(fake.received) == 2


async def test_wrong_secret_fails_the_channel(
    fake: FakeWns, http: Client, channels: GuardedClients, credentials: tuple[str, str], channel: str
) -> None:
    client = WnsClient(http, credentials[0], "wrong", auth_url=fake.origin, channels=channels)

    outcome = await client.send(channel, PLAIN)

    assert outcome == Rejected(
        "channel: token endpoint: HTTP 401: invalid_client: Client authentication failed", credentials=True
    )
    assert fake.requests == [Request("POST", "/accesstoken.srf")]
    assert fake.errors == [
        Failure("token-endpoint", 401, f"client {credentials[0]!r} unknown or its secret is wrong")
    ]


async def test_token_endpoint_trouble_means_retry(fake: FakeWns, client: WnsClient, channel: str) -> None:
    fake.script_token([replace(oauth_error(503, "temporarily_unavailable", "busy"), retry_after="4")])

    outcome = await client.send(channel, PLAIN)

    assert outcome == Retry("token endpoint: HTTP 503: temporarily_unavailable: busy", 4.0)


async def test_token_endpoint_that_cannot_be_reached_means_retry(
    http: Client,
    channels: GuardedClients,
    fake: FakeWns,
    credentials: tuple[str, str],
    channel: str,
    closed_origin: str,
) -> None:
    client = WnsClient(http, *credentials, auth_url=closed_origin, channels=channels)

    outcome = await client.send(channel, PLAIN)

    assert isinstance(outcome, Retry)
    assert (
        outcome.reason
        == "token endpoint: " + "ConnectError: connection error (Connection refused (os error 111))"
    )
    assert fake.requests == []


# --- what WNS's answers mean ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (wns_error(404, "Channel not found"), Gone("HTTP 404: Channel not found")),
        (wns_error(410, "Channel expired"), Gone("HTTP 410: Channel expired")),
        (wns_error(406, "Throttled", retry_after="5"), Retry("HTTP 406: Throttled", 5.0)),
        (wns_error(406, "Throttled"), Retry("HTTP 406: Throttled")),
        (wns_error(429, "Too many", retry_after="2"), Retry("HTTP 429: Too many", 2.0)),
        (wns_error(500, "Internal"), Retry("HTTP 500: Internal")),
        (wns_error(503, "Unavailable", retry_after="9"), Retry("HTTP 503: Unavailable", 9.0)),
        (wns_error(400, "Bad header"), Rejected("HTTP 400: Bad header")),
        (wns_error(405, "Method not allowed"), Rejected("HTTP 405: Method not allowed")),
        (wns_error(413, "Payload too large"), Rejected("HTTP 413: Payload too large")),
        (Respond(400, "plain body"), Rejected("HTTP 400: plain body")),
    ],
)
async def test_error_answers_map_to_outcomes(
    fake: FakeWns, client: WnsClient, channel: str, answer: Respond, outcome: Outcome
) -> None:
    fake.script(channel_id_of(channel), [answer])

    assert await client.send(channel, PLAIN) == outcome
    assert fake.errors == []


async def test_expired_and_unknown_channels_are_gone(fake: FakeWns, client: WnsClient, channel: str) -> None:
    fake.expire(channel)
    unknown = f"{fake.origin}/channel/never-made"

    outcomes = [await client.send(channel, PLAIN), await client.send(unknown, PLAIN)]

    assert outcomes == [
        Gone("HTTP 410: The channel expired"),
        Gone("HTTP 404: The channel URI is not valid or is not recognized by WNS"),
    ]


async def test_a_channel_host_resolving_to_a_forbidden_address_is_refused(
    http: Client, fake: FakeWns, credentials: tuple[str, str], channel: str
) -> None:
    """A channel URI on an allowed name that resolves to metadata space: refused before any request,
    the token included; the reason names the host and the rule, never the channel URI."""

    async def resolve(host: str, port: int) -> list[str]:
        return {"wns.test": ["169.254.169.254"]}[host]

    policy = AddressPolicy.from_settings("", ["127.0.0.1"])
    channels = GuardedClients(policy, ClientBuilder, resolve=resolve)
    client = WnsClient(http, *credentials, auth_url=fake.origin, channels=channels)
    forged = channel.replace("127.0.0.1", "wns.test")
    try:
        outcome = await client.send(forged, PLAIN)
        delivered = await client.send(channel, PLAIN)
    finally:
        await channels.aclose()

    assert outcome == Rejected(
        "refused by the outbound address policy: wns.test resolves to 169.254.169.254, "
        "169.254.169.254/32 (cloud metadata)"
    )
    assert delivered == Delivered(200), "the listed loopback literal stays reachable"
    assert [r.path for r in fake.requests] == ["/accesstoken.srf", f"/channel/{channel_id_of(channel)}"]


async def test_unreachable_channel_means_retry(client: WnsClient, fake: FakeWns, closed_origin: str) -> None:
    outcome = await client.send(f"{closed_origin}/channel/x", PLAIN)

    assert isinstance(outcome, Retry)
    assert outcome.reason == "ConnectError: connection error (Connection refused (os error 111))"


async def test_timeout_means_retry(
    new_http: Callable[[float], Client],
    new_channels: Callable[[float], GuardedClients],
    fake: FakeWns,
    credentials: tuple[str, str],
    channel: str,
) -> None:
    channels = new_channels(0.5)
    client = WnsClient(new_http(0.5), *credentials, auth_url=fake.origin, channels=channels)
    fake.script(channel_id_of(channel), [Hang()])

    assert await client.send(channel, PLAIN) == Retry("TimeoutError")
