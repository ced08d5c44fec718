"""The Swrve-compatible Batch Push API end to end: submit, process, deliver, report."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tests.swrve.conftest import Swrve


async def _submit(api: Swrve, push_key: str, body: Any, **params: str) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await api.client.post(
        "/push_batch",
        params={"push_key": push_key, **params},
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text
    payload: dict[str, Any] = response.json()
    assert response.headers["location"] == payload["location"]
    assert payload["location"] == f"http://clarion.test/push_batch?batch_id={payload['batch_id']}"
    return payload


async def _report(api: Swrve, batch_id: str, timeout_s: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await api.client.get("/push_batch", params={"batch_id": batch_id})
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        if report["status"] != "in_progress" or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.05)


async def test_array_of_users_with_personalized_messages(swrve_api: Swrve) -> None:
    key = await swrve_api.push_campaign(platform="android")
    t1, t2 = await swrve_api.android("u1"), await swrve_api.android("u2")
    batch = await _submit(
        swrve_api, key, [{"swrve_user_id": "u1", "message": "Hi one"}, {"swrve_user_id": "u2"}]
    )
    report = await _report(swrve_api, batch["batch_id"])
    assert report == {
        "batch_id": batch["batch_id"],
        "status": "done",
        "retry_possible": False,
        "counts": {"total": 2, "sent": 2, "warnings": 0, "failures": 0},
        "warnings": [],
        "failures": [],
    }
    [first] = swrve_api.fcm.received_for(t1)
    [second] = swrve_api.fcm.received_for(t2)
    assert first.message["notification"]["body"] == "Hi one"
    assert second.message["notification"]["body"] == "Default"  # the campaign's default message
