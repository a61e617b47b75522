"""Wiring: the real adapters of a worker process (database, Redis, Xero, governor, tokens).

Built from Settings (the worker's options and Xero's limits among them), never at import time.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from infra import metrics
from infra.settings import Settings, WorkerOptions
from services.runtime import Runtime
from store.secrets import TokenBox
from worker.gateway import TenantApi
from worker.governor import Budget, Governor
from xero.client import XeroClient
from xero.tokens import TokenKeeper


class WorkerRuntime:
    """Everything a job needs; `with WorkerRuntime(settings) as rt:` closes it afterwards."""

    def __init__(self, settings: Settings, options: WorkerOptions | None = None):
        self.settings = settings
        self.options = options or settings.worker
        self._base = Runtime(settings)
        self.box = TokenBox(settings.token_keys)
        self.xero = XeroClient(
            settings, on_status=lambda status: metrics.count(self.redis, metrics.XERO_CALLS, status=status),
            # every answer's bytes: a tenant's calls through the gateway are metered there (under the
            # tenant); what is left here is token refreshes, counted under no tenant (`-`)
            on_bytes=lambda tenant_id, nbytes: metrics.egress(self.redis, tenant_id, nbytes),
        )
        self.governor = Governor(self.redis, Budget.from_limits(settings.xero_limits))
        self.tokens = TokenKeeper(sessions=self.sessions, redis=self.redis, box=self.box, xero=self.xero)

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self._base.sessions

    @property
    def redis(self) -> Redis:
        return self._base.redis

    def api(self, tenant_id: str, priority: str) -> TenantApi:
        return TenantApi(tenant_id, xero=self.xero, tokens=self.tokens, governor=self.governor, priority=priority)

    @staticmethod
    def now() -> datetime:
        return datetime.now(timezone.utc)

    @staticmethod
    def clock() -> float:
        return time.time()

    def close(self) -> None:
        self._base.close()

    def __enter__(self) -> WorkerRuntime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
