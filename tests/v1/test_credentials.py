"""/v1 provider credentials over real HTTP: stored, listed without secrets, tested, removed."""

from __future__ import annotations

import time
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from clarion.provider.apns import origin_for
from tests.v1.conftest import V1, basic, wait_for

NEVER_SET = {"last_used_at": None, "last_failed_at": None, "last_failure": None, "failing": None}


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    raw = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return raw.decode()


def _shown(item: dict[str, Any]) -> dict[str, Any]:
    """An item without its times and fingerprint (checked apart)."""
    return {k: v for k, v in item.items() if k not in ("updated_at", "fingerprint", *NEVER_SET)}


def test_fcm_credentials_are_stored_without_secrets_and_tested(v1: V1) -> None:
    app = v1.new_app()
    account = v1.fcm.new_service_account("shop")
    untrusted = v1.fcm.new_service_account("shop", trusted=False)
    base = f"/apps/{app['app_key']}/credentials"
    with v1.client(basic(app)) as own:
        stored = own.put(f"{base}/fcm", json={"service_account": account})
        tested = own.post(f"{base}/fcm/test")
        listed = own.get(base).json()["items"]
        own.put(f"{base}/fcm", json={"service_account": untrusted})
        refused = own.post(f"{base}/fcm/test").json()
        after = own.get(base).json()["items"]
    assert stored.status_code == 200, stored.text
    assert _shown(stored.json()) == {
        "provider": "fcm",
        "project_id": "shop",
        "client_email": account["client_email"],
    }
    assert {k: stored.json()[k] for k in NEVER_SET} == NEVER_SET
    assert len(stored.json()["fingerprint"]) == 47  # 16 bytes as hex pairs
    assert account["private_key"] not in stored.text
    assert {k: tested.json()[k] for k in ("provider", "ok", "reason")} == {
        "provider": "fcm",
        "ok": True,
        "reason": None,
    }
    assert listed[0]["last_used_at"] is not None
    assert (refused["ok"], refused["reason"].startswith("channel: token endpoint")) == (False, True)
    assert after[0]["last_failure"] == refused["reason"]
    assert after[0]["fingerprint"] != listed[0]["fingerprint"]


def test_wns_and_adm_tokens_are_obtained_or_refused(v1: V1) -> None:
    app = v1.new_app()
    base = f"/apps/{app['app_key']}/credentials"
    wns_id, wns_secret = v1.wns.new_client()
    adm_id, _ = v1.adm.new_client()
    with v1.admin() as admin:
        wns = admin.put(f"{base}/wns", json={"client_id": wns_id, "client_secret": wns_secret})
        adm = admin.put(f"{base}/adm", json={"client_id": adm_id, "client_secret": "wrong"})
        wns_test = admin.post(f"{base}/wns/test").json()
        adm_test = admin.post(f"{base}/adm/test").json()
        listed = admin.get(base).json()["items"]
    assert _shown(wns.json()) == {"provider": "wns", "client_id": wns_id}
    assert _shown(adm.json()) == {"provider": "adm", "client_id": adm_id}
    assert (wns_test["ok"], wns_test["reason"]) == (True, None)
    assert adm_test["ok"] is False
    assert adm_test["reason"].startswith("channel: token endpoint: HTTP 401")
    assert [item["provider"] for item in listed] == ["adm", "wns"]
    assert wns_secret not in str(listed)


def test_apns_key_is_checked_by_signing_and_removed(v1: V1) -> None:
    app = v1.new_app()
    base = f"/apps/{app['app_key']}/credentials"
    body = {
        "key_p8": _pem(ec.generate_private_key(ec.SECP256R1())),
        "key_id": "ABC123DEFG",
        "team_id": "TEAM123456",
        "topic": "com.example.app",
        "environment": "sandbox",
    }
    with v1.client(basic(app)) as own:
        stored = own.put(f"{base}/apns", json=body)
        tested = own.post(f"{base}/apns/test").json()
        wrong_key = own.put(
            f"{base}/apns", json={**body, "key_p8": _pem(rsa.generate_private_key(65537, 2048))}
        )
        removed = own.delete(f"{base}/apns")
        again = own.delete(f"{base}/apns")
        untested = own.post(f"{base}/apns/test")
        listed = own.get(base).json()
    assert _shown(stored.json()) == {
        "provider": "apns",
        "key_id": "ABC123DEFG",
        "team_id": "TEAM123456",
        "topic": "com.example.app",
        "environment": "sandbox",
    }
    assert (tested["ok"], tested["reason"]) == (True, None)
    assert wrong_key.json() == {
        "error": "invalid_field",
        "message": "apns: the .p8 key must be a P-256 key",
        "field": "key_p8",
    }
    assert removed.status_code == 204
    assert again.status_code == untested.status_code == 404
    assert again.json()["field"] == "provider"
    assert listed == {"items": []}


def test_another_apps_credentials_are_out_of_reach(v1: V1) -> None:
    one, other = v1.new_app(), v1.new_app()
    wns_id, wns_secret = v1.wns.new_client()
    with v1.client(basic(other)) as own:
        own.put(
            f"/apps/{other['app_key']}/credentials/wns",
            json={"client_id": wns_id, "client_secret": wns_secret},
        )
    with v1.client(basic(one)) as intruder:
        path = f"/apps/{other['app_key']}/credentials"
        answers = [
            intruder.get(path),
            intruder.put(f"{path}/wns", json={"client_id": "x", "client_secret": "y"}),
            intruder.post(f"{path}/wns/test"),
            intruder.delete(f"{path}/wns"),
        ]
    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    with v1.client(basic(other)) as own:
        assert [c["client_id"] for c in own.get(f"/apps/{other['app_key']}/credentials").json()["items"]] == [
            wns_id
        ]


def test_a_sandbox_key_sends_to_the_sandbox_unless_another_origin_is_configured() -> None:
    assert origin_for("https://api.push.apple.com", "sandbox") == "https://api.sandbox.push.apple.com"
    assert origin_for("https://api.push.apple.com/", "production") == "https://api.push.apple.com/"
    assert origin_for("https://api.push.apple.com", None) == "https://api.push.apple.com"
    assert origin_for("https://127.0.0.1:8443", "sandbox") == "https://127.0.0.1:8443"


def _credential_once(client: httpx.Client, path: str, field: str) -> dict[str, Any]:
    """The app's one credential once `field` is set (the engine notes it just after a job's outcomes)."""
    deadline = time.monotonic() + 10
    while True:
        item: dict[str, Any] = client.get(path).json()["items"][0]
        if item[field] is not None or time.monotonic() > deadline:
            return item
        time.sleep(0.05)


def test_sending_records_when_credentials_were_last_used_or_refused(v1: V1) -> None:
    app = v1.new_app()
    account = v1.fcm.new_service_account("used")
    device = v1.fcm.new_token("used")
    registered = httpx.post(
        f"{v1.server.url}/sdk/v1/subscribers",
        json={"app_key": app["app_key"], "platform": "android", "token": device},
        timeout=10,
    )
    assert registered.status_code == 201, registered.text
    base = f"/apps/{app['app_key']}"
    body = {"payload": {"message": "m", "redirect_url": "https://example.com/"}}
    with v1.client(basic(app)) as own:
        own.put(f"{base}/credentials/fcm", json={"service_account": account})
        sent = own.post(f"{base}/campaigns", json=body).json()["campaign_id"]
        assert wait_for(own, f"{base}/campaigns/{sent}", "sent")["funnel"]["sent"] == 1
        used = own.get(f"{base}/credentials").json()["items"][0]
        own.put(
            f"{base}/credentials/fcm",
            json={"service_account": v1.fcm.new_service_account("used", trusted=False)},
        )
        refused = own.post(f"{base}/campaigns", json=body).json()["campaign_id"]
        shown = wait_for(own, f"{base}/campaigns/{refused}", "sent")
        failed = own.get(f"{base}/credentials").json()["items"][0]
    assert (used["last_used_at"] is not None, used["last_failed_at"]) == (True, None)
    assert shown["funnel"]["failed_by_reason"] == {"channel": 1}
    assert failed["last_failed_at"] is not None
    assert failed["last_failure"].startswith("channel: token endpoint")
