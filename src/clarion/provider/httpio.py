"""HTTP details every provider shares: the pyreqwest client, bounded body reads, one-line reasons.

Every provider goes through pyreqwest (Rust's reqwest over hyper and tokio), chosen by measurement
for Web Push and APNs (docs/architecture.md, "HTTP client"): one HTTP stack for all of them.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlencode

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import ConnectError, RequestError, RequestTimeoutError

from clarion import metrics

MAX_READ_BYTES = 64 * 1024  # a hostile or broken server could answer with an endless body
REASON_CHARS = 200  # a reason ends up in the ledger's last_error (255) and in Swrve reports
# What marks a transport failure as the TLS handshake's; reqwest over rustls says e.g. "invalid peer
# certificate: UnknownIssuer", "… CaUsedAsEndEntity" or "received fatal alert: HandshakeFailure".
TLS_MARKS = ("certificate", "tls", "handshake", "fatal alert")


def is_tls_refusal(reason: str) -> bool:
    lowered = reason.lower()
    return any(mark in lowered for mark in TLS_MARKS)


def http_reason(status: int, detail: str) -> str:
    """`HTTP 400: detail`, with the detail on one line and cut short: it ends up in the ledger."""
    text = " ".join(detail[: REASON_CHARS * 4].split())[:REASON_CHARS]
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


def reqwest_builder(
    *, ca_file: str | None, timeout_s: float, connect_timeout_s: float, http2_only: bool = False
) -> ClientBuilder:
    """The settings every client shares: no redirects followed, connect and total timeouts on every
    request, HTTP/2 where the server offers it in TLS's ALPN (or always, `http2_only`), `ca_file`
    trusted too. The guard (provider/guard.py) builds its pinned clients from such a builder.

    System proxies (HTTPS_PROXY and the like) are honoured, as reqwest does by default, by the clients
    for configured origins (FCM, APNs, ADM, WNS tokens); the guard turns them off for its clients.
    """
    builder = (
        ClientBuilder()
        .follow_redirects(False)
        .timeout(timedelta(seconds=timeout_s))
        .connect_timeout(timedelta(seconds=connect_timeout_s))
        .user_agent("clarion")
    )
    builder = builder.http2_prior_knowledge() if http2_only else builder.http2(True)
    if ca_file:
        builder = builder.add_root_certificate_pem(Path(ca_file).read_bytes())
    return builder


def reqwest_client(
    *, ca_file: str | None, timeout_s: float, connect_timeout_s: float, http2_only: bool = False
) -> Client:
    """A pooled client built from `reqwest_builder`."""
    return reqwest_builder(
        ca_file=ca_file, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s, http2_only=http2_only
    ).build()


class Answer(NamedTuple):
    """A push service's answer (a tuple: one is made per message)."""

    status: int
    body: bytes  # at most MAX_READ_BYTES of it
    retry_after: str | None
    header: str | None = None  # the value of the one header `post` was asked to read, if any


async def post(
    client: Client,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    read_header: str | None = None,
    provider: str | None = None,
) -> Answer:
    """POST and read at most MAX_READ_BYTES of the answer (and `read_header`'s value); raises
    pyreqwest's RequestError (and BuilderError for a URL it cannot request).

    A send names its `provider`: its duration, the requests in flight and its transport errors are
    counted under that name (metrics). Token requests name none; they are counted as refreshes.
    """
    if provider is None:
        return await _post(client, url, headers, body, read_header)
    metrics.request_started(provider)
    started = time.perf_counter()
    try:
        return await _post(client, url, headers, body, read_header)
    except RequestError as exc:
        metrics.transport_error(provider, error_kind(exc))
        raise
    finally:
        metrics.request_ended(provider, time.perf_counter() - started)


def error_kind(exc: RequestError) -> str:
    """The low-cardinality class of a transport error: tls, timeout, connect or other."""
    if isinstance(exc, RequestTimeoutError):
        return "timeout"
    if is_tls_refusal(transport_reason(exc)):
        return "tls"
    return "connect" if isinstance(exc, ConnectError) else "other"


async def _post(
    client: Client, url: str, headers: dict[str, str], body: bytes, read_header: str | None
) -> Answer:
    async with client.post(url).headers(headers).body_bytes(body).build_streamed() as response:
        answer = await response.body_reader.read(MAX_READ_BYTES)
        header = None if read_header is None else response.get_header(read_header)
        return Answer(response.status, bytes(answer or b""), response.get_header("Retry-After"), header)


async def post_form(client: Client, url: str, form: dict[str, str]) -> Answer:
    """POST an application/x-www-form-urlencoded body (an OAuth token request, RFC 6749 §4)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    return await post(client, url, headers, urlencode(form).encode("ascii"))


def transport_reason(exc: RequestError) -> str:
    """`ConnectError: connection error (Connection refused (os error 111))`: kind, then root cause.

    reqwest's chain of causes starts with "error sending request for url (…)", which would copy the
    URL (for Web Push a capability) into the ledger; the innermost cause is the one that explains.
    """
    if isinstance(exc, RequestTimeoutError):
        # reqwest files a response that never came as a "connection timeout" too: name no phase.
        return "TimeoutError"
    causes = (exc.details or {}).get("causes") or []
    root = causes[-1]["message"] if causes else ""
    detail = f"{exc.message} ({root})" if root and root != exc.message else exc.message
    return f"{type(exc).__name__}: {' '.join(detail.split())}"
