"""A campaign's start and finish as an operator sees them: one log line each, and their metrics.

Each line carries `campaign_id` as a structured field (a JSON log line's own key), so a log search
for one campaign finds its start, its first failures of each kind (delivery.failures), its job
summaries and its finish.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from clarion import metrics
from clarion.db import as_utc
from clarion.models import Campaign

log = logging.getLogger("clarion.delivery")


def started(campaign: Campaign, now: datetime) -> None:
    """A fan-out begins. The first one of a campaign observes the scheduler's lag (due -> started);
    a fan-out resumed after a crash or an outage is logged but not counted again."""
    due = as_utc(campaign.send_at or campaign.created_at)
    first = campaign.started_at is not None and as_utc(campaign.started_at) == now
    lag_s = max(0.0, (now - due).total_seconds())
    if first:
        metrics.CAMPAIGNS_STARTED.inc()
        metrics.SCHEDULER_LAG.observe(lag_s)
    log.info(
        "campaign %s %s, %.2f s after it was due",
        campaign.id,
        "started" if first else "fan-out resumed",
        lag_s,
        extra={"campaign_id": campaign.id, "app_id": campaign.app_id, "lag_s": round(lag_s, 3)},
    )


def finished(campaign_id: int, counts: Mapping[str, int]) -> None:
    """The campaign has nothing pending: what became of its recipients, in one line."""
    metrics.CAMPAIGNS_FINISHED.inc()
    text = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no recipients"
    log.info(
        "campaign %s finished: %s",
        campaign_id,
        text,
        extra={"campaign_id": campaign_id, "counts": dict(counts), "recipients": sum(counts.values())},
    )
