"""Stored secrets as a whole: the start-up pass (legacy plaintext sealed in place, the key checked) and
key rotation. Sealing itself is secrets_box's; the SQL is the repository's."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from clarion.app_tenant.repository import (
    APP_SECRET_COLUMNS,
    StoredSecretRepository,
    app_secret_where,
    open_credential,
    seal_credential,
    stored_sealed_text,
    vapid_key_where,
)
from clarion.db import Database
from clarion.secrets_box import (
    SecretBox,
    SecretsUnavailable,
    box_of,
    is_sealed,
    new_key,
    parse_keys,
    write_key_file,
)


@dataclass
class ResealReport:
    checked: int = 0
    encrypted: int = 0  # legacy plaintext values sealed
    reencrypted: int = 0  # values moved from an older key to the newest

    def as_dict(self) -> dict[str, int]:
        return {"checked": self.checked, "encrypted": self.encrypted, "reencrypted": self.reencrypted}


async def _reseal_app_secrets(
    repo: StoredSecretRepository, box: SecretBox, report: ResealReport, rotate: bool
) -> None:
    """The apps' VAPID private keys and identity keys."""
    for column in APP_SECRET_COLUMNS:
        for app_id, app_key, stored in await repo.app_secrets(column):
            report.checked += 1
            where = app_secret_where(column, app_key)
            plaintext = box.open(stored, where)  # every value is checked, even the current
            if box.is_current(stored) or (is_sealed(stored) and not rotate):
                continue
            await repo.set_app_secret(app_id, column, box.seal(plaintext, where))
            _count(report, stored)


async def _reseal_vapid_keys(
    repo: StoredSecretRepository, box: SecretBox, report: ResealReport, rotate: bool
) -> None:
    """The apps' VAPID private keys from before a rotation (still signing older subscriptions)."""
    for key_id, app_key, public_key, stored in await repo.vapid_keys():
        report.checked += 1
        where = vapid_key_where(app_key, public_key)
        plaintext = box.open(stored, where)
        if box.is_current(stored) or not rotate:
            continue
        await repo.set_vapid_key(key_id, box.seal(plaintext, where))
        _count(report, stored)


async def _reseal_credentials(
    repo: StoredSecretRepository, box: SecretBox, report: ResealReport, rotate: bool
) -> None:
    for app_id, provider, stored in await repo.credentials():
        report.checked += 1
        data = open_credential(box, app_id, provider, stored)
        sealed = stored_sealed_text(stored)
        if sealed is not None and (box.is_current(sealed) or not rotate):
            continue
        await repo.set_credential(app_id, provider, seal_credential(box, app_id, provider, data))
        _count(report, sealed or "")


def _count(report: ResealReport, previous: str) -> None:
    if is_sealed(previous):
        report.reencrypted += 1
    else:
        report.encrypted += 1


async def reseal(session: AsyncSession, *, rotate: bool) -> ResealReport:
    """Open every stored secret (a missing or wrong key, or an altered value, raises SecretsUnavailable);
    seal legacy plaintext ones, and with `rotate` also those sealed under an older key."""
    box, repo, report = box_of(session), StoredSecretRepository(session), ResealReport()
    await _reseal_app_secrets(repo, box, report, rotate)
    await _reseal_credentials(repo, box, report, rotate)
    await _reseal_vapid_keys(repo, box, report, rotate)
    return report


async def _any_sealed(session: AsyncSession) -> bool:
    repo = StoredSecretRepository(session)
    for column in APP_SECRET_COLUMNS:
        if any(is_sealed(stored) for _, _, stored in await repo.app_secrets(column)):
            return True
    return any(stored_sealed_text(stored) is not None for _, _, stored in await repo.credentials())


async def prepare(db: Database) -> ResealReport:
    """At start: refuse to run with a key that cannot read what is stored; seal legacy plaintext."""
    async with db.session() as session:
        box = box_of(session)
        if not box.has_keys():
            if not await _any_sealed(session):
                box.ensure_key()  # first start: the key file is generated now (or read, if just made)
            else:
                # Another process starting at the same moment may have sealed since this box first
                # looked; it created the key file before sealing, so the file is there now if ever.
                box.reload()
                if not box.has_keys():
                    raise SecretsUnavailable(
                        f"stored secrets are encrypted but there is no secret key: set CLARION_SECRET_KEY"
                        f" or restore {box.key_file} (docs/security.md, Secrets at rest)"
                    )
        return await reseal(session, rotate=False)


async def rotate(db: Database) -> tuple[str, ResealReport]:
    """Seal everything under a new key. With a key file: generate it, hold it beside the old ones
    while re-encrypting, then drop the old ones. With CLARION_SECRET_KEY: re-encrypt under its first
    key (the operator put the new key first); the old ones can then be removed from the variable."""
    async with db.session() as session:
        box = box_of(session)
    if box.key_file is not None:
        await prepare(db)  # the current keys must read everything before a new one is added
        box.reload()
        old = parse_keys(box.key_file.read_text(), str(box.key_file))
        new = parse_keys(new_key(), "new key")
        _write_keys(box, new + old)
    async with db.session() as session:
        report = await reseal(session, rotate=True)
    # A second pass catches a value another process sealed under an old key during the first.
    async with db.session() as session:
        late = await reseal(session, rotate=True)
    report.reencrypted += late.reencrypted + late.encrypted
    if box.key_file is not None:
        _write_keys(box, new)
    return box.primary_id, report


def _write_keys(box: SecretBox, keys: list[bytes]) -> None:
    assert box.key_file is not None
    write_key_file(box.key_file, keys)
    box.reload()
