"""Ageing and payment behaviour in SQL (views/queries.py) agree with the pure rules (views/aging.py),
on SQLite and PostgreSQL, and read only the record's own invoices from their indexes."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from store import records
from store.db import transaction
from store.models import Invoice
from views import aging, queries, totals
from views.queries import Filters

from .mirror_rows import NOW, allocation, contact, invoice, payment, workspace
from .query_plans import plans

TODAY = date(2026, 11, 25)
T = "tenant-a"
D = Decimal


def ago(n: int) -> date:
    return TODAY - timedelta(days=n)


def paid(invoice_id, due, on, *, contact_id="x1", total="100.00", credited="0", currency="NZD", type="ACCREC"):
    row = invoice(
        T, invoice_id, contact_id, due=due, status="PAID", total=total, credited=credited,
        paid=str(D(total) - D(credited)), currency=currency, type=type, on=due - timedelta(days=30),
    )
    row.fully_paid_on = on
    return row


# Every edge of the buckets and of the behaviour, for one customer (x1), beside another's (x2).
def rows() -> list:
    """Fresh ORM rows each time (a row once added belongs to that test's database)."""
    return [
        invoice(T, "due-today", "x1", due=ago(0), total="10.00"),
        invoice(T, "due-yesterday", "x1", due=ago(1), total="20.00"),
        invoice(T, "due-30", "x1", due=ago(30), total="30.00", paid="5.00"),
        invoice(T, "due-31", "x1", due=ago(31), total="31.00", credited="1.00"),
        invoice(T, "due-60", "x1", due=ago(60), total="60.00", currency="USD", rate="0.6"),
        invoice(T, "due-61", "x1", due=ago(61), total="61.00"),
        invoice(T, "due-90", "x1", due=ago(90), total="90.00"),
        invoice(T, "due-91", "x1", due=ago(91), total="91.00", currency="USD", rate=None),
        invoice(T, "due-400", "x1", due=ago(400), total="400.00"),
        invoice(T, "not-yet-due", "x1", due=ago(-14), total="14.00"),
        invoice(T, "no-due-date", "x1", due=None, total="7.00"),
        invoice(T, "cleared-not-paid", "x1", due=ago(50), credited="100.00"),
        invoice(T, "draft", "x1", due=ago(50), status="DRAFT"),
        invoice(T, "bill", "x1", due=ago(50), type="ACCPAY"),
        paid("paid-early", ago(20), ago(25)),
        paid("paid-on-time", ago(20), ago(20)),
        paid("paid-late", ago(40), ago(28)),
        paid("paid-by-credit", ago(10), ago(3), credited="100.00"),
        paid("paid-364", ago(370), ago(364)),
        paid("paid-365", ago(380), ago(365)),
        paid("paid-729", ago(729), ago(729)),
        paid("paid-730", ago(700), ago(730)),
        paid("paid-tomorrow", ago(5), ago(-1)),
        paid("paid-bill", ago(20), ago(2), type="ACCPAY"),
        invoice(T, "other-customer", "x2", due=ago(45), total="999.00"),
        paid("other-paid", ago(20), ago(1), contact_id="x2"),
    ]


def settlements() -> list:
    return [
        payment(T, "p-early", "paid-early", "100.00", ago(25)),
        payment(T, "p-30", "due-30", "5.00", ago(8)),
        payment(T, "p-late-1", "paid-late", "60.00", ago(35)),
        payment(T, "p-late-2", "paid-late", "40.00", ago(28)),
        payment(T, "p-deleted", "due-yesterday", "20.00", ago(1), status="DELETED"),
        payment(T, "p-on-time", "paid-on-time", "100.00", ago(20)),
        payment(T, "p-bill", "paid-bill", "100.00", ago(2)),
        payment(T, "p-other", "other-paid", "100.00", ago(1)),
        payment(T, "p-364", "paid-364", "100.00", ago(364)),
        payment(T, "p-365", "paid-365", "100.00", ago(365)),
        payment(T, "p-729", "paid-729", "100.00", ago(729)),
        payment(T, "p-730", "paid-730", "100.00", ago(730)),
        payment(T, "p-tomorrow", "paid-tomorrow", "100.00", ago(-1)),  # dated tomorrow: not yet
        allocation(T, "paid-by-credit", "credit_note", "cn-1", "100.00", ago(3), number="CN-0001"),
        allocation(T, "due-31", "overpayment", "op-1", "1.00", ago(3)),
    ]


@pytest.fixture
def ws(sessions):
    with transaction(sessions) as s:
        return workspace(s, "Acme", T)


@pytest.fixture
def scope(sessions, ws) -> records.Scope:
    with transaction(sessions) as s:
        s.add_all([contact(T, "x1", "ann@example.com"), contact(T, "x2", "bob@example.com")])
        s.add_all(rows())
        s.add_all(settlements())
        records.upsert(s, ws.id, "contact", "ann", records.RecordInput(email="ann@example.com"), T, NOW)
    with sessions() as s:
        return records.resolve(s, records.find(s, ws.id, "contact", "ann"), T).scope


MINE = [r for r in rows() if r.contact_id == "x1"]


DAYS = [TODAY - timedelta(days=1), TODAY, TODAY + timedelta(days=1), TODAY + timedelta(days=30)]


@pytest.mark.parametrize("today", DAYS)
def test_the_buckets_in_sql_equal_the_pure_buckets(sessions, scope, today):
    with sessions() as s:
        from_sql = aging.aging(queries.summary_lines(s, scope, today), "NZD")
    assert from_sql == aging.aging(aging.lines_for(MINE, today), "NZD")
    unpaid = totals.summarise(aging.lines_for(MINE, today), "NZD").unpaid
    for a in unpaid.by_currency:
        assert sum(
            (x.amount for b in from_sql for x in b.total.by_currency if x.currency == a.currency), D(0)
        ) == a.amount


def test_the_buckets_hold_the_edges_where_they_belong(sessions, scope):
    with sessions() as s:
        buckets = aging.aging(queries.summary_lines(s, scope, TODAY), "NZD")
    held = {b.name: {a.currency: (a.amount, a.count) for a in b.total.by_currency} for b in buckets}
    assert held == {
        "current": {"NZD": (D("31.00"), 3)},  # due today, not yet due, no due date
        "1-30": {"NZD": (D("45.00"), 2)},  # due yesterday (its deleted payment never counted), 30 days
        "31-60": {"NZD": (D("30.00"), 1), "USD": (D("60.00"), 1)},
        "61-90": {"NZD": (D("151.00"), 2)},
        "90+": {"NZD": (D("400.00"), 1), "USD": (D("91.00"), 1)},
    }
    assert buckets[2].total.converted[0].amount == D("130.00")  # 30 + 60 / 0.6
    assert [(a.currency, a.amount) for a in buckets[4].total.converted[0].unconverted] == [("USD", D("91.00"))]


@pytest.mark.parametrize("bucket", aging.BUCKETS)
@pytest.mark.parametrize("today", [TODAY, TODAY + timedelta(days=1)])
def test_the_overdue_filter_lists_exactly_its_bucket(sessions, scope, bucket, today):
    with sessions() as s:
        page = queries.list_invoices(s, scope, Filters(overdue=bucket), today, 1, 200)
    expected = {
        r.invoice_id
        for r in MINE
        if r.type == "ACCREC" and r.status == "AUTHORISED" and r.amount_due > 0
        and aging.bucket_of(aging.days_overdue(r, today)) == bucket
    }
    assert {r.invoice_id for r in page.rows} == expected and page.total == len(expected)
    assert all(aging.bucket_of(aging.days_overdue(r, today)) == bucket for r in page.rows)


def test_the_overdue_filter_narrows_the_view_it_is_given(sessions, scope):
    with sessions() as s:
        in_paid = queries.list_invoices(s, scope, Filters(view="paid", overdue="1-30"), TODAY, 1, 50)
        bills = queries.list_invoices(s, scope, Filters(type="bill", overdue="31-60"), TODAY, 1, 50)
    assert in_paid.rows == [] and [r.invoice_id for r in bills.rows] == ["bill"]


@pytest.mark.parametrize("today", [*DAYS, TODAY + timedelta(days=365)])
def test_behaviour_in_sql_equals_the_pure_behaviour(sessions, scope, today):
    with sessions() as s:
        lateness = queries.behaviour_lateness(s, scope, today)
        found = queries.last_settlements(s, scope, today)
    mine = {r.invoice_id for r in MINE}
    all_settlements = [
        aging.Settlement(x.date, next(r.currency_code for r in MINE if r.invoice_id == x.invoice_id), x.amount)
        for x in settlements()
        if x.invoice_id in mine
        and getattr(x, "status", "AUTHORISED") != "DELETED"
        and next(r.type for r in MINE if r.invoice_id == x.invoice_id) == "ACCREC"
    ]
    expected = aging.behaviour(aging.lateness_for(MINE, today), all_settlements, today)
    assert aging.behaviour(lateness, found, today) == expected


def test_behaviour_of_the_grid(sessions, scope):
    with sessions() as s:
        lateness, settled = queries.behaviour_lateness(s, scope, TODAY), queries.last_settlements(s, scope, TODAY)
    b = aging.behaviour(lateness, settled, TODAY)
    # settled this year: -5, 0, +12, +7 (by credit), +6 (paid-364); open past due: 1, 30, 31, 60, 61, 90, 91, 400
    assert (b.settled_count, b.open_overdue_count, b.counted, b.on_time_count) == (5, 8, 13, 2)
    assert b.median_days_late == D(30)
    assert b.on_time_share == D("0.1538")
    assert b.year_before_counted == 2  # paid-365 (+15), paid-729 (0)
    assert b.trend is None  # two invoices the year before: too little history
    # the latest settlement of a sales invoice: a credit note and an overpayment 3 days ago
    # (the bill's payment 2 days ago and the deleted payment yesterday do not count)
    assert b.last_payment == aging.LastPayment(ago(3), D("101.00"), "NZD", 2)


def test_a_record_without_invoices_has_no_behaviour(sessions, ws):
    empty = records.Scope(T, ws.id, (), (), frozenset())
    nobody = records.Scope(T, ws.id, ("nobody",), (), frozenset())
    with sessions() as s:
        assert queries.behaviour_lateness(s, empty, TODAY) == [] == queries.last_settlements(s, empty, TODAY)
        assert queries.behaviour_lateness(s, nobody, TODAY) == [] == queries.last_settlements(s, nobody, TODAY)


def test_last_payment_is_found_on_an_old_invoice_paid_in_part_today(sessions, scope):
    with transaction(sessions) as s:
        s.add(payment(T, "p-400", "due-400", "1.50", TODAY))
        row = s.get(Invoice, (T, "due-400"))
        row.amount_paid, row.amount_due = D("1.50"), D("398.50")
    with sessions() as s:
        found = aging.last_payment(queries.last_settlements(s, scope, TODAY), TODAY)
    assert found == aging.LastPayment(TODAY, D("1.50"), "NZD", 1)


def test_an_explicitly_linked_invoice_counts_for_a_deal(sessions, ws, scope):
    deal = records.Scope(T, ws.id, (), ("paid-late", "due-91"), frozenset())
    with sessions() as s:
        lateness = queries.behaviour_lateness(s, deal, TODAY)
        lines = queries.summary_lines(s, deal, TODAY)
    assert sorted((x.window, x.settled, x.days_late) for x in lateness) == [("year", False, 91), ("year", True, 12)]
    assert [b.total.count for b in aging.aging(lines, "NZD")] == [0, 0, 0, 0, 1]


def _every_plan(engine, run) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN of every statement `run` executes."""
    return plans(engine, run, lambda stmt: stmt.lstrip().startswith(("SELECT", "WITH")))


def test_behaviour_and_last_payment_read_indexes_alone(engine, sessions, scope):
    if engine.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")

    def run():
        with sessions() as s:
            queries.behaviour_lateness(s, scope, TODAY)

    [plan] = _every_plan(engine, run)
    searches = [line.strip() for line in plan.splitlines() if "SEARCH" in line or "SCAN" in line]
    assert any("COVERING INDEX ix_invoices_contact_paid" in line for line in searches), plan
    assert any("COVERING INDEX ix_invoices_contact_status" in line for line in searches), plan
    assert all("COVERING INDEX" in line for line in searches if "invoices" in line), plan

    def last():
        with sessions() as s:
            assert queries.last_settlements(s, scope, TODAY)

    latest, candidates, day = _every_plan(engine, last)  # the day; its invoices' latest; that day's
    # the day is the latest last_settled_on, read from ix_invoices_contact_settled alone: none
    # of the customer's other invoices is read, whatever their number
    assert "COVERING INDEX ix_invoices_contact_settled" in latest, latest
    assert "SCAN invoices" not in latest, latest
    # the invoices settled that day (or after today) are found in that index too, and each
    # one's settlements are probes of their key, never a scan of the tables
    assert "ix_invoices_contact_settled" in candidates and "SCAN invoices" not in candidates, candidates
    for plan in (candidates, day):
        assert "ix_payments_invoice" in plan and "sqlite_autoindex_allocations_1" in plan, plan
        assert "SCAN payments" not in plan and "SCAN allocations" not in plan, plan


def test_invoice_rows_carry_their_days_overdue(sessions, scope):
    with sessions() as s:
        page = queries.list_invoices(s, scope, Filters(view="all", type="all"), TODAY, 1, 200)
    days = {r.invoice_id: aging.days_overdue(r, TODAY) for r in page.rows}
    assert days["due-91"] == 91 and days["due-today"] == 0 and days["paid-late"] == 0 and days["draft"] == 0


def test_the_usual_last_payment_reads_by_index_only(engine, sessions, ws, scope):
    """Nothing of x2's was settled after today: its day, then that day's settlements, each
    table searched by an index, never scanned (nor read whole for the tenant)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    other = records.Scope(T, ws.id, ("x2",), (), frozenset())
    found = []

    def last():
        with sessions() as s:
            found.extend(queries.last_settlements(s, other, TODAY))

    day, settled = _every_plan(engine, last)
    assert aging.last_payment(found, TODAY) == aging.LastPayment(ago(1), D("100.00"), "NZD", 1)
    assert "COVERING INDEX ix_invoices_contact_settled" in day, day
    assert "ix_invoices_contact_settled" in settled and "ix_payments_invoice" in settled, settled
    assert "sqlite_autoindex_allocations_1" in settled, settled
    for plan in (day, settled):
        assert "BLOOM FILTER" not in plan and "SCAN invoices" not in plan, plan
        assert "SCAN payments" not in plan and "SCAN allocations" not in plan, plan
