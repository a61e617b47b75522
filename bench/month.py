"""A model month: what one busy organisation costs in Xero calls and bytes over 30 days.

An organisation of 2,000 contacts and 20,000 invoices; every day of its month, in its
business hours (08:00 to 18:00 in its own time zone), 300 invoice changes (a third new
invoices, the rest due dates moved, drafts approved or deleted, invoices voided, credit
notes allocated) and 100 payments, each at a random minute. The same seeded script runs three
times, each time on a fresh emulator seeded alike (so each way sees the same organisation
and the same changes, checked by a digest of what changed), and the emulator counts the
calls and the bytes on the wire each way costs:

- ours: every change's webhook events (bar a seeded 1%, lost) are stored as the intake
  stores them (`webhook.payload.parse`, `store.inbox.store`) in the minute they happen, and
  drained as the sync job drains them (`sync.drain`); every minute the ticker's own rule
  (`Ticker.due`) picks the sweeps due, reconciled as the job does (`jobs.due_kinds`, then
  `sync.reconcile`). Each lost change is timed until the mirror holds its invoice at that
  version or newer (and, for a payment, the payment).
- an hourly If-Modified-Since poller as Nango's Xero templates are: GET Invoices, Payments
  and Contacts changed since the previous poll began, `page=1, 2, ...` at Xero's default 100
  a page until a short page.
- a 13-minute poller with a 28-minute look-back, as Breadwinner's: the same calls every 13
  minutes, modified since 28 minutes ago.

Every way calls Xero through the same client (`xero.client.XeroClient`, gzip asked for;
ours through its governor, `WorkerRuntime.api`, as the jobs do) on a simulated clock moved a
minute at a time, the emulator's clock with it. The tenant is on Xero's Starter tier (1,000
calls a day) and the worker runs on its defaults (the day limit learned from Xero's headers).
The backfill before the month is not counted.

`quick=True`: 200 contacts, 2,000 invoices and 2 days at the same rates of change (about 15 s);
the full size takes about 7 minutes on two cores, most of it ours' drains and sweeps.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from datetime import time as clock_time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

from sqlalchemy import select

from bench import stack
from bench.postgres import Postgres
from bench.report import Goal, Section
from emulator.testing import run_emulator
from infra.redis_server import start_embedded
from infra.settings import Settings, WorkerOptions
from store import inbox, mirror
from store.db import transaction
from store.models import Contact, Invoice, Payment
from store.secrets import new_key
from webhook.payload import parse
from worker import governor, jobs, sync
from worker.bootstrap import WorkerRuntime
from worker.governor import Throttled
from worker.ticker import Ticker
from xero import translate
from xero.client import XeroRateLimited, XeroUnavailable
from xero.timezones import zone_for

SEED = 17
LOSS = 0.01  # the share of webhook events Xero never delivers
STARTER_DAY = 1000
GOAL_LATENCY = timedelta(hours=1)
OPEN, CLOSE = clock_time(8), clock_time(18)  # the organisation's business hours, its own time
DAY_MINUTES = 24 * 60
OURS, HOURLY, BREADWINNER = "ours", "hourly poller", "13-minute poller"
WAYS = (OURS, HOURLY, BREADWINNER)
POLLED = ("invoices", "payments", "contacts")
NANGO_PAGE = 100  # Xero's default page size: Nango's templates send `page` only
RETRYABLE = (Throttled, XeroRateLimited, XeroUnavailable)  # the job would run again: so do we, a minute on

# Each day's 300 invoice changes (scaled if a size asks for another number), then the payments.
INVOICE_MIX = (("new invoice", 100), ("due date moved", 130), ("draft approved", 25), ("invoice voided", 15),
               ("draft deleted", 10), ("credit note allocated", 20))


@dataclass(frozen=True)
class Size:
    contacts: int
    invoices: int
    days: int
    invoice_changes: int = 300  # a day
    payments: int = 100  # a day


FULL = Size(contacts=2000, invoices=20000, days=30)
QUICK = Size(contacts=200, invoices=2000, days=2)


# --- the month's calendar: the organisation's days, its business hours ------------------------


@dataclass(frozen=True)
class Calendar:
    start: datetime  # UTC: the organisation's midnight that begins the month
    day_starts: tuple[int, ...]  # minute of each of its days' midnight, and the month's end
    hours: tuple[tuple[int, int], ...]  # each day's business hours, as minutes [open, close)

    @property
    def minutes(self) -> int:
        return self.day_starts[-1]

    @property
    def days(self) -> int:
        return len(self.day_starts) - 1

    def at(self, minute: int) -> datetime:
        return self.start + timedelta(minutes=minute)


def _calendar(zone, days: int, after: datetime) -> Calendar:
    """The organisation's next `days` days from a midnight at least 3 hours after `after` (so
    every way's backfill, made before, is over an hour old when the month begins)."""
    first = (after + timedelta(hours=3)).astimezone(zone).date() + timedelta(days=1)

    def utc(day: date, at: clock_time) -> datetime:
        return datetime.combine(day, at, tzinfo=zone).astimezone(timezone.utc)

    start = utc(first, clock_time(0))

    def minute(moment: datetime) -> int:
        return int((moment - start).total_seconds() // 60)

    dates = [first + timedelta(days=d) for d in range(days + 1)]
    return Calendar(
        start=start,
        day_starts=tuple(minute(utc(d, clock_time(0))) for d in dates),
        hours=tuple((minute(utc(d, OPEN)), minute(utc(d, CLOSE))) for d in dates[:-1]),
    )


# --- the organisation's month: a seeded script of changes ---------------------------------------


class Script:
    """Changes the organisation as its people would, at the planned minutes.

    The plan (which kind of change at which minute) comes from one seeded generator; which
    invoice each change touches from another, drawn against the emulator's books when the
    change is made. Every way's emulator is seeded alike and the ways make no change, so each
    way's script makes the same changes: `digest` says so."""

    def __init__(self, state, tenant_id: str, size: Size, calendar: Calendar, seed: int = SEED):
        self.state, self.tenant_id = state, tenant_id
        plan_rng = random.Random(f"{seed}:plan")
        self.rng = random.Random(f"{seed}:targets")
        scale = size.invoice_changes / sum(n for _, n in INVOICE_MIX)
        kinds = [kind for kind, n in INVOICE_MIX for _ in range(round(n * scale))]
        kinds += ["payment"] * size.payments
        self.plan: dict[int, list[str]] = {}
        for opening, closing in calendar.hours:
            day = list(kinds)
            plan_rng.shuffle(day)
            for kind in day:
                self.plan.setdefault(plan_rng.randrange(opening, closing), []).append(kind)
        self.books = state.tenant(tenant_id)
        self.ids = list(self.books.invoices)  # seeded order; new invoices are appended
        self.customers = [c.contact_id for c in self.books.contacts.values() if c.is_customer]
        self.log: list[tuple[int, str, str]] = []
        self.skipped = 0  # no invoice fit the change in 200 draws
        self.payments: dict[str, list[tuple[datetime, str]]] = {}  # invoice -> (UpdatedDateUTC, payment id)
        self.credit_notes: dict[str, str] = {}  # credit note -> the invoice it was allocated to
        self.counts: dict[str, int] = {}

    @property
    def digest(self) -> str:
        return hashlib.sha256(repr(self.log).encode()).hexdigest()[:12]

    def apply(self, minute: int) -> int:
        """Make the changes planned for this minute; how many were made."""
        made = 0
        for kind in self.plan.get(minute, ()):
            target = getattr(self, "_" + kind.replace(" ", "_"))()
            if target is None:
                self.skipped += 1
                continue
            self.log.append((minute, kind, target))
            self.counts[kind] = self.counts.get(kind, 0) + 1
            made += 1
        return made

    def _pick(self, fits: Callable) -> str | None:
        for _ in range(200):
            invoice_id = self.ids[self.rng.randrange(len(self.ids))]
            if fits(self.books.invoices[invoice_id]):
                return invoice_id
        return None

    @staticmethod
    def _open(invoice) -> bool:
        return invoice.type == "ACCREC" and invoice.status == "AUTHORISED" and invoice.amount_due > 1

    @staticmethod
    def _draft(invoice) -> bool:
        return invoice.type == "ACCREC" and invoice.status in ("DRAFT", "SUBMITTED")

    def _new_invoice(self) -> str:
        total = f"{self.rng.randint(50, 5000)}.{self.rng.randint(0, 99):02d}"
        raised = self.state.create_invoice(self.tenant_id, self.rng.choice(self.customers), total)
        self.ids.append(raised["InvoiceID"])
        return raised["InvoiceID"]

    def _due_date_moved(self) -> str | None:
        invoice_id = self._pick(self._open)
        if invoice_id is not None:
            due = self.books.invoices[invoice_id].due_date + timedelta(days=self.rng.choice((7, 14, 30)))
            self.state.set_due_date(self.tenant_id, invoice_id, due)
        return invoice_id

    def _draft_approved(self) -> str | None:
        invoice_id = self._pick(self._draft)
        if invoice_id is not None:
            self.state.set_invoice_status(self.tenant_id, invoice_id, "AUTHORISED")
        return invoice_id

    def _draft_deleted(self) -> str | None:
        invoice_id = self._pick(self._draft)
        if invoice_id is not None:
            self.state.delete_invoice(self.tenant_id, invoice_id)
        return invoice_id

    def _invoice_voided(self) -> str | None:
        invoice_id = self._pick(lambda i: self._open(i) and i.amount_paid == 0 and not i.allocations)
        if invoice_id is not None:
            self.state.void_invoice(self.tenant_id, invoice_id)
        return invoice_id

    def _credit_note_allocated(self) -> str | None:
        invoice_id = self._pick(self._open)
        if invoice_id is not None:
            invoice = self.books.invoices[invoice_id]
            share = Decimal(self.rng.choice(("0.1", "0.25", "0.5", "1")))
            amount = max(Decimal("1.00"), (invoice.amount_due * share).quantize(Decimal("0.01"), ROUND_DOWN))
            note = self.state.create_credit_note(
                self.tenant_id, invoice.contact_id, str(amount), currency=invoice.currency_code,
                currency_rate=invoice.currency_rate)
            self.state.allocate_credit_note(self.tenant_id, note["CreditNoteID"], invoice_id)
            self.credit_notes[note["CreditNoteID"].lower()] = invoice_id.lower()
        return invoice_id

    def _payment(self) -> str | None:
        invoice_id = self._pick(self._open)
        if invoice_id is not None:
            due = self.books.invoices[invoice_id].amount_due
            amount = None  # the whole amount due, or a part of it
            if self.rng.random() >= 0.6:
                part = (due * Decimal(self.rng.randint(10, 90)) / 100).quantize(Decimal("0.01"), ROUND_DOWN)
                amount = str(max(Decimal("0.01"), part))
            paid = self.state.apply_payment(self.tenant_id, invoice_id, amount)
            self.payments.setdefault(invoice_id.lower(), []).append(
                (translate.ms_datetime(paid["UpdatedDateUTC"]), paid["PaymentID"].lower()))
        return invoice_id


# --- what each way cost, minute by minute ----------------------------------------------------


@dataclass
class Tally:
    """Calls and wire bytes the emulator counted for the tenant, per simulated minute."""

    minutes: int
    calls: list[int] = field(default_factory=list)
    wire: list[int] = field(default_factory=list)
    by_activity: dict[str, list[int]] = field(default_factory=dict)  # activity -> [calls, bytes]
    endpoints: list[dict] = field(default_factory=list)
    retries: Counter = field(default_factory=Counter)  # why work was put off a minute -> times
    _seen: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self.calls = [0] * self.minutes
        self.wire = [0] * self.minutes

    def count(self, state, tenant_id: str, minute: int, activity: str) -> None:
        """Add what the emulator counted since the last look to this minute and activity."""
        now = (state.call_count(tenant_id), state.bytes_sent(tenant_id))
        calls, wire = now[0] - self._seen[0], now[1] - self._seen[1]
        self._seen = now
        self.calls[minute] += calls
        self.wire[minute] += wire
        spent = self.by_activity.setdefault(activity, [0, 0])
        spent[0] += calls
        spent[1] += wire

    def refused(self, exc: Exception) -> None:
        self.retries[f"'{exc.reason}'" if isinstance(exc, Throttled) else type(exc).__name__] += 1

    def day_calls(self, calendar: Calendar) -> list[int]:
        return [sum(self.calls[a:b]) for a, b in zip(calendar.day_starts, calendar.day_starts[1:])]

    def most_in_24_hours(self) -> int:
        window = best = sum(self.calls[:DAY_MINUTES])
        for minute in range(DAY_MINUTES, self.minutes):
            window += self.calls[minute] - self.calls[minute - DAY_MINUTES]
            best = max(best, window)
        return best


@dataclass
class Lost:
    """A change whose webhook event Xero did not deliver, and when the mirror got it."""

    minute: int
    category: str
    resource_id: str
    invoice_id: str | None  # the invoice that shows the change (None: a contact)
    version: datetime  # the event's eventDateUtc: the object's UpdatedDateUTC from that change
    payments: tuple[str, ...] = ()  # payments made by then that the mirror must hold too
    arrived: int | None = None  # the minute the mirror first held it


@dataclass
class WayResult:
    way: str
    tally: Tally
    digest: str
    changes: dict[str, int]
    skipped: int
    customers: int
    lost: list[Lost] = field(default_factory=list)
    events: int = 0
    seconds: float = 0.0


# --- ours: webhooks (some lost), the drain, the ticker and reconciliation ------------------------------


class Ours:
    def __init__(self, rt: WorkerRuntime, state, tenant_id: str, script: Script, tally: Tally, clock: dict):
        self.rt, self.state, self.tenant_id, self.script, self.tally = rt, state, tenant_id, script, tally
        self.ticker = Ticker(rt.sessions, rt.redis, WorkerOptions())
        for gov in (rt.governor, self.ticker.governor):  # the governor's windows run on the simulated clock
            gov.clock = lambda: clock["now"].timestamp()
        self.base = timedelta(seconds=WorkerOptions().reconcile_seconds)
        self.loss = random.Random(f"{SEED}:lost")
        self.sequence = max((e["sequence"] for e in state.webhook_events()), default=0)
        self.undrained = False
        self.lost: list[Lost] = []
        self.waiting: list[Lost] = []
        self.events = 0

    def minute(self, minute: int, now: datetime, changed: int) -> None:
        synced = False
        if changed:
            self._deliver(minute, now)
        if self.undrained:
            synced |= self._drain(minute, now)
        for due_tenant in self.ticker.due(now, self.base):
            kinds = jobs.due_kinds(self.rt.sessions, self.rt.governor, due_tenant, now, self.base)
            try:
                sync.reconcile(due_tenant, api=self.rt.api(due_tenant, governor.RECONCILE),
                               sessions=self.rt.sessions, now=now, kinds=tuple(kinds))
            except RETRYABLE as exc:
                self.tally.refused(exc)  # its marks did not move: due again next minute
            self.tally.count(self.state, self.tenant_id, minute, "reconciliation sweeps")
            synced = True
        if synced and self.waiting:
            self._arrivals(minute)

    def _deliver(self, minute: int, now: datetime) -> None:
        """The minute's new events, as one delivery a few seconds later, less those lost."""
        fresh = [e for e in self.state.webhook_events() if e["sequence"] > self.sequence]
        if not fresh:
            return
        self.sequence = fresh[-1]["sequence"]
        self.events += len(fresh)
        kept = []
        for event in fresh:
            if self.loss.random() < LOSS:
                self._lose(minute, event)
            else:
                kept.append({k: v for k, v in event.items() if k != "sequence"})
        if not kept:
            return
        body = json.dumps({"events": kept, "firstEventSequence": fresh[0]["sequence"],
                           "lastEventSequence": fresh[-1]["sequence"], "entropy": "MONTHBENCHENTROPY00"})
        with transaction(self.rt.sessions) as session:
            inbox.store(session, parse(body.encode()), now + timedelta(seconds=5))
        self.undrained = True

    def _lose(self, minute: int, event: dict) -> None:
        category, resource = event["eventCategory"], event["resourceId"].lower()
        version = datetime.fromisoformat(event["eventDateUtc"]).replace(tzinfo=timezone.utc)
        invoice = {"INVOICE": resource, "CREDITNOTE": self.script.credit_notes.get(resource)}.get(category)
        payments = tuple(p for at, p in self.script.payments.get(invoice or "", []) if at <= version)
        lost = Lost(minute, category, resource, invoice, version, payments)
        self.lost.append(lost)
        self.waiting.append(lost)

    def _drain(self, minute: int, now: datetime) -> bool:
        try:
            sync.drain(self.tenant_id, api=self.rt.api(self.tenant_id, governor.WEBHOOK),
                       sessions=self.rt.sessions, now=now + timedelta(seconds=10))
            self.undrained = False
        except RETRYABLE as exc:
            self.tally.refused(exc)  # the events stay outstanding: the job would run again
        self.tally.count(self.state, self.tenant_id, minute, "webhook syncs")
        return True

    def _arrivals(self, minute: int) -> None:
        invoices = sorted({w.invoice_id for w in self.waiting if w.invoice_id})
        contacts = sorted({w.resource_id for w in self.waiting if w.category == "CONTACT"})
        payments = sorted({p for w in self.waiting for p in w.payments})
        with self.rt.sessions() as session:
            held = mirror.stored_versions(session, Invoice, "invoice_id", self.tenant_id, invoices)
            held_contacts = mirror.stored_versions(session, Contact, "contact_id", self.tenant_id, contacts)
            paid: set[str] = set()
            if payments:
                paid = set(session.scalars(select(Payment.payment_id).where(
                    Payment.tenant_id == self.tenant_id, Payment.payment_id.in_(payments))))
        for waiting in list(self.waiting):
            if waiting.category == "CONTACT":
                version = held_contacts.get(waiting.resource_id)
            else:
                version = held.get(waiting.invoice_id) if waiting.invoice_id else waiting.version
            if version is not None and version >= waiting.version and set(waiting.payments) <= paid:
                waiting.arrived = minute
                self.waiting.remove(waiting)


# --- the pollers ------------------------------------------------------------------------------------


class Poller:
    """GET Invoices, Payments and Contacts every `every` minutes, If-Modified-Since either the
    previous poll's start (`look_back` None, Nango) or `look_back` ago (Breadwinner), a page
    of Xero's default 100 at a time until a short page. Through the same client as ours (gzip
    asked for) but not our governor: a poller has its own ways, and its calls are what Xero
    counts; a refused call (a 429, a 5xx) is tried again a minute on from the same point."""

    def __init__(self, rt: WorkerRuntime, state, tenant_id: str, tally: Tally, every: int,
                 look_back: timedelta | None, start: datetime):
        self.rt, self.state, self.tenant_id, self.tally = rt, state, tenant_id, tally
        self.every, self.look_back = every, look_back
        self.since = dict.fromkeys(POLLED, start)  # the month starts with every kind in sync
        self.due: set[str] = set()

    def minute(self, minute: int, now: datetime, changed: int) -> None:
        del changed
        if minute % self.every == 0:
            self.due = set(POLLED)
        if not self.due:
            return
        xero, token = self.rt.xero, self.rt.tokens.access_token(self.tenant_id)
        began = now.replace(microsecond=0)  # Nango sends whole seconds
        for kind in [k for k in POLLED if k in self.due]:
            since = self.since[kind] if self.look_back is None else began - self.look_back
            try:
                page = 1
                while len(getattr(xero, kind)(self.tenant_id, token, modified_since=since,
                                              page=page).items) >= NANGO_PAGE:
                    page += 1
            except (XeroRateLimited, XeroUnavailable) as exc:
                self.tally.refused(exc)
                continue
            finally:
                self.tally.count(self.state, self.tenant_id, minute, f"GET {kind}")
            self.since[kind] = began
            self.due.discard(kind)


# --- one way's month ----------------------------------------------------------------------------------


def _set_clock(state, moment: datetime) -> None:
    """The emulator's clock to the simulated one (it runs on real time plus an offset)."""
    ahead = moment.timestamp() - state.clock.time()
    if ahead > 0:
        state.advance_clock(ahead)


def _run_way(way: str, size: Size, calendar_for: Callable, redis_url: str,
             settings_env: dict[str, str] | None = None) -> tuple[WayResult, Calendar]:
    began = time.monotonic()
    with run_emulator(seed=SEED, tenants=1, contacts=size.contacts, invoices=size.invoices,
                      access_token_ttl=(size.days + 5) * 86400) as emu:
        state = emu.state
        tenant_id = state.tenant_ids[0]
        state.set_tenant_limits(tenant_id, day=STARTER_DAY)
        calendar = calendar_for(state.tenant(tenant_id).org.timezone)
        database = stack.sqlite_database(f"month-{way.replace(' ', '-')}-{os.getpid()}")
        env = {**emu.env(), "DATABASE_URL": database, "REDIS_URL": redis_url, "TOKEN_KEYS": new_key(),
               **(settings_env or {})}
        settings = Settings.from_env(env)
        with WorkerRuntime(settings, WorkerOptions()) as rt:
            rt.redis.flushdb()
            stack.connect_tenants(settings, rt.sessions, [tenant_id], organisation=True)
            if way == OURS:
                sync.backfill(tenant_id, api=rt.api(tenant_id, governor.BACKFILL), sessions=rt.sessions,
                              now=state.clock.now())
            if state.clock.now() > calendar.start - timedelta(minutes=30):
                raise RuntimeError("the month would begin before the backfill is half an hour old")
            _set_clock(state, calendar.start)
            state.reset_calls()  # the month's figures leave out the connection and the backfill
            tally = Tally(calendar.minutes)
            clock = {"now": calendar.start}
            script = Script(state, tenant_id, size, calendar)
            if way == OURS:
                runner = Ours(rt, state, tenant_id, script, tally, clock)
            elif way == HOURLY:
                runner = Poller(rt, state, tenant_id, tally, 60, None, calendar.start)
            else:
                runner = Poller(rt, state, tenant_id, tally, 13, timedelta(minutes=28), calendar.start)
            for minute in range(calendar.minutes):
                now = clock["now"] = calendar.at(minute)
                _set_clock(state, now)
                runner.minute(minute, now, script.apply(minute))
            tally.endpoints = [r for r in state.call_counts() if r["tenant_id"] == tenant_id]
    for suffix in ("", "-wal", "-shm"):
        Path(database.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    result = WayResult(way, tally, script.digest, dict(script.counts), script.skipped, len(script.customers),
                       lost=getattr(runner, "lost", []), events=getattr(runner, "events", 0),
                       seconds=time.monotonic() - began)
    return result, calendar


# --- the benchmark ----------------------------------------------------------------------------------


def run(pg: Postgres, quick: bool = False) -> Section:
    del pg  # SQLite is enough: the cost measured is Xero's, not the database's
    size = QUICK if quick else FULL
    results, calendar = measure(size)
    return _section(size, calendar, results)


def measure(size: Size, redis_url: str | None = None, settings_env: dict[str, str] | None = None,
            ways: tuple[str, ...] = WAYS) -> tuple[dict[str, WayResult], Calendar]:
    """Each way's month, on one calendar (the organisation's days from the first way's start).
    `settings_env`: settings for the worker beyond the defaults (XERO_DAY_LIMIT, say)."""
    began = datetime.now(timezone.utc)
    calendars: dict[str, Calendar] = {}

    def calendar_for(xero_zone: str) -> Calendar:
        if xero_zone not in calendars:
            calendars[xero_zone] = _calendar(zone_for(xero_zone).tzinfo(), size.days, began)
        return calendars[xero_zone]

    results: dict[str, WayResult] = {}
    redis = start_embedded() if redis_url is None else None
    try:
        for way in ways:
            results[way], calendar = _run_way(way, size, calendar_for, redis_url or redis.url, settings_env)
    finally:
        if redis is not None:
            redis.stop()
    return results, calendar


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1_000_000:.2f}"


def _section(size: Size, calendar: Calendar, results: dict[str, WayResult]) -> Section:
    ours, hourly = results[OURS], results[HOURLY]
    hourly_bytes = max(1, sum(hourly.tally.wire))
    rows = []
    for way, label in ((HOURLY, "hourly If-Modified-Since poller (Nango's templates)"),
                       (BREADWINNER, "every 13 minutes, 28-minute look-back (Breadwinner)"),
                       (OURS, "ours (webhooks, 1% lost; worker.cadence reconciliation)")):
        tally = results[way].tally
        rows.append([label, f"{sum(tally.calls):,}",
                     f"{max(tally.day_calls(calendar)):,} / {tally.most_in_24_hours():,}",
                     _mb(sum(tally.wire)), f"{sum(tally.wire) / hourly_bytes:.2f}"])
    ours_bytes, ours_day = sum(ours.tally.wire), ours.tally.most_in_24_hours()
    lost = ours.lost
    arrived = [w.arrived - w.minute for w in lost if w.arrived is not None]
    missing = len(lost) - len(arrived)
    if lost:
        latency = (f"{len(lost)} lost, {len(arrived)} arrived; slowest {max(arrived, default=0)} min, "
                   f"median {statistics.median(arrived) if arrived else 0:g} min")
        latency += f"; {missing} never arrived" if missing else ""
    else:
        latency = "none lost"
    goals = [
        Goal("ours pulls no more bytes than the hourly poller",
             f"{_mb(ours_bytes)} MB vs {_mb(hourly_bytes)} MB ({ours_bytes / hourly_bytes:.2f})",
             ours_bytes <= hourly_bytes),
        Goal(f"ours within Starter's {STARTER_DAY:,} calls every day (any 24 hours)",
             f"at most {ours_day:,} in 24 hours", ours_day <= STARTER_DAY),
        Goal("every change whose webhook was lost reaches the mirror within an hour", latency,
             None if not lost else not missing and max(arrived) <= GOAL_LATENCY.total_seconds() // 60),
    ]
    same = len({r.digest for r in results.values()}) == 1
    made = ", ".join(f"{n:,} {kind}" for kind, n in sorted(ours.changes.items(), key=lambda kv: -kv[1]))
    if ours.skipped:
        made += f"; {ours.skipped} planned changes found no invoice that fit and were not made"
    refused = [f"{w}: " + ", ".join(f"{n:,} {why}" for why, n in sorted(r.tally.retries.items()))
               for w, r in results.items() if r.tally.retries]
    notes = [
        f"Run: {size.contacts:,} contacts ({ours.customers:,} of them customers, as the emulator's seed "
        f"makes them) and {size.invoices:,} invoices at the start; {size.days} of the organisation's days "
        f"(from {calendar.start:%Y-%m-%d %H:%M} UTC, its midnight), each with {size.invoice_changes} invoice "
        f"changes and {size.payments} payments at random minutes of 08:00-18:00 its time. Made: {made}.",
        f"The same changes in every way: {'yes' if same else '**NO**'} (digests "
        + ", ".join(f"{w} {r.digest}" for w, r in results.items()) + ").",
        f"Ours: {ours.events:,} webhook events, {len(lost)} lost (seeded, {LOSS:.0%} of events); each "
        "delivered event stored by the intake's own parse and store in the minute of its change, then "
        "drained by sync.drain.",
        _breakdown("Ours by activity", {k: tuple(v) for k, v in ours.tally.by_activity.items()}),
        _breakdown("Ours by endpoint", _endpoints(ours.tally)),
        _breakdown("Hourly poller by endpoint", _endpoints(hourly.tally)),
        _breakdown("13-minute poller by endpoint", _endpoints(results[BREADWINNER].tally)),
        "Calls a day: the most in one of the organisation's days / the most in any 24 hours (Xero's day "
        "window may be rolling or fixed: XERO.md leaves it open; the goal takes the stricter).",
        f"The tenant has Starter's {STARTER_DAY:,} calls a day (the emulator's window: the last 24 hours); "
        "ours learns it from Xero's headers. "
        + ("Work put off a minute because a call was refused (minutes x attempts): "
           + "; ".join(refused) + "." if refused else "No call was refused."),
        "Not counted: the connection, and ours' backfill before the month (the pollers' first full load is "
        "likewise left out); token refreshes (identity calls, not Accounting API calls: the access token "
        "outlives the month). Bytes are response bodies on the wire (gzip asked for by every way).",
        "Each way ran on its own emulator, seeded alike: " + ", ".join(
            f"{w} {r.seconds:.0f} s" for w, r in results.items()) + " of wall time.",
    ]
    return Section(
        "A model month",
        summary=(f"One organisation ({size.contacts:,} contacts, {size.invoices:,} invoices) over "
                 f"{size.days} days with {size.invoice_changes} invoice changes and {size.payments} payments "
                 f"a day, {LOSS:.0%} of webhooks lost: ours against two If-Modified-Since pollers, each on "
                 "an emulator seeded alike, on a simulated clock; calls and bytes counted by the emulator."),
        header=["way", "calls in the month", "most calls in a day / in 24 h", "MB pulled (wire)",
                "bytes / hourly poller"],
        rows=rows,
        goals=goals,
        notes=notes,
    )


def _endpoints(tally: Tally) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for row in tally.endpoints:
        key = row["endpoint"] + ("" if row["status"] == 200 else f" ({row['status']})")
        calls, wire = found.get(key, (0, 0))
        found[key] = (calls + row["count"], wire + row["bytes"])
    return found


def _breakdown(title: str, parts: dict[str, tuple[int, int]]) -> str:
    ordered = sorted(parts.items(), key=lambda kv: -kv[1][1])
    return f"{title}: " + "; ".join(f"{k} {c:,} calls, {_mb(b)} MB ({b // max(1, c):,} bytes a call)"
                                    for k, (c, b) in ordered) + "."
