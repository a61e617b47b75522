"""PostgreSQL for the benchmarks: BENCH_PG_URL or DATABASE_URL if set, else a throwaway cluster.

The cluster is Debian's PostgreSQL (/usr/lib/postgresql/*/bin), initialised in a temporary
directory owned by `postgres`, on a free loopback port, with fsync off (it holds nothing
worth keeping), and stopped (its directory removed) at the end. No binaries: `Postgres.skip`
says why and the PostgreSQL figures are reported as skipped.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from sqlalchemy import text

from infra.redis_server import free_port
from store import db as store_db
from store.migrate import upgrade


@dataclass
class Postgres:
    url: str | None = None
    origin: str = ""  # how we got it: "BENCH_PG_URL", "DATABASE_URL" or "throwaway cluster ..."
    skip: str | None = None  # why there is none
    version: str | None = None
    _datadir: str | None = None
    _bindir: str | None = None

    @classmethod
    def start(cls) -> Postgres:
        for name in ("BENCH_PG_URL", "DATABASE_URL"):
            value = os.environ.get(name, "")
            if value.startswith("postgresql"):
                pg = cls(url=value, origin=name)
                pg.version = pg._server_version()
                return pg
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
        if not bins:
            return cls(skip="no PostgreSQL binaries (/usr/lib/postgresql/*/bin): apt-get install postgresql")
        bindir = os.path.dirname(bins[-1])
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return cls(skip="no 'postgres' system user to run the cluster as")
        datadir = tempfile.mkdtemp(prefix="xm-bench-pg-")
        shutil.chown(datadir, "postgres", "postgres")
        port = free_port()
        opts = f"-p {port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=512MB"
        steps = [
            f"{bindir}/initdb -D {datadir} -U postgres --auth=trust -E UTF8",
            f"{bindir}/pg_ctl -D {datadir} -l {datadir}/server.log -o '{opts}' -w start",
            f"psql -h 127.0.0.1 -p {port} -U postgres -q -c \"CREATE USER bench PASSWORD 'bench'\" "
            f"-c 'CREATE DATABASE bench OWNER bench'",
        ]
        pg = cls(origin=f"throwaway cluster started by bench ({bindir}, port {port}, fsync=off)",
                 _datadir=datadir, _bindir=bindir)
        for step in steps:
            done = _as_postgres(step)
            if done.returncode != 0:
                pg.stop()
                return cls(skip=f"could not start PostgreSQL: {done.stderr.strip()[:300] or done.stdout[:300]}")
        pg.url = f"postgresql+psycopg://bench:bench@127.0.0.1:{port}/bench"
        pg.version = pg._server_version()
        return pg

    def fresh(self) -> str:
        """The URL, with an empty schema at the newest migration."""
        assert self.url
        engine = store_db.make_engine(self.url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        upgrade(self.url)
        return self.url

    def stop(self) -> None:
        if self._datadir and self._bindir:
            _as_postgres(f"{self._bindir}/pg_ctl -D {self._datadir} -m fast -w stop")
            shutil.rmtree(self._datadir, ignore_errors=True)
            self._datadir = None

    def _server_version(self) -> str | None:
        engine = store_db.make_engine(self.url)
        try:
            with engine.connect() as conn:
                return conn.execute(text("SHOW server_version")).scalar_one()
        finally:
            engine.dispose()


def _as_postgres(command: str) -> subprocess.CompletedProcess:
    argv = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd="/tmp")


def _version_key(path: str) -> tuple:
    part = path.split("/")[4]
    return tuple(int(p) for p in part.split(".") if p.isdigit())
