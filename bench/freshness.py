"""Freshness: from a webhook's arrival to the change being visible in the read API.

The live system (gunicorn, real worker processes, the emulator at 100 ms a call and Xero's
default limits) has backfilled its tenants. A driver makes changes at a fixed rate, spread
over the tenants in turn (half new invoices for a watched customer, half part payments of
that customer's recent invoices); the emulator announces each by a signed webhook, in
Xero-like batches. A poller reads each watched customer's invoice list through the CRM
API (`GET /api/v1/contacts/{id}/invoices?view=all`) until every change shows.

Freshness of a change = the moment a poll's answer first shows it − the moment our intake
received its webhook (the inbox's `received_at`). A poll's answer time is an upper bound
of when the change became visible, so the figures err on the slow side.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from bench import stack
from bench.postgres import Postgres
from bench.report import Goal, Section
from bench.stats import percentile
from bench.system import LiveSystem
from store.models import InboxEvent
from worker.governor import WEBHOOK, Budget
from xero import translate

POLL_SECONDS = 0.05  # a change is seen at most this long (plus one read) after it became visible
POLL_RATE = 100.0  # reads a second, at most, across all tenants


@dataclass
class Change:
    tenant_id: str
    invoice_id: str
    updated: datetime  # the emulator's UpdatedDateUTC: the webhook's eventDateUtc
    balance: Decimal | None  # a payment: the balance the list must show; None: a new invoice
    made_at: float  # time.time()
    seen_at: float | None = None


@dataclass
class Watched:
    tenant_id: str
    contact_id: str
    record_id: str
    recent: list[str] = field(default_factory=list)  # invoices raised during the run


class Probe:
    """Makes changes for watched customers and watches the read API until each shows."""

    def __init__(self, live: LiveSystem, tenant_ids: list[str], seed: int = 5):
        self.live = live
        self.rng = random.Random(seed)
        self.watched: dict[str, Watched] = {}
        self.changes: list[Change] = []
        self._lock = threading.Lock()
        for i, tenant_id in enumerate(tenant_ids):
            email = f"watched-{i}@bench.example"
            contact = live.state.create_contact(tenant_id, f"Watched Customer {i}", email, is_customer=True)
            self.watched[tenant_id] = Watched(tenant_id, contact["ContactID"], f"watch-{i}")

    def link_records(self) -> None:
        """The CRM's record for each watched customer (after the tenants are connected)."""
        for w in self.watched.values():
            email = f"{w.record_id.replace('watch', 'watched')}@bench.example"
            done = self.live.api(w.tenant_id, admin=True).put(f"/api/v1/contacts/{w.record_id}", {"email": email})
            assert done.status == 200, done.body

    def change(self, tenant_id: str) -> Change:
        w = self.watched[tenant_id]
        state = self.live.state
        if w.recent and self.rng.random() < 0.5:
            invoice_id = self.rng.choice(w.recent[-20:])
            state.apply_payment(tenant_id, invoice_id, "1.00")
            truth = state.invoice(tenant_id, invoice_id)
            change = Change(tenant_id, invoice_id, translate.ms_datetime(truth["UpdatedDateUTC"]),
                            Decimal(str(truth["AmountDue"])), time.time())
        else:
            raised = state.create_invoice(tenant_id, w.contact_id, f"{self.rng.randint(200, 900)}.00")
            w.recent.append(raised["InvoiceID"])
            change = Change(tenant_id, raised["InvoiceID"], translate.ms_datetime(raised["UpdatedDateUTC"]),
                            None, time.time())
        with self._lock:
            self.changes.append(change)
        return change

    def drive(self, rate: float, seconds: float, tenant_ids: list[str] | None = None) -> None:
        """Changes at `rate` a second for `seconds`, round-robin over the tenants, on schedule."""
        tenants = tenant_ids or list(self.watched)
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.change(tenants[i % len(tenants)])
        rest = start + seconds - time.monotonic()  # the window is `seconds` long, whatever the count
        if rest > 0:
            time.sleep(rest)

    def poll_until_seen(self, until: threading.Event | None, timeout: float) -> None:
        """Poll every tenant with unseen changes until all are seen (and `until` is set), or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                unseen = [c for c in self.changes if c.seen_at is None]
            if not unseen and (until is None or until.is_set()):
                return
            tenants = sorted({c.tenant_id for c in unseen})
            round_started = time.monotonic()
            for tenant_id in tenants:
                w = self.watched[tenant_id]
                answer = self.live.api(tenant_id).get(f"/api/v1/contacts/{w.record_id}/invoices?view=all&per_page=100")
                now = time.time()
                if answer.status != 200:
                    continue
                rows = {r["invoice_id"]: Decimal(r["balance"]) for r in answer.json()["invoices"]}
                for c in unseen:
                    if c.tenant_id == tenant_id and c.invoice_id in rows and (
                            c.balance is None or rows[c.invoice_id] <= c.balance):
                        c.seen_at = now
            # at most one poll per tenant every POLL_SECONDS, and never more than POLL_RATE a second:
            # the poller must not take the CPU the system it measures needs
            pause = max(POLL_SECONDS, len(tenants) / POLL_RATE) - (time.monotonic() - round_started)
            if pause > 0:
                time.sleep(pause)
        raise TimeoutError(f"{sum(c.seen_at is None for c in self.changes)} changes never became visible")

    def freshness(self, changes: list[Change] | None = None) -> tuple[list[float], int]:
        """Seconds from webhook arrival to visibility, per change; and how many had no inbox row."""
        changes = self.changes if changes is None else changes
        with self.live.sessions() as s:
            rows = s.execute(select(InboxEvent.resource_id, InboxEvent.event_date_utc, InboxEvent.received_at)
                             .where(InboxEvent.category == "INVOICE")).all()
        arrived: dict[tuple[str, datetime], datetime] = {}
        for resource_id, when, received in rows:
            key = (resource_id.lower(), when)
            arrived[key] = min(arrived.get(key, received), received)
        out, missing = [], 0
        for c in changes:
            updated_ms = c.updated.replace(microsecond=c.updated.microsecond // 1000 * 1000)
            received = arrived.get((c.invoice_id.lower(), updated_ms))
            if received is None or c.seen_at is None:
                missing += 1
                continue
            out.append(c.seen_at - received.timestamp())
        return out, missing


def measure(live: LiveSystem, tenant_ids: list[str], rate: float, seconds: float) -> tuple[list[float], int, Probe]:
    probe = Probe(live, tenant_ids)
    live.connect(tenant_ids)
    live.wait_backfilled(tenant_ids)
    probe.link_records()
    time.sleep(2)  # let the backfill's last writes and follow-ups settle
    done = threading.Event()
    poller = threading.Thread(target=_poll, args=(probe, done, seconds + 120), daemon=True)
    poller.start()
    probe.drive(rate, seconds)
    done.set()
    poller.join()
    values, missing = probe.freshness()
    return values, missing, probe


def _poll(probe: Probe, done: threading.Event, timeout: float) -> None:
    try:
        probe.poll_until_seen(done, timeout)
    except TimeoutError as exc:
        print(f"freshness poller: {exc}", flush=True)


# (tenants, worker processes, extra `python -m worker` options). At 20 changes a second, 40
# tenants (one change every 2 s each) is the load inside Xero's limits. 20 tenants is
# one change a second per tenant: every change fetched at once would spend 60 calls a minute,
# Xero's whole per-tenant limit, above the 55 the governor plans on; that row shows behaviour at
# the limit (see AT_LIMIT). --fork: RQ's work horse per job, as the worker ran before.
CONFIGS = ((40, 4, ()), (20, 4, ()), (20, 4, ("--fork",)))
BUDGET = Budget().minute_cap(WEBHOOK)  # calls a minute the governor lets webhook syncs make (55 of Xero's 60)
AT_LIMIT = (
    "Why no p95 goal at one change a second per tenant: that is 60 changes a minute against a budget of "
    f"{BUDGET} calls a minute, so in any minute at least {60 - BUDGET} changes must share a call with a later "
    "change of the same tenant, which comes a second later. That is at least 8.3% of changes waiting a second "
    "or more (plus the call's 100 ms), whatever the schedule: the p95 cannot be under 1 s at this rate. What "
    "must hold there is that every change arrives and that Xero never answers 429. Ours is further from "
    "that bound than it could be: the governor's window lets a tenant's calls go as the changes come until "
    f"the minute's {BUDGET} are spent, then the next waits for the oldest to leave it (up to about 5 s) and takes "
    "every change that came meanwhile. Spacing the calls evenly once the window is half full would bring "
    "the p95 near the bound, but would make most changes of such a tenant wait (reckoned, not measured: "
    "the p50 would rise from under 200 ms to about half a second); not done.")


def run(pg: Postgres, quick: bool = False) -> Section:
    rate, seconds = 20.0, (15.0 if quick else 60.0)
    section = Section(
        "Freshness",
        summary=(f"{rate:.0f} changes a second for {seconds:.0f} s, round-robin over the tenants, 100 ms emulator "
                 "latency on every call, Xero's default limits (60 calls a minute and 5 in flight per tenant), "
                 "SQLite, `python -m worker` processes as in production (jobs run in the worker process; the "
                 "--fork row forks a work horse per job)."),
        header=["tenants × worker processes", "p50", "p95", "max", "changes seen", "Accounting calls by status"],
    )
    for tenants, workers, args in CONFIGS:
        options = {"seed": 41, "tenants": tenants, "contacts": 50, "invoices": 200}
        with LiveSystem(stack.sqlite_database("freshness"), options, workers=workers, name="freshness",
                        worker_args=args) as live:
            live.state.set_faults(latency_ms=100)
            values, missing, probe = measure(live, live.state.tenant_ids, rate, seconds)
            calls: dict[int, int] = {}
            for row in live.state.call_counts():
                calls[row["status"]] = calls.get(row["status"], 0) + row["count"]
        p50, p95 = percentile(values, 50), percentile(values, 95)
        label = f"{tenants} × {workers}" + (f" ({' '.join(args)})" if args else "")
        label += f", one change every {tenants / rate:g} s per tenant"
        section.rows.append([label, f"{p50 * 1000:.0f} ms", f"{p95 * 1000:.0f} ms",
                             f"{max(values) * 1000:.0f} ms" if values else "n/a",
                             f"{len(values)} of {len(probe.changes)}",
                             ", ".join(f"{k}: {v}" for k, v in sorted(calls.items()))])
        if args:  # the --fork row is the comparison (how the worker ran before): no goals
            pass
        elif rate / tenants * 60 > BUDGET:  # no schedule meets a p95 of 1 s here (AT_LIMIT)
            section.goals.append(Goal(f"{label} (at Xero's limit): every change seen",
                                      f"{len(values)} of {len(probe.changes)}", not missing))
            section.goals.append(Goal(f"{label} (at Xero's limit): no 429", f"{calls.get(429, 0)}",
                                      calls.get(429, 0) == 0))
        else:
            section.goals.append(Goal(f"{label}: p50 < 300 ms", f"{p50 * 1000:.0f} ms", p50 < 0.3))
            section.goals.append(Goal(f"{label}: p95 < 1 s", f"{p95 * 1000:.0f} ms", p95 < 1.0))
        if missing:
            section.notes.append(f"{label}: {missing} changes had no measurable freshness.")
    section.notes.append(
        "Where the time goes: a sync job runs about 120 ms, of which 100 ms is the emulated Xero call; forking a "
        "work horse per job (the --fork row, how the worker ran before) added about 60 ms to every job and made "
        "jobs queue behind each other. The worker keeps its database pool, Redis connection and Xero client "
        "between jobs.")
    section.notes.append(
        "One change a second per tenant is Xero's limit itself (60 calls a minute; the governor plans on 55 for "
        "webhook work): once a tenant's minute is spent its next call waits for the oldest to leave the window. "
        "A wait of a second or less is sat out inside the job (RQ's scheduler works in whole seconds, so "
        "rescheduling would cost 1-2 s), and the job then reads the tenant's inbox again, so one call takes "
        "every change that came meanwhile; longer waits reschedule. The 40-tenant row is the same 20 changes a "
        "second within the limit.")
    section.notes.append(AT_LIMIT)
    return section
