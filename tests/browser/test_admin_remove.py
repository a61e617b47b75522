"""Issue 20's Remove, in Chromium: the admin is asked first and told what goes and what stays
(with scripts off, too), and the CRM's links outlive a remove: reconnecting the same
organisation brings the deal's linked invoices back into its widget."""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import date, timedelta

import pytest
from redis import Redis
from werkzeug.serving import make_server

from emulator.testing import run_emulator
from infra.settings import Settings
from store import workspaces
from store.db import transaction
from store.secrets import new_key
from tests.browser.conftest import SECRET
from tests.integration.admin_flow import WORKER_KNOBS, run_worker
from tests.worker_support import NOW
from wsgi import close_app, create_app


@pytest.fixture
def server(database_url, redis_url, monkeypatch):
    """The emulator as Xero and the app on a real socket, wired by the environment only; jobs
    run in this process when the test says so."""
    with run_emulator(seed=11, tenants=1, contacts=3, invoices=6) as xero:
        env = {**xero.env(), "DATABASE_URL": database_url, "REDIS_URL": redis_url, "TOKEN_KEYS": new_key(),
               "SECRET_KEY": SECRET, **WORKER_KNOBS}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("PUBLIC_URL", raising=False)
        app = create_app(Settings.from_env(env))
        http = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        redis = Redis.from_url(redis_url)
        try:
            yield {"xero": xero, "app": app, "url": f"http://127.0.0.1:{http.server_port}", "redis": redis}
        finally:
            redis.close()
            http.shutdown()
            thread.join(5)
            http.server_close()
            close_app(app)


def call(method: str, url: str, key: str, body: dict | None = None) -> dict:
    """The CRM's server calling the API over HTTP."""
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(url, method=method, data=data, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read())


def connect(page, url: str, key: str) -> None:
    """Through our admin page and the emulator's consent page, then Save."""
    page.goto(call("POST", f"{url}/admin/sessions", key)["url"])
    page.click("#connect")
    page.locator("#consent-title").wait_for()
    page.click("#approve")
    page.click("#save")
    page.locator("#remove").wait_for()


def widget_rows(context, url: str, key: str, expected: list[str]) -> list[str]:
    """The invoices the deal's widget lists, freshly opened (a new token's URL differs only in
    its fragment), once its first load is done and they are `expected` (or 5 s have passed)."""
    embed = call("POST", f"{url}/api/v1/embed-tokens", key, {"kind": "deals", "id": "deal-1"})
    assert embed["url"].startswith(url + "/embed/deals/deal-1#token="), "absolute: the request's host"
    page = context.new_page()
    try:
        with page.expect_response(lambda r: "/invoices" in r.url and r.status == 200):
            page.goto(embed["url"])
        if not expected:  # an empty answer, rendered as such
            page.locator("#state-empty").wait_for()
        deadline = time.monotonic() + 5
        while True:
            rows = sorted(page.locator("[data-invoice-id]").evaluate_all("rs => rs.map(r => r.dataset.invoiceId)"))
            if rows == expected or time.monotonic() > deadline:
                return rows
            page.wait_for_timeout(100)
    finally:
        page.close()


def test_remove_asks_first_and_the_deals_invoices_come_back_when_the_organisation_is_reconnected(server, browser):
    xero, url, redis = server["xero"], server["url"], server["redis"]
    tenant = xero.state.tenant_ids[0]
    customer = xero.state.create_contact(tenant, "Kea Kitchens", "accounts@kea.example")["ContactID"]
    today = date.today()
    deal_invoices = sorted(
        xero.state.create_invoice(tenant, customer, f"{n}00.00", date=today.isoformat(),
                                  due_date=(today + timedelta(days=30)).isoformat())["InvoiceID"]
        for n in (1, 2, 3)
    )
    with transaction(server["app"].extensions["xm"].sessions) as s:
        ws = workspaces.create_workspace(s, "Kea CRM", NOW)
        key = workspaces.issue_key(s, ws.id, "admin", NOW)
    context = browser.new_context(viewport={"width": 900, "height": 800}, locale="en-US")
    no_script = browser.new_context(viewport={"width": 900, "height": 800}, locale="en-US", java_script_enabled=False)
    for c in (context, no_script):
        c.set_default_timeout(10_000)
    try:
        page = context.new_page()
        connect(page, url, key)
        run_worker(redis)
        call("PUT", f"{url}/api/v1/deals/deal-1", key, {"name": "Demo deal", "invoice_ids": deal_invoices})
        assert widget_rows(context, url, key, deal_invoices) == deal_invoices

        # Remove, with scripts off: a page that counts what goes and what stays; "Keep it" keeps it
        admin = no_script.new_page()
        admin.goto(call("POST", f"{url}/admin/sessions", key)["url"])
        admin.click("#remove")
        name = xero.state.tenants()[0]["name"]
        assert admin.locator("h1").inner_text() == f"Remove the Xero connection to {name}?"
        invoices = len([i for i in xero.state.snapshot(tenant)["Invoices"] if i["Type"] == "ACCREC"])
        assert admin.locator("#deletes-invoices").inner_text().startswith(f"{invoices} mirrored sales invoices")
        kept = admin.locator("#keeps-links").inner_text()
        assert kept.startswith("0 links to Xero contacts and 3 to single invoices")
        assert f"they work again if {name} is connected again" in kept
        admin.click("#cancel-remove")
        assert admin.locator("#status").inner_text() == "Connected"
        admin.click("#remove")
        admin.click("#confirm-remove")
        assert admin.locator("#status").inner_text() == "Not connected"
        assert "The CRM's records and their links were kept" in admin.locator("#message").inner_text()

        deal = call("GET", f"{url}/api/v1/deals/deal-1", key)
        assert deal["invoice_ids"] == deal_invoices
        assert {(ln["target_found"], ln["target_note"]) for ln in deal["invoice_links"]} == {
            (False, "no Xero organisation is connected")}
        assert widget_rows(context, url, key, []) == [], "nothing to show while no organisation is connected"

        # the same organisation again: the deal's invoices are back in its widget
        page.goto(f"{url}/admin/xero")
        assert page.locator("#status").inner_text() == "Not connected"
        page.click("#connect")
        page.locator("#consent-title").wait_for()
        page.click("#approve")
        page.click("#save")
        page.locator("#remove").wait_for()
        run_worker(redis)
        assert widget_rows(context, url, key, deal_invoices) == deal_invoices
        assert all(ln["target_found"] for ln in call("GET", f"{url}/api/v1/deals/deal-1", key)["invoice_links"])
    finally:
        context.close()
        no_script.close()
