"""Our ageing matches Xero's own Aged Receivables report, for every customer of a seeded organisation.

The organisation (New Zealand; part-paid invoices, credit notes, prepayments, overpayments,
deleted payments, merges, several currencies) is synced into the mirror through the product's
own backfill. Then, for every customer contact, on several days of the organisation's
calendar, each invoice our API lists as unpaid carries the report's Paid, Credited, Due and
days overdue, the report lists no other, and the contact's total due (per currency) and its
ageing buckets equal the report's.

The mirror answers for "now" only, so the days are frozen "now"s (freezegun) on both sides of
Auckland's midnight and later, all on or after the seed's last payment; the report is read as
of the same date (`date=`), through the real xero-python SDK, with a token that has the
reports scope the product never asks for. The emulator is left unfrozen while it is called.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from emulator.testing import run_emulator
from infra.settings import DEFAULT_SCOPES, Settings
from store.db import transaction
from store.models import XeroConnection
from store.workspaces import issue_key
from tests.emulator.sdk import Sdk, sdk_token
from views import aging
from worker import governor, sync
from wsgi import close_app, create_app

AUCKLAND = ZoneInfo("Pacific/Auckland")
D = Decimal
OVERDUE = re.compile(r"^(\d+) days? overdue$")


@pytest.fixture
def emulator():
    """A New Zealand organisation with every kind of settlement (as test_money_people seeds it)."""
    with run_emulator(seed=11, tenants=1, contacts=60, invoices=500, webhook_batch_seconds=0.05) as running:
        running.state.set_limits(minute=1_000_000, day=10_000_000)
        yield running


@pytest.fixture
def app(database_url):
    app = create_app(Settings(database_url=database_url, xero_api_url="http://127.0.0.1:9"))
    yield app
    close_app(app)


def auckland_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), AUCKLAND).astimezone(UTC)


def report_rows(report) -> tuple[dict[str, tuple], dict[str, Decimal], Decimal]:
    """({invoice id: (paid, credited, due, days overdue)}, {currency: closing due}, opening due)."""
    header, opening, *sections, closing = report.rows
    assert header.row_type.value == "Header"
    rows = {}
    for section in sections:
        for row in section.rows:
            if row.row_type.value != "Row":
                continue
            values = [c.value for c in row.cells]
            words = OVERDUE.match(values[3])
            days = int(words.group(1)) if words else 0
            assert words or values[3] == ""
            rows[row.cells[0].attributes[0].value] = (D(values[5]), D(values[6]), D(values[7]), days)
    closing_due = {}
    for row in closing.rows:
        label = row.cells[0].value
        currency = label[len("Closing Balance (") : -1] if "(" in label else None
        closing_due[currency] = D(row.cells[7].value)
    opened = sum((D(r.cells[7].value) for r in opening.rows), D(0))
    return rows, closing_due, opened


def test_every_customers_ageing_equals_xeros_aged_receivables_report(emulator, runtime, connected, sessions, app):
    t, state = connected, emulator.state
    sync.backfill(t, api=runtime.api(t, governor.BACKFILL), sessions=runtime.sessions, now=runtime.now())
    books = state.tenant(t)
    currency_of = {i.invoice_id: i.currency_code for i in books.invoices.values()}
    customers = [c for c in books.contacts.values() if c.is_customer and not c.merged_to]
    assert len(customers) > 30
    seeded_until = max(  # the last day anything was dated: every "today" below is on or after it
        [i.date for i in books.invoices.values()]
        + [p.date for p in books.payments.values()]
        + [a.date for a in books.allocations.values()]
    )
    with transaction(sessions) as s:
        workspace_id = s.execute(select(XeroConnection.workspace_id).where(XeroConnection.tenant_id == t)).scalar_one()
        key = issue_key(s, workspace_id, "admin", datetime.now(UTC))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    for c in customers:
        body = {"xero_contact_ids": [c.contact_id], "match_email": False}
        assert client.put(f"/api/v1/contacts/{c.contact_id}", json=body, headers=headers).status_code == 200

    # the days: now (unfrozen), a minute either side of Auckland's next midnight, a month and a quarter on
    frozen = [None] + [
        auckland_midnight(seeded_until + timedelta(days=n)) + timedelta(minutes=m)
        for n, m in ((1, -1), (1, 1), (31, 1), (100, 1))
    ]
    ours: dict[tuple, dict] = {}
    days_seen = []
    for instant in frozen:
        with freeze_time(instant) if instant else _unfrozen():
            for c in customers:
                ours[(instant, c.contact_id)] = _our_view(client, headers, c.contact_id)
        days_seen.append(ours[(instant, customers[0].contact_id)]["today"])
    assert len(set(days_seen[1:])) == 4 and days_seen[1] < days_seen[2]  # midnight in Auckland moved the date
    assert all(day >= seeded_until for day in days_seen)

    # the product read the report never, and asks for no scope that could
    assert state.call_count(t, "GET /Reports/AgedReceivablesByContact") == 0
    assert "reports" not in DEFAULT_SCOPES and "reports" not in Settings.from_env(emulator.env()).xero_scopes
    sdk = Sdk(emulator, sdk_token(state.client_credentials_token(scope="accounting.reports.aged.read")))
    compared = defaultdict(int)
    for instant in frozen:
        for c in customers:
            mine = ours[(instant, c.contact_id)]
            day = date(mine["today"].year, mine["today"].month, mine["today"].day)  # not freezegun's FakeDate
            (report,) = sdk.accounting.get_report_aged_receivables_by_contact(t, c.contact_id, date=day).reports
            rows, closing, opened = report_rows(report)
            assert opened == 0
            assert mine["rows"] == rows, (c.name, day)
            due_by_currency = defaultdict(lambda: D(0))
            for invoice_id, (_, _, due, _) in rows.items():
                due_by_currency[currency_of[invoice_id]] += due
            if None in closing:  # one currency: the Closing Balance row does not name it
                closing = dict.fromkeys(due_by_currency, closing[None]) or {}
            assert {cur: amount for cur, amount in closing.items() if amount} == mine["unpaid"] == dict(due_by_currency)
            buckets = defaultdict(lambda: D(0))
            for invoice_id, (_, _, due, days) in rows.items():
                buckets[(aging.bucket_of(days), currency_of[invoice_id])] += due
            assert mine["aging"] == dict(buckets), (c.name, day)
            compared["invoices"] += len(rows)
            compared["contacts"] += 1
            compared["overdue"] += sum(1 for r in rows.values() if r[3] > 0)
            compared["part_settled"] += sum(1 for r in rows.values() if r[0] or r[1])
            compared["credited"] += sum(1 for r in rows.values() if r[1])
    assert compared["contacts"] == len(customers) * len(frozen)
    # the comparison held something worth comparing: overdue, part-paid and credited invoices
    assert compared["invoices"] > 300 and compared["overdue"] > 100
    assert compared["part_settled"] > 20 and compared["credited"] > 5


class _unfrozen:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _our_view(client, headers, record: str) -> dict:
    """What the API says of one record: its unpaid invoices (every page), unpaid per currency, ageing."""
    rows, page = {}, 1
    while True:
        answer = client.get(f"/api/v1/contacts/{record}/invoices?view=unpaid&per_page=200&page={page}", headers=headers)
        assert answer.status_code == 200
        for r in answer.json["invoices"]:
            rows[r["invoice_id"]] = (D(r["amount_paid"]), D(r["amount_credited"]), D(r["balance"]), r["days_overdue"])
        if page * 200 >= answer.json["total"]:
            break
        page += 1
    summary = client.get(f"/api/v1/contacts/{record}/summary", headers=headers).json
    assert summary["timezone"] == "Pacific/Auckland"
    return {
        "today": date.fromisoformat(summary["today"]),
        "rows": rows,
        "unpaid": {a["currency"]: D(a["amount"]) for a in summary["unpaid"]["by_currency"]},
        "aging": {
            (b["bucket"], a["currency"]): D(a["amount"]) for b in summary["aging"] for a in b["by_currency"]
        },
    }
