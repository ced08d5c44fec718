"""Fetching a picture from the address a customer chose: outbound traffic under Clarion's rules.

Only `http(s)`; every connection through `provider/guard.py` (the name resolved here, each address
judged by `netpolicy`, the client pinned to the judged address, no proxy), so loopback, private,
link-local and metadata addresses are refused at connect time unless `CLARION_OUTBOUND_ALLOW` opens
them; redirects are never followed (a 3xx is a failure: following one would be a second, unjudged
choice of address); at most `CLARION_PICTURE_MAX_BYTES` are read; the whole fetch, body included,
ends after `CLARION_PICTURE_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pyreqwest.client import ClientBuilder
from pyreqwest.exceptions import BuilderError, RequestError

from clarion.config import Settings
from clarion.netpolicy import AddressPolicy
from clarion.provider.guard import AddressRefused, GuardedClients, ResolveFailed
from clarion.provider.httpio import reqwest_builder, transport_reason


class FetchFailed(Exception):
    """The picture could not be fetched; the message is the reason a warning records."""


@dataclass(slots=True)
class Fetcher:
    clients: GuardedClients
    timeout_s: float
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Fetcher:
        # No push hosts: a loopback push host (a test's fake push service) opens loopback for Web Push
        # only; pictures on loopback or private hosts need CLARION_OUTBOUND_ALLOW.
        policy = AddressPolicy.from_settings(settings.outbound_allow)
        timeout_s = settings.picture_timeout_s

        def builder() -> ClientBuilder:
            return reqwest_builder(
                ca_file=settings.ca_file,
                timeout_s=timeout_s,
                connect_timeout_s=min(settings.connect_timeout_s, timeout_s),
            )

        return cls(GuardedClients(policy, builder), timeout_s, settings.picture_max_bytes)

    async def fetch(self, url: str) -> bytes:
        """The picture's bytes; raises FetchFailed with a one-line reason."""
        if url.split(":", 1)[0].lower() not in ("http", "https"):
            raise FetchFailed("only http and https pictures are fetched")
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._get(url)
        except TimeoutError:
            raise FetchFailed(f"no complete answer within {self.timeout_s:g} s") from None
        except AddressRefused as exc:
            raise FetchFailed(exc.reason) from None
        except ResolveFailed as exc:
            raise FetchFailed(str(exc)) from None
        except RequestError as exc:
            raise FetchFailed(transport_reason(exc)) from None
        except (BuilderError, ValueError):
            raise FetchFailed("not a URL the HTTP client can request") from None

    async def _get(self, url: str) -> bytes:
        client = await self.clients.client_for(url)
        async with client.get(url).build_streamed() as response:
            if 300 <= response.status < 400:
                raise FetchFailed(f"HTTP {response.status}: redirects are not followed")
            if response.status != 200:
                raise FetchFailed(f"HTTP {response.status}")
            declared = response.get_header("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                raise FetchFailed(f"larger than {self.max_bytes} bytes ({declared})")
            body = bytearray()
            while (chunk := await response.body_reader.read_chunk()) is not None:
                body += bytes(chunk)
                if len(body) > self.max_bytes:
                    raise FetchFailed(f"larger than {self.max_bytes} bytes")
            return bytes(body)

    async def aclose(self) -> None:
        await self.clients.aclose()
