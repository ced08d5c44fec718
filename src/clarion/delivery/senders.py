"""Adapters from a ledger row and its campaign onto each provider's request (one per platform)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import aiohttp

from clarion.delivery.context import CampaignContext
from clarion.delivery.repository import Claimed
from clarion.provider import webpush
from clarion.provider.outcome import Outcome, Rejected


class Sender(Protocol):
    async def send(self, context: CampaignContext, recipient: Claimed, now: datetime) -> Outcome: ...


class WebPushSender:
    def __init__(self, session: aiohttp.ClientSession, subject: str, timeout: aiohttp.ClientTimeout) -> None:
        self._session = session
        self._subject = subject
        self._timeout = timeout
        self._signers: dict[int, webpush.VapidSigner] = {}

    def _signer(self, context: CampaignContext) -> webpush.VapidSigner:
        signer = self._signers.get(context.app_id)
        if signer is None:
            signer = webpush.VapidSigner(context.vapid_private_pem, context.vapid_public_key, self._subject)
            self._signers[context.app_id] = signer
        return signer

    async def send(self, context: CampaignContext, recipient: Claimed, now: datetime) -> Outcome:
        if recipient.p256dh is None or recipient.auth is None:
            return Rejected("the web subscription has no keys")
        request = webpush.WebPushRequest(
            endpoint=recipient.address,
            p256dh=recipient.p256dh,
            auth=recipient.auth,
            payload=context.payload,
            ttl_s=context.remaining_ttl_s(now),
            urgency=context.urgency,
            topic=context.topic,
        )
        return await webpush.send(self._session, self._signer(context), request, timeout=self._timeout)
