"""Issue 19's admin-link attack, replayed step by step in Chromium, and where it is refused.

Workspace A's admin mints an admin link and gets workspace B's admin to open it. B's browser
asks before leaving B's session and names both workspaces; even when B switches and
connects B's organisation in the page that names A, A cannot save that pending connection,
neither with A's API key nor from A's own admin session: only the session that consented can.
"""
from __future__ import annotations

import json
import threading
import urllib.request
from urllib.error import HTTPError

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from emulator.testing import run_emulator
from infra.settings import Settings
from store import workspaces
from store.db import transaction
from store.models import XeroConnection
from store.secrets import new_key
from tests.browser.conftest import SECRET
from tests.worker_support import NOW
from wsgi import close_app, create_app


@pytest.fixture
def server(database_url, redis_url, monkeypatch):
    """The emulator as Xero and the app on a real socket, wired by the environment only."""
    with run_emulator(seed=7, tenants=1, contacts=2, invoices=3) as xero:
        env = {**xero.env(), "DATABASE_URL": database_url, "REDIS_URL": redis_url, "TOKEN_KEYS": new_key(),
               "SECRET_KEY": SECRET}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        app = create_app(Settings.from_env(env))
        http = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield {"xero": xero, "app": app, "url": f"http://127.0.0.1:{http.server_port}"}
        finally:
            http.shutdown()
            thread.join(5)
            http.server_close()
            close_app(app)


def call(url: str, key: str) -> tuple[int, dict]:
    """A POST with an API key, as the attacker's script would send it."""
    request = urllib.request.Request(url, method="POST", data=b"", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read())
    except HTTPError as refused:
        return refused.code, json.loads(refused.read())


def connections(app) -> list[tuple[int, str, str]]:
    with app.extensions["xm"].sessions() as s:
        return [(r.workspace_id, r.tenant_id, r.status) for r in
                s.scalars(select(XeroConnection).where(XeroConnection.status != "disconnected"))]


def test_a_link_from_another_workspace_cannot_take_an_organisation(server, browser):
    app, url, xero = server["app"], server["url"], server["xero"]
    tenant = xero.state.tenant_ids[0]
    with transaction(app.extensions["xm"].sessions) as s:
        a = workspaces.create_workspace(s, "Attacker Ltd", NOW)
        b = workspaces.create_workspace(s, "Victim Co", NOW)
        a_key, b_key = (workspaces.issue_key(s, w.id, "admin", NOW) for w in (a, b))
        a_id, b_id = a.id, b.id
    victim = browser.new_context(viewport={"width": 900, "height": 700}, locale="en-US")
    attacker = browser.new_context(viewport={"width": 900, "height": 700}, locale="en-US")
    for context in (victim, attacker):
        context.set_default_timeout(10_000)
    try:
        # 1. B's admin is in B's admin page, which names B
        b_page = victim.new_page()
        b_page.goto(call(f"{url}/admin/sessions", b_key)[1]["url"])
        assert b_page.locator("#workspace-name").inner_text() == "Victim Co"
        assert b_page.locator("#workspace-id").inner_text() == f"#{b_id}"

        # 2. A mints a link and B opens it: asked, naming both, B's session still open
        status, minted = call(f"{url}/admin/sessions", a_key)
        assert status == 201
        b_page.goto(minted["url"])
        assert b_page.locator("#switch-question").inner_text() == (
            f"You are signed in to workspace Victim Co (#{b_id}). "
            f"This link opens workspace Attacker Ltd (#{a_id}). Switch?")
        other_tab = victim.new_page()
        other_tab.goto(f"{url}/admin/xero")
        assert other_tab.locator("#workspace-name").inner_text() == "Victim Co", "not switched before confirming"
        other_tab.close()

        # 3. the worst case: B switches anyway, and connects B's organisation in a page naming A
        b_page.click("#switch")
        assert b_page.locator("#workspace-name").inner_text() == "Attacker Ltd"
        b_page.click("#connect")
        b_page.locator("#consent-title").wait_for()
        b_page.click("#approve")
        b_page.locator("#save").wait_for()
        assert b_page.locator("#workspace-name").inner_text() == "Attacker Ltd"
        assert connections(app) == [(a_id, tenant, "pending")]

        # 4. the step that matters: A saves. With A's key: refused, nothing changes
        status, refused = call(f"{url}/admin/xero/save", a_key)
        assert status == 403 and "API key cannot save" in refused["message"]
        assert refused["connection"]["status"] == "pending"

        # ... and from A's own admin session: no Save button, and a forged Save is refused
        a_page = attacker.new_page()
        a_page.goto(call(f"{url}/admin/sessions", a_key)[1]["url"])
        assert a_page.locator("#workspace-name").inner_text() == "Attacker Ltd"
        assert a_page.locator("#save").count() == 0 and a_page.locator("#remove").count() == 0
        assert "started in another admin session" in a_page.locator("#pending-elsewhere").inner_text()
        a_page.evaluate("""() => {
            const form = document.createElement('form');
            form.method = 'post';
            form.action = '/admin/xero/save';
            form.innerHTML = `<input name="csrf" value="${document.querySelector('#signout-form [name=csrf]').value}">`;
            document.body.appendChild(form);
            form.submit();
        }""")
        a_page.locator("#message").wait_for()
        assert "started in another admin session" in a_page.locator("#message").inner_text()
        assert connections(app) == [(a_id, tenant, "pending")], "A's keys read nothing of B's organisation"

        # 5. B, whose browser consented, can still discard it, then sign out
        b_page.click("#remove")
        assert b_page.locator("h1").inner_text().startswith("Discard the Xero connection")
        b_page.click("#confirm-remove")
        b_page.locator("#connect").wait_for()
        assert connections(app) == []
        b_page.click("#signout")
        assert b_page.locator("#problem").inner_text().startswith("You are signed out")
        b_page.goto(f"{url}/admin/xero")
        assert b_page.locator("#problem").inner_text() == "This page is for the workspace's administrators."
    finally:
        victim.close()
        attacker.close()
