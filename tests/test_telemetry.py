"""`GET /metrics` of the HTTP server and the request metrics, through the real application over ASGI.

The metrics registry is the process's, shared by every test in it: request counters are compared
before and after, never as absolute values (tests/e2e/test_observability.py does that with a fresh
process).
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from clarion.app import create_app
from tests.conftest import Api, make_settings

GAUGES = ("clarion_campaigns", "clarion_deliveries_pending", "clarion_deliveries_oldest_due_age_seconds")
UNAUTHORIZED = {"error": "unauthorized", "message": "A valid CLARION_METRICS_TOKEN bearer token is required"}


def _requests(text: str) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "clarion_http_requests_total"
    }


async def _scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_deployment_gauges_are_read_from_the_database(api: Api) -> None:
    text = await _scrape(api.client)
    gauges = {
        (s.name, s.labels.get("status", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name
        in ("clarion_campaigns", "clarion_deliveries_pending", "clarion_deliveries_oldest_due_age_seconds")
    }
    assert gauges == {
        ("clarion_campaigns", "scheduled"): 0.0,
        ("clarion_campaigns", "sending"): 0.0,
        ("clarion_campaigns", "sent"): 0.0,
        ("clarion_campaigns", "failed"): 0.0,
        ("clarion_campaigns", "cancelled"): 0.0,
        ("clarion_campaigns", "paused"): 0.0,
        ("clarion_deliveries_pending", ""): 0.0,
        ("clarion_deliveries_oldest_due_age_seconds", ""): 0.0,
    }


async def test_requests_count_by_route_template_never_by_raw_path(api: Api) -> None:
    before = _requests(await _scrape(api.client))
    assert (await api.client.get("/no/such/path/123")).status_code == 404
    assert (await api.client.request("BREW", "/healthz")).status_code == 405
    assert (await api.client.get("/healthz")).status_code == 200
    after = _requests(await _scrape(api.client))
    grown = {key: after[key] - before.get(key, 0.0) for key in after if after[key] != before.get(key, 0.0)}
    # The first scrape is counted by the time of the second one.
    assert grown == {
        ("GET", "unmatched", "404"): 1.0,
        ("OTHER", "/healthz", "405"): 1.0,
        ("GET", "/healthz", "200"): 1.0,
        ("GET", "/metrics", "200"): 1.0,
    }


async def test_the_metrics_token_is_required_when_set(database_url: str) -> None:
    app = create_app(make_settings(database_url, metrics_token="scrape-secret"), run_engine=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            missing = await client.get("/metrics")
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secreT"})
            right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert (missing.status_code, missing.json()) == (401, UNAUTHORIZED)
    assert (wrong.status_code, wrong.json()) == (401, UNAUTHORIZED)
    assert right.status_code == 200
    assert "# TYPE clarion_messages_total counter" in right.text
