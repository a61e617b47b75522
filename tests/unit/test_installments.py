"""Installments: every settlement (payments, credit notes, prepayments, overpayments) numbered in date order."""

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


@dataclass(frozen=True)
class Alloc:
    kind: str
    document_id: str
    date: date | None
    amount: Decimal
    number: str | None = None


def test_installments_are_numbered_in_date_order_whatever_the_input_order():
    plan = installments(
        [
            Pay("c", date(2026, 3, 1), Decimal(30)),
            Pay("a", date(2026, 1, 1), Decimal(10), "first"),
            Pay("b", date(2026, 2, 1), Decimal(20)),
        ]
    )
    assert [(i.number, i.id, i.reference) for i in plan.items] == [
        (1, "a", "first"),
        (2, "b", None),
        (3, "c", None),
    ]


def test_a_credit_note_is_an_installment_beside_the_payment():
    # 700 in cash and a 300 credit note settle 1,000: two installments, not "700 in 1 payment"
    plan = installments(
        [Pay("p1", date(2026, 2, 1), Decimal(700), "Bank transfer")],
        [Alloc("credit_note", "cn1", date(2026, 1, 15), Decimal(300), "CN-0012")],
    )
    assert [(i.number, i.kind, i.kind_label, i.amount, i.reference) for i in plan.items] == [
        (1, "credit_note", "Credit note", Decimal(300), "CN-0012"),
        (2, "payment", "Payment", Decimal(700), "Bank transfer"),
    ]
    assert (plan.paid_count, plan.paid_amount, plan.credited_amount) == (1, Decimal(700), Decimal(300))


def test_an_invoice_settled_from_a_prepayment_has_its_installment():
    plan = installments([], [Alloc("prepayment", "pp1", date(2026, 1, 2), Decimal(50))])
    assert [(i.number, i.kind) for i in plan.items] == [(1, "prepayment")]
    assert plan.paid_count == 0 and plan.credited_amount == Decimal(50)


def test_every_kind_on_one_day_keeps_one_order():
    day = date(2026, 1, 1)
    allocs = [
        Alloc("overpayment", "o", day, Decimal(1)),
        Alloc("credit_note", "c", day, Decimal(1)),
        Alloc("prepayment", "p", day, Decimal(1)),
    ]
    one = installments([Pay("x", day, Decimal(1))], allocs)
    two = installments([Pay("x", day, Decimal(1))], list(reversed(allocs)))
    assert one == two
    assert [i.kind for i in one.items] == ["payment", "credit_note", "prepayment", "overpayment"]


def test_deleted_payments_are_left_out_and_take_no_number():
    plan = installments(
        [
            Pay("a", date(2026, 1, 1), Decimal(10)),
            Pay("x", date(2026, 1, 15), Decimal(99), status="DELETED"),
            Pay("b", date(2026, 2, 1), Decimal(20)),
        ]
    )
    assert [(i.number, i.id) for i in plan.items] == [(1, "a"), (2, "b")]
    assert plan.paid_count == 2 and plan.paid_amount == Decimal(30)


def test_same_day_payments_keep_a_stable_order():
    day = date(2026, 1, 1)
    one = installments([Pay("b", day, Decimal(1)), Pay("a", day, Decimal(2))])
    two = installments([Pay("a", day, Decimal(2)), Pay("b", day, Decimal(1))])
    assert one == two and [i.id for i in one.items] == ["a", "b"]


def test_no_payments_means_nothing_paid():
    plan = installments([Pay("x", date(2026, 1, 1), Decimal(5), status="DELETED")])
    assert plan.items == () and plan.paid_count == 0 and plan.paid_amount == Decimal(0)
    assert plan.credited_amount == Decimal(0)
