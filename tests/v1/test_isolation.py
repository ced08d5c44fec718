"""No /v1 route lets one app read or change another app's data: every operation of the OpenAPI
schema that names an app is called with app A's credentials on app B's resources, and B is unchanged."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.fakes.push_service import FakePushService
from tests.v1.conftest import V1, basic, subscribe

# Routes that are not an app's (they name none) and what an app's own credentials get there.
NOT_PER_APP = {("post", "/v1/apps"): 403, ("get", "/v1/apps"): 200}
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def _operations(v1: V1) -> list[tuple[str, str]]:
    schema = httpx.get(f"{v1.server.url}/openapi.json", timeout=10).json()
    return [
        (method, path)
        for path, item in schema["paths"].items()
        if path.startswith("/v1/")
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


def _b_state(v1: V1, b: dict[str, Any], campaign_id: str) -> dict[str, Any]:
    with v1.admin() as admin:
        key = b["app_key"]
        return {
            "app": admin.get(f"/apps/{key}").json(),
            "campaign": admin.get(f"/apps/{key}/campaigns/{campaign_id}").json(),
            "campaigns": admin.get(f"/apps/{key}/campaigns").json(),
            "credentials": admin.get(f"/apps/{key}/credentials").json(),
        }


def test_an_app_reaches_nothing_of_another_app(v1: V1, fake: FakePushService) -> None:
    a, b = v1.new_app("A"), v1.new_app("B")
    reg_id = subscribe(v1, fake, b)
    wns_id, wns_secret = v1.wns.new_client()
    with v1.client(basic(b)) as own:
        own.put(
            f"/apps/{b['app_key']}/credentials/wns", json={"client_id": wns_id, "client_secret": wns_secret}
        )
        body = {
            "payload": {"message": "m", "redirect_url": "https://example.com/"},
            "send_at": "2100-01-01T00:00:00Z",
        }
        campaign_id = own.post(f"/apps/{b['app_key']}/campaigns", json=body).json()["campaign_id"]
    before = _b_state(v1, b, campaign_id)
    values = {
        "app_key": b["app_key"],
        "campaign_id": campaign_id,
        "provider": "wns",
        "reg_id": reg_id,
        "regId": reg_id,
    }
    operations = _operations(v1)
    assert len(operations) >= 15
    answers: dict[str, int] = {}
    with v1.client(basic(a)) as intruder:
        for method, path in operations:
            url = PLACEHOLDER.sub(lambda m: values.get(m.group(1), "1"), path).removeprefix("/v1")
            response = intruder.request(method, url, json={} if method in ("post", "put", "patch") else None)
            answers[f"{method} {path}"] = response.status_code
            if (method, path) in NOT_PER_APP:
                assert response.status_code == NOT_PER_APP[(method, path)], (method, path, response.text)
                if method == "get":  # A's own app only
                    assert [item["app_key"] for item in response.json()["items"]] == [a["app_key"]]
            else:
                assert response.status_code == 404, (method, path, response.text)
                assert response.json()["field"] == "app_key", (method, path)
    assert _b_state(v1, b, campaign_id) == before
    with v1.client(basic(b)) as own:  # B's secret was not rotated
        assert own.get(f"/apps/{b['app_key']}").status_code == 200
