"""The periodic work of the worker processes: the inbox relay, reconciliation, stalled backfills.

Why a small thread and not RQ's CronScheduler: RQ 3.0's CronScheduler is a separate
blocking loop (`rq cron`) with fixed job arguments and no coordination between processes,
so every worker running one would enqueue the same work, and "one reconcile per live tenant"
needs the tenant list at each tick. Here each `python -m worker` starts one ticker process
(`python -m worker.ticker`) that,
once a second, tries a Redis key per task (SET NX with the task's interval as expiry):
whichever process wins does the task for that interval, so N workers still tick once. The
tasks only enqueue jobs (coalesced per tenant) or run the relay, which is idempotent.

Reconciliation is spread, not bunched: each tick starts at most SPREAD times the calls an
average tick of the whole fleet makes (worker.cadence's intervals), most overdue first, and the
rest wait for the next tick. A deploy onto tenants never swept, or the tick after an outage,
would otherwise start thousands of tenants' sweeps in one minute against the app's 10,000.
"""
from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from infra import queue
from infra.settings import WorkerOptions
from store import connections, inbox
from store.models import SyncState, XeroConnection
from worker import cadence, organisation
from worker.governor import Budget, Governor

log = logging.getLogger(__name__)
SPREAD = 1.5  # a tick starts at most this many times the fleet's average tick of sweep calls...
FLOOR_CALLS = 100  # ...and always this many (1% of Xero's 10,000 app calls a minute): small fleets never wait


def reconcile_every(base: timedelta) -> float:
    """Seconds between the ticker's looks for due sweeps: a minute, or a 12th of a short base."""
    return max(1.0, min(60.0, base.total_seconds() / 12))


class Ticker(threading.Thread):
    def __init__(self, sessions: sessionmaker[Session], redis: Redis, options: WorkerOptions,
                 budget: Budget | None = None, poll: float = 1.0):
        super().__init__(name="xm-ticker", daemon=True)
        self.sessions = sessions
        self.redis = redis
        self.options = options
        self.poll = poll
        self.governor = Governor(redis, budget)  # read-only here: a tenant's day budget left
        self._stop_event = threading.Event()
        self.deferred = 0  # tenants the last look found due and left for a later tick (the spread)
        self.tasks: list[tuple[str, float, Callable[[], object]]] = [
            ("relay", options.relay_seconds, self.relay),
            ("reconcile", reconcile_every(timedelta(seconds=options.reconcile_seconds)), self.reconcile),
            ("backfills", max(5.0, options.lease_seconds / 2), self.resume_backfills),
        ]

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.tick()
            self._stop_event.wait(self.poll)

    def stop(self) -> None:
        self._stop_event.set()

    def tick(self) -> None:
        for name, interval, task in self.tasks:
            try:
                if self.redis.set(f"xm:tick:{name}", os.getpid(), nx=True, px=max(1, int(interval * 1000))):
                    task()
            except Exception:  # a scheduler thread must outlive one bad tick; the error is logged
                log.exception("periodic task %s failed", name)

    # -- tasks -------------------------------------------------------------------------
    def relay(self) -> int:
        """Wake tenants whose inbox events never reached the queue."""
        return inbox.relay(self.sessions, self.redis, datetime.now(timezone.utc))

    def reconcile(self, now: datetime | None = None) -> int:
        """A reconcile job for each live, backfilled tenant that a sweep is due for (worker.cadence:
        by the evidence of its webhooks and its day budget, each tenant at its own offset)."""
        now = now or datetime.now(timezone.utc)
        base = timedelta(seconds=self.options.reconcile_seconds)
        started = 0
        for tenant_id in self.due(now, base):
            started += queue.enqueue(self.redis, queue.RECONCILE, tenant_id)
        return started

    def due(self, now: datetime, base: timedelta) -> list[str]:
        """The live, backfilled tenants a sweep of some kind is due for at `now` (worker.cadence),
        most overdue first, as many as this tick may start (see SPREAD); `deferred` counts the rest.

        One query reads every tenant's cadence columns; the day budget (a Redis read per tenant)
        is asked only of the tenants due by the cadence with an ample budget, since a budget
        running low only lengthens intervals. (A kind never swept falls due at an offset into its
        period, so a stretched period can make it due when the ample one does not: it then waits
        until both agree, within its stretched period. Nothing starts that the cadence calls not due.)"""
        tick = reconcile_every(base)
        per_tenant = {  # the sweep and Organisation calls a tenant makes in an average tick
            broken: tick / organisation.MAX_AGE.total_seconds() + sum(
                tick / cadence.interval(kind, evidence, base).total_seconds() for kind in cadence.KINDS)
            for broken, evidence in ((False, cadence.Evidence(now)), (True, cadence.Evidence(now, None, now)))
        }
        expected, candidates = 0.0, []
        for row in self._sweep_rows():
            evidence = cadence.Evidence(now, row.last_webhook_at, row.unannounced_at)
            expected += per_tenant[cadence.webhooks_look_broken(evidence)]
            kinds = cadence.due_for(row.tenant_id, row, now, None, base)
            if kinds:
                candidates.append((_overdue_since(row, kinds, evidence, base), row))
        candidates.sort(key=lambda candidate: candidate[0])
        allowed = max(FLOOR_CALLS, math.ceil(SPREAD * expected))
        chosen: list[Any] = []
        calls, self.deferred = 0, 0
        for index, (_, row) in enumerate(candidates):
            kinds = cadence.due_for(row.tenant_id, row, now, self.governor.day_left(row.tenant_id), base)
            if not kinds:
                continue
            cost = len(kinds) + organisation.is_stale(row.organisation_checked_at, now)  # the job's calls
            if chosen and calls + cost > allowed:
                self.deferred = len(candidates) - index
                log.info("reconcile: %d tenants due, %d started (%d calls), the rest wait for the next tick",
                         len(candidates), len(chosen), calls)
                break
            chosen.append(row.tenant_id)
            calls += cost
        return chosen

    def _sweep_rows(self):
        """Each live, backfilled tenant's cadence columns and when its Organisation was read."""
        with self.sessions() as session:
            return session.execute(
                select(SyncState.tenant_id, SyncState.contacts_swept_at, SyncState.invoices_swept_at,
                       SyncState.payments_swept_at, SyncState.last_webhook_at, SyncState.unannounced_at,
                       XeroConnection.organisation_checked_at)
                .join(XeroConnection, XeroConnection.tenant_id == SyncState.tenant_id)
                .where(XeroConnection.status == connections.ACTIVE, SyncState.backfill_status == "done")
                .order_by(SyncState.tenant_id)
            ).all()

    def resume_backfills(self) -> int:
        """Start the backfill of a live tenant that has none, or resume one whose worker died."""
        started = 0
        for tenant_id in self._tenants(done=False):
            if queue.is_running(self.redis, queue.BACKFILL, tenant_id):
                continue
            started += queue.enqueue(self.redis, queue.BACKFILL, tenant_id)
        return started

    def _tenants(self, done: bool) -> list[str]:
        with self.sessions() as session:
            live = set(connections.live_tenants(session))
            finished = set(session.scalars(select(SyncState.tenant_id).where(SyncState.backfill_status == "done")))
        return sorted(live & finished) if done else sorted(live - finished)


def _overdue_since(row, kinds: list[str], evidence: cadence.Evidence, base: timedelta) -> tuple:
    """Sort key: kinds swept before, by when their sweep fell due (the earliest first), then the
    tenants whose due kinds were never swept (just backfilled: they hold the newest data)."""
    moments = [getattr(row, f"{kind}_swept_at") + cadence.interval(kind, evidence, base)
               for kind in kinds if getattr(row, f"{kind}_swept_at") is not None]
    return (0, min(moments), row.tenant_id) if moments else (1, row.tenant_id)


def main(argv: list[str] | None = None) -> int:
    """`python -m worker.ticker`: the ticker on its own, until its parent worker goes away."""
    import argparse
    import signal
    import sys

    from infra import logs, queue
    from infra.settings import Settings
    from store.db import make_engine, make_sessionmaker

    parser = argparse.ArgumentParser(prog="python -m worker.ticker", description=main.__doc__)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logs.configure(args.log_level)
    settings = Settings.from_env()
    if not settings.redis_url:
        print("REDIS_URL is not set", file=sys.stderr)
        return 2
    ticker = Ticker(make_sessionmaker(make_engine(settings.database_url)), queue.connect(settings.redis_url),
                    settings.worker, Budget.from_limits(settings.xero_limits))
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: ticker.stop())
    parent = os.getppid()
    ticker.start()
    while ticker.is_alive():
        ticker.join(1.0)
        if os.getppid() != parent:  # the worker died (even by SIGKILL): no orphan ticks on
            ticker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
