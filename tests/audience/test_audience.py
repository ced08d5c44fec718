"""Audience resolution in SQL checked against a plain set model of the Gravitec rules, on both databases.

The model: tokens match regIds exactly, aliases match exactly (a missing alias matches nothing), tags
match case-insensitively (any one of them), and tags_segment folds its terms left to right starting
from the whole audience. Only active subscribers on a platform Clarion delivers to are recipients.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clarion.app_tenant import service as apps
from clarion.audience.repository import AudienceRepository
from clarion.campaign import service as campaigns
from clarion.campaign.schemas import (
    Association,
    AttributeCondition,
    AudienceKind,
    AudienceSpec,
    CampaignCreate,
    Content,
    SegmentTerm,
)
from clarion.db import Database, utcnow
from clarion.models import App, Campaign, Subscriber
from clarion.subscriber.repository import SubscriberRepository

# Small pages so that a handful of subscribers already spans several keyset pages.
CHUNK_SIZE = 3
WEB_ONLY = ("web",)
# Spellings of each tag that fold to the same name (str.casefold: "Straße" and "STRASSE" are one tag).
TAG_SPELLINGS: dict[str, tuple[str, ...]] = {
    "news": ("news", "News", "NEWS"),
    "sport": ("sport", "Sport", "SPORT"),
    "cars": ("cars", "Cars", "cARS"),
    "tech": ("tech", "TeCh"),
    "strasse": ("straße", "Straße", "STRASSE"),
    "vip": ("vip", "VIP"),
}
ALIASES = ("alice", "bob", "carol")
ASSOCIATIONS: tuple[Association, ...] = ("AND", "AND_NOT", "OR", "OR_NOT")
# tags_segment has the most rules, so it is drawn four times as often as each other kind
KINDS: tuple[AudienceKind, ...] = ("all", "tokens", "aliases", "tags", *(("tags_segment",) * 4))
# Token choices: an index into the example's subscribers, or one of these two.
FOREIGN_TOKEN = -1  # the first subscriber of the app created just before this one
UNKNOWN_TOKEN = 99  # nobody's regId


@dataclass(frozen=True)
class Sub:
    active: bool
    platform: str
    alias: str | None
    tags: tuple[str, ...]  # spellings as the SDK sent them


@dataclass(frozen=True)
class Aud:
    kind: AudienceKind
    tokens: tuple[int, ...] = ()
    values: tuple[str, ...] = ()  # aliases or tag spellings
    terms: tuple[SegmentTerm, ...] = ()  # names as tag spellings


def reg_id(app_id: int, index: int) -> str:
    return f"reg-{app_id}-{index}"


def folded(spellings: Sequence[str]) -> set[str]:
    return {name.casefold() for name in spellings}


def model(subs: Sequence[Sub], audience: Aud, platforms: Sequence[str]) -> set[int]:
    """The recipients' indexes in `subs`, by sets alone."""
    everyone = set(range(len(subs)))
    if audience.kind == "tokens":
        chosen = everyone & set(audience.tokens)
    elif audience.kind == "aliases":
        chosen = {i for i in everyone if subs[i].alias in audience.values}
    elif audience.kind == "tags":
        chosen = {i for i in everyone if folded(subs[i].tags) & folded(audience.values)}
    elif audience.kind == "tags_segment":
        chosen = set(everyone)
        for term in audience.terms:
            tagged = {i for i in everyone if term.name.casefold() in folded(subs[i].tags)}
            if term.association == "AND":
                chosen &= tagged
            elif term.association == "AND_NOT":
                chosen -= tagged
            elif term.association == "OR":
                chosen |= tagged
            else:
                chosen |= everyone - tagged
    else:
        chosen = everyone
    return {i for i in chosen if subs[i].active and subs[i].platform in platforms}


def spelling_of(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from(TAG_SPELLINGS[name])


@st.composite
def subscriber_strategy(draw: st.DrawFn) -> Sub:
    names = draw(st.lists(st.sampled_from(sorted(TAG_SPELLINGS)), max_size=4))
    return Sub(
        # mostly recipients, so that the audience rules, not these filters, decide most cases
        active=draw(st.sampled_from((True, True, True, False))),
        platform=draw(st.sampled_from(("web", "web", "web", "android"))),
        alias=draw(st.one_of(st.none(), st.sampled_from(ALIASES))),
        tags=tuple(draw(spelling_of(name)) for name in names),
    )


@st.composite
def audience_strategy(draw: st.DrawFn, count: int) -> Aud:
    kind = draw(st.sampled_from(KINDS))
    if kind == "tokens":
        choices = [FOREIGN_TOKEN, UNKNOWN_TOKEN, *range(count)]
        return Aud(kind, tokens=tuple(draw(st.lists(st.sampled_from(choices), min_size=1, max_size=5))))
    if kind == "aliases":
        aliases = st.sampled_from((*ALIASES, "nobody"))
        return Aud(kind, values=tuple(draw(st.lists(aliases, min_size=1, max_size=4))))
    if kind == "tags":
        spellings = st.sampled_from([s for group in TAG_SPELLINGS.values() for s in group] + ["unknown"])
        return Aud(kind, values=tuple(draw(st.lists(spellings, min_size=1, max_size=4))))
    if kind == "tags_segment":
        names = draw(st.lists(st.sampled_from(sorted(TAG_SPELLINGS)), min_size=1, max_size=6, unique=True))
        terms = tuple(SegmentTerm(draw(st.sampled_from(ASSOCIATIONS)), draw(spelling_of(n))) for n in names)
        return Aud(kind, terms=terms)
    return Aud(kind)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[Sub], list[Aud], tuple[str, ...]]:
    """One app's subscribers and a few campaigns' audiences over them."""
    subs = draw(st.lists(subscriber_strategy(), min_size=1, max_size=9))
    audience_list = draw(st.lists(audience_strategy(len(subs)), min_size=1, max_size=4))
    platforms = draw(st.sampled_from((WEB_ONLY, ("web", "android"))))
    return subs, audience_list, platforms


async def make_app(db: Database) -> int:
    async with db.session() as session:
        created = await apps.create(session, "audience test", plan="unlimited")
    return created.app_id


async def add_subscribers(db: Database, app_id: int, subs: Sequence[Sub]) -> list[int]:
    """Subscriber rows, and tags stored the way the subscriber API stores them; every tag exists."""
    ids: list[int] = []
    async with db.session() as session:
        repo = SubscriberRepository(session)
        for index, sub in enumerate(subs):
            address = f"https://push.example.net/{reg_id(app_id, index)}"
            now = utcnow()
            row = Subscriber(
                app_id=app_id,
                reg_id=reg_id(app_id, index),
                platform=sub.platform,
                address=address,
                address_hash=hashlib.sha256(address.encode()).hexdigest(),
                alias=sub.alias,
                active=sub.active,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            ids.append(row.id)
            for name in sub.tags:
                await repo.attach(row.id, (await repo.ensure_tag(app_id, name)).id)
        for name in TAG_SPELLINGS:
            await repo.ensure_tag(app_id, name)
    return ids


def spec_of(app_id: int, audience: Aud) -> AudienceSpec:
    if audience.kind == "tokens":
        tokens = tuple(
            reg_id(app_id - 1, 0) if t == FOREIGN_TOKEN else reg_id(app_id, t) for t in audience.tokens
        )
        return AudienceSpec(kind="tokens", values=tokens)
    return AudienceSpec(kind=audience.kind, values=audience.values, terms=audience.terms)


async def create_campaign(db: Database, app_id: int, audience: AudienceSpec) -> int:
    content = Content(message="Hello", title="Audience", redirect_url="https://example.com/")
    spec = CampaignCreate(content=content, audience=audience, send_at=None, ttl_s=60, display_time_s=10)
    async with db.session() as session:
        app = await session.get(App, app_id)
        assert app is not None
        return (await campaigns.create(session, app, spec)).id


async def collect(
    db: Database, campaign_id: int, platforms: Sequence[str], size: int = CHUNK_SIZE
) -> list[int]:
    """Page through the recipients as the fan-out does, checking every page on the way."""
    async with db.session() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        condition = await AudienceRepository(session).recipients(campaign, platforms)
    seen: list[int] = []
    after_id = 0
    while True:
        async with db.session() as session:
            page = await AudienceRepository(session).chunk(condition, after_id, size)
        assert len(page) <= size
        assert all(a < b for a, b in zip([after_id, *page], page, strict=False)), (after_id, page)
        seen.extend(page)
        if len(page) < size:
            return seen
        after_id = page[-1]


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=scenario())
async def test_resolution_matches_the_set_model(
    db: Database, case: tuple[list[Sub], list[Aud], tuple[str, ...]]
) -> None:
    subs, audience_list, platforms = case
    app_id = await make_app(db)
    ids = await add_subscribers(db, app_id, subs)
    for audience in audience_list:
        campaign_id = await create_campaign(db, app_id, spec_of(app_id, audience))

        seen = await collect(db, campaign_id, platforms)

        assert len(seen) == len(set(seen))
        assert set(seen) == {ids[i] for i in model(subs, audience, platforms)}, audience


TAGGED = [
    Sub(True, "web", None, ()),
    Sub(True, "web", None, ("t1",)),
    Sub(True, "web", None, ("T2",)),
    Sub(True, "web", None, ("t1", "t2")),
]


async def test_and_then_and_not_keeps_those_with_the_first_tag_only(db: Database) -> None:
    app_id = await make_app(db)
    _none, t1, _t2, _both = await add_subscribers(db, app_id, TAGGED)
    await add_subscribers(db, await make_app(db), TAGGED)  # another app's followers stay out
    terms = (SegmentTerm("AND", "T1"), SegmentTerm("AND_NOT", "t2"))
    campaign_id = await create_campaign(db, app_id, AudienceSpec(kind="tags_segment", terms=terms))

    assert await collect(db, campaign_id, WEB_ONLY) == [t1]


async def test_and_not_then_or_keeps_those_without_the_first_or_with_the_second(db: Database) -> None:
    app_id = await make_app(db)
    none, _t1, t2, both = await add_subscribers(db, app_id, TAGGED)
    await add_subscribers(db, await make_app(db), TAGGED)  # its untagged followers stay out too
    terms = (SegmentTerm("AND_NOT", "T1"), SegmentTerm("OR", "t2"))
    campaign_id = await create_campaign(db, app_id, AudienceSpec(kind="tags_segment", terms=terms))

    assert await collect(db, campaign_id, WEB_ONLY) == [none, t2, both]


async def test_a_chunk_never_holds_more_than_its_size(db: Database) -> None:
    app_id = await make_app(db)
    ids = await add_subscribers(db, app_id, [Sub(True, "web", "alice", ())] * 10)
    campaign_id = await create_campaign(db, app_id, AudienceSpec(kind="aliases", values=("alice",)))
    async with db.session() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        condition = await AudienceRepository(session).recipients(campaign, WEB_ONLY)
        first = await AudienceRepository(session).chunk(condition, 0, 4)
        rest = await AudienceRepository(session).chunk(condition, first[-1], 100)

    assert first == ids[:4]
    assert rest == ids[4:]
    assert await collect(db, campaign_id, WEB_ONLY, size=3) == ids


# Subscribers with attributes (plan, city) for the attribute conditions, each kind of audience.
PLANS = [("pro", "Paris"), ("team", "Rome"), ("free", "Rome"), (None, None)]


async def _with_plans(db: Database, app_id: int) -> list[int]:
    subs = [Sub(True, "web", "alice", ("t1",))] * len(PLANS)
    ids = await add_subscribers(db, app_id, subs)
    async with db.session() as session:
        repo = SubscriberRepository(session)
        for sid, (plan, city) in zip(ids, PLANS, strict=True):
            if plan is not None:
                await repo.change_attributes(sid, {"plan": plan, "city": city})
    return ids


@pytest.mark.parametrize(
    ("conditions", "chosen"),
    [
        ((AttributeCondition("plan", "equals", ("pro",)),), [0]),
        ((AttributeCondition("plan", "in", ("pro", "team", "gold")),), [0, 1]),
        ((AttributeCondition("plan", "exists"),), [0, 1, 2]),
        (
            (
                AttributeCondition("plan", "in", ("pro", "team")),
                AttributeCondition("city", "equals", ("Rome",)),
            ),
            [1],
        ),
        ((AttributeCondition("nothing", "exists"),), []),
    ],
)
@pytest.mark.parametrize("kind", ["all", "aliases", "tags", "tags_segment", "tokens"])
async def test_attribute_conditions_narrow_every_kind_of_audience(
    db: Database, kind: AudienceKind, conditions: tuple[AttributeCondition, ...], chosen: list[int]
) -> None:
    app_id = await make_app(db)
    ids = await _with_plans(db, app_id)
    await _with_plans(db, await make_app(db))  # another app's subscribers with the same attributes stay out
    audiences: dict[str, AudienceSpec] = {
        "all": AudienceSpec(),
        "aliases": AudienceSpec(kind="aliases", values=("alice",)),
        "tags": AudienceSpec(kind="tags", values=("T1",)),
        "tags_segment": AudienceSpec(kind="tags_segment", terms=(SegmentTerm("AND", "t1"),)),
        "tokens": AudienceSpec(kind="tokens", values=tuple(reg_id(app_id, i) for i in range(len(PLANS)))),
    }
    campaign_id = await create_campaign(db, app_id, replace(audiences[kind], attributes=conditions))

    assert await collect(db, campaign_id, WEB_ONLY, size=2) == [ids[i] for i in chosen]
