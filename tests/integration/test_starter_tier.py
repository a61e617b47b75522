"""Xero's Starter tier: 1,000 calls a day per organisation, learned from Xero's headers.

No XERO_DAY_LIMIT is set anywhere here: the governor must learn the limit from
`X-DayLimit-Remaining`. Every job runs in-process through its production path
(`worker.jobs.*_tenant`: the job layer, the gateway, the governor at the job's priority), and
the governor, the jobs' `now` and the ticker's due rule all read the emulator's clock, which
the test moves a minute at a time, as bench/idle.py does. The governor's day window is the
UTC day of that clock, so each scenario starts at a UTC midnight of the emulator's clock.
"""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from emulator.testing import run_emulator
from infra.settings import WorkerOptions
from store import mirror
from store.models import Invoice
from tests.worker_support import (
    announced,
    assert_contact_matches,
    assert_invoice_matches,
    connect_client_credentials,
    last_sequence,
    mirror_rows,
    store_events,
)
from worker import jobs, sync
from worker.governor import BACKFILL, RECONCILE, WEBHOOK, Throttled
from worker.ticker import Ticker
from xero.client import XeroClient

STARTER = 1000
BIG = {"seed": 17, "tenants": 1, "contacts": 2000, "invoices": 20000}
SMALL = {"seed": 23, "tenants": 1, "contacts": 12, "invoices": 40}


@pytest.fixture
def emulator(request):
    # access tokens outlive the simulated day: a token refresh is an identity call, not one of
    # the Accounting API calls the day limit counts
    with run_emulator(**request.param, access_token_ttl=3 * 86400) as running:
        yield running


@pytest.fixture
def starter(emulator, settings, monkeypatch):
    """The tenant on Starter's 1,000 a day, the emulator's clock at the next UTC midnight, and
    the jobs' runtime on that clock; nothing says what the day limit is."""
    monkeypatch.delenv("XERO_DAY_LIMIT", raising=False)
    state = emulator.state
    tenant_id = state.tenant_ids[0]
    state.set_tenant_limits(tenant_id, day=STARTER)
    now = state.clock.now()
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    state.advance_clock((midnight - now).total_seconds() + 1)
    rt = jobs._runtime()  # the runtime `worker.jobs` builds from this environment and keeps
    assert not rt.governor.budget.day_limit_set
    monkeypatch.setattr(rt.governor, "clock", state.clock.time)
    monkeypatch.setattr(rt, "now", state.clock.now)
    return rt, tenant_id


def ticker_on(rt, clock) -> Ticker:
    ticker = Ticker(rt.sessions, rt.redis, WorkerOptions())
    ticker.governor.clock = clock.time
    return ticker


def held_invoice(rt, tenant_id, invoice_id) -> bool:
    with rt.sessions() as session:
        return session.scalar(select(Invoice.invoice_id).where(
            Invoice.tenant_id == tenant_id, Invoice.invoice_id == invoice_id)) is not None


def backfill_status(rt, tenant_id) -> str:
    with rt.sessions() as session:
        return mirror.sync_state(session, tenant_id).backfill_status


@pytest.mark.parametrize("emulator", [BIG], indirect=True)
def test_a_starter_tenant_backfills_20000_invoices_in_its_first_day_with_reconciliation_on(emulator, starter):
    """The backfill, the ticker's reconciliation (healthy cadence, then the webhooks-look-broken
    one from noon, when a change arrives that no webhook announced) and the Organisation read,
    for a whole UTC day, within Starter's 1,000 calls and with no 429."""
    rt, t = starter
    state, clock = emulator.state, emulator.state.clock
    day = clock.now().date()
    connect_client_credentials(rt.settings, rt.sessions, t)  # one Organisation read, as the CLI's connect
    outside = state.call_count(t)  # calls Xero counts that no governor saw
    ticker = ticker_on(rt, clock)
    base = timedelta(seconds=rt.options.reconcile_seconds)
    contact_id = state.snapshot(t)["Contacts"][0]["ContactID"]
    done_at, lost, lost_at, found_at, sweeps = None, None, None, None, 0

    for minute in itertools.count():  # one simulated UTC day, a minute at a time
        now = clock.now()
        if now.date() != day:
            break
        if done_at is None:
            jobs.backfill_tenant(t)  # a slice; throttled slices come back the next minute
            if backfill_status(rt, t) == "done":
                done_at = now
        for due in ticker.due(now, base):
            jobs.reconcile_tenant(due)
            sweeps += 1
        if lost is not None and found_at is None and held_invoice(rt, t, lost["InvoiceID"]):
            found_at = minute
        if lost is None and now.hour >= 12:  # a new invoice whose webhook Xero never delivers
            lost, lost_at = state.create_invoice(t, contact_id, "115.00"), minute
        state.advance_clock(60)

    midnight = datetime.combine(day, datetime.min.time(), timezone.utc)
    assert done_at is not None and done_at - midnight < timedelta(hours=1)
    assert found_at is not None and found_at - lost_at <= 60  # minutes: reconciliation found it in the hour
    truth = state.tenants()[0]
    with rt.sessions() as session:
        held = mirror.counts(session, t)
    assert held["invoices"] == truth["invoices"] == BIG["invoices"] + 1
    live_payments = sum(1 for p in state.snapshot(t)["Payments"] if p["Status"] == "AUTHORISED")
    # the invoices brought their payments (a deleted one need not be held)
    assert (held["contacts"], held["payments"]) == (truth["contacts"], live_payments)
    calls = state.call_count(t)
    assert state.call_count(t, status=429) == 0
    assert sweeps > 24 and calls <= STARTER
    assert int(rt.redis.get(rt.governor._day_key(t, midnight.timestamp()))) == calls - outside  # one UTC day
    # Xero's headers taught the governor the limit: what Xero says is left plus what the
    # governor counted. The connect's Organisation read (services.connection, the admin app) is made
    # outside the governor, so Xero counted one call more than the governor did: it learns
    # 999, one call on the safe side of the truth.
    assert outside == 1 and rt.governor.day_limit(t) == STARTER - outside


# --- webhook work never waits on what reconciliation spent ----------------------------------


def reconcile_until_refused(rt, tenant_id, clock) -> str:
    """Sweep every kind again and again, as a runaway scheduler (or many workers) would, until
    the governor refuses reconciliation; the refusal's reason."""
    while True:
        try:
            sync.reconcile(tenant_id, api=rt.api(tenant_id, RECONCILE), sessions=rt.sessions, now=clock.now())
        except Throttled as refused:
            return refused.reason


def webhook_changes(emulator, tenant_id) -> tuple[dict, dict, list]:
    """A new customer, an invoice for it and a part payment, announced and stored in the inbox."""
    state, mark = emulator.state, last_sequence(emulator)
    contact = state.create_contact(tenant_id, "Kea Traders", "ops@kea.example")
    invoice = state.create_invoice(tenant_id, contact["ContactID"], "230.00")
    state.apply_payment(tenant_id, invoice["InvoiceID"], "80.00")
    return contact, invoice, announced(emulator, mark)


def assert_synced(emulator, rt, tenant_id, contact, invoice) -> None:
    held, state = mirror_rows(rt.sessions, tenant_id), emulator.state
    contact_id, invoice_id = contact["ContactID"], invoice["InvoiceID"]
    assert_contact_matches(held["contacts"][contact_id], state.contact(tenant_id, contact_id))
    assert_invoice_matches(held["invoices"][invoice_id], state.invoice(tenant_id, invoice_id))


@pytest.mark.parametrize("emulator", [SMALL], indirect=True)
def test_webhook_syncs_never_wait_on_a_budget_reconciliation_spent(emulator, starter):
    rt, t = starter
    state, clock = emulator.state, emulator.state.clock
    gov, budget = rt.governor, rt.governor.budget
    connect_client_credentials(rt.settings, rt.sessions, t)
    outside = state.call_count(t)  # the connect's Organisation read: Xero counts it, no governor does
    assert jobs.backfill_tenant(t).startswith("backfill done")
    limit = gov.day_limit(t)
    assert limit == STARTER - outside  # learned from the first answer's X-DayLimit-Remaining

    def counted() -> int:
        return int(rt.redis.get(gov._day_key(t, clock.time())))

    # the minute: reconciliation takes all it may of it; a webhook sync in the same minute runs
    state.advance_clock(61)
    assert reconcile_until_refused(rt, t, clock) == "reconcile minute budget"
    with pytest.raises(Throttled, match="backfill minute"):
        gov.acquire(t, BACKFILL)
    contact, invoice, events = webhook_changes(emulator, t)
    store_events(rt.sessions, events, now=clock.now())
    before = state.call_count(t)
    outcome = jobs.sync_tenant(t)
    assert outcome.startswith("synced"), outcome  # not "rescheduled": no wait at all
    assert state.call_count(t) > before
    assert_synced(emulator, rt, t, contact, invoice)

    # the day: reconciliation, minute after minute, until the governor stops it for the day
    while (reason := reconcile_until_refused(rt, t, clock)) == "reconcile minute budget":
        state.advance_clock(61)
    assert reason == "reconcile day budget"
    assert counted() == budget.day_cap(RECONCILE, limit)  # 783 of 1,000: the rest is not reconciliation's
    with pytest.raises(Throttled, match="backfill day"):
        gov.acquire(t, BACKFILL)
    contact, invoice, events = webhook_changes(emulator, t)
    store_events(rt.sessions, events, now=clock.now())
    outcome = jobs.sync_tenant(t)
    assert outcome.startswith("synced"), outcome
    assert_synced(emulator, rt, t, contact, invoice)

    # and what is left is all webhook work's, to the last usable call, with no 429 from Xero
    api = rt.api(t, WEBHOOK)
    while True:
        try:
            api.organisation()
        except Throttled as refused:
            if refused.reason != "webhook minute budget":
                assert refused.reason == "webhook day budget"
                break
            state.advance_clock(61)
    assert counted() == budget.day_cap(WEBHOOK, limit)  # 979: 196 calls after reconciliation's 783
    assert gov.day_left(t) == limit - budget.day_cap(WEBHOOK, limit) > 0  # the headroom
    assert state.call_count(t) == outside + counted() <= STARTER
    assert state.call_count(t, status=429) == 0


# --- the minute limits: X-MinLimit-Remaining and X-AppMinLimit-Remaining -------------------


def calls_until_refused(api) -> tuple[int, Throttled]:
    made = 0
    while True:
        try:
            api.organisation()
        except Throttled as refused:
            return made, refused
        made += 1


@pytest.mark.parametrize("emulator", [SMALL], indirect=True)
def test_the_minute_limits_xero_reports_are_respected_before_xero_refuses(emulator, starter):
    rt, t = starter
    state, gov, budget = emulator.state, rt.governor, rt.governor.budget
    connect_client_credentials(rt.settings, rt.sessions, t)
    assert jobs.backfill_tenant(t).startswith("backfill done")
    state.advance_clock(61)  # a fresh minute for the tenant and the app

    # X-MinLimit-Remaining: 40 calls this minute that no governor counted (another process,
    # a connect); the first governed answer says so, and the governor believes it
    outside, token = XeroClient(rt.settings), rt.tokens.access_token(t)
    for _ in range(40):
        outside.organisation(t, token)
    made, refused = calls_until_refused(rt.api(t, WEBHOOK))
    assert made == budget.minute_cap(WEBHOOK) - 40 and refused.reason == "webhook minute budget"
    with pytest.raises(Throttled, match="reconcile minute"):
        gov.acquire(t, RECONCILE)
    assert state.call_count(t, status=429) == 0  # Xero's 60 were never reached

    # X-AppMinLimit-Remaining: the app (every tenant of it) has 4,001 calls a minute
    state.advance_clock(61)
    state.set_limits(app_minute=budget.app_reserve(RECONCILE) + 1)
    rt.api(t, WEBHOOK).organisation()  # 4,000 left: reconciliation's reserve reached, not passed
    with pytest.raises(Throttled, match="backfill app"):  # below backfill's 5,000
        rt.api(t, BACKFILL).organisation()
    rt.api(t, RECONCILE).organisation()  # 3,999 left
    with pytest.raises(Throttled, match="reconcile app"):
        rt.api(t, RECONCILE).organisation()
    rt.api(t, WEBHOOK).organisation()  # webhook work keeps going
    # ...until the app's floor (100 left), where every tenant waits, webhook work too
    state.set_limits(app_minute=3 + budget.app_minute_floor - 1)
    rt.api(t, WEBHOOK).organisation()
    assert gov.paused_for("any-other-tenant") == pytest.approx(10, abs=1)
    with pytest.raises(Throttled, match="paused"):
        rt.api(t, WEBHOOK).organisation()
    assert state.call_count(t, status=429) == 0
