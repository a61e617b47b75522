"""Waking a tenant's sync: at most ONE queued sync job per tenant, however many events arrive.

The contract shared by the webhook intake, the inbox relay and the worker:

- `wake(redis, tenant_ids)` queues `worker.jobs.sync_tenant(tenant_id)` for each tenant that
  has no queued job yet. The guard key `QUEUED_KEY` says "a job is queued"; it is set in the
  same Redis transaction that queues the job, so there is never a guard without its job.
- The worker calls `clear_queued(redis, tenant_id)` when its job STARTS, before it reads the
  inbox: events that arrive during the run then queue exactly one follow-up job.
- Both raise `redis.RedisError` when Redis is unreachable; callers decide what that means.
"""
from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from uuid import uuid4

from redis import Redis, RedisError, WatchError
from rq import Queue

from store import queue

QUEUED_KEY = "xm:queued:{tenant_id}"
SYNC_JOB = "worker.jobs.sync_tenant"  # by dotted path: the web process never imports worker code
GUARD_TTL = timedelta(hours=1)  # a lost job cannot silence a tenant for longer than this
JOB_TIMEOUT = timedelta(minutes=15)
RESULT_TTL = timedelta(minutes=10)
FAILURE_TTL = timedelta(days=7)


def queued_key(tenant_id: str) -> str:
    return QUEUED_KEY.format(tenant_id=tenant_id)


def job_id(tenant_id: str) -> str:
    """A fresh RQ job id: RQ allows letters, digits, `-` and `_` only."""
    return f"sync-{re.sub(r'[^A-Za-z0-9_-]', '_', tenant_id)}-{uuid4().hex[:12]}"


def wake(redis: Redis, tenant_ids: Iterable[str], queue_name: str = queue.WEBHOOK) -> list[str]:
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
        and enqueue_once(redis, queue_name, SYNC_JOB, tenant_id, queued_key(tenant_id), job_id(tenant_id))
    ]


def clear_queued(redis: Redis, tenant_id: str) -> None:
    """Forget that a job is queued for the tenant: the worker's first step in a sync job."""
    redis.delete(queued_key(tenant_id))


def is_queued(redis: Redis, tenant_id: str) -> bool:
    return bool(redis.exists(queued_key(tenant_id)))


def enqueue_once(
    redis: Redis, queue_name: str, func: str, tenant_id: str, key: str, new_id: str, delay: float = 0.0
) -> bool:
    """Queue `func(tenant_id)` (or schedule it `delay` seconds out) unless guard `key` says a
    job is already queued; the guard and the job are written in one Redis transaction.

    Shared by every kind of job (the worker's reconcile and backfill use it too)."""
    target = Queue(queue_name, connection=redis)
    options = dict(
        job_id=new_id,
        result_ttl=int(RESULT_TTL.total_seconds()),
        failure_ttl=int(FAILURE_TTL.total_seconds()),
    )
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
