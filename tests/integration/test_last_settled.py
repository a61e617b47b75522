"""Each invoice's `last_settled_on` (the date of its latest live payment or allocation), kept by
the sync's writers (store.mirror.refresh_last_settled), whatever order Xero's answers come in.
The writes here are the sync's own (`worker.sync.STORE`, Core statements the tests' ORM hook
never sees), so these hold the product's writers, not the tests' seeding."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from store.db import transaction
from store.models import Invoice
from worker import sync

T = "t-settled"
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def ms(day: date, hour: int = 0) -> str:
    moment = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


def invoice(updated: int, payments: list[tuple[str, date]] | None, credits: list[tuple[str, date]] | None = None):
    raw = {
        "InvoiceID": "i-1", "InvoiceNumber": "INV-1", "Type": "ACCREC", "Status": "AUTHORISED",
        "Contact": {"ContactID": "c-1", "Name": "Ann"}, "Date": ms(date(2026, 9, 1)),
        "DueDate": ms(date(2026, 10, 1)), "CurrencyCode": "NZD", "Total": "300.00", "AmountDue": "100.00",
        "AmountPaid": "150.00", "AmountCredited": "50.00", "UpdatedDateUTC": ms(date(2026, 11, 1), updated),
    }
    if payments is not None:
        raw["Payments"] = [{"PaymentID": pid, "Date": ms(day), "Amount": "75.00"} for pid, day in payments]
    if credits is not None:
        raw["CreditNotes"] = [{"CreditNoteID": cid, "CreditNoteNumber": cid.upper(), "Date": ms(day),
                               "AppliedAmount": "50.00"} for cid, day in credits]
        raw["Prepayments"], raw["Overpayments"] = [], []
    return raw


def payment(pid: str, day: date, status: str = "AUTHORISED", updated: int = 12) -> dict:
    return {"PaymentID": pid, "Date": ms(day), "Amount": "75.00", "Status": status,
            "UpdatedDateUTC": ms(date(2026, 11, 1), updated), "Invoice": {"InvoiceID": "i-1"}}


def store(sessions, kind: str, items: list[dict]) -> None:
    with transaction(sessions) as s:
        sync.STORE[kind](s, T, items, NOW)


def settled_on(sessions) -> date | None:
    with sessions() as s:
        return s.scalar(select(Invoice.last_settled_on).where(Invoice.tenant_id == T, Invoice.invoice_id == "i-1"))


def test_the_latest_of_payments_and_credit_notes_and_a_deleted_payment_moves_it_back(sessions):
    store(sessions, "invoices", [invoice(1, [("p-1", date(2026, 10, 5)), ("p-2", date(2026, 11, 20))],
                                         [("cn-1", date(2026, 11, 3))])])
    assert settled_on(sessions) == date(2026, 11, 20)
    # Xero deletes p-2: the invoice no longer lists it
    store(sessions, "invoices", [invoice(2, [("p-1", date(2026, 10, 5))], [("cn-1", date(2026, 11, 3))])])
    assert settled_on(sessions) == date(2026, 11, 3)
    # the credit note is removed too
    store(sessions, "invoices", [invoice(3, [("p-1", date(2026, 10, 5))], [])])
    assert settled_on(sessions) == date(2026, 10, 5)


def test_a_payment_record_deleted_or_added_on_its_own_moves_it(sessions):
    store(sessions, "invoices", [invoice(1, [("p-1", date(2026, 10, 5))], [])])
    store(sessions, "payments", [payment("p-9", date(2026, 11, 25))])
    assert settled_on(sessions) == date(2026, 11, 25)
    store(sessions, "payments", [payment("p-9", date(2026, 11, 25), status="DELETED", updated=13)])
    assert settled_on(sessions) == date(2026, 10, 5)


def test_a_payment_stored_before_its_invoice_counts_once_the_invoice_is_there(sessions):
    store(sessions, "payments", [payment("p-1", date(2026, 10, 7))])
    # an answer leaving the arrays out says nothing of them: the stored payment still counts
    store(sessions, "invoices", [invoice(1, None)])
    assert settled_on(sessions) == date(2026, 10, 7)


def test_an_invoice_nothing_was_settled_on_has_none(sessions):
    store(sessions, "invoices", [invoice(1, [], [])])
    assert settled_on(sessions) is None
