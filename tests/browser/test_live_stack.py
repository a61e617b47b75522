"""The running stack in a real browser: the emulator as Xero (delivering signed webhooks), the
app on a real socket, and a real `python -m worker` process.

- A payment applied in 'Xero' shows in an open widget within 5 seconds, with no reload.
- An admin connects through the OAuth pages (ours and the emulator's consent page), saves,
  and removes the connection again.
"""
from __future__ import annotations

import os
import threading
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from emulator.testing import run_emulator
from infra.settings import Settings
from store import workspaces
from store.db import transaction
from store.models import Invoice, SyncState
from store.secrets import new_key
from tests.browser.conftest import SECRET
from tests.e2e.worker_process import WorkerProcess
from tests.worker_support import FAST, NOW, connect_client_credentials, wait_until
from wsgi import close_app, create_app

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def stack(database_url, redis_url, tmp_path, monkeypatch):
    """Emulator, app and worker, wired as production wires them (environment only)."""
    for name in ("EMBED_FRAME_ANCESTORS", "EMBED_POLL_SECONDS", "EMBED_PER_PAGE"):
        monkeypatch.delenv(name, raising=False)
    with run_emulator(seed=5, tenants=1, contacts=8, invoices=30, webhook_batch_seconds=0.05) as xero:
        env = {**xero.env(), "DATABASE_URL": database_url, "REDIS_URL": redis_url, "TOKEN_KEYS": new_key(),
               "SECRET_KEY": SECRET, **FAST}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        app = create_app(Settings.from_env(env))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_port}"
        xero.state.set_webhook_url(f"{url}/webhooks/xero")
        worker = WorkerProcess(env, tmp_path / "worker.log")
        try:
            yield {"xero": xero, "app": app, "url": url, "worker": worker, "settings": app.extensions["xm"].settings}
        finally:
            xero.state.set_webhook_url(None)
            worker.stop()
            server.shutdown()
            thread.join(5)
            server.server_close()
            close_app(app)


def backfilled(sessions, tenant_id: str) -> bool:
    with sessions() as session:
        state = session.get(SyncState, tenant_id)
        return state is not None and state.backfill_status == "done"


def mirrored(sessions, invoice_id: str) -> bool:
    with sessions() as session:
        return session.scalar(select(Invoice.invoice_id).where(Invoice.invoice_id == invoice_id)) is not None


def test_a_payment_applied_in_xero_appears_in_an_open_widget_within_5_seconds(stack, sessions, page):
    xero, url, worker = stack["xero"], stack["url"], stack["worker"]
    tenant = xero.state.tenant_ids[0]
    connect_client_credentials(stack["settings"], sessions, tenant)
    with transaction(sessions) as session:
        key = workspaces.issue_key(session, 1, "admin", NOW)
    assert wait_until(lambda: backfilled(sessions, tenant), 60), worker.output()

    customer = xero.state.create_contact(tenant, "Weka Wines", "accounts@weka.example")["ContactID"]
    today = date.today()
    invoice = xero.state.create_invoice(
        tenant, customer, "500.00", date=today.isoformat(), due_date=(today + timedelta(days=20)).isoformat(),
    )["InvoiceID"]
    assert wait_until(lambda: mirrored(sessions, invoice), 15), worker.output()

    client = stack["app"].test_client()
    auth = {"Authorization": f"Bearer {key}"}
    assert client.put("/api/v1/contacts/crm-weka", json={"name": "Weka Wines", "email": "ACCOUNTS@weka.example"},
                      headers=auth).status_code == 200
    embed = client.post("/api/v1/embed-tokens", json={"kind": "contacts", "id": "crm-weka"}, headers=auth).get_json()
    page.goto(url + embed["url"].removeprefix("http://localhost"))  # issued through the test client
    row = page.locator(f'[data-invoice-id="{invoice}"]')
    row.wait_for()
    assert "Open" in row.inner_text() and "Payments" not in row.inner_text()

    xero.state.apply_payment(tenant, invoice, "200.00", reference="deposit")
    # no reload: the widget's own refresh must bring it in (webhook -> inbox -> worker -> mirror)
    page.locator(f'[data-invoice-id="{invoice}"] .payments-link').wait_for(timeout=5_000)
    assert "Partially paid" in row.inner_text()
    assert "300.00" in row.inner_text()  # the balance left


def test_an_admin_connects_through_the_oauth_pages_saves_and_removes(stack, sessions, browser, tmp_path):
    xero, url = stack["xero"], stack["url"]
    with transaction(sessions) as session:
        ws = workspaces.create_workspace(session, "Browser admin", NOW)
        admin_key = workspaces.issue_key(session, ws.id, "admin", NOW)
    ticket = stack["app"].test_client().post("/admin/sessions", headers={"Authorization": f"Bearer {admin_key}"})
    context = browser.new_context(viewport={"width": 900, "height": 700}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        link = urlsplit(ticket.get_json()["url"])  # minted through the test client: its host is 'localhost'
        page.goto(f"{url}{link.path}?{link.query}")
        assert page.locator("#status").inner_text() == "Not connected"
        page.click("#connect")
        page.locator("#consent-title").wait_for()  # the emulator's consent page: 'Xero'
        page.click("#approve")
        page.locator("#save").wait_for()  # back on ours, with what was granted
        assert page.locator("#company-name").inner_text() == xero.state.tenants()[0]["name"]
        assert page.locator("#connected-email").inner_text() == xero.config.user_email
        page.click("#save")
        page.locator("#remove").wait_for()
        assert page.locator("#status").inner_text() == "Connected"
        tenant = xero.state.tenant_ids[0]
        assert wait_until(lambda: backfilled(sessions, tenant), 60), stack["worker"].output()
        page.reload()
        assert page.locator("#backfill").inner_text() == "done"
        # UPDATE_SCREENSHOTS=1 refreshes the README's picture; otherwise a run leaves docs/ alone
        shot = DOCS / "admin.png" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "admin.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 0

        page.click("#remove")
        page.click("#confirm-remove")  # after the page that counts what goes and what stays
        page.locator("#connect").wait_for()
        assert page.locator("#status").inner_text() == "Not connected"
        with sessions() as session:
            assert session.scalars(select(Invoice).where(Invoice.tenant_id == tenant)).first() is None
    finally:
        context.close()
