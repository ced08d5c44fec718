"""Adapters from a ledger row and its campaign onto each provider's request (one per platform)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import aiohttp
from pyreqwest.client import Client

from clarion.config import Settings
from clarion.delivery.context import CampaignContext
from clarion.delivery.lanes import Transmit
from clarion.delivery.repository import Claimed
from clarion.provider import adm, apns, fcm, webpush, wns
from clarion.provider.message import NativeMessage
from clarion.provider.outcome import Outcome, Rejected


class Sender(Protocol):
    def prepare(self, context: CampaignContext, recipient: Claimed, now: datetime) -> Outcome | Transmit:
        """Everything before the request (for Web Push, the encryption), or the outcome if there is
        nothing to send; the Deliverer prepares a window of recipients before it sends any."""
        ...

    async def close(self) -> None: ...


class WebPushSender:
    def __init__(self, client: Client, subject: str) -> None:
        self._client = client
        self._subject = subject
        self._signers: dict[int, webpush.VapidSigner] = {}

    def _signer(self, context: CampaignContext) -> webpush.VapidSigner:
        signer = self._signers.get(context.app_id)
        if signer is None:
            signer = webpush.VapidSigner(context.vapid_private_pem, context.vapid_public_key, self._subject)
            self._signers[context.app_id] = signer
        return signer

    def prepare(self, context: CampaignContext, recipient: Claimed, now: datetime) -> Outcome | Transmit:
        if recipient.p256dh is None or recipient.auth is None:
            return Rejected("the web subscription has no keys")
        ttl_s, topic, own = context.remaining_ttl_s(now), context.topic, None
        if recipient.params is not None:  # a batch recipient: its own content, TTL and collapse key
            own = context.message_for(recipient.params, now)
            ttl_s, topic = own.ttl_s, own.collapse_key
        request = webpush.WebPushRequest(
            endpoint=recipient.address,
            p256dh=recipient.p256dh,
            auth=recipient.auth,
            payload=context.web_payload(own),
            ttl_s=ttl_s,
            urgency=context.urgency,
            topic=topic,
        )
        prepared = webpush.prepare(self._signer(context), request)
        if isinstance(prepared, Rejected):
            return prepared
        return functools.partial(webpush.transmit, self._client, prepared)

    async def close(self) -> None:
        await self._client.close()


class NativeClient(Protocol):
    async def send(self, address: str, message: NativeMessage, registered_at: datetime | None) -> Outcome: ...

    async def close(self) -> None: ...


class _AddressSender(Protocol):
    async def send(self, address: str, message: NativeMessage, /) -> Outcome: ...


ClientFactory = Callable[[dict[str, Any]], NativeClient]

# Swrve's wording for an app without credentials for the platform (spec, batch error report).
NO_CREDENTIALS = "Failed to retrieve push certificate for app"


class NativeSender:
    """One native provider for every app: a long-lived client per app credential (it caches tokens)."""

    def __init__(self, provider: str, factory: ClientFactory) -> None:
        self._provider = provider
        self._factory = factory
        self._clients: dict[tuple[int, str], NativeClient] = {}

    def _client(self, context: CampaignContext) -> NativeClient | None:
        data = context.credentials.get(self._provider)
        if data is None:
            return None
        key = (context.app_id, json.dumps(data, sort_keys=True))
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._factory(data)
        return client

    def prepare(self, context: CampaignContext, recipient: Claimed, now: datetime) -> Outcome | Transmit:
        client = self._client(context)
        if client is None:
            return Rejected(NO_CREDENTIALS)
        message = context.message_for(recipient.params, now)
        return functools.partial(client.send, recipient.address, message, recipient.registered_at)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


class AiohttpClientAdapter:
    """FCM, WNS and ADM clients share the engine's aiohttp session; there is nothing of theirs to close."""

    def __init__(self, client: _AddressSender) -> None:
        self._client = client

    async def send(self, address: str, message: NativeMessage, registered_at: datetime | None) -> Outcome:
        return await self._client.send(address, message)

    async def close(self) -> None:
        return None


class ApnsAdapter:
    """APNs alone needs the registration time: a stale Unregistered must not deactivate a new token."""

    def __init__(self, client: apns.ApnsClient) -> None:
        self._client = client

    async def send(self, address: str, message: NativeMessage, registered_at: datetime | None) -> Outcome:
        return await self._client.send(address, message, token_registered_at=registered_at)

    async def close(self) -> None:
        await self._client.close()


def native_senders(
    session: aiohttp.ClientSession, settings: Settings, timeout: aiohttp.ClientTimeout
) -> dict[str, Sender]:
    """Subscriber platform -> the sender of the provider that serves it."""

    def fcm_client(data: dict[str, Any]) -> NativeClient:
        return AiohttpClientAdapter(fcm.FcmClient(session, data, base_url=settings.fcm_url, timeout=timeout))

    def wns_client(data: dict[str, Any]) -> NativeClient:
        client = wns.WnsClient(
            session, data["client_id"], data["client_secret"], auth_url=settings.wns_url, timeout=timeout
        )
        return AiohttpClientAdapter(client)

    def adm_client(data: dict[str, Any]) -> NativeClient:
        client = adm.AdmClient(
            session, data["client_id"], data["client_secret"], base_url=settings.adm_url, timeout=timeout
        )
        return AiohttpClientAdapter(client)

    def apns_client(data: dict[str, Any]) -> NativeClient:
        return ApnsAdapter(
            apns.ApnsClient(
                base_url=settings.apns_url,
                key_pem=data["key_pem"],
                key_id=data["key_id"],
                team_id=data["team_id"],
                topic=data["topic"],
                ca_file=settings.ca_file,
                timeout_s=settings.request_timeout_s,
                connect_timeout_s=settings.connect_timeout_s,
            )
        )

    return {
        "android": NativeSender("fcm", fcm_client),
        "ios": NativeSender("apns", apns_client),
        "wns": NativeSender("wns", wns_client),
        "adm": NativeSender("adm", adm_client),
    }
