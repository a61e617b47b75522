"""The RQ jobs, enqueued by dotted path: `worker.jobs.sync_tenant` and friends.

Each builds its runtime from the environment, clears its queued-guard first (so events that
arrive during the run queue exactly one follow-up), takes the tenant's running lease, and
maps every outcome once:

- Throttled (our budget) or XeroRateLimited (a 429): rescheduled after the wait with RQ's
  `enqueue_in`; the worker never sleeps it out.
- XeroUnavailable (5xx, timeout), or the database briefly unavailable (a deadlock, a lock
  timeout): rescheduled with exponential backoff and jitter, up to
  RETRY_ATTEMPTS times; then the job fails into RQ's FailedJobRegistry (the events stay
  outstanding, so the inbox relay or reconciliation picks them up later).
- ConnectionRevoked: the connection is marked needs_reauth; syncing stops; data stays.
- A permanent error (Xero refuses the request, an object we cannot read): recorded in the
  tenant's SyncState and the job fails into the FailedJobRegistry for a person to look at.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from redis.exceptions import LockError, LockNotOwnedError
from sqlalchemy.exc import OperationalError

from infra import metrics, queue
from infra.settings import Settings
from store import mirror
from store.connections import NoConnection
from worker import cadence, governor, sync
from worker.bootstrap import WorkerRuntime
from worker.governor import Throttled
from xero.client import ConnectionRevoked, XeroNotFound, XeroRateLimited, XeroRequestError, XeroUnavailable
from xero.translate import TranslationError

log = logging.getLogger(__name__)
SHORT_WAIT_SECONDS = 1.0
SHORT_WAITS = 3
PRIORITY = {queue.SYNC: governor.WEBHOOK, queue.RECONCILE: governor.RECONCILE, queue.BACKFILL: governor.BACKFILL}


def sync_tenant(tenant_id: str) -> str:
    """Drain the tenant's inbox (webhook-driven)."""
    return _run(queue.SYNC, tenant_id, _drain)


def reconcile_tenant(tenant_id: str) -> str:
    """Sweep what changed since the high-water marks (scheduled)."""
    return _run(queue.RECONCILE, tenant_id, _reconcile)


def backfill_tenant(tenant_id: str) -> str:
    """Load the whole organisation, one time slice per job, resuming where it stopped."""
    return _run(queue.BACKFILL, tenant_id, _backfill)


def _drain(rt: WorkerRuntime, tenant_id: str, heartbeat: Callable[[], None]) -> str:
    result = sync.drain(tenant_id, api=rt.api(tenant_id, governor.WEBHOOK), sessions=rt.sessions, now=rt.now(),
                        heartbeat=heartbeat)
    return (f"synced {result.invoices} invoices, {result.contacts} contacts for {result.events} events"
            f" ({result.current} already current)")


def _reconcile(rt: WorkerRuntime, tenant_id: str, heartbeat: Callable[[], None]) -> str:
    now = rt.now()
    kinds = due_kinds(rt.sessions, rt.governor, tenant_id, now, timedelta(seconds=rt.options.reconcile_seconds))
    result = sync.reconcile(tenant_id, api=rt.api(tenant_id, governor.RECONCILE), sessions=rt.sessions,
                            now=now, heartbeat=heartbeat, kinds=tuple(kinds))
    if result.skipped:
        return f"skipped: {result.skipped}"
    metrics.reconciled(rt.redis, tenant_id, result.unannounced, rt.now())
    return f"reconciled {result.fetched}; {result.unannounced} changes no webhook announced"


def due_kinds(
    sessions, gov: governor.Governor, tenant_id: str, now: datetime, base: timedelta
) -> list[str]:
    """What reconciliation should sweep for this tenant now (worker.cadence on its evidence)."""
    with sessions() as session:
        state = mirror.sync_state(session, tenant_id)
        return cadence.due_for(tenant_id, state, now, gov.day_left(tenant_id), base)


def _backfill(rt: WorkerRuntime, tenant_id: str, heartbeat: Callable[[], None]) -> str:
    deadline = rt.clock() + rt.options.backfill_slice_seconds
    result = sync.backfill(tenant_id, api=rt.api(tenant_id, governor.BACKFILL), sessions=rt.sessions, now=rt.now(),
                           deadline=deadline, clock=rt.clock, heartbeat=heartbeat)
    if not result.done:
        queue.enqueue(rt.redis, queue.BACKFILL, tenant_id)  # the next slice, behind other queues' work
        return f"backfill continues: {result.phase} page {result.page}, {result.fetched} fetched"
    return f"backfill done: {result.fetched} fetched"


_PROCESS_RUNTIME: tuple[tuple, WorkerRuntime] | None = None


def _runtime() -> WorkerRuntime:
    """This process's WorkerRuntime, built by its first job and kept for the next ones.

    `python -m worker` runs jobs in its own process (no work horse per job), so the database
    pool, the Redis connection, the governor's scripts and the Xero client are made once, not
    per job. Keyed by the process and the settings it was built from (read once per job, the
    worker's options and Xero's limits among them): a forked child, or a changed environment
    (tests), gets a fresh one and the stale one is closed.
    """
    global _PROCESS_RUNTIME
    settings = Settings.from_env()
    key = (os.getpid(), repr(settings))
    if _PROCESS_RUNTIME is not None and _PROCESS_RUNTIME[0] == key:
        return _PROCESS_RUNTIME[1]
    if _PROCESS_RUNTIME is not None and _PROCESS_RUNTIME[0][0] == os.getpid():
        with contextlib.suppress(Exception):
            _PROCESS_RUNTIME[1].close()
    _PROCESS_RUNTIME = (key, WorkerRuntime(settings))
    return _PROCESS_RUNTIME[1]


def _run(kind: str, tenant_id: str, work: Callable[[WorkerRuntime, str, Callable[[], None]], str]) -> str:
    rt = _runtime()
    queue.clear_guard(rt.redis, kind, tenant_id)  # first: later events queue one follow-up
    held = queue.lease(rt.redis, kind, tenant_id, rt.options.lease_seconds)
    if held is None:
        queue.enqueue(rt.redis, kind, tenant_id, delay=rt.options.busy_retry_seconds)
        metrics.job(rt.redis, kind, "busy")
        return "another job is running for this tenant: follow-up scheduled"

    def heartbeat() -> None:
        """Renew the lease as work progresses; a lapsed one is taken back if still free."""
        try:
            held.reacquire()
        except LockNotOwnedError:
            if not held.acquire(blocking=False):
                raise

    try:
        return _guarded(rt, kind, tenant_id, work, heartbeat)
    finally:
        try:
            held.release()
        except LockError:
            log.warning("%s lease for %s had lapsed", kind, tenant_id)


def _guarded(rt: WorkerRuntime, kind: str, tenant_id: str, work, heartbeat: Callable[[], None]) -> str:
    backoff_key = f"xm:backoff:{kind}:{tenant_id}"
    paused = rt.governor.paused_for(tenant_id)
    if paused > 0:
        queue.enqueue(rt.redis, kind, tenant_id, delay=paused)
        metrics.job(rt.redis, kind, "paused")
        return f"tenant paused by Xero's limits: rescheduled in {paused:.1f}s"
    try:
        outcome = _sitting_out_short_waits(rt, kind, tenant_id, work, heartbeat)
    except (Throttled, XeroRateLimited) as exc:
        queue.enqueue(rt.redis, kind, tenant_id, delay=exc.retry_after + 0.5)
        log.info("%s for %s rescheduled: %s", kind, tenant_id, exc)
        metrics.job(rt.redis, kind, "rescheduled_429" if isinstance(exc, XeroRateLimited) else "throttled")
        return f"rescheduled in {exc.retry_after:.1f}s: {exc}"
    except (XeroUnavailable, OperationalError) as exc:  # Xero or the database, briefly unavailable
        what = f"Xero unavailable: {exc}" if isinstance(exc, XeroUnavailable) else _database_trouble(exc)
        attempt = int(rt.redis.incr(backoff_key))
        rt.redis.expire(backoff_key, 24 * 3600)
        with contextlib.suppress(OperationalError):
            sync.record_failure(rt.sessions, tenant_id, rt.now(), f"{what} (attempt {attempt})")
        if attempt > rt.options.retry_attempts:
            rt.redis.delete(backoff_key)
            metrics.job(rt.redis, kind, "failed")
            log.error("%s of %s failed after %d attempts: %s", kind, tenant_id, attempt, what)
            raise
        delay = queue.backoff_delay(attempt, rt.options.retry_base_seconds, rt.options.retry_max_seconds)
        queue.enqueue(rt.redis, kind, tenant_id, delay=delay)
        metrics.job(rt.redis, kind, "retried")
        log.warning("%s of %s: %s; retry %d in %.1fs", kind, tenant_id, what, attempt, delay)
        return f"{what}; retry {attempt} in {delay:.1f}s"
    except ConnectionRevoked as exc:
        sync.record_failure(rt.sessions, tenant_id, rt.now(), str(exc))
        metrics.job(rt.redis, kind, "stopped")
        return f"stopped: {exc}"
    except NoConnection as exc:
        metrics.job(rt.redis, kind, "stopped")
        return f"stopped: {exc}"
    except (XeroRequestError, XeroNotFound, TranslationError) as exc:  # permanent: fail the job, visibly
        sync.record_failure(rt.sessions, tenant_id, rt.now(), f"{type(exc).__name__}: {exc}")
        metrics.job(rt.redis, kind, "failed")
        raise
    except Exception:  # anything unforeseen fails the job in RQ: count it, change nothing else
        metrics.job(rt.redis, kind, "failed")
        raise
    rt.redis.delete(backoff_key)
    metrics.job(rt.redis, kind, "succeeded")
    log.info("%s of %s: %s", kind, tenant_id, outcome)
    return outcome


def _sitting_out_short_waits(rt: WorkerRuntime, kind: str, tenant_id: str, work, heartbeat: Callable[[], None]) -> str:
    """Run `work`; when our own budget asks a webhook sync to wait a second or less, wait here
    and run it again (up to SHORT_WAITS times) instead of rescheduling.

    RQ's scheduler keeps whole seconds and polls once a second, so a rescheduled job runs one
    to two seconds late; a tenant at the edge of its minute (one change a second) is told to
    wait well under a second. Longer waits, Xero's own 429s and other kinds of job still
    reschedule: a worker never sits out more than SHORT_WAIT_SECONDS at a time.
    """
    waits = 0
    while True:
        try:
            return work(rt, tenant_id, heartbeat)
        except Throttled as exc:
            waits += 1
            if kind != queue.SYNC or exc.retry_after > SHORT_WAIT_SECONDS or waits > SHORT_WAITS:
                raise
            metrics.job(rt.redis, kind, "waited")
            time.sleep(exc.retry_after)
            heartbeat()


def _database_trouble(exc: OperationalError) -> str:
    first_line = str(getattr(exc, "orig", exc)).splitlines()[0] if str(getattr(exc, "orig", exc)) else ""
    return f"database unavailable: {type(getattr(exc, 'orig', exc)).__name__}: {first_line[:200]}"
