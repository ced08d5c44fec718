"""POST and GET /push_batch as a client sees them: the 202 answer and every error with its JSON body."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from clarion import cli
from clarion.swrve import report as swrve_report
from tests.swrve.conftest import RATE_PER_MINUTE, Swrve, error, report

LIMIT_BYTES = 256 * 1024  # spec: "The maximum supported batch size is 256 KB."


def _padded(size: int) -> bytes:
    """A valid batch of exactly `size` bytes (whitespace is JSON's own padding)."""
    head = b'[{"swrve_user_id": "u1"}'
    return head + b" " * (size - len(head) - 1) + b"]"


async def test_an_accepted_batch_answers_202_with_its_status_location(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    device = await swrve_api.device("android", "u1")
    response = await swrve_api.post(push.push_key, [{"swrve_user_id": "u1"}])
    assert response.status_code == 202
    batch_id = response.json()["batch_id"]
    location = f"http://clarion.test/push_batch?batch_id={batch_id}"
    assert response.json() == {"batch_id": batch_id, "location": location}
    assert response.headers["location"] == location
    # The Location is the status URL itself.
    assert (await swrve_api.client.get(location)).status_code == 200
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
    assert len(swrve_api.received(device)) == 1


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_other_methods_are_400_unsupported(swrve_api: Swrve, method: str) -> None:
    push = await swrve_api.push_campaign()
    response = await swrve_api.client.request(method, "/push_batch", params={"push_key": push.push_key})
    assert response.status_code == 400
    assert response.json() == error(400, f"Unsupported HTTP method {method}")


async def test_head_is_400_without_a_body(swrve_api: Swrve) -> None:
    response = await swrve_api.client.head("/push_batch", params={"batch_id": "x"})
    assert (response.status_code, response.content) == (400, b"")


async def test_a_wrong_uri_under_push_batch_is_404_not_found(swrve_api: Swrve) -> None:
    response = await swrve_api.client.get("/push_batch/status", params={"batch_id": "x"})
    assert response.status_code == 404
    assert response.json() == error(404, "Not Found")


async def test_an_unknown_or_missing_push_key_is_404(swrve_api: Swrve) -> None:
    for push_key in ("0123456789abcdef0123456789abcdef", "", None):
        response = await swrve_api.post(push_key, [{"swrve_user_id": "u1"}])
        assert response.status_code == 404
        assert response.json() == error(404, "Invalid Push API Key")


async def test_identity_key_errors(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    body = [{"external_user_id": "e1"}]

    unknown = await swrve_api.post(push.push_key, body, identity_secret_key="not-a-key")
    assert unknown.status_code == 404
    assert unknown.json() == error(404, "Invalid identity key")

    other = await swrve_api.other_app()
    mismatch = await swrve_api.post(push.push_key, body, identity_secret_key=other.identity_secret_key)
    assert mismatch.status_code == 404
    assert mismatch.json() == error(404, "Identity key and campaign key refer to different apps")

    # The push key is checked first.
    both = await swrve_api.post("0" * 32, body, identity_secret_key="not-a-key")
    assert both.json() == error(404, "Invalid Push API Key")


async def _cli(*args: str) -> None:
    assert await asyncio.to_thread(cli.main, list(args)) == 0


async def test_an_app_with_batch_push_off_is_403_until_it_is_on_again(
    swrve_api: Swrve, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLARION_DATABASE_URL", swrve_api.settings.database_url)
    if swrve_api.settings.secret_key is not None:  # the CLI reads the secrets the test's app stored
        monkeypatch.setenv("CLARION_SECRET_KEY", swrve_api.settings.secret_key.get_secret_value())
    push = await swrve_api.push_campaign()
    await swrve_api.device("android", "u1")

    await _cli("apps", "update", swrve_api.app_key, "--batch-push", "off", "--json")
    printed = json.loads(capsys.readouterr().out)
    assert printed["batch_push"] is False
    refused = await swrve_api.post(push.push_key, [{"swrve_user_id": "u1"}])
    assert refused.status_code == 403
    assert refused.json() == error(403, "Feature Not Available")
    # An unknown push key is still told apart.
    assert (await swrve_api.post("0" * 32, ["u1"])).status_code == 404

    await _cli("apps", "update", swrve_api.app_key, "--batch-push", "on", "--json")
    assert json.loads(capsys.readouterr().out)["batch_push"] is True
    batch_id = await swrve_api.submit(push.push_key, [{"swrve_user_id": "u1"}])
    assert (await swrve_api.report(batch_id))["status"] == "done"


async def test_a_body_over_256_kb_is_413_and_one_of_256_kb_is_accepted(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    await swrve_api.device("android", "u1")
    too_large = await swrve_api.post(push.push_key, _padded(LIMIT_BYTES + 1))
    assert too_large.status_code == 413
    assert too_large.json() == error(413, "Request Entity Too Large")

    batch_id = await swrve_api.submit(push.push_key, _padded(LIMIT_BYTES))
    assert await swrve_api.report(batch_id) == report(batch_id, "done", total=1, sent=1)


async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    swrve_api: Swrve,
) -> None:
    push = await swrve_api.push_campaign()
    pulled: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        while True:
            pulled.append(1)
            yield b" " * 65536

    response = await swrve_api.client.post(
        "/push_batch",
        params={"push_key": push.push_key},
        content=endless(),
        headers={"Content-Type": "application/json", "Content-Length": str(10 * 1024 * 1024)},
    )
    assert response.status_code == 413
    assert response.json() == error(413, "Request Entity Too Large")
    assert pulled == []


async def test_a_chunked_body_is_cut_off_once_past_the_limit(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    pulled: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):  # 6.4 MB if it were all read
            pulled.append(1)
            yield b" " * 65536

    response = await swrve_api.client.post(
        "/push_batch", params={"push_key": push.push_key}, content=chunks()
    )
    assert response.status_code == 413
    assert response.json() == error(413, "Request Entity Too Large")
    assert len(pulled) == LIMIT_BYTES // 65536 + 1


async def test_more_batches_per_minute_than_allowed_is_429_with_retry_after(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    for _ in range(RATE_PER_MINUTE):
        await swrve_api.submit(push.push_key, [])
    limited = await swrve_api.post(push.push_key, [])
    assert limited.status_code == 429
    assert limited.json() == error(429, "Rate Limit Exceeded")
    assert 55 <= int(limited.headers["retry-after"]) <= 60
    # The limit is the app's: its other campaigns share it.
    second = await swrve_api.push_campaign()
    assert (await swrve_api.post(second.push_key, [])).status_code == 429
    # Another app has its own allowance.
    other = await swrve_api.other_app()
    theirs = await swrve_api.push_campaign(app_key=other.app_key)
    await swrve_api.submit(theirs.push_key, [])


async def test_an_unknown_or_missing_batch_id_is_404(swrve_api: Swrve) -> None:
    for params in ({"batch_id": "ba96db5f-19db-4e50-844e-de4b86aca478"}, {"batch_id": ""}, {}):
        response = await swrve_api.client.get("/push_batch", params=params)
        assert response.status_code == 404
        assert response.json() == error(404, "Invalid Batch ID")


async def test_an_empty_batch_is_done_at_once(swrve_api: Swrve) -> None:
    push = await swrve_api.push_campaign()
    for body in ([], {"message": "x", "users": []}):
        batch_id = await swrve_api.submit(push.push_key, body)
        assert await swrve_api.report(batch_id) == report(batch_id, "done", total=0, sent=0)


async def test_an_unexpected_error_is_500_in_the_apis_own_body(
    swrve_api: Swrve, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(swrve_report, "status", broken)
    transport = httpx.ASGITransport(app=swrve_api.asgi, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
        response = await client.get("/push_batch", params={"batch_id": "x"})
    assert response.status_code == 500
    assert response.json() == error(500, "Internal Server Error")
