"""A push-service request's metrics (provider.httpio.post): its duration, in flight, transport errors."""

from __future__ import annotations

import pytest
from pyreqwest.exceptions import RequestError

from clarion import metrics
from clarion.provider.httpio import post, reqwest_client
from tests.support import free_port


def _errors(provider: str, kind: str) -> float:
    return metrics.TRANSPORT_ERRORS.labels(provider, kind)._value.get()


async def test_a_refused_certificate_and_a_refused_connection_are_counted_by_kind(untrusted_tls: str) -> None:
    client = reqwest_client(ca_file=None, timeout_s=5, connect_timeout_s=2)
    try:
        with pytest.raises(RequestError):
            await post(client, f"{untrusted_tls}/push", {}, b"x", provider="test-tls")
        with pytest.raises(RequestError):
            await post(client, f"http://127.0.0.1:{free_port()}/push", {}, b"x", provider="test-tls")
    finally:
        await client.close()
    assert (_errors("test-tls", "tls"), _errors("test-tls", "connect")) == (1.0, 1.0)
    text = metrics.render().decode()
    assert 'clarion_provider_request_duration_seconds_count{provider="test-tls"} 2.0' in text
    assert 'clarion_provider_requests_in_flight{provider="test-tls"} 0.0' in text
