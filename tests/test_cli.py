"""The command line, run as a real process."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from clarion.app import create_app
from clarion.cli import build_parser, main
from clarion.composition import open_database
from clarion.config import Settings
from clarion.db import Database
from tests.conftest import TEST_SECRET_KEY, make_settings
from tests.support import free_port, require


def clarion(
    database_url: str, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLARION_DATABASE_URL": database_url, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "clarion.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def test_db_upgrade_is_idempotent(database_url: str) -> None:
    assert clarion(database_url, "db", "upgrade").stdout.strip() == "database is up to date"
    assert clarion(database_url, "db", "upgrade").returncode == 0


def test_apps_create_prints_the_keys(database_url: str) -> None:
    created = json.loads(clarion(database_url, "apps", "create", "Shop", "--json").stdout)
    assert sorted(created) == ["app_id", "app_key", "app_secret", "identity_secret_key", "vapid_public_key"]
    assert isinstance(created["app_id"], int)
    assert len(created["app_key"]) == 32
    assert len(created["app_secret"]) == 32
    # The application server key: base64url of a 65-byte uncompressed P-256 point (87 chars, no padding).
    assert len(created["vapid_public_key"]) == 87
    assert created["vapid_public_key"].startswith("B")
    again = json.loads(clarion(database_url, "apps", "create", "Shop", "--json").stdout)
    assert again["app_key"] != created["app_key"]
    assert again["app_secret"] != created["app_secret"]


def test_apps_update_changes_plan_and_batch_push(database_url: str) -> None:
    created = json.loads(clarion(database_url, "apps", "create", "Shop", "--json").stdout)
    out = clarion(
        database_url,
        "apps",
        "update",
        created["app_key"],
        "--plan",
        "unlimited",
        "--batch-push",
        "off",
        "--json",
    )
    assert json.loads(out.stdout) == {
        "app_id": created["app_id"],
        "app_key": created["app_key"],
        "plan": "unlimited",
        "batch_push": False,
    }
    missing = clarion(database_url, "apps", "update", "nope", "--plan", "free", check=False)
    assert missing.returncode == 2
    assert json.loads(missing.stderr.strip().splitlines()[-1])["error"] == "not_found"


def test_segments_create_validates_and_prints(database_url: str) -> None:
    created = json.loads(clarion(database_url, "apps", "create", "Shop", "--json").stdout)
    terms = '[{"association": "AND", "name": "news"}]'
    unknown = clarion(
        database_url,
        "segments",
        "create",
        created["app_key"],
        "Readers",
        "--tags-segment",
        terms,
        check=False,
    )
    assert unknown.returncode == 2
    assert json.loads(unknown.stderr.strip().splitlines()[-1])["field"] == "tags_segment[0].name"
    bad = clarion(
        database_url, "segments", "create", created["app_key"], "R", "--tags-segment", "[{", check=False
    )
    assert bad.returncode == 2
    assert json.loads(bad.stderr.strip().splitlines()[-1])["field"] == "tags_segment"


def test_the_cyclic_collector_is_on_again_however_a_command_ends(capsys: pytest.CaptureFixture[str]) -> None:
    """main turns the collector off through a start-up's imports; a command that ends, even refused by
    the parser, leaves it on (tests and embedders call main in their own process)."""
    assert gc.isenabled()
    with pytest.raises(SystemExit):
        main(["no-such-command"])
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err
    assert gc.isenabled()


@pytest.mark.e2e
def test_serve_answers_health_and_stops_on_sigterm(tmp_path: object, database_url: str) -> None:
    port = free_port()
    env = {**os.environ, "CLARION_DATABASE_URL": database_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "clarion.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None
            import time

            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json() == {"status": "ok"}
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
        assert "Application shutdown complete." in output
        assert "generated admin token" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_apps_credentials_print_identifiers_only(database_url: str) -> None:
    created = json.loads(clarion(database_url, "apps", "create", "Shop", "--json").stdout)
    secret = "-starts-with-a-dash"  # the = form keeps argparse from reading it as an option
    out = clarion(
        database_url,
        "apps",
        "credentials",
        created["app_key"],
        "--adm-client-id=amzn1.client",
        f"--adm-client-secret={secret}",
        "--json",
    )
    assert json.loads(out.stdout) == {"provider": "adm", "client_id": "amzn1.client"}
    both = clarion(
        database_url,
        "apps",
        "credentials",
        created["app_key"],
        "--fcm",
        "x.json",
        "--adm-client-id=a",
        check=False,
    )
    assert both.returncode == 2
    assert json.loads(both.stderr.strip().splitlines()[-1])["field"] == "provider"


def run(
    *args: str, env: dict[str, str], cwd: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """The CLI with exactly this CLARION_* environment (none inherited from the test's own)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLARION_")}
    return subprocess.run(
        [sys.executable, "-m", "clarion.cli", *args],
        env={**clean, **env},
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def clarion_lines(stderr: str) -> list[str]:
    """Clarion's own log lines on stderr as "LEVEL clarion: message" (alembic's are left out).

    stderr is not a terminal here, so the CLI logs JSON lines (CLARION_LOG_FORMAT's default); the
    one-line error messages around them are plain text."""
    records = (json.loads(line) for line in stderr.splitlines() if line.startswith("{"))
    return [
        f"{r['level'].upper()} {r['logger']}: {r['message']}" for r in records if r["logger"] == "clarion"
    ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"CLARION_WORKER_JOBS": "0"},
            "invalid setting: CLARION_WORKER_JOBS: Input should be greater than or equal to 1",
        ),
        ({"CLARION_DELIVERY": "fake"}, "invalid setting: CLARION_DELIVERY: Input should be 'real' or 'sink'"),
        (
            {"CLARION_DATABASE_URL": "mysql://db/clarion"},
            "invalid setting: CLARION_DATABASE_URL: mysql is not supported: use sqlite:///PATH or postgresql://...",
        ),
        (
            {"CLARION_DATABASE_URL": "clarion.db"},
            "invalid setting: CLARION_DATABASE_URL: not a database URL (sqlite:///PATH or postgresql://...)",
        ),
        (
            {"CLARION_QUEUE_URL": "amqp://mq"},
            "invalid setting: CLARION_QUEUE_URL: must be memory:// or redis://host:port/db",
        ),
        (
            {"CLARION_DELIVERY_RENEW_S": "9"},
            "invalid setting: CLARION_DELIVERY_RENEW_S must be shorter than CLARION_DELIVERY_LEASE_S",
        ),
    ],
)
def test_an_invalid_setting_is_one_line_and_exit_code_2(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    done = run("apps", "list", env={"CLARION_DATA_DIR": str(tmp_path), **env})
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"clarion: {expected}\n")
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_an_unusable_database_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    url = f"sqlite:///{tmp_path}/a-file/clarion.db"
    done = run("apps", "list", env={"CLARION_DATABASE_URL": url})
    assert done.returncode == 2
    assert clarion_lines(done.stderr) == [f"INFO clarion: database: {url}"]
    assert done.stderr.splitlines()[-1] == (
        f"clarion: cannot use the database {url}: [Errno 17] File exists: '{tmp_path}/a-file'"
    )
    unreachable = "postgresql://clarion@127.0.0.1:1/clarion"
    done = run("worker", env={"CLARION_DATABASE_URL": unreachable})
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"clarion: cannot use the database {unreachable}: [Errno 111] Connect call failed ('127.0.0.1', 1)"
    )


def test_a_missing_postgresql_database_is_one_line() -> None:
    require("postgres")
    base = os.environ.get("CLARION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = base.rsplit("/", 1)[0] + "/clarion_no_such_database"
    done = run("db", "upgrade", env={"CLARION_DATABASE_URL": url})
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f'clarion: cannot use the database {url}: database "clarion_no_such_database" does not exist'
    )


@pytest.mark.parametrize(
    ("variable", "url", "module", "extra"),
    [
        ("CLARION_DATABASE_URL", "postgresql://clarion@127.0.0.1/clarion", "asyncpg", "postgres"),
        ("CLARION_QUEUE_URL", "redis://127.0.0.1:6379/0", "redis", "redis"),
    ],
)
def test_a_url_without_its_driver_says_which_extra_to_install(
    tmp_path: Path, variable: str, url: str, module: str, extra: str
) -> None:
    # The driver made unimportable, as in an installation without the extra.
    code = f"import sys; sys.modules[{module!r}] = None; from clarion.cli import main; sys.exit(main())"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLARION_")}
    done = subprocess.run(
        [sys.executable, "-c", code, "apps", "list"],
        env={**clean, "CLARION_DATA_DIR": str(tmp_path), variable: url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    scheme = url.split(":")[0]
    assert (done.returncode, done.stderr) == (
        2,
        f"clarion: {variable} is a {scheme}:// URL but its driver ({module}) is not installed:"
        f" pip install 'clarion[{extra}]'\n",
    )


def test_an_unknown_variable_is_a_warning_naming_the_closest(tmp_path: Path) -> None:
    done = run("apps", "list", "--json", env={"CLARION_DATA_DIR": str(tmp_path), "CLARION_DATABSE_URL": "x"})
    assert (done.returncode, done.stdout) == (0, "[]\n")
    assert clarion_lines(done.stderr) == [
        "WARNING clarion: unknown setting CLARION_DATABSE_URL is ignored"
        " (did you mean CLARION_DATABASE_URL?)",
        f"INFO clarion: database: sqlite:///{tmp_path}/clarion.db",
    ]


def test_the_default_database_is_the_same_from_any_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    env = {"CLARION_DATA_DIR": str(data)}
    created = json.loads(run("apps", "create", "Shop", "--json", env=env, cwd=first).stdout)
    listed = run("apps", "list", "--json", env=env, cwd=second)
    assert [app["app_key"] for app in json.loads(listed.stdout)] == [created["app_key"]]
    assert clarion_lines(listed.stderr) == [f"INFO clarion: database: sqlite:///{data}/clarion.db"]
    assert sorted(p.name for p in data.iterdir() if not p.name.startswith("clarion.db-")) == [
        "clarion.db",
        "secret.keys",
    ]
    assert list(first.iterdir()) == list(second.iterdir()) == []


def test_version() -> None:
    done = run("--version", env={})
    assert (done.returncode, done.stdout) == (0, f"clarion {version('clarion')}\n")


def _actions(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_option_and_command_has_help() -> None:
    parser = build_parser()
    missing = [f"{path} {action.dest}" for path, action in _actions(parser, "clarion") if not action.help]
    assert missing == []
    commands: list[str] = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        commands.append(f"{path} {name}")
                    walk(sub, f"{path} {name}")

    walk(parser, "clarion")
    assert commands == []


def test_admin_token_is_kept_in_a_private_file_and_rotates(tmp_path: Path) -> None:
    env = {"CLARION_DATA_DIR": str(tmp_path)}
    first = run("admin-token", env=env)
    token_file = tmp_path / "admin.token"
    assert first.returncode == 0
    assert first.stdout == token_file.read_text()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert run("admin-token", env=env).stdout == first.stdout
    rotated = run("admin-token", "--rotate", env=env)
    assert rotated.returncode == 0
    assert rotated.stdout != first.stdout
    assert rotated.stdout == token_file.read_text()
    assert len(rotated.stdout.strip()) == 32
    assert asyncio.run(_admin_answers(tmp_path, first.stdout.strip())) == 401
    assert asyncio.run(_admin_answers(tmp_path, rotated.stdout.strip())) == 404


async def _admin_answers(data: Path, token: str) -> int:
    """The status the admin API answers to this bearer token (404: accepted, no such campaign)."""
    settings = Settings(data_dir=str(data))
    app = create_app(settings, run_engine=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            headers = {"Authorization": f"Bearer {token}"}
            return (await client.get("/admin/v1/push-campaigns/1", headers=headers)).status_code


def test_admin_token_from_the_environment(tmp_path: Path) -> None:
    env = {"CLARION_DATA_DIR": str(tmp_path), "CLARION_ADMIN_TOKEN": "configured-token"}
    assert run("admin-token", env=env).stdout == "configured-token\n"
    rotated = run("admin-token", "--rotate", env=env)
    assert (rotated.returncode, rotated.stdout, rotated.stderr.splitlines()[-1]) == (
        2,
        "",
        "clarion: the admin token is set by CLARION_ADMIN_TOKEN: change it there",
    )


def test_admin_token_file_that_does_not_match_is_refused(tmp_path: Path) -> None:
    env = {"CLARION_DATA_DIR": str(tmp_path)}
    assert run("admin-token", env=env).returncode == 0
    (tmp_path / "admin.token").write_text("something else\n")
    done = run("admin-token", env=env)
    assert (done.returncode, done.stdout, done.stderr.splitlines()[-1]) == (
        2,
        "",
        f"clarion: {tmp_path}/admin.token does not hold the admin token in force (generated before Clarion"
        " kept it, or elsewhere): `clarion admin-token --rotate` makes a new one",
    )


def test_apps_list_show_update_delete(tmp_path: Path) -> None:
    env = {"CLARION_DATA_DIR": str(tmp_path)}
    shop = json.loads(run("apps", "create", "Shop", "--json", env=env).stdout)
    news = json.loads(run("apps", "create", "News", "--plan", "free", "--json", env=env).stdout)
    listed = json.loads(run("apps", "list", "--json", env=env).stdout)
    created_at = [app.pop("created_at") for app in listed]
    assert all(datetime.fromisoformat(at).tzinfo is not None for at in created_at)
    assert listed == [_summary(shop, "Shop", "unlimited"), _summary(news, "News", "free")]
    shown = json.loads(run("apps", "show", news["app_key"], "--json", env=env).stdout)
    assert shown == {**_summary(news, "News", "free"), "created_at": created_at[1]}
    updated = run(
        "apps", "update", news["app_key"], "--name", "Daily", "--plan", "unlimited", "--json", env=env
    )
    assert json.loads(updated.stdout) == {
        "app_id": news["app_id"],
        "app_key": news["app_key"],
        "plan": "unlimited",
        "batch_push": True,
        "name": "Daily",
    }
    _site_settings(news["app_key"], env)
    refused = run("apps", "delete", news["app_key"], env=env, stdin="News\n")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.splitlines()[-2:] == [
        "This deletes the app 'Daily' with all its subscribers and campaigns.",
        "Type its name to confirm: clarion: not deleted: 'News' is not the app's name",
    ]
    typed = run("apps", "delete", news["app_key"], "--json", env=env, stdin="Daily\n")
    assert json.loads(typed.stdout) == {"deleted": news["app_key"], "name": "Daily"}
    forced = run("apps", "delete", shop["app_key"], "--yes", env=env)
    assert forced.stdout == f"deleted: {shop['app_key']}\nname: Shop\n"
    assert run("apps", "list", "--json", env=env).stdout == "[]\n"
    gone = run("apps", "show", shop["app_key"], env=env)
    assert (gone.returncode, json.loads(gone.stderr.splitlines()[-1])) == (
        2,
        {
            "error": "not_found",
            "message": f"There is no app with app_key: {shop['app_key']}",
            "field": "app_key",
        },
    )


def _site_settings(app_key: str, env: dict[str, str]) -> None:
    """The site URL and default icon: set, shown, checked as a Gravitec icon is, and cleared with ""."""
    icon = "https://cdn.example/icon.png"
    updated = run(
        "apps", "update", app_key, "--site-url", "https://news.example/", "--default-icon", icon, env=env
    )
    assert updated.stdout.splitlines()[-2:] == ["site_url: https://news.example/", f"default_icon: {icon}"]
    shown = json.loads(run("apps", "show", app_key, "--json", env=env).stdout)
    assert (shown["site_url"], shown["default_icon"]) == ("https://news.example/", icon)
    for option, value, problem in (
        ("--default-icon", "https://cdn.example/icon.gif", "must end with .jpg, .jpeg or .png"),
        ("--default-icon", "javascript:alert(1)//a.png", "must be a valid http(s) URL"),
        ("--site-url", "ftp://news.example/", "must be a valid http(s) URL"),
        (
            "--vapid-subject",
            "admin@news.example",
            "must be a mailto: or https: URI of at most 255 characters",
        ),
    ):
        refused = run("apps", "update", app_key, option, value, env=env)
        field = option.removeprefix("--").replace("-", "_")
        assert (refused.returncode, json.loads(refused.stderr.splitlines()[-1])) == (
            2,
            {"error": "invalid_field", "message": f"{field}: {problem}", "field": field},
        ), value
    cleared = run("apps", "update", app_key, "--default-icon", "", "--json", env=env)
    assert json.loads(cleared.stdout)["default_icon"] is None
    contact = run("apps", "update", app_key, "--vapid-subject", "mailto:push@news.example", "--json", env=env)
    assert json.loads(contact.stdout)["vapid_subject"] == "mailto:push@news.example"


def _summary(created: dict[str, Any], name: str, plan: str) -> dict[str, Any]:
    return {
        "app_id": created["app_id"],
        "app_key": created["app_key"],
        "name": name,
        "plan": plan,
        "batch_push": True,
        "identity_verification": True,
        "site_url": None,
        "default_icon": None,
        "vapid_subject": None,
        "default_timezone": None,
        "quiet_start": None,
        "quiet_end": None,
        "quiet_mode": "hold",
        "vapid_subject_warning": None,
        "vapid_failing": None,
        "frequency_cap": None,
        "frequency_cap_period_s": None,
        "vapid_public_key": created["vapid_public_key"],
    }


def test_campaigns_list_and_show(tmp_path: Path) -> None:
    env = {"CLARION_DATA_DIR": str(tmp_path)}
    app = json.loads(run("apps", "create", "Shop", "--json", env=env).stdout)
    campaign_id = asyncio.run(_a_scheduled_campaign(tmp_path, app["app_key"], app["app_secret"]))
    listed = json.loads(run("campaigns", "list", app["app_key"], "--json", env=env).stdout)
    assert [row.pop("created_at")[:4] for row in listed] == [str(datetime.now(UTC).year)]
    assert listed == [
        {
            "campaign_id": campaign_id,
            "status": "scheduled",
            "send_at": "2100-01-01T00:00:00+00:00",
            "title": "Hi",
        }
    ]
    shown = json.loads(run("campaigns", "show", app["app_key"], str(campaign_id), "--json", env=env).stdout)
    assert shown == {
        "campaign_id": campaign_id,
        "status": "scheduled",
        "send_at": "2100-01-01T00:00:00+00:00",
        "sent": 0,
        "received": 0,
        "clicked": 0,
        "closed": 0,
        "capped": 0,
        "picture_warnings": [],
    }
    missing = run("campaigns", "show", app["app_key"], "12", env=env)
    assert json.loads(missing.stderr.splitlines()[-1]) == {
        "error": "not_found",
        "message": f"There is no campaign 12 in app {app['app_key']}",
        "field": "campaign_id",
    }


async def _a_scheduled_campaign(data: Path, app_key: str, app_secret: str) -> int:
    """A campaign sent at 2100-01-01 through the Gravitec API."""
    app = create_app(Settings(data_dir=str(data), admin_token="t"), run_engine=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            body = {
                "send_date": 4102444800000,
                "payload": {"message": "Hello", "title": "Hi", "redirect_url": "https://example.com/a"},
            }
            response = await client.post("/api/v3/push", json=body, auth=(app_key, app_secret))
            assert response.status_code == 200, response.text
            return int(response.json()["id"])


def test_deleting_an_app_deletes_what_is_its(database_url: str) -> None:
    # The CLI seals the app's secrets with the key the in-process app below reads them with
    # (make_settings: the key file beside a SQLite database, TEST_SECRET_KEY on PostgreSQL).
    key = {} if database_url.startswith("sqlite") else {"CLARION_SECRET_KEY": TEST_SECRET_KEY}
    created = json.loads(clarion(database_url, "apps", "create", "Shop", "--json", env=key).stdout)
    asyncio.run(_a_campaign_with_a_subscriber(database_url, created["app_key"], created["app_secret"]))
    done = clarion(database_url, "apps", "delete", created["app_key"], "--yes", "--json", env=key)
    assert json.loads(done.stdout) == {"deleted": created["app_key"], "name": "Shop"}
    assert asyncio.run(_rows_left(database_url)) == {"apps": 0, "subscribers": 0, "campaigns": 0}


async def _a_campaign_with_a_subscriber(database_url: str, app_key: str, app_secret: str) -> None:
    app = create_app(make_settings(database_url), run_engine=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            sub = {"app_key": app_key, "platform": "android", "token": "device-token-1"}
            assert (await client.post("/sdk/v1/subscribers", json=sub)).status_code == 201
            body = {"payload": {"message": "Hi", "redirect_url": "https://example.com/"}}
            assert (
                await client.post("/api/v3/push", json=body, auth=(app_key, app_secret))
            ).status_code == 200


async def _rows_left(database_url: str) -> dict[str, int]:
    db = open_database(make_settings(database_url), pool_size=1)
    try:
        return {table: await _count(db, table) for table in ("apps", "subscribers", "campaigns")}
    finally:
        await db.dispose()


async def _count(db: Database, table: str) -> int:
    async with db.session() as session:
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())  # noqa: S608
