"""Invoice arithmetic and status rules as Xero applies them (pure: no I/O, no clock)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from .records import ZERO, Invoice, LineItem

CENT = Decimal("0.01")
RATE_PLACES = Decimal("0.000001")
PAYMENT_TYPES = {"ACCREC": "ACCRECPAYMENT", "ACCPAY": "ACCPAYPAYMENT"}
INVOICE_TYPES = tuple(PAYMENT_TYPES)
STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED")


class LedgerError(ValueError):
    """A change Xero would refuse (e.g. paying a draft, voiding a paid invoice)."""


def money(value) -> Decimal:
    """Any number (str, int, float, Decimal) as a 2-decimal-place Decimal."""
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def rate(value) -> Decimal:
    return Decimal(str(value)).quantize(RATE_PLACES, rounding=ROUND_HALF_UP)


def line_tax(line_amount: Decimal, tax_rate: Decimal, line_amount_types: str) -> Decimal:
    if line_amount_types == "NoTax":
        return ZERO
    if line_amount_types == "Inclusive":
        return money(line_amount - line_amount / (1 + tax_rate))
    return money(line_amount * tax_rate)


def totals(lines: list[LineItem], line_amount_types: str) -> tuple[Decimal, Decimal, Decimal]:
    """(SubTotal, TotalTax, Total) of line items."""
    tax = sum((line.tax_amount for line in lines), ZERO)
    amount = sum((line.line_amount for line in lines), ZERO)
    if line_amount_types == "Inclusive":
        return amount - tax, tax, amount
    return amount, tax, amount + tax


def net_of_tax(total: Decimal, tax_rate: Decimal, line_amount_types: str) -> Decimal:
    """The exclusive line amount whose tax brings the invoice to exactly `total` (or close)."""
    if line_amount_types != "Exclusive":
        return total
    return money(total / (1 + tax_rate))


def settle(invoice: Invoice) -> None:
    """Recompute AmountPaid/AmountDue, PAID <-> AUTHORISED and FullyPaidOnDate."""
    live = [p for p in invoice.payments if p.status == "AUTHORISED"]
    invoice.amount_paid = sum((p.amount for p in live), ZERO)
    invoice.amount_due = invoice.total - invoice.amount_paid - invoice.amount_credited
    if invoice.status not in ("AUTHORISED", "PAID"):
        return
    if invoice.amount_due == ZERO:
        invoice.status = "PAID"
        invoice.fully_paid_on = max((p.date for p in live), default=invoice.date)
    else:
        invoice.status = "AUTHORISED"
        invoice.fully_paid_on = None


def check_payment(invoice: Invoice, amount: Decimal) -> None:
    if invoice.status != "AUTHORISED":
        raise LedgerError(f"Payments can only be made against AUTHORISED invoices (is {invoice.status})")
    if amount <= ZERO:
        raise LedgerError("Payment amount must be greater than zero")
    if amount > invoice.amount_due:
        raise LedgerError("Payment amount exceeds the amount outstanding on this document")


def check_void(invoice: Invoice) -> None:
    if invoice.status != "AUTHORISED":
        raise LedgerError(f"Only AUTHORISED invoices can be voided (is {invoice.status})")
    if invoice.amount_paid != ZERO:
        raise LedgerError("Invoice has payments applied; remove them before voiding")


def check_delete(invoice: Invoice) -> None:
    if invoice.status not in ("DRAFT", "SUBMITTED"):
        raise LedgerError(f"Only DRAFT or SUBMITTED invoices can be deleted (is {invoice.status})")


def check_approve(invoice: Invoice, target: str) -> None:
    allowed = {"SUBMITTED": ("DRAFT",), "AUTHORISED": ("DRAFT", "SUBMITTED")}
    if invoice.status not in allowed.get(target, ()):
        raise LedgerError(f"Cannot move an invoice from {invoice.status} to {target}")


def check_new_invoice(invoice_type: str, status: str, total: Decimal) -> None:
    if invoice_type not in INVOICE_TYPES:
        raise LedgerError(f"Unsupported invoice type {invoice_type!r}")
    if status not in STATUSES:
        raise LedgerError(f"Unknown invoice status {status!r}")
    if total < ZERO:
        raise LedgerError("Invoice total cannot be negative")
