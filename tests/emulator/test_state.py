"""The books as Xero keeps them: payments, statuses, UpdatedDateUTC, seeding."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from emulator.config import EmulatorConfig
from emulator.ledger import LedgerError
from emulator.state import EmulatorState
from emulator.xero_json import parse_ms_date


def money(value) -> Decimal:
    return Decimal(str(value))


def test_part_payments_then_paid_then_reopened(xero, write_tenant, customer):
    state = xero.state
    invoice = state.create_invoice(
        write_tenant, customer, "115.00", due_date=date.today() + timedelta(days=14)
    )
    assert invoice["Status"] == "AUTHORISED" and invoice["AmountDue"] == money("115.00")
    first = state.apply_payment(write_tenant, invoice["InvoiceID"], "40.00", reference="1 of 2")
    after_one = state.invoice(write_tenant, invoice["InvoiceID"])
    assert after_one["Status"] == "AUTHORISED" and after_one["AmountDue"] == money("75.00")
    second = state.apply_payment(write_tenant, invoice["InvoiceID"], "75.00", date=date.today())
    paid = state.invoice(write_tenant, invoice["InvoiceID"])
    assert paid["Status"] == "PAID" and paid["AmountDue"] == 0 and "FullyPaidOnDate" in paid
    assert [p["PaymentID"] for p in paid["Payments"]] == [first["PaymentID"], second["PaymentID"]]
    deleted = state.delete_payment(write_tenant, first["PaymentID"])
    assert deleted["Status"] == "DELETED"
    reopened = state.invoice(write_tenant, invoice["InvoiceID"])
    assert reopened["Status"] == "AUTHORISED" and reopened["AmountDue"] == money("40.00")
    assert "FullyPaidOnDate" not in reopened and len(reopened["Payments"]) == 1


def test_deleted_payment_stays_listed_through_the_sdk(sdk, xero, write_tenant, customer):
    invoice = xero.state.create_invoice(write_tenant, customer, "20.00")
    payment = xero.state.apply_payment(write_tenant, invoice["InvoiceID"], "5.00")
    xero.state.delete_payment(write_tenant, payment["PaymentID"])
    [listed] = sdk.accounting.get_payment(write_tenant, payment["PaymentID"]).payments
    assert listed.status == "DELETED"


@pytest.mark.parametrize(
    "status, action, allowed",
    [
        ("DRAFT", "delete_invoice", True),
        ("SUBMITTED", "delete_invoice", True),
        ("AUTHORISED", "delete_invoice", False),
        ("AUTHORISED", "void_invoice", True),
        ("DRAFT", "void_invoice", False),
        ("PAID", "void_invoice", False),
    ],
)
def test_delete_and_void_follow_xeros_rules(xero, write_tenant, customer, status, action, allowed):
    invoice = xero.state.create_invoice(write_tenant, customer, "10.00", status=status)
    change = getattr(xero.state, action)
    if allowed:
        assert change(write_tenant, invoice["InvoiceID"])["Status"] in ("DELETED", "VOIDED")
    else:
        with pytest.raises(LedgerError):
            change(write_tenant, invoice["InvoiceID"])


def test_payments_only_on_authorised_and_never_beyond_amount_due(xero, write_tenant, customer):
    draft = xero.state.create_invoice(write_tenant, customer, "10.00", status="DRAFT")
    with pytest.raises(LedgerError):
        xero.state.apply_payment(write_tenant, draft["InvoiceID"], "1.00")
    open_invoice = xero.state.create_invoice(write_tenant, customer, "10.00")
    with pytest.raises(LedgerError):
        xero.state.apply_payment(write_tenant, open_invoice["InvoiceID"], "10.01")
    xero.state.apply_payment(write_tenant, open_invoice["InvoiceID"], "3.00")
    with pytest.raises(LedgerError):
        xero.state.void_invoice(write_tenant, open_invoice["InvoiceID"])


def test_every_change_moves_updated_date_strictly_forward(xero, write_tenant, customer):
    state = xero.state
    invoice = state.create_invoice(write_tenant, customer, "99.00")
    stamps = [parse_ms_date(invoice["UpdatedDateUTC"])]
    payment = state.apply_payment(write_tenant, invoice["InvoiceID"], "1.00")
    stamps.append(parse_ms_date(state.invoice(write_tenant, invoice["InvoiceID"])["UpdatedDateUTC"]))
    assert parse_ms_date(payment["UpdatedDateUTC"]) == stamps[-1]  # a payment moves its invoice too
    for days in range(5):
        changed = state.set_due_date(write_tenant, invoice["InvoiceID"], date.today() + timedelta(days=days))
        stamps.append(parse_ms_date(changed["UpdatedDateUTC"]))
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert stamps[0] > max(
        parse_ms_date(c["UpdatedDateUTC"])
        for c in state.snapshot(write_tenant)["Contacts"]
        if c["ContactID"] != customer
    )


def test_invoice_numbers_are_sequential_and_unique(xero, write_tenant, customer):
    first = xero.state.create_invoice(write_tenant, customer, "1.00")["InvoiceNumber"]
    second = xero.state.create_invoice(write_tenant, customer, "1.00")["InvoiceNumber"]
    assert first.startswith("INV-") and int(second[4:]) == int(first[4:]) + 1
    with pytest.raises(LedgerError):
        xero.state.create_invoice(write_tenant, customer, "1.00", number=first)


def test_created_invoice_totals_and_multicurrency(xero, write_tenant, customer):
    invoice = xero.state.create_invoice(
        write_tenant, customer, "115.00", currency="USD", currency_rate="0.61"
    )
    assert invoice["Total"] == money("115.00")
    assert invoice["SubTotal"] + invoice["TotalTax"] == invoice["Total"]
    assert invoice["CurrencyCode"] == "USD" and invoice["CurrencyRate"] == money("0.610000")
    paid = xero.state.create_invoice(write_tenant, customer, "12.34", status="PAID")
    assert paid["Status"] == "PAID" and paid["AmountPaid"] == money("12.34")


def test_a_bill_marks_its_contact_as_supplier(xero, write_tenant, customer):
    assert xero.state.contact(write_tenant, customer)["IsSupplier"] is False
    xero.state.create_invoice(write_tenant, customer, "8.00", type="ACCPAY")
    assert xero.state.contact(write_tenant, customer)["IsSupplier"] is True


def test_update_contact(xero, write_tenant, customer):
    before = xero.state.contact(write_tenant, customer)
    after = xero.state.update_contact(write_tenant, customer, email="New@Example.com", is_customer=False)
    assert after["EmailAddress"] == "New@Example.com" and after["IsCustomer"] is False
    assert parse_ms_date(after["UpdatedDateUTC"]) > parse_ms_date(before["UpdatedDateUTC"])


def test_amount_due_invariant_holds_everywhere(xero):
    for tenant in xero.state.tenant_ids:
        snapshot = xero.state.snapshot(tenant)
        paid: dict[str, Decimal] = {}
        for payment in snapshot["Payments"]:
            if payment["Status"] == "AUTHORISED":
                key = payment["Invoice"]["InvoiceID"]
                paid[key] = paid.get(key, Decimal("0.00")) + payment["Amount"]
        for invoice in snapshot["Invoices"]:
            assert (
                invoice["AmountDue"] == invoice["Total"] - invoice["AmountPaid"] - invoice["AmountCredited"]
            )
            assert invoice["AmountPaid"] == paid.get(invoice["InvoiceID"], Decimal("0.00"))
            assert (invoice["Status"] == "PAID") == (
                invoice["Status"] in ("AUTHORISED", "PAID") and invoice["AmountDue"] == 0
            )


def test_seed_is_realistic(xero, read_tenant):
    snapshot = xero.state.snapshot(read_tenant)
    invoices, contacts = snapshot["Invoices"], snapshot["Contacts"]
    assert set(Counter(i["Status"] for i in invoices)) == {
        "DRAFT",
        "SUBMITTED",
        "AUTHORISED",
        "PAID",
        "VOIDED",
        "DELETED",
    }
    assert {"ACCREC", "ACCPAY"} == {i["Type"] for i in invoices}
    assert len({i["CurrencyCode"] for i in invoices}) >= 4
    today = datetime.now(UTC).date()  # the emulator's days are UTC days
    open_ones = [i for i in invoices if i["Status"] == "AUTHORISED"]
    assert any(parse_ms_date(i["DueDate"]).date() < today for i in open_ones)
    assert any(parse_ms_date(i["DueDate"]).date() > today for i in open_ones)
    assert any(parse_ms_date(i["DueDate"]).date() == today for i in open_ones)
    assert any(i["AmountPaid"] > 0 for i in open_ones)  # part-paid
    assert any(len(i["Payments"]) > 1 for i in invoices)  # installments
    assert any(p["Status"] == "DELETED" for p in snapshot["Payments"])
    assert any(not c["IsCustomer"] and c["IsSupplier"] for c in contacts)
    emails = [c["EmailAddress"] for c in contacts if c["EmailAddress"]]
    assert len({e.lower() for e in emails}) < len(set(emails))  # shared, differently cased
    org = snapshot["Organisation"]
    assert org["ShortCode"].startswith("!") and org["BaseCurrency"] in ("NZD", "AUD", "GBP", "USD")


def _fingerprint(state: EmulatorState):
    rows = []
    for books in state.books.values():
        rows.append((books.tenant_id, books.org.name, books.org.short_code))
        rows += [(c.contact_id, c.name, c.email, c.is_customer) for c in books.contacts.values()]
        rows += [
            (i.invoice_id, i.number, i.total, i.status, i.currency_code, i.date, len(i.payments))
            for i in books.invoices.values()
        ]
        rows += [(p.payment_id, p.amount, p.status) for p in books.payments.values()]
    return rows


def test_same_seed_same_data_and_different_seed_different_data():
    def make(seed):
        return EmulatorState(EmulatorConfig(seed=seed, tenants=2, contacts=20, invoices=60))

    states = [make(42), make(42), make(43)]
    try:
        assert _fingerprint(states[0]) == _fingerprint(states[1])
        assert _fingerprint(states[0]) != _fingerprint(states[2])
        created = [s.create_contact(s.tenant_ids[0], "Same")["ContactID"] for s in states[:2]]
        assert created[0] == created[1]
    finally:
        for state in states:
            state.close()
