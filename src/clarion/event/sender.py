"""POSTing a signed batch of events to a customer's URL: outbound traffic under Clarion's rules.

Every connection goes through `provider/guard.py` (the name resolved here, each address judged by
`netpolicy`, the client pinned to it, no proxy), so loopback, private, link-local and metadata
addresses are refused at connect time unless `CLARION_OUTBOUND_ALLOW` opens them; redirects are
never followed (a 3xx is a failure); the whole request ends after `CLARION_WEBHOOK_TIMEOUT_S`.
Only the status is read: an answer's body is the receiver's business.
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


@dataclass(frozen=True, slots=True)
class Answer:
    """None: delivered; else why not, in one line that names no URL."""

    failure: str | None


@dataclass(slots=True)
class Sender:
    clients: GuardedClients
    timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Sender:
        policy = AddressPolicy.from_settings(settings.outbound_allow)
        timeout_s = settings.webhook_timeout_s

        def builder() -> ClientBuilder:
            return reqwest_builder(
                ca_file=settings.ca_file,
                timeout_s=timeout_s,
                connect_timeout_s=min(settings.connect_timeout_s, timeout_s),
            )

        return cls(GuardedClients(policy, builder), timeout_s)

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Answer:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._post(url, headers, body)
        except TimeoutError:
            return Answer(f"no answer within {self.timeout_s:g} s")
        except AddressRefused as exc:
            return Answer(exc.reason)
        except ResolveFailed as exc:
            return Answer(str(exc))
        except RequestError as exc:
            return Answer(transport_reason(exc))
        except (BuilderError, ValueError):
            return Answer("not a URL the HTTP client can request")

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> Answer:
        client = await self.clients.client_for(url)
        async with client.post(url).headers(headers).body_bytes(body).build_streamed() as response:
            status = response.status
        if 200 <= status < 300:
            return Answer(None)
        if 300 <= status < 400:
            return Answer(f"HTTP {status}: redirects are not followed")
        return Answer(f"HTTP {status}")

    async def aclose(self) -> None:
        await self.clients.aclose()
