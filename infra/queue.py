"""The job queue in one place: RQ queue names, the kinds of a tenant's jobs, waking a
tenant's sync, queueing reconcile and backfill jobs, and the leases that keep one running.

## Queues

The RQ queues, named once, in the order workers serve them, and enqueueing by dotted path.

The web process enqueues jobs by name ("worker.jobs.sync_tenant") so it never imports
worker code or xero-python.

## Waking a sync

Waking a tenant's sync: at most ONE queued sync job per tenant, however many events arrive.

The contract shared by the webhook intake, the inbox relay and the worker:

- `wake(redis, tenant_ids)` queues `worker.jobs.sync_tenant(tenant_id)` for each tenant that
  has no queued job yet. The guard key `QUEUED_KEY` says "a job is queued"; it is set in the
  same Redis transaction that queues the job, so there is never a guard without its job.
- The worker calls `clear_queued(redis, tenant_id)` when its job STARTS, before it reads the
  inbox: events that arrive during the run then queue exactly one follow-up job.
- Both raise `redis.RedisError` when Redis is unreachable; callers decide what that means.

## Kinds, guards and leases

How a tenant's jobs are queued: at most one queued and one running per tenant and kind.

Three kinds, each on its own queue (served in priority order): `sync` (webhook-driven,
`xm-webhook`), `reconcile` (`xm-reconcile`) and `backfill` (`xm-backfill`).

- Queued: a guard key is set in the same Redis transaction that queues (or schedules) the
  job; a job clears its guard as its first act. The sync guard is intake's own
  (`infra.dispatch`), so a wake and a worker's follow-up never double up.
- Running: a job holds a lease (a Redis lock with a TTL it renews as it makes progress); a
  second job for the same tenant and kind finds it held and reschedules itself. A killed
  worker's lease lapses after its TTL.
"""
from __future__ import annotations

import contextlib
import math
import random
import re
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any
from uuid import uuid4

import redis
from redis import Redis, RedisError, WatchError
from redis.lock import Lock
from rq import Queue

WEBHOOK_QUEUE = "xm-webhook"  # syncs driven by webhooks: served first
RECONCILE_QUEUE = "xm-reconcile"  # scheduled If-Modified-Since sweeps
BACKFILL_QUEUE = "xm-backfill"  # initial and requested full loads: served last
PRIORITY_ORDER = (WEBHOOK_QUEUE, RECONCILE_QUEUE, BACKFILL_QUEUE)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


def queue(name: str, connection: redis.Redis) -> Queue:
    return Queue(name, connection=connection)


def queues(connection: redis.Redis) -> list[Queue]:
    return [Queue(name, connection=connection) for name in PRIORITY_ORDER]

class Kind(StrEnum):
    """A tenant's job kinds, each on its own queue."""

    SYNC = "sync"
    RECONCILE = "reconcile"
    BACKFILL = "backfill"


SYNC, RECONCILE, BACKFILL = Kind.SYNC, Kind.RECONCILE, Kind.BACKFILL


QUEUED_KEY = "xm:queued:{tenant_id}"
SYNC_JOB = "worker.jobs.sync_tenant"  # by dotted path: the web process never imports worker code
GUARD_TTL = timedelta(hours=1)  # a lost job cannot silence a tenant for longer than this
JOB_TIMEOUT = timedelta(minutes=15)
RESULT_TTL = timedelta(minutes=10)
FAILURE_TTL = timedelta(days=7)


def queued_key(tenant_id: str) -> str:
    return QUEUED_KEY.format(tenant_id=tenant_id)


def sync_job_id(tenant_id: str) -> str:
    """A fresh RQ job id: RQ allows letters, digits, `-` and `_` only."""
    return f"sync-{re.sub(r'[^A-Za-z0-9_-]', '_', tenant_id)}-{uuid4().hex[:12]}"


def wake(redis: Redis, tenant_ids: Iterable[str], queue_name: str = WEBHOOK_QUEUE) -> list[str]:
    """Queue one sync job for each tenant that has none queued; return the tenants given a new job.

    A tenant left out of the result already has a queued job that has not started, so that job
    will see whatever the caller has just committed.
    """
    tenants = list(dict.fromkeys(tenant_ids))
    # One round trip first: a tenant whose guard stands has a job that has not started, which
    # is all enqueue_once would find out (one WATCH/EXISTS round trip each); under a burst that
    # is nearly every tenant, nearly every time.
    with redis.pipeline(transaction=False) as pipe:
        for tenant_id in tenants:
            pipe.exists(queued_key(tenant_id))
        guarded = pipe.execute()
    return [
        tenant_id
        for tenant_id, queued in zip(tenants, guarded)
        if not queued
        and enqueue_once(redis, queue_name, SYNC_JOB, tenant_id, queued_key(tenant_id), sync_job_id(tenant_id))
    ]


def clear_queued(redis: Redis, tenant_id: str) -> None:
    """Forget that a job is queued for the tenant: the worker's first step in a sync job."""
    redis.delete(queued_key(tenant_id))


def sync_queued(redis: Redis, tenant_id: str) -> bool:
    return bool(redis.exists(queued_key(tenant_id)))


def enqueue_once(
    redis: Redis, queue_name: str, func: str, tenant_id: str, key: str, new_id: str, delay: float = 0.0
) -> bool:
    """Queue `func(tenant_id)` (or schedule it `delay` seconds out) unless guard `key` says a
    job is already queued; the guard and the job are written in one Redis transaction.

    Shared by every kind of job (the worker's reconcile and backfill use it too)."""
    target = Queue(queue_name, connection=redis)
    options: dict[str, Any] = {
        "job_id": new_id,
        "result_ttl": int(RESULT_TTL.total_seconds()),
        "failure_ttl": int(FAILURE_TTL.total_seconds()),
    }
    with redis.pipeline() as pipe:
        try:
            pipe.watch(key)  # a concurrent wake that sets the guard first makes ours a no-op
            if pipe.exists(key):
                return False
            pipe.multi()
            pipe.set(key, new_id, nx=True, ex=GUARD_TTL + timedelta(seconds=delay))
            if delay > 0:
                # RQ keeps scheduled times in whole seconds (truncated): round up, never run early
                run_at = datetime.fromtimestamp(math.ceil(time.time() + delay), timezone.utc)
                target.enqueue_at(run_at, func, tenant_id, pipeline=pipe,
                                  job_timeout=int(JOB_TIMEOUT.total_seconds()), **options)
            else:
                target.enqueue_call(func, args=(tenant_id,), pipeline=pipe,
                                    timeout=int(JOB_TIMEOUT.total_seconds()), **options)
            pipe.execute()
            return True
        except WatchError:
            return False
        except RedisError:
            # A command can fail inside EXEC while the others apply: never leave the guard
            # standing without its job, or the tenant would not sync until the guard expires.
            with contextlib.suppress(RedisError):
                redis.delete(key)
            raise


QUEUE: dict[str, str] = {SYNC: WEBHOOK_QUEUE, RECONCILE: RECONCILE_QUEUE, BACKFILL: BACKFILL_QUEUE}
JOB: dict[str, str] = {
    SYNC: SYNC_JOB, RECONCILE: "worker.jobs.reconcile_tenant", BACKFILL: "worker.jobs.backfill_tenant"}


def guard_key(kind: str, tenant_id: str) -> str:
    if kind == SYNC:
        return queued_key(tenant_id)
    return f"xm:queued:{kind}:{tenant_id}"


def lease_key(kind: str, tenant_id: str) -> str:
    return f"xm:running:{kind}:{tenant_id}"


def clear_guard(redis: Redis, kind: str, tenant_id: str) -> None:
    if kind == SYNC:
        clear_queued(redis, tenant_id)
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
    return enqueue_once(
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
