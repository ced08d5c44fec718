"""The one seam between delivery and the push services: `Provider`, which each provider implements.

A provider turns one recipient of a campaign into its request. `prepare` does everything before the
request and returns it as a `Transmit` (or the outcome, when there is nothing to send); the sending
lanes await it later. Web Push needs the split most: the Deliverer prepares (encrypts) a window of
recipients back to back before it sends any (docs/architecture.md). The native providers only pick
the app's client and the recipient's notification there.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from pyreqwest.client import Client as HttpClient

from clarion.content import Notification
from clarion.provider.outcome import Delivered, Outcome, Rejected

# What is left of a send once its CPU-bound part is done: the request itself.
Transmit = Callable[[], Awaitable[Outcome]]

# What a rehearsal (CLARION_DELIVERY=sink) records for a message built to the last byte and not sent:
# 201 Created, what a Web Push service answers to an accepted message (RFC 8030 §5).
REHEARSED = Delivered(201)

# Swrve's wording for an app without credentials for the platform (spec, batch error report).
NO_CREDENTIALS = "Failed to retrieve push certificate for app"


class Campaign(Protocol):
    """What a provider reads of the campaign being sent (delivery's CampaignContext)."""

    @property
    def app_id(self) -> int: ...
    @property
    def urgency(self) -> str: ...
    @property
    def topic(self) -> str | None: ...
    @property
    def vapid_private_pem(self) -> str: ...
    @property
    def vapid_public_key(self) -> str: ...
    @property
    def vapid_subject(self) -> str | None: ...

    def vapid_key(self, key_id: int | None) -> tuple[str, str]:
        """(private PEM, public key) of the app's VAPID key `key_id` (None or unknown: the current)."""
        ...

    @property
    def credentials(self) -> dict[str, dict[str, Any]]: ...

    def remaining_ttl_s(self, now: datetime) -> int: ...

    def message_for(self, params: dict[str, Any] | None, now: datetime) -> Notification: ...

    def web_payload(self, message: Notification | None) -> bytes: ...

    def declarative_payload(self, message: Notification | None) -> bytes | None: ...


class Recipient(Protocol):
    """One device of the campaign's audience (delivery's Claimed ledger row)."""

    @property
    def address(self) -> str: ...
    @property
    def p256dh(self) -> str | None: ...
    @property
    def auth(self) -> str | None: ...
    @property
    def registered_at(self) -> datetime | None: ...
    @property
    def params(self) -> dict[str, Any] | None: ...
    @property
    def vapid_key_id(self) -> int | None: ...


class Provider(Protocol):
    def prepare(self, campaign: Campaign, recipient: Recipient, now: datetime) -> Outcome | Transmit:
        """Everything before the request, or the outcome if there is nothing to send."""
        ...

    def rehearse(self, campaign: Campaign, recipient: Recipient, now: datetime) -> Outcome:
        """Everything `prepare` and the send would do short of the network (the request built to its
        body, what can be signed without a service signed), as `REHEARSED` or why it would fail."""
        ...

    async def close(self) -> None: ...


class AddressClient(Protocol):
    async def send(self, address: str, message: Notification, /) -> Outcome: ...

    def rehearse(self, address: str, message: Notification, /) -> Outcome: ...


Client = TypeVar("Client")
AnyAddressClient = TypeVar("AnyAddressClient", bound=AddressClient)


class ClientPerCredential(Generic[Client]):
    """A native provider's long-lived client per app credential (a client caches its tokens)."""

    def __init__(self, name: str, factory: Callable[[dict[str, Any]], Client]) -> None:
        self._name = name
        self._factory = factory
        self._clients: dict[tuple[int, str], Client] = {}

    def get(self, campaign: Campaign) -> Client | None:
        """The app's client, or None when the app has no credentials for this provider."""
        data = campaign.credentials.get(self._name)
        if data is None:
            return None
        key = (campaign.app_id, json.dumps(data, sort_keys=True))
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._factory(data)
        return client

    def clear(self) -> list[Client]:
        """Forget every client; returns them, for a provider whose clients need closing."""
        clients = list(self._clients.values())
        self._clients.clear()
        return clients


class ClientPerApp(Generic[AnyAddressClient]):
    """What FCM, WNS and ADM share as providers: the app's client (built from its credentials, on
    one HTTP client they all use) sends the recipient's notification to the recipient's address."""

    def __init__(self, http: HttpClient, clients: ClientPerCredential[AnyAddressClient]) -> None:
        self._http = http
        self._clients = clients

    def prepare(self, campaign: Campaign, recipient: Recipient, now: datetime) -> Outcome | Transmit:
        client = self._clients.get(campaign)
        if client is None:
            return Rejected(NO_CREDENTIALS)
        message = campaign.message_for(recipient.params, now)
        return functools.partial(client.send, recipient.address, message)

    def rehearse(self, campaign: Campaign, recipient: Recipient, now: datetime) -> Outcome:
        client = self._clients.get(campaign)
        if client is None:
            return Rejected(NO_CREDENTIALS)
        return client.rehearse(recipient.address, campaign.message_for(recipient.params, now))

    async def close(self) -> None:
        self._clients.clear()
        await self._http.close()
