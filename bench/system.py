"""The whole system, live: the emulator (in this process), Redis, the mirror database, gunicorn
serving the app (the emulator's webhooks go to it) and real `python -m worker` processes.

    with LiveSystem(database_url, emulator_options, workers=1) as live:
        live.connect(tenant_ids)           # workspaces connected; the workers' ticker backfills
        live.wait_backfilled(tenant_ids)
        ...                                # changes through live.state, reads through live.api(key)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import func, select

from bench import stack
from emulator.testing import RunningEmulator, run_emulator
from infra.redis_server import RedisServer, start_embedded
from infra.settings import Settings
from store.models import InboxEvent, SyncState


@dataclass
class LiveSystem:
    database_url: str
    emulator_options: dict
    workers: int = 1
    worker_env: dict[str, str] = field(default_factory=dict)
    emulator: RunningEmulator | None = None
    redis: RedisServer | None = None
    web: stack.Gunicorn | None = None
    worker_processes: list[stack.Worker] = field(default_factory=list)
    tenants: dict[str, stack.Connected] = field(default_factory=dict)
    name: str = "live"
    worker_args: tuple[str, ...] = ()  # more `python -m worker` options, e.g. ("--fork",)

    def __enter__(self) -> LiveSystem:
        try:
            self.keys = stack.token_keys()
            self.redis = start_embedded()
            self.emulator = run_emulator(**self.emulator_options)
            self.env = {
                **self.emulator.env(),
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis.url,
                "TOKEN_KEYS": self.keys,
                **stack.FAST_WORKER,
                **self.worker_env,
            }
            self.settings = Settings.from_env(self.env)
            self.sessions = stack.sessions_for(self.database_url)
            self.web = stack.Gunicorn("wsgi:create_app()", self.env, f"{self.name}-web")
            self.emulator.state.set_webhook_url(f"{self.web.url}/webhooks/xero")
            for _ in range(self.workers):
                self.start_worker()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for worker in self.worker_processes:
            worker.stop()
        if self.web:
            self.web.stop()
        if self.emulator:
            self.emulator.stop()
        if self.redis:
            self.redis.stop()
        if hasattr(self, "sessions"):
            self.sessions.kw["bind"].dispose()

    @property
    def state(self):
        return self.emulator.state

    def start_worker(self) -> stack.Worker:
        worker = stack.Worker(self.env, f"{self.name}-worker-{len(self.worker_processes)}", self.worker_args)
        self.worker_processes.append(worker)
        return worker

    def connect(self, tenant_ids: list[str], backfill_done: bool = False) -> list[stack.Connected]:
        made = stack.connect_tenants(self.settings, self.sessions, tenant_ids, backfill_done=backfill_done)
        self.tenants.update({c.tenant_id: c for c in made})
        return made

    def api(self, tenant_id: str, admin: bool = False) -> stack.Http:
        connected = self.tenants[tenant_id]
        return stack.Http(self.web.url, connected.admin_key if admin else connected.read_key)

    def backfill_status(self, tenant_id: str) -> str | None:
        with self.sessions() as s:
            return s.scalar(select(SyncState.backfill_status).where(SyncState.tenant_id == tenant_id))

    def wait_backfilled(self, tenant_ids: list[str], timeout: float = 600) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while any(self.backfill_status(t) != "done" for t in tenant_ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"backfill not done after {timeout:.0f}s:\n{self.worker_processes[0].tail()}")
            time.sleep(0.2)
        return time.monotonic() - started

    def outstanding_events(self) -> int:
        with self.sessions() as s:
            return s.scalar(
                select(func.count()).select_from(InboxEvent).where(InboxEvent.state.in_(("pending", "enqueued")))
            ) or 0

    def inbox_events(self) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(InboxEvent)) or 0
