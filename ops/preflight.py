"""Before an operator's command touches anything: is the database there, reachable and at this
code's schema, and is Redis reachable? Each problem is one line saying what to do (`Unready`),
never a traceback, and looking creates nothing: a SQLite file that does not exist is not made
by connecting to it (SQLite would make an empty one), and no schema is written.
"""
from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import redis
from sqlalchemy import create_engine, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from infra.settings import DEFAULT_SQLITE
from store import migrate

UPGRADE = "flask --app wsgi db upgrade"
DEMO_ENV = "set -a; . var/demo.env; set +a"  # what makes a shell's commands use `make demo`'s database and Redis
CONNECT_SECONDS = 5


class Unready(Exception):
    """What stops a command before it starts, in one line that says what to do."""


def database(url: str, *, schema: bool = True) -> None:
    """Raise Unready unless the database of `url` exists, answers, and (with `schema`) is at
    this code's newest schema. Without `schema` (`db upgrade`), a SQLite file may be missing."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise Unready(f"DATABASE_URL is not a database URL: {_hidden(url)!r}") from None
    where = _where(parsed, url)
    path = _sqlite_file(parsed)
    if schema and path is not None and not os.path.exists(path):
        raise Unready(f"no database at {where}: create it with `{UPGRADE}`, or set DATABASE_URL "
                      f"(against `make demo`: {DEMO_ENV})")
    if path is not None and not os.path.isdir(os.path.dirname(path) or "."):
        raise Unready(f"no directory {os.path.dirname(path)} for the database at {where}: "
                      "create it, or set DATABASE_URL")
    if not schema and path is not None:
        return  # `db upgrade` creates it
    options = {"timeout": CONNECT_SECONDS} if path is not None else {"connect_timeout": CONNECT_SECONDS}
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # as store.db.make_engine does
    engine = create_engine(parsed, poolclass=NullPool, connect_args=options if _takes(parsed) else {})
    try:
        with engine.connect() as connection:
            revision = migrate.current(connection) if schema else None
    except DBAPIError as error:
        raise Unready(f"cannot reach the database at {where} ({_first_line(error.orig)}): check DATABASE_URL "
                      "and that the database server is running") from None
    finally:
        engine.dispose()
    if not schema:
        return
    heads = migrate.heads()
    if revision is None:
        raise Unready(f"the database at {where} has no schema: run `{UPGRADE}`")
    if revision not in heads:
        if migrate.known(revision):
            raise Unready(f"the database at {where} is at schema {revision}, this code needs {', '.join(heads)}: "
                          f"run `{UPGRADE}`")
        raise Unready(f"the database at {where} is at schema {revision}, which this code does not know "
                      "(newer code migrated it): run that code, or point DATABASE_URL elsewhere")


def redis_server(url: str | None) -> None:
    """Raise Unready unless Redis at `url` answers a PING."""
    if not url:
        raise Unready(f"REDIS_URL is not set: the job queue is needed for this (against `make demo`: {DEMO_ENV})")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_SECONDS, socket_timeout=CONNECT_SECONDS,
                                      retry_on_timeout=False)
    except ValueError as error:
        raise Unready(f"REDIS_URL is not a Redis URL ({error})") from None
    try:
        client.ping()
    except redis.RedisError as error:
        raise Unready(f"cannot reach Redis at {_hidden(url)} ({_first_line(error)}): check REDIS_URL and that "
                      f"Redis is running (`make demo` runs one while it runs)") from None
    finally:
        client.close()


def _sqlite_file(url: URL) -> str | None:
    """The SQLite database's file, or None: not SQLite, or in memory."""
    if url.get_backend_name() != "sqlite":
        return None
    name = url.database or ""
    if not name or name == ":memory:" or name.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return os.path.abspath(name)


def _takes(url: URL) -> bool:
    """Whether the driver takes the connect time-out we pass (sqlite3's `timeout`, libpq's)."""
    return url.get_backend_name() in ("sqlite", "postgresql")


def _where(url: URL, raw: str) -> str:
    path = _sqlite_file(url)
    if path is None:
        return url.render_as_string(hide_password=True)
    return path + (" (DATABASE_URL is unset)" if raw == DEFAULT_SQLITE else "")


def _hidden(url: str) -> str:
    """`url` without its password."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
    except ValueError:
        return "(unreadable URL)"


def _first_line(error: BaseException | None) -> str:
    text = str(error or "").strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__
