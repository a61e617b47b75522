"""The RQ queues, named once, in the order workers serve them, and enqueueing by dotted path.

The web process enqueues jobs by name ("worker.jobs.sync_tenant") so it never imports
worker code or xero-python.
"""
from __future__ import annotations

import redis
from rq import Queue

WEBHOOK = "xm-webhook"  # syncs driven by webhooks: served first
RECONCILE = "xm-reconcile"  # scheduled If-Modified-Since sweeps
BACKFILL = "xm-backfill"  # initial and requested full loads: served last
PRIORITY_ORDER = (WEBHOOK, RECONCILE, BACKFILL)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


def queue(name: str, connection: redis.Redis) -> Queue:
    return Queue(name, connection=connection)


def queues(connection: redis.Redis) -> list[Queue]:
    return [Queue(name, connection=connection) for name in PRIORITY_ORDER]
