"""When each claimed recipient of a job may be sent: a campaign's rate, a provider's own limit and a
push service's hold, shared by every worker through the limiter (pacing/limiter.py, docs/pacing.md).

A job's rows are given their send times when it is claimed. Those due within the horizon are sent
by the job, each at its time; the others go back to the ledger, due at their time and marked as
already given one (PACED_REASON), so the sweep queues them when it comes and no job waits for long:
a slow campaign never holds a worker's job slots or a lease for minutes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clarion import metrics
from clarion.delivery.context import CampaignContext
from clarion.delivery.repository import Claimed
from clarion.pacing.limiter import Clock, Limiter

log = logging.getLogger("clarion.delivery")

# Rows due further ahead than this go back to the ledger instead of waiting in the job.
HORIZON_S = 2.0
# How long a process trusts what it last read of an app's holds (a hold it set itself it knows at once).
HOLDS_FRESH_S = 0.5


def service_of(recipient: Claimed) -> str:
    """What a hold applies to: a Web Push endpoint's origin (each push service its own), or the
    native provider."""
    if recipient.platform != "web":
        return metrics.PROVIDERS.get(recipient.platform, recipient.platform)
    scheme, _, rest = recipient.address.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


@dataclass(frozen=True, slots=True)
class Schedule:
    send: list[tuple[int, float]]  # (index in the claim, when), in time order
    later: list[tuple[int, float]]  # (index in the claim, when): back to the ledger until then


class Pacer:
    def __init__(self, limiter: Limiter, clock: Clock, provider_rates: Mapping[str, int]) -> None:
        self.limiter = limiter
        self.clock = clock
        # Per minute, by subscriber platform (0 or absent: no limit of Clarion's).
        self.provider_rates = {platform: rate for platform, rate in provider_rates.items() if rate > 0}
        self._holds: dict[int, tuple[float, dict[str, float]]] = {}  # app -> (read at, holds)
        self._writes: set[asyncio.Task[None]] = set()

    async def schedule(self, context: CampaignContext, claimed: Sequence[Claimed]) -> Schedule | None:
        """Send times for a job's rows; None when nothing limits them (sent at once, as before)."""
        now = self.clock.time()
        holds = await self.holds(context.app_id, now)
        fresh = [index for index, recipient in enumerate(claimed) if not recipient.paced]
        times = [now] * len(claimed)
        limited = False
        if context.rate_per_minute:
            limited = True
            interval_s = 60.0 / context.rate_per_minute
            if fresh:
                key = f"campaign:{context.campaign_id}"
                start = await self.limiter.reserve(key, len(fresh), interval_s, now)
                for n, index in enumerate(fresh):
                    times[index] = start + n * interval_s
            # Rows handed back come due together when a sweep is late: their turns, given already,
            # are spread again from now, so a late sweep never makes a burst.
            paced = [index for index, recipient in enumerate(claimed) if recipient.paced]
            for n, index in enumerate(paced):
                times[index] = now + n * interval_s
        for platform, rate in self.provider_rates.items():
            mine = [index for index in fresh if claimed[index].platform == platform]
            if mine:
                limited = True
                interval_s = 60.0 / rate
                key = f"provider:{platform}:{context.app_id}"
                start = await self.limiter.reserve(key, len(mine), interval_s, now)
                for n, index in enumerate(mine):
                    times[index] = max(times[index], start + n * interval_s)
        if holds:
            limited = True
            for index, recipient in enumerate(claimed):
                times[index] = max(times[index], holds.get(service_of(recipient), now))
        if not limited:
            return None
        order = sorted(range(len(claimed)), key=times.__getitem__)
        horizon = now + HORIZON_S
        return Schedule(
            send=[(index, times[index]) for index in order if times[index] <= horizon],
            later=[(index, times[index]) for index in order if times[index] > horizon],
        )

    async def wait_until(self, at: float) -> None:
        wait_s = at - self.clock.time()
        if wait_s > 0:
            metrics.paced(wait_s)
            await self.clock.sleep(wait_s)

    async def holds(self, app_id: int, now: float) -> dict[str, float]:
        read_at, holds = self._holds.get(app_id, (float("-inf"), {}))
        if now - read_at > HOLDS_FRESH_S:
            try:
                holds = await self.limiter.holds(app_id, now)
            except Exception as exc:  # the store is away: what this process knows still holds
                log.warning("app %s: reading its push services' holds failed: %s", app_id, exc)
            self._holds[app_id] = (now, holds)
        return {service: until for service, until in holds.items() if until > now}

    def held_until(self, app_id: int, recipient: Claimed) -> float | None:
        """A hold this process knows of now (no round trip: checked before every send of a job)."""
        _, holds = self._holds.get(app_id, (0.0, {}))
        if not holds:
            return None
        until = holds.get(service_of(recipient))
        return until if until is not None and until > self.clock.time() else None

    def slow_down(self, app_id: int, recipient: Claimed, after_s: float) -> None:
        """The push service asked this app to wait: hold it here at once, and for every worker."""
        service = service_of(recipient)
        until = self.clock.time() + after_s
        read_at, holds = self._holds.get(app_id, (float("-inf"), {}))
        if holds.get(service, 0.0) >= until:
            return
        self._holds[app_id] = (read_at, {**holds, service: until})
        metrics.SLOW_DOWNS.labels(metrics.PROVIDERS.get(recipient.platform, recipient.platform)).inc()
        task = asyncio.get_running_loop().create_task(self._share(app_id, service, until))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _share(self, app_id: int, service: str, until: float) -> None:
        try:
            await self.limiter.hold(app_id, service, until)
        except Exception as exc:  # the hold still applies in this process; the retry is recorded
            log.warning("app %s: sharing a hold on %s failed: %s", app_id, service, exc)

    async def close(self) -> None:
        await asyncio.gather(*self._writes, return_exceptions=True)
        await self.limiter.close()
