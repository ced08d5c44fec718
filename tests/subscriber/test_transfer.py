"""Subscriber import and export (subscriber.transfer) on SQLite and PostgreSQL: whole reports, what is
stored (read back through the export), idempotence, chunk and line boundaries, and apps kept apart."""

from __future__ import annotations

import csv
import gc
import io
import json
from datetime import datetime
from typing import Any

import pytest

from clarion import errors
from clarion.db import Database
from clarion.models import App
from clarion.subscriber import transfer
from clarion.subscriber.schemas import SubscriberFilter
from tests.app_tenant.factory import Tenant, new_app
from tests.subscriber.transfer_data import (
    NDJSON_FILE,
    NDJSON_REPORT,
    ONESIGNAL_CSV,
    ONESIGNAL_REPORT,
    auth,
    ndjson,
    p256dh,
    pieces,
    web,
)

PUSH_HOSTS = frozenset({"push.example.net"})


async def _app(db: Database, tenant: Tenant) -> App:
    async with db.session() as session:
        app = await session.get(App, tenant.app_id)
    assert app is not None
    return app


async def run_import(db: Database, tenant: Tenant, data: bytes, fmt: str = "ndjson") -> dict[str, Any]:
    app = await _app(db, tenant)
    return (await transfer.import_subscribers(db, app, pieces(data), fmt, PUSH_HOSTS)).as_dict()


async def export(db: Database, tenant: Tenant, fmt: str = "ndjson", **wanted: Any) -> bytes:
    app = await _app(db, tenant)
    out = [piece async for piece in transfer.export_subscribers(db, app, fmt, SubscriberFilter(**wanted))]
    return b"".join(out)


async def exported(db: Database, tenant: Tenant, **wanted: Any) -> list[dict[str, Any]]:
    """The NDJSON export, each created_at checked to be a time and then left out."""
    records = [json.loads(line) for line in (await export(db, tenant, **wanted)).splitlines()]
    for record in records:
        assert datetime.fromisoformat(record.pop("created_at")).tzinfo is not None
    return records


def stored_web(n: int, tags: list[str], **names: Any) -> dict[str, Any]:
    record = web(n)
    return {
        "platform": "web",
        **record,
        "token": None,
        "tags": tags,
        "alias": None,
        "user_id": None,
        "external_user_id": None,
        "language": None,
        "attributes": {},
        "active": True,
        **names,
    }


def stored_native(platform: str, token: str, tags: list[str], **names: Any) -> dict[str, Any]:
    empty = {"endpoint": None, "p256dh": None, "auth": None}
    ids = {
        "alias": None,
        "user_id": None,
        "external_user_id": None,
        "language": None,
        "attributes": {},
        **names,
    }
    return {"platform": platform, **empty, "token": token, "tags": tags, **ids, "active": True}


NDJSON_STORED = [
    stored_web(1, ["news", "Sport"], alias="bob", user_id="u-1"),
    stored_native("android", "fcm-token-1", ["cars", "news"], external_user_id="ext-1"),
    stored_web(3, ["vip"]),
]


async def test_ndjson_import_reports_every_line_and_stores_the_valid_ones(db: Database) -> None:
    tenant = await new_app(db)
    assert await run_import(db, tenant, NDJSON_FILE) == NDJSON_REPORT
    assert await exported(db, tenant) == NDJSON_STORED


async def test_importing_again_changes_nothing(db: Database) -> None:
    tenant = await new_app(db)
    await run_import(db, tenant, NDJSON_FILE)
    before = await export(db, tenant)
    again = {**NDJSON_REPORT, "created": 0, "existing": 4}
    assert await run_import(db, tenant, NDJSON_FILE) == again
    assert await export(db, tenant) == before
    # An export read back in is the same subscribers again.
    assert await run_import(db, tenant, before) == {**_clean(3), "existing": 3}
    assert await export(db, tenant) == before


def _clean(lines: int) -> dict[str, Any]:
    return {"lines": lines, "created": 0, "existing": 0, "refused": 0, "refusals": [], "refusals_left_off": 0}


async def test_a_known_address_keeps_its_keys_and_gains_tags_and_names(db: Database) -> None:
    tenant = await new_app(db)
    await run_import(db, tenant, ndjson(web(1, tags=["a"], alias="old")))
    changed = web(1, tags=["b"], alias="new", user_id="u") | {"p256dh": p256dh(50), "auth": auth(50)}
    assert await run_import(db, tenant, ndjson(changed)) == {**_clean(1), "existing": 1}
    assert await exported(db, tenant) == [stored_web(1, ["a", "b"], alias="new", user_id="u")]


async def test_onesignal_csv_export(db: Database) -> None:
    tenant = await new_app(db)
    assert await run_import(db, tenant, ONESIGNAL_CSV, "csv") == ONESIGNAL_REPORT
    assert await exported(db, tenant) == [
        stored_web(10, ["news"], external_user_id="user-10", language="en"),
        stored_native("ios", "apns-device-token", [], language="fr"),
    ]


async def test_csv_export_reads_back(db: Database) -> None:
    tenant = await new_app(db)
    await run_import(db, tenant, NDJSON_FILE)
    text = (await export(db, tenant, "csv")).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row.pop("created_at") != "" for row in rows] == [True, True, True]
    assert rows == [
        {**_csv(stored_web(1, [], alias="bob", user_id="u-1")), "tags": '["news", "Sport"]'},
        {
            **_csv(stored_native("android", "fcm-token-1", [], external_user_id="ext-1")),
            "tags": '["cars", "news"]',
        },
        {**_csv(stored_web(3, [])), "tags": '["vip"]'},
    ]
    other = await new_app(db, name="other")
    assert await run_import(db, other, text.encode(), "csv") == {**_clean(3), "created": 3}
    assert await exported(db, other) == NDJSON_STORED


def _csv(record: dict[str, Any]) -> dict[str, str]:
    return {
        name: ("true" if value is True else "" if value in (None, [], {}) else str(value))
        for name, value in record.items()
    }


async def test_attributes_and_language_are_imported_checked_and_exported(db: Database) -> None:
    tenant = await new_app(db)
    data = ndjson(
        web(1, language="pt-BR", attributes={"first_name": "Ana", "plan": "pro"}),
        web(2, attributes={"first name": "x"}),
        web(3, language="portuguese"),
        web(4, attributes={"plan": None}),
    )
    report = await run_import(db, tenant, data)
    again = await run_import(db, tenant, ndjson(web(1, attributes={"plan": "team", "city": "Rio"})))
    csv_text = (await export(db, tenant, "csv")).decode()
    assert report == {
        **_clean(4),
        "created": 2,
        "refused": 2,
        "refusals": [
            {
                "line": 2,
                "field": "attributes.first name",
                "reason": "attributes.first name: a key is 1-64 letters, digits or '_', "
                "not starting with a digit",
            },
            {
                "line": 3,
                "field": "language",
                "reason": "language must be a BCP 47 language tag such as 'en' or 'pt-BR' "
                "(at most 16 characters)",
            },
        ],
    }
    assert again == {**_clean(1), "existing": 1}
    assert await exported(db, tenant) == [
        stored_web(1, [], language="pt-BR", attributes={"city": "Rio", "first_name": "Ana", "plan": "team"}),
        stored_web(4, []),
    ]
    other = await new_app(db, name="other")
    assert await run_import(db, other, csv_text.encode(), "csv") == {**_clean(2), "created": 2}
    assert await exported(db, other) == await exported(db, tenant)


async def test_lines_across_chunks_and_pieces(db: Database) -> None:
    tenant = await new_app(db)
    count = transfer.IMPORT_CHUNK_LINES * 2 + 7
    lines = [json.dumps(stored_native("android", f"token-{n}", [f"t{n % 3}"])).encode() for n in range(count)]
    overlong = json.dumps({"platform": "ios", "token": "x" * transfer.MAX_LINE_BYTES}).encode()
    data = b"\n".join([*lines[:600], overlong, *lines[600:], b"\xff\xfe"])  # no newline at the end
    report = await run_import(db, tenant, data)
    too_long = f"a line is at most {transfer.MAX_LINE_BYTES} bytes"
    assert report == {
        **_clean(count + 2),
        "created": count,
        "refused": 2,
        "refusals": [
            {"line": 601, "field": "line", "reason": too_long},
            {"line": count + 2, "field": "line", "reason": "is not UTF-8"},
        ],
    }
    assert len(await exported(db, tenant, tag="T1")) == len(range(1, count, 3))


async def test_a_chunk_leaves_nothing_behind_under_the_servers_collector(db: Database) -> None:
    """`clarion serve` runs the cyclic collector rarely (cli.tune_runtime); each chunk's statements
    hold its addresses' hashes in reference cycles. Were they left to that collector, they would pile
    up with the file's size (bench/README.md: the server's peak grew ~0.2 KiB a line)."""
    tenant = await new_app(db)
    app = await _app(db, tenant)
    chunks = 8
    lines = (
        json.dumps(stored_native("android", f"token-{n}", []))
        for n in range(chunks * transfer.IMPORT_CHUNK_LINES)
    )
    data = "\n".join(lines).encode()
    alive: list[int] = []

    def hash_lists(report: transfer.ImportReport) -> None:
        held = [
            found
            for found in gc.get_objects()
            if isinstance(found, list)
            and len(found) == transfer.IMPORT_CHUNK_LINES
            and all(isinstance(item, str) and len(item) == 64 for item in found)
        ]
        alive.append(len(held))

    threshold = gc.get_threshold()
    gc.set_threshold(50_000, 50, 100)  # cli.tune_runtime's
    try:
        source = pieces(data, 64 * 1024)
        report = await transfer.import_subscribers(db, app, source, "ndjson", PUSH_HOSTS, hash_lists)
    finally:
        gc.set_threshold(*threshold)
    assert report.created == chunks * transfer.IMPORT_CHUNK_LINES
    assert len(alive) == chunks + 1
    # What is alive after the first chunk (the statements SQLAlchemy's cache keeps, others' from earlier
    # tests) stays; nothing more per chunk (without the collection: 2 more after each).
    assert max(alive) <= alive[0], alive


async def test_refusals_past_the_reported_ones_are_counted(db: Database) -> None:
    tenant = await new_app(db)
    bad = transfer.MAX_REPORTED_REFUSALS + 5
    report = await run_import(db, tenant, b"[]\n" * bad)
    assert (report["refused"], len(report["refusals"]), report["refusals_left_off"]) == (bad, 1000, 5)


async def test_tags_per_subscriber_are_bounded_as_on_registration(db: Database) -> None:
    tenant = await new_app(db)
    full = [f"t{n}" for n in range(100)]
    await run_import(db, tenant, ndjson(web(1, tags=full)))
    report = await run_import(db, tenant, ndjson(web(1, tags=["one-more"]), web(2, tags=[*full, "x"])))
    limit = "a subscriber holds at most 100 tags"
    assert report == {
        **_clean(2),
        "refused": 2,
        "refusals": [
            {"line": 1, "field": "tags", "reason": limit},
            {"line": 2, "field": "tags", "reason": limit},
        ],
    }


async def test_a_csv_without_an_address_column_is_refused_whole(db: Database) -> None:
    tenant = await new_app(db)
    with pytest.raises(errors.InvalidField) as refused:
        await run_import(db, tenant, b"name,tags\nbob,x\n", "csv")
    assert refused.value.as_json() == {
        "error": "invalid_field",
        "message": "the CSV header must name an endpoint, token or identifier column",
        "field": "header",
    }
    with pytest.raises(errors.InvalidField) as wrong:
        await run_import(db, tenant, b"", "xml")
    assert (wrong.value.field, wrong.value.message) == ("format", "format must be one of ndjson, csv")


async def test_export_filters_and_apps_apart(db: Database) -> None:
    tenant, other = await new_app(db), await new_app(db, name="other")
    await run_import(db, tenant, NDJSON_FILE)
    await run_import(db, other, ndjson(web(1, tags=["news"])))
    assert await exported(db, tenant, platform="android") == [NDJSON_STORED[1]]
    assert await exported(db, tenant, tag="NEWS") == NDJSON_STORED[:2]
    assert await exported(db, tenant, alias="bob") == NDJSON_STORED[:1]
    assert await exported(db, tenant, active=False) == []
    assert await exported(db, other) == [stored_web(1, ["news"])]
    header = ",".join(transfer.EXPORT_FIELDS).encode() + b"\n"
    assert await export(db, other, "csv", tag="vip") == header
