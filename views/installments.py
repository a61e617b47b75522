"""Pure: an invoice's installments, its live payments numbered 1..n in date order, and how many were paid.

Each Xero Payment against an invoice is one installment. A DELETED payment never happened
as far as the customer is concerned: it is left out and takes no number. Payments on the
same day keep a stable order by their PaymentID. Numbering needs no clock, so unlike the
other pure modules this one takes no `today`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol


class PaymentLike(Protocol):
    payment_id: str
    date: date | None
    amount: Decimal
    reference: str | None
    status: str


@dataclass(frozen=True)
class Installment:
    number: int
    payment_id: str
    date: date | None
    amount: Decimal
    reference: str | None


@dataclass(frozen=True)
class Installments:
    items: tuple[Installment, ...]

    @property
    def paid_count(self) -> int:
        return len(self.items)

    @property
    def paid_amount(self) -> Decimal:
        return sum((i.amount for i in self.items), Decimal(0))


def is_live(payment: PaymentLike) -> bool:
    return payment.status != "DELETED"


def installments(payments: Iterable[PaymentLike]) -> Installments:
    live = sorted((p for p in payments if is_live(p)), key=lambda p: (p.date or date.min, p.payment_id))
    return Installments(
        tuple(
            Installment(n, p.payment_id, p.date, p.amount, p.reference) for n, p in enumerate(live, start=1)
        )
    )
