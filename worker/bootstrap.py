"""Wiring: the real adapters of a worker process (database, Redis, Xero, governor, tokens).

Built inside each job from Settings, never at import time.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from infra import metrics
from infra.settings import Settings
from infra.runtime import Runtime
from store.secrets import TokenBox
from worker.gateway import TenantApi
from worker.governor import Budget, Governor
from xero.tokens import TokenKeeper
from xero.client import XeroClient


@dataclass(frozen=True)
class Options:
    """The worker's own knobs, from the environment (seconds unless named otherwise)."""

    reconcile_seconds: float = 3600.0  # healthy cadence's base interval (worker.cadence)
    relay_seconds: float = 5.0
    backfill_slice_seconds: float = 20.0
    lease_seconds: float = 60.0  # a job's hold on its tenant; a killed worker's hold lapses after this
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    retry_attempts: int = 8
    busy_retry_seconds: float = 2.0
    maintenance_seconds: int = 60

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Options":
        env = os.environ if env is None else env
        base = cls()

        def get(name: str, default):
            value = env.get(name, "").strip()
            return type(default)(value) if value else default

        return cls(
            reconcile_seconds=get("RECONCILE_SECONDS", base.reconcile_seconds),
            relay_seconds=get("RELAY_SECONDS", base.relay_seconds),
            backfill_slice_seconds=get("BACKFILL_SLICE_SECONDS", base.backfill_slice_seconds),
            lease_seconds=get("WORKER_LEASE_SECONDS", base.lease_seconds),
            retry_base_seconds=get("RETRY_BASE_SECONDS", base.retry_base_seconds),
            retry_max_seconds=get("RETRY_MAX_SECONDS", base.retry_max_seconds),
            retry_attempts=get("RETRY_ATTEMPTS", base.retry_attempts),
            busy_retry_seconds=get("BUSY_RETRY_SECONDS", base.busy_retry_seconds),
            maintenance_seconds=get("WORKER_MAINTENANCE_SECONDS", base.maintenance_seconds),
        )


class WorkerRuntime:
    """Everything a job needs; `with WorkerRuntime(settings) as rt:` closes it afterwards."""

    def __init__(self, settings: Settings, options: Options | None = None, env: dict[str, str] | None = None):
        env = os.environ if env is None else env
        self.settings = settings
        self.options = options or Options.from_env(env)
        self._base = Runtime(settings)
        self.box = TokenBox(settings.token_keys)
        self.xero = XeroClient(
            settings, on_status=lambda status: metrics.count(self.redis, metrics.XERO_CALLS, status=status),
            # every answer's bytes: a tenant's calls through the gateway are metered there (under the
            # tenant); what is left here is token refreshes, counted under no tenant (`-`)
            on_bytes=lambda tenant_id, nbytes: metrics.egress(self.redis, tenant_id, nbytes),
        )
        self.governor = Governor(self.redis, Budget.from_env(env))
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

    def __enter__(self) -> "WorkerRuntime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
