"""The widget in a CRM sidebar from 320 px to a full page: nothing holding money or a label is cut
or runs out of its box, the tabs fit or visibly scroll, and the states a sales person meets
(the service unreachable, an invalid date range, a search that matches in another view, stale
data, dark mode) say what they are. Polls are conditional: an unchanged view answers 304.

Eve (record c5) buys in five currencies (NZD, the organisation's own, AUD, USD, EUR, GBP),
with paid, open, overdue and credited invoices and bills of hers, in amounts long enough to
fill a box.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from store.db import transaction
from store.models import ApiKey, InboxEvent, SyncState
from tests.browser.test_widget import DOCS, Seeded, T, _day, expect, open_widget, row, seeded, widget_url  # noqa: F401 (fixtures)
from tests.integration.mirror_rows import allocation, contact, invoice, payment

RECORD = "c5"
# (number, status, currency, rate (units per NZD), total, paid, credited, due in days, type)
EVE = [
    ("INV-5001", "PAID", "NZD", None, "48250.00", "48250.00", "0", -30, "ACCREC"),
    ("INV-5002", "AUTHORISED", "NZD", None, "37135.90", "12000.00", "0", 15, "ACCREC"),
    ("INV-5003", "AUTHORISED", "AUD", "0.91", "21980.40", "0", "0", -12, "ACCREC"),
    ("INV-5004", "PAID", "USD", "0.59", "15400.00", "15400.00", "0", -40, "ACCREC"),
    ("INV-5005", "AUTHORISED", "USD", "0.59", "9999.99", "0", "0", 25, "ACCREC"),
    ("INV-5006", "AUTHORISED", "EUR", "0.55", "49432.45", "0", "2500.00", -3, "ACCREC"),
    ("INV-5007", "PAID", "GBP", "0.47", "7250.50", "7000.50", "250.00", -20, "ACCREC"),
    ("INV-5008", "AUTHORISED", "GBP", "0.47", "12500.00", "0", "0", 10, "ACCREC"),
    ("BILL-5901", "AUTHORISED", "NZD", None, "88000.00", "0", "0", -2, "ACCPAY"),
    ("BILL-5902", "PAID", "AUD", "0.91", "3100.00", "3100.00", "0", -50, "ACCPAY"),
]
WIDTHS = [320, 360, 1024]
# every element that holds money or a label: none may be cut or run out of its box
HOLDERS = ", ".join([
    ".total-label", ".total-headline", ".total-figure", ".total-count", ".overdue-note", ".total-toggle",
    ".total-amount", "[role=tab]", ".tab-label", ".tab-count", ".number", ".meta", ".balance", ".total",
    ".status", ".payments-link", ".page-info", ".synced", ".stale-note", ".elsewhere", ".state-title",
    ".state-text", ".field-error", "label", ".button",
])


@pytest.fixture
def eve(live_server, sessions, seeded: Seeded) -> Seeded:
    d = _day
    rows = []
    for n, (number, status, currency, rate, total, paid, credited, due, kind) in enumerate(EVE):
        rows.append(invoice(
            T, f"i-{number.lower()}", "x-eve", number=number, on=d(-60 + n * 5), due=d(due), status=status,
            total=total, paid=paid, credited=credited, currency=currency, rate=rate, type=kind,
        ))
    with transaction(sessions) as s:
        s.add_all([
            contact(T, "x-eve", "eve@example.com", name="Eve Grant"),
            *rows,
            payment(T, "p-5002a", "i-inv-5002", "12000.00", d(-5), reference="Deposit"),
            payment(T, "p-5007", "i-inv-5007", "7000.50", d(-22)),
            allocation(T, "i-inv-5006", "credit_note", "cn-50", "2500.00", d(-4), number="CN-0050"),
            allocation(T, "i-inv-5007", "credit_note", "cn-51", "250.00", d(-21), number="CN-0051"),
        ])
    client = live_server.app.test_client()
    response = client.put(
        f"/api/v1/contacts/{RECORD}", json={"name": "Eve", "email": "eve@example.com"},
        headers={"Authorization": f"Bearer {seeded.admin_key}"},
    )
    assert response.status_code == 200
    return seeded


def cut_or_overflowing(page) -> list[str]:
    """Visible money and label holders whose content is wider than their box, or whose box runs
    past the page's right edge."""
    return page.evaluate(
        """(selector) => [...document.querySelectorAll(selector)]
            .filter(e => e.offsetParent !== null && e.closest('.tabs') === null || e.matches('[role=tab]'))
            .filter(e => e.offsetParent !== null)
            .filter(e => e.scrollWidth > e.clientWidth + 0.5 ||
                         e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5 &&
                         e.closest('.tabs') === null)
            .map(e => `${e.className || e.tagName}: ${e.textContent.trim()} (${e.scrollWidth} > ${e.clientWidth})`)""",
        HOLDERS,
    )


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


# --- layout --------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_nothing_holding_money_or_a_label_is_cut_at_any_width(page, live_server, eve, width, scheme):
    page.emulate_media(color_scheme=scheme)
    page.set_viewport_size({"width": width, "height": 900})
    open_widget(page, live_server, eve, record=RECORD)
    expect(page.locator("#invoice-list > li")).to_have_count(5)
    expect(page.locator("#total-credited")).to_be_visible()
    assert cut_or_overflowing(page) == []
    assert no_sideways_scroll(page)
    for toggle in page.locator(".total-toggle:visible").all():  # the exact amounts, opened
        toggle.click()
    expect(page.locator(".total-amounts:visible")).to_have_count(3)
    assert cut_or_overflowing(page) == []
    row(page, "INV-5002").locator(".payments-link").hover()
    expect(page.locator(".installments:visible")).to_have_count(1)
    assert no_sideways_scroll(page)
    for view in ("overdue", "paid", "pinned"):
        page.locator(f"[data-view={view}]").click()
        expect(page.locator(f"[data-view={view}]")).to_have_attribute("aria-selected", "true")
        assert cut_or_overflowing(page) == [], view
        assert no_sideways_scroll(page), view


def test_each_box_shows_one_converted_figure_and_the_exact_amounts_a_tap_away(page, live_server, eve):
    page.set_viewport_size({"width": 360, "height": 900})
    open_widget(page, live_server, eve, record=RECORD)
    summary = live_server.app.test_client().get(
        f"/api/v1/contacts/{RECORD}/summary", headers={"Authorization": f"Bearer {eve.read_key}"}
    ).json
    unpaid = summary["unpaid"]["converted"][0]
    assert unpaid["currency"] == "NZD" and len(summary["unpaid"]["by_currency"]) == 5
    whole = f"{round(float(unpaid['amount'])):,}"  # display rounding only, as the widget does it
    box = page.locator("#total-unpaid")
    expect(box.locator(".total-figure")).to_have_text(f"≈ NZ${whole}")
    expect(box.locator(".total-toggle")).to_have_text("converted · 5\u00a0currencies")
    expect(box.locator(".total-amounts")).to_be_hidden()
    box.locator(".total-toggle").click()
    expect(box.locator(".total-toggle")).to_have_attribute("aria-expanded", "true")
    expect(box.locator(".total-amount:not(.total-amount-overdue)")).to_have_text(
        ["NZ$25,135.90", "A$21,980.40", "€46,932.45", "£12,500.00", "$9,999.99"]
    )
    expect(box.locator(".overdue-note")).to_contain_text("overdue")
    expect(box.locator(".overdue-note")).to_contain_text("≈ NZ$")
    expect(page.locator("[data-view=unpaid]")).to_have_attribute("aria-selected", "true")  # no tab switch
    # one currency: the amount exactly, nothing to open
    open_widget(page, live_server, eve, record="c2")
    expect(page.locator("#total-unpaid .total-figure")).to_have_text("NZ$999.00")
    expect(page.locator("#total-unpaid .total-toggle")).to_be_hidden()
    open_widget(page, live_server, eve, record="c3")
    expect(page.locator("#total-unpaid .total-figure")).to_have_text("None")
    expect(page.locator("#total-unpaid .total-toggle")).to_be_hidden()


def test_every_tab_has_a_count_and_the_tabs_scroll_visibly_when_they_do_not_fit(page, live_server, eve):
    page.set_viewport_size({"width": 320, "height": 800})
    open_widget(page, live_server, eve, record=RECORD)
    expect(page.locator("[role=tab] .tab-count")).to_have_text(["5", "2", "3", "3", "0"])
    expect(page.locator("[data-view=pinned]")).to_have_accessible_name("Pinned, 0 invoices")
    fits = page.evaluate("(t => t.scrollWidth <= t.clientWidth)(document.querySelector('.tabs'))")
    if not fits:  # then a fade and an arrow say that more tabs are there
        expect(page.locator(".tabs-more-right")).to_be_visible()
        expect(page.locator(".tabs-wrap")).to_have_class("tabs-wrap more-right")
        page.locator(".tabs-more-right").click()
        expect(page.locator(".tabs-more-left")).to_be_visible()
    page.locator("[data-view=open]").focus()
    page.keyboard.press("End")
    expect(page.locator("[data-view=pinned]")).to_be_focused()
    in_view = (
        "(() => { const t = document.querySelector('[data-view=pinned]').getBoundingClientRect();"
        " return t.left >= 0 && t.right <= window.innerWidth; })()"
    )
    for _ in range(50):  # a smooth scroll: the selected tab comes into view
        if page.evaluate(in_view):
            break
        page.wait_for_timeout(20)
    assert page.evaluate(in_view)
    assert no_sideways_scroll(page)


# --- states ----------------------------------------------------------------------------------------


def test_an_unreachable_service_clears_the_list_of_another_view_and_greys_the_same_one(
    page, live_server, eve
):
    live_server.app.config["EMBED_POLL_SECONDS"] = 0.5
    open_widget(page, live_server, eve, record=RECORD)
    expect(page.locator("#invoice-list > li")).to_have_count(5)
    page.route("**/api/v1/**", lambda route: route.abort())
    page.click("[data-view=paid]")
    expect(page.locator("[data-view=paid]")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#state-error")).to_contain_text("Cannot reach the invoice service")
    expect(page.locator("#invoice-list > li")).to_have_count(0)  # Unpaid's rows are not Paid's
    expect(page.locator("#invoice-list")).to_be_hidden()
    page.unroute("**/api/v1/**")
    expect(page.locator("#state-error")).to_be_hidden()
    expect(page.locator("#invoice-list > li .number")).to_have_text(["INV-5007", "INV-5004", "INV-5001"])

    page.route("**/api/v1/**", lambda route: route.abort())  # the same view's poll fails: greyed
    expect(page.locator("#state-error")).to_be_visible()
    expect(page.locator("#invoice-list")).to_have_class("invoice-list unverified")
    expect(page.locator("#invoice-list > li")).to_have_count(3)
    page.unroute("**/api/v1/**")
    expect(page.locator("#invoice-list")).to_have_class("invoice-list")


def test_an_invalid_date_range_shows_no_results_under_its_error(page, live_server, eve):
    live_server.app.config["EMBED_POLL_SECONDS"] = 0.5
    open_widget(page, live_server, eve, record=RECORD)
    page.fill("#date-from", _day(0).isoformat())
    page.fill("#date-to", _day(-90).isoformat())
    page.click("#apply-dates")
    expect(page.locator("#date-error")).to_have_text("The start date is after the end date.")
    expect(page.locator("#invoice-list > li")).to_have_count(0)
    page.wait_for_timeout(1200)  # polls come and go: still nothing under the error
    expect(page.locator("#invoice-list > li")).to_have_count(0)
    expect(page.locator("#state-empty")).to_be_hidden()
    page.click("#clear-dates")
    expect(page.locator("#date-error")).to_be_hidden()
    expect(page.locator("#invoice-list > li")).to_have_count(5)


def test_a_search_says_in_which_other_views_the_number_is(page, live_server, eve):
    open_widget(page, live_server, eve, record=RECORD)
    page.fill("#search", "INV-5004")
    expect(page.locator("#state-empty .state-title")).to_have_text(
        "No invoices awaiting payment match your search"
    )
    elsewhere = page.locator("#elsewhere")
    expect(elsewhere).to_have_text("“INV-5004” is under Paid (1)")
    expect(elsewhere.locator("button")).to_have_attribute("data-goto", "paid")
    elsewhere.locator("button", has_text="Paid").click()
    expect(page.locator("[data-view=paid]")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#invoice-list > li .number")).to_have_text(["INV-5004"])
    expect(elsewhere).to_be_hidden()
    page.fill("#search", "INV-500")  # matches here and elsewhere
    expect(page.locator("#invoice-list > li")).to_have_count(3)
    expect(elsewhere).to_have_text("Also under Unpaid (5), Overdue (2) and Open (3)")


def test_synced_ago_keeps_counting_and_a_lagging_sync_is_flagged_with_its_reason(
    page, live_server, eve, sessions
):
    live_server.app.config["EMBED_POLL_SECONDS"] = 0.5
    with transaction(sessions) as s:
        s.execute(update(SyncState).where(SyncState.tenant_id == T)
                  .values(last_success_at=datetime.now(UTC) - timedelta(seconds=20)))
    open_widget(page, live_server, eve, record=RECORD)
    synced = page.locator("#synced")
    expect(synced).to_have_text("Synced 20 s ago")
    expect(synced).to_have_text("Synced 22 s ago", timeout=4_000)  # between polls too
    expect(page.locator("#stale")).to_be_hidden()
    with transaction(sessions) as s:
        s.add(InboxEvent(
            dedupe_key="late-1", tenant_id=T, tenant_type="ORGANISATION", category="INVOICE",
            event_type="UPDATE", resource_id="i-inv-5002", event_date_utc=datetime.now(UTC),
            received_at=datetime.now(UTC) - timedelta(minutes=7), state="pending",
        ))
    stale = page.locator("#stale")
    expect(stale).to_be_visible()
    expect(stale).to_have_text("Changes made in Xero have waited over 5 minutes to be copied here: "
                               "these figures may be behind.")
    with transaction(sessions) as s:
        s.execute(update(InboxEvent).values(state="done"))
    expect(stale).to_be_hidden()


def test_dark_mode_follows_the_system(page, live_server, eve):
    page.emulate_media(color_scheme="dark")
    open_widget(page, live_server, eve, record=RECORD)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    ink = page.evaluate("getComputedStyle(document.body).color")
    assert background == "rgb(20, 25, 31)" and ink == "rgb(228, 233, 238)"
    field = page.evaluate("getComputedStyle(document.querySelector('#search')).backgroundColor")
    assert field == "rgb(27, 34, 42)"
    page.emulate_media(color_scheme="light")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"


def test_an_unchanged_poll_is_a_304_with_no_body_and_the_view_stays(page, live_server, eve):
    live_server.app.config["EMBED_POLL_SECONDS"] = 0.5
    seen: list = []
    page.on("response", lambda r: seen.append(r) if "/api/v1/" in r.url else None)
    open_widget(page, live_server, eve, record=RECORD)
    page.wait_for_timeout(1600)  # three polls or so
    polls = [r for r in seen if "/summary" in r.url or "/invoices" in r.url]
    first, later = polls[:2], polls[2:]
    assert [r.status for r in first] == [200, 200] and all(r.headers.get("etag") for r in first)
    unchanged = [r for r in later if r.status == 304]
    assert len(unchanged) >= 4, [r.status for r in later]
    for response in unchanged:
        assert response.request.headers.get("if-none-match") == next(
            r.headers["etag"] for r in first if r.url == response.url
        )
        assert response.request.sizes()["responseBodySize"] == 0  # no body came
    expect(page.locator("#invoice-list > li")).to_have_count(5)
    expect(page.locator("#total-unpaid .total-figure")).to_contain_text("≈ NZ$")
    expect(page.locator("#state-error")).to_be_hidden()


# --- refusals ----------------------------------------------------------------------------------------


def test_a_revoked_key_says_so_not_expired(page, live_server, eve, sessions):
    live_server.app.config["EMBED_POLL_SECONDS"] = 0.5
    open_widget(page, live_server, eve, record=RECORD)
    with transaction(sessions) as s:
        s.execute(update(ApiKey).where(ApiKey.scope == "read").values(revoked_at=datetime.now(UTC)))
    expect(page.locator("#state-error")).to_contain_text("its CRM access key was revoked", timeout=5_000)
    expect(page.locator("#state-error")).not_to_contain_text("expired")
    expect(page.locator("#invoice-list")).to_be_hidden()


# --- screenshots ---------------------------------------------------------------------------------------


def test_screenshots(page, live_server, eve, tmp_path):
    """docs/widget-currencies.png and docs/widget-dark.png at 360 px when WIDGET_SCREENSHOTS=docs
    (docs/screenshots.py); otherwise into the test's temporary directory."""
    out = DOCS if os.environ.get("WIDGET_SCREENSHOTS") == "docs" else Path(tmp_path)
    out.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 360, "height": 560})
    open_widget(page, live_server, eve, record=RECORD)
    page.locator("#total-unpaid .total-toggle").click()
    page.mouse.move(0, 0)
    page.screenshot(path=out / "widget-currencies.png", full_page=True)
    page.emulate_media(color_scheme="dark")
    page.locator("#total-unpaid .total-toggle").click()
    page.screenshot(path=out / "widget-dark.png", full_page=True)
    assert no_sideways_scroll(page)
    assert (out / "widget-dark.png").stat().st_size > 10_000
