"""The real adapters built from Settings: engine, sessions and Redis, created on first use.

Nothing is connected at import time; web and worker processes each build one Runtime.
"""
from __future__ import annotations

from functools import cached_property

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from infra import queue
from infra.settings import Settings
from store import db


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def engine(self) -> Engine:
        return db.make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return db.make_sessionmaker(self.engine)

    @cached_property
    def read_engine(self) -> Engine:
        """Reads only: on SQLite a deferred BEGIN, so readers never queue behind writers
        (WAL lets them read the last committed state); on PostgreSQL the same engine, its
        transactions READ ONLY (BEGIN READ ONLY: no extra round trip), so that a read may end
        in COMMIT (views.api._session: psycopg keeps its prepared statements) and write nothing."""
        if not self.settings.database_url.startswith("sqlite"):
            return self.engine.execution_options(postgresql_readonly=True)
        return db.make_engine(self.settings.database_url, immediate=False)

    @cached_property
    def read_sessions(self) -> sessionmaker[Session]:
        return db.make_sessionmaker(self.read_engine)

    @cached_property
    def redis(self) -> redis.Redis:
        if not self.settings.redis_url:
            raise RuntimeError("REDIS_URL is not set")
        return queue.connect(self.settings.redis_url)

    def close(self) -> None:
        for name in ("engine", "read_engine"):
            if name in self.__dict__:
                self.__dict__[name].dispose()
        if "redis" in self.__dict__:
            self.redis.close()
