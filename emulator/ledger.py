"""Invoice arithmetic and status rules as Xero applies them (pure: no I/O, no clock)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from .records import ZERO, Credit, Invoice, LineItem

CENT = Decimal("0.01")
RATE_PLACES = Decimal("0.000001")
PAYMENT_TYPES = {"ACCREC": "ACCRECPAYMENT", "ACCPAY": "ACCPAYPAYMENT"}
INVOICE_TYPES = tuple(PAYMENT_TYPES)
STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED")
# Which invoice type each credit document type may be allocated to.
CREDIT_TARGETS = {
    "ACCRECCREDIT": "ACCREC",
    "ACCPAYCREDIT": "ACCPAY",
    "RECEIVE-PREPAYMENT": "ACCREC",
    "SPEND-PREPAYMENT": "ACCPAY",
    "RECEIVE-OVERPAYMENT": "ACCREC",
    "SPEND-OVERPAYMENT": "ACCPAY",
}
CREDIT_TYPES = {
    "CreditNote": ("ACCRECCREDIT", "ACCPAYCREDIT"),
    "Prepayment": ("RECEIVE-PREPAYMENT", "SPEND-PREPAYMENT"),
    "Overpayment": ("RECEIVE-OVERPAYMENT", "SPEND-OVERPAYMENT"),
}


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
    """Recompute AmountPaid/AmountCredited/AmountDue, PAID <-> AUTHORISED and FullyPaidOnDate.

    AmountCredited is the sum of the credit notes, prepayments and overpayments allocated to it;
    the invoice is PAID once payments and allocations together leave nothing due, on the date of
    the last of them."""
    live = [p for p in invoice.payments if p.status == "AUTHORISED"]
    invoice.amount_paid = sum((p.amount for p in live), ZERO)
    invoice.amount_credited = sum((a.amount for a in invoice.allocations), ZERO)
    invoice.amount_due = invoice.total - invoice.amount_paid - invoice.amount_credited
    if invoice.status not in ("AUTHORISED", "PAID"):
        return
    if invoice.amount_due == ZERO:
        invoice.status = "PAID"
        dates = [p.date for p in live] + [a.date for a in invoice.allocations]
        invoice.fully_paid_on = max(dates, default=invoice.date)
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
    if invoice.allocations:
        raise LedgerError("Invoice has credit allocated; remove the allocations before voiding")


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


def settle_credit(credit: Credit) -> None:
    """A credit document is PAID once fully allocated, AUTHORISED again when credit returns."""
    if credit.status not in ("AUTHORISED", "PAID"):
        return
    if credit.remaining == ZERO and credit.total > ZERO:
        credit.status = "PAID"
        credit.fully_paid_on = max((a.date for a in credit.allocations), default=credit.date)
    else:
        credit.status = "AUTHORISED"
        credit.fully_paid_on = None


def check_allocation(credit: Credit, invoice: Invoice, amount: Decimal) -> None:
    """Xero's refusals: unapproved credit, wrong side of the ledger, other currency or contact, too much."""
    label = {"CreditNote": "credit note", "Prepayment": "prepayment", "Overpayment": "overpayment"}
    label = label[credit.kind]
    if credit.status != "AUTHORISED":
        raise LedgerError(
            f"Only an AUTHORISED {label} with credit remaining can be allocated (is {credit.status})"
        )
    if CREDIT_TARGETS[credit.type] != invoice.type:
        raise LedgerError(f"A {credit.type} {label} cannot be allocated to an {invoice.type} invoice")
    if invoice.status != "AUTHORISED":
        raise LedgerError(f"Credit can only be allocated to AUTHORISED invoices (is {invoice.status})")
    if credit.currency_code != invoice.currency_code:
        raise LedgerError(
            f"The {label} ({credit.currency_code}) and the invoice ({invoice.currency_code}) "
            "differ in currency"
        )
    if credit.contact_id != invoice.contact_id:
        raise LedgerError(f"The {label} and the invoice belong to different contacts")
    if amount <= ZERO:
        raise LedgerError("Allocation amount must be greater than zero")
    if amount > invoice.amount_due:
        raise LedgerError("Allocation amount exceeds the amount due on the invoice")
    if amount > credit.remaining:
        raise LedgerError(f"Allocation amount exceeds the remaining credit on the {label}")


def check_credit_status(credit: Credit, target: str) -> None:
    """DRAFT -> SUBMITTED -> AUTHORISED; DRAFT/SUBMITTED -> DELETED; unallocated AUTHORISED -> VOIDED."""
    allowed = {
        "DRAFT": (),
        "SUBMITTED": ("DRAFT",),
        "AUTHORISED": ("DRAFT", "SUBMITTED"),
        "DELETED": ("DRAFT", "SUBMITTED"),
        "VOIDED": ("AUTHORISED",),
    }
    if target not in allowed:
        raise LedgerError(f"Cannot set a credit note's status to {target!r}")
    if credit.status not in allowed[target]:
        raise LedgerError(f"Cannot move a credit note from {credit.status} to {target}")
    if target == "VOIDED" and credit.allocations:
        raise LedgerError("Credit note has allocations; remove them before voiding")
