"""Engine and session construction; SQLite gets WAL and foreign keys, PostgreSQL psycopg 3."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from store import jsontext


def make_engine(url: str, *, immediate: bool = True, **kwargs) -> Engine:
    """Build an engine. On SQLite, `immediate` makes every transaction take the write lock
    up front (BEGIN IMMEDIATE), so two writers queue on busy_timeout instead of one failing
    with "database is locked" when it upgrades a read to a write. JSON columns keep Decimals
    exact both ways (Xero's raw objects carry money)."""
    kwargs.setdefault("json_serializer", jsontext.dumps)
    kwargs.setdefault("json_deserializer", jsontext.loads)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True, **kwargs)


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


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with factory() as session, session.begin():
        yield session


IN_CHUNK = 500  # ids per IN (...) clause: well under SQLite's bound-parameter limit


def upsert_insert(session: Session, model: type) -> Any:
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
