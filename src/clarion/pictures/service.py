"""Preparing a campaign's pictures before its fan-out, and finding a stored one to serve.

Each picture of the campaign (its `icon` and `image`) is fetched once, however many recipients it
has, checked and normalised (normalise.py), stored once by digest (a picture that several campaigns
use is one row), and its URL in the stored payload replaced by Clarion's own
(`{CLARION_PUBLIC_URL}/pictures/{sha256}.{png|jpg}`), so every provider sends that URL. A picture
that cannot be fetched or decoded keeps its original URL, and the campaign records a warning
(`campaigns.picture_warnings`, shown by `GET /admin/v1/campaigns/{id}` and `clarion campaigns
show`) and logs it: a picture never stops a campaign.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import content, errors
from clarion.campaign import payload as payloads
from clarion.campaign.repository import CampaignRepository
from clarion.db import Database, utcnow
from clarion.models import Picture
from clarion.pictures.fetch import Fetcher, FetchFailed
from clarion.pictures.normalise import BadPicture, Processed, Role, normalise
from clarion.pictures.repository import PictureRepository

log = logging.getLogger("clarion.pictures")

ROLES: tuple[Role, ...] = ("icon", "image")
PATH = "/pictures"
_NAME = re.compile(r"([0-9a-f]{64})\.(png|jpg)")
_EXTENSION = {"image/png": "png", "image/jpeg": "jpg"}


# Pictures fetched and decoded at once per process: each may hold 5 MB of body and, while decoding,
# up to 100 MB of pixels (25 megapixels of RGBA), so a burst of campaigns must queue, not pile up.
CONCURRENT_PICTURES = 4


@dataclass(frozen=True, slots=True)
class Pictures:
    """What preparing pictures needs: the fetcher, the base of the URLs pictures are served at, and
    the bound on pictures in hand at once."""

    fetcher: Fetcher
    public_url: str
    lease_s: float
    in_hand: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONCURRENT_PICTURES))


def public_url_of(public_url: str, picture: Processed) -> str:
    return f"{public_url}{PATH}/{picture.digest}.{picture.extension}"


async def prepare(db: Database, campaign_id: int, pictures: Pictures) -> None:
    """Process the campaign's pictures once; a campaign prepared already, or without pictures, is left."""
    async with db.session() as session:
        campaign = await CampaignRepository(session).find(campaign_id)
        if campaign is None or campaign.picture_warnings is not None:
            return
        original, stored = dict(campaign.payload), dict(campaign.payload)
        wanted = {role: url for role in ROLES if isinstance(url := stored.get(role), str) and url}
        if not wanted:
            return
        # The fetch may outlast the scheduler's claim: keep other schedulers off meanwhile.
        held_s = pictures.fetcher.timeout_s + 2 * pictures.lease_s
        await CampaignRepository(session).renew_fanout(campaign_id, utcnow() + timedelta(seconds=held_s))
    outcomes = await asyncio.gather(*(_process(pictures, role, url) for role, url in wanted.items()))
    warnings: list[dict[str, str]] = []
    processed: dict[Role, Processed] = {}
    for (role, url), outcome in zip(wanted.items(), outcomes, strict=True):
        if isinstance(outcome, str):
            warnings.append({"field": role, "url": url, "reason": outcome})
            continue
        stored[role] = public_url_of(pictures.public_url, outcome)
        processed[role] = outcome
    if processed and not _fits(stored):
        stored = original
        reason = "with Clarion's picture URL the notification would exceed the Web Push size limit"
        warnings += [{"field": role, "url": wanted[role], "reason": reason} for role in processed]
        processed = {}
    async with db.session() as session:
        now = utcnow()
        for picture in processed.values():
            await PictureRepository(session).keep(picture, now)
        written = await CampaignRepository(session).set_pictures(campaign_id, stored, warnings)
    if written:
        for warning in warnings:
            log.warning(
                "campaign %s: its %s goes out unprocessed, as %s: %s",
                campaign_id,
                warning["field"],
                warning["url"],
                warning["reason"],
                extra={"campaign_id": campaign_id},
            )


async def _process(pictures: Pictures, role: Role, url: str) -> Processed | str:
    """The processed picture, or why there is none."""
    try:
        async with pictures.in_hand:
            data = await pictures.fetcher.fetch(url)
            return await asyncio.to_thread(normalise, data, role)
    except (FetchFailed, BadPicture) as exc:
        return str(exc)


def _fits(stored: dict[str, Any]) -> bool:
    widest = replace(content.decode(stored), campaign_id=payloads.WIDEST_CAMPAIGN_ID)
    return len(content.web_payload(widest)) <= payloads.MAX_PAYLOAD_BYTES


async def find(session: AsyncSession, name: str) -> Picture:
    """The stored picture that `{digest}.{png|jpg}` names (its extension must be its type's)."""
    match = _NAME.fullmatch(name)
    picture = await PictureRepository(session).get(match.group(1)) if match else None
    if picture is None or match is None or _EXTENSION.get(picture.content_type) != match.group(2):
        raise errors.NotFound("There is no such picture", field="name")
    return picture
