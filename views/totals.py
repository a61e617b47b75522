"""Pure: paid and unpaid totals per invoice type and currency, with counts, and a converted base total.

What is summed: a Paid invoice counts its Total; an Unpaid one (open or overdue) its
balance, AmountDue. Totals are keyed by (type, currency): sales invoices and bills are
never added together, nor are two currencies. The one cross-currency figure is the
base-currency total, labelled as converted at each invoice's own CurrencyRate (Xero's
rate is units of invoice currency per 1 base unit, so base = amount / rate), computed
exactly and rounded to cents once, at the end. An invoice in a foreign currency without
a usable rate is never silently dropped: it is reported as unconverted.

The SQL (views/queries.py) groups invoices into `Line`s in one GROUP BY; `lines_for` is
the same classification on plain invoices, with `today` passed in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from views.saved_views import InvoiceLike, bucket

CENT = Decimal("0.01")
ZERO = Decimal(0)


class InvoiceAmounts(InvoiceLike, Protocol):
    type: str
    currency_code: str
    currency_rate: Decimal | None


@dataclass(frozen=True)
class Line:
    """Invoices of one bucket, type, currency and rate, added up."""

    bucket: str  # paid | open | overdue
    type: str
    currency: str
    rate: Decimal | None
    amount: Decimal
    count: int = 1


@dataclass(frozen=True)
class Amount:
    type: str
    currency: str
    amount: Decimal
    count: int


@dataclass(frozen=True)
class Converted:
    """One type's invoices in the base currency, each converted at its own rate."""

    type: str
    currency: str
    amount: Decimal
    count: int
    unconverted: tuple[Amount, ...] = ()


@dataclass(frozen=True)
class Total:
    count: int
    by_currency: tuple[Amount, ...]
    converted: tuple[Converted, ...]


@dataclass(frozen=True)
class Summary:
    paid: Total
    unpaid: Total
    overdue: Total  # the part of unpaid that is past due
    base_currency: str | None = None
    lines: tuple[Line, ...] = field(default=(), repr=False)


def lines_for(invoices: Iterable[InvoiceAmounts], today: date) -> list[Line]:
    """One line per invoice that counts in a total (what the SQL's GROUP BY adds up)."""
    lines = []
    for inv in invoices:
        b = bucket(inv, today)
        if b is not None:
            amount = inv.total if b == "paid" else inv.amount_due
            lines.append(Line(b, inv.type, inv.currency_code, inv.currency_rate, amount))
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
    return Summary(
        paid=_total([ln for ln in lines if ln.bucket == "paid"], base_currency),
        unpaid=_total([ln for ln in lines if ln.bucket in ("open", "overdue")], base_currency),
        overdue=_total([ln for ln in lines if ln.bucket == "overdue"], base_currency),
        base_currency=base_currency,
        lines=lines,
    )


def _total(lines: list[Line], base: str | None) -> Total:
    return Total(
        count=sum(ln.count for ln in lines),
        by_currency=_by_currency(lines),
        converted=_converted(lines, base) if base else (),
    )


def _by_currency(lines: list[Line]) -> tuple[Amount, ...]:
    sums: dict[tuple[str, str], list] = defaultdict(lambda: [ZERO, 0])
    for ln in lines:
        acc = sums[(ln.type, ln.currency)]
        acc[0] += ln.amount
        acc[1] += ln.count
    return tuple(Amount(t, c, a, n) for (t, c), (a, n) in sorted(sums.items(), key=_type_first))


def _converted(lines: list[Line], base: str) -> tuple[Converted, ...]:
    out = []
    for kind in sorted({ln.type for ln in lines}, key=_type_order):
        amount, count, missing = ZERO, 0, []
        for ln in (ln for ln in lines if ln.type == kind):
            value = to_base(ln.amount, ln.currency, ln.rate, base)
            if value is None:
                missing.append(ln)
            else:
                amount += value
                count += ln.count
        out.append(Converted(kind, base, amount.quantize(CENT, ROUND_HALF_UP), count, _by_currency(missing)))
    return tuple(out)


def _type_order(kind: str) -> tuple[int, str]:
    return (0 if kind == "ACCREC" else 1 if kind == "ACCPAY" else 2, kind)


def _type_first(item) -> tuple:
    (kind, currency), _ = item
    return (_type_order(kind), currency)
