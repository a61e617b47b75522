"""The widget's token travels in the URL's fragment: no request the browser sends carries it in a URL."""
from __future__ import annotations

import pytest

from tests.browser.test_widget import Seeded, expect, seeded, widget_url  # noqa: F401 (the fixture)

INVOICES_OF_ANN = 4  # the seeded contact c1's invoices awaiting payment


def token_of(url: str) -> str:
    _, _, fragment = url.partition("#token=")
    assert fragment.startswith("xme_"), url
    return fragment


def test_the_token_stays_out_of_every_url_the_browser_requests(page, live_server, seeded: Seeded):
    url = widget_url(live_server, seeded)
    token = token_of(url)
    sent: list[tuple[str, str]] = []
    page.on("request", lambda request: sent.append((request.url, request.headers.get("referer", ""))))
    page.goto(url)
    expect(page.locator("#invoice-list > li")).to_have_count(INVOICES_OF_ANN)
    page.click("[data-view=paid]")  # and the calls a click makes
    expect(page.locator("#invoice-list > li")).to_have_count(2)
    urls = [u for u, _ in sent]
    assert any(u.endswith("/embed/contacts/c1") for u in urls)  # the page, asked for without its fragment
    assert any(u.endswith("/embed/contacts/c1/access") for u in urls)
    assert any("/api/v1/contacts/c1/invoices" in u for u in urls)
    for u, referer in sent:
        assert token not in u and token not in referer, u


def test_a_link_in_the_older_query_form_still_shows_the_invoices_and_polls(page, live_server, seeded: Seeded):
    live_server.app.config["EMBED_POLL_SECONDS"] = 0.5
    url = widget_url(live_server, seeded)
    legacy = url.replace("#token=", "?token=")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(legacy)
    expect(page.locator("#invoice-list > li")).to_have_count(INVOICES_OF_ANN)
    polls = sum("/summary" in u for u in asked)
    page.wait_for_timeout(1500)
    assert sum("/summary" in u for u in asked) > polls  # it refreshes itself
    assert not any(u.endswith("/access") for u in asked)  # the server checked the token before the page


def test_a_page_opened_without_a_token_says_it_needs_a_link(page, live_server, seeded: Seeded):
    page.goto(live_server.url + "/embed/contacts/c1")
    expect(page.locator("#state-error")).to_contain_text("This invoice view needs a link from your CRM.")
    expect(page.locator("#invoice-list")).to_have_count(0)
    expect(page.locator(".tabs")).to_have_count(0)


@pytest.mark.parametrize("path, message", [
    ("/embed/contacts/c2", "This link is for a different record."),
    ("/embed/accounts/c1", "This link is for a different record."),
])
def test_a_token_in_the_fragment_for_another_record_is_refused(page, live_server, seeded: Seeded, path, message):
    token = token_of(widget_url(live_server, seeded))
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{live_server.url}{path}#token={token}")
    expect(page.locator("#state-error")).to_contain_text(message)
    expect(page.locator("#invoice-list")).to_have_count(0)
    page.wait_for_timeout(300)
    assert not any("/api/v1/" in u for u in asked)  # refused: it never asks for invoices


def test_a_forged_token_in_the_fragment_says_the_link_is_not_valid(page, live_server, seeded: Seeded):
    page.goto(live_server.url + "/embed/contacts/c1#token=xme_forged")
    expect(page.locator("#state-error")).to_contain_text("This invoice link is not valid")
    expect(page.locator("#state-error")).not_to_contain_text("expired")


def test_a_tampered_token_in_the_fragment_is_not_valid_either(page, live_server, seeded: Seeded):
    token = token_of(widget_url(live_server, seeded))
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")  # its signature changed
    page.goto(f"{live_server.url}/embed/contacts/c1#token={tampered}")
    expect(page.locator("#state-error")).to_contain_text("This invoice link is not valid")
