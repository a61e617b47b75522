"""`ops replay`: re-run inbox events by time range, id, tenant or state; idempotent; a dry run."""
import json
from datetime import datetime, timedelta, timezone

from rq import Queue
from sqlalchemy import delete, func, select

from infra import queue
from store.backlog import settle
from store.db import transaction
from store.models import Contact, InboxEvent, Invoice, Payment
from tests.ops_support import customer_of, inbox_states, ops, run_worker
from tests.worker_support import announced, assert_invoice_matches, last_sequence, mirror_rows, store_events
from worker import jobs

COLUMNS_BUT_SYNCED_AT = {
    model: [c.key for c in model.__table__.columns if c.key != "synced_at"]
    for model in (Contact, Invoice, Payment)
}


def mirror_snapshot(sessions, tenant_id):
    """Every mirrored row of the tenant, every column but `synced_at` (a replay re-confirms rows)."""
    with sessions() as session:
        return {
            model.__tablename__: sorted(
                tuple(str(getattr(row, c)) for c in COLUMNS_BUT_SYNCED_AT[model])
                for row in session.scalars(select(model).where(model.tenant_id == tenant_id))
            )
            for model in COLUMNS_BUT_SYNCED_AT
        }


def state_counts(sessions):
    with sessions() as session:
        return dict(session.execute(select(InboxEvent.state, func.count()).group_by(InboxEvent.state)).all())


def iso(moment: datetime) -> str:
    return moment.isoformat()


def test_replay_over_a_time_range_resyncs_and_a_second_run_changes_nothing_more(
    emulator, runtime, connected, app
):
    t, state = connected, emulator.state
    jobs.backfill_tenant(t)
    now = datetime.now(timezone.utc)
    customer = customer_of(emulator, t)
    mark = last_sequence(emulator)
    earlier = state.create_invoice(t, customer, "10.00")["InvoiceID"]
    store_events(runtime.sessions, announced(emulator, mark), now=now - timedelta(hours=2))
    mark = last_sequence(emulator)
    lost = state.create_invoice(t, customer, "300.00")["InvoiceID"]
    state.apply_payment(t, lost, "100.00")
    store_events(runtime.sessions, announced(emulator, mark), now=now - timedelta(minutes=10))
    run_worker_after_wake(runtime, t)
    assert lost in mirror_rows(runtime.sessions, t)["invoices"]

    with transaction(runtime.sessions) as session:  # a bad restore loses the last half hour's writes
        session.execute(delete(Payment).where(Payment.tenant_id == t, Payment.invoice_id == lost))
        session.execute(delete(Invoice).where(Invoice.tenant_id == t, Invoice.invoice_id == lost))
    outside = inbox_states(runtime.sessions, t)
    window = ["--since", iso(now - timedelta(minutes=30)), "--until", iso(now)]

    dry = json.loads(ops(app, "replay", *window, "--dry-run", "--json").stdout)
    assert dry == {"dry_run": True, "events": 2, "tenants": {t: {"done": 2}}, "woken": [],
                   "queue_error": None}
    assert inbox_states(runtime.sessions, t) == outside  # nothing written
    assert Queue(queue.WEBHOOK_QUEUE, connection=runtime.redis).count == 0  # nothing queued
    assert "would replay 2 events for 1 tenants (dry run: nothing written)" in ops(app, "replay", *window,
                                                                                   "--dry-run").stdout

    first = ops(app, "replay", *window).stdout
    assert "replayed 2 events for 1 tenants" in first and "1 sync job(s) queued" in first
    run_worker(runtime.redis)
    held = mirror_rows(runtime.sessions, t)
    assert_invoice_matches(held["invoices"][lost], state.invoice(t, lost))  # re-synced
    assert sorted(p.amount for p in held["payments"].values() if p.invoice_id == lost) == [100]
    with runtime.sessions() as session:
        early = list(session.scalars(
            select(InboxEvent.id).where(InboxEvent.received_at < now - timedelta(hours=1))
        ))
    after = inbox_states(runtime.sessions, t)
    assert early and all(after[i] == outside[i] for i in early)  # outside the window: untouched
    assert earlier in held["invoices"]
    once, counts_once = mirror_snapshot(runtime.sessions, t), state_counts(runtime.sessions)
    calls_once = state.call_count(t, "GET /Invoices", 200)

    ops(app, "replay", *window)
    run_worker(runtime.redis)
    assert mirror_snapshot(runtime.sessions, t) == once  # no row changed
    assert state_counts(runtime.sessions) == counts_once == {"done": 3}
    assert state.call_count(t, "GET /Invoices", 200) > calls_once  # it did ask Xero again


def run_worker_after_wake(runtime, tenant_id):
    from infra import queue
    queue.wake(runtime.redis, [tenant_id])
    run_worker(runtime.redis)


def test_replay_by_state_and_by_id_picks_only_those_events(emulator, runtime, connected, app):
    t, state = connected, emulator.state
    jobs.backfill_tenant(t)
    customer = customer_of(emulator, t)
    mark = last_sequence(emulator)
    first_id = state.create_invoice(t, customer, "11.00")["InvoiceID"]
    second_id = state.create_invoice(t, customer, "22.00")["InvoiceID"]
    store_events(runtime.sessions, announced(emulator, mark))
    with runtime.sessions() as session:
        ids = {row.resource_id.lower(): row.id for row in session.scalars(select(InboxEvent))}
    with transaction(runtime.sessions) as session:  # as a sync that gave up would leave them
        now = datetime.now(timezone.utc)
        settle(session, [ids[first_id.lower()]], "failed", now, "XeroRequestError: 400")
        settle(session, [ids[second_id.lower()]], "done", now)

    by_state = json.loads(ops(app, "replay", "--state", "failed", "--tenant", t, "--json").stdout)
    assert by_state["events"] == 1 and by_state["tenants"] == {t: {"failed": 1}} and by_state["woken"] == [t]
    run_worker(runtime.redis)
    held = mirror_rows(runtime.sessions, t)["invoices"]
    assert first_id in held and second_id not in held  # only the failed one was replayed

    by_id = json.loads(ops(app, "replay", "--id", str(ids[second_id.lower()]), "--json").stdout)
    assert by_id["tenants"] == {t: {"done": 1}}
    run_worker(runtime.redis)
    assert second_id in mirror_rows(runtime.sessions, t)["invoices"]
    assert state_counts(runtime.sessions) == {"done": 2}


def test_replay_refuses_to_run_without_a_selection(app):
    result = ops(app, "replay", expect=2)
    assert "name the events to replay" in result.output
    assert "no inbox events match" in ops(app, "replay", "--tenant", "nobody").stdout
