"""Reports: GET /Reports/AgedReceivablesByContact, in Xero's ReportWithRows shape (pure: no I/O, no clock).

Computed from the organisation's own records as of `date` (the report date): the contact's
sales invoices (ACCREC, AUTHORISED or PAID now; drafts, voided and deleted ones never)
dated on or before `toDate`, each with what had been paid (AUTHORISED payments dated on or
before `date`) and credited (credit note, prepayment and overpayment allocations dated on or
before `date`) by then; Due = Total - Paid - Credited. An invoice with nothing due on that
date is not listed. Invoices dated before `fromDate` are not listed either: their Due adds up
into the Opening Balance row, dated `fromDate`.

The rows follow the OpenAPI example: a Header (Date, Number, Due Date, "", Total, Paid,
Credited, Due), a Section with the Opening Balance row, a Section of invoice rows (each cell
carrying the invoice's id as its `invoiceID` attribute; the fourth cell says "305 days
overdue", "1 day overdue", or "" when not past due on the report date) ending in a Total
SummaryRow, and a Section with the Closing Balance SummaryRow (Total, Paid and Credited of
the rows listed; Due with the Opening Balance added).

Money is each invoice's own currency, two places. UNVERIFIED against real Xero, which may
convert to the base currency: a contact with invoices in several currencies gets one invoice
Section per currency (titled with its code, as are its Opening and Closing rows), so that
nothing here is ever added across currencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from .books import TenantBooks
from .records import ZERO, Contact, Invoice
from .xero_json import envelope_datetime

HEADER = ("Date", "Number", "Due Date", "", "Total", "Paid", "Credited", "Due")
LISTED_STATUSES = ("AUTHORISED", "PAID")


@dataclass(frozen=True)
class Line:
    invoice: Invoice
    paid: Decimal
    credited: Decimal
    due: Decimal


def as_of(invoice: Invoice, day: date) -> Line:
    paid = sum((p.amount for p in invoice.payments if p.status == "AUTHORISED" and p.date <= day), ZERO)
    credited = sum((a.amount for a in invoice.allocations if a.date <= day), ZERO)
    return Line(invoice, paid, credited, invoice.total - paid - credited)


def overdue_words(due_date: date, day: date) -> str:
    days = (day - due_date).days
    if days <= 0:
        return ""
    return "1 day overdue" if days == 1 else f"{days} days overdue"


def aged_receivables_by_contact(
    books: TenantBooks,
    contact: Contact,
    day: date,
    from_date: date | None,
    to_date: date | None,
    today: date,
    now: datetime,
) -> dict:
    """The report's object (what goes in the envelope's `Reports` list)."""
    mine = [
        i
        for i in books.invoices.values()
        if i.contact_id == contact.contact_id and i.type == "ACCREC" and i.status in LISTED_STATUSES
    ]
    to_date = to_date or day
    if from_date is None:
        from_date = min((i.date for i in mine), default=day)
    lines = [as_of(i, day) for i in mine if i.date <= to_date]
    lines = [ln for ln in lines if ln.due > ZERO]
    opening = [ln for ln in lines if ln.invoice.date < from_date]
    listed = sorted(
        (ln for ln in lines if ln.invoice.date >= from_date), key=lambda ln: (ln.invoice.date, ln.invoice.number)
    )
    currencies = sorted({ln.invoice.currency_code for ln in lines}) or [books.org.base_currency]
    several = len(currencies) > 1

    def named(text: str, currency: str) -> str:
        return f"{text} ({currency})" if several else text

    rows: list[dict] = [{"RowType": "Header", "Cells": [{"Value": v} for v in HEADER]}]
    rows.append(
        {
            "RowType": "Section",
            "Title": "",
            "Rows": [
                _row(
                    "Row",
                    [
                        _datetime(from_date),
                        named("Opening Balance", cur),
                        "",
                        "",
                        "",
                        "",
                        "",
                        _money(sum((ln.due for ln in opening if ln.invoice.currency_code == cur), ZERO)),
                    ],
                )
                for cur in currencies
            ],
        }
    )
    closing = []
    for cur in currencies:
        these = [ln for ln in listed if ln.invoice.currency_code == cur]
        sums = [sum((getattr(ln, k) for ln in these), ZERO) for k in ("paid", "credited", "due")]
        total = sum((ln.invoice.total for ln in these), ZERO)
        opened = sum((ln.due for ln in opening if ln.invoice.currency_code == cur), ZERO)
        section = [_invoice_row(ln, day) for ln in these]
        section.append(_row("SummaryRow", ["Total", "", "", "", *map(_money, (total, *sums))]))
        rows.append({"RowType": "Section", "Title": cur if several else "", "Rows": section})
        closing.append(
            _row(
                "SummaryRow",
                [named("Closing Balance", cur), "", "", "", _money(total), _money(sums[0]), _money(sums[1]),
                 _money(sums[2] + opened)],
            )
        )
    rows.append({"RowType": "Section", "Title": "", "Rows": closing})
    return {
        "ReportName": "Aged Receivables By Contact",
        "ReportType": "AgedReceivablesByContact",
        "ReportTitles": [
            "Invoices",
            contact.name,
            f"From {_long(from_date)} to {_long(to_date)}",
            f"Showing payments to {_long(day)}",
        ],
        "ReportDate": _long(today),
        "UpdatedDateUTC": envelope_datetime(now),
        "Fields": [],
        "Rows": rows,
    }


def _invoice_row(line: Line, day: date) -> dict:
    inv = line.invoice
    values = [
        _datetime(inv.date),
        inv.number,
        _datetime(inv.due_date),
        overdue_words(inv.due_date, day),
        _money(inv.total),
        _money(line.paid),
        _money(line.credited),
        _money(line.due),
    ]
    attribute = [{"Value": inv.invoice_id, "Id": "invoiceID"}]
    return {"RowType": "Row", "Cells": [{"Value": v, "Attributes": attribute} for v in values]}


def _row(kind: str, values: list[str]) -> dict:
    return {"RowType": kind, "Cells": [{"Value": v} for v in values]}


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _datetime(day: date) -> str:
    return f"{day.isoformat()}T00:00:00"


def _long(day: date) -> str:
    return f"{day.day} {day:%B %Y}"
