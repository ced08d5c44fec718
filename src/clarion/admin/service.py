"""The admin token: CLARION_ADMIN_TOKEN, or one generated on first start, printed once and kept in a
file readable by its owner only; the database holds only its hash."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clarion import errors
from clarion.admin.repository import MetaRepository
from clarion.app_tenant.security import hash_secret, verify_secret
from clarion.config import Settings
from clarion.db import Database
from clarion.secrets_box import write_private_file

KEY = "admin_token_sha256"
TOKEN_FILE_NAME = "admin.token"  # noqa: S105 (a file name, not a secret)


class AdminTokenUnavailable(Exception):
    """The token cannot be shown or rotated here; the message says why and what to do."""


def token_file(settings: Settings) -> Path:
    return settings.files_dir() / TOKEN_FILE_NAME


async def _generate(repo: MetaRepository, settings: Settings) -> str:
    """A new token: its file first, so that a token whose hash is stored can always be shown."""
    token = secrets.token_urlsafe(24)
    write_private_file(token_file(settings), token + "\n")
    await repo.put(KEY, hash_secret(token))
    return token


async def ensure_admin_token(db: Database, settings: Settings) -> dict[str, Any]:
    """Store the token's hash; print a generated token once (`clarion admin-token` shows it later)."""
    async with db.session() as session:
        repo = MetaRepository(session)
        if settings.admin_token:
            await repo.put(KEY, hash_secret(settings.admin_token))
            return {}
        if await repo.get(KEY) is None:
            token = await _generate(repo, settings)
            print(
                f"clarion: generated admin token (kept in {token_file(settings)}): {token}", file=sys.stderr
            )
    return {}


async def show_admin_token(db: Database, settings: Settings) -> str:
    """The token in force: CLARION_ADMIN_TOKEN, or the generated one read back from its file."""
    if settings.admin_token:
        return settings.admin_token
    path = token_file(settings)
    async with db.session() as session:
        stored = await MetaRepository(session).get(KEY)
    if stored is None:  # as `clarion serve` would on its first start
        return await rotate_admin_token(db, settings)
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not verify_secret(token, stored):
        raise AdminTokenUnavailable(
            f"{path} does not hold the admin token in force (generated before Clarion kept it, or"
            " elsewhere): `clarion admin-token --rotate` makes a new one"
        )
    return token


async def rotate_admin_token(db: Database, settings: Settings) -> str:
    """A new generated token; the old one is refused from the next request on (each request reads
    the stored hash)."""
    if settings.admin_token:
        raise AdminTokenUnavailable("the admin token is set by CLARION_ADMIN_TOKEN: change it there")
    async with db.session() as session:
        return await _generate(MetaRepository(session), settings)


async def check_admin_token(session: AsyncSession, settings: Settings, presented: str) -> None:
    """Bearer token of the admin API, compared in constant time with the stored hash."""
    stored = await MetaRepository(session).get(KEY)
    expected = hash_secret(settings.admin_token) if settings.admin_token else stored
    if not verify_secret(presented, expected):
        raise errors.Unauthorized()
