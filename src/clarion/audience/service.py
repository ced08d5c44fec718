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

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.orm import aliased

from clarion.models import (
    CampaignTarget,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberAttribute,
    SubscriberTag,
    Tag,
)


def _listed(
    campaign_id: int, column: Any, eligible: ColumnElement[bool], values: Sequence[str] | None = None
) -> ColumnElement[bool]:
    """`id IN (eligible subscribers whose column IN (the campaign's targets))` (or `values`, for an
    audience that is no campaign's: a dry run).

    The inner query has no ORDER BY to satisfy, so the planner reads the targets (their primary key)
    and searches an index on `column` for each (reg_id's unique index, or (app_id, alias)); the page
    then looks each id up by primary key: a push to a few tokens or aliases costs in proportion to
    them. A correlated EXISTS in the page's WHERE, and `column IN (targets)` there too, were walked
    over every subscriber of the app in id order instead (SQLite prefers the (app_id, id) index that
    spares it the page's ORDER BY): 43 ms per fan-out page at 50,000 subscribers.
    """
    targets = select(CampaignTarget.value).where(CampaignTarget.campaign_id == campaign_id)
    listed = column.in_(values if values is not None else targets.scalar_subquery())
    matched = select(Subscriber.id).where(eligible, listed)
    return Subscriber.id.in_(matched.scalar_subquery())


@dataclass(frozen=True)
class TagMembers:
    """An audience that lies within the members of some tags: its pages are read from subscriber_tags.

    `row` is an alias of subscribers looked up by primary key for each member, `eligible` a condition
    on it; `terms` a segment's (association, tag_id) terms, checked on each member (none for `tags`)."""

    tag_ids: tuple[int, ...]
    row: Any
    eligible: ColumnElement[bool]
    terms: tuple[tuple[str, int], ...] = ()


# What `recipients` gives and `page` reads: a condition on subscribers, or the members of tags.
Recipients = ColumnElement[bool] | TagMembers


def _members_of(
    members: TagMembers,
    tag_id: int,
    after_id: int | ColumnElement[int],
    size: int | None,
    upto: int | ColumnElement[int] | None = None,
) -> Select[int]:
    """The next `size` eligible, selected members of one tag above `after_id`, in order.

    It reads subscriber_tags' (tag_id, subscriber_id) index from the cursor on, in the index's order,
    so it stops after a page: a small tag costs its members, a large one a page per page. Each member's
    subscriber row is checked by primary key, bounded by the cursor too (PostgreSQL does not carry
    `subscriber_id > cursor` over to the joined id by itself, and merged from the table's first row).
    """
    member, row = SubscriberTag.subscriber_id, members.row
    eligible = exists().where(row.id == member, row.id > after_id, members.eligible)
    selected = segment_predicate(members.terms, member, after_id)
    query = select(member.label("id")).where(
        SubscriberTag.tag_id == tag_id, member > after_id, eligible, selected
    )
    if upto is not None:
        query = query.where(member <= upto)  # a fan-out slice's end
    return query.order_by(member).limit(size)


def _members_page(
    members: TagMembers,
    after_id: int | ColumnElement[int],
    size: int | None,
    upto: int | ColumnElement[int] | None = None,
) -> Select[int]:
    """The next page of the members of these tags: each tag's next page, merged, each subscriber once.

    One ordered, bounded read per tag rather than `tag_id IN (…) ORDER BY subscriber_id`, which both
    databases answered by sorting every remaining member of the tags, on each page. (With the page
    read from subscribers and the tags as a subquery, SQLite walked the app's (app_id, id) index,
    which spares it a sort, probing every subscriber; PostgreSQL hashed the page's ids and scanned
    the table.)
    """
    if len(members.tag_ids) == 1:
        return _members_of(members, members.tag_ids[0], after_id, size, upto)
    if not members.tag_ids:
        return select(SubscriberTag.subscriber_id.label("id")).where(false())
    heads = [_members_of(members, tag_id, after_id, size, upto).subquery() for tag_id in members.tag_ids]
    merged = union(*(select(head.c.id) for head in heads)).subquery()  # UNION: each subscriber once
    return select(merged.c.id).order_by(merged.c.id).limit(size)


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


def _tagged(
    tag_id: int, subscriber_id: Any, after_id: int | ColumnElement[int] | None
) -> ColumnElement[bool]:
    held = aliased(SubscriberTag)  # its own name: also used inside a query over subscriber_tags
    found = exists().where(held.subscriber_id == subscriber_id, held.tag_id == tag_id)
    # The page's bound, repeated: PostgreSQL merged the tag's whole index from its first entry otherwise.
    return found if after_id is None else found.where(held.subscriber_id > after_id)


def segment_predicate(
    terms: Iterable[tuple[str, int]],
    subscriber_id: Any = Subscriber.id,
    after_id: int | ColumnElement[int] | None = None,
) -> ColumnElement[bool]:
    """Fold (association, tag_id) terms left to right, starting from the whole audience.

    The first term therefore applies to everyone: AND t -> t, AND_NOT t -> not t, OR t -> everyone,
    OR_NOT t -> everyone. Each later term combines with what the earlier ones selected.
    """
    selected: ColumnElement[bool] = true()
    for association, tag_id in terms:
        has = _tagged(tag_id, subscriber_id, after_id)
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


def _eligible(
    row: Any, app_id: int, platforms: tuple[str, ...], attributes: Sequence[dict[str, Any]] = ()
) -> ColumnElement[bool]:
    """An active subscriber of the app, on a platform Clarion delivers to, meeting the audience's
    attribute conditions (`row`: Subscriber or an alias)."""
    eligible = and_(row.app_id == app_id, row.active.is_(True), row.platform.in_(platforms))
    for condition in attributes:
        eligible = and_(eligible, _attribute(row.id, condition))
    return eligible


def _attribute(subscriber_id: Any, condition: dict[str, Any]) -> ColumnElement[bool]:
    """`attribute equals / in / exists`: one probe of subscriber_attributes' primary key
    (subscriber_id, key) per candidate, so a condition costs the audience's pages, never a scan of
    the attributes; the value is compared on the row found."""
    held = aliased(SubscriberAttribute)  # its own name: an audience may hold several conditions
    found = exists().where(held.subscriber_id == subscriber_id, held.key == condition["key"])
    values = [str(value) for value in condition.get("values", ())]
    if condition["op"] == "exists":
        return found
    return found.where(held.value.in_(values) if len(values) != 1 else held.value == values[0])


def _tagged_audience(
    app_id: int, audience: dict[str, Any], platforms: tuple[str, ...], tag_ids: Sequence[int]
) -> Recipients:
    """`tags` and `tags_segment` audiences: driven by their tags' members where the audience lies within
    them, else (a segment that may select subscribers holding none of its tags) the app in id order."""
    row = aliased(Subscriber)
    attributes = audience.get("attributes", ())
    eligible = _eligible(row, app_id, platforms, attributes)
    if audience["kind"] == "tags":
        return TagMembers(tuple(tag_ids), row, eligible)
    terms = [(t["association"], int(t["tag_id"])) for t in audience["terms"]]
    driver = segment_driver(terms)
    if driver is None:
        return and_(_eligible(Subscriber, app_id, platforms, attributes), segment_predicate(terms))
    return TagMembers(tuple(dict.fromkeys(driver)), row, eligible, tuple(terms))


# Audiences listed by value in campaign_targets, and the subscriber column each value names.
_LISTED_BY: dict[str, Any] = {"tokens": Subscriber.reg_id, "aliases": Subscriber.alias}


def recipients(
    app_id: int,
    campaign_id: int,
    audience: dict[str, Any],
    platforms: Iterable[str],
    tag_ids: Sequence[int] = (),
    values: Sequence[str] | None = None,
) -> Recipients:
    """Every active subscriber of the app, on a platform Clarion delivers to and the audience names
    (its `platforms`, when it names some), in the audience.

    `tag_ids`: for a `tags` audience, the ids `campaign_tags` gives (AudienceRepository.recipients).
    `values`: the tokens or aliases themselves, for an audience that is no campaign's (a dry run)."""
    kind, wanted = audience.get("kind", "all"), audience.get("platforms")
    platforms = tuple(p for p in platforms if wanted is None or p in wanted)
    attributes = audience.get("attributes", ())
    if kind in _LISTED_BY:
        eligible = _eligible(Subscriber, app_id, platforms, attributes)
        return _listed(campaign_id, _LISTED_BY[kind], eligible, values)
    if kind in ("tags", "tags_segment"):
        return _tagged_audience(app_id, audience, platforms, tag_ids)
    if kind == "follow_up":
        return and_(
            _eligible(Subscriber, app_id, platforms, attributes), _reached(int(audience["campaign_id"]))
        )
    return _eligible(Subscriber, app_id, platforms, attributes)


def _reached(campaign_id: int) -> ColumnElement[bool]:
    """Subscribers a campaign was sent to (a follow-up's audience): its ledger rows with status `sent`,
    read through the ledger's (campaign_id, subscriber_id) index."""
    reached = select(Delivery.subscriber_id).where(
        Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.SENT
    )
    return Subscriber.id.in_(reached.scalar_subquery())


def bound_page(condition: Recipients, size: int) -> Select[int]:
    """`page` with its cursor and end bound at execution (`page_after`, `page_upto`): one statement that
    serves every page of a fan-out step (delivery.repository.ReleasedPages)."""
    after = bindparam("page_after", type_=Integer)
    return page(condition, after, size, bindparam("page_upto", type_=Integer))


def page(
    condition: Recipients,
    after_id: int | ColumnElement[int],
    size: int,
    upto: int | ColumnElement[int] | None = None,
) -> Select[int]:
    """The next `size` recipient ids above `after_id` (and at most `upto`), in id order (a keyset
    page), as a query of one column, `id`: the fan-out inserts it into the ledger without the ids
    passing through Python."""
    if isinstance(condition, TagMembers):
        return _members_page(condition, after_id, size, upto)
    within = Subscriber.id > after_id if upto is None else Subscriber.id.between(after_id + 1, upto)
    return select(Subscriber.id).where(condition, within).order_by(Subscriber.id).limit(size)


def by_platform(condition: Recipients) -> Select[str, int]:
    """How many recipients there are on each platform (an audience's dry run)."""
    if isinstance(condition, TagMembers):
        ids = _members_page(condition, 0, None).subquery()
        joined = select(Subscriber.platform, func.count()).join(ids, Subscriber.id == ids.c.id)
        return joined.group_by(Subscriber.platform)
    return select(Subscriber.platform, func.count()).where(condition).group_by(Subscriber.platform)


def span(condition: Recipients) -> Select[int, int, int]:
    """How many recipients there are, and their lowest and highest ids: what a fan-out is cut by."""
    if isinstance(condition, TagMembers):
        ids = _members_page(condition, 0, None).subquery()
        return select(func.count(), func.min(ids.c.id), func.max(ids.c.id))
    return select(func.count(), func.min(Subscriber.id), func.max(Subscriber.id)).where(condition)
