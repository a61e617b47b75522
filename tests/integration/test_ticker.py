"""The worker's periodic ticker: every process runs one, each task fires once per interval."""
from datetime import datetime, timedelta, timezone

import pytest
import redis as redis_lib
from rq import Queue

from infra import queue
from infra.settings import WorkerOptions
from store import connections, workspaces
from store.db import transaction
from store.models import SyncState
from store.secrets import TokenBox, new_key
from tests.worker_support import NOW, Announced, store_events
from worker.ticker import Ticker

LIVE_DONE, LIVE_STALLED, LIVE_RUNNING, GONE = "t-done", "t-stalled", "t-running", "t-gone"


@pytest.fixture
def redis(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def tenants(sessions):
    box = TokenBox([new_key()])
    with transaction(sessions) as session:
        for tenant_id, backfill in [(LIVE_DONE, "done"), (LIVE_STALLED, "running"), (LIVE_RUNNING, "running"),
                                    (GONE, "done")]:
            ws = workspaces.create_workspace(session, tenant_id, NOW)
            connections.connect(session, box, workspace_id=ws.id, tenant_id=tenant_id, token={"access_token": "x"},
                                now=NOW)
            long_ago = datetime(2026, 1, 1, tzinfo=timezone.utc)  # every kind is due for a sweep
            session.add(SyncState(tenant_id=tenant_id, backfill_status=backfill, backfill_page=3, backfill_fetched=0,
                                  unannounced_changes=0, contacts_swept_at=long_ago, invoices_swept_at=long_ago,
                                  payments_swept_at=long_ago))
        connections.mark_needs_reauth(session, connections.find(session, GONE).id, "refused", NOW)


def jobs_on(redis, name):
    return sorted(job.args[0] for job in Queue(name, connection=redis).get_jobs())


def test_two_workers_tickers_enqueue_each_periodic_job_once(sessions, redis, tenants):
    store_events(sessions, [Announced(LIVE_DONE, "INVOICE", "UPDATE", "i1", NOW)],
                 now=datetime.now(timezone.utc) - timedelta(seconds=30))  # Redis was down at intake
    redis.set(queue.lease_key(queue.BACKFILL, LIVE_RUNNING), "another worker")
    first, second = (Ticker(sessions, redis, WorkerOptions(reconcile_seconds=300, relay_seconds=5)) for _ in range(2))

    first.tick()
    second.tick()
    assert jobs_on(redis, queue.RECONCILE_QUEUE) == [LIVE_DONE]  # live, backfilled: once, not twice
    assert jobs_on(redis, queue.BACKFILL_QUEUE) == [LIVE_STALLED]  # its worker died; the running one is left alone
    assert jobs_on(redis, queue.WEBHOOK_QUEUE) == [LIVE_DONE]  # the relay woke the stranded event

    redis.delete("xm:tick:reconcile", "xm:tick:backfills")  # the intervals pass
    queue.clear_guard(redis, queue.RECONCILE, LIVE_DONE)  # ...and the reconcile job started
    first.tick()
    assert jobs_on(redis, queue.RECONCILE_QUEUE) == [LIVE_DONE, LIVE_DONE]
    assert jobs_on(redis, queue.BACKFILL_QUEUE) == [LIVE_STALLED]  # still queued: not queued twice


def test_a_tenant_swept_recently_is_not_reconciled_until_its_next_sweep_is_due(sessions, redis, tenants):
    from sqlalchemy import update

    now = datetime.now(timezone.utc)
    with transaction(sessions) as session:
        session.execute(update(SyncState).where(SyncState.tenant_id == LIVE_DONE).values(
            contacts_swept_at=now, invoices_swept_at=now - timedelta(minutes=59), payments_swept_at=now))
    ticker = Ticker(sessions, redis, WorkerOptions(reconcile_seconds=3600, relay_seconds=5))
    assert ticker.reconcile(now) == 0
    assert ticker.reconcile(now + timedelta(minutes=1, seconds=1)) == 1  # the invoices' hour is up
    assert jobs_on(redis, queue.RECONCILE_QUEUE) == [LIVE_DONE]
