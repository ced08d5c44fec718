"""Fetching pictures is outbound traffic to an address a customer chose: the rules it keeps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clarion.config import Settings
from clarion.pictures.fetch import Fetcher, FetchFailed
from tests.fakes.picture_server import PictureServer, samples


async def _fetcher(**settings: object) -> AsyncIterator[Fetcher]:
    fetcher = Fetcher.from_settings(Settings(**settings))  # type: ignore[arg-type]
    try:
        yield fetcher
    finally:
        await fetcher.aclose()


@pytest.fixture
async def allowed() -> AsyncIterator[Fetcher]:
    """Loopback opened by CLARION_OUTBOUND_ALLOW, as tests and private deployments do."""
    async for fetcher in _fetcher(outbound_allow="127.0.0.1", picture_timeout_s=1.0):
        yield fetcher


@pytest.fixture
async def default() -> AsyncIterator[Fetcher]:
    async for fetcher in _fetcher():
        yield fetcher


async def _reason(fetcher: Fetcher, url: str) -> str:
    with pytest.raises(FetchFailed) as failed:
        await fetcher.fetch(url)
    return str(failed.value)


async def test_a_picture_is_fetched_whole(pictures: PictureServer, allowed: Fetcher) -> None:
    assert await allowed.fetch(pictures.url("rotated.jpg")) == samples()["rotated.jpg"]
    assert pictures.requests == ["/rotated.jpg"]


async def test_redirects_are_not_followed(pictures: PictureServer, allowed: Fetcher) -> None:
    assert await _reason(allowed, pictures.url("moved.png")) == "HTTP 302: redirects are not followed"
    assert pictures.requests == ["/moved.png"]


async def test_size_cap_timeout_and_http_errors(pictures: PictureServer, allowed: Fetcher) -> None:
    assert await _reason(allowed, pictures.url("huge.jpg")) == "larger than 5242880 bytes"
    assert await _reason(allowed, pictures.url("slow.png")) == "no complete answer within 1 s"
    assert await _reason(allowed, pictures.url("missing.png")) == "HTTP 404"


async def test_only_http_and_https(allowed: Fetcher) -> None:
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/a.png", "gopher://127.0.0.1/a.png"):
        assert await _reason(allowed, url) == "only http and https pictures are fetched"


async def test_loopback_private_and_metadata_refused_unless_allowed(
    pictures: PictureServer, default: Fetcher
) -> None:
    port = pictures.port
    # A name that resolves to loopback is judged by the address it resolves to, at connect time.
    by_name = await _reason(default, f"http://localhost:{port}/tiny.png")
    assert by_name.startswith("refused by the outbound address policy: localhost resolves to ")
    assert by_name.endswith(("127.0.0.0/8 (loopback)", "::1/128 (loopback)"))
    refusals = {
        f"http://127.0.0.1:{port}/tiny.png": "127.0.0.1 resolves to 127.0.0.1, 127.0.0.0/8 (loopback)",
        "http://10.1.2.3/a.png": "10.1.2.3 resolves to 10.1.2.3, 10.0.0.0/8 (private)",
        "http://169.254.169.254/latest/meta-data/a.png": (
            "169.254.169.254 resolves to 169.254.169.254, 169.254.169.254/32 (cloud metadata)"
        ),
        # An IPv4-mapped IPv6 literal is judged by the IPv4 address it stands for.
        "http://[::ffff:127.0.0.1]:80/a.png": (
            "[::ffff:7f00:1] resolves to ::ffff:7f00:1, 127.0.0.0/8 (loopback)"
        ),
    }
    for url, reason in refusals.items():
        assert await _reason(default, url) == f"refused by the outbound address policy: {reason}", url
    assert pictures.requests == []
