"""Pure: the saved views, the default list and the status words, as rules on a plain invoice and `today`.

DESIGN.md's table, read literally, with its two sentences of prose made exact:

- Paid: status PAID and balance (AmountDue) 0. An AUTHORISED invoice whose balance reached 0
  by a credit note is in no saved view: Xero has not (yet) called it PAID.
- Unpaid: status AUTHORISED and balance > 0 (open, overdue and partially paid alike).
- Open: Unpaid and due date >= today. "A due date equal to today is neither overdue nor
  past due: it counts as open." An unpaid invoice without a due date can never be overdue,
  so it is open too; Open and Overdue therefore split Unpaid exactly.
- Overdue: Unpaid and due date < today.
- Pinned: pinned to the record and PAID or AUTHORISED ("drafts, voided and deleted invoices
  appear in no saved view", and Pinned is one of them).
- `all` (not a saved view): every invoice of the record except DELETED ones, which Xero
  itself hides from its lists.
- No view given: the Unpaid set, so that an overdue invoice is never hidden by default.

Status words (DESIGN's six, and no others): PAID is "Paid"; DRAFT and SUBMITTED (awaiting
approval: not yet payable) are "Draft"; VOIDED and DELETED are both "Voided" (each cancels
the invoice; Xero's own word stays beside ours in every row); an AUTHORISED invoice is
"Overdue" when past due (this wins over part payment: overdue money must show), else
"Partially paid" when some of it was settled (0 < balance < total, by payment or credit),
else "Open"; one AUTHORISED with nothing left to pay is "Paid" (nothing is owed) although,
as above, it is in no saved view.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal, Protocol

from infra.errors import InputError

VIEWS = ("open", "unpaid", "paid", "overdue", "pinned", "all")
DEFAULT_VIEW = "unpaid"

LIVE_STATUSES = ("AUTHORISED", "PAID")
DRAFT_STATUSES = ("DRAFT", "SUBMITTED")
VOID_STATUSES = ("VOIDED", "DELETED")
HIDDEN_STATUSES = ("DELETED",)

STATUS_WORDS = ("Paid", "Open", "Overdue", "Partially paid", "Draft", "Voided")
TYPE_LABELS = {"ACCREC": "Sales invoice", "ACCPAY": "Bill"}
# The invoice list's `type`: a customer's debt is its sales invoices; bills only when asked.
TYPES = {"sales": "ACCREC", "bill": "ACCPAY", "all": None}
DEFAULT_TYPE = "sales"

Bucket = Literal["paid", "open", "overdue"]


class InvoiceLike(Protocol):  # read-only, so frozen rows qualify
    @property
    def status(self) -> str: ...
    @property
    def total(self) -> Decimal: ...
    @property
    def amount_due(self) -> Decimal: ...
    @property
    def due_date(self) -> date | None: ...


class UnknownView(InputError, ValueError):
    """A `view` that is not one of VIEWS."""


class UnknownType(InputError, ValueError):
    """A `type` that is not one of TYPES."""


def parse_type(value: str | None) -> str:
    """The invoice types asked for; no value means sales invoices only."""
    if value is None or value == "":
        return DEFAULT_TYPE
    if value not in TYPES:
        raise UnknownType(f"type must be one of {', '.join(TYPES)}")
    return value


def parse_view(value: str | None) -> str:
    """The view asked for; no value means the default (Unpaid) list."""
    if value is None or value == "":
        return DEFAULT_VIEW
    if value not in VIEWS:
        raise UnknownView(f"view must be one of {', '.join(VIEWS)}")
    return value


def is_paid(inv: InvoiceLike) -> bool:
    return inv.status == "PAID" and inv.amount_due == 0


def is_unpaid(inv: InvoiceLike) -> bool:
    return inv.status == "AUTHORISED" and inv.amount_due > 0


def is_overdue(inv: InvoiceLike, today: date) -> bool:
    return is_unpaid(inv) and inv.due_date is not None and inv.due_date < today


def is_open(inv: InvoiceLike, today: date) -> bool:
    return is_unpaid(inv) and not is_overdue(inv, today)


def bucket(inv: InvoiceLike, today: date) -> Bucket | None:
    """Which total an invoice counts in: paid, open or overdue (the last two make unpaid)."""
    if is_paid(inv):
        return "paid"
    if is_unpaid(inv):
        return "overdue" if is_overdue(inv, today) else "open"
    return None


def in_view(view: str, inv: InvoiceLike, today: date, *, pinned: bool = False) -> bool:
    if view == "paid":
        return is_paid(inv)
    if view == "unpaid":
        return is_unpaid(inv)
    if view == "open":
        return is_open(inv, today)
    if view == "overdue":
        return is_overdue(inv, today)
    if view == "pinned":
        return pinned and inv.status in LIVE_STATUSES
    if view == "all":
        return inv.status not in HIDDEN_STATUSES
    raise UnknownView(view)


def status_word(inv: InvoiceLike, today: date) -> str:
    if inv.status == "PAID":
        return "Paid"
    if inv.status in DRAFT_STATUSES:
        return "Draft"
    if inv.status in VOID_STATUSES:
        return "Voided"
    if inv.amount_due <= 0:
        return "Paid"
    if is_overdue(inv, today):
        return "Overdue"
    if inv.amount_due < inv.total:
        return "Partially paid"
    return "Open"


def type_label(invoice_type: str) -> str:
    """ "Sales invoice" or "Bill"; any other Xero type keeps its own code."""
    return TYPE_LABELS.get(invoice_type, invoice_type)
