"""All SQL about subscribers, their tags and engagement events."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, delete, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.db import epoch_bucket, insert_ignore
from clarion.models import Campaign, Delivery, Event, Subscriber, SubscriberAttribute, SubscriberTag, Tag
from clarion.subscriber.schemas import SubscriberFilter
from clarion.validation import storable


class Known(NamedTuple):
    """A subscriber an import finds at its address."""

    id: int
    alias: str | None
    user_id: str | None
    external_user_id: str | None
    timezone: str | None
    language: str | None


def _tagged(app_id: int, name: str) -> Select[int]:
    """The ids of the app's subscribers holding the tag `name` (case-insensitive)."""
    return (
        select(SubscriberTag.subscriber_id)
        .join(Tag, Tag.id == SubscriberTag.tag_id)
        .where(Tag.app_id == app_id, Tag.name_folded == name.casefold())
    )


# A registration starts the device's record afresh: no failures counted, no hygiene verdict.
_FRESH: dict[str, object] = {"failure_streak": 0, "deactivated_reason": None}


class SubscriberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def active_counts(self) -> dict[int, int]:
        """Active subscribers of each app that has any, by app id."""
        query = select(Subscriber.app_id, func.count()).where(Subscriber.active.is_(True))
        rows = (await self.session.execute(query.group_by(Subscriber.app_id))).all()
        return {int(app_id): int(n) for app_id, n in rows}

    async def platform_counts(self, app_id: int) -> dict[tuple[str, bool], int]:
        """The app's subscribers by (platform, active)."""
        query = (
            select(Subscriber.platform, Subscriber.active, func.count())
            .where(Subscriber.app_id == app_id)
            .group_by(Subscriber.platform, Subscriber.active)
        )
        return {
            (platform, bool(active)): int(n)
            for platform, active, n in (await self.session.execute(query)).all()
        }

    async def search(self, app_id: int, text: str, limit: int) -> list[Subscriber]:
        """The app's newest subscribers whose regId or alias is `text`, or who hold the tag `text`
        (case-insensitive); every subscriber, newest first, for an empty `text`."""
        query = select(Subscriber).where(Subscriber.app_id == app_id)
        if text:
            if not storable(text):
                return []
            query = query.where(
                (Subscriber.reg_id == text)
                | (Subscriber.alias == text)
                | Subscriber.id.in_(_tagged(app_id, text))
            )
        query = query.order_by(Subscriber.id.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def by_address(self, app_id: int, address_hash: str) -> Subscriber | None:
        query = select(Subscriber).where(Subscriber.app_id == app_id, Subscriber.address_hash == address_hash)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def by_reg_id(self, app_id: int, reg_id: str) -> Subscriber | None:
        if not storable(reg_id):  # no stored regId holds such text, and PostgreSQL refuses to compare it
            return None
        query = select(Subscriber).where(Subscriber.app_id == app_id, Subscriber.reg_id == reg_id)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def insert_if_absent(self, subscriber: Subscriber) -> bool:
        row = {c.key: getattr(subscriber, c.key) for c in Subscriber.__table__.columns if c.key != "id"}
        row["failure_streak"] = row["failure_streak"] or 0  # an unsaved object holds None, not the default
        return await insert_ignore(self.session, Subscriber.__table__, [row]) == 1

    async def reactivate(
        self,
        subscriber: Subscriber,
        now: datetime,
        keys: tuple[str, str] | None,
        user_id: str | None,
        external_user_id: str | None,
        vapid_key: tuple[int | None] | None = None,
    ) -> None:
        """A registration again: active from now, with the keys (p256dh, auth), the ids and the VAPID key
        id (a 1-tuple) given (None: unchanged)."""
        values: dict[str, object] = {"active": True, "updated_at": now, "registered_at": now, **_FRESH}
        if vapid_key is not None:
            values["vapid_key_id"] = vapid_key[0]
        if keys is not None:
            values["p256dh"], values["auth"] = keys
        if user_id is not None:
            values["user_id"] = user_id
        if external_user_id is not None:
            values["external_user_id"] = external_user_id
        await self._write(subscriber, values)

    async def set_timezone(self, subscriber: Subscriber, timezone: str, now: datetime) -> None:
        """The device's IANA time zone (its local-time campaigns follow it)."""
        await self._write(subscriber, {"timezone": timezone, "updated_at": now})

    async def set_language(self, subscriber: Subscriber, language: str) -> None:
        await self._write(subscriber, {"language": language})

    async def unsubscribe(self, subscriber: Subscriber, now: datetime) -> None:
        await self._write(subscriber, {"active": False, "updated_at": now})

    async def name(self, subscriber: Subscriber, alias: str, now: datetime) -> None:
        await self._write(subscriber, {"alias": alias, "updated_at": now})

    async def move_address(
        self,
        subscriber: Subscriber,
        address: str,
        address_hash: str,
        keys: tuple[str, str],
        now: datetime,
        vapid_key_id: int | None = None,
    ) -> bool:
        """Move the subscriber onto a new address and keys, active from now; False (and nothing written)
        when another subscriber of the app holds the address (the caller then ends the transaction with an
        error: on PostgreSQL the refused statement has aborted it)."""
        values = {
            "address": address,
            "address_hash": address_hash,
            "p256dh": keys[0],
            "auth": keys[1],
            "active": True,
            "updated_at": now,
            "registered_at": now,
            "vapid_key_id": vapid_key_id,
            **_FRESH,
        }
        try:
            await self._write(subscriber, values)
        except IntegrityError:
            return False
        return True

    async def _write(self, subscriber: Subscriber, values: dict[str, object]) -> None:
        """One UPDATE of the subscriber's row; the loaded `subscriber` shows the new values too
        (synchronize_session's default), so a service never assigns a column itself."""
        await self.session.execute(update(Subscriber).where(Subscriber.id == subscriber.id).values(**values))

    async def tag_by_name(self, app_id: int, name: str) -> Tag | None:
        if not storable(name):
            return None
        query = select(Tag).where(Tag.app_id == app_id, Tag.name_folded == name.casefold())
        return (await self.session.execute(query)).scalar_one_or_none()

    async def ensure_tag(self, app_id: int, name: str) -> Tag:
        row = {"app_id": app_id, "name": name, "name_folded": name.casefold()}
        await insert_ignore(self.session, Tag.__table__, [row])
        tag = await self.tag_by_name(app_id, name)
        assert tag is not None, "the tag was just inserted or already there"
        return tag

    async def has_tag(self, subscriber_id: int, tag_id: int) -> bool:
        query = select(SubscriberTag.tag_id).where(
            SubscriberTag.subscriber_id == subscriber_id, SubscriberTag.tag_id == tag_id
        )
        return (await self.session.execute(query)).first() is not None

    async def attach(self, subscriber_id: int, tag_id: int) -> None:
        row = {"subscriber_id": subscriber_id, "tag_id": tag_id}
        await insert_ignore(self.session, SubscriberTag.__table__, [row])

    async def detach(self, subscriber_id: int, tag_id: int) -> None:
        await self.session.execute(
            delete(SubscriberTag).where(
                SubscriberTag.subscriber_id == subscriber_id, SubscriberTag.tag_id == tag_id
            )
        )

    async def detach_all(self, subscriber_id: int) -> None:
        await self.session.execute(delete(SubscriberTag).where(SubscriberTag.subscriber_id == subscriber_id))

    async def tag_names(self, subscriber_id: int) -> list[str]:
        query = (
            select(Tag.name)
            .join(SubscriberTag, SubscriberTag.tag_id == Tag.id)
            .where(SubscriberTag.subscriber_id == subscriber_id)
            .order_by(Tag.name_folded)
        )
        return list((await self.session.execute(query)).scalars())

    async def tag_count(self, subscriber_id: int) -> int:
        query = select(func.count()).where(SubscriberTag.subscriber_id == subscriber_id)
        return int((await self.session.execute(query)).scalar_one())

    async def attributes(self, subscriber_id: int) -> dict[str, str]:
        query = (
            select(SubscriberAttribute.key, SubscriberAttribute.value)
            .where(SubscriberAttribute.subscriber_id == subscriber_id)
            .order_by(SubscriberAttribute.key)
        )
        return {key: value for key, value in (await self.session.execute(query)).all()}

    async def attributes_of(self, subscriber_ids: Collection[int]) -> dict[int, dict[str, str]]:
        """Many subscribers' attributes (an export's page); each id present, {} for none."""
        found: dict[int, dict[str, str]] = {sid: {} for sid in subscriber_ids}
        if not found:
            return found
        query = select(
            SubscriberAttribute.subscriber_id, SubscriberAttribute.key, SubscriberAttribute.value
        ).where(SubscriberAttribute.subscriber_id.in_(list(found)))
        for sid, key, value in (await self.session.execute(query)).all():
            found[int(sid)][key] = value
        return found

    async def attribute_keys_of(self, subscriber_ids: Collection[int]) -> dict[int, set[str]]:
        """The keys each subscriber holds (an import's limit check); each id present."""
        return {sid: set(held) for sid, held in (await self.attributes_of(subscriber_ids)).items()}

    async def set_attributes_many(self, values: dict[tuple[int, str], str]) -> None:
        """Set many subscribers' attributes (an import's chunk): the rows of those keys deleted, then
        inserted with the new values, one statement each."""
        if not values:
            return
        pairs = list(values)
        held = tuple_(SubscriberAttribute.subscriber_id, SubscriberAttribute.key)
        await self.session.execute(delete(SubscriberAttribute).where(held.in_(pairs)))
        rows = [{"subscriber_id": sid, "key": key, "value": value} for (sid, key), value in values.items()]
        await self.session.execute(insert(SubscriberAttribute), rows)

    async def change_attributes(self, subscriber_id: int, changes: dict[str, str | None]) -> None:
        """Set (a string) or remove (None) each key: the changed keys' rows deleted, the set ones
        inserted again, the same two statements on both databases."""
        if not changes:
            return
        owned = SubscriberAttribute.subscriber_id == subscriber_id
        await self.session.execute(
            delete(SubscriberAttribute).where(owned, SubscriberAttribute.key.in_(list(changes)))
        )
        rows = [
            {"subscriber_id": subscriber_id, "key": key, "value": value}
            for key, value in changes.items()
            if value is not None
        ]
        if rows:
            await self.session.execute(insert(SubscriberAttribute), rows)

    async def was_sent(self, campaign_id: int, subscriber_id: int) -> bool:
        """Whether the campaign had this subscriber among its recipients: a row in its delivery ledger
        (the unique (campaign_id, subscriber_id) index answers it)."""
        query = select(Delivery.id).where(
            Delivery.campaign_id == campaign_id, Delivery.subscriber_id == subscriber_id
        )
        return (await self.session.execute(query)).first() is not None

    async def add_event(self, campaign_id: int, subscriber_id: int, kind: str, at: datetime) -> bool:
        """False when it was counted already."""
        row = {"campaign_id": campaign_id, "subscriber_id": subscriber_id, "type": kind, "created_at": at}
        return await insert_ignore(self.session, Event.__table__, [row]) == 1

    async def deactivate(self, subscriber_ids: Sequence[int], now: datetime) -> None:
        """Their addresses are gone (the push service said so): no campaign reaches them any more."""
        if not subscriber_ids:
            return
        await self.session.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(subscriber_ids))
            .values(active=False, updated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def note_reach(self, reached: Sequence[int], unreached: Sequence[int]) -> None:
        """One more campaign in a row that could not reach `unreached`; `reached` start again at 0."""
        if unreached:
            await self.session.execute(
                update(Subscriber)
                .where(Subscriber.id.in_(unreached))
                .values(failure_streak=Subscriber.failure_streak + 1)
                .execution_options(synchronize_session=False)
            )
        if reached:
            await self.session.execute(
                update(Subscriber)
                .where(Subscriber.id.in_(reached), Subscriber.failure_streak > 0)
                .values(failure_streak=0)
                .execution_options(synchronize_session=False)
            )

    async def mark_vapid_key(self, app_id: int, key_id: int) -> None:
        """The app's web subscribers on its current VAPID key were made with `key_id`, just retired."""
        await self.session.execute(
            update(Subscriber)
            .where(
                Subscriber.app_id == app_id, Subscriber.platform == "web", Subscriber.vapid_key_id.is_(None)
            )
            .values(vapid_key_id=key_id)
            .execution_options(synchronize_session=False)
        )

    async def failing_streaks(self, at_least: int, limit: int) -> list[int]:
        """Active subscribers that failed `at_least` campaigns in a row (the hygiene job's first rule)."""
        query = select(Subscriber.id).where(
            Subscriber.active.is_(True), Subscriber.failure_streak >= at_least
        )
        return list((await self.session.execute(query.order_by(Subscriber.id).limit(limit))).scalars())

    async def inactive_since(self, platform: str, before: datetime, limit: int) -> list[int]:
        """Active subscribers of `platform` last registered before `before` (the second rule)."""
        seen = func.coalesce(Subscriber.registered_at, Subscriber.created_at)
        query = select(Subscriber.id).where(
            Subscriber.active.is_(True), Subscriber.platform == platform, seen < before
        )
        return list((await self.session.execute(query.order_by(Subscriber.id).limit(limit))).scalars())

    async def owners(self, subscriber_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
        """Each subscriber's app and platform (what its events name)."""
        if not subscriber_ids:
            return {}
        query = select(Subscriber.id, Subscriber.app_id, Subscriber.platform).where(
            Subscriber.id.in_(subscriber_ids)
        )
        return {
            int(i): (int(app), str(platform))
            for i, app, platform in (await self.session.execute(query)).all()
        }

    async def retire(self, subscriber_ids: Sequence[int], reason: str, now: datetime) -> list[int]:
        """Deactivate these subscribers (those still active) for the hygiene job's `reason`; returns the
        ones it deactivated."""
        if not subscriber_ids:
            return []
        found = select(Subscriber.id).where(Subscriber.id.in_(subscriber_ids), Subscriber.active.is_(True))
        ids = list((await self.session.execute(found)).scalars())
        if ids:
            await self.session.execute(
                update(Subscriber)
                .where(Subscriber.id.in_(ids))
                .values(active=False, deactivated_reason=reason, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        return ids

    async def hygiene_counts(self, app_id: int) -> dict[str, int]:
        """The app's subscribers the hygiene job deactivated, by reason, and the active ones that have
        failed at least one campaign in a row (`failing`)."""
        query = (
            select(Subscriber.deactivated_reason, func.count())
            .where(Subscriber.app_id == app_id, Subscriber.deactivated_reason.is_not(None))
            .group_by(Subscriber.deactivated_reason)
        )
        counts = {str(reason): int(count) for reason, count in (await self.session.execute(query)).all()}
        failing = select(func.count()).where(
            Subscriber.app_id == app_id, Subscriber.active.is_(True), Subscriber.failure_streak > 0
        )
        counts["failing"] = int((await self.session.execute(failing)).scalar_one())
        return counts

    async def known_addresses(self, app_id: int, hashes: Collection[str]) -> dict[str, Known]:
        """The app's subscribers at these address hashes, by hash (only what an import compares)."""
        if not hashes:
            return {}
        query = select(
            Subscriber.address_hash,
            Subscriber.id,
            Subscriber.alias,
            Subscriber.user_id,
            Subscriber.external_user_id,
            Subscriber.timezone,
            Subscriber.language,
        ).where(Subscriber.app_id == app_id, Subscriber.address_hash.in_(hashes))
        return {row[0]: Known(*row[1:]) for row in (await self.session.execute(query)).all()}

    async def insert_many(self, rows: list[dict[str, Any]]) -> int:
        """New subscribers; a row whose address the app holds already is skipped. How many were added."""
        return await insert_ignore(self.session, Subscriber.__table__, rows)

    async def set_names(self, subscriber_id: int, values: dict[str, str], now: datetime) -> None:
        """Alias, user_id, external_user_id or timezone of one subscriber."""
        query = update(Subscriber).where(Subscriber.id == subscriber_id).values(**values, updated_at=now)
        await self.session.execute(query.execution_options(synchronize_session=False))

    async def ensure_tags(self, app_id: int, names: Collection[str]) -> dict[str, int]:
        """The app's tags of these names, created where missing: tag id by case-folded name (the first
        spelling seen is kept)."""
        rows = {
            name.casefold(): {"app_id": app_id, "name": name, "name_folded": name.casefold()}
            for name in names
        }
        if not rows:
            return {}
        await insert_ignore(self.session, Tag.__table__, list(rows.values()))
        query = select(Tag.name_folded, Tag.id).where(Tag.app_id == app_id, Tag.name_folded.in_(rows))
        return {folded: tag_id for folded, tag_id in (await self.session.execute(query)).all()}

    async def tag_ids_of(self, subscriber_ids: Collection[int]) -> dict[int, set[int]]:
        found: dict[int, set[int]] = {subscriber_id: set() for subscriber_id in subscriber_ids}
        if not subscriber_ids:
            return found
        query = select(SubscriberTag.subscriber_id, SubscriberTag.tag_id).where(
            SubscriberTag.subscriber_id.in_(subscriber_ids)
        )
        for subscriber_id, tag_id in (await self.session.execute(query)).all():
            found[subscriber_id].add(tag_id)
        return found

    async def attach_many(self, pairs: Collection[tuple[int, int]]) -> None:
        """(subscriber id, tag id) pairs; one already there is skipped."""
        rows = [{"subscriber_id": subscriber_id, "tag_id": tag_id} for subscriber_id, tag_id in pairs]
        await insert_ignore(self.session, SubscriberTag.__table__, rows)

    async def tag_names_of(self, subscriber_ids: Collection[int]) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {subscriber_id: [] for subscriber_id in subscriber_ids}
        if not subscriber_ids:
            return found
        query = (
            select(SubscriberTag.subscriber_id, Tag.name)
            .join(Tag, Tag.id == SubscriberTag.tag_id)
            .where(SubscriberTag.subscriber_id.in_(subscriber_ids))
            .order_by(Tag.name_folded)
        )
        for subscriber_id, name in (await self.session.execute(query)).all():
            found[subscriber_id].append(name)
        return found

    async def page(
        self, app_id: int, wanted: SubscriberFilter, after_id: int, limit: int
    ) -> list[Subscriber]:
        """The app's subscribers matching `wanted` with ids above `after_id`, oldest first (keyset)."""
        query = (
            self._filtered(app_id, wanted)
            .where(Subscriber.id > after_id)
            .order_by(Subscriber.id)
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())

    def _filtered(self, app_id: int, wanted: SubscriberFilter) -> Select[Subscriber]:
        query = select(Subscriber).where(Subscriber.app_id == app_id)
        if wanted.platform is not None:
            query = query.where(Subscriber.platform == wanted.platform)
        if wanted.active is not None:
            query = query.where(Subscriber.active == wanted.active)
        if wanted.alias is not None:
            query = query.where(Subscriber.alias == wanted.alias)
        if wanted.tag is not None:
            query = query.where(Subscriber.id.in_(_tagged(app_id, wanted.tag)))
        seen = func.coalesce(Subscriber.registered_at, Subscriber.created_at)
        for column, low, high in (
            (Subscriber.created_at, wanted.created_from, wanted.created_to),
            (seen, wanted.seen_from, wanted.seen_to),
        ):
            if low is not None:
                query = query.where(column >= low)
            if high is not None:
                query = query.where(column < high)
        return query

    async def growth(self, app_id: int, since: datetime, bucket_s: int) -> list[tuple[int, int]]:
        """(bucket start as UNIX seconds, subscribers created in it) of the app since `since`."""
        bucket = epoch_bucket(self.session, Subscriber.created_at, bucket_s).label("bucket")
        query = (
            select(bucket, func.count())
            .where(Subscriber.app_id == app_id, Subscriber.created_at >= since)
            .group_by(bucket)
        )
        return [(int(start), int(n)) for start, n in (await self.session.execute(query)).all()]

    async def received(
        self, app_id: int, subscriber_id: int, campaigns: int
    ) -> list[tuple[int, dict[str, Any], str, datetime, bool]]:
        """(campaign id, payload, outcome, when, clicked) of the app's newest `campaigns` campaigns that
        the subscriber was a recipient of, newest first. Each is looked up by the ledger's
        (campaign_id, subscriber_id) key: the ledger has no index by subscriber alone."""
        newest = (
            select(Campaign.id)
            .where(Campaign.app_id == app_id)
            .order_by(Campaign.created_at.desc(), Campaign.id.desc())
            .limit(campaigns)
        )
        ids = list((await self.session.execute(newest)).scalars())
        if not ids:
            return []
        clicked = (
            select(Event.campaign_id)
            .where(
                Event.campaign_id == Delivery.campaign_id,
                Event.subscriber_id == subscriber_id,
                Event.type == "clicked",
            )
            .exists()
        )
        query = (
            select(Delivery.campaign_id, Campaign.payload, Delivery.status, Delivery.updated_at, clicked)
            .join(Campaign, Campaign.id == Delivery.campaign_id)
            .where(Delivery.campaign_id.in_(ids), Delivery.subscriber_id == subscriber_id)
            .order_by(Campaign.created_at.desc(), Campaign.id.desc())
        )
        return [
            (int(campaign_id), dict(payload or {}), str(status), updated_at, bool(was_clicked))
            for campaign_id, payload, status, updated_at, was_clicked in (
                await self.session.execute(query)
            ).all()
        ]

    async def delete_one(self, subscriber: Subscriber) -> None:
        """The subscriber with its tags, ledger rows and events (the foreign keys cascade)."""
        await self.session.execute(delete(Subscriber).where(Subscriber.id == subscriber.id))
