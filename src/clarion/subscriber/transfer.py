"""Subscribers in bulk: import from another vendor or an older system, export as NDJSON or CSV.

Both stream. An import reads one line at a time and stores IMPORT_CHUNK_LINES lines per transaction
(an interrupted import is simply run again: it is idempotent on the address); an export reads pages of
EXPORT_PAGE_ROWS. Memory stays bounded whatever the file's size. Every line is checked by the rules
of registration (subscriber.service), never by rules of its own (docs/subscribers-import.md).
"""

from __future__ import annotations

import csv
import gc
import io
import json
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from clarion import errors, validation
from clarion.attributes import MAX_ATTRIBUTES, check_changes, check_language, too_many
from clarion.config import Settings
from clarion.db import Database, as_utc, utcnow
from clarion.models import App, Subscriber
from clarion.subscriber import service
from clarion.subscriber.repository import Known, SubscriberRepository
from clarion.subscriber.schemas import SubscriberCreate, SubscriberFilter
from clarion.validation import check_storable, validate

FORMATS = ("ndjson", "csv")
MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
# Lines stored per transaction: a few round trips per chunk, and a lock held briefly.
IMPORT_CHUNK_LINES = 500
# 64 KiB: ten times the longest line a valid subscriber can make (a 4 KiB token, 255-symbol names, tags).
MAX_LINE_BYTES = 64 * 1024
# Refusals the report details (each with its line and reason); past these it only counts them.
MAX_REPORTED_REFUSALS = 1000
EXPORT_PAGE_ROWS = 1000
EXPORT_FIELDS = (
    "platform",
    "endpoint",
    "p256dh",
    "auth",
    "token",
    "tags",
    "alias",
    "user_id",
    "external_user_id",
    "language",
    "attributes",
    "active",
    "created_at",
)
# OneSignal's export: its column names, and its device_type codes for the platforms Clarion serves
# (0 iOS, 1 Android, 2 Amazon, 5 Chrome, 6 Windows (WNS), 8 Firefox, 17 Safari web push).
_ONESIGNAL_COLUMNS = {"web_p256": "p256dh", "web_auth": "auth"}
_ONESIGNAL_DEVICE_TYPES = {
    "0": "ios",
    "1": "android",
    "2": "adm",
    "5": "web",
    "6": "wns",
    "8": "web",
    "17": "web",
}
# Where registration's checks name a field, the name the import's own line gives it.
_LINE_FIELDS = {
    "subscription.endpoint": "endpoint",
    "subscription.keys.p256dh": "p256dh",
    "subscription.keys.auth": "auth",
}
# How a false value is written in the files seen (OneSignal writes "f" and "t").
_FALSE = ("false", "f", "0", "no", "n", "")


@dataclass(frozen=True)
class Refusal:
    line: int
    field: str
    reason: str


@dataclass
class ImportReport:
    lines: int = 0
    created: int = 0
    existing: int = 0
    refused: int = 0
    refusals: list[Refusal] = field(default_factory=list)

    def refuse(self, refusal: Refusal) -> None:
        self.refused += 1
        if len(self.refusals) < MAX_REPORTED_REFUSALS:
            self.refusals.append(refusal)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "created": self.created,
            "existing": self.existing,
            "refused": self.refused,
            # A chunk's lines refused when stored come after those refused when read: shown by line.
            "refusals": [vars(refusal) for refusal in sorted(self.refusals, key=lambda r: r.line)],
            "refusals_left_off": self.refused - len(self.refusals),
        }


@dataclass(frozen=True)
class _Row:
    """A line that passed every check, ready to store."""

    line: int
    body: SubscriberCreate
    address: str
    address_hash: str
    tags: tuple[str, ...]
    alias: str | None
    attributes: dict[str, str]


class _Refused(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise errors.InvalidField(f"format must be one of {', '.join(FORMATS)}", field="format")
    return fmt


@asynccontextmanager
async def bulk_database(settings: Settings) -> AsyncIterator[Database]:
    """An import or an export runs on a connection of its own, with the engine's loose bounds on each
    statement: a request's (CLARION_DB_TIMEOUT_S) are for answers of a moment, and a chunk of 500 lines
    may take longer than that on a busy database."""
    db = Database(settings.database_url, pool_size=1)
    try:
        yield db
    finally:
        await db.dispose()


async def import_subscribers(
    db: Database,
    app: App,
    source: AsyncIterable[bytes],
    fmt: str,
    push_hosts: frozenset[str],
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Read `source` (the file's bytes, in pieces of any size) and store each valid line's subscriber."""
    report = ImportReport()
    chunk: list[_Row] = []
    async for line, record in _records(source, check_format(fmt)):
        report.lines += 1
        try:
            chunk.append(_row(app, line, record, push_hosts))
        except _Refused as refused:
            report.refuse(Refusal(line, refused.field, refused.reason))
        if len(chunk) >= IMPORT_CHUNK_LINES:
            await _store(db, app, chunk, report)
            chunk = []
            # A chunk's session, statements and results leave reference cycles (its 500 addresses
            # among them) that only the cyclic collector frees, and `clarion serve` runs it rarely
            # (cli.tune_runtime): collected here, the young generations only (cheap), they do not pile
            # up with the file's size (bench/README.md, "Subscriber import").
            gc.collect(1)
            if progress is not None:
                progress(report)
    await _store(db, app, chunk, report)
    if progress is not None:
        progress(report)
    return report


async def _lines(source: AsyncIterable[bytes]) -> AsyncIterator[tuple[int, bytes | None]]:
    """(line number, the line without its end), None for a line past MAX_LINE_BYTES (not kept)."""
    number, pending, overlong = 0, bytearray(), False
    async for piece in source:
        start = 0
        while (end := piece.find(b"\n", start)) != -1:
            number += 1
            if not overlong:
                pending += piece[start:end]
            yield number, None if overlong or len(pending) > MAX_LINE_BYTES else bytes(pending)
            pending.clear()
            overlong, start = False, end + 1
        if not overlong:
            pending += piece[start:]
            if len(pending) > MAX_LINE_BYTES:
                pending.clear()
                overlong = True
    if pending or overlong:
        yield number + 1, None if overlong else bytes(pending)


async def _records(
    source: AsyncIterable[bytes], fmt: str
) -> AsyncIterator[tuple[int, dict[str, Any] | _Refused]]:
    """Each non-blank data line as a record of its fields, or why it cannot be read."""
    header: list[str] | None = None
    async for number, raw in _lines(source):
        if raw is None:
            yield number, _Refused("line", f"a line is at most {MAX_LINE_BYTES} bytes")
            continue
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r")
        except UnicodeDecodeError:
            yield number, _Refused("line", "is not UTF-8")
            continue
        if not text.strip():
            continue
        if fmt == "csv" and header is None:
            header = _csv_header(text)
            continue
        try:
            yield number, _csv_record(text, header) if header is not None else _json_record(text)
        except _Refused as refused:
            yield number, refused


def _csv_header(text: str) -> list[str]:
    names = [name.strip().lower() for name in next(csv.reader([text]))]
    if not {"endpoint", "token", "identifier", "subscription"} & set(names):
        raise errors.InvalidField(
            "the CSV header must name an endpoint, token or identifier column", field="header"
        )
    return [_ONESIGNAL_COLUMNS.get(name, name) for name in names]


def _csv_record(text: str, header: list[str]) -> dict[str, Any]:
    try:
        values = next(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise _Refused("line", f"is not a CSV record ({exc}); a record must fit on one line") from None
    if len(values) != len(header):
        raise _Refused("line", f"has {len(values)} fields where the header names {len(header)}")
    return {name: value for name, value in zip(header, values, strict=True) if value != ""}


def _json_record(text: str) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _Refused("line", f"is not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise _Refused("line", "must be a JSON object")
    return record


def _row(app: App, line: int, record: dict[str, Any] | _Refused, push_hosts: frozenset[str]) -> _Row:
    if isinstance(record, _Refused):
        raise record
    try:
        check_storable(record)
        _check_active(record)
        body = validate(SubscriberCreate, _registration(app, record))
        address = service.address_of(body, push_hosts)
        if body.timezone is not None:
            validation.time_zone(body.timezone, "timezone")
        alias = _text(record, "alias")
        if alias is not None:
            _check_alias(alias)
        if body.language is not None:
            check_language(body.language)
        attributes = _attributes(record.get("attributes"))
    except errors.ClarionError as error:
        name = error.field or "line"
        shown = _LINE_FIELDS.get(name, name)
        raise _Refused(shown, error.message.replace(name, shown, 1)) from None
    tags = _tags(record.get("tags"))
    return _Row(line, body, address, service.address_hash(address), tags, alias, attributes)


def _attributes(value: Any) -> dict[str, str]:
    """A JSON object of keys to strings (in a CSV cell, its JSON text), by the rules of
    clarion.attributes; a null value is left out (an import adds and replaces, never removes)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise errors.InvalidField("attributes must be a JSON object", field="attributes") from None
    checked = check_changes(value)
    return {key: text for key, text in checked.items() if text is not None}


def _check_alias(alias: Any) -> None:
    if not isinstance(alias, str):
        raise errors.InvalidField("alias must be a string", field="alias")
    try:
        service.check_alias(alias)
    except errors.AliasTooLong as error:
        raise errors.InvalidField(error.message, field="alias") from None


def _check_active(record: dict[str, Any]) -> None:
    """A subscriber the source marks unsubscribed is not brought back."""
    active = record.get("active", True)
    if active is False or (isinstance(active, str) and active.strip().lower() in _FALSE):
        raise errors.InvalidField("active: the subscriber is inactive in the source", field="active")
    invalid = record.get("invalid_identifier", False)
    if invalid is True or (isinstance(invalid, str) and invalid.strip().lower() not in _FALSE):
        raise errors.InvalidField(
            "invalid_identifier: the source marks this subscriber unsubscribed", field="invalid_identifier"
        )


def _text(record: dict[str, Any], name: str) -> Any:
    value = record.get(name)
    return None if value == "" else value


def _registration(app: App, record: dict[str, Any]) -> dict[str, Any]:
    """The record as a registration body (SubscriberCreate), from Clarion's names or OneSignal's."""
    platform = _text(record, "platform")
    device_type = _text(record, "device_type")
    if platform is None and device_type is not None:
        platform = _ONESIGNAL_DEVICE_TYPES.get(str(device_type))
        if platform is None:
            raise errors.InvalidField(
                f"device_type {device_type} is not a platform Clarion serves", field="device_type"
            )
    identifier = _text(record, "identifier")
    subscription = _text(record, "subscription")
    endpoint = _text(record, "endpoint")
    if platform is None and (subscription is not None or endpoint is not None):
        platform = "web"
    body: dict[str, Any] = {"app_key": app.app_key, "platform": platform}
    if platform == "web":
        if subscription is None:
            keys = _present({"p256dh": _text(record, "p256dh"), "auth": _text(record, "auth")})
            subscription = _present({"endpoint": endpoint or identifier, "keys": keys or None})
        body["subscription"] = subscription
    else:
        body["token"] = _text(record, "token") or identifier
    for name in ("user_id", "external_user_id", "language"):
        body[name] = _text(record, name)
    # OneSignal's `timezone` is an offset in seconds; its IANA name is `timezone_id`.
    zone = _text(record, "timezone_id") or _text(record, "timezone")
    body["timezone"] = zone if isinstance(zone, str) and not _is_offset(zone) else None
    return _present(body)


def _is_offset(value: str) -> bool:
    return value.lstrip("+-").isdigit()


def _present(values: dict[str, Any]) -> dict[str, Any]:
    """Absent and empty fields left out, so that a missing one is named as missing."""
    return {name: value for name, value in values.items() if value is not None}


def _tags(value: Any) -> tuple[str, ...]:
    """A JSON list of names; a JSON object (OneSignal's key/value tags): its keys whose value is not
    empty, 0 or false; or, in a CSV cell, names separated by ";"."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "{")):
            try:
                value = json.loads(text)
            except ValueError:
                raise _Refused("tags", "is neither JSON nor names separated by ';'") from None
        else:
            value = text.split(";")
    if isinstance(value, dict):
        value = [name for name, held in value.items() if str(held).strip().lower() not in _FALSE]
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise _Refused("tags", "must be a list of tag names")
    names = {name.strip().casefold(): name.strip() for name in value if name.strip()}
    if len(names) > service.MAX_TAGS_PER_SUBSCRIBER:
        raise _Refused("tags", f"a subscriber holds at most {service.MAX_TAGS_PER_SUBSCRIBER} tags")
    for index, name in enumerate(names.values()):
        try:
            service.check_tag_name(name)
        except errors.ClarionError:
            raise _Refused(
                f"tags[{index}]", f"a tag name is at most {service.MAX_NAME_LENGTH} characters"
            ) from None
    return tuple(names.values())


def _new_subscriber(app: App, row: _Row) -> dict[str, Any]:
    now = utcnow()
    keys = row.body.subscription.keys if row.body.subscription else None
    return {
        "app_id": app.id,
        # 192 random bits, as a registration's (subscriber.service.register).
        "reg_id": secrets.token_urlsafe(24),
        "platform": row.body.platform,
        "address": row.address,
        "address_hash": row.address_hash,
        "p256dh": keys.p256dh if keys else None,
        "auth": keys.auth if keys else None,
        "alias": row.alias,
        "user_id": row.body.user_id,
        "external_user_id": row.body.external_user_id,
        "timezone": row.body.timezone,
        "language": row.body.language,
        "active": True,
        "created_at": now,
        "updated_at": now,
        "registered_at": now,
    }


async def _store(db: Database, app: App, rows: list[_Row], report: ImportReport) -> None:
    """One chunk in one transaction. An address the app knows already keeps its keys and state: its
    tags are added to, its alias and user ids set where the line gives them."""
    if not rows:
        return
    async with db.session() as session:
        repo = SubscriberRepository(session)
        known = await repo.known_addresses(app.id, {row.address_hash for row in rows})
        fresh: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row.address_hash not in known and row.address_hash not in fresh:
                fresh[row.address_hash] = _new_subscriber(app, row)
        await repo.insert_many(list(fresh.values()))
        stored = {**known, **await repo.known_addresses(app.id, fresh.keys())}
        tag_ids = await repo.ensure_tags(app.id, {name for row in rows for name in row.tags})
        held = await repo.tag_ids_of([subscriber.id for subscriber in stored.values()])
        keys = await repo.attribute_keys_of([subscriber.id for subscriber in stored.values()])
        pairs: set[tuple[int, int]] = set()
        attributes: dict[tuple[int, str], str] = {}
        for row in rows:
            subscriber = stored.get(row.address_hash)
            if subscriber is None:  # deleted by someone else between the insert and the lookup
                report.refuse(Refusal(row.line, "line", "the subscriber could not be stored; import again"))
                continue
            wanted = {tag_ids[name.casefold()] for name in row.tags} - held[subscriber.id]
            if len(held[subscriber.id]) + len(wanted) > service.MAX_TAGS_PER_SUBSCRIBER:
                limit = service.MAX_TAGS_PER_SUBSCRIBER
                report.refuse(Refusal(row.line, "tags", f"a subscriber holds at most {limit} tags"))
                continue
            if len(keys[subscriber.id] | row.attributes.keys()) > MAX_ATTRIBUTES:
                report.refuse(Refusal(row.line, "attributes", too_many(MAX_ATTRIBUTES).message))
                continue
            keys[subscriber.id] |= row.attributes.keys()
            attributes.update(((subscriber.id, key), value) for key, value in row.attributes.items())
            held[subscriber.id] |= wanted
            pairs.update((subscriber.id, tag_id) for tag_id in wanted)
            if fresh.pop(row.address_hash, None) is not None:
                report.created += 1
                continue
            report.existing += 1
            await _rename(repo, subscriber, row)
        await repo.attach_many(pairs)
        await repo.set_attributes_many(attributes)


async def _rename(repo: SubscriberRepository, subscriber: Known, row: _Row) -> None:
    given = {
        "alias": row.alias,
        "user_id": row.body.user_id,
        "external_user_id": row.body.external_user_id,
        "timezone": row.body.timezone,
        "language": row.body.language,
    }
    changed = {
        name: value
        for name, value in given.items()
        if value is not None and getattr(subscriber, name) != value
    }
    if changed:
        await repo.set_names(subscriber.id, changed, utcnow())


async def export_subscribers(
    db: Database, app: App, fmt: str, wanted: SubscriberFilter
) -> AsyncIterator[bytes]:
    """The app's subscribers as NDJSON lines or CSV records (EXPORT_FIELDS), page by page, in the
    shape the import reads. It carries the endpoints and keys: whoever holds it can push to them."""
    check_format(fmt)
    if fmt == "csv":
        yield _csv_line(EXPORT_FIELDS)
    after_id = 0
    while True:
        async with db.session() as session:
            repo = SubscriberRepository(session)
            page = await repo.page(app.id, wanted, after_id, EXPORT_PAGE_ROWS)
            tags = await repo.tag_names_of([subscriber.id for subscriber in page])
            attributes = await repo.attributes_of([subscriber.id for subscriber in page])
        if not page:
            return
        records = (
            _exported(subscriber, tags[subscriber.id], attributes[subscriber.id]) for subscriber in page
        )
        if fmt == "csv":
            yield b"".join(_csv_line(_csv_values(record)) for record in records)
        else:
            yield b"".join(json.dumps(record).encode() + b"\n" for record in records)
        after_id = page[-1].id


def _exported(subscriber: Subscriber, tags: list[str], attributes: dict[str, str]) -> dict[str, Any]:
    web = subscriber.platform == "web"
    return {
        "platform": subscriber.platform,
        "endpoint": subscriber.address if web else None,
        "p256dh": subscriber.p256dh,
        "auth": subscriber.auth,
        "token": None if web else subscriber.address,
        "tags": tags,
        "alias": subscriber.alias,
        "user_id": subscriber.user_id,
        "external_user_id": subscriber.external_user_id,
        "language": subscriber.language,
        "attributes": dict(sorted(attributes.items())),
        "active": subscriber.active,
        "created_at": as_utc(subscriber.created_at).isoformat(),
    }


def _csv_values(record: dict[str, Any]) -> list[str]:
    values: list[str] = []
    for name in EXPORT_FIELDS:
        value = record[name]
        if name in ("tags", "attributes"):
            values.append(json.dumps(value) if value else "")
        elif isinstance(value, bool):
            values.append("true" if value else "false")
        else:
            values.append("" if value is None else str(value))
    return values


def _csv_line(values: tuple[str, ...] | list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue().encode()
