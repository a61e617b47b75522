"""The processes a benchmark needs, started as production starts them, and stopped afterwards.

- `Gunicorn`: `gunicorn 'wsgi:create_app()'` (or the bare baseline app) on a free loopback port,
  with the Procfile's gthread settings;
- `Worker`: `python -m worker` in its own process group (so SIGKILL takes its scheduler and
  ticker, and with --fork its work horse, too);
- `sqlite_database`: a migrated SQLite file;
- `connect_tenants`: workspaces connected to emulator tenants (client-credentials grant),
  with the backfill marked done when the mirror is loaded some other way;
- `Http`: a tiny HTTP client, one connection per request.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from infra.redis_server import free_port
from infra.settings import Settings
from store import connections, workspaces
from store.db import make_engine, make_sessionmaker, transaction
from store.migrate import upgrade
from store.models import SyncState
from store.secrets import TokenBox

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
WEB_WORKERS = 1  # gunicorn --workers: the Procfile's WEB_CONCURRENCY default
GUNICORN_CONF = ROOT / "gunicorn.conf.py"  # the Procfile's settings (gthread, WEB_THREADS, gc.freeze)
FAST_WORKER = {  # the worker's knobs for benchmarks: quick relay and retries, no reconcile sweeps
    "RELAY_SECONDS": "1",
    "RECONCILE_SECONDS": "3600",
    "RETRY_BASE_SECONDS": "0.5",
    "RETRY_MAX_SECONDS": "5",
    "BUSY_RETRY_SECONDS": "0.2",
    "WORKER_LEASE_SECONDS": "15",
    "WORKER_MAINTENANCE_SECONDS": "5",
}


def logs_dir() -> Path:
    path = VAR / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def token_keys() -> str:
    return Fernet.generate_key().decode()


def sqlite_database(name: str) -> str:
    """A new, migrated SQLite database under var/bench/ (any old one of that name is removed)."""
    VAR.mkdir(parents=True, exist_ok=True)
    path = VAR / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


def sessions_for(url: str):
    return make_sessionmaker(make_engine(url))


# --- processes ---------------------------------------------------------------------------


class _Process:
    def __init__(self, argv: list[str], env: dict[str, str], log_name: str):
        self.log_path = logs_dir() / log_name
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (the child writes to it until stop)
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and its work horse), as a lost machine would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        if not self._log.closed:
            self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if not self._log.closed:
            self._log.close()

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


class Gunicorn(_Process):
    """gunicorn on 127.0.0.1:<free port>, configured as the Procfile's `web` (its gunicorn.conf.py,
    without the access log), with `workers` processes; GUNICORN_CMD_ARGS in `env` overrides."""

    def __init__(self, app: str, env: dict[str, str], name: str, workers: int = WEB_WORKERS):
        env = {"WEB_ACCESS_LOG": "", **env}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            sys.executable, "-m", "gunicorn", app, "--config", str(GUNICORN_CONF), "--workers", str(workers),
            "--bind", f"127.0.0.1:{self.port}", "--backlog", "2048", "--log-level", "warning",
        ]
        super().__init__(argv, env, f"gunicorn-{name}.log")
        self._wait_up()

    def _wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.tail()}")
            try:
                Http(self.url).request("GET", "/healthz-probe")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not come up:\n{self.tail()}")


class Worker(_Process):
    """`python -m worker`: one RQ worker with its scheduler and ticker (`args`: more options, e.g. --fork)."""

    def __init__(self, env: dict[str, str], name: str = "worker", args: tuple[str, ...] = ()):
        super().__init__([sys.executable, "-m", "worker", "--log-level", "WARNING", *args], env, f"{name}.log")


# --- tenants -------------------------------------------------------------------------------


@dataclass
class Connected:
    workspace_id: int
    tenant_id: str
    admin_key: str
    read_key: str


def connect_tenants(
    settings: Settings, sessions, tenant_ids: list[str], *, backfill_done: bool = False, token: dict | None = None,
    organisation: bool = False,
) -> list[Connected]:
    """One workspace per tenant, connected with a client-credentials token from the emulator
    (and, with `organisation`, its Organisation read and noted, as the connect flow does)."""
    from xero.client import XeroClient
    from xero.tokens import normalise

    if token is None:
        token = normalise(XeroClient(settings).client_credentials_token(), time.time())
    organisations = {t: XeroClient(settings).organisation(t, token["access_token"]) for t in tenant_ids} \
        if organisation else {}
    box = TokenBox(settings.token_keys)
    now = datetime.now(timezone.utc)
    out = []
    with transaction(sessions) as session:
        for tenant_id in tenant_ids:
            ws = workspaces.create_workspace(session, f"bench {tenant_id[:8]}", now)
            admin = workspaces.issue_key(session, ws.id, "admin", now)
            read = workspaces.issue_key(session, ws.id, "read", now)
            record = connections.connect(session, box, workspace_id=ws.id, tenant_id=tenant_id, token=token, now=now)
            if tenant_id in organisations:
                connections.note_organisation(session, record.id, organisations[tenant_id], now)
            if backfill_done:
                session.merge(SyncState(tenant_id=tenant_id, backfill_status="done", backfill_page=0,
                                        backfill_fetched=0, unannounced_changes=0, invoices_hwm=now,
                                        payments_hwm=now, contacts_hwm=now))
            out.append(Connected(ws.id, tenant_id, admin, read))
    return out


# --- HTTP ------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Http:
    base: str
    key: str | None = None
    timeout: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Response:
        host, port = self.base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
        all_headers = {**self.headers, **(headers or {})}
        if self.key:
            all_headers["Authorization"] = f"Bearer {self.key}"
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        started = time.perf_counter()
        try:
            conn.request(method, path, body=data, headers=all_headers)
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        return Response(response.status, payload, time.perf_counter() - started)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def put(self, path: str, body: Any) -> Response:
        return self.request("PUT", path, body)


@contextmanager
def temporary_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as path:
        yield Path(path)
