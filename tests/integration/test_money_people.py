"""Money, dates and people as a real Xero organisation keeps them, synced with the real
xero-python against the emulator: credit notes, prepayments, overpayments, contact persons
and merges reach the mirror exactly, and every record's figures add up."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from emulator.testing import run_emulator
from store import records
from store.db import transaction
from store.models import InboxEvent
from store.records import RecordInput
from tests.worker_support import (
    Announced,
    announced,
    assert_mirror_equals_emulator,
    last_sequence,
    mirror_rows,
    store_events,
)
from views import queries, totals
from views.queries import Filters
from worker import governor, sync
from xero import translate

from .mirror_rows import workspace

D = Decimal


def drain(runtime, tenant_id):
    api = runtime.api(tenant_id, governor.WEBHOOK)
    result = sync.drain(tenant_id, api=api, sessions=runtime.sessions, now=runtime.now())
    return result, api.calls


def backfill(runtime, t):
    sync.backfill(t, api=runtime.api(t, governor.BACKFILL), sessions=runtime.sessions, now=runtime.now())


def two_customers(emulator, t):
    state = emulator.state
    a = state.create_contact(t, "Tui Joinery", "accounts@tui.example")["ContactID"]
    b = state.create_contact(t, "Tui Joinery Ltd", "ap@tuiltd.example")["ContactID"]
    return a, b


def events_since(emulator, mark, *categories):
    return [e for e in announced(emulator, mark) if not categories or e.category in categories]


# --- a seeded organisation ------------------------------------------------------------------


@pytest.fixture
def emulator():
    """An organisation big enough that its seed holds every kind of settlement, persons and merges."""
    with run_emulator(seed=11, tenants=1, contacts=120, invoices=900, webhook_batch_seconds=0.05) as running:
        yield running


def test_a_seeded_organisation_mirrors_exactly_and_every_customers_figures_add_up(emulator, runtime, connected):
    t = connected
    truth = emulator.state.snapshot(t)
    kinds = {a["kind"] for i in truth["Invoices"] for a in translate.allocation_rows(t, i)}
    assert kinds == {"credit_note", "prepayment", "overpayment"}, "the seed must hold every kind"
    assert any(c.get("ContactPersons") for c in truth["Contacts"])
    assert any(c.get("MergedToContactID") for c in emulator.state.snapshot(t)["Contacts"]) or any(
        c["ContactStatus"] == "ARCHIVED" for c in truth["Contacts"]
    )

    backfill(runtime, t)
    assert_mirror_equals_emulator(runtime.sessions, emulator, t)

    # every customer's summary: Xero's own figures, and paid + credited + unpaid = invoiced
    expected: dict[str, dict] = defaultdict(lambda: defaultdict(lambda: [D(0)] * 4))
    for inv in truth["Invoices"]:
        if inv["Type"] == "ACCREC" and inv["Status"] in ("AUTHORISED", "PAID"):
            sums = expected[inv["Contact"]["ContactID"]][inv["CurrencyCode"]]
            due = D(str(inv["AmountDue"])) if inv["Status"] == "AUTHORISED" else D(0)
            for n, value in enumerate((inv["AmountPaid"], inv["AmountCredited"], due, inv["Total"])):
                sums[n] += D(str(value))
    assert len(expected) > 20
    today = emulator.state.clock.now().date()
    with runtime.sessions() as s:
        for contact_id, by_currency in expected.items():
            scope = records.Scope(t, 0, (contact_id,), (), frozenset())
            summary = totals.summarise(queries.summary_lines(s, scope, today), None)
            assert totals.identity_holds(summary)
            for n, block in enumerate((summary.paid, summary.credited, summary.unpaid, summary.invoiced)):
                got = {a.currency: a.amount for a in block.by_currency}
                want = {c: sums[n] for c, sums in by_currency.items() if sums[n]}
                assert got == want, (contact_id, block.label)


# --- credit notes through webhooks -----------------------------------------------------------


def test_an_allocated_credit_note_reaches_the_invoice_even_when_its_invoice_event_is_lost(
    emulator, runtime, connected
):
    t, state = connected, emulator.state
    backfill(runtime, t)
    customer, _ = two_customers(emulator, t)
    invoice_id = state.create_invoice(t, customer, "1000.00")["InvoiceID"]
    state.apply_payment(t, invoice_id, "700.00", reference="Bank transfer")
    note = state.create_credit_note(t, customer, "300.00")
    mark = last_sequence(emulator)
    store_events(runtime.sessions, events_since(emulator, 0, "INVOICE", "CONTACT"))
    drain(runtime, t)

    state.allocate_credit_note(t, note["CreditNoteID"], invoice_id, "300.00")
    credit_events = events_since(emulator, mark, "CREDITNOTE")
    assert credit_events and all(e.data["Type"] == "ACCRECCREDIT" for e in credit_events)
    store_events(runtime.sessions, credit_events)  # the INVOICE UPDATE never arrives
    state.reset_calls()
    _, calls = drain(runtime, t)
    assert state.call_count(t, "GET /CreditNotes") == 1 and state.call_count(t, "GET /Invoices") == 1 == calls - 1

    row = mirror_rows(runtime.sessions, t)["invoices"][invoice_id.lower()]
    assert (row.status, row.amount_paid, row.amount_credited, row.amount_due) == ("PAID", D(700), D(300), D(0))
    with runtime.sessions() as s:
        found = queries.invoice_with_payments(s, t, invoice_id.lower())
    from views.installments import installments

    plan = installments(found[1], found[2])
    assert [(i.kind, i.amount) for i in plan.items] == [("payment", D(700)), ("credit_note", D(300))]
    assert plan.items[1].reference == note["CreditNoteNumber"]


@pytest.mark.parametrize(
    "data", [{"Type": "ACCPAYCREDIT", "Status": "AUTHORISED"}, {"Type": "ACCRECCREDIT", "Status": "DRAFT"}]
)
def test_a_supplier_or_draft_credit_note_costs_no_call(emulator, runtime, connected, data):
    t = connected
    when = runtime.now() - timedelta(minutes=1)
    store_events(runtime.sessions,
                 [Announced(t, "CREDITNOTE", "UPDATE", "0f0e0d0c-0b0a-4000-8000-000000000001", when, data=data)])
    _, calls = drain(runtime, t)
    assert calls == 0
    with runtime.sessions() as session:
        assert set(session.scalars(select(InboxEvent.state).where(InboxEvent.tenant_id == t))) == {"done"}


def test_a_credit_note_id_xero_cannot_look_up_fails_with_the_reason(emulator, runtime, connected):
    t = connected
    when = runtime.now() - timedelta(minutes=1)
    data = {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}
    store_events(runtime.sessions, [Announced(t, "CREDITNOTE", "UPDATE", "cn-1", when, data=data)])
    _, calls = drain(runtime, t)
    assert calls == 0
    with runtime.sessions() as session:
        (state, error) = session.execute(
            select(InboxEvent.state, InboxEvent.error).where(InboxEvent.tenant_id == t)).one()
    assert state == "failed" and "not a Xero id" in error


# --- people: contact persons and merges ------------------------------------------------------


def _record(runtime, t, email):
    with transaction(runtime.sessions) as s:
        ws = workspace(s, "Acme", "other-tenant-unused")
        return records.upsert(s, ws.id, "contact", "crm-1", RecordInput(email=email), t, runtime.now())


def _seen(runtime, t, record):
    with runtime.sessions() as s:
        resolved = records.resolve(s, record, t)
        page = queries.list_invoices(s, resolved.scope, Filters(view="all"), runtime.now().date(), 1, 200)
    return resolved.links, {r.invoice_id for r in page.rows}


def test_a_crm_person_who_is_a_contact_person_sees_the_customers_invoices(emulator, runtime, connected):
    t, state = connected, emulator.state
    backfill(runtime, t)
    customer, _ = two_customers(emulator, t)
    invoice_id = state.create_invoice(t, customer, "50.00")["InvoiceID"].lower()
    mark = last_sequence(emulator)
    person = {"first_name": "Mere", "last_name": "Ngata", "email": "Mere@Tui.example"}
    state.update_contact(t, customer, contact_persons=[person])
    store_events(runtime.sessions, events_since(emulator, 0))
    drain(runtime, t)
    assert events_since(emulator, mark, "CONTACT")

    links, seen = _seen(runtime, t, _record(runtime, t, "mere@tui.example"))
    assert invoice_id in seen
    (link,) = links
    assert (link.xero_contact_id, link.matched_by, link.matched_email, link.person_name) == (
        customer.lower(), "contact_person", "mere@tui.example", "Mere Ngata",
    )


@pytest.mark.parametrize("moves_dates", [True, False], ids=["invoice-dates-move", "invoice-dates-kept"])
def test_a_merge_moves_a_records_invoices_to_the_survivor(emulator, runtime, connected, moves_dates):
    t, state = connected, emulator.state
    state.set_behaviour(merge_moves_invoices_updated=moves_dates)
    backfill(runtime, t)
    loser, survivor = two_customers(emulator, t)
    lost = state.create_invoice(t, loser, "120.00")["InvoiceID"].lower()
    kept = state.create_invoice(t, survivor, "80.00")["InvoiceID"].lower()
    store_events(runtime.sessions, events_since(emulator, 0))
    drain(runtime, t)
    record = _record(runtime, t, "accounts@tui.example")
    assert _seen(runtime, t, record)[1] == {lost}

    mark = last_sequence(emulator)
    state.merge_contacts(t, loser, survivor)
    store_events(runtime.sessions, events_since(emulator, mark))
    drain(runtime, t)

    links, seen = _seen(runtime, t, record)
    assert seen == {lost, kept}
    (link,) = links
    assert (link.xero_contact_id, link.merged_from) == (survivor.lower(), loser.lower())
    assert mirror_rows(runtime.sessions, t)["invoices"][lost].contact_id == survivor.lower()


# --- IsCustomer whichever path brought the invoice --------------------------------------------


def test_a_contact_becomes_a_customer_when_a_sales_invoice_reaches_the_mirror_by_any_path(emulator, runtime, connected):
    t, state = connected, emulator.state
    backfill(runtime, t)
    supplier = state.create_contact(t, "Kauri Supplies", "sales@kauri.example", is_customer=False, is_supplier=True)
    store_events(runtime.sessions, events_since(emulator, 0, "CONTACT"))
    drain(runtime, t)
    cid = supplier["ContactID"].lower()
    assert not mirror_rows(runtime.sessions, t)["contacts"][cid].is_customer

    invoice = state.create_invoice(t, supplier["ContactID"], "10.00")
    # reconciliation or a backfill page stores the invoice; no CONTACT event is read
    with transaction(runtime.sessions) as s:
        sync.STORE["invoices"](s, t, [state.invoice(t, invoice["InvoiceID"])], runtime.now())
    assert mirror_rows(runtime.sessions, t)["contacts"][cid].is_customer


def test_a_bill_does_not_make_a_contact_a_customer(emulator, runtime, connected):
    t, state = connected, emulator.state
    backfill(runtime, t)
    supplier = state.create_contact(t, "Rimu Supplies", "sales@rimu.example", is_customer=False, is_supplier=True)
    store_events(runtime.sessions, events_since(emulator, 0, "CONTACT"))
    drain(runtime, t)
    bill = state.create_invoice(t, supplier["ContactID"], "10.00", type="ACCPAY")
    with transaction(runtime.sessions) as s:
        sync.STORE["invoices"](s, t, [state.invoice(t, bill["InvoiceID"])], runtime.now())
    assert not mirror_rows(runtime.sessions, t)["contacts"][supplier["ContactID"].lower()].is_customer
