"""CLARION_DELIVERY=sink: for users' CI and staging, every message is built by its real provider to
the last byte and then recorded as delivered instead of being sent; nothing leaves the machine.

Each provider's `rehearse` does all of a send but the network: Web Push encrypts the payload for the
subscription and signs VAPID headers; FCM, WNS and ADM build and size-check their service's body (the
OAuth token they would fetch is left out); APNs builds its body and headers and signs its provider
token. A message the service would refuse is refused here with the same reason.
"""

from __future__ import annotations

import logging
from datetime import datetime

from clarion.provider.base import REHEARSED, Campaign, Provider, Recipient, Transmit
from clarion.provider.outcome import Outcome

log = logging.getLogger("clarion.provider")


async def _sunk() -> Outcome:
    return REHEARSED


class SinkProvider:
    """A provider whose requests are built as for real and never sent."""

    def __init__(self, real: Provider) -> None:
        self._real = real

    def prepare(self, campaign: Campaign, recipient: Recipient, now: datetime) -> Outcome | Transmit:
        rehearsed = self._real.rehearse(campaign, recipient, now)
        # A built message still goes through the sending lanes, as a real one would.
        return _sunk if rehearsed is REHEARSED else rehearsed

    def rehearse(self, campaign: Campaign, recipient: Recipient, now: datetime) -> Outcome:
        return self._real.rehearse(campaign, recipient, now)

    async def close(self) -> None:
        await self._real.close()


def sink_all(providers: dict[str, Provider]) -> dict[str, Provider]:
    log.warning(
        "SINK MODE (CLARION_DELIVERY=sink): no message is sent to any push service; every message is"
        " built and recorded as delivered"
    )
    return {platform: SinkProvider(provider) for platform, provider in providers.items()}
