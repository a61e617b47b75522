"""The emulator's in-memory records of one Xero organisation (plain dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

ZERO = Decimal("0.00")


@dataclass
class Organisation:
    organisation_id: str
    name: str
    short_code: str
    base_currency: str
    country_code: str
    version: str
    timezone: str
    tax_rate: Decimal
    sales_tax_type: str
    purchases_tax_type: str
    created_utc: datetime


@dataclass
class Contact:
    contact_id: str
    name: str
    first_name: str
    last_name: str
    email: str
    is_customer: bool
    is_supplier: bool
    updated_utc: datetime
    status: str = "ACTIVE"
    contact_number: str = ""
    account_number: str = ""
    contact_persons: list[ContactPerson] = field(default_factory=list)
    merged_to: str | None = None  # MergedToContactID once merged into another contact


@dataclass
class ContactPerson:
    first_name: str
    last_name: str
    email: str
    include_in_emails: bool = False


@dataclass
class LineItem:
    line_item_id: str
    description: str
    quantity: Decimal
    unit_amount: Decimal
    line_amount: Decimal
    tax_amount: Decimal
    account_code: str
    tax_type: str


@dataclass
class Payment:
    payment_id: str
    invoice_id: str
    date: date
    amount: Decimal
    currency_rate: Decimal
    reference: str
    payment_type: str
    updated_utc: datetime
    account_id: str
    account_code: str
    status: str = "AUTHORISED"
    is_reconciled: bool = False


@dataclass
class Invoice:
    invoice_id: str
    number: str
    type: str
    contact_id: str
    date: date
    due_date: date
    status: str
    currency_code: str
    currency_rate: Decimal
    reference: str
    line_amount_types: str
    line_items: list[LineItem]
    sub_total: Decimal
    total_tax: Decimal
    total: Decimal
    updated_utc: datetime
    payments: list[Payment] = field(default_factory=list)
    amount_credited: Decimal = ZERO
    amount_paid: Decimal = ZERO
    amount_due: Decimal = ZERO
    fully_paid_on: date | None = None
    sent_to_contact: bool = False
    allocations: list[Allocation] = field(default_factory=list)


# The three documents whose money can be allocated to an invoice (their JSON key and id field).
CREDIT_KINDS = ("CreditNote", "Prepayment", "Overpayment")


@dataclass
class Allocation:
    """Part of a credit note, prepayment or overpayment applied to one invoice."""

    allocation_id: str
    kind: str  # one of CREDIT_KINDS
    credit_id: str
    invoice_id: str
    amount: Decimal
    date: date


@dataclass
class Credit:
    """A credit note (ACCRECCREDIT/ACCPAYCREDIT), prepayment or overpayment (RECEIVE-/SPEND-*)."""

    credit_id: str
    kind: str  # one of CREDIT_KINDS
    type: str
    number: str
    contact_id: str
    date: date
    status: str
    currency_code: str
    currency_rate: Decimal
    reference: str
    line_amount_types: str
    line_items: list[LineItem]
    sub_total: Decimal
    total_tax: Decimal
    total: Decimal
    updated_utc: datetime
    allocations: list[Allocation] = field(default_factory=list)
    fully_paid_on: date | None = None
    sent_to_contact: bool = False

    @property
    def applied(self) -> Decimal:
        return sum((a.amount for a in self.allocations), ZERO)

    @property
    def remaining(self) -> Decimal:
        return self.total - self.applied
