"""Noisy neighbour: one tenant's webhook freshness while another tenant backfills 20,000 invoices.

The live system as in the freshness benchmark (gunicorn, worker processes, the emulator at
Xero's default limits, 100 ms a call). Tenant B is connected and synced by webhooks; then
tenant A (20,000 invoices) is connected and its backfill queued, as `xero connect` does.
While A's backfill runs, B's watched customer gets a change every two seconds; B's freshness is
measured exactly as in the freshness benchmark. Baseline: B's freshness at the same rate
with nobody backfilling, measured first in the same run.
"""
from __future__ import annotations

import threading
import time

import redis as redis_lib

from bench import stack
from bench.freshness import Probe, _poll
from bench.postgres import Postgres
from bench.report import Goal, Section
from bench.stats import percentile
from bench.system import LiveSystem
from infra import queue

RATE = 0.5  # B's changes a second: 30 a minute stays inside B's own Xero budget (55 of 60 a minute),
# so what slows B down can only be its neighbour


def _phase(live: LiveSystem, probe: Probe, b: str, seconds: float, stop: threading.Event | None = None):
    first = len(probe.changes)
    done = threading.Event()
    poller = threading.Thread(target=_poll, args=(probe, done, seconds + 600), daemon=True)
    poller.start()
    started = time.monotonic()
    while time.monotonic() - started < seconds and not (stop and stop.is_set() and time.monotonic() - started > 10):
        probe.drive(RATE, max(1.0, 1.0 / RATE), [b])  # one change per chunk at least
    done.set()
    poller.join()
    values, missing = probe.freshness(probe.changes[first:])
    return values, missing, time.monotonic() - started


def run(pg: Postgres, quick: bool = False, workers: int = 2) -> Section:
    invoices = 4_000 if quick else 20_000
    # one emulator holds both: every tenant is seeded alike, so B (the watched one) gets
    # A's size too; B is marked backfilled and synced by its webhooks alone
    options = {"seed": 51, "tenants": 2, "contacts": max(200, invoices // 20), "invoices": invoices}
    with LiveSystem(stack.sqlite_database("neighbour"), options, workers=workers, name="neighbour") as live:
        live.state.set_faults(latency_ms=100)
        a, b = live.state.tenant_ids
        probe = Probe(live, [b])
        live.connect([b], backfill_done=True)  # its watched customer comes with its first invoice
        probe.link_records()
        time.sleep(2)
        quiet, quiet_missing, _ = _phase(live, probe, b, 10 if quick else 30)

        live.connect([a])
        queue.enqueue(redis_lib.Redis.from_url(live.redis.url), queue.BACKFILL, a)
        backfilled = threading.Event()

        def watch_backfill() -> None:
            live.wait_backfilled([a], timeout=1800)
            backfilled.set()

        started = time.monotonic()
        watcher = threading.Thread(target=watch_backfill, daemon=True)
        watcher.start()
        busy, busy_missing, busy_seconds = _phase(live, probe, b, 1800, stop=backfilled)
        watcher.join(timeout=1800)
        backfill_seconds = time.monotonic() - started
    q50, q95 = percentile(quiet, 50), percentile(quiet, 95)
    p50, p95 = percentile(busy, 50), percentile(busy, 95)
    return Section(
        "Noisy neighbour",
        summary=(f"Tenant A backfills {invoices:,} invoices (plus its contacts and payments) while tenant B gets "
                 f"a change every {1 / RATE:.0f} s; Xero's default limits, 100 ms a call, {workers} worker processes, "
                 "SQLite."),
        header=["B's freshness", "p50", "p95", "max", "changes"],
        rows=[
            ["baseline: nobody backfilling", f"{q50 * 1000:.0f} ms", f"{q95 * 1000:.0f} ms",
             f"{max(quiet) * 1000:.0f} ms", str(len(quiet))],
            [f"while A backfills ({backfill_seconds:.0f} s until done)", f"{p50 * 1000:.0f} ms",
             f"{p95 * 1000:.0f} ms", f"{max(busy) * 1000:.0f} ms", str(len(busy))],
        ],
        goals=[Goal("B's p95 < 2 s while A backfills", f"{p95 * 1000:.0f} ms", p95 < 2.0)],
        notes=[f"Ratio of p95 busy/quiet: {p95 / q95:.1f}.",
               *([f"{quiet_missing + busy_missing} changes unmeasured."] if quiet_missing + busy_missing else [])],
    )
