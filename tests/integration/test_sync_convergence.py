"""Duplicates, reordering, replays, 429s and 5xx: the mirror still converges on Xero's truth."""
import time
from datetime import datetime, timezone

import pytest
from rq import SimpleWorker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from sqlalchemy import select

from infra import queue
from store import mirror
from store.db import transaction
from store.models import InboxEvent, Invoice, SyncState
from tests.worker_support import Announced, announced, assert_invoice_matches, last_sequence, mirror_rows, store_events
from worker import governor, jobs, sync
from xero import translate
from xero.client import XeroRateLimited


def customer(emulator, t):
    return next(c["ContactID"] for c in emulator.state.snapshot(t)["Contacts"] if c["IsCustomer"])


def outstanding_states(runtime, t):
    with runtime.sessions() as session:
        return sorted(session.scalars(select(InboxEvent.state).where(InboxEvent.tenant_id == t)))


def run_worker(runtime):
    """A real RQ worker (in this process) over our queues, until they are empty."""
    SimpleWorker(queue.queues(runtime.redis), connection=runtime.redis).work(burst=True, with_scheduler=True)


def scheduled_in(runtime, name) -> list[float]:
    registry = ScheduledJobRegistry(name, connection=runtime.redis)
    now = datetime.now(timezone.utc)
    return [(registry.get_scheduled_time(job_id) - now).total_seconds() for job_id in registry.get_job_ids()]


def test_duplicate_reordered_and_replayed_events_converge(emulator, runtime, connected):
    t, state = connected, emulator.state
    mark = last_sequence(emulator)
    invoice_id = state.create_invoice(t, customer(emulator, t), "500.00")["InvoiceID"]
    state.apply_payment(t, invoice_id, "125.00")
    state.set_due_date(t, invoice_id, "2027-01-31")
    events = [e for e in announced(emulator, mark) if e.category == "INVOICE"]
    assert len(events) == 3

    # newest first, each twice (deduplicated by the inbox), then a replay with a new identity
    store_events(runtime.sessions, list(reversed(events)) * 2)
    sync.drain(t, api=runtime.api(t, governor.WEBHOOK), sessions=runtime.sessions, now=runtime.now())
    store_events(runtime.sessions, [Announced(**{**e.__dict__, "replay": 1}) for e in events])
    sync.drain(t, api=runtime.api(t, governor.WEBHOOK), sessions=runtime.sessions, now=runtime.now())

    row = mirror_rows(runtime.sessions, t)["invoices"][invoice_id]
    assert_invoice_matches(row, state.invoice(t, invoice_id))
    assert str(row.due_date) == "2027-01-31" and row.amount_paid == 125
    assert set(outstanding_states(runtime, t)) == {"done"}


def test_an_older_updated_date_never_overwrites_a_newer_row(emulator, runtime, connected):
    t, state = connected, emulator.state
    invoice_id = state.create_invoice(t, customer(emulator, t), "80.00")["InvoiceID"]
    older = state.invoice(t, invoice_id)
    state.apply_payment(t, invoice_id, "80.00")
    newer = state.invoice(t, invoice_id)
    assert translate.ms_datetime(newer["UpdatedDateUTC"]) > translate.ms_datetime(older["UpdatedDateUTC"])

    def write(raw):
        with transaction(runtime.sessions) as session:
            rows = [translate.invoice_row(t, raw)]
            mirror.upsert_invoices(session, t, rows, runtime.now())
            mirror.apply_installments(session, t, rows, translate.installment_rows(t, raw), runtime.now())

    write(newer)
    write(older)  # a late, stale fetch
    row = mirror_rows(runtime.sessions, t)["invoices"][invoice_id]
    assert (row.status, row.amount_due) == ("PAID", 0)
    assert len([p for p in mirror_rows(runtime.sessions, t)["payments"].values()
                if p.invoice_id == invoice_id and p.status == "AUTHORISED"]) == 1
    with transaction(runtime.sessions) as session:  # and in one batch, whatever the order
        rows = [translate.invoice_row(t, newer), translate.invoice_row(t, older)]
        mirror.upsert_invoices(session, t, rows, runtime.now())
    with runtime.sessions() as session:
        assert session.get(Invoice, (t, invoice_id)).status == "PAID"


def test_a_429_reschedules_the_job_after_retry_after_and_loses_nothing(emulator, runtime, connected):
    t, state = connected, emulator.state
    mark = last_sequence(emulator)
    invoice_id = state.create_invoice(t, customer(emulator, t), "42.00")["InvoiceID"]
    store_events(runtime.sessions, announced(emulator, mark))
    state.set_faults(rate_limit_next=1, rate_limit_retry_after=2)

    started = time.monotonic()
    outcome = jobs.sync_tenant(t)
    assert time.monotonic() - started < 1.5  # it did not sit out the Retry-After
    assert outcome.startswith("rescheduled")
    assert runtime.governor.paused_for(t) == pytest.approx(2, abs=0.5)
    [delay] = scheduled_in(runtime, queue.WEBHOOK_QUEUE)
    assert 2.0 <= delay <= 4.0  # Retry-After, rounded up to RQ's whole seconds
    assert queue.sync_queued(runtime.redis, t)  # the follow-up is the tenant's one queued job
    assert invoice_id not in mirror_rows(runtime.sessions, t)["invoices"]

    time.sleep(delay + 0.2)
    run_worker(runtime)
    assert_invoice_matches(mirror_rows(runtime.sessions, t)["invoices"][invoice_id], state.invoice(t, invoice_id))
    assert set(outstanding_states(runtime, t)) == {"done"}


def test_5xx_are_retried_with_backoff_and_lose_nothing(emulator, runtime, connected):
    t, state = connected, emulator.state
    mark = last_sequence(emulator)
    invoice_id = state.create_invoice(t, customer(emulator, t), "42.00")["InvoiceID"]
    store_events(runtime.sessions, announced(emulator, mark))
    state.set_faults(error_rate=1.0, error_status=503)

    delays = []
    for _attempt in range(2):
        assert jobs.sync_tenant(t).startswith("Xero unavailable")
        [delay] = scheduled_in(runtime, queue.WEBHOOK_QUEUE)
        delays.append(delay)
        ScheduledJobRegistry(queue.WEBHOOK_QUEUE, connection=runtime.redis).remove(
            ScheduledJobRegistry(queue.WEBHOOK_QUEUE, connection=runtime.redis).get_job_ids()[0]
        )
        queue.clear_queued(runtime.redis, t)
    assert all(0 < d <= 1.5 for d in delays)  # 0.2 s base, doubling, jittered; RQ schedules in whole seconds
    with runtime.sessions() as session:
        assert "Xero unavailable" in session.get(SyncState, t).last_error

    state.set_faults(error_rate=0.0)
    queue.wake(runtime.redis, [t])
    run_worker(runtime)
    assert_invoice_matches(mirror_rows(runtime.sessions, t)["invoices"][invoice_id], state.invoice(t, invoice_id))


def test_retries_are_bounded_and_a_failed_job_leaves_the_events_outstanding(emulator, runtime, connected, monkeypatch):
    t, state = connected, emulator.state
    monkeypatch.setenv("RETRY_ATTEMPTS", "1")
    mark = last_sequence(emulator)
    state.create_invoice(t, customer(emulator, t), "42.00")
    store_events(runtime.sessions, announced(emulator, mark))
    state.set_faults(error_rate=1.0, error_status=500)
    queue.wake(runtime.redis, [t])
    deadline = time.monotonic() + 10
    failed = FailedJobRegistry(queue.WEBHOOK_QUEUE, connection=runtime.redis)
    while time.monotonic() < deadline and not failed.get_job_ids():
        run_worker(runtime)
        time.sleep(0.3)
    assert len(failed.get_job_ids()) == 1
    assert set(outstanding_states(runtime, t)) <= {"pending", "enqueued"}  # nothing lost: the relay will retry


def test_the_daily_limit_429_surfaces_retry_after_and_the_job_waits_for_it(emulator, runtime, connected):
    t, state = connected, emulator.state
    api = runtime.api(t, governor.WEBHOOK)
    api.invoices(page=1)  # one call spent today
    state.set_limits(day=1)
    with pytest.raises(XeroRateLimited) as caught:
        runtime.xero.invoices(t, runtime.tokens.access_token(t), page=1)
    assert caught.value.problem == "day"
    assert 86000 < caught.value.retry_after <= 86400
    assert caught.value.reported.day_remaining == 0

    mark = last_sequence(emulator)
    state.create_invoice(t, customer(emulator, t), "42.00")
    store_events(runtime.sessions, announced(emulator, mark))
    state.reset_calls()
    assert jobs.sync_tenant(t).startswith("rescheduled")
    [delay] = scheduled_in(runtime, queue.WEBHOOK_QUEUE)
    assert 86000 < delay <= 86402
    assert runtime.governor.paused_for(t) > 86000
    # another job for the tenant, e.g. from a new webhook, spends nothing while the pause holds
    queue.clear_queued(runtime.redis, t)
    assert jobs.sync_tenant(t).startswith("tenant paused")
    assert state.call_count(t) == 1
    assert set(outstanding_states(runtime, t)) <= {"pending", "enqueued"}
