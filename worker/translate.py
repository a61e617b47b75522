"""Xero JSON to mirror rows (pure): MS-JSON dates, exact Decimal money, the raw dict kept.

Each function takes one object exactly as Xero sent it (parsed with `parse_float=Decimal`)
and returns the column values of one mirror row, `raw` included. `synced_at` is the
repository's to add.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from decimal import Decimal
from typing import Any

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{2,4})?\)/$")
ZERO = Decimal("0")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class TranslationError(ValueError):
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
    if isinstance(value, float) or isinstance(value, bool):
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


def contact_row(tenant_id: str, raw: dict) -> dict[str, Any]:
    email = _text(raw.get("EmailAddress"))
    return {
        "tenant_id": tenant_id,
        "contact_id": _required(raw, "ContactID"),
        "name": _text(raw.get("Name")),
        "email": email,
        "email_lower": email.lower() if email else None,
        "is_customer": bool(raw.get("IsCustomer", False)),
        "is_supplier": bool(raw.get("IsSupplier", False)),
        "contact_status": _text(raw.get("ContactStatus")),
        "updated_utc": _updated(raw),
        "raw": raw,
    }


def invoice_row(tenant_id: str, raw: dict) -> dict[str, Any]:
    contact = raw.get("Contact") or {}
    contact_id = contact.get("ContactID")
    return {
        "tenant_id": tenant_id,
        "invoice_id": _required(raw, "InvoiceID"),
        "invoice_number": _text(raw.get("InvoiceNumber")),
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
        "raw": raw,
    }


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
                "raw": raw,
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
        "raw": raw,
    }
