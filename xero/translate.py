"""Xero JSON to mirror rows (pure): MS-JSON dates, exact Decimal money, the raw dict kept.

Each function takes one object exactly as Xero sent it (parsed with `parse_float=Decimal`)
and returns the column values of one mirror row, `raw` included. `synced_at` is the
repository's to add.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any

from infra.errors import UpstreamError
from store.natural import number_key

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{2,4})?\)/$")
ZERO = Decimal("0")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class TranslationError(UpstreamError, ValueError):
    """A Xero object we cannot read: a missing id, an unreadable date, a float for money."""


def ms_datetime(value: str | None) -> datetime | None:
    """`/Date(1541176290160+0000)/` -> an aware UTC datetime (the offset is informational:
    the milliseconds are always since the epoch in UTC)."""
    if value is None or value == "":
        return None
    match = _MS_DATE.match(value)
    if not match:
        raise TranslationError(f"not a Xero date: {value!r}")
    return _EPOCH + timedelta(milliseconds=int(match.group(1)))


@lru_cache(maxsize=4096)
def ms_date(value: str | None) -> date | None:
    """A date-only field (midnight UTC of that day) -> the date. Cached: a page's invoices
    share few dates, and a date is immutable."""
    moment = ms_datetime(value)
    return moment.date() if moment else None


def money(value: Any, default: Decimal | None = ZERO) -> Decimal | None:
    if value is None:
        return default
    if isinstance(value, (float, bool)):
        raise TranslationError("money must be read as Decimal (parse_float=Decimal), never float")
    return Decimal(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text != "" else None


def _required(obj: dict, key: str) -> str:
    value = obj.get(key)
    if not value:
        raise TranslationError(f"Xero object without {key}")
    return str(value).lower()


def _updated(obj: dict) -> datetime:
    moment = ms_datetime(obj.get("UpdatedDateUTC"))
    if moment is None:
        raise TranslationError("Xero object without UpdatedDateUTC")
    return moment


# Kept out of the mirror's raw copies, at any depth (a contact, the contact an invoice or a
# payment carries, a payment's batch): nothing reads them, and they are not ours to hold.
PRIVATE_FIELDS = frozenset({
    "BankAccountDetails",  # a contact's bank account
    "BankAccountNumber", "BankAccountName",  # BatchPayments' and a batch payment's
    "BatchPayments",  # a contact's batch payment details: bank account, particulars, code
    "TaxNumber",  # a contact's tax (VAT, GST, ABN) number
})


def private_removed(value: Any) -> Any:
    """`value` (a Xero JSON object or array) without PRIVATE_FIELDS anywhere in it; objects
    that held none are returned as they are, not copied."""
    if isinstance(value, dict):
        kept = {k: private_removed(v) for k, v in value.items() if k not in PRIVATE_FIELDS}
        if len(kept) == len(value) and all(kept[k] is value[k] for k in kept):
            return value
        return kept
    if isinstance(value, list):
        items = [private_removed(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def contact_row(tenant_id: str, raw: dict) -> dict[str, Any]:
    email = _text(raw.get("EmailAddress"))
    return {
        "tenant_id": tenant_id,
        "contact_id": _required(raw, "ContactID"),
        "name": _text(raw.get("Name")),
        "email": email,
        "email_lower": _email(email),
        "is_customer": bool(raw.get("IsCustomer", False)),
        "is_supplier": bool(raw.get("IsSupplier", False)),
        "contact_status": _text(raw.get("ContactStatus")),
        "merged_to_contact_id": merged_to(raw),
        "updated_utc": _updated(raw),
        "raw": private_removed(raw),
    }


_NIL_ID = "00000000-0000-0000-0000-000000000000"


def merged_to(raw: dict) -> str | None:
    """The contact this one was merged into (MergedToContactID; the nil GUID means none)."""
    merged = raw.get("MergedToContactID")
    return str(merged).lower() if merged and merged != _NIL_ID else None


def _email(text: str | None) -> str | None:
    email = (text or "").strip().lower()
    return email or None


def contact_email_rows(tenant_id: str, raw: dict) -> list[dict[str, Any]]:
    """The addresses of the contact's ContactPersons (the main EmailAddress is on the contact
    row itself; a person whose address is the main one adds nothing)."""
    contact_id = _required(raw, "ContactID")
    rows: dict[str, dict[str, Any]] = {}
    main = _email(raw.get("EmailAddress"))
    for person in raw.get("ContactPersons") or []:
        email = _email(person.get("EmailAddress"))
        if email and email != main and email not in rows:
            name = " ".join(p for p in (_text(person.get("FirstName")), _text(person.get("LastName"))) if p)
            rows[email] = {"source": "person", "person_name": name[:300] or None}
    return [
        {"tenant_id": tenant_id, "contact_id": contact_id, "email_lower": email[:320], **facts}
        for email, facts in rows.items()
    ]


def invoice_row(tenant_id: str, raw: dict) -> dict[str, Any]:
    contact = raw.get("Contact") or {}
    contact_id = contact.get("ContactID")
    return {
        "tenant_id": tenant_id,
        "invoice_id": _required(raw, "InvoiceID"),
        "invoice_number": _text(raw.get("InvoiceNumber")),
        "number_key": number_key(_text(raw.get("InvoiceNumber"))),
        "type": str(raw.get("Type") or ""),
        "status": str(raw.get("Status") or ""),
        "contact_id": str(contact_id).lower() if contact_id else None,
        "date": ms_date(raw.get("Date")),
        "due_date": ms_date(raw.get("DueDate")),
        "currency_code": str(raw.get("CurrencyCode") or ""),
        "currency_rate": money(raw.get("CurrencyRate"), default=None),
        "total": money(raw.get("Total")),
        "amount_due": money(raw.get("AmountDue")),
        "amount_paid": money(raw.get("AmountPaid")),
        "amount_credited": money(raw.get("AmountCredited")),
        "reference": _text(raw.get("Reference")),
        "fully_paid_on": ms_date(raw.get("FullyPaidOnDate")),
        "updated_utc": _updated(raw),
        "raw": private_removed({k: v for k, v in raw.items() if k not in UNREAD_INVOICE_FIELDS}),
    }


# Kept out of the mirror's raw copies of invoices: nothing reads them (the product shows no
# line items) and they are most of an invoice's bytes.
UNREAD_INVOICE_FIELDS = ("LineItems",)


def installment_rows(tenant_id: str, invoice_raw: dict) -> list[dict[str, Any]]:
    """The abbreviated payments an invoice lists: live installments, with no update time of
    their own (Xero lists only payments that are not deleted)."""
    invoice_id = _required(invoice_raw, "InvoiceID")
    rows = []
    for raw in invoice_raw.get("Payments") or []:
        rows.append(
            {
                "tenant_id": tenant_id,
                "payment_id": _required(raw, "PaymentID"),
                "invoice_id": invoice_id,
                "date": ms_date(raw.get("Date")),
                "amount": money(raw.get("Amount")),
                "currency_rate": money(raw.get("CurrencyRate"), default=None),
                "reference": _text(raw.get("Reference")),
                "status": "AUTHORISED",
                "payment_type": _text(raw.get("PaymentType")),
                "updated_utc": None,
                "raw": private_removed(raw),
            }
        )
    return rows


# The settlements an invoice lists beside its Payments: (JSON array, id field, our kind).
ALLOCATION_ARRAYS = (
    ("CreditNotes", "CreditNoteID", "credit_note"),
    ("Prepayments", "PrepaymentID", "prepayment"),
    ("Overpayments", "OverpaymentID", "overpayment"),
)


def allocation_rows(tenant_id: str, invoice_raw: dict) -> list[dict[str, Any]]:
    """The credit notes, prepayments and overpayments applied to an invoice, one row per
    entry with its AppliedAmount (a document applied twice is listed twice: `seq` tells them
    apart). The date is the one the invoice gives for the entry."""
    invoice_id = _required(invoice_raw, "InvoiceID")
    rows = []
    for key, id_field, kind in ALLOCATION_ARRAYS:
        seen: dict[str, int] = {}
        for raw in invoice_raw.get(key) or []:
            document_id = str(raw.get(id_field) or raw.get("ID") or "").lower()
            if not document_id:
                raise TranslationError(f"an invoice's {key} entry without {id_field}")
            seq = seen[document_id] = seen.get(document_id, 0) + 1
            amount = money(raw.get("AppliedAmount"), default=None)
            if amount is None:
                raise TranslationError(f"an invoice's {key} entry without AppliedAmount")
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "invoice_id": invoice_id,
                    "kind": kind,
                    "document_id": document_id,
                    "seq": seq,
                    "number": _text(raw.get("CreditNoteNumber") or raw.get("Reference")),
                    "date": ms_date(raw.get("Date")),
                    "amount": amount,
                }
            )
    return rows


def payment_row(tenant_id: str, raw: dict) -> dict[str, Any]:
    """A full payment record, from GET /Payments."""
    invoice = raw.get("Invoice") or {}
    invoice_id = invoice.get("InvoiceID")
    return {
        "tenant_id": tenant_id,
        "payment_id": _required(raw, "PaymentID"),
        "invoice_id": str(invoice_id).lower() if invoice_id else None,
        "date": ms_date(raw.get("Date")),
        "amount": money(raw.get("Amount")),
        "currency_rate": money(raw.get("CurrencyRate"), default=None),
        "reference": _text(raw.get("Reference")),
        "status": str(raw.get("Status") or "AUTHORISED"),
        "payment_type": _text(raw.get("PaymentType")),
        "updated_utc": _updated(raw),
        "raw": private_removed(raw),
    }
