"""CLARION_DELIVERY=sink: for users' CI and staging, every message is prepared by its real provider
and then recorded as delivered instead of being sent; nothing leaves the machine.

Web Push's `prepare` is the whole message (payload encrypted for the subscription, VAPID-signed
headers), so a sink run costs the CPU a real one does. The native providers build their service's
request body inside their client's send, after an OAuth token that would have to be fetched from
the service: the sink stops before, at the notification and the app's credentials being there.
"""

from __future__ import annotations

import logging
from datetime import datetime

from clarion.provider.base import Campaign, Provider, Recipient, Transmit
from clarion.provider.outcome import Delivered, Gone, Outcome, Rejected, Retry

log = logging.getLogger("clarion.provider")

# 201 Created: what a Web Push service answers to an accepted message (RFC 8030 §5).
SINK_STATUS = 201
_DELIVERED = Delivered(SINK_STATUS)


async def _sunk() -> Outcome:
    return _DELIVERED


class SinkProvider:
    """A provider whose requests are prepared as for real and never sent."""

    def __init__(self, real: Provider) -> None:
        self._real = real

    def prepare(self, campaign: Campaign, recipient: Recipient, now: datetime) -> Outcome | Transmit:
        prepared = self._real.prepare(campaign, recipient, now)
        if isinstance(prepared, Delivered | Retry | Gone | Rejected):
            return prepared  # never sendable (no keys, no credentials): the same outcome as for real
        return _sunk

    async def close(self) -> None:
        await self._real.close()


def sink_all(providers: dict[str, Provider]) -> dict[str, Provider]:
    log.warning(
        "SINK MODE (CLARION_DELIVERY=sink): no message is sent to any push service; every message is"
        " built and recorded as delivered"
    )
    return {platform: SinkProvider(provider) for platform, provider in providers.items()}
