"""Audiences compiled to one SQL predicate over subscribers, resolved in the database.

A campaign's audience is stored as a kind plus rows in campaign_targets (tokens, aliases, case-folded
tag names) or a list of resolved tag ids (tags_segment). Resolution joins those rows instead of
building IN lists, and the recipients are streamed by primary key in chunks, so neither memory nor
statement size grows with the audience.

This module only builds statements: the fan-out's ledger INSERT … SELECT embeds `page`, and
AudienceRepository runs it on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, not_, or_, select, true

from clarion.models import CampaignTarget, Subscriber, SubscriberTag, Tag


def _target_matches(campaign_id: int, column: Any) -> ColumnElement[bool]:
    return exists().where(CampaignTarget.campaign_id == campaign_id, CampaignTarget.value == column)


def _tagged_with_any(campaign_id: int) -> ColumnElement[bool]:
    return exists().where(
        SubscriberTag.subscriber_id == Subscriber.id,
        SubscriberTag.tag_id == Tag.id,
        CampaignTarget.campaign_id == campaign_id,
        CampaignTarget.value == Tag.name_folded,
    )


def _tagged(tag_id: int) -> ColumnElement[bool]:
    return exists().where(SubscriberTag.subscriber_id == Subscriber.id, SubscriberTag.tag_id == tag_id)


def segment_predicate(terms: Iterable[tuple[str, int]]) -> ColumnElement[bool]:
    """Fold (association, tag_id) terms left to right, starting from the whole audience.

    The first term therefore applies to everyone: AND t -> t, AND_NOT t -> not t, OR t -> everyone,
    OR_NOT t -> everyone. Each later term combines with what the earlier ones selected.
    """
    selected: ColumnElement[bool] = true()
    for association, tag_id in terms:
        has = _tagged(tag_id)
        if association == "AND":
            selected = and_(selected, has)
        elif association == "AND_NOT":
            selected = and_(selected, not_(has))
        elif association == "OR":
            selected = or_(selected, has)
        else:
            selected = or_(selected, not_(has))
    return selected


def predicate(campaign_id: int, audience: dict[str, Any]) -> ColumnElement[bool]:
    kind = audience.get("kind", "all")
    if kind == "tokens":
        return _target_matches(campaign_id, Subscriber.reg_id)
    if kind == "aliases":
        return _target_matches(campaign_id, Subscriber.alias)
    if kind == "tags":
        return _tagged_with_any(campaign_id)
    if kind == "tags_segment":
        return segment_predicate((t["association"], int(t["tag_id"])) for t in audience["terms"])
    return true()


def recipients(
    app_id: int, campaign_id: int, audience: dict[str, Any], platforms: Iterable[str]
) -> ColumnElement[bool]:
    """Every active subscriber of the app, on a platform Clarion delivers to, in the audience."""
    return and_(
        Subscriber.app_id == app_id,
        Subscriber.active.is_(True),
        Subscriber.platform.in_(tuple(platforms)),
        predicate(campaign_id, audience),
    )


def page(condition: ColumnElement[bool], after_id: int, size: int) -> Select[int]:
    """The next `size` recipient ids above `after_id`, in id order (a keyset page), as a query:
    the fan-out inserts it into the ledger without the ids passing through Python."""
    return (
        select(Subscriber.id).where(condition, Subscriber.id > after_id).order_by(Subscriber.id).limit(size)
    )
