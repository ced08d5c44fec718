"""The command line: serve, worker, db upgrade, apps, campaigns, send, subscribers, segments,
push-campaigns, secrets."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from importlib.metadata import version
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from clarion import errors, logs
from clarion.admin.service import AdminTokenUnavailable
from clarion.app_tenant.service import DEFAULT_PLAN, PLANS
from clarion.config import ENV_PREFIX, Settings, unknown_variables
from clarion.db import Database, shown_url
from clarion.secrets_box import SecretsUnavailable

if TYPE_CHECKING:
    from clarion.subscriber.transfer import ImportReport

log = logging.getLogger("clarion")
T = TypeVar("T")
# What an import reads at a time from its file.
READ_BLOCK_BYTES = 64 * 1024


class Refused(Exception):
    """The command cannot do what it was asked: one line for the operator and exit code 2."""


class BadSetting(Refused):
    """A setting that cannot work."""


def _print(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data))
    else:
        for key, value in data.items():
            print(f"{key}: {value}")


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    """A JSON list, or one tab-separated line a row under a header line."""
    if as_json:
        print(json.dumps(rows))
        return
    if rows:
        print("\t".join(rows[0]))
    for row in rows:
        print("\t".join(str(value) for value in row.values()))


async def _with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    from clarion.app_tenant import secrets
    from clarion.composition import open_database

    await _upgrade(settings)
    db = open_database(settings, pool_size=1)
    try:
        await secrets.prepare(db)  # a missing or wrong key stops here, before any other work
        return await work(db)
    finally:
        await db.dispose()


async def _upgrade(settings: Settings) -> None:
    """Bring the schema up to date: the first use of the database, where a wrong URL, an unreachable
    server or a missing database shows as one line."""
    from clarion.migrations import upgrade_on_start

    try:
        await asyncio.to_thread(upgrade_on_start, settings.database_url)
    except (DBAPIError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise BadSetting(f"cannot use the database {shown_url(settings.database_url)}: {reason}") from None


def tune_runtime() -> None:
    """Long-running processes: objects alive at start are never garbage, and a delivery allocates
    many short-lived objects; without this the cyclic collector rescans them every few hundred
    messages (measured: about a tenth of a worker's CPU)."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    gc.enable()  # off through the start-up (main)


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where available: a faster event loop for the API and the engine."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from clarion.admin.service import ensure_admin_token
    from clarion.app import create_app

    asyncio.run(_with_db(settings, lambda db: ensure_admin_token(db, settings)))
    tune_runtime()
    # loop="auto" picks uvloop where it is installed (it is a dependency on Linux and macOS).
    # log_config=None: uvicorn's loggers go through the one setup (clarion.logs), not its own.
    # ws="none": Clarion has no WebSocket route, and loading a WebSocket protocol costs start-up time.
    config = uvicorn.Config(
        create_app(settings, migrate=False),  # migrated just above
        ws="none",
        host=args.host,
        port=args.port,
        log_config=None,
        log_level=settings.log_level,
        loop="auto",
    )
    uvicorn.Server(config).run()
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    tune_runtime()
    run_loop(_run_worker(settings))
    return 0


async def _run_worker(settings: Settings) -> None:
    import socket
    import uuid

    from clarion.app_tenant import secrets
    from clarion.composition import background, open_database
    from clarion.queue import connect

    await _upgrade(settings)
    db = open_database(settings)
    try:
        await secrets.prepare(db)
    except BaseException:
        await db.dispose()
        raise
    consumer = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    queue = connect(settings.queue_url, consumer=consumer, reclaim_after_s=settings.delivery_lease_s)
    runner = background(settings, db, queue, asyncio.Event())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runner.start()
    exporter = _metrics_server(settings)
    logging.getLogger("clarion").info("worker %s running", consumer)
    await stop.wait()
    if exporter is not None:
        exporter.shutdown()
    await runner.stop()
    await queue.close()
    await db.dispose()


def _metrics_server(settings: Settings) -> Any:
    """A worker's own /metrics, when CLARION_METRICS_PORT asks for one (docs/operations.md)."""
    if settings.metrics_port is None:
        return None
    from clarion import metrics

    token = settings.metrics_token.get_secret_value() if settings.metrics_token is not None else None
    server = metrics.serve_in_thread(settings.metrics_host, settings.metrics_port, token)
    logging.getLogger("clarion").info(
        "metrics at http://%s:%s/metrics", settings.metrics_host, settings.metrics_port
    )
    return server


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(_upgrade(settings))
    print("database is up to date")
    return 0


def cmd_apps_create(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.app_tenant import service

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            created = await service.create(session, args.name, args.plan)
        return {
            "app_id": created.app_id,
            "app_key": created.app_key,
            "app_secret": created.app_secret,
            "vapid_public_key": created.vapid_public_key,
            "identity_secret_key": created.identity_secret_key,
        }

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_apps_update(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.app_tenant import service

    batch = None if args.batch_push is None else args.batch_push == "on"
    verify = None if args.identity_verification is None else args.identity_verification == "on"

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            app = await service.update(
                session,
                args.app_key,
                plan=args.plan,
                batch_push=batch,
                identity_verification=verify,
                identity_secret_key=args.identity_secret_key,
                name=args.name,
                site_url=args.site_url,
                default_icon=args.default_icon,
                vapid_subject=args.vapid_subject,
                default_timezone=args.default_timezone,
                quiet_start=args.quiet_start,
                quiet_end=args.quiet_end,
                quiet_mode=args.quiet_mode,
                frequency_cap=args.frequency_cap,
                frequency_cap_period_s=args.frequency_cap_period_s,
            )
            shown = {"app_id": app.id, "app_key": app.app_key, "plan": app.plan, "batch_push": app.batch_push}
            settings_shown = ("name", "site_url", "default_icon", "vapid_subject", "default_timezone")
            for setting in (*settings_shown, "quiet_start", "quiet_end", "quiet_mode"):
                if getattr(args, setting) is not None:
                    shown[setting] = getattr(app, setting)
            if args.frequency_cap is not None or args.frequency_cap_period_s is not None:
                shown.update(
                    frequency_cap=app.frequency_cap, frequency_cap_period_s=app.frequency_cap_period_s
                )
            if verify is not None or args.identity_secret_key is not None:
                shown["identity_verification"] = app.identity_verification
            return shown

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_apps_list(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.app_tenant import service

    async def work(db: Database) -> list[dict[str, Any]]:
        async with db.session() as session:
            return [service.summary(app) for app in await service.all_apps(session)]

    _print_rows(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_apps_show(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.app_tenant import service

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            return service.summary(await service.by_key(session, args.app_key))

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_apps_rotate_vapid(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.app_tenant import service
    from clarion.subscriber import service as subscribers

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            app = await service.by_key(session, args.app_key)
            return await subscribers.rotate_vapid(session, app)

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_apps_delete(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.app_tenant import service

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            app = await service.by_key(session, args.app_key)
            if not args.yes:
                _confirm_deletion(app.name)
            await service.delete(session, args.app_key)
            return {"deleted": args.app_key, "name": app.name}

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def _confirm_deletion(name: str) -> None:
    """The operator types the app's name, as on GitHub's danger zone: a key pasted into the wrong
    command does not delete a whole app."""
    print(f"This deletes the app {name!r} with all its subscribers and campaigns.", file=sys.stderr)
    print("Type its name to confirm: ", end="", file=sys.stderr, flush=True)
    typed = sys.stdin.readline().strip()
    if typed != name:
        raise Refused(f"not deleted: {typed!r} is not the app's name")


def cmd_campaigns_list(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.app_tenant import service as apps
    from clarion.campaign import service

    async def work(db: Database) -> list[dict[str, Any]]:
        async with db.session() as session:
            return await service.recent(session, await apps.by_key(session, args.app_key), args.limit)

    _print_rows(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_campaigns_show(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.app_tenant import service as apps
    from clarion.campaign import service

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            app = await apps.by_key(session, args.app_key)
            try:
                stats = await service.stats(session, app, args.campaign_id)
            except errors.UnknownMessage:  # the Gravitec API's words; the CLI says what it looked for
                raise errors.NotFound(
                    f"There is no campaign {args.campaign_id} in app {args.app_key}", field="campaign_id"
                ) from None
        return service.shown(stats)

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from clarion import follow

    async def work(db: Database) -> dict[str, Any]:
        campaign_id = await follow.create(db, args.app_key, args.title, args.message, args.url, args.tags)
        return await follow.follow(db, args.app_key, campaign_id, timeout_s=args.timeout, quiet=args.json)

    shown = asyncio.run(_with_db(settings, work))
    _print(shown, args.json)
    return 0 if shown["status"] == "sent" else 1


def cmd_campaigns_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from clarion import follow

    async def work(db: Database) -> dict[str, Any]:
        return await follow.cancel_campaign(db, args.app_key, args.campaign_id)

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_campaigns_pause(args: argparse.Namespace, settings: Settings) -> int:
    from clarion import follow
    from clarion.delivery.pause import pause

    async def work(db: Database) -> dict[str, Any]:
        return await follow.change_campaign(db, args.app_key, args.campaign_id, pause)

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_campaigns_resume(args: argparse.Namespace, settings: Settings) -> int:
    from clarion import follow
    from clarion.delivery.pause import resume

    async def work(db: Database) -> dict[str, Any]:
        return await follow.change_campaign(db, args.app_key, args.campaign_id, resume)

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_admin_token(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.admin.service import rotate_admin_token, show_admin_token

    async def work(db: Database) -> str:
        if args.rotate:
            return await rotate_admin_token(db, settings)
        return await show_admin_token(db, settings)

    print(asyncio.run(_with_db(settings, work)))
    return 0


def _credential_args(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Exactly one provider per call, as the usage line shows."""
    chosen = [
        name
        for name, given in (
            ("fcm", args.fcm),
            ("apns", args.apns_key),
            ("wns", args.wns_client_id),
            ("adm", args.adm_client_id),
        )
        if given
    ]
    if len(chosen) != 1:
        raise errors.InvalidField(
            "give exactly one of --fcm, --apns-key, --wns-client-id, --adm-client-id", field="provider"
        )
    provider = chosen[0]
    if provider == "fcm":
        try:
            return provider, json.loads(Path(args.fcm).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise errors.InvalidField(f"--fcm: cannot read the service account: {exc}", field="fcm") from None
    if provider == "apns":
        try:
            key_pem = Path(args.apns_key).read_text()
        except OSError as exc:
            raise errors.InvalidField(f"--apns-key: {exc}", field="apns.key_pem") from None
        data = {"key_pem": key_pem, "key_id": args.apns_key_id, "team_id": args.apns_team_id}
        return provider, {**data, "topic": args.apns_topic}
    if provider == "wns":
        return provider, {"client_id": args.wns_client_id, "client_secret": args.wns_client_secret}
    return provider, {"client_id": args.adm_client_id, "client_secret": args.adm_client_secret}


def cmd_apps_credentials(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.app_tenant import credentials

    provider, data = _credential_args(args)

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            return await credentials.store(session, args.app_key, provider, data)

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_segments_create(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.app_tenant import service as apps
    from clarion.campaign import service
    from clarion.gravitec.push_body import parse_terms

    try:
        raw = json.loads(args.tags_segment)
    except json.JSONDecodeError as exc:
        raise errors.InvalidField(f"--tags-segment is not JSON: {exc}", field="tags_segment") from None
    terms = parse_terms(raw, "tags_segment")

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            app = await apps.by_key(session, args.app_key)
            segment = await service.create_segment(session, app, args.name, terms)
            return {"segment_id": segment.id, "name": segment.name}

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def _import_format(args: argparse.Namespace) -> str:
    if args.format is not None:
        return str(args.format)
    suffix = Path(args.file).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".ndjson", ".jsonl", ".json"):
        return "ndjson"
    raise Refused(f"cannot tell the format of {args.file} from its name: give --format csv or ndjson")


async def _blocks(file: IO[bytes], advance: Callable[[int], None]) -> AsyncIterator[bytes]:
    while block := await asyncio.to_thread(file.read, READ_BLOCK_BYTES):
        advance(len(block))
        yield block


def cmd_subscribers_import(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from clarion.app_tenant import service as apps
    from clarion.subscriber import transfer

    fmt = _import_format(args)
    try:
        file = open(args.file, "rb")  # noqa: SIM115 (closed below, after the import's last read)
    except OSError as exc:
        raise Refused(f"cannot read {args.file}: {exc.strerror}") from None
    bar = Progress(
        TextColumn("importing"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[counts]}"),
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
    )
    task = bar.add_task("import", total=Path(args.file).stat().st_size, counts="")

    def counts(report: ImportReport) -> None:
        shown = f"created {report.created}, existing {report.existing}, refused {report.refused}"
        bar.update(task, counts=shown)

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            app = await apps.by_key(session, args.app_key)
        blocks = _blocks(file, lambda size: bar.advance(task, size))
        report = await transfer.import_subscribers(db, app, blocks, fmt, settings.push_host_set(), counts)
        return report.as_dict()

    with file, bar:
        report = asyncio.run(_with_db(settings, work))
    _print_import(report, args.json)
    return 0


def _print_import(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    for key in ("lines", "created", "existing", "refused"):
        print(f"{key}: {report[key]}")
    for refusal in report["refusals"]:
        print(f"line {refusal['line']}: {refusal['reason']}")
    if report["refusals_left_off"]:
        print(f"... and {report['refusals_left_off']} more refused lines")


def cmd_subscribers_export(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.app_tenant import service as apps
    from clarion.subscriber import transfer
    from clarion.subscriber.schemas import SubscriberFilter

    active = None if args.active is None else args.active == "yes"
    wanted = SubscriberFilter(platform=args.platform, active=active, tag=args.tag)

    async def work(db: Database) -> None:
        async with db.session() as session:
            app = await apps.by_key(session, args.app_key)
        out = sys.stdout.buffer
        async for piece in transfer.export_subscribers(db, app, args.format, wanted):
            out.write(piece)
        out.flush()

    asyncio.run(_with_db(settings, work))
    return 0


def _read_password(from_stdin: bool) -> str:
    """The new operator's password: stdin's first line, or typed twice at a terminal (not echoed)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise errors.InvalidField(
            "no terminal to ask the password at: give it with --password-stdin", field="password"
        )
    import getpass

    password = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != password:
        raise errors.InvalidField("the two passwords differ", field="password")
    return password


def cmd_users_create(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.console import service

    password = _read_password(args.password_stdin)

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            operator = await service.create_operator(session, args.email, args.role, password)
            return {"operator_id": operator.id, "email": operator.email, "role": operator.role}

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_push_campaigns_create(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.swrve import campaigns

    async def work(db: Database) -> dict[str, Any]:
        async with db.session() as session:
            campaign_id, push_key = await campaigns.create_push_campaign(
                session, args.app_key, args.name, args.message, args.title, args.platform
            )
        return {"campaign_id": campaign_id, "push_key": push_key}

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_secrets_encrypt(args: argparse.Namespace, settings: Settings) -> int:
    """Seal legacy plaintext secrets now (every start does it too) and check the key reads the rest."""

    async def work(db: Database) -> dict[str, Any]:
        from clarion.app_tenant import secrets

        async with db.session() as session:
            return (await secrets.reseal(session, rotate=False)).as_dict()

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_secrets_rotate(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> dict[str, Any]:
        from clarion.app_tenant import secrets

        key_id, report = await secrets.rotate(db)
        return {"key_id": key_id, **report.as_dict()}

    _print(asyncio.run(_with_db(settings, work)), args.json)
    return 0


def cmd_secrets_new_key(args: argparse.Namespace, settings: Settings) -> int:
    from clarion.secrets_box import new_key

    print(new_key())
    return 0


def _add_secrets_commands(commands: Any) -> None:
    secrets = commands.add_parser("secrets", help="secrets at rest (docs/security.md)").add_subparsers(
        dest="secrets_command", required=True
    )
    encrypt = secrets.add_parser("encrypt", help="encrypt stored plaintext secrets and check the key")
    _json_option(encrypt)
    encrypt.set_defaults(handler=cmd_secrets_encrypt)
    rotate = secrets.add_parser("rotate", help="re-encrypt every stored secret under a new key")
    _json_option(rotate)
    rotate.set_defaults(handler=cmd_secrets_rotate)
    secrets.add_parser("new-key", help="print a new key for CLARION_SECRET_KEY").set_defaults(
        handler=cmd_secrets_new_key
    )


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of key: value lines")


def _app_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app_key", help="the app's key (APP_KEY, printed by `clarion apps create`)")


def _add_server_commands(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the HTTP API (and, with memory://, the workers)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="run delivery workers and the scheduler only")
    worker.set_defaults(handler=cmd_worker)

    db = commands.add_parser("db", help="database maintenance").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("upgrade", help="apply schema migrations").set_defaults(handler=cmd_db_upgrade)

    token = commands.add_parser("admin-token", help="print the admin API's bearer token")
    token.add_argument(
        "--rotate", action="store_true", help="make a new one: the old one stops working at once"
    )
    token.set_defaults(handler=cmd_admin_token)


def _add_app_commands(commands: Any) -> None:
    apps = commands.add_parser("apps", help="apps (tenants)").add_subparsers(
        dest="apps_command", required=True
    )
    create = apps.add_parser("create", help="create an app and print its keys")
    create.add_argument("name", help="the app's name, for operators")
    create.add_argument(
        "--plan",
        choices=PLANS,
        default=DEFAULT_PLAN,
        help="unlimited (default): no quota; free: 10 API campaigns a day, as the vendor's free plan",
    )
    _json_option(create)
    create.set_defaults(handler=cmd_apps_create)

    listing = apps.add_parser("list", help="list every app")
    _json_option(listing)
    listing.set_defaults(handler=cmd_apps_list)
    show = apps.add_parser("show", help="show one app")
    _app_key(show)
    _json_option(show)
    show.set_defaults(handler=cmd_apps_show)
    delete = apps.add_parser("delete", help="delete an app with its subscribers, campaigns and statistics")
    _app_key(delete)
    delete.add_argument("--yes", action="store_true", help="do not ask to type the app's name to confirm")
    _json_option(delete)
    delete.set_defaults(handler=cmd_apps_delete)

    rotate = apps.add_parser(
        "rotate-vapid",
        help="give an app a new VAPID key pair; subscriptions made with the old one keep working, and the "
        "Web SDK moves each browser to the new one on its next page view",
    )
    _app_key(rotate)
    _json_option(rotate)
    rotate.set_defaults(handler=cmd_apps_rotate_vapid)

    _add_apps_update(apps)
    _add_apps_credentials(apps)


def _add_apps_update(apps: Any) -> None:
    update = apps.add_parser("update", help="change an app's name, site settings, plan or features")
    _app_key(update)
    update.add_argument("--name", help="a new name")
    update.add_argument("--plan", choices=PLANS, help="unlimited: no quota; free: 10 API campaigns a day")
    update.add_argument("--batch-push", choices=("on", "off"), help="accept Swrve-style batch pushes")
    update.add_argument("--site-url", metavar="URL", help='the site\'s address ("" clears it)')
    update.add_argument(
        "--default-icon",
        metavar="URL",
        help='the icon of a push that names none (.jpg, .jpeg or .png; "" clears it)',
    )
    update.add_argument(
        "--vapid-subject",
        metavar="URI",
        help='the mailto: or https: contact in the app\'s VAPID tokens ("" clears it: the https site URL,'
        " else CLARION_VAPID_SUBJECT)",
    )
    update.add_argument(
        "--default-timezone",
        metavar="ZONE",
        help='IANA zone of subscribers that recorded none, for local-time campaigns ("" clears it: UTC)',
    )
    update.add_argument("--quiet-start", metavar="HH:MM", help='quiet hours start, local time ("" clears)')
    update.add_argument("--quiet-end", metavar="HH:MM", help='quiet hours end, local time ("" clears)')
    update.add_argument(
        "--quiet-mode",
        choices=("hold", "drop"),
        help="non-transactional notifications due in quiet hours: held until they end, or dropped",
    )
    update.add_argument(
        "--frequency-cap",
        type=int,
        metavar="N",
        help="at most N non-transactional notifications per subscriber per --frequency-cap-period-s"
        " (0: no cap; docs/pacing.md)",
    )
    update.add_argument(
        "--frequency-cap-period-s",
        type=int,
        metavar="SECONDS",
        help="the frequency cap's rolling period in seconds (with --frequency-cap, or to change it)",
    )
    update.add_argument(
        "--identity-verification",
        choices=("on", "off"),
        help="require user_id_hash / external_user_id_hash to bind a device to a user (docs/security.md)",
    )
    update.add_argument(
        "--identity-secret-key",
        help="the app's identity key, for an app created before Clarion kept it (to turn verification on)",
    )
    _json_option(update)
    update.set_defaults(handler=cmd_apps_update)


def _add_apps_credentials(apps: Any) -> None:
    creds = apps.add_parser("credentials", help="store a native provider's credentials for an app")
    _app_key(creds)
    creds.add_argument("--fcm", metavar="SERVICE_ACCOUNT.json", help="FCM: the service account JSON file")
    creds.add_argument("--apns-key", metavar="KEY.p8", help="APNs: the token signing key file (.p8)")
    creds.add_argument("--apns-key-id", help="APNs: the key's id")
    creds.add_argument("--apns-team-id", help="APNs: the Apple developer team id")
    creds.add_argument("--apns-topic", metavar="BUNDLE", help="APNs: the app's bundle id")
    creds.add_argument("--wns-client-id", help="WNS: the package SID")
    # A secret may begin with "-": pass it as --wns-client-secret=VALUE so it is not read as an option.
    creds.add_argument("--wns-client-secret", help="WNS: the client secret (as --wns-client-secret=VALUE)")
    creds.add_argument("--adm-client-id", help="ADM: the security profile's client id")
    creds.add_argument("--adm-client-secret", help="ADM: the client secret (as --adm-client-secret=VALUE)")
    _json_option(creds)
    creds.set_defaults(handler=cmd_apps_credentials)


def _add_campaign_commands(commands: Any) -> None:
    campaigns = commands.add_parser("campaigns", help="an app's campaigns and their statistics")
    actions = campaigns.add_subparsers(dest="campaigns_command", required=True)
    listing = actions.add_parser("list", help="an app's newest campaigns")
    _app_key(listing)
    listing.add_argument("--limit", type=int, default=20, help="how many (default: %(default)s)")
    _json_option(listing)
    listing.set_defaults(handler=cmd_campaigns_list)
    one_campaign = {
        "show": ("one campaign's status and statistics", cmd_campaigns_show),
        "cancel": (
            "cancel a scheduled or sending campaign (what was sent stays counted)",
            cmd_campaigns_cancel,
        ),
        "pause": ("pause a sending campaign (stops within 1-2 s; resume goes on)", cmd_campaigns_pause),
        "resume": ("resume a paused campaign", cmd_campaigns_resume),
    }
    for name, (help_text, handler) in one_campaign.items():
        action = actions.add_parser(name, help=help_text)
        _app_key(action)
        action.add_argument("campaign_id", type=int, help="the campaign's id")
        _json_option(action)
        action.set_defaults(handler=handler)

    send = commands.add_parser(
        "send", help="send a campaign and follow it with a progress bar, then its funnel"
    )
    _app_key(send)
    send.add_argument("--title", required=True, help="the notification's title")
    send.add_argument("--message", required=True, help="the notification's text")
    send.add_argument("--url", required=True, help="where a click leads (redirect_url)")
    send.add_argument("--tags", nargs="+", default=[], help="only subscribers holding any of these tags")
    send.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to follow it (default: %(default)s)"
    )
    _json_option(send)
    send.set_defaults(handler=cmd_send)

    push_campaigns = commands.add_parser("push-campaigns", help="Swrve-style Push API campaigns")
    pc = push_campaigns.add_subparsers(dest="push_campaigns_command", required=True).add_parser(
        "create", help="create a Push API campaign and print its push key"
    )
    _app_key(pc)
    pc.add_argument("--name", required=True, help="the campaign's name")
    pc.add_argument("--message", help="the default message text")
    pc.add_argument("--title", help="the default title")
    pc.add_argument(
        "--platform",
        choices=("all", "ios", "android", "adm", "wns", "web"),
        default="all",
        help="the platforms it sends to (default: %(default)s)",
    )
    _json_option(pc)
    pc.set_defaults(handler=cmd_push_campaigns_create)

    segments = commands.add_parser("segments", help="saved audiences")
    seg = segments.add_subparsers(dest="segments_command", required=True).add_parser(
        "create", help="save a tags_segment audience under a name"
    )
    _app_key(seg)
    seg.add_argument("name", help="the segment's name (what a push's segments: [...] names)")
    seg.add_argument("--tags-segment", required=True, help='JSON list: [{"association": "AND", "name": "t"}]')
    _json_option(seg)
    seg.set_defaults(handler=cmd_segments_create)


def _add_subscriber_commands(commands: Any) -> None:
    subscribers = commands.add_parser("subscribers", help="an app's subscribers in bulk")
    actions = subscribers.add_subparsers(dest="subscribers_command", required=True)
    imports = actions.add_parser(
        "import", help="import subscribers from another vendor or system (docs/subscribers-import.md)"
    )
    _app_key(imports)
    imports.add_argument("file", help="NDJSON or CSV: web endpoint and keys, or native tokens, one a line")
    imports.add_argument("--format", choices=("csv", "ndjson"), help="default: from the file's name")
    _json_option(imports)
    imports.set_defaults(handler=cmd_subscribers_import)

    export = actions.add_parser("export", help="write an app's subscribers to stdout (with their keys)")
    _app_key(export)
    export.add_argument("--format", choices=("ndjson", "csv"), default="ndjson", help="default: %(default)s")
    export.add_argument("--active", choices=("yes", "no"), help="only active (yes) or inactive (no) ones")
    export.add_argument("--platform", choices=("web", "android", "ios", "adm", "wns"), help="only this one")
    export.add_argument("--tag", help="only subscribers with this tag")
    export.set_defaults(handler=cmd_subscribers_export)


def _add_user_commands(commands: Any) -> None:
    users = commands.add_parser("users", help="operator accounts of the web console (/console/)")
    create = users.add_subparsers(dest="users_command", required=True).add_parser(
        "create", help="create an operator account"
    )
    create.add_argument("email", help="the operator's email address (their sign-in name)")
    create.add_argument(
        "--role", required=True, choices=("admin", "editor", "viewer"), help="what the operator may do"
    )
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input's first line"
    )
    _json_option(create)
    create.set_defaults(handler=cmd_users_create)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clarion", description="Clarion push notification server")
    parser.add_argument("--version", action="version", version=f"clarion {version('clarion')}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_server_commands(commands)
    _add_app_commands(commands)
    _add_campaign_commands(commands)
    _add_subscriber_commands(commands)
    _add_secrets_commands(commands)
    _add_user_commands(commands)
    return parser


def _settings() -> Settings:
    """The settings, with logging set up from them before anything is logged (the unknown-variable
    warnings included)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise BadSetting(_invalid_settings(exc)) from None
    logs.setup(settings.log_format, settings.log_level)
    for warning in unknown_variables():
        log.warning("%s", warning)
    _check_extras(settings)
    return settings


def _invalid_settings(exc: ValidationError) -> str:
    """Pydantic's errors as one line naming each variable (never its value: it may be a secret)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        names = [f"{ENV_PREFIX}{str(part).upper()}" for part in error["loc"]]
        prefix = f"{names[0]}: " if names else ""
        problems.append(prefix + error["msg"].removeprefix("Value error, "))
    return "invalid setting: " + "; ".join(problems)


# The driver each URL scheme needs, and the extra that installs it.
_EXTRAS = {
    "postgresql": ("asyncpg", "postgres"),
    "postgres": ("asyncpg", "postgres"),
    "redis": ("redis", "redis"),
    "rediss": ("redis", "redis"),
}


def _check_extras(settings: Settings) -> None:
    for variable, url in (("DATABASE_URL", settings.database_url), ("QUEUE_URL", settings.queue_url)):
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        if scheme not in _EXTRAS:
            continue
        module, extra = _EXTRAS[scheme]
        try:
            importlib.import_module(module)
        except ImportError:
            raise BadSetting(
                f"{ENV_PREFIX}{variable} is a {scheme}:// URL but its driver ({module}) is not installed:"
                f" pip install 'clarion[{extra}]'"
            ) from None


# Commands that run until stopped: the cyclic collector stays off until their start-up is over
# (tune_runtime), the others' work runs with it.
_LONG_RUNNING = (cmd_serve, cmd_worker)


def main(argv: list[str] | None = None) -> int:
    # A start is mostly imports, through which the cyclic collector would run dozens of times for
    # nothing (about a quarter of the CPU of `clarion serve`'s start, measured): a SIGKILLed server is
    # back that much sooner, which counts most on a loaded machine.
    gc.disable()
    try:
        args = build_parser().parse_args(argv)
        settings = _settings()
        if args.handler not in _LONG_RUNNING:
            gc.enable()
        log.info("database: %s", shown_url(settings.database_url))
        code: int = args.handler(args, settings)
    except errors.ClarionError as exc:
        print(json.dumps(exc.as_json()), file=sys.stderr)
        return 2
    # One line for the operator, no traceback.
    except (Refused, SecretsUnavailable, AdminTokenUnavailable) as exc:
        print(f"clarion: {exc}", file=sys.stderr)
        return 2
    finally:
        gc.enable()
    return code


if __name__ == "__main__":
    sys.exit(main())
