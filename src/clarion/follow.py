"""`clarion send` and `clarion campaigns cancel`: a campaign created from the terminal, followed with a
progress bar (rich, on stderr) until it is sent, then its funnel; the rules are the services' own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.app_tenant import service as apps
from clarion.campaign import service as campaigns
from clarion.campaign.schemas import Funnel
from clarion.db import Database
from clarion.delivery.cancel import cancel
from clarion.gravitec import push_body
from clarion.models import FINISHED_CAMPAIGN_STATUSES, App, Campaign

# How often the terminal looks at the campaign: often enough to move the bar smoothly.
POLL_S = 0.25


async def create(db: Database, app_key: str, title: str, message: str, url: str, tags: list[str]) -> int:
    """A campaign to everyone (or to subscribers holding any of `tags`), by the push API's rules."""
    body: dict[str, Any] = {"payload": {"title": title, "message": message, "redirect_url": url}}
    if tags:
        body["audience"] = {"tags": tags}
    async with db.session() as session:
        app = await apps.by_key(session, app_key)
        campaign = await campaigns.create(session, app, push_body.parse(body))
        return campaign.id


async def _look(db: Database, app_key: str, campaign_id: int) -> tuple[Campaign, Funnel]:
    async with db.session() as session:
        campaign = await campaigns.get(session, await apps.by_key(session, app_key), campaign_id)
        return campaign, await campaigns.funnel(session, campaign)


def summary(campaign: Campaign, funnel: Funnel) -> dict[str, Any]:
    return {"campaign_id": campaign.id, "status": campaign.status, **asdict(funnel), "rates": funnel.rates}


async def follow(
    db: Database, app_key: str, campaign_id: int, *, timeout_s: float, quiet: bool
) -> dict[str, Any]:
    """Watch the campaign until it has finished (or `timeout_s` passed): a bar of recipients done over
    the audience fanned out so far. A running `clarion serve` or `clarion worker` does the sending."""
    deadline = time.monotonic() + timeout_s
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=quiet, transient=False) as bar:
        task = bar.add_task(f"campaign {campaign_id}: scheduled", total=None)
        while True:
            campaign, funnel = await _look(db, app_key, campaign_id)
            done = funnel.audience - funnel.pending
            bar.update(task, description=f"campaign {campaign_id}: {campaign.status}", completed=done)
            if campaign.fanout_done or campaign.status in FINISHED_CAMPAIGN_STATUSES:
                bar.update(task, total=funnel.audience)
            if campaign.status in FINISHED_CAMPAIGN_STATUSES or time.monotonic() > deadline:
                return summary(campaign, funnel)
            await asyncio.sleep(POLL_S)


async def cancel_campaign(db: Database, app_key: str, campaign_id: int) -> dict[str, Any]:
    return await change_campaign(db, app_key, campaign_id, cancel)


Change = Callable[[AsyncSession, App, int], Awaitable[Campaign]]


async def change_campaign(db: Database, app_key: str, campaign_id: int, change: Change) -> dict[str, Any]:
    """Cancel, pause or resume (delivery.cancel, delivery.pause) the app's campaign; its summary."""
    async with db.session() as session:
        campaign = await change(session, await apps.by_key(session, app_key), campaign_id)
        return summary(campaign, await campaigns.funnel(session, campaign))
