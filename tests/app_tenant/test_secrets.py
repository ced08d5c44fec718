"""Secrets at rest: what the database holds is sealed, legacy plaintext still reads and gets sealed,
rotation re-encrypts everything, and a missing, wrong or altered key is refused."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import text

from clarion.app_tenant import credentials, secrets
from clarion.app_tenant import service as apps
from clarion.composition import open_database
from clarion.config import Settings
from clarion.db import Database
from clarion.models import App
from clarion.secrets_box import MARKER, SecretBox, SecretsUnavailable, new_key, parse_keys, sealed_key_id
from clarion.subscriber import service as subscriber_service
from tests.conftest import make_settings
from tests.test_cli import clarion

WNS = {"client_id": "ms-app://s-1-15", "client_secret": "wns-client-secret-value"}


async def _raw(db: Database) -> tuple[dict[str, str], dict[tuple[int, str], Any]]:
    """The stored values as the database holds them (read with SQL, not through the repositories)."""
    async with db.session() as session:
        vapid: dict[str, str] = dict(
            (await session.execute(text("SELECT app_key, vapid_private_pem FROM apps"))).all()
        )
        rows = await session.execute(text("SELECT app_id, provider, data FROM app_credentials"))
        creds = {(r[0], r[1]): r[2] if isinstance(r[2], dict) else json.loads(r[2]) for r in rows}
    return {k: str(v) for k, v in vapid.items()}, creds


async def _raw_identity(db: Database) -> dict[str, str]:
    """Each app's identity key as the database holds it."""
    async with db.session() as session:
        rows = await session.execute(text("SELECT app_key, identity_secret_key FROM apps"))
        return {str(app_key): str(stored) for app_key, stored in rows.all()}


async def _opened_identity(db: Database, app_key: str) -> str | None:
    async with db.session() as session:
        return apps.identity_key(session, await apps.by_key(session, app_key))


async def _app_with_secrets(db: Database) -> apps.AppCreated:
    async with db.session() as session:
        created = await apps.create(session, "shop")
        await credentials.store(session, created.app_key, "wns", dict(WNS))
    return created


async def _opened(db: Database, app_key: str) -> tuple[str, dict[str, dict[str, Any]]]:
    async with db.session() as session:
        app = await apps.by_key(session, app_key)
        return credentials.vapid_private_pem(session, app), await credentials.for_app(session, app.id)


def _sqlite_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    if not database_url.startswith("sqlite"):
        pytest.skip("the key file case runs on SQLite; the sealing itself is tested on both")
    return make_settings(database_url, secret_key_file=str(tmp_path / "keys" / "secret.keys"), **overrides)


async def test_stored_secrets_are_sealed_and_open_to_the_same_values(db: Database) -> None:
    created = await _app_with_secrets(db)
    vapid, creds = await _raw(db)
    stored_vapid = vapid[created.app_key]
    assert stored_vapid.startswith(MARKER)
    assert "PRIVATE KEY" not in stored_vapid
    (stored_cred,) = creds.values()
    assert list(stored_cred) == ["sealed"]
    assert stored_cred["sealed"].startswith(MARKER)
    assert WNS["client_secret"] not in json.dumps(stored_cred)
    pem, opened = await _opened(db, created.app_key)
    assert opened == {"wns": WNS}
    assert serialization.load_pem_private_key(pem.encode(), password=None) is not None
    stored_identity = (await _raw_identity(db))[created.app_key]
    assert stored_identity.startswith(MARKER)
    assert created.identity_secret_key not in stored_identity
    assert await _opened_identity(db, created.app_key) == created.identity_secret_key


async def test_legacy_plaintext_reads_and_is_sealed_at_start(db: Database) -> None:
    created = await _app_with_secrets(db)
    pem, _ = await _opened(db, created.app_key)
    async with db.session() as session:  # what a database written before sealing holds
        await session.execute(text("UPDATE apps SET vapid_private_pem = :pem"), {"pem": pem})
        await session.execute(text("UPDATE app_credentials SET data = :data"), {"data": json.dumps(WNS)})
        # The identity key as migration 0007 and `clarion apps update --identity-secret-key` stored it.
        identity = {"key": created.identity_secret_key}
        await session.execute(text("UPDATE apps SET identity_secret_key = :key"), identity)
    assert await _opened(db, created.app_key) == (pem, {"wns": WNS})
    assert await _opened_identity(db, created.app_key) == created.identity_secret_key

    report = await secrets.prepare(db)

    assert report.as_dict() == {"checked": 3, "encrypted": 3, "reencrypted": 0}
    vapid, creds = await _raw(db)
    assert vapid[created.app_key].startswith(MARKER)
    assert all(value["sealed"].startswith(MARKER) for value in creds.values())
    assert (await _raw_identity(db))[created.app_key].startswith(MARKER)
    assert await _opened(db, created.app_key) == (pem, {"wns": WNS})
    assert await _opened_identity(db, created.app_key) == created.identity_secret_key
    assert (await secrets.prepare(db)).as_dict() == {"checked": 3, "encrypted": 0, "reencrypted": 0}


async def test_altered_or_moved_ciphertext_is_refused(db: Database) -> None:
    first, second = await _app_with_secrets(db), await _app_with_secrets(db)
    vapid, _ = await _raw(db)
    sealed = vapid[first.app_key]
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    async with db.session() as session:
        await session.execute(
            text("UPDATE apps SET vapid_private_pem = :v WHERE app_key = :k"),
            {"v": flipped, "k": first.app_key},
        )
        # A valid ciphertext of another app, copied over: bound to its own app, so refused too.
        await session.execute(
            text("UPDATE apps SET vapid_private_pem = :v WHERE app_key = :k"),
            {"v": sealed, "k": second.app_key},
        )
    for app_key in (first.app_key, second.app_key):
        with pytest.raises(SecretsUnavailable, match="fails authentication"):
            await _opened(db, app_key)
    # An identity key is bound to its app and its column: another app's, or a VAPID key, is refused.
    identities = await _raw_identity(db)
    async with db.session() as session:
        moved = {"v": identities[first.app_key], "k": second.app_key}
        await session.execute(text("UPDATE apps SET identity_secret_key = :v WHERE app_key = :k"), moved)
        relabelled = {"v": sealed, "k": first.app_key}  # the first app's own VAPID ciphertext
        await session.execute(text("UPDATE apps SET identity_secret_key = :v WHERE app_key = :k"), relabelled)
    for app_key in (first.app_key, second.app_key):
        with pytest.raises(SecretsUnavailable, match="fails authentication"):
            await _opened_identity(db, app_key)
    with pytest.raises(SecretsUnavailable, match="fails authentication"):
        await secrets.prepare(db)


async def test_the_key_file_is_generated_once_owner_only(database_url: str, tmp_path: Path) -> None:
    settings = _sqlite_settings(database_url, tmp_path)
    db = open_database(settings)
    try:
        await secrets.prepare(db)
        key_file = tmp_path / "keys" / "secret.keys"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        first = key_file.read_text()
        assert len(parse_keys(first, "file")) == 1
        created = await _app_with_secrets(db)
        await secrets.prepare(db)
        assert key_file.read_text() == first
    finally:
        await db.dispose()
    default = make_settings(database_url)
    assert (
        SecretBox.from_settings(default).key_file
        == Path(database_url.split("///", 1)[1]).parent / "secret.keys"
    )
    assert created.app_key


async def test_rotate_with_a_key_file_reencrypts_everything(database_url: str, tmp_path: Path) -> None:
    settings = _sqlite_settings(database_url, tmp_path)
    db = open_database(settings)
    try:
        created = await _app_with_secrets(db)
        pem, _ = await _opened(db, created.app_key)
        key_file = tmp_path / "keys" / "secret.keys"
        (old_key,) = parse_keys(key_file.read_text(), "file")
        old_box = SecretBox([old_key])
        vapid_before, creds_before = await _raw(db)

        key_id, report = await secrets.rotate(db)

        assert report.as_dict() == {"checked": 3, "encrypted": 0, "reencrypted": 3}
        (new_key_bytes,) = parse_keys(key_file.read_text(), "file")
        assert new_key_bytes != old_key
        assert key_id != old_box.primary_id
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        vapid, creds = await _raw(db)
        assert sealed_key_id(vapid[created.app_key]) == key_id != sealed_key_id(vapid_before[created.app_key])
        assert all(sealed_key_id(value["sealed"]) == key_id for value in creds.values())
        assert creds != creds_before
        assert sealed_key_id((await _raw_identity(db))[created.app_key]) == key_id
        assert await _opened(db, created.app_key) == (pem, {"wns": WNS})
        assert await _opened_identity(db, created.app_key) == created.identity_secret_key
        # A process still holding the old key alone reads the file again and follows the rotation.
        reader = open_database(settings)
        try:
            assert await _opened(reader, created.app_key) == (pem, {"wns": WNS})
        finally:
            await reader.dispose()
        with pytest.raises(SecretsUnavailable, match="missing or wrong"):
            old_box.open(vapid[created.app_key], f"apps.vapid_private_pem:{created.app_key}")
    finally:
        await db.dispose()


async def test_during_rotation_old_ciphertext_still_opens(database_url: str, tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    db = open_database(make_settings(database_url, secret_key=old))
    try:
        created = await _app_with_secrets(db)
        pem, _ = await _opened(db, created.app_key)
    finally:
        await db.dispose()
    # The new key first, the old one kept: what is sealed under the old key still opens.
    db = open_database(make_settings(database_url, secret_key=f"{new},{old}"))
    try:
        assert await _opened(db, created.app_key) == (pem, {"wns": WNS})
        key_id, report = await secrets.rotate(db)
        assert report.reencrypted == 3
    finally:
        await db.dispose()
    # Rotated: the new key alone reads everything.
    db = open_database(make_settings(database_url, secret_key=new))
    try:
        assert await _opened(db, created.app_key) == (pem, {"wns": WNS})
        assert await _opened_identity(db, created.app_key) == created.identity_secret_key
        assert SecretBox(parse_keys(new, "new")).primary_id == key_id
    finally:
        await db.dispose()


async def test_cli_credentials_are_sealed_and_a_wrong_or_missing_key_stops_with_one_line(
    database_url: str, tmp_path: Path
) -> None:
    key = new_key()
    env = {"CLARION_SECRET_KEY": key}
    created = json.loads(clarion(database_url, "apps", "create", "shop", "--json", env=env).stdout)
    stored = clarion(
        database_url,
        "apps",
        "credentials",
        created["app_key"],
        f"--wns-client-id={WNS['client_id']}",
        f"--wns-client-secret={WNS['client_secret']}",
        "--json",
        env=env,
    )
    assert stored.returncode == 0, stored.stderr
    db = open_database(make_settings(database_url, secret_key=key))
    try:
        _, creds = await _raw(db)
        assert WNS["client_secret"] not in json.dumps(list(creds.values()))
        assert (await _opened(db, created["app_key"]))[1] == {"wns": WNS}
        # `apps create --json` printed the identity key (CONTRACT.md); the database holds it sealed.
        assert created["identity_secret_key"] not in json.dumps(await _raw_identity(db))
        assert await _opened_identity(db, created["app_key"]) == created["identity_secret_key"]
    finally:
        await db.dispose()

    wrong = clarion(database_url, "secrets", "encrypt", check=False, env={"CLARION_SECRET_KEY": new_key()})
    missing_key = {"CLARION_SECRET_KEY": "", "CLARION_SECRET_KEY_FILE": str(tmp_path / "none.keys")}
    missing = clarion(
        database_url, "apps", "update", created["app_key"], "--plan", "free", check=False, env=missing_key
    )
    for refused, reason in ((wrong, "missing or wrong"), (missing, "there is no secret key")):
        assert refused.returncode == 2
        # One line for the operator, after the start-up log lines (JSON: stderr is not a terminal),
        # and nothing else.
        lines = refused.stderr.strip().splitlines()
        not_logged = [line for line in lines if not line.startswith("{")]
        assert not_logged == [lines[-1]], refused.stderr
        assert lines[-1].startswith("clarion: ")
        assert reason in refused.stderr
        assert "Traceback" not in refused.stderr
    assert not (tmp_path / "none.keys").exists()

    rotated = clarion(database_url, "secrets", "rotate", "--json", env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["checked"] == 3


async def test_a_campaign_still_signs_with_the_opened_vapid_key(db: Database) -> None:
    created = await _app_with_secrets(db)
    async with db.session() as session:
        app = await apps.by_key(session, created.app_key)
        assert isinstance(app, App)
        pem = credentials.vapid_private_pem(session, app)
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert base64.urlsafe_b64encode(public).decode().rstrip("=") == created.vapid_public_key


async def test_rotating_the_secret_key_reseals_retired_vapid_keys(database_url: str, tmp_path: Path) -> None:
    settings = _sqlite_settings(database_url, tmp_path)
    db = open_database(settings)
    try:
        created = await _app_with_secrets(db)
        old_pem, _ = await _opened(db, created.app_key)
        async with db.session() as session:
            await subscriber_service.rotate_vapid(session, await apps.by_key(session, created.app_key))

        key_id, report = await secrets.rotate(db)

        assert report.as_dict() == {"checked": 4, "encrypted": 0, "reencrypted": 4}
        async with db.session() as session:
            app = await apps.by_key(session, created.app_key)
            retired = await credentials.retired_vapid_keys(session, app)
            raw = (await session.execute(text("SELECT private_pem FROM vapid_keys"))).scalars().all()
        assert [pem for pem, _ in retired.values()] == [old_pem]
        assert [sealed_key_id(value) for value in raw] == [key_id]
    finally:
        await db.dispose()
