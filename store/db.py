"""Engine and session construction; SQLite gets WAL and foreign keys, PostgreSQL psycopg 3.

A SQLite database file is readable and writable by its owner only (0600), made so before the
first connection: SQLite gives the WAL and shared-memory files it creates the database file's
own mode, and any left from before are narrowed too. The mirror holds customers' names,
addresses and invoices, and the sealed Xero tokens."""
from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from store import jsontext

READ_ONLY = "xm_read_only"  # execution option: this connection only reads (see read_only_sessions)


def make_engine(url: str, *, immediate: bool = True, **kwargs) -> Engine:
    """Build an engine. On SQLite, `immediate` makes every transaction take the write lock
    up front (BEGIN IMMEDIATE), so two writers queue on busy_timeout instead of one failing
    with "database is locked" when it upgrades a read to a write. JSON columns keep Decimals
    exact both ways (Xero's raw objects carry money). Sessions from `read_only_sessions`
    begin deferred whatever `immediate` says."""
    kwargs.setdefault("json_serializer", jsontext.dumps)
    kwargs.setdefault("json_deserializer", jsontext.loads)
    if url.startswith("sqlite"):
        owner_only(url)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        event.listen(
            engine, "begin",
            lambda conn: conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else begin),
        )
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True, **kwargs)


OWNER_ONLY = stat.S_IRUSR | stat.S_IWUSR  # 0600
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def owner_only(url: str) -> None:
    """Create the SQLite database file of `url` if missing, and make it and its companions
    (WAL, shared memory, rollback journal) 0600. In-memory databases are left alone; so is a
    file another user owns (chmod would fail: SQLite then opens it as it is)."""
    database = make_url(url).database or ""
    if not database or database == ":memory:" or database.startswith("file:") or "mode=memory" in url:
        return
    path = os.path.abspath(database)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY))  # umask only narrows
    except FileExistsError:
        pass
    except OSError:
        return  # no such directory, or not ours to write: SQLite says so on connecting
    for suffix in SQLITE_COMPANIONS:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if stat.S_IMODE(os.stat(path + suffix).st_mode) & ~OWNER_ONLY:
                os.chmod(path + suffix, OWNER_ONLY)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see make_engine)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_only_sessions(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions on the same engine for pure reads. On SQLite they begin deferred (plain BEGIN),
    so a read never queues behind a writer's BEGIN IMMEDIATE: WAL lets it read the last
    committed state. Never write through them (a deferred transaction that starts reading and
    then writes can fail with "database is locked" instead of waiting). Elsewhere: `factory`."""
    engine = factory.kw.get("bind")
    if not isinstance(engine, Engine) or engine.dialect.name != "sqlite":
        return factory
    return sessionmaker(engine.execution_options(**{READ_ONLY: True}),
                        **{k: v for k, v in factory.kw.items() if k != "bind"})


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with factory() as session, session.begin():
        yield session


IN_CHUNK = 500  # ids per IN (...) clause: well under SQLite's bound-parameter limit


def upsert_insert(session: Session, model: Any) -> Any:
    """INSERT that can say ON CONFLICT ..., in the dialect at hand (both of ours have it)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"no upsert for {dialect}")


def chunks(items: Sequence, size: int = IN_CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
