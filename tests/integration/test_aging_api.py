"""The summary's `aging` and `behaviour` blocks, `days_overdue` and `?overdue=` through the API,
in the organisation's calendar (Pacific/Auckland), scoped to the caller's workspace; every
answer validated against /api/v1/openapi.json."""

from __future__ import annotations

from datetime import date

import pytest
from freezegun import freeze_time
from sqlalchemy import update

from store.db import transaction
from store.models import XeroConnection

from .mirror_rows import allocation, contact, invoice, payment, workspace
from .test_read_api import Api, app  # noqa: F401 (the app fixture)

T, OTHER = "tenant-a", "tenant-b"
# Auckland is UTC+13 in November: 10:59 UTC is 23:59 on the 24th there, 11:01 UTC 00:01 on the 25th.
BEFORE_MIDNIGHT, AFTER_MIDNIGHT = "2026-11-24 10:59:00", "2026-11-24 11:01:00"


def paid(invoice_id, due, on, **kw):
    row = invoice(T, invoice_id, "x1", due=due, status="PAID", paid=kw.pop("paid", "100.00"), **kw)
    row.fully_paid_on = on
    return row


@pytest.fixture
def workspaces(sessions):
    with transaction(sessions) as s:
        mine = workspace(s, "Acme", T, base="NZD")
        theirs = workspace(s, "Other", OTHER, base="NZD")
        s.execute(update(XeroConnection).values(timezone="NEWZEALANDSTANDARDTIME"))
        s.add_all(
            [
                contact(T, "x1", "ann@example.com"),
                invoice(T, "due-24", "x1", number="INV-1", due=date(2026, 11, 24), total="100.00"),
                invoice(T, "due-oct", "x1", number="INV-2", due=date(2026, 10, 1), total="250.00", paid="50.00"),
                invoice(T, "old-usd", "x1", number="INV-3", due=date(2026, 6, 1), total="60.00", currency="USD",
                        rate="0.6"),
                paid("late", date(2026, 10, 1), date(2026, 10, 11), number="INV-4"),
                paid("early", date(2026, 10, 20), date(2026, 10, 15), number="INV-5"),
                paid("by-credit", date(2026, 11, 1), date(2026, 11, 1), paid="0", credited="100.00", number="INV-6"),
                payment(T, "p-late", "late", "100.00", date(2026, 10, 11)),
                payment(T, "p-early", "early", "100.00", date(2026, 10, 15)),
                payment(T, "p-oct", "due-oct", "50.00", date(2026, 10, 20)),
                allocation(T, "by-credit", "credit_note", "cn-1", "100.00", date(2026, 11, 1), number="CN-1"),
                # the other workspace's organisation: the same CRM record id, its own invoices
                contact(OTHER, "y1", "ann@example.com"),
                invoice(OTHER, "theirs", "y1", due=date(2026, 1, 1), total="999.00"),
            ]
        )
    return mine, theirs


@pytest.fixture
def api(app, workspaces):
    mine, _ = workspaces
    api = Api(app.test_client(), mine.admin_key)
    assert api.put("/api/v1/contacts/c1", json={"email": "ann@example.com"}).status_code == 200
    return api


def buckets(summary) -> dict[str, tuple[list, int]]:
    return {
        b["bucket"]: ([(a["currency"], a["amount"]) for a in b["by_currency"]], b["count"]) for b in summary["aging"]
    }


def listed(api, query) -> list[str]:
    return [r["invoice_id"] for r in api.get(f"/api/v1/contacts/c1/invoices?{query}").json["invoices"]]


@pytest.mark.parametrize(("instant", "today", "due_24_days"), [(BEFORE_MIDNIGHT, "2026-11-24", 0),
                                                                (AFTER_MIDNIGHT, "2026-11-25", 1)])
def test_the_summary_ages_unpaid_in_the_organisations_calendar(api, instant, today, due_24_days):
    with freeze_time(instant):
        summary = api.get("/api/v1/contacts/c1/summary").json
        rows = {r["invoice_id"]: r["days_overdue"] for r in api.get("/api/v1/contacts/c1/invoices?view=all").json[
            "invoices"]}
    assert summary["today"] == today and summary["timezone"] == "Pacific/Auckland"
    assert rows["due-24"] == due_24_days and rows["late"] == 0 and rows["due-oct"] == (due_24_days + 54)
    aged = buckets(summary)
    assert aged["current" if due_24_days == 0 else "1-30"] == ([("NZD", "100.00")], 1)
    assert aged["31-60"] == ([("NZD", "200.00")], 1)  # due 1 October, part-paid: its balance ages
    assert aged["90+"] == ([("USD", "60.00")], 1)
    assert [b["bucket"] for b in summary["aging"]] == ["current", "1-30", "31-60", "61-90", "90+"]
    # the buckets add up to unpaid, per currency and converted
    unpaid = {a["currency"]: a["amount"] for a in summary["unpaid"]["by_currency"]}
    assert unpaid == {"NZD": "300.00", "USD": "60.00"}
    assert sum(float(b["converted"][0]["amount"]) for b in summary["aging"]) == pytest.approx(
        float(summary["unpaid"]["converted"][0]["amount"])
    )
    assert summary["aging"][4]["converted"][0]["amount"] == "100.00"  # 60 USD at 0.6
    assert summary["aging"][4]["converted"][0]["label"].startswith("Converted to NZD")


@freeze_time(AFTER_MIDNIGHT)
def test_each_bucket_links_to_the_list_of_its_invoices(api):
    summary = api.get("/api/v1/contacts/c1/summary").json
    linked = {b["bucket"]: [r["invoice_id"] for r in api.get(b["link"]).json["invoices"]] for b in summary["aging"]}
    assert linked == {"current": [], "1-30": ["due-24"], "31-60": ["due-oct"], "61-90": [], "90+": ["old-usd"]}
    assert listed(api, "overdue=1-30&view=paid") == []  # a bucket narrows the view it is given


@freeze_time(AFTER_MIDNIGHT)
def test_behaviour_counts_settled_and_still_open_invoices(api):
    b = api.get("/api/v1/contacts/c1/summary").json["behaviour"]
    # settled: +10 (late), -5 (early), 0 (by credit note); still open: 1, 55, 177 days overdue
    assert (b["settled_count"], b["open_overdue_count"], b["counted"], b["on_time_count"]) == (3, 3, 6, 2)
    assert b["median_days_late"] == 5.5 and b["on_time_share"] == 0.3333
    assert b["since"] == "2025-11-26" and b["trend"] is None and b["year_before_counted"] == 0
    assert b["last_payment"] == {"date": "2026-11-01", "amount": "100.00", "currency": "NZD", "count": 1}


@pytest.mark.parametrize("value", ["90", "1-31", "CURRENT", "overdue", "x" * 300])
def test_an_unknown_bucket_is_a_clear_400(api, value):
    response = api.get(f"/api/v1/contacts/c1/invoices?overdue={value}")
    assert response.status_code == 400
    assert response.json["error"] == "overdue must be one of current, 1-30, 31-60, 61-90, 90+"


@freeze_time(AFTER_MIDNIGHT)
def test_ageing_and_behaviour_are_scoped_to_the_workspace(app, api, workspaces):
    _, theirs = workspaces
    other = Api(app.test_client(), theirs.read_key)
    assert other.get("/api/v1/contacts/c1/summary").status_code == 404  # their workspace has no such record
    Api(app.test_client(), theirs.admin_key).put("/api/v1/contacts/c1", json={"email": "ann@example.com"})
    summary = other.get("/api/v1/contacts/c1/summary").json
    assert buckets(summary)["90+"] == ([("NZD", "999.00")], 1) and sum(b["count"] for b in summary["aging"]) == 1
    assert summary["behaviour"]["counted"] == 1 and summary["behaviour"]["last_payment"] is None
    assert [r["invoice_id"] for r in other.get("/api/v1/contacts/c1/invoices?overdue=90%2B").json["invoices"]] == [
        "theirs"
    ]
    assert listed(api, "overdue=90%2B") == ["old-usd"]


def test_a_record_without_a_connection_has_empty_blocks(app, sessions):
    with transaction(sessions) as s:
        lone = workspace(s, "Lone", None)
    api = Api(app.test_client(), lone.admin_key)
    api.put("/api/v1/contacts/c1", json={"email": "ann@example.com"})
    summary = api.get("/api/v1/contacts/c1/summary").json
    assert [b["count"] for b in summary["aging"]] == [0, 0, 0, 0, 0]
    assert summary["behaviour"]["median_days_late"] is None and summary["behaviour"]["last_payment"] is None
