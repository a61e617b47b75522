"""Credit notes, prepayments and overpayments in the books: allocations, refusals, webhooks;
contact persons, merges (both switch settings), time zones, and their control routes."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

import pytest

from emulator.__main__ import config_from, parse_args
from emulator.books import NotFound
from emulator.config import EmulatorConfig
from emulator.ledger import LedgerError
from emulator.state import EmulatorState
from emulator.xero_json import parse_ms_date

from .http import call

ZERO = Decimal("0.00")


def money(value) -> Decimal:
    return Decimal(str(value))


def events_since(state, start: int) -> list[tuple]:
    return [
        (e["eventCategory"], e["eventType"], e["resourceId"], e.get("data"))
        for e in state.webhook_events()[start:]
    ]


# -- the seeded books ---------------------------------------------------------------------------
def test_amount_due_identity_and_credit_sums_over_every_seeded_org(xero):
    for tenant in xero.state.tenant_ids:
        snapshot = xero.state.snapshot(tenant)
        applied: Counter = Counter()
        for kind in ("CreditNotes", "Prepayments", "Overpayments"):
            for credit in snapshot[kind]:
                allocated = sum((a["Amount"] for a in credit["Allocations"]), ZERO)
                assert credit["AppliedAmount"] == allocated
                if credit["Status"] in ("AUTHORISED", "PAID"):
                    assert credit["RemainingCredit"] == credit["Total"] - allocated
                    assert (credit["Status"] == "PAID") == (credit["RemainingCredit"] == 0)
                else:
                    assert not credit["Allocations"]
                for allocation in credit["Allocations"]:
                    applied[allocation["Invoice"]["InvoiceID"]] += allocation["Amount"]
        for invoice in snapshot["Invoices"]:
            embedded = [*invoice["CreditNotes"], *invoice["Prepayments"], *invoice["Overpayments"]]
            assert invoice["AmountCredited"] == sum((c["AppliedAmount"] for c in embedded), ZERO)
            assert invoice["AmountCredited"] == applied.get(invoice["InvoiceID"], ZERO)
            assert invoice["AmountDue"] == invoice["Total"] - invoice["AmountPaid"] - invoice["AmountCredited"]
            assert invoice["AmountDue"] >= 0
            assert (invoice["Status"] == "PAID") == (
                invoice["Status"] in ("AUTHORISED", "PAID") and invoice["AmountDue"] == 0
            )


def test_seed_proportions(xero, read_tenant):
    books = xero.state.books[read_tenant]
    sales = [i for i in books.invoices.values() if i.type == "ACCREC" and i.status in ("AUTHORISED", "PAID")]
    credited = [i for i in sales if any(a.kind == "CreditNote" for a in i.allocations)]
    prepaid = [i for i in sales if any(a.kind != "CreditNote" for a in i.allocations)]
    assert 0.05 < len(credited) / len(sales) < 0.12
    assert 0.015 < len(prepaid) / len(sales) < 0.05
    assert any(i.status == "PAID" and i.amount_paid == 0 and i.allocations for i in sales)  # credit only
    assert any(i.status == "PAID" and i.amount_paid > 0 and i.allocations for i in sales)  # mixed
    assert any(i.status == "AUTHORISED" and i.allocations for i in sales)  # part credited
    notes = list(books.credit_notes.values())
    assert any(n.type == "ACCPAYCREDIT" and n.allocations for n in notes)
    assert any(n.status == "DRAFT" and not n.allocations for n in notes)
    assert any(n.status == "VOIDED" and not n.allocations for n in notes)
    numbers = [n.number for n in notes if n.type == "ACCRECCREDIT"]
    assert numbers == [f"CN-{k:04d}" for k in range(1, len(numbers) + 1)]
    contacts = list(books.contacts.values())
    people = [c for c in contacts if c.contact_persons]
    assert people and all(1 <= len(c.contact_persons) <= 3 for c in people)
    merged = [c for c in contacts if c.merged_to]
    assert merged and all(c.status == "ARCHIVED" for c in merged)
    assert not any(i.contact_id == merged[0].contact_id for i in books.invoices.values())


def test_seed_keeps_the_original_draws_and_adds_a_pacific_org():
    state = EmulatorState(EmulatorConfig(seed=5, tenants=5, contacts=30, invoices=80))
    again = EmulatorState(EmulatorConfig(seed=5, tenants=5, contacts=30, invoices=80))
    try:
        zones = [b.org.timezone for b in state.books.values()]
        assert zones == [
            "NEWZEALANDSTANDARDTIME",
            "AUSEASTERNSTANDARDTIME",
            "GMTSTANDARDTIME",
            "EASTERNSTANDARDTIME",
            "PACIFICSTANDARDTIME",
        ]
        assert list(state.books) == list(again.books)
        for a, b in zip(state.books.values(), again.books.values(), strict=True):
            assert list(a.credit_notes) == list(b.credit_notes) and list(a.allocations) == list(b.allocations)
    finally:
        state.close()
        again.close()


# -- allocations and the ledger -----------------------------------------------------------------
def test_invoice_paid_by_credit_note_alone_then_reopened(xero, write_tenant, customer):
    state = xero.state
    invoice = state.create_invoice(write_tenant, customer, "115.00")
    note = state.create_credit_note(write_tenant, customer, "200.00", date="2026-11-01")
    assert note["CreditNoteNumber"].startswith("CN-") and note["RemainingCredit"] == money("200.00")
    result = state.allocate_credit_note(write_tenant, note["CreditNoteID"], invoice["InvoiceID"], date="2026-11-20")
    assert result["Amount"] == money("115.00") and result["Invoice"]["InvoiceID"] == invoice["InvoiceID"]
    assert result["CreditNote"]["RemainingCredit"] == money("85.00")
    paid = state.invoice(write_tenant, invoice["InvoiceID"])
    assert paid["Status"] == "PAID" and paid["AmountPaid"] == 0 and paid["AmountCredited"] == money("115.00")
    assert paid["AmountDue"] == 0 and parse_ms_date(paid["FullyPaidOnDate"]).date() == date(2026, 11, 20)
    [embedded] = paid["CreditNotes"]
    assert embedded == {
        "CreditNoteID": note["CreditNoteID"],
        "CreditNoteNumber": note["CreditNoteNumber"],
        "ID": note["CreditNoteID"],
        "AppliedAmount": money("115.00"),
        "DateString": "2026-11-01T00:00:00",
        "Date": note["Date"],
        "LineItems": [],
        "Total": money("200.00"),
    }
    removed = state.remove_allocation(write_tenant, result["AllocationID"])
    assert removed["IsDeleted"] is True and removed["CreditNote"]["RemainingCredit"] == money("200.00")
    reopened = state.invoice(write_tenant, invoice["InvoiceID"])
    assert reopened["Status"] == "AUTHORISED" and reopened["AmountDue"] == money("115.00")
    assert reopened["CreditNotes"] == [] and "FullyPaidOnDate" not in reopened
    with pytest.raises(NotFound):
        state.remove_allocation(write_tenant, result["AllocationID"])


def test_mixed_payment_credit_and_prepayment(xero, write_tenant, customer):
    state = xero.state
    invoice = state.create_invoice(write_tenant, customer, "100.00")
    payment = state.apply_payment(write_tenant, invoice["InvoiceID"], "50.00", date="2026-11-02")
    note = state.create_credit_note(write_tenant, customer, "30.00")
    state.allocate_credit_note(write_tenant, note["CreditNoteID"], invoice["InvoiceID"], date="2026-11-03")
    prepayment = state.create_prepayment(write_tenant, customer, "20.00", date="2026-10-01")
    assert prepayment["Type"] == "RECEIVE-PREPAYMENT" and prepayment["RemainingCredit"] == money("20.00")
    state.allocate_prepayment(write_tenant, prepayment["PrepaymentID"], invoice["InvoiceID"], date="2026-11-04")
    paid = state.invoice(write_tenant, invoice["InvoiceID"])
    assert paid["Status"] == "PAID" and paid["AmountPaid"] == money("50.00")
    assert paid["AmountCredited"] == money("50.00") and paid["AmountDue"] == 0
    assert parse_ms_date(paid["FullyPaidOnDate"]).date() == date(2026, 11, 4)
    [embedded] = paid["Prepayments"]
    assert embedded["PrepaymentID"] == embedded["ID"] == prepayment["PrepaymentID"]
    assert embedded["AppliedAmount"] == money("20.00") and embedded["Total"] == money("20.00")
    assert state.prepayment(write_tenant, prepayment["PrepaymentID"])["Status"] == "PAID"
    assert state.credit_note(write_tenant, note["CreditNoteID"])["Status"] == "PAID"
    state.delete_payment(write_tenant, payment["PaymentID"])
    reopened = state.invoice(write_tenant, invoice["InvoiceID"])
    assert reopened["Status"] == "AUTHORISED" and reopened["AmountDue"] == money("50.00")


def test_overpayment_allocation(xero, write_tenant, customer):
    state = xero.state
    invoice = state.create_invoice(write_tenant, customer, "40.00")
    over = state.create_overpayment(write_tenant, customer, "15.00")
    assert over["Type"] == "RECEIVE-OVERPAYMENT" and over["OverpaymentID"]
    state.allocate_overpayment(write_tenant, over["OverpaymentID"], invoice["InvoiceID"])
    after = state.invoice(write_tenant, invoice["InvoiceID"])
    assert after["AmountCredited"] == money("15.00") and after["AmountDue"] == money("25.00")
    assert after["Overpayments"][0]["OverpaymentID"] == over["OverpaymentID"]


def test_refused_allocations(xero, write_tenant, customer):
    state = xero.state
    invoice = state.create_invoice(write_tenant, customer, "50.00")
    note = state.create_credit_note(write_tenant, customer, "30.00")
    refusals = []

    def refused(call_, *args, **kwargs):
        with pytest.raises(LedgerError) as caught:
            call_(*args, **kwargs)
        refusals.append(str(caught.value))

    refused(state.allocate_credit_note, write_tenant, note["CreditNoteID"], invoice["InvoiceID"], "30.01")
    small = state.create_invoice(write_tenant, customer, "10.00")
    refused(state.allocate_credit_note, write_tenant, note["CreditNoteID"], small["InvoiceID"], "10.01")
    other_currency = state.create_invoice(write_tenant, customer, "50.00", currency="EUR", currency_rate="0.5")
    refused(state.allocate_credit_note, write_tenant, note["CreditNoteID"], other_currency["InvoiceID"])
    bill = state.create_invoice(write_tenant, customer, "50.00", type="ACCPAY")
    refused(state.allocate_credit_note, write_tenant, note["CreditNoteID"], bill["InvoiceID"])
    supplier_credit = state.create_credit_note(write_tenant, customer, "5.00", type="ACCPAYCREDIT")
    refused(state.allocate_credit_note, write_tenant, supplier_credit["CreditNoteID"], invoice["InvoiceID"])
    for status in ("DRAFT", "SUBMITTED"):
        pending = state.create_credit_note(write_tenant, customer, "5.00", status=status)
        refused(state.allocate_credit_note, write_tenant, pending["CreditNoteID"], invoice["InvoiceID"])
    stranger = state.create_contact(write_tenant, "Stranger Ltd")["ContactID"]
    theirs = state.create_invoice(write_tenant, stranger, "50.00")
    refused(state.allocate_credit_note, write_tenant, note["CreditNoteID"], theirs["InvoiceID"])
    draft = state.create_invoice(write_tenant, customer, "50.00", status="DRAFT")
    refused(state.allocate_credit_note, write_tenant, note["CreditNoteID"], draft["InvoiceID"])
    refused(state.create_credit_note, write_tenant, customer, "5.00", status="PAID")
    assert len(refusals) == 10
    # the supplier credit goes to the bill; the customer credit note's partial use is fine
    state.allocate_credit_note(write_tenant, supplier_credit["CreditNoteID"], bill["InvoiceID"])
    state.allocate_credit_note(write_tenant, note["CreditNoteID"], invoice["InvoiceID"], "20.00")
    refused(state.allocate_credit_note, write_tenant, note["CreditNoteID"], small["InvoiceID"], "10.01")
    refused(state.void_invoice, write_tenant, invoice["InvoiceID"])
    refused(state.set_credit_note_status, write_tenant, note["CreditNoteID"], "VOIDED")
    # all of it used: the credit note is PAID and takes no more
    state.allocate_credit_note(write_tenant, note["CreditNoteID"], small["InvoiceID"])
    assert state.credit_note(write_tenant, note["CreditNoteID"])["Status"] == "PAID"
    refused(state.allocate_credit_note, write_tenant, note["CreditNoteID"], invoice["InvoiceID"], "1.00")


def test_credit_note_statuses(xero, write_tenant, customer):
    state = xero.state
    note = state.create_credit_note(write_tenant, customer, "8.00", status="DRAFT")
    assert state.set_credit_note_status(write_tenant, note["CreditNoteID"], "SUBMITTED")["Status"] == "SUBMITTED"
    assert state.set_credit_note_status(write_tenant, note["CreditNoteID"], "AUTHORISED")["Status"] == "AUTHORISED"
    assert state.set_credit_note_status(write_tenant, note["CreditNoteID"], "VOIDED")["Status"] == "VOIDED"
    with pytest.raises(LedgerError):
        state.set_credit_note_status(write_tenant, note["CreditNoteID"], "AUTHORISED")
    assert state.create_credit_note(write_tenant, customer, "8.00", status="DELETED")["Status"] == "DELETED"
    voided = state.create_credit_note(write_tenant, customer, "8.00", status="VOIDED")
    assert voided["Status"] == "VOIDED" and voided["RemainingCredit"] == 0


# -- webhooks -----------------------------------------------------------------------------------
def test_credit_note_and_allocation_webhooks(xero, write_tenant, customer):
    state = xero.state
    invoice = state.create_invoice(write_tenant, customer, "60.00")
    start = len(state.webhook_events())
    note = state.create_credit_note(write_tenant, customer, "60.00", status="DRAFT")
    note_id = note["CreditNoteID"]
    state.set_credit_note_status(write_tenant, note_id, "AUTHORISED")
    before = parse_ms_date(state.invoice(write_tenant, invoice["InvoiceID"])["UpdatedDateUTC"])
    allocation = state.allocate_credit_note(write_tenant, note_id, invoice["InvoiceID"])
    after = parse_ms_date(state.invoice(write_tenant, invoice["InvoiceID"])["UpdatedDateUTC"])
    assert after > before
    state.remove_allocation(write_tenant, allocation["AllocationID"])
    assert events_since(state, start) == [
        ("CREDITNOTE", "CREATE", note_id, {"Type": "ACCRECCREDIT", "Status": "DRAFT"}),
        ("CREDITNOTE", "UPDATE", note_id, {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}),
        ("INVOICE", "UPDATE", invoice["InvoiceID"], None),
        ("CREDITNOTE", "UPDATE", note_id, {"Type": "ACCRECCREDIT", "Status": "PAID"}),
        ("INVOICE", "UPDATE", invoice["InvoiceID"], None),
        ("CREDITNOTE", "UPDATE", note_id, {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}),
    ]
    credit_event = next(e for e in state.webhook_events()[start:] if e["eventCategory"] == "CREDITNOTE")
    assert credit_event["resourceUrl"] == f"{xero.api_url}/CreditNotes/{note_id}"


def test_prepayments_send_only_invoice_updates(xero, write_tenant, customer):
    state = xero.state
    invoice = state.create_invoice(write_tenant, customer, "60.00")
    prepayment = state.create_prepayment(write_tenant, customer, "10.00")
    start = len(state.webhook_events())
    state.allocate_prepayment(write_tenant, prepayment["PrepaymentID"], invoice["InvoiceID"])
    assert events_since(state, start) == [("INVOICE", "UPDATE", invoice["InvoiceID"], None)]


# -- contact persons, merges ----------------------------------------------------------------------
def test_contact_persons(xero, write_tenant):
    state = xero.state
    people = [
        {"first_name": "Ana", "last_name": "Lee", "email": "ana@lee.example", "include_in_emails": True},
        {"FirstName": "Bo", "LastName": "Ng", "EmailAddress": "bo@ng.example"},
    ]
    contact = state.create_contact(write_tenant, "People Ltd", "accounts@people.example", contact_persons=people)
    assert contact["ContactPersons"] == [
        {"FirstName": "Ana", "LastName": "Lee", "EmailAddress": "ana@lee.example", "IncludeInEmails": True},
        {"FirstName": "Bo", "LastName": "Ng", "EmailAddress": "bo@ng.example", "IncludeInEmails": False},
    ]
    changed = state.update_contact(write_tenant, contact["ContactID"], contact_persons=people[:1])
    assert len(changed["ContactPersons"]) == 1
    with pytest.raises(LedgerError):
        state.update_contact(write_tenant, contact["ContactID"], contact_persons=people * 3)


@pytest.mark.parametrize("moves", [True, False])
def test_merge_moves_records_under_both_switch_settings(xero, write_tenant, moves):
    state = xero.state
    keep = state.create_contact(write_tenant, f"Keep {moves}")["ContactID"]
    gone = state.create_contact(write_tenant, f"Gone {moves}", is_customer=False)["ContactID"]
    bill = state.create_invoice(write_tenant, gone, "30.00", type="ACCPAY")
    sale = state.create_invoice(write_tenant, gone, "20.00")
    note = state.create_credit_note(write_tenant, gone, "5.00")
    previous = state.behaviour()
    try:
        assert state.set_behaviour(merge_moves_invoices_updated=moves)["merge_moves_invoices_updated"] is moves
        start = len(state.webhook_events())
        result = state.merge_contacts(write_tenant, gone, keep)
    finally:
        state.set_behaviour(**previous)
    assert sorted(result["InvoiceIDs"]) == sorted([bill["InvoiceID"], sale["InvoiceID"]])
    merged, survivor = result["Contacts"]
    assert merged["ContactStatus"] == "ARCHIVED" and merged["MergedToContactID"] == keep
    assert survivor["IsCustomer"] and survivor["IsSupplier"]
    for original in (bill, sale):
        now = state.invoice(write_tenant, original["InvoiceID"])
        assert now["Contact"]["ContactID"] == keep
        assert (now["UpdatedDateUTC"] != original["UpdatedDateUTC"]) is moves
    assert state.credit_note(write_tenant, note["CreditNoteID"])["Contact"]["ContactID"] == keep
    sent = events_since(state, start)
    assert ("CONTACT", "UPDATE", gone, None) in sent and ("CONTACT", "UPDATE", keep, None) in sent
    invoice_events = {e[2] for e in sent if e[0] == "INVOICE"}
    assert invoice_events == ({bill["InvoiceID"], sale["InvoiceID"]} if moves else set())
    with pytest.raises(LedgerError):
        state.merge_contacts(write_tenant, gone, keep)


# -- time zones -----------------------------------------------------------------------------------
def test_set_timezone(xero, other_tenant):
    state = xero.state
    original = state.books[other_tenant].org.timezone
    try:
        assert state.set_timezone(other_tenant, "HAWAIIANSTANDARDTIME")["Timezone"] == "HAWAIIANSTANDARDTIME"
        with pytest.raises(LedgerError):
            state.set_timezone(other_tenant, "Mars/Olympus")
        forced = state.set_timezone(other_tenant, "MARSSTANDARDTIME", allow_unknown=True)
        assert forced["Timezone"] == "MARSSTANDARDTIME"
    finally:
        state.set_timezone(other_tenant, original)


def test_timezone_and_merge_flags_and_config():
    config = config_from(parse_args(["--timezone", "PACIFICSTANDARDTIME", "--merge-keeps-invoice-dates"]))
    assert config.timezone == "PACIFICSTANDARDTIME" and config.merge_moves_invoices_updated is False
    assert config_from(parse_args([])).merge_moves_invoices_updated is True
    state = EmulatorState(EmulatorConfig(tenants=2, contacts=5, invoices=5, timezone="ALASKANSTANDARDTIME"))
    try:
        assert {b.org.timezone for b in state.books.values()} == {"ALASKANSTANDARDTIME"}
        assert state.behaviour() == {"merge_moves_invoices_updated": True, "unpaged_line_items": False}
    finally:
        state.close()
    with pytest.raises(LedgerError):
        EmulatorState(EmulatorConfig(tenants=1, contacts=5, invoices=5, timezone="NOWHERE"))


# -- the control routes ---------------------------------------------------------------------------
def test_control_routes(xero, write_tenant):
    base = f"{xero.url}/_emulator/tenants/{write_tenant}"
    people = [{"first_name": "Cy", "last_name": "Ho", "email": "cy@ho.example"}]
    contact = call("POST", f"{base}/contacts", json_body={"name": "Route Ltd", "contact_persons": people}).json()
    contact_id = contact["ContactID"]
    assert contact["ContactPersons"][0]["EmailAddress"] == "cy@ho.example"
    patched = call("PATCH", f"{base}/contacts/{contact_id}", json_body={"contact_persons": []}).json()
    assert patched["ContactPersons"] == []
    invoice = call("POST", f"{base}/invoices", json_body={"contact_id": contact_id, "total": "90.00"}).json()
    note = call(
        "POST", f"{base}/credit-notes", json_body={"contact_id": contact_id, "total": "40.00", "status": "DRAFT"}
    ).json()
    note_id = note["CreditNoteID"]
    assert note["Status"] == "DRAFT" and note["Type"] == "ACCRECCREDIT"
    refused = call("POST", f"{base}/credit-notes/{note_id}/allocations", json_body={"invoice_id": invoice["InvoiceID"]})
    assert refused.status == 400
    approved = call("PATCH", f"{base}/credit-notes/{note_id}", json_body={"status": "AUTHORISED"}).json()
    assert approved["Status"] == "AUTHORISED"
    allocation = call(
        "POST",
        f"{base}/credit-notes/{note_id}/allocations",
        json_body={"invoice_id": invoice["InvoiceID"], "amount": "15.00", "date": "2026-12-01"},
    ).json()
    assert allocation["Amount"] == 15.0 and allocation["CreditNote"]["RemainingCredit"] == 25.0
    for kind in ("prepayments", "overpayments"):
        made = call("POST", f"{base}/{kind}", json_body={"contact_id": contact_id, "total": "5.00"}).json()
        made_id = made["PrepaymentID" if kind == "prepayments" else "OverpaymentID"]
        used = call(
            "POST", f"{base}/{kind}/{made_id}/allocations", json_body={"invoice_id": invoice["InvoiceID"]}
        ).json()
        assert used["Amount"] == 5.0
    shown = xero.state.invoice(write_tenant, invoice["InvoiceID"])
    assert shown["AmountCredited"] == money("25.00") and shown["AmountDue"] == money("65.00")
    deleted = call("DELETE", f"{base}/allocations/{allocation['AllocationID']}").json()
    assert deleted["IsDeleted"] is True
    assert call("DELETE", f"{base}/allocations/{allocation['AllocationID']}").status == 404
    other = call("POST", f"{base}/contacts", json_body={"name": "Route Survivor"}).json()["ContactID"]
    merged = call("POST", f"{base}/contacts/{contact_id}/merge", json_body={"into": other}).json()
    assert merged["Contacts"][0]["MergedToContactID"] == other and invoice["InvoiceID"] in merged["InvoiceIDs"]
    org = call("PUT", f"{base}/organisation", json_body={"timezone": "PACIFICSTANDARDTIME"}).json()
    assert org["Timezone"] == "PACIFICSTANDARDTIME"
    assert call("PUT", f"{base}/organisation", json_body={"timezone": "Moon"}).status == 400
    forced = call("PUT", f"{base}/organisation", json_body={"timezone": "Moon", "allow_unknown": True}).json()
    assert forced["Timezone"] == "Moon"
    xero.state.set_timezone(write_tenant, "AUSEASTERNSTANDARDTIME")
    behaviour = f"{xero.url}/_emulator/behaviour"
    assert call("GET", behaviour).json() == {"merge_moves_invoices_updated": True, "unpaged_line_items": False}
    assert call("PATCH", behaviour, json_body={"merge_moves_invoices_updated": False}).json() == {
        "merge_moves_invoices_updated": False, "unpaged_line_items": False
    }
    assert call("PATCH", behaviour, json_body={"merge_moves_invoices_updated": True}).status == 200
    assert call("PATCH", behaviour, json_body={"nonsense": 1}).status == 400
    tenants = {t["tenant_id"]: t for t in call("GET", f"{xero.url}/_emulator/tenants").json()}
    assert tenants[write_tenant]["credit_notes"] > 0
    snapshot = call("GET", f"{base}/snapshot").json()
    assert {"CreditNotes", "Prepayments", "Overpayments"} <= set(snapshot)
