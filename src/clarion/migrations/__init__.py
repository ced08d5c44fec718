"""Alembic migrations, shipped inside the package so an installed Clarion can upgrade its database."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

HERE = Path(__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str) -> None:
    """Apply every migration (the env runs them through the async driver of the URL)."""
    command.upgrade(alembic_config(database_url), "head")


def upgrade_on_start(database_url: str) -> None:
    """serve, worker and the CLI bring the schema up to date before they use it (idempotent)."""
    upgrade(database_url)


@cache
def head_revisions() -> frozenset[str]:
    """The revisions this version of Clarion expects the schema to be at (read once: the migrations
    shipped with a running process do not change)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())


def applied_revisions(connection: Connection) -> frozenset[str]:
    """The revisions the database's schema is at (alembic's own table); run through `run_sync`."""
    return frozenset(MigrationContext.configure(connection).get_current_heads())
