"""clarion.metrics: the send path's own histogram, the token check, and the worker's /metrics server."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from clarion import metrics
from tests.support import free_port


def _samples(name: str, provider: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name.startswith(name) and sample.labels.get("provider") == provider:
                found[sample.name.removeprefix(name) + sample.labels.get("le", "")] = sample.value
    return found


def test_request_latencies_fill_cumulative_buckets() -> None:
    provider = "test-latency"  # a label no other test uses: the registry is the process's
    for seconds in (0.004, 0.02, 0.02, 3.0, 45.0):
        metrics.request_started(provider)
        metrics.request_ended(provider, seconds)
    metrics.request_started(provider)  # still in flight at the scrape
    found = _samples("clarion_provider_request_duration_seconds", provider)
    assert found == {
        "_bucket0.005": 1.0,
        "_bucket0.01": 1.0,
        "_bucket0.025": 3.0,
        "_bucket0.05": 3.0,
        "_bucket0.1": 3.0,
        "_bucket0.25": 3.0,
        "_bucket0.5": 3.0,
        "_bucket1.0": 3.0,
        "_bucket2.5": 3.0,
        "_bucket5.0": 4.0,
        "_bucket10.0": 4.0,
        "_bucket30.0": 4.0,
        "_bucket+Inf": 5.0,
        "_count": 5.0,
        "_sum": 48.044,
    }
    assert _samples("clarion_provider_requests_in_flight", provider) == {"": 1.0}


def test_outcomes_are_counted_under_the_provider_name() -> None:
    before = metrics.MESSAGES.labels("adm", "gone")._value.get()
    metrics.outcomes_recorded({("adm", "gone"): 3})
    assert metrics.MESSAGES.labels("adm", "gone")._value.get() == before + 3


def test_the_token_is_a_bearer_token_compared_whole() -> None:
    assert metrics.token_accepted(None, None)
    assert metrics.token_accepted("s3cret", "Bearer s3cret")
    assert not metrics.token_accepted("s3cret", None)
    assert not metrics.token_accepted("s3cret", "Bearer s3cre")
    assert not metrics.token_accepted("s3cret", "Basic s3cret")


def test_the_worker_server_answers_401_then_the_metrics_and_404_elsewhere() -> None:
    port = free_port()
    server = metrics.serve_in_thread("127.0.0.1", port, "tok")
    try:
        url = f"http://127.0.0.1:{port}"
        refused = httpx.get(f"{url}/metrics", timeout=5)
        assert refused.status_code == 401
        assert refused.json() == {
            "error": "unauthorized",
            "message": "A valid CLARION_METRICS_TOKEN bearer token is required",
        }
        scrape = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer tok"}, timeout=5)
        assert scrape.status_code == 200
        assert "# TYPE clarion_messages_total counter" in scrape.text
        assert httpx.get(f"{url}/other", timeout=5).status_code == 404
    finally:
        server.shutdown()
        server.server_close()
