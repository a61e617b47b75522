"""Reconciliation: If-Modified-Since sweeps catch what no webhook delivered, and count it."""
from datetime import timedelta

from sqlalchemy import select

from store.models import InboxEvent, SyncState
from tests.worker_support import announced, assert_mirror_equals_emulator, last_sequence, mirror_rows, store_events
from worker import governor, sync


def reconcile(runtime, t):
    api = runtime.api(t, governor.RECONCILE)
    return sync.reconcile(t, api=api, sessions=runtime.sessions, now=runtime.now()), api.calls


def test_reconcile_waits_for_the_backfill(runtime, connected):
    result, calls = reconcile(runtime, connected)
    assert result.skipped and calls == 0


def test_dropped_webhooks_converge_through_reconciliation_and_are_counted(emulator, runtime, connected):
    t, state = connected, emulator.state
    sync.backfill(t, api=runtime.api(t, governor.BACKFILL), sessions=runtime.sessions, now=runtime.now())
    snapshot = state.snapshot(t)
    customer = next(c["ContactID"] for c in snapshot["Contacts"] if c["IsCustomer"])
    open_invoices = [i["InvoiceID"] for i in snapshot["Invoices"] if i["Status"] == "AUTHORISED" and i["AmountDue"] > 0]
    paid = next(i for i in snapshot["Invoices"] if i["Payments"])

    # four changes whose webhooks were lost...
    new_invoice = state.create_invoice(t, customer, "77.70")["InvoiceID"]
    state.apply_payment(t, open_invoices[0], "1.00")
    state.delete_payment(t, paid["Payments"][0]["PaymentID"])
    state.update_contact(t, customer, name="Renamed Ltd")
    # ...and one whose webhook is in the inbox, not yet synced: announced, so not counted
    mark = last_sequence(emulator)
    state.set_due_date(t, open_invoices[1], "2027-03-01")
    store_events(runtime.sessions, announced(emulator, mark))

    result, calls = reconcile(runtime, t)
    assert result.unannounced == 4
    # a page each of contact and invoice summaries and of payments, then the changed
    # invoices in one call by IDs and the contact in another; the announced invoice is the drain's
    assert calls == 5
    assert result.fetched == {"contacts": 1, "invoices": 3, "payments": 2}
    sync.drain(t, api=runtime.api(t, governor.WEBHOOK), sessions=runtime.sessions, now=runtime.now())
    assert_mirror_equals_emulator(runtime.sessions, emulator, t)
    held = mirror_rows(runtime.sessions, t)
    assert new_invoice in held["invoices"]
    assert held["payments"][paid["Payments"][0]["PaymentID"]].status == "DELETED"
    with runtime.sessions() as session:
        state_row = session.get(SyncState, t)
        assert state_row.unannounced_changes == 4
        assert set(session.scalars(select(InboxEvent.state))) == {"done"}  # the drain settled it

    # a second pass finds nothing new, and the high-water marks moved forward
    marks = (state_row.contacts_hwm, state_row.invoices_hwm, state_row.payments_hwm)
    again, _ = reconcile(runtime, t)
    assert again.unannounced == 0
    with runtime.sessions() as session:
        assert session.get(SyncState, t).unannounced_changes == 4
        assert all(m is not None for m in marks)


def test_an_idle_sweep_returns_nothing_and_a_burst_is_not_fetched_again(emulator, runtime, connected):
    t, state = connected, emulator.state
    sync.backfill(t, api=runtime.api(t, governor.BACKFILL), sessions=runtime.sessions, now=runtime.now())
    customer = next(c["ContactID"] for c in state.snapshot(t)["Contacts"] if c["IsCustomer"])
    for n in range(30):
        state.create_invoice(t, customer, f"{n + 1}.00")  # a burst whose webhooks were all lost
    state.advance_clock(600)  # ten minutes on: the burst has settled in Xero's lists

    first, _ = reconcile(runtime, t)
    assert first.fetched["invoices"] == 30

    state.reset_calls()
    for _ in range(3):  # idle from now on: each sweep is one call each that brings nothing
        again, calls = reconcile(runtime, t)
        assert again.fetched == {"contacts": 0, "invoices": 0, "payments": 0} and calls == 3
    assert state.call_count(t) == 9


def test_only_the_kinds_asked_for_are_swept(emulator, runtime, connected):
    t = connected
    sync.backfill(t, api=runtime.api(t, governor.BACKFILL), sessions=runtime.sessions, now=runtime.now())
    api = runtime.api(t, governor.RECONCILE)
    result = sync.reconcile(t, api=api, sessions=runtime.sessions, now=runtime.now(), kinds=("invoices",))
    assert set(result.fetched) == {"invoices"} and api.calls == 1


def test_a_sweep_does_not_download_again_what_a_webhook_already_brought(emulator, runtime, connected):
    t, state = connected, emulator.state
    sync.backfill(t, api=runtime.api(t, governor.BACKFILL), sessions=runtime.sessions, now=runtime.now())
    customer = next(c["ContactID"] for c in state.snapshot(t)["Contacts"] if c["IsCustomer"])
    mark = last_sequence(emulator)
    created = [state.create_invoice(t, customer, f"{n + 1}.50")["InvoiceID"] for n in range(5)]
    store_events(runtime.sessions, announced(emulator, mark))
    sync.drain(t, api=runtime.api(t, governor.WEBHOOK), sessions=runtime.sessions, now=runtime.now())
    assert set(created) <= set(mirror_rows(runtime.sessions, t)["invoices"])

    state.reset_calls()
    result, calls = reconcile(runtime, t)  # the five are inside the sweep's window
    assert result.fetched["invoices"] == 0 and result.unannounced == 0
    assert calls == 3  # summaries only: nothing fetched by IDs
    full = state.bytes_uncompressed(t, "GET /Invoices")
    # five summaries cost less than one full invoice each would: the line items stay in Xero
    state.reset_calls()
    api = runtime.api(t, governor.RECONCILE)
    api.invoices(ids=created, page=1)
    assert full < state.bytes_uncompressed(t, "GET /Invoices")


def test_a_burst_swept_by_the_drain_moves_reconciliations_mark_past_it(emulator, runtime, connected):
    t, state = connected, emulator.state
    sync.backfill(t, api=runtime.api(t, governor.BACKFILL), sessions=runtime.sessions, now=runtime.now())
    customer = next(c["ContactID"] for c in state.snapshot(t)["Contacts"] if c["IsCustomer"])
    with runtime.sessions() as session:
        before = session.get(SyncState, t).invoices_hwm
    state.advance_clock(3600)
    mark = last_sequence(emulator)
    for n in range(sync.SWEEP_ABOVE + 10):  # more than one call by IDs takes: the drain sweeps
        state.create_invoice(t, customer, f"{n + 1}.25")
    lost = state.create_invoice(t, customer, "9.99")["InvoiceID"]
    events = announced(emulator, mark)
    store_events(runtime.sessions, [e for e in events if e.resource_id != lost])  # its webhook was lost
    state.advance_clock(600)
    result = sync.drain(t, api=runtime.api(t, governor.WEBHOOK), sessions=runtime.sessions, now=runtime.now())
    assert result.swept
    with runtime.sessions() as session:
        row = session.get(SyncState, t)
        # the sweep started at the mark (nothing else changed since), so it did reconciliation's
        # work: the mark moved to Xero's clock less SETTLE, and the lost change was counted
        assert row.invoices_hwm > before + timedelta(minutes=60)
        assert row.unannounced_changes == 1 and row.unannounced_at is not None
    assert lost in mirror_rows(runtime.sessions, t)["invoices"]
    state.reset_calls()
    again, calls = reconcile(runtime, t)
    assert again.fetched["invoices"] == 0 and calls == 3  # one empty page each
    assert state.bytes_uncompressed(t, "GET /Invoices") < 1000
