"""Native push through a real `clarion serve`: FCM, APNs (HTTP/2 + TLS), WNS and ADM fakes."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import create_app_cli, engine_env
from tests.e2e.processes import Processes
from tests.fakes.adm import FakeAdm
from tests.fakes.apns import FakeApns
from tests.fakes.fcm import FakeFcm
from tests.fakes.wns import FakeWns

pytestmark = pytest.mark.e2e


@pytest.fixture
def fakes() -> Iterator[tuple[FakeFcm, FakeApns, FakeWns, FakeAdm]]:
    with FakeFcm() as fcm, FakeApns(topic="com.example.shop") as apns, FakeWns() as wns, FakeAdm() as adm:
        yield fcm, apns, wns, adm


def _register(base: str, app_key: str, platform: str, token: str) -> str:
    body = {"app_key": app_key, "platform": platform, "token": token}
    response = httpx.post(f"{base}/sdk/v1/subscribers", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["regId"])


def _wait_sent(base: str, auth: tuple[str, str], campaign_id: str) -> dict[str, object]:
    """The campaign's statistics once it is SENT: every recipient in a final state. Fails after 30 s."""
    deadline = time.monotonic() + 30
    while True:
        stats: dict[str, object] = httpx.get(
            f"{base}/api/v3/messages/{campaign_id}", auth=auth, timeout=10
        ).json()
        if stats["status"] == "SENT":
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"campaign {campaign_id} not SENT after 30 s: {stats}")
        time.sleep(0.1)


def _add_credentials(
    procs: Processes, key: str, fakes: tuple[FakeFcm, FakeApns, FakeWns, FakeAdm], tmp_path: Path
) -> tuple[list[str], str]:
    """Every native provider's credentials for the app, by CLI: which providers it printed (never a
    secret), and the WNS client id."""
    fcm, apns, wns, adm = fakes
    account = tmp_path / "service-account.json"
    account.write_text(json.dumps(fcm.new_service_account("shop-project")))
    p8 = tmp_path / "AuthKey.p8"
    assert apns.key_pem is not None
    p8.write_text(apns.key_pem)
    wns_id, wns_secret = wns.new_client()
    adm_id, adm_secret = adm.new_client()
    described = [
        json.loads(procs.cli("apps", "credentials", key, "--fcm", str(account), "--json")),
        json.loads(
            procs.cli(
                "apps",
                "credentials",
                key,
                "--apns-key",
                str(p8),
                "--apns-key-id",
                apns.key_id,
                "--apns-team-id",
                apns.team_id,
                "--apns-topic",
                apns.topic,
                "--json",
            )
        ),
        json.loads(
            procs.cli(
                "apps",
                "credentials",
                key,
                # The = form: a generated secret may start with "-", which argparse would take for an option.
                f"--wns-client-id={wns_id}",
                f"--wns-client-secret={wns_secret}",
                "--json",
            )
        ),
        json.loads(
            procs.cli(
                "apps",
                "credentials",
                key,
                f"--adm-client-id={adm_id}",
                f"--adm-client-secret={adm_secret}",
                "--json",
            )
        ),
    ]
    # Identifiers only: no private key or client secret is ever printed back.
    printed = json.dumps(described)
    for secret in (wns_secret, adm_secret, "PRIVATE KEY"):
        assert secret not in printed
    return [d["provider"] for d in described], wns_id


def _native_env(fakes: tuple[FakeFcm, FakeApns, FakeWns, FakeAdm], tmp_path: Path) -> dict[str, str]:
    fcm, apns, wns, adm = fakes
    return {
        **engine_env(f"sqlite:///{tmp_path / 'clarion.db'}"),
        "CLARION_FCM_URL": fcm.origin,
        "CLARION_APNS_URL": apns.origin,
        "CLARION_CA_FILE": apns.ca_file,
        "CLARION_WNS_URL": wns.origin,
        "CLARION_ADM_URL": adm.origin,
    }


def test_a_gravitec_campaign_reaches_every_native_platform(
    tmp_path: Path, fakes: tuple[FakeFcm, FakeApns, FakeWns, FakeAdm], processes: list[Processes]
) -> None:
    fcm, apns, wns, adm = fakes
    procs = Processes(tmp_path, _native_env(fakes, tmp_path))
    processes.append(procs)
    server = procs.server()
    app = create_app_cli(procs)
    key, auth = app["app_key"], (app["app_key"], app["app_secret"])

    providers, wns_id = _add_credentials(procs, key, fakes, tmp_path)
    assert providers == ["fcm", "apns", "wns", "adm"]

    android, gone_android = fcm.new_token("shop-project"), fcm.new_token("shop-project")
    ios, channel, registration = apns.new_token(), wns.new_channel(wns_id), adm.new_registration()
    for platform, token in (
        ("android", android),
        ("android", gone_android),
        ("ios", ios),
        ("wns", channel),
        ("adm", registration),
    ):
        _register(server.url, key, platform, token)
    fcm.unregister(gone_android)

    payload = {
        "title": "Sale",
        "message": "50% off today",
        "redirect_url": "https://shop.example.com/sale",
        "image": "https://shop.example.com/banner.png",
    }
    push = httpx.post(
        f"{server.url}/api/v3/push",
        json={"payload": payload, "ttl": 600, "push_tag": "sale"},
        auth=auth,
        timeout=10,
    )
    campaign_id = push.json()["id"]
    stats = _wait_sent(server.url, auth, campaign_id)
    assert stats == {"status": "SENT", "send": 4, "received": 0, "clicked": 0, "closed": 0}

    [to_android] = fcm.received_for(android)
    assert to_android.message["notification"] == {
        "title": "Sale",
        "body": "50% off today",
        "image": "https://shop.example.com/banner.png",
    }
    assert to_android.message["data"]["campaign_id"] == campaign_id
    assert to_android.message["data"]["url"] == "https://shop.example.com/sale"
    [to_ios] = apns.received_for(ios)
    assert to_ios.payload["aps"]["alert"] == {"title": "Sale", "body": "50% off today"}
    assert to_ios.payload["campaign_id"] == campaign_id
    assert to_ios.headers["apns-topic"] == "com.example.shop"
    assert to_ios.headers["apns-push-type"] == "alert"
    [to_windows] = wns.received_for(channel)
    assert to_windows.wns_type == "wns/toast"
    assert [t.text for t in to_windows.toast().iter("text")] == ["Sale", "50% off today"]
    [to_fire] = adm.received_for(registration)
    assert to_fire.body["data"]["title"] == "Sale"
    assert to_fire.body["data"]["message"] == "50% off today"
    for fake in (fcm, apns, wns, adm):
        assert fake.errors == []

    # The uninstalled Android app's token answered UNREGISTERED: that subscriber is inactive now.
    second = httpx.post(f"{server.url}/api/v3/push", json={"payload": payload}, auth=auth, timeout=10).json()[
        "id"
    ]
    assert _wait_sent(server.url, auth, second)["send"] == 4
    assert len(fcm.received_for(gone_android)) == 1


def test_a_platform_without_credentials_is_rejected_not_retried(
    tmp_path: Path, fakes: tuple[FakeFcm, FakeApns, FakeWns, FakeAdm], processes: list[Processes]
) -> None:
    fcm = fakes[0]
    database_url = f"sqlite:///{tmp_path / 'clarion.db'}"
    procs = Processes(tmp_path, {**engine_env(database_url), "CLARION_FCM_URL": fcm.origin})
    processes.append(procs)
    server = procs.server()
    app = create_app_cli(procs)
    auth = (app["app_key"], app["app_secret"])
    _register(server.url, app["app_key"], "android", fcm.new_token())
    payload = {"message": "m", "redirect_url": "https://example.com/"}
    campaign_id = httpx.post(
        f"{server.url}/api/v3/push", json={"payload": payload}, auth=auth, timeout=10
    ).json()["id"]
    assert _wait_sent(server.url, auth, campaign_id)["send"] == 0
    assert fcm.received == []
    # SENT means no row is pending; the ledger shows it was rejected at its first attempt.
    with closing(sqlite3.connect(tmp_path / "clarion.db")) as ledger:
        rows = ledger.execute(
            "SELECT status, attempts FROM deliveries WHERE campaign_id = ?", (int(campaign_id),)
        ).fetchall()
    assert rows == [("rejected", 1)]


def test_sink_mode_builds_every_native_message_and_sends_none(
    tmp_path: Path, fakes: tuple[FakeFcm, FakeApns, FakeWns, FakeAdm], processes: list[Processes]
) -> None:
    fcm, apns, wns, adm = fakes
    procs = Processes(tmp_path, {**_native_env(fakes, tmp_path), "CLARION_DELIVERY": "sink"})
    processes.append(procs)
    server = procs.server()
    app = create_app_cli(procs)
    key, auth = app["app_key"], (app["app_key"], app["app_secret"])
    wns_id = _add_credentials(procs, key, fakes, tmp_path)[1]
    devices = [
        ("android", fcm.new_token("shop-project")),
        ("ios", apns.new_token()),
        ("wns", wns.new_channel(wns_id)),
        ("adm", adm.new_registration()),
    ]
    for platform, token in devices:
        _register(server.url, key, platform, token)
    payload = {"title": "Sale", "message": "50% off today", "redirect_url": "https://shop.example.com/sale"}
    pushed = httpx.post(f"{server.url}/api/v3/push", json={"payload": payload}, auth=auth, timeout=10)
    campaign_id = pushed.json()["id"]
    assert _wait_sent(server.url, auth, campaign_id) == {
        "status": "SENT",
        "send": 4,
        "received": 0,
        "clicked": 0,
        "closed": 0,
    }
    # Nothing reached any service: no message, and no OAuth token fetched.
    for fake in (fcm, apns, wns, adm):
        assert fake.requests == []
    assert (fcm.token_grants, wns.token_grants, adm.token_grants) == ([], [], [])
    with closing(sqlite3.connect(tmp_path / "clarion.db")) as ledger:
        rows = ledger.execute(
            "SELECT s.platform, d.status, d.attempts FROM deliveries d"
            " JOIN subscribers s ON s.id = d.subscriber_id WHERE d.campaign_id = ? ORDER BY s.platform",
            (int(campaign_id),),
        ).fetchall()
    assert rows == [(platform, "sent", 1) for platform in ("adm", "android", "ios", "wns")]
