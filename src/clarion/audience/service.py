"""Audiences compiled to one SQL predicate over subscribers, resolved in the database.

A campaign's audience is stored as a kind plus rows in campaign_targets (tokens, aliases, case-folded
tag names) or a list of resolved tag ids (tags_segment). Resolution joins those rows instead of
building IN lists, and the recipients are streamed by primary key in chunks, so neither memory nor
statement size grows with the audience.

This module only builds statements: the fan-out's ledger INSERT … SELECT embeds `page`, and
AudienceRepository runs it on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, not_, or_, select, true
from sqlalchemy.orm import aliased

from clarion.models import CampaignTarget, Subscriber, SubscriberTag, Tag


def _listed(campaign_id: int, column: Any, eligible: ColumnElement[bool]) -> ColumnElement[bool]:
    """`id IN (eligible subscribers whose column IN (the campaign's targets))`.

    The inner query has no ORDER BY to satisfy, so the planner reads the targets (their primary key)
    and searches an index on `column` for each (reg_id's unique index, or (app_id, alias)); the page
    then looks each id up by primary key: a push to a few tokens or aliases costs in proportion to
    them. A correlated EXISTS in the page's WHERE, and `column IN (targets)` there too, were walked
    over every subscriber of the app in id order instead (SQLite prefers the (app_id, id) index that
    spares it the page's ORDER BY): 43 ms per fan-out page at 50,000 subscribers.
    """
    targets = select(CampaignTarget.value).where(CampaignTarget.campaign_id == campaign_id)
    matched = select(Subscriber.id).where(eligible, column.in_(targets.scalar_subquery()))
    return Subscriber.id.in_(matched.scalar_subquery())


@dataclass(frozen=True)
class TagMembers:
    """An audience that lies within the members of some tags: its pages are read from subscriber_tags.

    `eligible` and `selected` are conditions on subscriber_tags' row (an alias of subscribers checked by
    primary key, the segment's terms on `subscriber_id`)."""

    tag_ids: Any
    eligible: ColumnElement[bool]
    selected: ColumnElement[bool]


# What `recipients` gives and `page` reads: a condition on subscribers, or the members of tags.
Recipients = ColumnElement[bool] | TagMembers


def _members_page(members: TagMembers, after_id: int, size: int) -> Select[int]:
    """The next page of the members of these tags, eligible and selected.

    The query reads one table, subscriber_tags, through its (tag_id, subscriber_id) index above the
    cursor, in order, a page at most; each member's subscriber row is checked by primary key. So a small
    tag costs its members, not the app's subscribers, and a large one a page per page. (With the page
    read from subscribers and the tags as a subquery, SQLite walked the app's (app_id, id) index, which
    spares it a sort, probing every subscriber; PostgreSQL hashed the page's ids and scanned the table.)
    A subscriber holding several of the tags counts once (DISTINCT).
    """
    member = SubscriberTag.subscriber_id
    return (
        select(member.label("id"))
        .where(
            SubscriberTag.tag_id.in_(members.tag_ids), member > after_id, members.eligible, members.selected
        )
        .distinct()
        .order_by(member)
        .limit(size)
    )


def campaign_tags(app_id: int, campaign_id: int) -> Select[int]:
    """The ids of the app's tags that a `tags` campaign's targets name (case-folded).

    AudienceRepository.recipients reads them once per fan-out and the pages name them as values:
    PostgreSQL plans a page before it runs it, and with the ids behind a subquery it cannot tell a rare
    tag from a common one, so it read every membership in subscriber order (measured: 30,000 index
    entries per page for a 40-member tag)."""
    return (
        select(Tag.id)
        .join(CampaignTarget, CampaignTarget.value == Tag.name_folded)
        .where(CampaignTarget.campaign_id == campaign_id, Tag.app_id == app_id)
    )


def _tagged(tag_id: int, subscriber_id: Any) -> ColumnElement[bool]:
    held = aliased(SubscriberTag)  # its own name: also used inside a query over subscriber_tags
    return exists().where(held.subscriber_id == subscriber_id, held.tag_id == tag_id)


def segment_predicate(
    terms: Iterable[tuple[str, int]], subscriber_id: Any = Subscriber.id
) -> ColumnElement[bool]:
    """Fold (association, tag_id) terms left to right, starting from the whole audience.

    The first term therefore applies to everyone: AND t -> t, AND_NOT t -> not t, OR t -> everyone,
    OR_NOT t -> everyone. Each later term combines with what the earlier ones selected.
    """
    selected: ColumnElement[bool] = true()
    for association, tag_id in terms:
        has = _tagged(tag_id, subscriber_id)
        if association == "AND":
            selected = and_(selected, has)
        elif association == "AND_NOT":
            selected = and_(selected, not_(has))
        elif association == "OR":
            selected = or_(selected, has)
        else:
            selected = or_(selected, not_(has))
    return selected


def segment_driver(terms: Iterable[tuple[str, int]]) -> list[int] | None:
    """Tags whose members include everyone the segment selects; None when it may select subscribers
    holding none of them (no AND, an OR before the first AND, or an OR_NOT after the last).

    Folded like `segment_predicate`: AND t narrows the selection to within t's members; AND_NOT keeps
    it within what it was; OR t adds t's members; OR_NOT adds those without t (anyone)."""
    driver: list[int] | None = None  # None: everyone (the fold starts from the whole audience)
    for association, tag_id in terms:
        if association == "AND":
            driver = [tag_id]
        elif association == "OR":
            driver = None if driver is None else [*driver, tag_id]
        elif association == "OR_NOT":
            driver = None
        # AND_NOT only removes subscribers: the selection stays within the driver it had.
    return driver


def _eligible(row: Any, app_id: int, platforms: tuple[str, ...]) -> ColumnElement[bool]:
    """An active subscriber of the app, on a platform Clarion delivers to (`row`: Subscriber or an alias)."""
    return and_(row.app_id == app_id, row.active.is_(True), row.platform.in_(platforms))


def _tagged_audience(
    app_id: int, audience: dict[str, Any], platforms: tuple[str, ...], tag_ids: Sequence[int]
) -> Recipients:
    """`tags` and `tags_segment` audiences: driven by their tags' members where the audience lies within
    them, else (a segment that may select subscribers holding none of its tags) the app in id order."""
    row = aliased(Subscriber)
    member = SubscriberTag.subscriber_id
    eligible = exists().where(row.id == member, _eligible(row, app_id, platforms))
    if audience["kind"] == "tags":
        return TagMembers(list(tag_ids), eligible, true())
    terms = [(t["association"], int(t["tag_id"])) for t in audience["terms"]]
    driver = segment_driver(terms)
    if driver is None:
        return and_(_eligible(Subscriber, app_id, platforms), segment_predicate(terms))
    return TagMembers(driver, eligible, segment_predicate(terms, member))


# Audiences listed by value in campaign_targets, and the subscriber column each value names.
_LISTED_BY: dict[str, Any] = {"tokens": Subscriber.reg_id, "aliases": Subscriber.alias}


def recipients(
    app_id: int,
    campaign_id: int,
    audience: dict[str, Any],
    platforms: Iterable[str],
    tag_ids: Sequence[int] = (),
) -> Recipients:
    """Every active subscriber of the app, on a platform Clarion delivers to, in the audience.

    `tag_ids`: for a `tags` audience, the ids `campaign_tags` gives (AudienceRepository.recipients)."""
    kind, platforms = audience.get("kind", "all"), tuple(platforms)
    if kind in _LISTED_BY:
        return _listed(campaign_id, _LISTED_BY[kind], _eligible(Subscriber, app_id, platforms))
    if kind in ("tags", "tags_segment"):
        return _tagged_audience(app_id, audience, platforms, tag_ids)
    return _eligible(Subscriber, app_id, platforms)


def page(condition: Recipients, after_id: int, size: int) -> Select[int]:
    """The next `size` recipient ids above `after_id`, in id order (a keyset page), as a query of one
    column, `id`: the fan-out inserts it into the ledger without the ids passing through Python."""
    if isinstance(condition, TagMembers):
        return _members_page(condition, after_id, size)
    return (
        select(Subscriber.id).where(condition, Subscriber.id > after_id).order_by(Subscriber.id).limit(size)
    )
