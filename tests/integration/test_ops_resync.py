"""`ops resync TENANT`: a full reload, or an If-Modified-Since sweep from a date, as a job."""
from datetime import datetime, timedelta, timezone

from rq import Queue

from infra import queue
from store.db import transaction
from store.models import SyncState
from tests.ops_support import customer_of, ops, run_worker, status_of
from tests.worker_support import assert_mirror_equals_emulator, mirror_rows
from worker import jobs


def sync_state(sessions, tenant_id) -> SyncState:
    with sessions() as session:
        return session.get(SyncState, tenant_id)


def test_resync_from_scratch_restarts_the_backfill_as_a_job(emulator, runtime, connected, app):
    t = connected
    jobs.backfill_tenant(t)
    loaded = sync_state(runtime.sessions, t).backfill_fetched
    calls = emulator.state.call_count(t, "GET /Invoices", 200)

    out = ops(app, "resync", t).stdout
    assert f"full backfill of {t}: job backfill-" in out and "queued" in out
    assert f"flask --app wsgi ops status --tenant {t}" in out
    restarted = status_of(app, t)["backfill"]
    assert restarted == {"status": "pending", "phase": None, "page": 0, "fetched": 0}
    [job] = Queue(queue.BACKFILL_QUEUE, connection=runtime.redis).get_jobs()
    assert job.func_name == "worker.jobs.backfill_tenant" and job.args == (t,) and job.id in out

    run_worker(runtime.redis)
    assert status_of(app, t)["backfill"] == {"status": "done", "phase": None, "page": 1, "fetched": loaded}
    assert emulator.state.call_count(t, "GET /Invoices", 200) > calls  # loaded again from Xero
    assert_mirror_equals_emulator(runtime.sessions, emulator, t)


def test_resync_since_a_date_sweeps_what_changed_since_then(emulator, runtime, connected, app):
    t, state = connected, emulator.state
    jobs.backfill_tenant(t)
    future = datetime.now(timezone.utc) + timedelta(days=1)
    with transaction(runtime.sessions) as session:  # marks that ran ahead (a skewed clock) miss changes
        row = session.get(SyncState, t)
        row.contacts_hwm = row.invoices_hwm = row.payments_hwm = future
    missed = state.create_invoice(t, customer_of(emulator, t), "77.00")["InvoiceID"]
    jobs.reconcile_tenant(t)
    assert missed not in mirror_rows(runtime.sessions, t)["invoices"]

    since = datetime.now(timezone.utc) - timedelta(hours=1)
    out = ops(app, "resync", t, "--since", since.isoformat()).stdout
    assert f"sweep of changes since {since.isoformat()} of {t}: job reconcile-" in out
    marks = sync_state(runtime.sessions, t)
    assert marks.invoices_hwm == marks.contacts_hwm == marks.payments_hwm == since
    [job] = Queue(queue.RECONCILE_QUEUE, connection=runtime.redis).get_jobs()
    assert job.func_name == "worker.jobs.reconcile_tenant" and job.args == (t,)

    run_worker(runtime.redis)
    assert missed in mirror_rows(runtime.sessions, t)["invoices"]
    assert_mirror_equals_emulator(runtime.sessions, emulator, t)
    assert sync_state(runtime.sessions, t).invoices_hwm > since  # the marks move on from there


def test_resync_since_never_moves_a_mark_forward(emulator, runtime, connected, app):
    t = connected
    jobs.backfill_tenant(t)
    before = sync_state(runtime.sessions, t).invoices_hwm
    ops(app, "resync", t, "--since", (datetime.now(timezone.utc) + timedelta(days=3)).isoformat())
    assert sync_state(runtime.sessions, t).invoices_hwm == before


def test_resync_refuses_an_unknown_tenant_and_a_sweep_before_the_backfill(runtime, connected, app):
    assert "no live Xero connection for tenant nobody" in ops(app, "resync", "nobody", expect=1).output
    refused = ops(app, "resync", connected, "--since", "2026-01-01", expect=1).output
    assert "backfill" in refused and "pending" in refused
    assert "is not an ISO date" in ops(app, "resync", connected, "--since", "yesterday", expect=2).output
    assert Queue(queue.RECONCILE_QUEUE, connection=runtime.redis).count == 0
