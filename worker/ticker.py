"""The periodic work of the worker processes: the inbox relay, reconciliation, stalled backfills.

Why a small thread and not RQ's CronScheduler: RQ 3.0's CronScheduler is a separate
blocking loop (`rq cron`) with fixed job arguments and no coordination between processes,
so every worker running one would enqueue the same work, and "one reconcile per live tenant"
needs the tenant list at each tick. Here each `python -m worker` starts one ticker process (`python -m worker.ticker`) that,
once a second, tries a Redis key per task (SET NX with the task's interval as expiry):
whichever process wins does the task for that interval, so N workers still tick once. The
tasks only enqueue jobs (coalesced per tenant) or run the relay, which is idempotent.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store import connections, inbox
from store.models import SyncState
from worker import cadence, queueing
from worker.bootstrap import Options
from worker.governor import Budget, Governor

log = logging.getLogger(__name__)


class Ticker(threading.Thread):
    def __init__(self, sessions: sessionmaker[Session], redis: Redis, options: Options, poll: float = 1.0):
        super().__init__(name="xm-ticker", daemon=True)
        self.sessions = sessions
        self.redis = redis
        self.options = options
        self.poll = poll
        self.governor = Governor(redis, Budget.from_env(os.environ))
        self._stop_event = threading.Event()
        self.tasks: list[tuple[str, float, Callable[[], object]]] = [
            ("relay", options.relay_seconds, self.relay),
            # look every minute (or a 12th of the base interval) for tenants a sweep is due for
            ("reconcile", max(1.0, min(60.0, options.reconcile_seconds / 12)), self.reconcile),
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
            started += queueing.enqueue(self.redis, queueing.RECONCILE, tenant_id)
        return started

    def due(self, now: datetime, base: timedelta) -> list[str]:
        """The live, backfilled tenants a sweep of some kind is due for at `now`."""
        live = self._tenants(done=True)
        with self.sessions() as session:
            states = session.scalars(select(SyncState).where(SyncState.tenant_id.in_(live))).all()
            return [
                s.tenant_id for s in states
                if cadence.due_for(s.tenant_id, s, now, self.governor.day_left(s.tenant_id), base)
            ]

    def resume_backfills(self) -> int:
        """Start the backfill of a live tenant that has none, or resume one whose worker died."""
        started = 0
        for tenant_id in self._tenants(done=False):
            if queueing.is_running(self.redis, queueing.BACKFILL, tenant_id):
                continue
            started += queueing.enqueue(self.redis, queueing.BACKFILL, tenant_id)
        return started

    def _tenants(self, done: bool) -> list[str]:
        with self.sessions() as session:
            live = set(connections.live_tenants(session))
            finished = set(session.scalars(select(SyncState.tenant_id).where(SyncState.backfill_status == "done")))
        return sorted(live & finished) if done else sorted(live - finished)



def main(argv: list[str] | None = None) -> int:
    """`python -m worker.ticker`: the ticker on its own, until its parent worker goes away."""
    import argparse
    import signal
    import sys

    from store import logs, queue
    from store.config import Settings
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
                    Options.from_env())
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
