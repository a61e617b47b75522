"""The read side's SQL on a real database: views agree with the pure rules, links, search,
dates, paging, order, totals for contacts, accounts and deals, and no N+1."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, text

from store import records
from store.db import transaction
from store.models import SyncState
from store.records import RecordInput
from views import queries, saved_views, totals
from views.queries import Filters

from .mirror_rows import NOW, contact, invoice, payment, workspace
from .query_plans import plans

TODAY = date(2026, 11, 25)
T = "tenant-a"


def put(s, ws, kind, external_id, **fields) -> records.Record:
    for name in ("xero_contact_ids", "invoice_ids"):
        if name in fields:
            fields[name] = tuple(fields[name])
    return records.upsert(s, ws.id, kind, external_id, RecordInput(**fields), T, NOW)


def scope_of(sessions, ws, kind, external_id) -> records.Scope:
    with sessions() as s:
        return records.resolve(s, records.find(s, ws.id, kind, external_id), T).scope


def listed(sessions, scope, view="all", today=TODAY, type="all", **filters) -> list[str]:
    with sessions() as s:
        page = queries.list_invoices(s, scope, Filters(view=view, type=type, **filters), today, 1, 200)
    return [r.invoice_id for r in page.rows]


@pytest.fixture
def ws(sessions):
    with transaction(sessions) as s:
        return workspace(s, "Acme", T)


# --- the views in SQL agree with the pure rules ------------------------------------------

Y, TD, TM = TODAY - timedelta(days=1), TODAY, TODAY + timedelta(days=1)
GRID = [
    invoice(T, "due-yesterday", "x1", due=Y),
    invoice(T, "due-today", "x1", due=TD),
    invoice(T, "due-tomorrow", "x1", due=TM),
    invoice(T, "no-due-date", "x1", due=None),
    invoice(T, "part-paid", "x1", paid="40", due=Y),
    invoice(T, "credited", "x1", credited="30", due=TM),
    invoice(T, "zero-not-paid", "x1", credited="100", due=TM),
    invoice(T, "paid", "x1", status="PAID", paid="100"),
    invoice(T, "paid-by-credit", "x1", status="PAID", credited="100"),
    invoice(T, "paid-with-balance", "x1", status="PAID", paid="99"),
    invoice(T, "draft", "x1", status="DRAFT", due=Y),
    invoice(T, "submitted", "x1", status="SUBMITTED"),
    invoice(T, "voided", "x1", status="VOIDED"),
    invoice(T, "deleted", "x1", status="DELETED"),
    invoice(T, "bill-usd", "x1", type="ACCPAY", currency="USD", rate="0.6", due=Y),
]
PINNED = {"due-today", "draft", "paid"}


@pytest.fixture
def grid(sessions, ws):
    with transaction(sessions) as s:
        s.add(contact(T, "x1", "ann@example.com"))
        s.add_all(
            invoice(
                T,
                g.invoice_id,
                "x1",
                on=g.date,
                due=g.due_date,
                status=g.status,
                total=str(g.total),
                due_amount=str(g.amount_due),
                paid=str(g.amount_paid),
                credited=str(g.amount_credited),
                currency=g.currency_code,
                type=g.type,
                rate=str(g.currency_rate),
            )
            for g in GRID
        )
        record = put(s, ws, "contact", "c1", email="ann@example.com")
        for invoice_id in PINNED:
            records.pin(s, record, T, invoice_id, NOW, anywhere=True)
    return scope_of(sessions, ws, "contact", "c1")


@pytest.mark.parametrize("today", [Y, TD, TM])
@pytest.mark.parametrize("view", saved_views.VIEWS)
def test_sql_views_select_what_the_pure_rules_select(sessions, grid, view, today):
    expected = {
        g.invoice_id for g in GRID if saved_views.in_view(view, g, today, pinned=g.invoice_id in PINNED)
    }
    assert set(listed(sessions, grid, view, today)) == expected


@pytest.mark.parametrize("today", [Y, TD, TM])
def test_sql_totals_equal_the_pure_totals(sessions, grid, today):
    with sessions() as s:
        from_sql = totals.summarise(queries.summary_lines(s, grid, today), "NZD")
    from_rules = totals.summarise(totals.lines_for(GRID, today), "NZD")
    assert (from_sql.paid, from_sql.unpaid, from_sql.overdue) == (
        from_rules.paid,
        from_rules.unpaid,
        from_rules.overdue,
    )


@pytest.mark.parametrize("today", [Y, TD, TM])
def test_the_summarys_view_counts_from_its_parts_equal_a_count_of_each_view(sessions, grid, today):
    with sessions() as s:
        _, parts = queries.summary_parts(s, grid, today)
        from_parts = queries.view_counts_of(s, grid, parts)
        counted = queries.view_counts(s, grid, Filters(), today)
    assert from_parts == counted
    assert from_parts["all"] > from_parts["unpaid"] + from_parts["paid"]  # drafts, voided: the grid has them
    assert from_parts["pinned"] > 0


def test_rows_carry_pinned_and_live_payment_count(sessions, grid):
    with transaction(sessions) as s:
        s.add_all(
            [
                payment(T, "p1", "part-paid", "20", date(2026, 11, 2)),
                payment(T, "p2", "part-paid", "20", date(2026, 11, 9)),
                payment(T, "p3", "part-paid", "5", date(2026, 11, 10), status="DELETED"),
            ]
        )
    with sessions() as s:
        rows = {
            r.invoice_id: r for r in queries.list_invoices(s, grid, Filters(view="all"), TODAY, 1, 200).rows
        }
    assert rows["part-paid"].payment_count == 2 and rows["due-today"].payment_count == 0
    assert {i for i, r in rows.items() if r.pinned} == PINNED - {"deleted"}


# --- links --------------------------------------------------------------------------------


def test_email_matches_xero_contacts_case_insensitively_customers_only(sessions, ws):
    with transaction(sessions) as s:
        s.add_all(
            [
                contact(T, "x1", "Ann@Example.COM"),
                contact(T, "x2", "ann@example.com", customer=False),
                contact(T, "x3", "bob@example.com"),
                contact("other-tenant", "x9", "ann@example.com"),
                invoice(T, "i1", "x1"),
                invoice(T, "i2", "x2"),
                invoice(T, "i3", "x3"),
                invoice("other-tenant", "i9", "x9"),
            ]
        )
        record = put(s, ws, "contact", "c1", email=" ANN@example.com ")
    with sessions() as s:
        resolved = records.resolve(s, record, T)
    assert {(ln.xero_contact_id, ln.reason, ln.is_customer) for ln in resolved.links} == {
        ("x1", "email", True),
        ("x2", "email", False),
    }
    assert listed(sessions, resolved.scope) == ["i1"]


def test_a_xero_contact_that_appears_later_with_the_same_email_is_seen_without_relinking(sessions, ws):
    with transaction(sessions) as s:
        put(s, ws, "contact", "c1", email="ann@example.com")
    assert listed(sessions, scope_of(sessions, ws, "contact", "c1")) == []
    with transaction(sessions) as s:  # the worker syncs a new customer and its invoice
        s.add_all([contact(T, "x-new", "ANN@EXAMPLE.COM"), invoice(T, "i-new", "x-new")])
    assert listed(sessions, scope_of(sessions, ws, "contact", "c1")) == ["i-new"]


def test_explicit_links_replace_email_matching_unless_asked_to_keep_it(sessions, ws):
    with transaction(sessions) as s:
        s.add_all(
            [
                contact(T, "wrong", "ann@example.com"),
                contact(T, "right", "other@example.com"),
                invoice(T, "i-wrong", "wrong", on=date(2026, 1, 1)),
                invoice(T, "i-right", "right"),
            ]
        )
        put(s, ws, "contact", "c1", email="ann@example.com", xero_contact_ids=["right"])
    assert listed(sessions, scope_of(sessions, ws, "contact", "c1")) == ["i-right"]
    with transaction(sessions) as s:
        put(s, ws, "contact", "c1", email="ann@example.com", xero_contact_ids=["right"], match_email=True)
    assert listed(sessions, scope_of(sessions, ws, "contact", "c1")) == ["i-right", "i-wrong"]


def test_an_empty_explicit_list_unlinks_a_wrong_email_match(sessions, ws):
    with transaction(sessions) as s:
        s.add_all([contact(T, "wrong", "ann@example.com"), invoice(T, "i-wrong", "wrong")])
        put(s, ws, "contact", "c1", email="ann@example.com")
    assert listed(sessions, scope_of(sessions, ws, "contact", "c1")) == ["i-wrong"]
    with transaction(sessions) as s:
        put(s, ws, "contact", "c1", email="ann@example.com", xero_contact_ids=[])
    with sessions() as s:
        assert records.resolve(s, records.find(s, ws.id, "contact", "c1"), T).links == ()
    assert listed(sessions, scope_of(sessions, ws, "contact", "c1")) == []


def test_explicit_links_need_a_live_connection(sessions):
    with transaction(sessions) as s:
        lonely = workspace(s, "No Xero", None)
    with pytest.raises(records.NotConnected), transaction(sessions) as s:
        records.upsert(s, lonely.id, "contact", "c1", RecordInput(xero_contact_ids=("x1",)), None, NOW)
    with transaction(sessions) as s:  # the email rule needs none
        records.upsert(s, lonely.id, "contact", "c1", RecordInput(email="a@b.c"), None, NOW)


def test_an_account_sees_its_own_links_and_its_contacts(sessions, ws):
    with transaction(sessions) as s:
        s.add_all(
            [
                contact(T, "xa", "billing@acme.test"),
                contact(T, "x1", "ann@acme.test"),
                contact(T, "x2", "bob@acme.test"),
                contact(T, "x3", "eve@elsewhere.test"),
                invoice(T, "ia", "xa"),
                invoice(T, "i1", "x1"),
                invoice(T, "i2", "x2"),
                invoice(T, "i3", "x3"),
            ]
        )
        put(s, ws, "account", "acme", email="billing@acme.test")
        put(s, ws, "contact", "ann", email="ann@acme.test", account_id="acme")
        put(s, ws, "contact", "bob", xero_contact_ids=["x2"], account_id="acme")
        put(s, ws, "contact", "eve", email="eve@elsewhere.test", account_id="other")
    with sessions() as s:
        resolved = records.resolve(s, records.find(s, ws.id, "account", "acme"), T)
    assert sorted(listed(sessions, resolved.scope)) == ["i1", "i2", "ia"]
    assert {(ln.xero_contact_id, ln.reason, ln.via_contact_id) for ln in resolved.links} == {
        ("xa", "email", None),
        ("x1", "email", "ann"),
        ("x2", "explicit", "bob"),
    }


def test_a_deal_sees_its_pinned_and_explicitly_linked_invoices_only(sessions, ws):
    with transaction(sessions) as s:
        s.add_all(
            [
                contact(T, "x1", "ann@example.com"),
                contact(T, "x2", "sup@example.com", customer=False),
                invoice(T, "i1", "x1"),
                invoice(T, "i2", "x1"),
                invoice(T, "i3", "x2"),
                invoice(T, "i4", "x2"),
            ]
        )
        deal = put(s, ws, "deal", "d1", invoice_ids=["i3"])
        records.pin(s, deal, T, "i1", NOW, anywhere=True)
        put(s, ws, "contact", "c1", email="ann@example.com")
    assert sorted(listed(sessions, scope_of(sessions, ws, "deal", "d1"))) == ["i1", "i3"]
    with transaction(sessions) as s:
        put(s, ws, "deal", "d1", xero_contact_ids=["x1"])
    assert sorted(listed(sessions, scope_of(sessions, ws, "deal", "d1"))) == ["i1", "i2"]


def test_pins_are_idempotent_and_only_for_invoices_of_the_tenant(sessions, ws):
    with transaction(sessions) as s:
        s.add_all([invoice(T, "i1", None), invoice("other-tenant", "i9", None)])
        record = put(s, ws, "deal", "d1")
        assert records.pin(s, record, T, "i1", NOW, anywhere=True)
        assert records.pin(s, record, T, "i1", NOW, anywhere=True)
        assert not records.pin(s, record, T, "i9", NOW, anywhere=True)
    assert scope_of(sessions, ws, "deal", "d1").pinned_ids == {"i1"}
    with transaction(sessions) as s:
        assert records.unpin(s, record, T, "i1", anywhere=True)
        assert records.unpin(s, record, T, "i1", anywhere=True)
        assert not records.unpin(s, record, T, "i9", anywhere=True)
    assert scope_of(sessions, ws, "deal", "d1").pinned_ids == frozenset()


# --- search, dates, order, paging ---------------------------------------------------------


@pytest.fixture
def numbered(sessions, ws):
    rows = [
        ("a", "INV-0100", date(2026, 3, 1)),
        ("b", "INV-0101", date(2026, 3, 1)),
        ("c", "INV-0200", date(2026, 5, 1)),
        ("d", "SO-INV-7", date(2026, 1, 31)),
        ("e", "100%_X", date(2026, 2, 1)),
        ("f", "inv-0300", date(2026, 6, 1)),
        ("g", None, None),
    ]
    with transaction(sessions) as s:
        s.add(contact(T, "x1", "ann@example.com"))
        s.add_all(invoice(T, i, "x1", number=n, on=d) for i, n, d in rows)
        s.execute(text("UPDATE invoices SET invoice_number = NULL WHERE invoice_id = 'g'"))
        put(s, ws, "contact", "c1", email="ann@example.com")
    return scope_of(sessions, ws, "contact", "c1")


def test_list_is_newest_invoice_date_first_then_number(sessions, numbered):
    assert listed(sessions, numbered) == ["f", "c", "b", "a", "e", "d", "g"]


def test_search_matches_a_prefix_or_any_part_of_the_number_case_insensitively(sessions, numbered):
    assert listed(sessions, numbered, q="inv-01") == ["b", "a"]
    assert listed(sessions, numbered, q="INV-") == ["f", "c", "b", "a", "d"]
    assert listed(sessions, numbered, q="v-7") == ["d"]


def test_search_treats_like_wildcards_literally(sessions, numbered):
    assert listed(sessions, numbered, q="0%_") == ["e"]
    assert listed(sessions, numbered, q="_") == ["e"]


def test_date_filter_includes_both_ends(sessions, numbered):
    got = listed(sessions, numbered, date_from=date(2026, 2, 1), date_to=date(2026, 5, 1))
    assert got == ["c", "b", "a", "e"]
    assert listed(sessions, numbered, date_from=date(2026, 6, 1)) == ["f"]
    assert listed(sessions, numbered, date_to=date(2026, 1, 31)) == ["d"]


def test_pages_split_the_list_in_order_and_count_it_whole(sessions, numbered):
    with sessions() as s:
        pages = [queries.list_invoices(s, numbered, Filters(view="all"), TODAY, n, 3) for n in (1, 2, 3, 4)]
    assert [[r.invoice_id for r in p.rows] for p in pages] == [["f", "c", "b"], ["a", "e", "d"], ["g"], []]
    assert {p.total for p in pages} == {7}


# --- totals for a contact, an account and a deal, in two currencies ----------------------


def test_totals_for_contact_account_and_deal_equal_independent_sums(sessions, ws):
    invoices = [
        invoice(T, "n1", "x1", status="PAID", total="100.10", paid="100.10"),
        invoice(T, "n2", "x1", total="250.00", paid="50.00", due=date(2026, 11, 1)),
        invoice(T, "u1", "x1", status="PAID", total="40.00", paid="40.00", currency="USD", rate="0.612345"),
        invoice(T, "u2", "x2", total="99.99", currency="USD", rate="0.6"),
        invoice(T, "n3", "x2", total="10.00", credited="2.50"),
        invoice(T, "n4", "x2", status="DRAFT", total="5000"),
        invoice(T, "u3", "x3", status="PAID", total="12.34", paid="12.34", currency="USD", rate="0.61"),
        invoice(T, "n5", "x3", total="7.77"),
        invoice(T, "b1", "x1", total="500.00", paid="100.00", type="ACCPAY"),  # a bill: not Ann's debt
    ]
    with transaction(sessions) as s:
        s.add_all(
            [contact(T, "x1", "ann@acme.test"), contact(T, "x2", "bob@acme.test"), contact(T, "x3", None)]
        )
        s.add_all(invoices)
        s.add(SyncState(tenant_id=T, last_success_at=NOW))
        put(s, ws, "contact", "ann", email="ann@acme.test", account_id="acme")
        put(s, ws, "contact", "bob", email="bob@acme.test", account_id="acme")
        put(s, ws, "account", "acme")
        deal = put(s, ws, "deal", "big", xero_contact_ids=["x3"], invoice_ids=["n2"])
        records.pin(s, deal, T, "u2", NOW, anywhere=True)
    by_id = {i.invoice_id: i for i in invoices}

    def independent(ids):
        """Sums straight from the rows of AUTHORISED and PAID sales invoices: received is
        AmountPaid, credited AmountCredited, unpaid the balances of AUTHORISED ones."""
        out = {}
        for i in map(by_id.get, ids):
            if i.type != "ACCREC" or i.status not in ("AUTHORISED", "PAID"):
                continue
            parts = [("paid", i.amount_paid), ("credited", i.amount_credited)]
            if i.status == "AUTHORISED":
                parts.append(("unpaid", i.amount_due))
            for name, amount in parts:
                if amount > 0:
                    total, count = out.get((name, i.currency_code), (Decimal(0), 0))
                    out[(name, i.currency_code)] = (total + amount, count + 1)
        return out

    def from_sql(kind, external_id):
        with sessions() as s:
            scope = records.resolve(s, records.find(s, ws.id, kind, external_id), T).scope
            summary = totals.summarise(queries.summary_lines(s, scope, TODAY), "NZD")
        return {
            (name, a.currency): (a.amount, a.count)
            for name, block in (("paid", summary.paid), ("credited", summary.credited), ("unpaid", summary.unpaid))
            for a in block.by_currency
        }

    assert from_sql("contact", "ann") == independent(["n1", "n2", "u1", "b1"])
    assert ("paid", "NZD") in from_sql("contact", "ann") and from_sql("contact", "ann")[("paid", "NZD")] == (
        Decimal("150.10"),
        2,
    )
    assert from_sql("account", "acme") == independent(["n1", "n2", "u1", "u2", "n3", "n4"])
    assert from_sql("deal", "big") == independent(["u3", "n5", "n2", "u2"])
    assert from_sql("account", "acme")[("unpaid", "NZD")] == (Decimal("207.50"), 2)


# --- the statements a page costs ----------------------------------------------------------


def test_a_page_costs_the_same_few_statements_however_many_rows_it_holds(engine, sessions, ws):
    with transaction(sessions) as s:
        s.add(contact(T, "x1", "ann@example.com"))
        for n in range(40):
            s.add(invoice(T, f"i{n:02}", "x1", on=date(2026, 1, 1) + timedelta(days=n)))
            s.add_all(payment(T, f"p{n}-{k}", f"i{n:02}", "1", date(2026, 2, 1)) for k in range(n % 3))
        put(s, ws, "contact", "c1", email="ann@example.com")
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    def cost(per_page):
        statements.clear()
        with sessions() as s:
            scope = records.resolve(s, records.find(s, ws.id, "contact", "c1"), T).scope
            page = queries.list_invoices(s, scope, Filters(view="all"), TODAY, 1, per_page)
        return len(statements), page

    (few, small), (many, big) = cost(2), cost(40)
    assert len(small.rows) == 2 and len(big.rows) == 40
    assert few == many <= 4  # begin, find, resolve, page
    assert sum(r.payment_count for r in big.rows) == sum(n % 3 for n in range(40))


def _plans(engine, run) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN of each statement on invoices that `run` executes."""
    return plans(engine, run, lambda stmt: "FROM invoices" in stmt)


@pytest.mark.parametrize("view", ["unpaid", "paid", "open", "overdue"])
def test_a_saved_view_page_is_read_in_date_order_and_counted_from_the_index(engine, sessions, view):
    if engine.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    scope = records.Scope(T, 1, ("x1",), (), frozenset())

    def run():
        with sessions() as s:
            queries.list_invoices(s, scope, Filters(view=view), TODAY, 1, 50)

    [plan] = _plans(engine, run)
    # the page: the status is an equality, so rows come in date order and the LIMIT stops the
    # scan (only the last key, invoice_id, is left to sort: "RIGHT PART")
    equalities = "(tenant_id=? AND contact_id=? AND status=? AND type=?)"
    assert f"SEARCH invoices USING INDEX ix_invoices_contact_status {equalities}" in plan
    assert "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY" in plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan
    # the total: counted once, from the index alone; payments counted on their own index
    assert "SEARCH invoices USING COVERING INDEX ix_invoices_contact_status" in plan
    assert "CORRELATED SCALAR SUBQUERY" in plan and "ix_payments_invoice" in plan
    # payments and allocations of each row on the page; the count is not correlated to the page's rows
    assert plan.count("CORRELATED") == 2 and "sqlite_autoindex_allocations_1" in plan


def test_the_summary_is_read_from_the_index_alone(engine, sessions):
    if engine.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    scope = records.Scope(T, 1, ("x1",), (), frozenset())

    def run():
        with sessions() as s:
            queries.summary_lines(s, scope, TODAY)

    [plan] = _plans(engine, run)
    searches = [line for line in plan.splitlines() if line.startswith(("SEARCH", "SCAN"))]
    # the totals' pass reads ix_invoices_contact_status alone; the behaviour's groups, in the
    # same statement, read that index or ix_invoices_contact_paid alone
    assert searches and searches[0].startswith("SEARCH invoices USING COVERING INDEX ix_invoices_contact_status"), plan
    assert all(line.startswith("SEARCH invoices USING COVERING INDEX ") for line in searches), plan
