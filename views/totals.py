"""Pure: what a customer was invoiced, has paid, was credited and still owes, per currency.

DESIGN.md "Money as Xero keeps it". Over a record's AUTHORISED and PAID sales invoices
(ACCREC: a bill is not the customer's debt and never counts here):

- paid: the sum of AmountPaid, money received (part payments included), counting the
  invoices with AmountPaid > 0;
- credited: the sum of AmountCredited (credit notes, prepayments, overpayments applied),
  counting the invoices with AmountCredited > 0;
- unpaid: the sum of AmountDue over AUTHORISED invoices with AmountDue > 0 (the Unpaid view);
- overdue: the part of unpaid whose due date is before the organisation's `today`;
- invoiced: the sum of Total, so that for every currency paid + credited + unpaid = invoiced,
  exactly (Xero keeps AmountDue = Total - AmountPaid - AmountCredited).

Figures are never added across currencies. The one cross-currency figure of each block is
its base-currency total, labelled as converted at each invoice's own CurrencyRate (Xero's
rate is units of invoice currency per 1 base unit, so base = amount / rate), computed
exactly and rounded to cents once, at the end; an invoice in a foreign currency without a
usable rate is reported as unconverted, never dropped.

The SQL (views/queries.py) adds invoices up into `Line`s in one GROUP BY; `lines_for` is
the same classification on plain invoices, with `today` passed in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Protocol

from views.saved_views import InvoiceLike, is_overdue, is_unpaid

CENT = Decimal("0.01")
ZERO = Decimal(0)
SALES = "ACCREC"
COUNTED_STATUSES = ("AUTHORISED", "PAID")

State = Literal["settled", "open", "overdue"]
BLOCKS = ("invoiced", "paid", "credited", "unpaid", "overdue")
LABELS = {
    "invoiced": "Invoiced",
    "paid": "Received",
    "credited": "Credited",
    "unpaid": "Still to pay",
    "overdue": "Overdue",
}


class InvoiceAmounts(InvoiceLike, Protocol):
    type: str
    currency_code: str
    currency_rate: Decimal | None
    amount_paid: Decimal
    amount_credited: Decimal


@dataclass(frozen=True)
class Line:
    """Sales invoices of one state, currency and rate, added up."""

    state: State  # settled: nothing left to pay; open or overdue: part of unpaid
    currency: str
    rate: Decimal | None
    total: Decimal
    paid: Decimal
    credited: Decimal
    due: Decimal
    count: int = 1
    paid_count: int = 0
    credited_count: int = 0
    bucket: str | None = None  # unpaid lines: their ageing bucket (views/aging.py); None when not aged

    @property
    def unpaid(self) -> bool:
        return self.state != "settled"

    def amount(self, block: str) -> Decimal:
        return {
            "invoiced": self.total,
            "paid": self.paid,
            "credited": self.credited,
            "unpaid": self.due,
            "overdue": self.due,
        }[block]

    def counted(self, block: str) -> int:
        return {
            "invoiced": self.count,
            "paid": self.paid_count,
            "credited": self.credited_count,
            "unpaid": self.count,
            "overdue": self.count,
        }[block]

    def belongs(self, block: str) -> bool:
        if block == "unpaid":
            return self.unpaid
        if block == "overdue":
            return self.state == "overdue"
        return True


@dataclass(frozen=True)
class Amount:
    currency: str
    amount: Decimal
    count: int
    type: str = SALES


@dataclass(frozen=True)
class Converted:
    """One block's invoices in the base currency, each converted at its own rate."""

    currency: str
    amount: Decimal
    count: int
    unconverted: tuple[Amount, ...] = ()
    type: str = SALES


@dataclass(frozen=True)
class Total:
    label: str
    count: int
    by_currency: tuple[Amount, ...]
    converted: tuple[Converted, ...]


@dataclass(frozen=True)
class Summary:
    invoiced: Total
    paid: Total
    credited: Total
    unpaid: Total
    overdue: Total  # the part of unpaid that is past due
    base_currency: str | None = None
    lines: tuple[Line, ...] = field(default=(), repr=False)

    def block(self, name: str) -> Total:
        return getattr(self, name)


def state_of(inv: InvoiceLike, today: date) -> State | None:
    """Which part of the summary a sales invoice counts in; None for drafts, voided, deleted."""
    if inv.status not in COUNTED_STATUSES:
        return None
    if is_unpaid(inv):
        return "overdue" if is_overdue(inv, today) else "open"
    return "settled"


def lines_for(invoices: Iterable[InvoiceAmounts], today: date) -> list[Line]:
    """One line per invoice that counts (what the SQL's GROUP BY adds up)."""
    lines = []
    for inv in invoices:
        state = state_of(inv, today) if inv.type == SALES else None
        if state is None:
            continue
        due = inv.amount_due if state != "settled" else ZERO
        lines.append(
            Line(
                state,
                inv.currency_code,
                inv.currency_rate,
                inv.total,
                inv.amount_paid,
                inv.amount_credited,
                due,
                1,
                int(inv.amount_paid > 0),
                int(inv.amount_credited > 0),
            )
        )
    return lines


def to_base(amount: Decimal, currency: str, rate: Decimal | None, base: str) -> Decimal | None:
    """The amount in the base currency, unrounded; None when it cannot be converted."""
    if currency == base:
        return amount
    if rate is None or rate <= 0:
        return None
    return amount / rate


def summarise(lines: Iterable[Line], base_currency: str | None) -> Summary:
    lines = tuple(lines)
    blocks = {name: _total(name, [ln for ln in lines if ln.belongs(name)], base_currency) for name in BLOCKS}
    return Summary(**blocks, base_currency=base_currency, lines=lines)


def identity_holds(summary: Summary) -> bool:
    """paid + credited + unpaid == invoiced, for every currency."""
    def by(total: Total) -> dict[str, Decimal]:
        return {a.currency: a.amount for a in total.by_currency}

    invoiced, parts = by(summary.invoiced), [by(summary.paid), by(summary.credited), by(summary.unpaid)]
    currencies = set(invoiced).union(*parts)
    return all(invoiced.get(c, ZERO) == sum((p.get(c, ZERO) for p in parts), ZERO) for c in currencies)


def _total(block: str, lines: list[Line], base: str | None) -> Total:
    return Total(
        label=LABELS[block],
        count=sum(ln.counted(block) for ln in lines),
        by_currency=_by_currency(block, lines),
        converted=(_converted(block, lines, base),) if base else (),
    )


def _by_currency(block: str, lines: list[Line]) -> tuple[Amount, ...]:
    sums: dict[str, list] = defaultdict(lambda: [ZERO, 0])
    for ln in lines:
        acc = sums[ln.currency]
        acc[0] += ln.amount(block)
        acc[1] += ln.counted(block)
    return tuple(Amount(c, a, n) for c, (a, n) in sorted(sums.items()) if n or a)


def _converted(block: str, lines: list[Line], base: str) -> Converted:
    amount, count, missing = ZERO, 0, []
    for ln in lines:
        value = to_base(ln.amount(block), ln.currency, ln.rate, base)
        if value is None:
            missing.append(ln)
        else:
            amount += value
            count += ln.counted(block)
    return Converted(base, amount.quantize(CENT, ROUND_HALF_UP), count, _by_currency(block, missing))
