"""The saved views and status words at their edges, on plain invoices with `today` passed in."""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pytest

from views.saved_views import (
    DEFAULT_VIEW,
    STATUS_WORDS,
    VIEWS,
    UnknownView,
    bucket,
    in_view,
    parse_view,
    status_word,
    type_label,
)

TODAY = date(2026, 11, 25)
YESTERDAY, TOMORROW = TODAY - timedelta(days=1), TODAY + timedelta(days=1)


@dataclass(frozen=True)
class Inv:
    status: str = "AUTHORISED"
    total: Decimal = Decimal("100.00")
    amount_due: Decimal = Decimal("100.00")
    due_date: date | None = TOMORROW


def views_of(inv: Inv, pinned: bool = False) -> set[str]:
    return {v for v in VIEWS if in_view(v, inv, TODAY, pinned=pinned)}


# (invoice, the views it is in, its status word)
EDGES = {
    "due yesterday": (Inv(due_date=YESTERDAY), {"unpaid", "overdue", "all"}, "Overdue"),
    "due today": (Inv(due_date=TODAY), {"unpaid", "open", "all"}, "Open"),
    "due tomorrow": (Inv(due_date=TOMORROW), {"unpaid", "open", "all"}, "Open"),
    "no due date": (Inv(due_date=None), {"unpaid", "open", "all"}, "Open"),
    "part paid, not yet due": (Inv(amount_due=Decimal("60.00")), {"unpaid", "open", "all"}, "Partially paid"),
    "part paid, past due": (
        Inv(amount_due=Decimal("60.00"), due_date=YESTERDAY),
        {"unpaid", "overdue", "all"},
        "Overdue",
    ),
    "part credited": (Inv(amount_due=Decimal("70.00")), {"unpaid", "open", "all"}, "Partially paid"),
    "balance zero but not PAID": (Inv(amount_due=Decimal("0.00")), {"all"}, "Paid"),
    "paid": (Inv(status="PAID", amount_due=Decimal(0)), {"paid", "all"}, "Paid"),
    "paid by credit note": (
        Inv(status="PAID", amount_due=Decimal(0), due_date=YESTERDAY),
        {"paid", "all"},
        "Paid",
    ),
    "PAID with a balance left": (Inv(status="PAID", amount_due=Decimal("1.00")), {"all"}, "Paid"),
    "draft, past due": (Inv(status="DRAFT", due_date=YESTERDAY), {"all"}, "Draft"),
    "submitted for approval": (Inv(status="SUBMITTED"), {"all"}, "Draft"),
    "voided": (Inv(status="VOIDED", amount_due=Decimal(0)), {"all"}, "Voided"),
    "deleted": (Inv(status="DELETED"), set(), "Voided"),
}


@pytest.mark.parametrize("case", EDGES)
def test_each_edge_is_in_exactly_its_views(case):
    inv, views, _ = EDGES[case]
    assert views_of(inv) == views


@pytest.mark.parametrize("case", EDGES)
def test_each_edge_has_its_status_word(case):
    inv, _, word = EDGES[case]
    assert status_word(inv, TODAY) == word
    assert word in STATUS_WORDS


def test_overdue_excludes_invoice_due_today_and_open_includes_it():
    inv = Inv(due_date=TODAY)
    assert not in_view("overdue", inv, TODAY) and in_view("open", inv, TODAY)
    assert in_view("overdue", inv, TOMORROW)  # the next day it is overdue


def test_open_and_overdue_split_unpaid_exactly():
    for inv, _, _ in EDGES.values():
        for today in (YESTERDAY, TODAY, TOMORROW):
            is_open, is_overdue = in_view("open", inv, today), in_view("overdue", inv, today)
            assert not (is_open and is_overdue)
            assert (is_open or is_overdue) == in_view("unpaid", inv, today)


def test_drafts_voided_and_deleted_are_in_no_saved_view_even_when_pinned():
    for status in ("DRAFT", "SUBMITTED", "VOIDED", "DELETED"):
        assert views_of(Inv(status=status), pinned=True) <= {"all"}


def test_pinned_view_holds_pinned_paid_and_unpaid_invoices_only():
    assert in_view("pinned", Inv(), TODAY, pinned=True)
    assert in_view("pinned", Inv(status="PAID", amount_due=Decimal(0)), TODAY, pinned=True)
    assert not in_view("pinned", Inv(), TODAY, pinned=False)


def test_default_view_is_the_unpaid_set():
    assert parse_view(None) == parse_view("") == DEFAULT_VIEW == "unpaid"


def test_unknown_view_is_refused():
    with pytest.raises(UnknownView):
        parse_view("Paid")  # views are lower-case words


def test_buckets_follow_the_views():
    assert bucket(Inv(status="PAID", amount_due=Decimal(0)), TODAY) == "paid"
    assert bucket(Inv(due_date=YESTERDAY), TODAY) == "overdue"
    assert bucket(Inv(due_date=TODAY), TODAY) == "open"
    assert bucket(Inv(amount_due=Decimal(0)), TODAY) is None
    assert bucket(Inv(status="DRAFT"), TODAY) is None


def test_type_labels_name_sales_invoices_and_bills():
    assert type_label("ACCREC") == "Sales invoice"
    assert type_label("ACCPAY") == "Bill"
    assert type_label("ACCRECCREDIT") == "ACCRECCREDIT"
