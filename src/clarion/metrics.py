"""Prometheus metrics: what each Clarion process counts, and how it is exposed (docs/operations.md).

Each process exports its own metrics (no multiprocess mode): `clarion serve` on its HTTP port at
`/metrics`, a `clarion worker` on `CLARION_METRICS_PORT` when set. Prometheus adds them up with
`sum by (...)`; gauges that describe the whole deployment (campaigns by status, the ledger's backlog)
are read from the database at scrape time, by `serve` only, so they are not counted once per worker.

The metric objects are module-level, as prometheus_client intends: creating one does no I/O and
binds to this module's own registry, never to the library's global one. Code anywhere in the engine
counts through the small functions below, without importing the app.

The send path is hot (≈ 170 µs of CPU per Web Push message): a prometheus_client Histogram costs
≈ 2 to 5 µs per observation (locks, a linear bucket search), so provider request latencies and the
requests in flight are kept in plain lists and ints (one event loop per process writes them) and
turned into metric families at scrape time by `_SendPath`. Outcomes are counted per recorded batch.
"""

from __future__ import annotations

import bisect
import hmac
import threading
from collections.abc import Iterable, Iterator, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# Counters without their `_created` twin series: twice the series for a timestamp dashboards never use.
disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it unannotated
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Subscriber platform -> the provider that serves it (provider.registry.build_providers).
PROVIDERS = {"web": "webpush", "android": "fcm", "ios": "apns", "wns": "wns", "adm": "adm"}
# Push services answer in milliseconds to seconds; the request timeout is 15 s by default.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Scheduler lag: a tick is 0.2 s by default; minutes mean the engine is far behind.
LAG_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

MESSAGES = Counter(
    "clarion_messages",
    "Delivery attempts recorded, by provider and outcome (sent, retry, gone, rejected, expired, failed)",
    ["provider", "outcome"],
    registry=REGISTRY,
)
TRANSPORT_ERRORS = Counter(
    "clarion_provider_transport_errors",
    "Requests to push services that got no HTTP answer, by provider and kind (tls, timeout, connect, other)",
    ["provider", "kind"],
    registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "clarion_provider_token_refreshes",
    "Access tokens fetched or signed for native providers, by provider and result (ok, failed)",
    ["provider", "result"],
    registry=REGISTRY,
)
CREDENTIALS_REJECTED = Counter(
    "clarion_credentials_rejected",
    "App credentials a provider refused, flagged as failing (once per refusal, not per message), by provider"
    " (fcm, apns, wns, adm, webpush)",
    ["provider"],
    registry=REGISTRY,
)
SUBSCRIBERS_DEACTIVATED = Counter(
    "clarion_subscribers_deactivated",
    "Subscribers the hygiene job deactivated, by reason (failures: failed too many campaigns in a row;"
    " inactive: past the provider's horizon)",
    ["reason"],
    registry=REGISTRY,
)
FANOUT_RECIPIENTS = Counter(
    "clarion_fanout_recipients", "Recipients added to the ledger by campaign fan-outs", registry=REGISTRY
)
OCCURRENCES_STARTED = Counter(
    "clarion_schedule_occurrences", "Campaigns made by recurring schedules' occurrences", registry=REGISTRY
)
CAMPAIGNS_STARTED = Counter("clarion_campaigns_started", "Campaign fan-outs started", registry=REGISTRY)
CAMPAIGNS_FINISHED = Counter(
    "clarion_campaigns_finished", "Campaigns that reached `sent` (nothing left pending)", registry=REGISTRY
)
# Labelled by endpoint id (a customer's URL never appears in a label): one series per endpoint.
WEBHOOK_REQUESTS = Counter(
    "clarion_webhook_requests",
    "Webhook requests by endpoint id and result (delivered, failed, given_up)",
    ["endpoint", "result"],
    registry=REGISTRY,
)
WEBHOOK_EVENTS = Counter(
    "clarion_webhook_events_delivered",
    "Events delivered to webhook endpoints, by endpoint id",
    ["endpoint"],
    registry=REGISTRY,
)
SCHEDULER_LAG = Histogram(
    "clarion_scheduler_lag_seconds",
    "From a campaign's due time to the start of its fan-out",
    buckets=LAG_BUCKETS_S,
    registry=REGISTRY,
)
OUTAGES = Counter(
    "clarion_dependency_outages",
    "Outages of the database or the queue this process saw begin, by dependency",
    ["dependency"],
    registry=REGISTRY,
)
UNREACHABLE = Gauge(
    "clarion_dependency_unreachable",
    "1 while this process's background work finds the dependency unreachable, else 0",
    ["dependency"],
    registry=REGISTRY,
)
for _dependency in ("database", "queue"):  # shown as 0 from the start, not only after an outage
    UNREACHABLE.labels(_dependency).set(0)
PACING_WAIT = Counter(
    "clarion_pacing_wait_seconds",
    "Seconds sends waited for their turn under a campaign's rate or a provider's limit (docs/pacing.md)",
    registry=REGISTRY,
)
PACING_DEFERRED = Counter(
    "clarion_pacing_deferred",
    "Recipients handed back to the ledger until their turn (rate, provider limit, or a push service's hold)",
    registry=REGISTRY,
)
SLOW_DOWNS = Counter(
    "clarion_pacing_slow_downs",
    "Push service answers with Retry-After that held an app's sends to that service, by provider",
    ["provider"],
    registry=REGISTRY,
)
CAPPED = Counter(
    "clarion_capped", "Recipients not sent to: the app's frequency cap was reached", registry=REGISTRY
)
HTTP_REQUESTS = Counter(
    "clarion_http_requests",
    "HTTP API requests answered, by method, route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "clarion_http_request_duration_seconds",
    "HTTP API request duration, by method and route template",
    ["method", "route"],
    registry=REGISTRY,
)


class _SendPath(Collector):
    """Provider request latencies and requests in flight, kept in plain numbers by the send path."""

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}
        # provider -> [count per bucket (the last: above every bound)], and the sum of seconds.
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def collect(self) -> Iterator[Metric]:
        flight = GaugeMetricFamily(
            "clarion_provider_requests_in_flight",
            "Requests to push services awaiting an answer",
            labels=["provider"],
        )
        for provider, count in sorted(dict(self.in_flight).items()):  # a copy: the loop may add one
            flight.add_metric([provider], count)
        yield flight
        latency = HistogramMetricFamily(
            "clarion_provider_request_duration_seconds",
            "Requests to push services, from sending to the answer read (or the transport error)",
            labels=["provider"],
        )
        for provider, counts in sorted(dict(self.buckets).items()):
            latency.add_metric([provider], _cumulative(counts), sum_value=self.sums[provider])
        yield latency


def _cumulative(counts: list[int]) -> list[tuple[str, float]]:
    bounds = [*(str(bound) for bound in LATENCY_BUCKETS_S), "+Inf"]
    running, out = 0, []
    for bound, count in zip(bounds, counts, strict=True):
        running += count
        out.append((bound, float(running)))
    return out


_SEND_PATH = _SendPath()
REGISTRY.register(_SEND_PATH)


def request_started(provider: str) -> None:
    flight = _SEND_PATH.in_flight
    flight[provider] = flight.get(provider, 0) + 1


def request_ended(provider: str, seconds: float) -> None:
    """One request to a push service is over (answered or failed), `seconds` after it started."""
    send = _SEND_PATH
    send.in_flight[provider] -= 1
    counts = send.buckets.get(provider)
    if counts is None:
        counts = send.buckets[provider] = [0] * (len(LATENCY_BUCKETS_S) + 1)
        send.sums[provider] = 0.0
    counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
    send.sums[provider] += seconds


def transport_error(provider: str, kind: str) -> None:
    TRANSPORT_ERRORS.labels(provider, kind).inc()


def outcomes_recorded(counts: Mapping[tuple[str, str], int]) -> None:
    """A batch of outcomes is in the ledger: (subscriber platform, outcome) -> how many."""
    for (platform, outcome), count in counts.items():
        MESSAGES.labels(PROVIDERS.get(platform, platform), outcome).inc(count)


def paced(waited_s: float) -> None:
    PACING_WAIT.inc(waited_s)


def webhook_request(endpoint_id: int, result: str, events: int) -> None:
    label = str(endpoint_id)
    WEBHOOK_REQUESTS.labels(label, result).inc()
    if result == "delivered":
        WEBHOOK_EVENTS.labels(label).inc(events)


def token_refreshed(provider: str, *, ok: bool) -> None:
    TOKEN_REFRESHES.labels(provider, "ok" if ok else "failed").inc()


def credentials_rejected(provider: str) -> None:
    CREDENTIALS_REJECTED.labels(provider).inc()


def subscribers_deactivated(reason: str, count: int) -> None:
    SUBSCRIBERS_DEACTIVATED.labels(reason).inc(count)


def dependency_changed(dependency: str, *, up: bool) -> None:
    if not up:
        OUTAGES.labels(dependency).inc()
    UNREACHABLE.labels(dependency).set(0 if up else 1)


def render(extra: Iterable[Metric] = ()) -> bytes:
    """The text exposition of this process's metrics, plus `extra` families read at scrape time."""
    text = generate_latest(REGISTRY)
    families = list(extra)
    if not families:
        return text
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return text + generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def token_accepted(expected: str | None, authorization: str | None) -> bool:
    """Whether a scrape may read the metrics: no token set, or `Authorization: Bearer <token>`."""
    if expected is None:
        return True
    given = (authorization or "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), expected.encode())


# The error shape of every Clarion error (errors.ClarionError.as_json), the same words as serve's 401.
UNAUTHORIZED_BODY = (
    b'{"error": "unauthorized", "message": "A valid CLARION_METRICS_TOKEN bearer token is required"}'
)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every 15 s are not news
        pass


def serve_in_thread(host: str, port: int, token: str | None) -> WSGIServer:
    """A worker's /metrics: a small threaded HTTP server beside the event loop (it has no HTTP API).

    Returns the server; `shutdown()` stops it. Scrapes read plain numbers and prometheus_client's
    thread-safe metrics, so a thread is safe here.
    """

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "not_found", "message": "only /metrics is served here"}']
        if not token_accepted(token, environ.get("HTTP_AUTHORIZATION")):
            start_response(
                "401 Unauthorized", [("Content-Type", "application/json"), ("WWW-Authenticate", "Bearer")]
            )
            return [UNAUTHORIZED_BODY]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [render()]

    server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
