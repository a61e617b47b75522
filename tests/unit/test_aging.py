"""Ageing and payment behaviour on plain invoices, at their edges (views/aging.py)."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from freezegun import freeze_time
from hypothesis import given
from hypothesis import strategies as st

from views import aging, totals
from views.aging import Lateness, Settlement
from xero import timezones

TODAY = date(2026, 11, 25)
D = Decimal


@dataclass(frozen=True)
class Inv:
    total: Decimal
    amount_due: Decimal
    status: str = "AUTHORISED"
    due_date: date | None = TODAY
    fully_paid_on: date | None = None
    type: str = "ACCREC"
    currency_code: str = "NZD"
    currency_rate: Decimal | None = D(1)
    amount_paid: Decimal = D(0)
    amount_credited: Decimal = D(0)


def open_(due_days_ago: int | None, total="100", paid="0", credited="0", currency="NZD", rate="1") -> Inv:
    due = None if due_days_ago is None else TODAY - timedelta(days=due_days_ago)
    left = D(total) - D(paid) - D(credited)
    fx = D(rate) if rate is not None else None
    return Inv(D(total), left, "AUTHORISED", due, None, "ACCREC", currency, fx, D(paid), D(credited))


def settled(due: date, on: date, *, paid="100", credited="0") -> Inv:
    total = D(paid) + D(credited)
    return Inv(total, D(0), "PAID", due, on, amount_paid=D(paid), amount_credited=D(credited))


def days_ago(n: int) -> date:
    return TODAY - timedelta(days=n)


# --- days overdue and buckets ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("due_days_ago", "days", "bucket"),
    [
        (-10, 0, "current"),  # not yet due
        (0, 0, "current"),  # due today: not overdue
        (1, 1, "1-30"),  # due yesterday
        (30, 30, "1-30"),
        (31, 31, "31-60"),
        (60, 60, "31-60"),
        (61, 61, "61-90"),
        (90, 90, "61-90"),
        (91, 91, "90+"),
        (305, 305, "90+"),  # "305 days overdue", as Xero's report words it
        (None, 0, "current"),  # no due date: never overdue
    ],
)
def test_days_overdue_and_the_bucket_at_each_edge(due_days_ago, days, bucket):
    inv = open_(due_days_ago)
    assert aging.days_overdue(inv, TODAY) == days
    assert aging.bucket_of(days) == bucket
    (line,) = aging.lines_for([inv], TODAY)
    assert line.bucket == bucket


def test_an_invoice_that_is_not_unpaid_is_overdue_by_nothing():
    late_but_paid = settled(days_ago(40), days_ago(1))
    draft = Inv(D(100), D(100), "DRAFT", days_ago(40))
    cleared_by_credit = open_(40, credited="100")  # AUTHORISED, nothing due
    assert [aging.days_overdue(i, TODAY) for i in (late_but_paid, draft, cleared_by_credit)] == [0, 0, 0]


def test_the_due_ranges_select_exactly_their_bucket():
    for n in range(-5, 200):
        due = days_ago(n)
        chosen = []
        for name in aging.BUCKETS:
            earliest, latest = aging.due_range(name, TODAY)
            if name == "current":
                inside = due >= TODAY
            else:
                inside = (earliest is None or due >= earliest) and (latest is None or due <= latest)
            if inside:
                chosen.append(name)
        assert chosen == [aging.bucket_of(aging.days_past(due, TODAY))], n


@pytest.mark.parametrize(
    ("instant", "days"),
    [
        (datetime(2026, 11, 24, 10, 59, tzinfo=UTC), 0),  # 23:59 on the 24th in Auckland (NZDT): due today
        (datetime(2026, 11, 24, 11, 1, tzinfo=UTC), 1),  # 00:01 on the 25th in Auckland: a day overdue
    ],
)
def test_the_organisations_midnight_moves_an_invoice_into_1_30(instant, days):
    inv = Inv(D(100), D(100), due_date=date(2026, 11, 24))
    zone = timezones.zone_for("NEWZEALANDSTANDARDTIME")
    with freeze_time(instant):
        today = timezones.org_today(zone, datetime.now(UTC))
    assert aging.days_overdue(inv, today) == days
    assert [b.total.count for b in aging.aging(aging.lines_for([inv], today), "NZD")] == (
        [1, 0, 0, 0, 0] if days == 0 else [0, 1, 0, 0, 0]
    )


def test_the_buckets_add_up_to_unpaid_per_currency_and_convert_like_the_totals():
    invoices = [
        open_(0, "100.10"),
        open_(5, "200.00", paid="50.00"),  # part-paid and still open: its AmountDue ages
        open_(45, "99.99", currency="USD", rate="0.6"),
        open_(45, "10.00", currency="USD", rate=None),  # no usable rate: unconverted, never dropped
        open_(120, "1000.00", credited="400.00"),
        settled(days_ago(10), days_ago(2)),  # settled: in no bucket
    ]
    lines = aging.lines_for(invoices, TODAY)
    summary = totals.summarise(lines, "NZD")
    buckets = aging.aging(lines, "NZD")
    assert [b.name for b in buckets] == list(aging.BUCKETS)
    by_bucket = {b.name: {a.currency: (a.amount, a.count) for a in b.total.by_currency} for b in buckets}
    assert by_bucket == {
        "current": {"NZD": (D("100.10"), 1)},
        "1-30": {"NZD": (D("150.00"), 1)},
        "31-60": {"USD": (D("109.99"), 2)},
        "61-90": {},
        "90+": {"NZD": (D("600.00"), 1)},
    }
    for currency in ("NZD", "USD"):
        unpaid = next(a.amount for a in summary.unpaid.by_currency if a.currency == currency)
        assert sum((a.amount for b in buckets for a in b.total.by_currency if a.currency == currency), D(0)) == unpaid
    (converted,) = buckets[2].total.converted
    assert converted.currency == "NZD"
    assert converted.amount == D("166.65") and converted.count == 1  # 99.99 / 0.6
    assert [(a.currency, a.amount) for a in converted.unconverted] == [("USD", D("10.00"))]


@given(
    st.lists(
        st.tuples(st.integers(-40, 400), st.integers(1, 100_000), st.sampled_from(["NZD", "USD", "EUR"])),
        max_size=30,
    )
)
def test_the_buckets_always_partition_unpaid(specs):
    invoices = [open_(days, D(cents) / 100, currency=cur, rate="0.5") for days, cents, cur in specs]
    lines = aging.lines_for(invoices, TODAY)
    unpaid = {a.currency: a.amount for a in totals.summarise(lines, "NZD").unpaid.by_currency}
    added: dict[str, Decimal] = {}
    for bucket in aging.aging(lines, "NZD"):
        for a in bucket.total.by_currency:
            added[a.currency] = added.get(a.currency, D(0)) + a.amount
    assert added == unpaid
    assert sum(b.total.count for b in aging.aging(lines, "NZD")) == len(invoices)


def test_the_overdue_filter_takes_only_the_five_buckets():
    assert aging.parse_bucket(None) is None and aging.parse_bucket("") is None
    assert aging.parse_bucket("90+") == "90+"
    for wrong in ("90", "1-31", "CURRENT", "overdue"):
        with pytest.raises(aging.UnknownBucket, match="overdue must be one of current, 1-30"):
            aging.parse_bucket(wrong)


# --- behaviour -------------------------------------------------------------------------------


def behave(invoices, settlements=(), today=TODAY) -> aging.Behaviour:
    return aging.behaviour(aging.lateness_for(invoices, today), settlements, today)


def test_paid_early_on_the_day_and_late():
    b = behave(
        [
            settled(days_ago(10), days_ago(15)),  # 5 days early
            settled(days_ago(10), days_ago(10)),  # on the due date: on time
            settled(days_ago(30), days_ago(18)),  # 12 days late
        ]
    )
    assert (b.settled_count, b.open_overdue_count, b.counted, b.on_time_count) == (3, 0, 3, 2)
    assert b.median_days_late == D(0)
    assert b.on_time_share == D("0.6667")


def test_paid_by_a_credit_note_counts_as_settled_on_its_fully_paid_date():
    by_credit = settled(days_ago(20), days_ago(22), paid="0", credited="100")
    b = behave([by_credit])
    assert (b.settled_count, b.median_days_late, b.on_time_share) == (1, D(-2), D(1))


def test_part_paid_and_still_open_counts_by_its_days_overdue_so_far():
    b = behave(
        [
            open_(12, paid="40"),  # part-paid, 12 days overdue: late, and not on time
            open_(0, paid="40"),  # due today: not past due, not counted
            open_(-3),  # not yet due: not counted
            settled(days_ago(5), days_ago(6)),  # a day early
        ]
    )
    assert (b.settled_count, b.open_overdue_count, b.counted, b.on_time_count) == (1, 1, 2, 1)
    assert b.median_days_late == D("5.5")  # even count: the mean of -1 and 12
    assert b.on_time_share == D("0.5")


def test_a_customer_who_stopped_paying_does_not_look_punctual():
    early = [settled(days_ago(100 + n), days_ago(105 + n)) for n in range(3)]
    stopped = [open_(40 + n) for n in range(4)]
    b = behave(early + stopped)
    assert b.median_days_late == D(40)
    assert b.on_time_count == 3 and b.counted == 7


def test_the_year_counted_ends_today_and_holds_365_days():
    due = days_ago(800)
    invoices = [
        settled(due, days_ago(0)),
        settled(due, days_ago(364)),  # the first day of the year counted
        settled(due, days_ago(365)),  # the year before
        settled(due, days_ago(729)),  # the first day of the year before
        settled(due, days_ago(730)),  # too old: not counted at all
        settled(due, TODAY + timedelta(days=1)),  # a settlement dated tomorrow: not yet
    ]
    b = behave(invoices)
    assert b.since == days_ago(364)
    assert (b.settled_count, b.year_before_counted) == (2, 2)


def test_invoices_without_a_due_date_bills_and_drafts_are_not_counted():
    b = behave(
        [
            Inv(D(100), D(0), "PAID", None, days_ago(3)),
            Inv(D(100), D(100), "AUTHORISED", days_ago(10), type="ACCPAY"),
            Inv(D(100), D(100), "DRAFT", days_ago(10)),
            Inv(D(100), D(0), "VOIDED", days_ago(10), days_ago(1)),
        ]
    )
    assert (b.counted, b.median_days_late, b.on_time_share, b.trend) == (0, None, None, None)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, None),
        ({7: 1}, D(7)),
        ({1: 1, 4: 1}, D("2.5")),  # even: the mean of the two middle values
        ({-3: 1, 2: 1, 10: 1}, D(2)),  # odd: the middle one
        ({0: 2, 9: 2}, D("4.5")),
        ({0: 3, 9: 1}, D(0)),
        ({-5: 1, 5: 1}, D(0)),
        ({2: 1, 3: 2, 100: 1}, D(3)),
    ],
)
def test_median_of_odd_and_even_counts(values, expected):
    assert aging.median(values) == expected


@given(st.lists(st.integers(-60, 400), min_size=1, max_size=40))
def test_the_median_of_counts_is_the_median_of_the_values(values):
    ordered = sorted(values)
    n = len(ordered)
    expected = (D(ordered[(n - 1) // 2]) + D(ordered[n // 2])) / 2
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    assert aging.median(counts) == expected


def _years(now: list[int], before: list[int]) -> list[Lateness]:
    return [Lateness("year", True, d) for d in now] + [Lateness("year_before", True, d) for d in before]


@pytest.mark.parametrize(
    ("now", "before", "trend"),
    [
        ([5, 5, 5], [0, 0, 0], "later"),  # exactly the threshold
        ([4, 4, 4], [0, 0, 0], "steady"),  # a day short of it
        ([-5, -5, -5], [0, 0, 0], "earlier"),
        ([0, 0, 1], [5, 6, 5], "earlier"),
        ([30, 40, 50], [30, 40, 50], "steady"),
        ([30, 40], [0, 0, 0], None),  # too little history this year
        ([30, 40, 50], [0, 0], None),  # nor the year before
        ([30, 40, 50], [], None),
    ],
)
def test_trend_thresholds_and_too_little_history(now, before, trend):
    assert aging.behaviour(_years(now, before), (), TODAY).trend == trend


def test_open_invoices_count_in_the_current_year_for_the_trend():
    lateness = [Lateness("year", False, 60)] * 3 + [Lateness("year_before", True, 0)] * 3
    b = aging.behaviour(lateness, (), TODAY)
    assert (b.open_overdue_count, b.trend, b.on_time_share) == (3, "later", D(0))


def test_last_payment_is_the_latest_day_added_up_in_one_currency():
    assert aging.last_payment([], TODAY) is None
    found = aging.last_payment(
        [
            Settlement(TODAY + timedelta(days=1), "NZD", D("7.00")),  # dated tomorrow: not yet
            Settlement(days_ago(9), "NZD", D("500.00")),
            Settlement(days_ago(2), "NZD", D("120.00")),  # a payment and a credit note the same day
            Settlement(days_ago(2), "NZD", D("30.50")),
            Settlement(days_ago(2), "USD", D("99.00")),  # another currency that day: never added in
            Settlement(days_ago(4), "AUD", D("1.00")),
        ],
        TODAY,
    )
    assert found == aging.LastPayment(days_ago(2), D("150.50"), "NZD", 2)


def test_behaviour_carries_the_last_payment():
    b = behave([], [Settlement(days_ago(1), "GBP", D("10.00"))])
    assert b.last_payment == aging.LastPayment(days_ago(1), D("10.00"), "GBP", 1)
    assert b.counted == 0 and b.trend is None
