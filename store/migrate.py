"""Alembic, driven from code: `upgrade(url)` brings a database to the newest schema; `current`,
`heads` and `known` say where a database stands (ops/preflight.py)."""
from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def heads() -> tuple[str, ...]:
    """The schema revisions this code's migrations end at (one, unless branches diverge)."""
    return tuple(ScriptDirectory.from_config(alembic_config("")).get_heads())


def known(revision: str) -> bool:
    """Whether `revision` is one of this code's migrations (an older schema, or the newest)."""
    try:
        return ScriptDirectory.from_config(alembic_config("")).get_revision(revision) is not None
    except (CommandError, RevisionError):  # unknown, or not a revision id at all
        return False


def current(connection: Connection) -> str | None:
    """The database's schema revision, read without writing; None when it has no schema."""
    chatty = logging.getLogger("alembic.runtime.migration")  # "Context impl SQLiteImpl." on every look
    level = chatty.level
    chatty.setLevel(logging.WARNING)
    try:
        return MigrationContext.configure(connection).get_current_revision()
    finally:
        chatty.setLevel(level)
