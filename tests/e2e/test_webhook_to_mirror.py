"""The whole path as production runs it: a change in 'Xero' (the emulator) is delivered as a
signed webhook to our Flask app over HTTP, lands in the inbox, wakes a real `python -m worker`
process, and the mirror ends up holding exactly what Xero holds. Reconciliation is switched
off (RECONCILE_SECONDS=3600) so nothing but the webhook can bring the change in."""
from __future__ import annotations

import threading
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from store.models import InboxEvent, SyncState
from tests.e2e.worker_process import WorkerProcess
from tests.worker_support import assert_mirror_equals_emulator, mirror_rows, wait_until
from wsgi import close_app, create_app


@pytest.fixture
def web(settings, emulator):
    """Our app on a real socket, with the emulator delivering its webhooks to it."""
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    emulator.state.set_webhook_url(f"http://127.0.0.1:{server.server_port}/webhooks/xero")
    yield f"http://127.0.0.1:{server.server_port}"
    emulator.state.set_webhook_url(None)
    server.shutdown()
    close_app(app)


@pytest.fixture
def worker(worker_env, tmp_path):
    process = WorkerProcess(worker_env, tmp_path / "worker.log")
    yield process
    process.stop()


def converged(sessions, emulator, tenant_id) -> bool:
    try:
        assert_mirror_equals_emulator(sessions, emulator, tenant_id)
        return True
    except (AssertionError, KeyError):
        return False


def backfilled(sessions, tenant_id) -> bool:
    with sessions() as session:
        state = session.get(SyncState, tenant_id)
        return state is not None and state.backfill_status == "done"


def inbox_states(sessions) -> dict[str, int]:
    with sessions() as session:
        rows = session.execute(select(InboxEvent.state, func.count()).group_by(InboxEvent.state))
        return dict(rows.all())


def make_every_kind_of_change(state, tenant_id) -> dict[str, str]:
    """New customer, new invoice, part payment, full payment, void, due-date change."""
    today = date.today()
    customer = state.create_contact(tenant_id, "Kea Outfitters", "Accounts@Kea.example")["ContactID"]
    raised = state.create_invoice(
        tenant_id, customer, "1150.00", currency="USD", currency_rate="0.61",
        date=today.isoformat(), due_date=(today + timedelta(days=14)).isoformat(),
    )["InvoiceID"]
    part_paid = state.create_invoice(tenant_id, customer, "400.00", date=today.isoformat())["InvoiceID"]
    state.apply_payment(tenant_id, part_paid, "150.00", reference="first installment")
    fully_paid = state.create_invoice(tenant_id, customer, "99.95", date=today.isoformat())["InvoiceID"]
    state.apply_payment(tenant_id, fully_paid, "50.00")
    state.apply_payment(tenant_id, fully_paid, "49.95")
    voided = state.create_invoice(tenant_id, customer, "75.00", date=today.isoformat())["InvoiceID"]
    state.void_invoice(tenant_id, voided)
    state.set_due_date(tenant_id, raised, (today - timedelta(days=3)).isoformat())
    return {"customer": customer, "raised": raised, "part_paid": part_paid, "fully_paid": fully_paid,
            "voided": voided}


def test_each_kind_of_change_reaches_the_mirror_through_the_signed_webhook(
    emulator, sessions, connected, web, worker
):
    t, state = connected, emulator.state
    assert wait_until(lambda: backfilled(sessions, t), 60), worker.output()
    assert converged(sessions, emulator, t)

    started = time.monotonic()
    ids = make_every_kind_of_change(state, t)
    assert wait_until(lambda: converged(sessions, emulator, t), 30, poll=0.2), worker.output()
    took = time.monotonic() - started

    held = mirror_rows(sessions, t)
    assert held["contacts"][ids["customer"]].is_customer is True
    assert held["contacts"][ids["customer"]].email_lower == "accounts@kea.example"
    assert held["invoices"][ids["part_paid"]].amount_due == Decimal("250.00")
    assert held["invoices"][ids["fully_paid"]].status == "PAID"
    assert held["invoices"][ids["voided"]].status == "VOIDED"
    assert held["invoices"][ids["raised"]].due_date == date.today() - timedelta(days=3)
    assert held["invoices"][ids["raised"]].currency_code == "USD"
    # every delivery was answered 200 and every stored event was settled by the worker
    deliveries = state.webhook_deliveries()
    assert deliveries and all(d["outcome"] == "delivered" for d in deliveries)
    assert wait_until(lambda: set(inbox_states(sessions)) == {"done"}, 10), inbox_states(sessions)
    assert took < 30


def test_redis_stopped_during_intake_loses_no_event(
    emulator, sessions, connected, web, worker, redis_server
):
    if redis_server is None:  # REDIS_URL named a Redis of the caller's
        pytest.skip("needs the suite's own Redis server to stop and start it")
    t, state = connected, emulator.state
    assert wait_until(lambda: backfilled(sessions, t), 60), worker.output()

    redis_server.stop()
    try:
        customer = state.create_contact(t, "Pukeko Press", "ap@pukeko.example")["ContactID"]
        invoice = state.create_invoice(t, customer, "640.00")["InvoiceID"]
        state.apply_payment(t, invoice, "40.00")
        assert state.wait_for_webhooks(10)
        # accepted and durable although the queue is gone: 200s, and the events wait as pending
        assert wait_until(lambda: inbox_states(sessions).get("pending", 0) >= 3, 10), inbox_states(sessions)
        assert not converged(sessions, emulator, t)
    finally:
        redis_server.start()

    assert wait_until(lambda: converged(sessions, emulator, t), 60, poll=0.3), worker.output()
    assert mirror_rows(sessions, t)["invoices"][invoice].amount_paid == Decimal("40.00")
    assert wait_until(lambda: set(inbox_states(sessions)) == {"done"}, 30), (inbox_states(sessions), worker.output())


def test_the_worker_outlives_redis_going_away_in_the_middle_of_a_job(
    emulator, sessions, connected, web, worker, redis_server
):
    if redis_server is None:
        pytest.skip("needs the suite's own Redis server to stop and start it")
    import redis as redis_lib

    t, state = connected, emulator.state
    assert wait_until(lambda: backfilled(sessions, t), 60), worker.output()
    queue = redis_lib.Redis.from_url(redis_server.url)
    state.set_faults(latency_ms=500)  # every Xero call takes half a second: jobs are caught running
    try:
        customer = state.create_contact(t, "Tui Tiles", "ar@tui.example")["ContactID"]
        for n in range(3):
            state.create_invoice(t, customer, f"{120 + n}.00")
        assert wait_until(lambda: queue.exists(f"xm:running:sync:{t}"), 15, poll=0.02), worker.output()
        redis_server.stop()
        time.sleep(2.0)
    finally:
        redis_server.start()
        state.set_faults(latency_ms=0)
    # RQ alone quits on "an unhandled exception"; python -m worker starts its loop again
    time.sleep(1.0)
    assert worker.process.poll() is None, worker.output()
    state.create_invoice(t, customer, "999.00")  # a change after the outage wakes a sync
    assert wait_until(lambda: converged(sessions, emulator, t), 60, poll=0.3), worker.output()
    assert worker.process.poll() is None, worker.output()


def _admin_key(sessions, tenant_id) -> str:
    from datetime import UTC, datetime

    from store import connections, workspaces
    from store.db import transaction

    with transaction(sessions) as session:
        workspace_id = connections.find(session, tenant_id).workspace_id
        return workspaces.issue_key(session, workspace_id, "admin", datetime.now(UTC))


def test_a_credit_note_and_a_merge_reach_the_crm_figures_within_seconds_of_their_webhooks(
    emulator, sessions, connected, web, worker
):
    import requests

    t, state = connected, emulator.state
    assert wait_until(lambda: backfilled(sessions, t), 60), worker.output()
    headers = {"Authorization": f"Bearer {_admin_key(sessions, t)}"}
    loser = state.create_contact(t, "Weka Works", "accounts@weka.example")["ContactID"]
    survivor = state.create_contact(t, "Weka Works Ltd", "ap@wekaltd.example")["ContactID"]
    invoice = state.create_invoice(t, loser, "1000.00")["InvoiceID"]
    state.apply_payment(t, invoice, "700.00", reference="Bank transfer")
    assert requests.put(f"{web}/api/v1/contacts/crm-weka", json={"email": "accounts@weka.example"},
                        headers=headers, timeout=5).status_code == 200

    def summary():
        return requests.get(f"{web}/api/v1/contacts/crm-weka/summary", headers=headers, timeout=5).json()

    def amounts(body, block):
        return {a["currency"]: a["amount"] for a in body[block]["by_currency"]}

    assert wait_until(lambda: amounts(summary(), "paid") == {"NZD": "700.00"}, 30, poll=0.2), worker.output()

    note = state.create_credit_note(t, loser, "300.00")
    started = time.monotonic()
    state.allocate_credit_note(t, note["CreditNoteID"], invoice, "300.00")
    assert wait_until(lambda: amounts(summary(), "credited") == {"NZD": "300.00"}, 30, poll=0.2), worker.output()
    took = time.monotonic() - started
    body = summary()
    assert (amounts(body, "paid"), amounts(body, "unpaid")) == ({"NZD": "700.00"}, {})
    plan = requests.get(f"{web}/api/v1/invoices/{invoice}/payments", headers=headers, timeout=5).json()
    assert [(i["kind"], i["amount"], i["reference"]) for i in plan["installments"]] == [
        ("payment", "700.00", "Bank transfer"),
        ("credit_note", "300.00", note["CreditNoteNumber"]),
    ]  # one day: the payment first, then the credit note
    assert took < 10

    # the customer is merged into another contact: the record follows it to the survivor
    other = state.create_invoice(t, survivor, "50.00")["InvoiceID"]
    state.merge_contacts(t, loser, survivor)

    def listed():
        rows = requests.get(f"{web}/api/v1/contacts/crm-weka/invoices?view=all", headers=headers, timeout=5).json()
        return {r["invoice_id"] for r in rows["invoices"]}

    assert wait_until(lambda: listed() == {invoice.lower(), other.lower()}, 30, poll=0.2), worker.output()
    (link,) = summary()["record"]["links"]
    assert (link["xero_contact_id"], link["merged_from"]) == (survivor.lower(), loser.lower())
