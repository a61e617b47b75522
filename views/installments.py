"""Pure: an invoice's installments, every settlement numbered 1..n in date order.

DESIGN.md "Money as Xero keeps it": an invoice is settled by payments and by allocations of
credit notes, prepayments and overpayments. Each is one installment `{number, kind, date,
amount, reference}`. A DELETED payment never happened as far as the customer is concerned:
it is left out and takes no number (a removed allocation is already gone from the invoice's
lists). Settlements of one day keep a stable order: payments first, then by kind and id.
`paid_count` and `paid_amount` count payments only; `credited_amount` the allocations.
Numbering needs no clock, so unlike the other pure modules this one takes no `today`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

KINDS = ("payment", "credit_note", "prepayment", "overpayment")
KIND_LABELS = {
    "payment": "Payment",
    "credit_note": "Credit note",
    "prepayment": "Prepayment",
    "overpayment": "Overpayment",
}


class PaymentLike(Protocol):  # read-only, so frozen rows qualify
    @property
    def payment_id(self) -> str: ...
    @property
    def date(self) -> dt.date | None: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def reference(self) -> str | None: ...
    @property
    def status(self) -> str: ...


class AllocationLike(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def document_id(self) -> str: ...
    @property
    def date(self) -> dt.date | None: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def number(self) -> str | None: ...


@dataclass(frozen=True)
class Installment:
    number: int
    kind: str
    id: str  # PaymentID, or the credit note's, prepayment's or overpayment's id
    date: date | None
    amount: Decimal
    reference: str | None

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]


@dataclass(frozen=True)
class Installments:
    items: tuple[Installment, ...]

    @property
    def paid_count(self) -> int:
        return sum(1 for i in self.items if i.kind == "payment")

    @property
    def paid_amount(self) -> Decimal:
        return sum((i.amount for i in self.items if i.kind == "payment"), Decimal(0))

    @property
    def credited_amount(self) -> Decimal:
        return sum((i.amount for i in self.items if i.kind != "payment"), Decimal(0))


def is_live(payment: PaymentLike) -> bool:
    return payment.status != "DELETED"


def installments(payments: Iterable[PaymentLike], allocations: Iterable[AllocationLike] = ()) -> Installments:
    settled = [("payment", p.payment_id, p.date, p.amount, p.reference) for p in payments if is_live(p)]
    settled += [(a.kind, a.document_id, a.date, a.amount, a.number) for a in allocations]
    settled.sort(key=lambda s: (s[2] or date.min, KINDS.index(s[0]), s[1]))
    return Installments(tuple(Installment(n, *s) for n, s in enumerate(settled, start=1)))
