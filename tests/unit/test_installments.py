"""Installments: live payments numbered in date order, deleted ones left out."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from views.installments import installments


@dataclass(frozen=True)
class Pay:
    payment_id: str
    date: date | None
    amount: Decimal
    reference: str | None = None
    status: str = "AUTHORISED"


def test_installments_are_numbered_in_date_order_whatever_the_input_order():
    plan = installments(
        [
            Pay("c", date(2026, 3, 1), Decimal(30)),
            Pay("a", date(2026, 1, 1), Decimal(10), "first"),
            Pay("b", date(2026, 2, 1), Decimal(20)),
        ]
    )
    assert [(i.number, i.payment_id, i.reference) for i in plan.items] == [
        (1, "a", "first"),
        (2, "b", None),
        (3, "c", None),
    ]


def test_deleted_payments_are_left_out_and_take_no_number():
    plan = installments(
        [
            Pay("a", date(2026, 1, 1), Decimal(10)),
            Pay("x", date(2026, 1, 15), Decimal(99), status="DELETED"),
            Pay("b", date(2026, 2, 1), Decimal(20)),
        ]
    )
    assert [(i.number, i.payment_id) for i in plan.items] == [(1, "a"), (2, "b")]
    assert plan.paid_count == 2 and plan.paid_amount == Decimal(30)


def test_same_day_payments_keep_a_stable_order():
    day = date(2026, 1, 1)
    one = installments([Pay("b", day, Decimal(1)), Pay("a", day, Decimal(2))])
    two = installments([Pay("a", day, Decimal(2)), Pay("b", day, Decimal(1))])
    assert one == two and [i.payment_id for i in one.items] == ["a", "b"]


def test_no_payments_means_nothing_paid():
    plan = installments([Pay("x", date(2026, 1, 1), Decimal(5), status="DELETED")])
    assert plan.items == () and plan.paid_count == 0 and plan.paid_amount == Decimal(0)
