"""The ageing bar and the payment-behaviour sentence of the widget, in a real browser against the
real app: from 320 px to a full page, light and dark, nothing cut; a segment (or its legend
entry) lists its bucket; the sentence says what the summary's `behaviour` block says.

Fay (record c6) owes NZD and AUD in all five buckets (one invoice 305 days overdue), has a
bill of hers overdue (no debt of hers: in no bucket, in no list), settled five invoices in the
last 12 months (4 days early to 21 days late) and three the year before, about on time: her
median is 15.5 days late, 2 of the last 10 on time, paying later than last year. Gus (c7) owes
euros at no usable rate, which the bar cannot size and says so. Cy (c3) owes nothing.

The wording rules (views/static/widget-words.js) are tested through several summaries by
calling them in the page, and one summary is stubbed (page.route) for the states the seeded
records do not reach.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from store.db import transaction
from tests.browser.test_widget import DOCS, Seeded, T, _day, expect, open_widget, row, seeded  # noqa: F401 (fixtures)
from tests.browser.test_widget_layout import HOLDERS, no_sideways_scroll
from tests.integration.mirror_rows import contact, invoice, payment

FAY, GUS = "c6", "c7"
BUCKET_DAYS = {"current": (0, 0), "1-30": (1, 30), "31-60": (31, 60), "61-90": (61, 90), "90+": (91, 10**6)}
AGEING_HOLDERS = ", ".join([
    HOLDERS, ".ageing-entry", ".ageing-label", ".ageing-amount", ".ageing-note", ".behaviour",
    ".behaviour-part", ".bucket-filter", ".bucket-filter-text", ".days-overdue", ".link-button",
])


@pytest.fixture
def fay(live_server, sessions, seeded: Seeded) -> Seeded:
    d = _day
    unpaid = [  # (number, currency, rate, total, paid, due in days)
        ("F-101", "NZD", None, "1200.00", "200.00", 10),   # current, part paid 3 days ago
        ("F-102", "NZD", None, "800.00", "0", -12),        # 1-30
        ("F-104", "NZD", None, "640.00", "0", -19),        # 1-30
        ("F-103", "AUD", "0.91", "2500.00", "0", -45),     # 31-60
        ("F-105", "NZD", None, "3000.00", "0", -75),       # 61-90
        ("F-106", "NZD", None, "450.00", "0", -305),       # 90+
    ]
    settled = [  # (number, due in days, settled in days): a year of them, and the year before
        ("F-201", -100, -88), ("F-202", -130, -126), ("F-203", -160, -165), ("F-204", -190, -169),
        ("F-205", -220, -220), ("F-301", -400, -402), ("F-302", -450, -447), ("F-303", -500, -500),
    ]
    rows: list = [contact(T, "x-fay", "fay@example.com", name="Fay Ito")]
    for number, currency, rate, total, paid, due in unpaid:
        rows.append(invoice(T, f"i-{number.lower()}", "x-fay", number=number, on=d(due - 30), due=d(due),
                            total=total, paid=paid, currency=currency, rate=rate))
    for number, due, on in settled:
        paid_row = invoice(T, f"i-{number.lower()}", "x-fay", number=number, on=d(due - 30), due=d(due),
                           status="PAID", total="500.00", paid="500.00")
        paid_row.fully_paid_on = d(on)
        rows += [paid_row, payment(T, f"p-{number.lower()}", paid_row.invoice_id, "500.00", d(on))]
    rows += [
        payment(T, "p-f101", "i-f-101", "200.00", d(-3), reference="Part"),
        invoice(T, "i-f-bill", "x-fay", number="F-BILL", on=d(-70), due=d(-40), total="99.00", type="ACCPAY"),
        contact(T, "x-gus", "gus@example.com", name="Gus Lee"),
        invoice(T, "i-g-1", "x-gus", number="G-1", on=d(-5), due=d(25), total="300.00"),
        invoice(T, "i-g-2", "x-gus", number="G-2", on=d(-70), due=d(-40), total="640.00", currency="EUR",
                rate=None),
    ]
    with transaction(sessions) as s:
        s.add_all(rows)
    client = live_server.app.test_client()
    for record, email in ((FAY, "fay@example.com"), (GUS, "gus@example.com")):
        response = client.put(f"/api/v1/contacts/{record}", json={"name": record, "email": email},
                              headers={"Authorization": f"Bearer {seeded.admin_key}"})
        assert response.status_code == 200
    return seeded


def summary_of(live_server, seeded: Seeded, record: str) -> dict:
    response = live_server.app.test_client().get(
        f"/api/v1/contacts/{record}/summary", headers={"Authorization": f"Bearer {seeded.read_key}"}
    )
    assert response.status_code == 200
    return response.json


def cut(page) -> list[str]:
    """Visible money and label holders, the ageing bar's and sentence's included, whose content is
    wider than their box or whose box runs past the page's right edge."""
    return page.evaluate(
        """(selector) => [...document.querySelectorAll(selector)]
            .filter(e => e.offsetParent !== null && (e.closest('.tabs') === null || e.matches('[role=tab]')))
            .filter(e => e.scrollWidth > e.clientWidth + 0.5 ||
                         e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5 &&
                         e.closest('.tabs') === null)
            .map(e => `${e.className || e.tagName}: ${e.textContent.trim()} (${e.scrollWidth} > ${e.clientWidth})`)""",
        AGEING_HOLDERS,
    )


def en_us(day: date) -> str:
    return f"{day:%b} {day.day}, {day.year}"  # the widget's dates in the tests' en-US browser


def rgb(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text[text.index("(") + 1:text.index(")")].split(",")[:3])


def contrast(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    def luminance(c):
        lin = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in (x / 255 for x in c)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def segment(page, bucket: str):
    return page.locator(f".ageing-segment[data-bucket='{bucket}']")


def rows_days(page) -> list[int]:
    """Each listed row's days overdue (0 when it shows none)."""
    return page.evaluate(
        "[...document.querySelectorAll('#invoice-list > li')]"
        ".map(li => { const d = li.querySelector('.days-overdue'); return d.hidden ? 0 : +d.dataset.days; })"
    )


# --- layout --------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [320, 1024])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_bar_and_the_sentence_fit_and_their_colours_hold_in_light_and_dark(page, live_server, fay, width, scheme):
    page.emulate_media(color_scheme=scheme)
    page.set_viewport_size({"width": width, "height": 900})
    open_widget(page, live_server, fay, record=FAY)
    summary = summary_of(live_server, fay, FAY)
    expect(page.locator("#ageing")).to_be_visible()
    expect(page.locator(".ageing-segment")).to_have_count(5)
    expect(page.get_by_role("group", name="Still to pay by days overdue").get_by_role("button")).to_have_count(5)
    expect(page.locator(".ageing-entry .ageing-label")).to_have_text(
        ["Current", "1-30 days", "31-60 days", "61-90 days", "90+ days"]
    )
    expect(page.locator("#behaviour")).to_be_visible()
    expect(row(page, "F-106").locator(".days-overdue")).to_have_text("305 days overdue")
    assert cut(page) == []
    assert no_sideways_scroll(page)

    # sized by the converted figure (two currencies): wider for more, in the API's proportions
    widths = page.evaluate(
        "[...document.querySelectorAll('.ageing-segment')].map(e => e.getBoundingClientRect().width)"
    )
    amounts = [float(b["converted"][0]["amount"]) for b in summary["aging"]]  # a proportion, not money
    assert sorted(range(5), key=lambda i: widths[i]) == sorted(range(5), key=lambda i: amounts[i])
    for w, a in zip(widths, amounts, strict=True):
        if w > 8.5:  # above the minimum width: the share of the bar (less the gaps) is the share of the amount
            assert abs(w / sum(widths) - a / sum(amounts)) < 0.03, (widths, amounts)

    background = rgb(page.evaluate("getComputedStyle(document.body).backgroundColor"))
    colours = page.evaluate(
        "[...document.querySelectorAll('.ageing-segment')].map(e => getComputedStyle(e).backgroundColor)"
    )
    assert len(set(colours)) == 5
    for colour in colours:  # WCAG's 3:1 for graphics, against this scheme's background
        assert contrast(rgb(colour), background) >= 3, (scheme, colour)
    ink = rgb(page.evaluate("getComputedStyle(document.querySelector('#behaviour')).color"))
    assert contrast(ink, background) >= 4.5

    segment(page, "31-60").click()
    expect(page.locator("#bucket-filter")).to_be_visible()
    expect(page.locator("#invoice-list > li")).to_have_count(1)
    assert cut(page) == []
    assert no_sideways_scroll(page)


def test_rows_say_how_many_days_overdue_in_xeros_words_and_keep_their_layout_at_320(page, live_server, fay):
    page.set_viewport_size({"width": 320, "height": 900})
    open_widget(page, live_server, fay, record=FAY)
    expect(page.locator("#invoice-list > li")).to_have_count(6)
    for number, text in (("F-106", "305 days overdue"), ("F-105", "75 days overdue"), ("F-102", "12 days overdue")):
        expect(row(page, number).locator(".days-overdue")).to_have_text(text)
    expect(row(page, "F-101").locator(".days-overdue")).to_be_hidden()  # not yet due
    # each row's days overdue is beside its status, inside the row, on the status line
    boxes = page.evaluate(
        """[...document.querySelectorAll('#invoice-list > li')].map(li => {
             const d = li.querySelector('.days-overdue'), s = li.querySelector('.status');
             const r = li.getBoundingClientRect(), b = d.getBoundingClientRect(), t = s.getBoundingClientRect();
             return d.hidden ? null : [b.right <= r.right + 0.5, b.top >= t.top - 2, b.bottom <= r.bottom];
           }).filter(Boolean)"""
    )
    assert boxes and all(all(box) for box in boxes), boxes
    assert cut(page) == []
    page.click("[data-view=paid]")
    expect(page.locator("#invoice-list > li")).to_have_count(8)
    expect(page.locator("#invoice-list .days-overdue:visible")).to_have_count(0)  # paid: overdue by nothing


# --- the bar lists its buckets ------------------------------------------------------------------


def test_each_segment_lists_its_bucket_and_the_tab_counts_stay(page, live_server, fay):
    open_widget(page, live_server, fay, record=FAY)
    summary = summary_of(live_server, fay, FAY)
    counts = page.locator("[role=tab] .tab-count").all_inner_texts()
    for bucket in summary["aging"]:
        name, (low, high) = bucket["bucket"], BUCKET_DAYS[bucket["bucket"]]
        seg = segment(page, name)
        expect(seg).to_have_accessible_name(
            f"{bucket['label']}: ≈ NZ${round(float(bucket['converted'][0]['amount'])):,} converted, "
            f"{bucket['count']} invoice{'s' if bucket['count'] != 1 else ''}"
        )
        listed = live_server.app.test_client().get(
            bucket["link"], headers={"Authorization": f"Bearer {fay.read_key}"}
        ).json["invoices"]
        assert len(listed) == bucket["count"]
        seg.click()
        expect(seg).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#invoice-list > li .number")).to_have_text([inv["number"] for inv in listed])
        days = rows_days(page)
        assert all(low <= d <= high for d in days), (name, days)
        expect(page.locator("[data-view=unpaid]")).to_have_attribute("aria-selected", "true")
        assert page.locator("[role=tab] .tab-count").all_inner_texts() == counts  # the whole lists' counts
        expect(page.locator(".ageing-segment[aria-pressed=true]")).to_have_count(1)
    expect(page.locator("#bucket-filter .bucket-filter-text")).to_have_text("Showing invoices over 90 days overdue")
    expect(row(page, "F-106")).to_have_count(1)

    # the legend too; from another tab, a bucket opens Unpaid's
    page.click("[data-view=paid]")
    expect(page.locator("#bucket-filter")).to_be_hidden()  # a tab shows its whole list
    expect(page.locator(".ageing-segment[aria-pressed=true]")).to_have_count(0)
    page.locator(".ageing-entry[data-bucket='1-30']").click()
    expect(page.locator("[data-view=unpaid]")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#invoice-list > li .number")).to_have_text(["F-102", "F-104"])
    expect(page.locator("#bucket-filter")).to_have_text("Showing invoices 1-30 days overdue Show all")
    expect(page.locator(".ageing-entry[data-bucket='1-30']")).to_have_class("ageing-entry selected")

    page.click("#clear-bucket")  # back to the whole list
    expect(page.locator("#bucket-filter")).to_be_hidden()
    expect(page.locator("#invoice-list > li")).to_have_count(6)
    segment(page, "current").click()
    expect(page.locator("#invoice-list > li .number")).to_have_text(["F-101"])
    segment(page, "current").click()  # the chosen segment again: all of them
    expect(page.locator("#invoice-list > li")).to_have_count(6)
    segment(page, "31-60").focus()  # a keyboard does it too
    page.keyboard.press("Enter")
    expect(page.locator("#invoice-list > li .number")).to_have_text(["F-103"])  # no bill: it is nobody's debt here
    page.fill("#search", "F-10")  # with a search, still the bucket
    page.keyboard.press("Enter")
    expect(page.locator("#invoice-list > li .number")).to_have_text(["F-103"])
    page.fill("#search", "F-106")
    page.keyboard.press("Enter")
    expect(page.locator("#state-empty .state-title")).to_have_text("No invoices 31-60 days overdue match your search")


def test_a_bucket_without_a_rate_says_so_and_nothing_unpaid_hides_the_bar(page, live_server, fay):
    page.set_viewport_size({"width": 320, "height": 900})
    open_widget(page, live_server, fay, record=GUS)
    summary = summary_of(live_server, fay, GUS)
    late = next(b for b in summary["aging"] if b["bucket"] == "31-60")
    assert late["converted"][0]["count"] == 0 and late["converted"][0]["unconverted"][0]["currency"] == "EUR"
    expect(page.locator(".ageing-segment")).to_have_count(2)
    expect(segment(page, "31-60")).to_have_class("ageing-segment age-31-60 unsized")
    entry = page.locator(".ageing-entry[data-bucket='31-60']")
    expect(entry.locator(".ageing-amount")).to_have_text("€640.00")  # the exact amount, never a guess
    expect(entry.locator(".ageing-note")).to_have_text("not converted: no rate")
    expect(segment(page, "31-60")).to_have_accessible_name(
        "31-60 days overdue: €640.00 (not converted: no rate), 1 invoice"
    )
    expect(page.locator(".ageing-entry[data-bucket='current'] .ageing-amount")).to_have_text("≈ NZ$300")
    assert cut(page) == []
    segment(page, "31-60").click()
    expect(page.locator("#invoice-list > li .number")).to_have_text(["G-2"])
    expect(row(page, "G-2").locator(".days-overdue")).to_have_text("40 days overdue")

    open_widget(page, live_server, fay, record="c3")  # Cy: nothing to pay, no history
    expect(page.locator("#total-unpaid .total-figure")).to_have_text("None")
    expect(page.locator("#ageing")).to_be_hidden()
    expect(page.locator("#behaviour")).to_have_text("No payment history in the last 12 months.")


def test_one_currency_sizes_the_bar_by_its_own_amounts(page, live_server, fay):
    open_widget(page, live_server, fay, record="c2")  # Bob: one NZD invoice, not yet due
    expect(page.locator(".ageing-segment")).to_have_count(1)
    expect(page.locator(".ageing-entry .ageing-amount")).to_have_text(["NZ$999.00"])  # exact: one currency
    expect(segment(page, "current")).to_have_accessible_name("Current: NZ$999.00, 1 invoice")
    width = page.evaluate("document.querySelector('.ageing-segment').getBoundingClientRect().width")
    bar = page.evaluate("document.querySelector('.ageing-bar').getBoundingClientRect().width")
    assert abs(width - bar) < 0.5  # the whole bar


# --- the sentence ---------------------------------------------------------------------------------


def test_the_sentence_says_what_the_summarys_behaviour_block_says(page, live_server, fay):
    """End to end: the seeded payments through the real API into the sentence."""
    open_widget(page, live_server, fay, record=FAY)
    b = summary_of(live_server, fay, FAY)["behaviour"]
    assert (b["settled_count"], b["open_overdue_count"], b["counted"], b["on_time_count"]) == (5, 5, 10, 2)
    assert (b["median_days_late"], b["year_before_median_days_late"], b["trend"]) == (15.5, 0, "later")
    last = b["last_payment"]
    assert (last["amount"], last["currency"], last["date"], last["count"]) == ("200.00", "NZD", _day(-3).isoformat(), 1)
    expect(page.locator("#behaviour")).to_have_text(
        f"Usually pays {b['median_days_late']} days late; {b['on_time_count']} of the last {b['counted']} on time. "
        f"Paying later than last year. Last payment NZ${last['amount']} on {en_us(date.fromisoformat(last['date']))}."
    )
    expect(page.locator("#behaviour .behaviour-later")).to_have_text("Paying later than last year.")


CASES = [  # (behaviour block, the sentence): WidgetWords.sentence with plain formatting
    ({"counted": 10, "settled_count": 10, "open_overdue_count": 0, "on_time_count": 3, "median_days_late": 12,
      "trend": None, "last_payment": None},
     "Usually pays 12 days late; 3 of the last 10 on time."),
    ({"counted": 10, "settled_count": 10, "open_overdue_count": 0, "on_time_count": 9, "median_days_late": -4,
      "trend": "steady", "last_payment": None},
     "Usually pays 4 days early; 9 of the last 10 on time."),
    ({"counted": 4, "settled_count": 3, "open_overdue_count": 1, "on_time_count": 3, "median_days_late": 0,
      "trend": "earlier", "last_payment": {"date": "2026-11-03", "amount": "500.00", "currency": "NZD", "count": 1}},
     "Usually pays on the due date; 3 of the last 4 on time. Paying earlier than last year. "
     "Last payment NZD 500.00 on 2026-11-03."),
    ({"counted": 6, "settled_count": 6, "open_overdue_count": 0, "on_time_count": 0, "median_days_late": 12.5,
      "trend": "later", "last_payment": {"date": "2026-10-01", "amount": "75.5", "currency": "EUR", "count": 2}},
     "Usually pays 12.5 days late; none of the last 6 on time. Paying later than last year. "
     "Last payment EUR 75.5 on 2026-10-01, in 2 parts."),
    ({"counted": 2, "settled_count": 2, "open_overdue_count": 0, "on_time_count": 1, "median_days_late": 0.5,
      "trend": None, "last_payment": None},
     "Usually pays 0.5 days late; 1 of the last 2 on time."),
    ({"counted": 1, "settled_count": 1, "open_overdue_count": 0, "on_time_count": 0, "median_days_late": 1,
      "trend": None, "last_payment": None},
     "Paid 1 day late; the only invoice in the last 12 months."),
    ({"counted": 1, "settled_count": 0, "open_overdue_count": 1, "on_time_count": 0, "median_days_late": 305,
      "trend": None, "last_payment": None},
     "None paid in the last 12 months; 1 invoice 305 days overdue."),
    ({"counted": 3, "settled_count": 0, "open_overdue_count": 3, "on_time_count": 0, "median_days_late": 40,
      "trend": None, "last_payment": {"date": "2024-01-05", "amount": "10.00", "currency": "NZD", "count": 1}},
     "None paid in the last 12 months; 3 invoices overdue (median 40 days). Last payment NZD 10.00 on 2024-01-05."),
    ({"since": "2025-12-07", "counted": 0, "settled_count": 0, "open_overdue_count": 0, "on_time_count": 0,
      "median_days_late": None, "trend": None, "last_payment": None},
     "No payment history in the last 12 months."),
    ({"since": "2025-12-07", "counted": 0, "settled_count": 0, "open_overdue_count": 0, "on_time_count": 0,
      "median_days_late": None, "trend": None,
      "last_payment": {"date": "2024-06-30", "amount": "99.00", "currency": "AUD", "count": 1}},
     "No payment history in the last 12 months. Last payment AUD 99.00 on 2024-06-30."),
    ({"since": "2025-12-07", "counted": 0, "settled_count": 0, "open_overdue_count": 0, "on_time_count": 0,
      "median_days_late": None, "trend": None,  # a part payment this year, of an invoice not yet due
      "last_payment": {"date": "2026-12-01", "amount": "99.00", "currency": "AUD", "count": 1}},
     "Last payment AUD 99.00 on 2026-12-01."),
]


def test_the_wording_rules_through_several_summaries(page, live_server, fay):
    open_widget(page, live_server, fay, record="c3")
    said = page.evaluate(
        "cases => cases.map(b => WidgetWords.sentence(b, WidgetWords.PLAIN))", [case for case, _ in CASES]
    )
    assert said == [text for _, text in CASES]
    assert page.evaluate("WidgetWords.sentence(null)") == ""
    assert page.evaluate("[0, 1, 2, 305].map(WidgetWords.daysOverdue)") == [
        "", "1 day overdue", "2 days overdue", "305 days overdue"
    ]


def test_a_stubbed_summary_shows_its_sentence_and_a_partly_converted_bucket(page, live_server, fay):
    """States the seeded records do not reach, through the whole page: the real summary with its
    `behaviour` and one bucket's `converted` replaced."""
    def stub(route):
        body = route.fetch().json()
        body["behaviour"] = CASES[2][0] | {"since": "2025-12-07"}
        late = next(b for b in body["aging"] if b["bucket"] == "31-60")
        late["converted"][0]["unconverted"] = [
            {"type": "ACCREC", "type_label": "Sales invoice", "currency": "JPY", "amount": "12000", "count": 1}
        ]
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/summary", stub)
    page.set_viewport_size({"width": 320, "height": 900})
    open_widget(page, live_server, fay, record=FAY)
    expect(page.locator("#behaviour")).to_have_text(
        f"Usually pays on the due date; 3 of the last 4 on time. Paying earlier than last year. "
        f"Last payment NZ$500.00 on {en_us(date(2026, 11, 3))}."
    )
    expect(page.locator("#behaviour .behaviour-earlier")).to_have_text("Paying earlier than last year.")
    expect(segment(page, "31-60")).to_have_class("ageing-segment age-31-60 partial")
    expect(page.locator(".ageing-entry[data-bucket='31-60'] .ageing-note")).to_have_text("+ ¥12,000 not converted")
    assert cut(page) == []


# --- screenshot ---------------------------------------------------------------------------------------


def test_screenshot(page, live_server, fay, tmp_path):
    """docs/widget-ageing.png, 360 px, when WIDGET_SCREENSHOTS=docs (docs/screenshots.py):
    Fay's ageing bar, her sentence and her rows' days overdue."""
    out = DOCS if os.environ.get("WIDGET_SCREENSHOTS") == "docs" else Path(tmp_path)
    out.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 360, "height": 560})
    open_widget(page, live_server, fay, record=FAY)
    segment(page, "61-90").click()
    expect(page.locator("#invoice-list > li .number")).to_have_text(["F-105"])
    page.locator("#clear-bucket").click()
    expect(page.locator("#invoice-list > li")).to_have_count(6)
    page.mouse.move(0, 0)
    page.screenshot(path=out / "widget-ageing.png", full_page=True)
    assert no_sideways_scroll(page)
    assert (out / "widget-ageing.png").stat().st_size > 10_000
