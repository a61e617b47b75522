"""How a tenant's jobs are queued: at most one queued and one running per tenant and kind.

Three kinds, each on its own queue (served in priority order): `sync` (webhook-driven,
`xm-webhook`), `reconcile` (`xm-reconcile`) and `backfill` (`xm-backfill`).

- Queued: a guard key is set in the same Redis transaction that queues (or schedules) the
  job; a job clears its guard as its first act. The sync guard is intake's own
  (`store.dispatch`), so a wake and a worker's follow-up never double up.
- Running: a job holds a lease (a Redis lock with a TTL it renews as it makes progress); a
  second job for the same tenant and kind finds it held and reschedules itself. A killed
  worker's lease lapses after its TTL.
"""
from __future__ import annotations

import random
import re
import uuid

from redis import Redis
from redis.lock import Lock

from store import dispatch, queue

SYNC, RECONCILE, BACKFILL = "sync", "reconcile", "backfill"
QUEUE = {SYNC: queue.WEBHOOK, RECONCILE: queue.RECONCILE, BACKFILL: queue.BACKFILL}
JOB = {SYNC: dispatch.SYNC_JOB, RECONCILE: "worker.jobs.reconcile_tenant", BACKFILL: "worker.jobs.backfill_tenant"}


def guard_key(kind: str, tenant_id: str) -> str:
    if kind == SYNC:
        return dispatch.queued_key(tenant_id)
    return f"xm:queued:{kind}:{tenant_id}"


def lease_key(kind: str, tenant_id: str) -> str:
    return f"xm:running:{kind}:{tenant_id}"


def clear_guard(redis: Redis, kind: str, tenant_id: str) -> None:
    if kind == SYNC:
        dispatch.clear_queued(redis, tenant_id)
    else:
        redis.delete(guard_key(kind, tenant_id))


def is_queued(redis: Redis, kind: str, tenant_id: str) -> bool:
    return bool(redis.exists(guard_key(kind, tenant_id)))


def is_running(redis: Redis, kind: str, tenant_id: str) -> bool:
    return bool(redis.exists(lease_key(kind, tenant_id)))


def _job_id(kind: str, tenant_id: str) -> str:
    return f"{kind}-{re.sub(r'[^A-Za-z0-9_-]', '_', tenant_id)}-{uuid.uuid4().hex[:12]}"


def enqueue(redis: Redis, kind: str, tenant_id: str, delay: float = 0.0) -> bool:
    """Queue (or, with a delay, schedule) the tenant's job unless one is already queued.

    Returns False when a job was already queued: it has not started, so it will see
    everything the caller has committed.
    """
    return dispatch.enqueue_once(
        redis, QUEUE[kind], JOB[kind], tenant_id, guard_key(kind, tenant_id), _job_id(kind, tenant_id), delay
    )


def lease(redis: Redis, kind: str, tenant_id: str, seconds: float) -> Lock | None:
    """Take the tenant's running lease for this kind, or None if another job holds it."""
    lock = redis.lock(lease_key(kind, tenant_id), timeout=seconds)
    return lock if lock.acquire(blocking=False) else None


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: half fixed, half random, so retries spread out."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
