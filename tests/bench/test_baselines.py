"""The benchmark's concurrent baselines send real Web Push: every message decrypts and carries valid VAPID.

Checked against the test push service, which decrypts each body with the subscription's keys (RFC 8291)
and verifies the VAPID JWT against the application server key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bench.storage import SentCampaign, WebSubscription
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench import baselines
from clarion.provider.webpush import b64url_encode
from tests.fakes.push_service import FakePushService

SUBJECT = "mailto:bench@example.com"
MESSAGES = 130  # more than the 64 in flight, and not a multiple of it
PAYLOAD = {"campaign_id": "7", "title": "Baseline", "message": "Hello"}
Baseline = Callable[[list[WebSubscription], SentCampaign, str, Path], baselines.Rate]


@pytest.fixture
def fake() -> Iterator[FakePushService]:
    with FakePushService() as service:
        yield service


def _campaign() -> SentCampaign:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return SentCampaign(json.dumps(PAYLOAD).encode(), 600, pem, b64url_encode(public))


@pytest.mark.parametrize("baseline", [baselines.pywebpush_aiohttp, baselines.node_web_push])
def test_a_concurrent_baseline_delivers_every_message_once(
    baseline: Baseline, fake: FakePushService, tmp_path: Path
) -> None:
    pytest.importorskip("pywebpush")
    campaign = _campaign()
    subs = [fake.new_subscription(application_server_key=campaign.vapid_public_key) for _ in range(MESSAGES)]
    rate = baseline(
        [WebSubscription(s.endpoint, s.p256dh, s.auth) for s in subs],
        campaign,
        SUBJECT,
        tmp_path,
    )
    if rate.skipped:
        pytest.skip(rate.skipped)  # no node or npm here, or no registry to install web-push from
    assert (rate.messages, rate.skipped) == (MESSAGES, "")
    assert rate.cpu_s > 0
    assert rate.seconds > 0
    assert fake.errors == []
    for sub in subs:
        [message] = fake.received_for(sub.sub_id)
        assert json.loads(message.payload) == PAYLOAD
        assert message.headers["ttl"] == "600"
        assert message.headers["content-encoding"] == "aes128gcm"
        assert message.vapid_claims["sub"] == SUBJECT
