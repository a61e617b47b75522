"""Chaos convergence (`make chaos`, `python -m bench.chaos`): the mirror ends equal to Xero's
truth however the world misbehaves on the way.

Random changes across several tenants (invoices raised, paid in parts, voided, due dates
moved, contacts added) while the emulator drops, duplicates and reorders webhooks and
answers 5xx, 429 and time-outs; the worker process is SIGKILLed several times and Redis is
restarted (its queues lost). Then, with the faults still on, the system is left to settle
and reconciliation runs; the mirror is compared with the emulator's snapshot field by field,
and every event the emulator delivered with a 200 is looked for in the inbox.

    python -m bench.chaos                 # 10,000 changes, 3 tenants, 3 SIGKILLs, 1 Redis restart
    python -m bench.chaos --changes 500   # smaller

tests/e2e/test_chaos_small.py runs a small version of the same in the test suite.
"""
from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import redis as redis_lib
from rq.job import Job
from sqlalchemy import func, select

from bench import stack
from emulator.state import LedgerError
from emulator.testing import run_emulator
from infra import queue
from infra.redis_server import RedisServer, start_embedded
from infra.settings import Settings
from store.models import Contact, InboxEvent, Invoice, Payment, SyncState
from webhook.payload import parse
from xero import translate

INVOICE_FIELDS = ("invoice_number", "type", "status", "contact_id", "date", "due_date", "currency_code",
                  "currency_rate", "total", "amount_due", "amount_paid", "amount_credited", "reference",
                  "fully_paid_on", "updated_utc")
CONTACT_FIELDS = ("name", "email", "email_lower", "is_customer", "is_supplier", "contact_status", "updated_utc")
KINDS = (("raise", 0.30), ("pay", 0.30), ("void", 0.08), ("due", 0.22), ("contact", 0.10))


@dataclass
class Plan:
    changes: int = 10_000
    tenants: int = 3
    rate: float = 60.0  # changes a second
    kills: int = 3
    redis_restarts: int = 1
    workers: int = 1
    webhook_drop: float = 0.05
    webhook_duplicate: float = 0.10
    webhook_reorder: float = 0.10
    error_rate: float = 0.05
    rate_limit_rate: float = 0.02
    timeout_rate: float = 0.01
    timeout_seconds: float = 5.0
    contacts: int = 40
    invoices: int = 300
    settle_timeout: float = 900.0
    seed: int = 2026
    minute_limit: int | None = None  # None: Xero's 60 calls a minute per tenant


@dataclass
class Outcome:
    plan: Plan
    made: dict[str, int] = field(default_factory=dict)
    refused: int = 0  # draws the ledger refused (an invoice with nothing left to pay, ...), drawn again
    kills: list[float] = field(default_factory=list)  # seconds into the run
    redis_restarts: list[float] = field(default_factory=list)
    worker_restarts: int = 0  # workers found dead (not by us) and started again, as a supervisor would
    drive_seconds: float = 0.0
    settle_seconds: float = 0.0
    reconcile_rounds: int = 0
    deliveries: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    inbox_states: dict[str, int] = field(default_factory=dict)
    delivered_events: int = 0
    lost_events: int = 0
    truth: dict[str, int] = field(default_factory=dict)
    differing: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return self.lost_events == 0 and not any(self.differing.values())


class Driver:
    """Valid random changes, as a Xero user would make them, across the tenants."""

    def __init__(self, state, tenant_ids: list[str], rng: random.Random):
        self.state, self.tenant_ids, self.rng = state, tenant_ids, rng
        self.invoices = {t: list(state.tenant(t).invoices) for t in tenant_ids}
        self.customers = {t: [c.contact_id for c in state.tenant(t).contacts.values() if c.is_customer]
                          for t in tenant_ids}
        self.made: dict[str, int] = {}
        self.refused = 0

    def one(self, i: int) -> None:
        """One change; a draw the ledger refuses (nothing left to pay, say) is drawn again."""
        tenant = self.tenant_ids[i % len(self.tenant_ids)]
        for _ in range(10):
            kind = self.rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
            try:
                getattr(self, kind)(tenant)
            except (LedgerError, LookupError):
                self.refused += 1
                continue
            self.made[kind] = self.made.get(kind, 0) + 1
            return

    def _open(self, tenant: str, unpaid: bool = False):
        books = self.state.tenant(tenant)
        for _ in range(20):
            invoice = books.invoices[self.rng.choice(self.invoices[tenant])]
            if invoice.status == "AUTHORISED" and invoice.amount_due > 0 and (not unpaid or invoice.amount_paid == 0):
                return invoice
        raise LookupError("no open invoice found")

    def raise_(self, tenant: str) -> None:
        total = Decimal(self.rng.randrange(1000, 900_000)) / 100
        created = self.state.create_invoice(tenant, self.rng.choice(self.customers[tenant]), total)
        self.invoices[tenant].append(created["InvoiceID"])

    def pay(self, tenant: str) -> None:
        invoice = self._open(tenant)
        if self.rng.random() < 0.3:
            amount = invoice.amount_due  # the rest: PAID
        else:
            share = Decimal(self.rng.uniform(0.1, 0.6))
            amount = max(Decimal("0.01"), (invoice.amount_due * share).quantize(Decimal("0.01")))
        self.state.apply_payment(tenant, invoice.invoice_id, amount)

    def void(self, tenant: str) -> None:
        self.state.void_invoice(tenant, self._open(tenant, unpaid=True).invoice_id)

    def due(self, tenant: str) -> None:
        moved = date.today() + timedelta(days=self.rng.randint(-60, 90))
        self.state.set_due_date(tenant, self._open(tenant).invoice_id, moved.isoformat())

    def contact(self, tenant: str) -> None:
        n = sum(self.made.values())
        made = self.state.create_contact(tenant, f"Chaos Contact {n}", f"chaos{n}@example.com",
                                         is_customer=self.rng.random() < 0.7)
        if made["IsCustomer"]:
            self.customers[tenant].append(made["ContactID"])

    def __getattr__(self, name: str):
        if name == "raise":
            return self.raise_
        raise AttributeError(name)


def run_chaos(plan: Plan, database_url: str, log=print) -> Outcome:
    out = Outcome(plan)
    rng = random.Random(plan.seed)
    redis_server = start_embedded()
    emulator = run_emulator(seed=plan.seed, tenants=plan.tenants, contacts=plan.contacts, invoices=plan.invoices,
                            webhook_retry_window=120.0, fault_seed=plan.seed)
    web = None
    workers: list[stack.Worker] = []
    sessions = stack.sessions_for(database_url)
    try:
        env = {**emulator.env(), "DATABASE_URL": database_url, "REDIS_URL": redis_server.url,
               "TOKEN_KEYS": stack.token_keys(), **stack.FAST_WORKER, "RECONCILE_SECONDS": "60",
               "RETRY_ATTEMPTS": "50"}
        if plan.minute_limit:
            emulator.state.set_limits(minute=plan.minute_limit)
            env["XERO_MINUTE_LIMIT"] = str(plan.minute_limit)
        settings = Settings.from_env(env)
        web = stack.Gunicorn("wsgi:create_app()", env, "chaos-web", workers=2)
        emulator.state.set_webhook_url(f"{web.url}/webhooks/xero")
        tenant_ids = emulator.state.tenant_ids
        stack.connect_tenants(settings, sessions, tenant_ids)
        workers = [stack.Worker(env, f"chaos-worker-{i}") for i in range(plan.workers)]
        _wait(lambda: _all_backfilled(sessions, tenant_ids), 300, "backfill")
        log(f"chaos: {len(tenant_ids)} tenants backfilled; driving {plan.changes} changes at {plan.rate}/s")
        emulator.state.set_faults(
            webhook_drop_rate=plan.webhook_drop, webhook_duplicate_rate=plan.webhook_duplicate,
            webhook_reorder_rate=plan.webhook_reorder, error_rate=plan.error_rate,
            rate_limit_rate=plan.rate_limit_rate, timeout_rate=plan.timeout_rate,
            timeout_seconds=plan.timeout_seconds)
        driver = Driver(emulator.state, tenant_ids, rng)
        kill_at = {int(plan.changes * (k + 1) / (plan.kills + 1)) for k in range(plan.kills)}
        restart_at = {int(plan.changes * (r + 0.55) / max(1, plan.redis_restarts)) for r in range(plan.redis_restarts)}
        started = time.monotonic()
        for i in range(plan.changes):
            delay = started + i / plan.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            driver.one(i)
            if i in kill_at:
                victim = workers.pop(0)
                victim.kill()
                out.kills.append(time.monotonic() - started)
                workers.append(stack.Worker(env, f"chaos-worker-{len(out.kills) + plan.workers}"))
                log(f"chaos: SIGKILLed a worker at change {i}")
            if i in restart_at:
                _restart_redis(redis_server)
                out.redis_restarts.append(time.monotonic() - started)
                log(f"chaos: restarted Redis at change {i}")
            if i % 200 == 0:
                out.worker_restarts += _supervise(workers, env)
        out.drive_seconds = time.monotonic() - started
        out.made, out.refused = driver.made, driver.refused
        log(f"chaos: {plan.changes} changes made in {out.drive_seconds:.0f}s; settling")

        settle_started = time.monotonic()
        deadline = settle_started + plan.settle_timeout
        emulator.state.wait_for_webhooks(timeout=plan.settle_timeout)
        log(f"chaos: webhooks delivered after {time.monotonic() - settle_started:.0f}s")
        redis = redis_lib.Redis.from_url(redis_server.url)
        while True:
            out.worker_restarts += _supervise(workers, env)
            _wait(lambda: _outstanding(sessions) == 0, max(1, deadline - time.monotonic()), "inbox drained",
                  on_poll=lambda: _supervise(workers, env))
            log(f"chaos: inbox drained after {time.monotonic() - settle_started:.0f}s")
            for tenant_id in tenant_ids:
                _reconcile(redis, sessions, tenant_id, deadline)
            out.reconcile_rounds += 1
            log(f"chaos: reconciled after {time.monotonic() - settle_started:.0f}s")
            _wait(lambda: _outstanding(sessions) == 0, max(1, deadline - time.monotonic()), "inbox drained")
            _compare(emulator.state, sessions, tenant_ids, out)
            if not any(out.differing.values()) or time.monotonic() > deadline or out.reconcile_rounds >= 3:
                break
            log(f"chaos: after reconcile round {out.reconcile_rounds}: {out.differing}; another round")
        out.settle_seconds = time.monotonic() - settle_started
        redis.close()
        _count_inbox(emulator.state, sessions, out)
        for row in emulator.state.call_counts():
            key = str(row["status"])
            out.calls[key] = out.calls.get(key, 0) + row["count"]
    finally:
        for worker in workers:
            worker.stop()
        if web:
            web.stop()
        emulator.stop()
        redis_server.stop()
        sessions.kw["bind"].dispose()
    return out


def _restart_redis(server: RedisServer) -> None:
    server.stop()
    time.sleep(2.0)  # an outage, not a blink: intake answers without waking, the relay catches up later
    server.start()


def _supervise(workers: list[stack.Worker], env: dict[str, str]) -> int:
    """Start again any worker that died by itself (a process supervisor's job)."""
    restarted = 0
    for i, worker in enumerate(workers):
        if worker.process.poll() is not None:
            worker.stop()
            workers[i] = stack.Worker(env, f"chaos-worker-restarted-{time.monotonic():.0f}")
            restarted += 1
    return restarted


def _wait(predicate, timeout: float, what: str, on_poll=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"chaos: {what} did not happen within {timeout:.0f}s")
        if on_poll:
            on_poll()
        time.sleep(0.5)


def _all_backfilled(sessions, tenant_ids: list[str]) -> bool:
    with sessions() as s:
        done = set(s.scalars(select(SyncState.tenant_id).where(SyncState.backfill_status == "done")))
    return set(tenant_ids) <= done


def _outstanding(sessions) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent).where(
            InboxEvent.state.in_(("pending", "enqueued")))) or 0


def _reconcile(redis, sessions, tenant_id: str, deadline: float) -> None:
    """One reconcile job for the tenant, retried until one reports that it swept (not rescheduled).

    Settling compresses time: every kind's sweep is made due first, as the cadence's periods
    (worker.cadence) would have made it had the run gone on for hours."""
    from sqlalchemy import update

    from ops.commands import LONG_AGO
    from store.db import transaction
    from store.models import SyncState

    with transaction(sessions) as session:
        session.execute(update(SyncState).where(SyncState.tenant_id == tenant_id).values(
            contacts_swept_at=LONG_AGO, invoices_swept_at=LONG_AGO, payments_swept_at=LONG_AGO))
    while time.monotonic() < deadline:
        if not queue.enqueue(redis, queue.RECONCILE, tenant_id):
            time.sleep(0.5)  # one is queued already (the ticker's): let it start, then ask for ours
            continue
        job_id = redis.get(queue.guard_key(queue.RECONCILE, tenant_id))
        if job_id is None:
            continue
        job_id = job_id.decode()
        while time.monotonic() < deadline:
            try:
                job = Job.fetch(job_id, connection=redis)
            except Exception:  # noqa: BLE001 - gone (lost): ask again
                break
            status = job.get_status()
            if status == "finished":
                if str(job.return_value() or "").startswith("reconciled"):
                    return
                break
            if status in ("failed", "stopped", "canceled"):
                break
            time.sleep(0.3)
    raise TimeoutError(f"chaos: no reconcile of {tenant_id} finished")


def _compare(state, sessions, tenant_ids: list[str], out: Outcome) -> None:
    differing = {"invoices": 0, "payments": 0, "contacts": 0}
    truth_counts = {"invoices": 0, "payments": 0, "contacts": 0}
    out.examples = []
    for tenant_id in tenant_ids:
        truth = state.snapshot(tenant_id)
        with sessions() as s:
            invoices = {r.invoice_id: r for r in s.scalars(select(Invoice).where(Invoice.tenant_id == tenant_id))}
            contacts = {r.contact_id: r for r in s.scalars(select(Contact).where(Contact.tenant_id == tenant_id))}
            payments = {r.payment_id: r for r in s.scalars(select(Payment).where(Payment.tenant_id == tenant_id))}
        truth_counts["invoices"] += len(truth["Invoices"])
        truth_counts["payments"] += len(truth["Payments"])
        truth_counts["contacts"] += len(truth["Contacts"])
        for kind, items, held, key in (("invoices", truth["Invoices"], invoices, "InvoiceID"),
                                       ("contacts", truth["Contacts"], contacts, "ContactID"),
                                       ("payments", truth["Payments"], payments, "PaymentID")):
            ids = {i[key] for i in items}
            extra = set(held) - ids
            differing[kind] += len(extra)
            out.examples += [f"{kind[:-1]} {x} in the mirror, not in Xero" for x in sorted(extra)[:3]]
            for item in items:
                row = held.get(item[key])
                if kind == "payments" and item["Status"] == "DELETED" and (row is None or row.status == "DELETED"):
                    continue  # deleted before the mirror saw it: it need not be held at all
                problem = "missing" if row is None else _differs(kind, row, item)
                if problem:
                    differing[kind] += 1
                    if len(out.examples) < 10:
                        out.examples.append(f"{kind[:-1]} {item[key]}: {problem}")
    out.differing, out.truth = differing, truth_counts


def _differs(kind: str, row, truth: dict) -> str | None:
    if kind == "payments":
        held = (row.status, row.amount, row.invoice_id)
        want = (truth["Status"], Decimal(str(truth["Amount"])), truth["Invoice"]["InvoiceID"])
        return None if held == want else f"mirror {held} != Xero {want}"
    expected = (translate.invoice_row if kind == "invoices" else translate.contact_row)(row.tenant_id, truth)
    for name in INVOICE_FIELDS if kind == "invoices" else CONTACT_FIELDS:
        if getattr(row, name) != expected[name]:
            return f"{name}: mirror {getattr(row, name)!r} != Xero {expected[name]!r}"
    return None


def _count_inbox(state, sessions, out: Outcome) -> None:
    with sessions() as s:
        keys = set(s.scalars(select(InboxEvent.dedupe_key)))
        out.inbox_states = dict(s.execute(select(InboxEvent.state, func.count()).group_by(InboxEvent.state)).all())
    delivered: set[str] = set()
    for d in state.webhook_deliveries():
        outcome = d["outcome"] + (" (duplicate)" if d["duplicate"] else "")
        out.deliveries[outcome] = out.deliveries.get(outcome, 0) + 1
        if any(a["status"] == 200 for a in d["attempts"]):
            delivered.update(e.dedupe_key for e in parse(d["body"].encode()))
    out.delivered_events = len(delivered)
    out.lost_events = len(delivered - keys)


def markdown(out: Outcome, seconds: float, database: str) -> str:
    p = out.plan
    rows = [
        ("changes made", f"{sum(out.made.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(out.made.items()))}); "
                         f"{out.refused} draws refused by the ledger and drawn again"),
        ("tenants, workers", f"{p.tenants} tenants, {p.workers} worker process(es), gunicorn web (2 workers, "
                             f"the intake writer process), {database}"),
        ("webhook faults", f"dropped {p.webhook_drop:.0%}, duplicated {p.webhook_duplicate:.0%}, "
                           f"reordered {p.webhook_reorder:.0%}"),
        ("API faults", f"5xx {p.error_rate:.0%}, 429 {p.rate_limit_rate:.0%}, time-outs {p.timeout_rate:.0%} "
                       f"({p.timeout_seconds:.0f} s then 504); limits per tenant: "
                       f"{p.minute_limit or 60} calls/min, 5 in flight"),
        ("webhook deliveries", ", ".join(f"{k}: {v}" for k, v in sorted(out.deliveries.items()))),
        ("Accounting/identity calls by status", ", ".join(f"{k}: {v}" for k, v in sorted(out.calls.items()))),
        ("worker SIGKILLs", f"{len(out.kills)} at {', '.join(f'{t:.0f} s' for t in out.kills)}"),
        ("Redis restarts", f"{len(out.redis_restarts)} at {', '.join(f'{t:.0f} s' for t in out.redis_restarts)}"),
        ("workers that died by themselves (restarted)", str(out.worker_restarts)),
        ("driving", f"{out.drive_seconds:.0f} s at {p.rate:.0f} changes/s"),
        ("settling (drain + reconcile, faults still on)",
         f"{out.settle_seconds:.0f} s, {out.reconcile_rounds} reconcile round(s)"),
        ("Xero's truth", ", ".join(f"{k}: {v}" for k, v in out.truth.items())),
        ("differing after reconciliation", ", ".join(f"{k}: {v}" for k, v in out.differing.items())),
        ("events delivered with a 200", str(out.delivered_events)),
        ("of which missing from the inbox", str(out.lost_events)),
        ("inbox events by state", ", ".join(f"{k}: {v}" for k, v in sorted(out.inbox_states.items()))),
    ]
    lines = [
        "## Chaos convergence", "",
        f"**{'Converged' if out.converged else 'DID NOT CONVERGE'}**: "
        f"{sum(out.differing.values())} differing rows, {out.lost_events} inbox events lost.", "",
        "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], "",
    ]
    if out.examples:
        lines += ["Differences:", "", *[f"- {e}" for e in out.examples], ""]
    lines.append(f"_Took {seconds:.0f} s._")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench import machine
    from bench.postgres import Postgres

    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--postgres", action="store_true", help="on PostgreSQL (BENCH_PG_URL, or a throwaway cluster)")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("CHAOS.md"))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop what this run started
    started_at = datetime.now(timezone.utc)
    plan = Plan(changes=args.changes, tenants=args.tenants, rate=args.rate)
    pg = Postgres.start() if args.postgres else None
    try:
        if pg is not None and not pg.url:
            print(f"PostgreSQL unavailable: {pg.skip}", file=sys.stderr)
            return 2
        database = "PostgreSQL" if pg else "SQLite"
        url = pg.fresh() if pg else stack.sqlite_database("chaos")
        began = time.monotonic()
        out = run_chaos(plan, url)
        seconds = time.monotonic() - began
        facts = machine.describe(pg.version if pg else None, pg.origin if pg else "not used")
    finally:
        if pg:
            pg.stop()
    text = "\n".join([
        "# Chaos run", "",
        f"- command: `python -m bench.chaos {' '.join(argv if argv is not None else sys.argv[1:])}`".rstrip(),
        f"- date: {started_at:%Y-%m-%d %H:%M} UTC", "",
        "| machine | |", "|---|---|", *[f"| {k} | {v} |" for k, v in facts], "",
        markdown(out, seconds, database), "",
    ])
    args.output.write_text(text)
    print(text)
    print(json.dumps({"converged": out.converged, "differing": out.differing, "lost": out.lost_events}))
    return 0 if out.converged else 1


if __name__ == "__main__":
    sys.exit(main())
