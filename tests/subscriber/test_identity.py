"""Identity verification of user ids at registration: the per-app switch, the migration of existing
apps (verification off, no key stored) and `clarion apps update --identity-verification`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path

import httpx
from alembic import command

from clarion.app import create_app
from clarion.db import Database
from clarion.migrations import alembic_config, upgrade
from clarion.secrets_box import MARKER
from tests.app_tenant.factory import id_hash, native_error, new_app, web_body
from tests.conftest import Api, make_settings
from tests.fakes.push_service import FakePushService
from tests.test_cli import clarion


async def test_a_web_registration_binds_a_user_only_with_its_hash(
    quiet_api: Api, db: Database, fake: FakePushService
) -> None:
    tenant = await new_app(db)
    sub = fake.new_subscription().to_json()
    body = {**web_body(tenant.app_key, sub), "user_id": "u1"}
    answer = await quiet_api.client.post("/sdk/v1/subscribers", json=body)
    assert (answer.status_code, answer.json()) == (
        403,
        native_error(
            "identity_not_verified",
            "user_id_hash must be the HMAC-SHA256 of the id keyed with the app's identity key",
            "user_id_hash",
        ),
    )
    # A hash of 129 characters is no hash: the body's own limit.
    too_long = await quiet_api.client.post("/sdk/v1/subscribers", json={**body, "user_id_hash": "0" * 129})
    assert (too_long.status_code, too_long.json()["field"]) == (422, "user_id_hash")

    answer = await quiet_api.client.post(
        "/sdk/v1/subscribers", json={**body, "user_id_hash": tenant.user_id_hash("u1")}
    )
    assert answer.status_code == 201, answer.text
    # A hash without an id binds nothing and needs nothing.
    other = {**web_body(tenant.app_key, fake.new_subscription().to_json()), "user_id_hash": "whatever"}
    assert (await quiet_api.client.post("/sdk/v1/subscribers", json=other)).status_code == 201


def _app_at_0006(path: Path) -> tuple[str, str, str]:
    """A database at revision 0006 holding one app as Clarion then stored it: the identity key's hash
    only. Returns the URL, the app key and the identity key."""
    url = f"sqlite:///{path}"
    command.upgrade(alembic_config(url), "0006")
    app_key, identity = "a" * 32, "1d" * 16
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO apps (name, app_key, secret_hash, identity_key_hash, vapid_private_pem,"
            " vapid_public_key, plan, batch_push, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "old app",
                app_key,
                hashlib.sha256(b"secret").hexdigest(),
                hashlib.sha256(identity.encode()).hexdigest(),
                "-----BEGIN PRIVATE KEY-----",
                "B" * 87,
                "free",
                1,
                "2026-01-01 00:00:00.000000",
            ),
        )
    return url, app_key, identity


async def test_existing_apps_are_migrated_with_verification_off(
    tmp_path: Path, fake: FakePushService
) -> None:
    # Alembic's env runs its own event loop: in a thread, beside this test's.
    url, app_key, identity = await asyncio.to_thread(_app_at_0006, tmp_path / "old.db")
    await asyncio.to_thread(upgrade, url)
    with sqlite3.connect(tmp_path / "old.db") as connection:
        row = connection.execute(
            "SELECT identity_verification, identity_secret_key FROM apps WHERE app_key = ?", (app_key,)
        ).fetchone()
    assert row == (0, None)

    # Its devices still register user ids as before (from the app's own backend, say) ...
    app = create_app(make_settings(url), run_engine=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as client:
            body = {**web_body(app_key, fake.new_subscription().to_json()), "user_id": "u1"}
            assert (await client.post("/sdk/v1/subscribers", json=body)).status_code == 201

            # ... until the operator turns verification on, which needs the identity key itself.
            refused = clarion(url, "apps", "update", app_key, "--identity-verification", "on", check=False)
            assert refused.returncode == 2
            error = json.loads(refused.stderr.strip().splitlines()[-1])
            assert (error["error"], error["field"]) == ("invalid_field", "identity_secret_key")
            wrong = clarion(
                url, "apps", "update", app_key, "--identity-verification", "on",
                "--identity-secret-key", "0" * 32, check=False,
            )  # fmt: skip
            assert wrong.returncode == 2
            assert json.loads(wrong.stderr.strip().splitlines()[-1]) == native_error(
                "invalid_field", "This is not the app's identity key", "identity_secret_key"
            )
            turned_on = clarion(
                url, "apps", "update", app_key, "--identity-verification", "on",
                "--identity-secret-key", identity, "--json",
            )  # fmt: skip
            assert json.loads(turned_on.stdout)["identity_verification"] is True
            with sqlite3.connect(tmp_path / "old.db") as connection:
                (stored,) = connection.execute("SELECT identity_secret_key FROM apps").fetchone()
            assert stored.startswith(MARKER)
            assert identity not in stored

            body = {**web_body(app_key, fake.new_subscription().to_json()), "user_id": "u2"}
            assert (await client.post("/sdk/v1/subscribers", json=body)).status_code == 403
            body["user_id_hash"] = id_hash(identity, "u2")
            assert (await client.post("/sdk/v1/subscribers", json=body)).status_code == 201

            off = clarion(url, "apps", "update", app_key, "--identity-verification", "off", "--json")
            assert json.loads(off.stdout)["identity_verification"] is False
            body = {**web_body(app_key, fake.new_subscription().to_json()), "user_id": "u3"}
            assert (await client.post("/sdk/v1/subscribers", json=body)).status_code == 201


def test_new_apps_verify_identities_and_keep_their_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    created = json.loads(clarion(url, "apps", "create", "Shop", "--json").stdout)
    with sqlite3.connect(tmp_path / "new.db") as connection:
        row = connection.execute(
            "SELECT identity_verification, identity_secret_key FROM apps WHERE app_key = ?",
            (created["app_key"],),
        ).fetchone()
    # Kept, sealed (docs/security.md, "Secrets at rest"): the key itself is not in the database.
    assert row[0] == 1
    assert row[1].startswith(MARKER)
    assert created["identity_secret_key"] not in row[1]
    shown = clarion(url, "apps", "update", created["app_key"], "--plan", "free", "--json")
    assert "identity_verification" not in json.loads(shown.stdout)
