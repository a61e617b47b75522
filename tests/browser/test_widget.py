"""The embeddable widget in a real browser: every control, its states, and refresh without reload.

Due dates are relative to today's real date (the API's `today` is the UTC date of the
request), so the saved views split the seeded invoices the same way whenever this runs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import update

from store import mirror
from store.db import transaction
from store.models import ApiKey, Invoice, SyncState
from tests.integration.mirror_rows import allocation, contact, invoice, payment, workspace

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

T = "tenant-w"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@dataclass(frozen=True)
class Seeded:
    today: date
    read_key: str
    admin_key: str


def _day(offset: int) -> date:
    return datetime.now(UTC).date() + timedelta(days=offset)


@pytest.fixture
def seeded(live_server, sessions) -> Seeded:
    """Ann (contact c1): paid, open, overdue, part-paid, draft and voided invoices in NZD and
    EUR; Bob (c2) has one invoice Ann must never see; Cy (c3) has none."""
    d = _day
    with transaction(sessions) as s:
        ws = workspace(s, "Acme", T, short_code="!Ab1x", base="NZD")
        s.add_all(
            [
                contact(T, "x-ann", "ann@example.com", name="Ann Smith"),
                contact(T, "x-bob", "bob@example.com"),
                invoice(T, "i-1001", "x-ann", number="INV-1001", on=d(-60), due=d(-30), status="PAID",
                        total="1200.00", paid="1200.00"),
                invoice(T, "i-1002", "x-ann", number="INV-1002", on=d(-10), due=d(20), total="450.00"),
                invoice(T, "i-1003", "x-ann", number="INV-1003", on=d(-35), due=d(-5), total="300.00"),
                invoice(T, "i-1004", "x-ann", number="INV-1004", on=d(-20), due=d(10), total="1000.00",
                        paid="250.00"),
                invoice(T, "i-1005", "x-ann", number="INV-1005", on=d(-2), due=d(28), status="DRAFT",
                        total="75.00"),
                invoice(T, "i-1006", "x-ann", number="INV-1006", on=d(-40), due=d(-10), status="VOIDED",
                        total="60.00"),
                invoice(T, "i-2001", "x-ann", number="INV-2001", on=d(-50), due=d(-20), status="PAID",
                        total="80.00", paid="80.00", currency="EUR", rate="0.55"),
                invoice(T, "i-2002", "x-ann", number="INV-2002", on=d(-42), due=d(-12), total="1234.56",
                        currency="EUR", rate="0.55"),
                invoice(T, "i-9001", "x-bob", number="INV-9001", on=d(-3), due=d(27), total="999.00"),
                payment(T, "p-1001a", "i-1001", "500.00", d(-45), reference="Deposit"),
                payment(T, "p-1001b", "i-1001", "700.00", d(-31)),
                payment(T, "p-1004a", "i-1004", "100.00", d(-15), reference="First"),
                payment(T, "p-1004b", "i-1004", "150.00", d(-8), reference="Second"),
                payment(T, "p-2001", "i-2001", "80.00", d(-25)),
                SyncState(tenant_id=T, last_success_at=datetime.now(UTC)),
            ]
        )
    client = live_server.app.test_client()
    for record, email in (("c1", "ann@example.com"), ("c2", "bob@example.com"), ("c3", "cy@example.com")):
        response = client.put(
            f"/api/v1/contacts/{record}", json={"name": record, "email": email},
            headers={"Authorization": f"Bearer {ws.admin_key}"},
        )
        assert response.status_code == 200
    return Seeded(_day(0), ws.read_key, ws.admin_key)


def widget_url(live_server, seeded, record="c1") -> str:
    response = live_server.app.test_client().post(
        "/api/v1/embed-tokens", json={"kind": "contacts", "id": record},
        headers={"Authorization": f"Bearer {seeded.read_key}"},
    )
    assert response.status_code == 200, response.json
    return live_server.url + response.json["url"].removeprefix("http://localhost")  # the test client's host


def open_widget(page, live_server, seeded, record="c1"):
    page.goto(widget_url(live_server, seeded, record))
    expect(page.locator("#state-loading")).to_be_hidden()
    return page


def numbers(page) -> list[str]:
    return page.locator("#invoice-list > li .number").all_inner_texts()


def row(page, number: str):
    return page.locator("#invoice-list > li", has=page.locator(".number", has_text=number))


def expect_numbers(page, expected: list[str]) -> None:
    expect(page.locator("#invoice-list > li .number")).to_have_text(expected)


# --- totals, tabs, formatting ------------------------------------------------------------------


def test_the_default_list_is_awaiting_payment_with_totals_per_currency(page, live_server, seeded):
    open_widget(page, live_server, seeded)
    expect(page.locator("[data-view=unpaid]")).to_have_attribute("aria-selected", "true")
    expect_numbers(page, ["INV-1002", "INV-1004", "INV-1003", "INV-2002"])
    expect(page.locator(".total-box:visible .total-label")).to_have_text(["Received", "Still to pay"])
    expect(page.locator("#total-credited")).to_be_hidden()  # nothing credited: no box for it
    # Received is AmountPaid (1,200.00 + the 250.00 part payment), Still to pay AmountDue: one
    # figure each, converted to NZD at each invoice's rate (EUR at 0.55), the exact amounts a tap away
    expect(page.locator("#total-paid .total-figure")).to_have_text("≈ NZ$1,595")  # 1,450 + 80 / 0.55
    expect(page.locator("#total-unpaid .total-figure")).to_have_text("≈ NZ$3,745")  # 1,500 + 1,234.56 / 0.55
    expect(page.locator("#total-paid .total-count")).to_have_text("3 invoices")
    expect(page.locator("#total-unpaid .total-count")).to_contain_text("4 invoices")
    expect(page.locator("#total-unpaid .overdue-note")).to_have_text("≈ NZ$2,545 overdue")  # 300 + 2,244.65
    expect(page.locator("#total-unpaid .total-amounts")).to_be_hidden()
    page.click("#total-unpaid .total-toggle")
    expect(page.locator("#total-unpaid .total-amount")).to_have_text(
        ["NZ$1,500.00", "€1,234.56", "NZ$300.00 overdue", "€1,234.56 overdue"]
    )
    page.click("#total-paid .total-toggle")
    expect(page.locator("#total-paid .total-amount")).to_have_text(["NZ$1,450.00", "€80.00"])
    expect(page.locator("[data-view=unpaid]")).to_have_attribute("aria-selected", "true")  # no tab moved

    part = row(page, "INV-1004")
    expect(part.locator(".balance .value")).to_have_text("NZ$750.00")
    expect(part.locator(".total .value")).to_have_text("NZ$1,000.00")
    expect(part.locator(".status")).to_have_text("Partially paid · 2 payments")
    expect(part.locator(".type")).to_have_text("Sales invoice")
    expect(part.locator(".date")).to_have_attribute("datetime", _day(-20).isoformat())
    link = part.locator("a.number")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute(
        "href",
        "https://go.xero.com/organisationlogin/default.aspx?shortcode=!Ab1x"
        "&redirecturl=/AccountsReceivable/View.aspx?InvoiceID=i-1004",
    )
    expect(row(page, "INV-2002").locator(".balance .value")).to_have_text("€1,234.56")
    expect(row(page, "INV-1003").locator(".status")).to_have_text("Overdue")
    expect(row(page, "INV-1003").locator(".payments-link")).to_be_hidden()


@pytest.mark.parametrize(
    "view, expected",
    [
        ("paid", ["INV-2001", "INV-1001"]),
        ("unpaid", ["INV-1002", "INV-1004", "INV-1003", "INV-2002"]),
        ("open", ["INV-1002", "INV-1004"]),
        ("overdue", ["INV-1003", "INV-2002"]),
    ],
)
def test_each_tab_lists_its_saved_view(page, live_server, seeded, view, expected):
    open_widget(page, live_server, seeded)
    page.click(f"[data-view={view}]")
    expect(page.locator(f"[data-view={view}]")).to_have_attribute("aria-selected", "true")
    expect_numbers(page, expected)
    assert "INV-1005" not in numbers(page) and "INV-1006" not in numbers(page)  # draft, voided


def test_tab_counts_and_arrow_keys(page, live_server, seeded):
    open_widget(page, live_server, seeded)
    # each tab counts what its list holds (Paid: PAID invoices, not Received's part-paid ones)
    expect(page.locator("[role=tab] .tab-count")).to_have_text(["4", "2", "2", "2", "0"])
    page.locator("[data-view=unpaid]").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("[data-view=overdue]")).to_be_focused()
    expect_numbers(page, ["INV-1003", "INV-2002"])


def test_the_totals_boxes_list_their_invoices(page, live_server, seeded):
    open_widget(page, live_server, seeded)
    page.click("#total-paid .total-main")
    expect(page.locator("#total-paid .total-main")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("[data-view=paid]")).to_have_attribute("aria-selected", "true")
    expect_numbers(page, ["INV-2001", "INV-1001"])
    expect(row(page, "INV-1001").locator(".status")).to_have_text("Paid · 2 payments")
    page.click("#total-unpaid .total-main")
    expect(page.locator("#total-paid .total-main")).to_have_attribute("aria-pressed", "false")
    expect_numbers(page, ["INV-1002", "INV-1004", "INV-1003", "INV-2002"])


# --- search, dates, paging ---------------------------------------------------------------------


def test_search_narrows_by_invoice_number(page, live_server, seeded):
    open_widget(page, live_server, seeded)
    page.fill("#search", "1004")
    expect_numbers(page, ["INV-1004"])
    page.fill("#search", "inv-2")
    page.press("#search", "Enter")
    expect_numbers(page, ["INV-2002"])
    page.fill("#search", "nothing-like-it")
    expect(page.locator("#state-empty .state-title")).to_have_text(
        "No invoices awaiting payment match your search"
    )
    page.click("#clear-filters")
    expect_numbers(page, ["INV-1002", "INV-1004", "INV-1003", "INV-2002"])
    expect(page.locator("#search")).to_have_value("")


def test_the_date_filter_applies_on_apply(page, live_server, seeded):
    open_widget(page, live_server, seeded)
    page.fill("#date-from", _day(-25).isoformat())
    page.fill("#date-to", _day(-5).isoformat())
    expect_numbers(page, ["INV-1002", "INV-1004", "INV-1003", "INV-2002"])  # nothing until Apply
    page.click("#apply-dates")
    expect_numbers(page, ["INV-1002", "INV-1004"])
    page.click("[data-view=paid]")  # the filter stays with the tabs
    expect(page.locator("#state-empty .state-title")).to_have_text("No paid invoices match your search")
    page.click("[data-view=unpaid]")
    page.fill("#date-from", _day(0).isoformat())
    page.click("#apply-dates")
    expect(page.locator("#date-error")).to_have_text("The start date is after the end date.")
    expect_numbers(page, [])  # the previous dates' list is no answer to these: not shown under the error
    page.click("#clear-dates")
    expect(page.locator("#date-error")).to_be_hidden()
    expect_numbers(page, ["INV-1002", "INV-1004", "INV-1003", "INV-2002"])


def test_paging_with_next_and_previous(page, live_server, seeded):
    live_server.app.config["EMBED_PER_PAGE"] = 3
    open_widget(page, live_server, seeded)
    expect_numbers(page, ["INV-1002", "INV-1004", "INV-1003"])
    expect(page.locator("#page-info")).to_have_text("1–3 of 4")
    expect(page.locator("#prev-page")).to_be_disabled()
    page.click("#next-page")
    expect_numbers(page, ["INV-2002"])
    expect(page.locator("#page-info")).to_have_text("4–4 of 4")
    expect(page.locator("#next-page")).to_be_disabled()
    page.click("#prev-page")
    expect_numbers(page, ["INV-1002", "INV-1004", "INV-1003"])
    page.click("[data-view=overdue]")
    expect(page.locator("#pager")).to_be_hidden()


# --- pins ----------------------------------------------------------------------------------------


def test_a_pin_toggles_shows_in_the_pinned_tab_and_survives_a_reload(page, live_server, seeded):
    open_widget(page, live_server, seeded)
    page.click("[data-view=pinned]")
    empty = page.locator("#state-empty .state-title")
    expect(empty).to_have_text("No pinned invoices. Pin one to keep it here.")
    page.click("[data-view=overdue]")
    pin = row(page, "INV-1003").locator(".pin")
    expect(pin).to_have_attribute("aria-pressed", "false")
    expect(pin).to_have_accessible_name("Pin INV-1003")
    pin.click()
    expect(pin).to_have_attribute("aria-pressed", "true")
    expect(pin).to_be_enabled()  # the API answered
    page.click("[data-view=pinned]")
    expect_numbers(page, ["INV-1003"])

    page.reload()
    expect(page.locator("#state-loading")).to_be_hidden()
    expect(row(page, "INV-1003").locator(".pin")).to_have_attribute("aria-pressed", "true")
    page.click("[data-view=pinned]")
    expect_numbers(page, ["INV-1003"])
    row(page, "INV-1003").locator(".pin").click()
    expect(page.locator("#state-empty")).to_be_visible()
    expect(page.locator("#invoice-list > li")).to_have_count(0)


# --- payments popover ----------------------------------------------------------------------------


def installments(page):
    return page.locator(".installments:visible tr.installment")


def test_hovering_payments_lists_each_installment(page, live_server, seeded):
    open_widget(page, live_server, seeded)
    part = row(page, "INV-1004")
    part.locator(".payments-link").hover()
    popover = part.locator(".installments")
    expect(popover).to_be_visible()
    expect(popover.locator(".installments-title")).to_have_text("2 payments")
    expect(installments(page).locator(".installment-number")).to_have_text(["1", "2"])
    kinds = installments(page).locator(".installment-kind")  # the kind, then the reference
    expect(kinds).to_have_text(["PaymentFirst", "PaymentSecond"])
    dates = [_day(-15), _day(-8)]
    expect(installments(page).locator(".installment-date")).to_have_text(
        [f"{d:%b} {d.day}, {d.year}" for d in dates]
    )
    expect(installments(page).locator(".installment-amount")).to_have_text(["NZ$100.00", "NZ$150.00"])
    expect(popover.locator(".installments-sums")).to_have_text("Received NZ$250.00 of NZ$1,000.00")
    expect(popover.locator(".installments-left")).to_have_text("NZ$750.00 still to pay")
    expect(part.locator(".payments-link")).to_have_attribute("aria-expanded", "true")
    page.mouse.move(5, 5)
    expect(popover).to_be_hidden()


def test_keyboard_focus_on_payments_shows_installments_and_escape_hides_them(page, live_server, seeded):
    open_widget(page, live_server, seeded)
    page.click("#total-paid .total-main")
    paid = row(page, "INV-1001")
    paid.locator(".pin").focus()
    page.keyboard.press("Tab")  # to the number link
    page.keyboard.press("Tab")  # to Payments
    expect(paid.locator(".payments-link")).to_be_focused()
    expect(paid.locator(".installments")).to_be_visible()
    expect(installments(page).locator(".installment-amount")).to_have_text(["NZ$500.00", "NZ$700.00"])
    expect(installments(page).locator(".installment-kind")).to_have_text(["PaymentDeposit", "Payment"])
    page.keyboard.press("Escape")
    expect(paid.locator(".installments")).to_be_hidden()
    page.keyboard.press("Shift+Tab")
    expect(paid.locator(".installments")).to_be_hidden()


# --- credits, and bills kept out ------------------------------------------------------------------


@pytest.fixture
def credited(live_server, sessions, seeded) -> list[Invoice]:
    """Dee (contact x-dee, record c4): invoices settled by payments and by a credit note and a
    prepayment, in NZD and EUR, and two bills of hers that are no debt of hers to anyone here."""
    d = _day
    rows = [
        invoice(T, "i-3001", "x-dee", number="INV-3001", on=d(-40), due=d(-10), status="PAID",
                total="1000.00", paid="700.00", credited="300.00"),
        invoice(T, "i-3002", "x-dee", number="INV-3002", on=d(-30), due=d(-5), total="500.00",
                paid="100.00", credited="150.00"),
        invoice(T, "i-3003", "x-dee", number="INV-3003", on=d(-3), due=d(27), total="300.00"),
        invoice(T, "i-3004", "x-dee", number="INV-3004", on=d(-8), due=d(22), total="640.00",
                credited="40.00", currency="EUR", rate="0.55"),
        invoice(T, "i-3901", "x-dee", number="INV-3901", on=d(-4), due=d(-1), total="999.00", type="ACCPAY"),
        invoice(T, "i-3902", "x-dee", number="INV-3902", on=d(-50), due=d(-20), status="PAID",
                total="555.00", paid="555.00", type="ACCPAY"),
    ]
    rows[0].fully_paid_on = d(-12)  # its last payment, as Xero's FullyPaidOnDate says
    with transaction(sessions) as s:
        s.add_all(
            [
                contact(T, "x-dee", "dee@example.com", name="Dee Jones"),
                *rows,
                payment(T, "p-3001a", "i-3001", "400.00", d(-35), reference="Bank"),
                allocation(T, "i-3001", "credit_note", "cn-12", "300.00", d(-25), number="CN-0012"),
                payment(T, "p-3001b", "i-3001", "300.00", d(-12)),
                allocation(T, "i-3002", "prepayment", "pp-1", "150.00", d(-28)),
                payment(T, "p-3002", "i-3002", "100.00", d(-20), reference="Card"),
                allocation(T, "i-3004", "credit_note", "cn-13", "40.00", d(-6), number="CN-0013"),
                payment(T, "p-3902", "i-3902", "555.00", d(-21)),
            ]
        )
    response = live_server.app.test_client().put(
        "/api/v1/contacts/c4", json={"name": "c4", "email": "dee@example.com"},
        headers={"Authorization": f"Bearer {seeded.admin_key}"},
    )
    assert response.status_code == 200
    return rows


CURRENCIES = {"NZD": "NZ$", "EUR": "€"}  # the organisation's own first, as the widget orders them


def _money(amount: Decimal, currency: str) -> str:
    return CURRENCIES[currency] + f"{amount:,.2f}"


def test_a_credit_note_is_a_numbered_line_of_the_popover_in_date_order(page, live_server, seeded, credited):
    open_widget(page, live_server, seeded, record="c4")
    page.click("[data-view=paid]")
    settled = row(page, "INV-3001")
    expect(settled.locator(".status")).to_have_text("Paid · 2 payments, 1 credit")
    settled.locator(".payments-link").hover()
    popover = settled.locator(".installments")
    expect(popover.locator(".installments-title")).to_have_text("2 payments, 1 credit note")
    lines = installments(page)
    expect(lines.locator(".installment-number")).to_have_text(["1", "2", "3"])
    expect(lines.locator(".installment-kind")).to_have_text(["PaymentBank", "Credit note CN-0012", "Payment"])
    expect(lines.locator(".installment-amount")).to_have_text(["NZ$400.00", "NZ$300.00", "NZ$300.00"])
    dates = [_day(-35), _day(-25), _day(-12)]
    expect(lines.locator(".installment-date")).to_have_text([f"{d:%b} {d.day}, {d.year}" for d in dates])
    expect(popover.locator("tr.installment-credit-note")).to_have_attribute("data-document-id", "cn-12")
    expect(popover.locator(".installments-sums")).to_have_text(
        "Received NZ$700.00 · Credited NZ$300.00 of NZ$1,000.00"
    )
    expect(popover.locator(".installments-left")).to_have_text("Nothing left to pay")

    page.click("[data-view=overdue]")  # a prepayment before the payment; what is left to pay
    part = row(page, "INV-3002")
    expect(part.locator(".status")).to_have_text("Overdue · 1 payment, 1 credit")
    part.locator(".payments-link").focus()
    expect(installments(page).locator(".installment-kind")).to_have_text(["Prepayment", "PaymentCard"])
    expect(part.locator(".installments-sums")).to_have_text(
        "Received NZ$100.00 · Credited NZ$150.00 of NZ$500.00"
    )
    expect(part.locator(".installments-left")).to_have_text("NZ$250.00 still to pay")


def test_credited_only_invoice_offers_its_credits(page, live_server, seeded, credited):
    open_widget(page, live_server, seeded, record="c4")
    only = row(page, "INV-3004")
    expect(only.locator(".status")).to_have_text("Partially paid · 1 credit")
    expect(only.locator(".payments-link")).to_have_text("Credits")
    only.locator(".payments-link").hover()
    expect(installments(page).locator(".installment-kind")).to_have_text(["Credit note CN-0013"])
    expect(only.locator(".installments-sums")).to_have_text("Credited €40.00 of €640.00")


def test_the_totals_say_received_credited_and_still_to_pay_and_leave_bills_out(
    page, live_server, seeded, credited
):
    sales = [i for i in credited if i.type == "ACCREC" and i.status in ("AUTHORISED", "PAID")]
    unpaid = [i for i in sales if i.status == "AUTHORISED" and i.amount_due > 0]
    overdue = [i for i in unpaid if i.due_date < _day(0)]

    def sums(field: str, which: list[Invoice]) -> list[str]:
        """Per currency, the organisation's own first; a currency with nothing in it shows nothing."""
        added = {c: Decimal(0) for c in CURRENCIES}
        for i in which:
            added[i.currency_code] += getattr(i, field)
        return [_money(a, c) for c, a in added.items() if a]

    def counted(field: str) -> str:
        return f"{sum(1 for i in sales if getattr(i, field) > 0)} invoices"

    assert sums("amount_paid", sales) == ["NZ$800.00"]  # the seeded figures, spelled out
    assert sums("amount_credited", sales) == ["NZ$450.00", "€40.00"]
    assert sums("amount_due", unpaid) == ["NZ$550.00", "€600.00"]
    open_widget(page, live_server, seeded, record="c4")
    expect(page.locator(".total-box .total-label")).to_have_text(["Received", "Credited", "Still to pay"])
    expect(page.locator("#total-paid .total-figure")).to_have_text(sums("amount_paid", sales))  # one currency
    page.click("#total-credited .total-toggle")
    expect(page.locator("#total-credited .total-amount")).to_have_text(sums("amount_credited", sales))
    page.click("#total-unpaid .total-toggle")
    expect(page.locator("#total-unpaid .total-amount")).to_have_text(sums("amount_due", unpaid))
    expect(page.locator("#total-paid .total-count")).to_have_text(counted("amount_paid"))
    expect(page.locator("#total-credited .total-count")).to_have_text(counted("amount_credited"))
    expect(page.locator("#total-unpaid .total-count")).to_contain_text(f"{len(unpaid)} invoices")
    assert sums("amount_due", overdue) == ["NZ$250.00"]  # one currency: exact
    expect(page.locator("#total-unpaid .overdue-note")).to_have_text("NZ$250.00 overdue")
    expect(page.locator("#total-paid .total-toggle")).to_be_hidden()
    expect(page.locator("#total-credited .total-main")).not_to_have_attribute("aria-pressed", "true")

    expected = {
        "unpaid": ["INV-3003", "INV-3004", "INV-3002"],
        "overdue": ["INV-3002"],
        "open": ["INV-3003", "INV-3004"],
        "paid": ["INV-3001"],
    }
    for view, shown in expected.items():  # the bills are in no list
        page.click(f"[data-view={view}]")
        expect_numbers(page, shown)
        expect(page.locator("#invoice-list > li .type")).to_have_text(["Sales invoice"] * len(shown))


@pytest.mark.parametrize("width", [340, 420])
def test_three_totals_fit_a_sidebar_without_cutting_an_amount(page, live_server, seeded, credited, width):
    page.set_viewport_size({"width": width, "height": 700})
    open_widget(page, live_server, seeded, record="c4")
    expect(page.locator("#total-credited")).to_be_visible()
    cut = page.evaluate(
        "[...document.querySelectorAll('.total-figure, .total-headline, .total-count, .total-toggle')]"
        ".filter(e => e.scrollWidth > e.clientWidth)"
        ".map(e => e.textContent)"
    )
    assert cut == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width


# --- states ----------------------------------------------------------------------------------------


def test_loading_shows_until_the_first_answer(page, live_server, seeded):
    held = []  # the first answer is held back; later ones pass
    page.route(
        "**/api/v1/contacts/c1/invoices*",
        lambda route: route.continue_() if held else held.append(route),
    )
    page.goto(widget_url(live_server, seeded))
    expect(page.locator("#state-loading")).to_be_visible()
    expect(page.locator("#state-loading")).to_have_text("Loading invoices…")
    while not held:
        page.wait_for_timeout(20)
    page.wait_for_timeout(200)
    expect(page.locator("#state-loading")).to_be_visible()
    held[0].continue_()
    expect(page.locator("#state-loading")).to_be_hidden()
    expect(page.locator("#invoice-list > li")).to_have_count(4)


def test_a_record_without_invoices_says_none_are_awaiting_payment(page, live_server, seeded):
    open_widget(page, live_server, seeded, record="c3")
    expect(page.locator("#state-empty .state-title")).to_have_text("No invoices awaiting payment")
    expect(page.locator("#total-unpaid .total-figure")).to_have_text("None")
    expect(page.locator("#clear-filters")).to_be_hidden()


def test_an_expired_link_says_so(page, live_server, seeded, monkeypatch):
    url = widget_url(live_server, seeded)
    real = datetime.now(UTC)

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return real + timedelta(hours=1, seconds=1)

    monkeypatch.setattr("views.widget.datetime", Later)
    page.goto(url)
    expect(page.locator("#state-error")).to_be_visible()
    expect(page.locator("#state-error")).to_contain_text("This invoice view has expired.")


def test_the_widget_shows_an_error_when_its_token_stops_working(page, live_server, seeded, sessions):
    live_server.app.config["EMBED_POLL_SECONDS"] = 0.5
    open_widget(page, live_server, seeded)
    with transaction(sessions) as s:
        s.execute(update(ApiKey).where(ApiKey.scope == "read").values(revoked_at=datetime.now(UTC)))
    expect(page.locator("#state-error")).to_be_visible()
    expect(page.locator("#state-error")).to_contain_text("its CRM access key was revoked")  # not "expired"
    expect(page.locator("#invoice-list")).to_be_hidden()
    expect(page.locator("#retry")).to_be_hidden()


def test_a_failing_service_shows_an_error_and_recovers(page, live_server, seeded):
    live_server.app.config["EMBED_POLL_SECONDS"] = 0.5
    open_widget(page, live_server, seeded)
    page.route("**/api/v1/**", lambda route: route.fulfill(status=503, json={"error": "down"}))
    expect(page.locator("#state-error")).to_contain_text("could not answer (503). Trying again…")
    expect(page.locator("#invoice-list > li")).to_have_count(4)  # what we had stays on screen
    page.unroute("**/api/v1/**")
    expect(page.locator("#state-error")).to_be_hidden()


# --- refreshing itself -------------------------------------------------------------------------------


def _pay(
    sessions, invoice_id: str, payment_id: str, amount: str, *, status: str, due: str, paid: str
) -> None:
    """What the worker does when Xero reports a payment: a newer invoice row, and the payment."""
    now = datetime.now(UTC)
    with transaction(sessions) as s:
        inv = s.get(Invoice, (T, invoice_id))
        fields = {c.name: getattr(inv, c.name) for c in Invoice.__table__.columns if c.name != "synced_at"}
        s.expunge(inv)
        newer = max(now, inv.updated_utc) + timedelta(seconds=1)  # the mirror keeps only newer rows
        fields.update(status=status, amount_due=Decimal(due), amount_paid=Decimal(paid), updated_utc=newer)
        mirror.upsert_invoices(s, T, [fields], now)
        p = payment(T, payment_id, invoice_id, amount, now.date())
        row_ = {c.name: getattr(p, c.name) for c in p.__table__.columns if c.name != "synced_at"}
        mirror.upsert_payments(s, T, [{**row_, "updated_utc": now}], now)


def test_a_payment_in_the_mirror_appears_without_a_reload(page, live_server, seeded, sessions):
    """At the default poll interval (3 s), within DESIGN's 5 s."""
    open_widget(page, live_server, seeded)
    kept = row(page, "INV-2002")
    kept.locator(".pin").evaluate("el => { el.dataset.marker = 'same-node'; el.focus(); }")

    started = time.monotonic()
    _pay(sessions, "i-1003", "p-1003", "100.00", status="AUTHORISED", due="200.00", paid="100.00")
    part = row(page, "INV-1003")
    expect(part.locator(".status")).to_have_text("Overdue · 1 payment", timeout=5_000)
    expect(part.locator(".balance .value")).to_have_text("NZ$200.00")
    expect(part.locator(".payments-link")).to_be_visible()
    assert time.monotonic() - started < 5

    # Rows whose data did not change are the same nodes: focus and popovers are not disturbed.
    expect(kept.locator(".pin[data-marker=same-node]")).to_be_focused()

    started = time.monotonic()
    _pay(sessions, "i-1002", "p-1002", "450.00", status="PAID", due="0", paid="450.00")
    expect_numbers_within = page.locator("#invoice-list > li .number")
    expect(expect_numbers_within).to_have_text(["INV-1004", "INV-1003", "INV-2002"], timeout=5_000)
    expect(page.locator("#total-paid .total-amount")).to_have_text(["NZ$2,000.00", "€80.00"])  # +100 +450
    assert time.monotonic() - started < 5
    part.locator(".payments-link").hover()
    expect(installments(page).locator(".installment-amount")).to_have_text(["NZ$100.00"])


def test_an_open_popover_follows_a_new_installment(page, live_server, seeded, sessions):
    live_server.app.config["EMBED_POLL_SECONDS"] = 0.5
    open_widget(page, live_server, seeded)
    part = row(page, "INV-1004")
    part.locator(".payments-link").focus()
    expect(installments(page)).to_have_count(2)
    _pay(sessions, "i-1004", "p-1004c", "50.00", status="AUTHORISED", due="700.00", paid="300.00")
    expect(part.locator(".status")).to_have_text("Partially paid · 3 payments")
    expect(installments(page).locator(".installment-amount")).to_have_text(
        ["NZ$100.00", "NZ$150.00", "NZ$50.00"]
    )
    expect(part.locator(".payments-link")).to_be_focused()


def test_polling_pauses_while_the_page_is_hidden(page, live_server, seeded):
    live_server.app.config["EMBED_POLL_SECONDS"] = 0.5
    open_widget(page, live_server, seeded)
    calls = []
    page.on("request", lambda r: calls.append(r.url) if "/api/v1/" in r.url else None)
    page.wait_for_timeout(1200)
    assert calls, "the widget polls while visible"
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_timeout(300)  # a request already on its way may still land
    calls.clear()
    page.wait_for_timeout(1500)
    assert calls == []
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_timeout(300)
    assert calls, "it refreshes as soon as it is visible again"


@pytest.mark.parametrize("width", [340, 360, 420])
def test_it_fits_a_sidebar_without_sideways_scrolling(page, live_server, seeded, width):
    page.set_viewport_size({"width": width, "height": 700})
    open_widget(page, live_server, seeded)
    row(page, "INV-1004").locator(".payments-link").hover()
    expect(installments(page)).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    fits = page.evaluate("(t => t.scrollWidth <= t.clientWidth)(document.querySelector('.tabs'))")
    if not fits:  # every tab in view, or an arrow that says more are there
        expect(page.locator(".tabs-more-right")).to_be_visible()


# --- screenshots -----------------------------------------------------------------------------------


def test_screenshots(page, live_server, seeded, credited, tmp_path):
    """docs/widget.png and docs/widget-payments.png, 360 px wide, when WIDGET_SCREENSHOTS=docs (see
    docs/screenshots.py); otherwise into the test's temporary directory. Dee's record: money
    received, credited and still to pay, and a paid invoice settled partly by a credit note."""
    out = DOCS if os.environ.get("WIDGET_SCREENSHOTS") == "docs" else tmp_path
    out.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 360, "height": 560})  # full_page then crops to the content
    open_widget(page, live_server, seeded, record="c4")
    row(page, "INV-3003").locator(".pin").click()
    expect(row(page, "INV-3003").locator(".pin")).to_be_enabled()
    page.mouse.move(0, 0)
    page.screenshot(path=out / "widget.png", full_page=True)
    page.click("#total-paid .total-main")
    page.set_viewport_size({"width": 360, "height": 900})
    row(page, "INV-3001").locator(".payments-link").hover()
    expect(installments(page)).to_have_count(3)
    bottom = page.evaluate(
        "Math.max(...[...document.querySelectorAll('.footer, .installments:not([hidden])')]"
        ".map(e => e.getBoundingClientRect().bottom))"
    )
    clip = {"x": 0, "y": 0, "width": 360, "height": bottom + 12}
    page.screenshot(path=out / "widget-payments.png", clip=clip)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scrolling
    assert (out / "widget.png").stat().st_size > 10_000
