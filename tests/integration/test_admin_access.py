"""Who may use /admin: an admin key, or the admin session a one-time ticket opens. Nobody else."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from store.models import XeroConnection
from tests.integration.admin_flow import (  # noqa: F401  (fixtures)
    app,
    bare_app,
    bearer,
    connect_and_save,
    consent,
    csrf,
    emulator,
    new_workspace,
    open_session,
    redis,
    remove_with_key,
    settings,
    shown,
    token_key,
)

ADMIN_PATHS = [
    ("POST", "/admin/sessions"),
    ("GET", "/admin/xero"),
    ("POST", "/admin/xero/connect"),
    ("GET", "/admin/xero/callback?code=c&state=s"),
    ("POST", "/admin/xero/choose"),
    ("POST", "/admin/xero/save"),
    ("GET", "/admin/xero/remove"),
    ("POST", "/admin/xero/remove"),
    ("POST", "/admin/switch"),
    ("POST", "/admin/signout"),
]


def test_every_admin_route_is_in_the_list_below(bare_app):
    routes = {(m, r.rule) for r in bare_app.url_map.iter_rules() if r.rule.startswith("/admin")
              for m in r.methods - {"HEAD", "OPTIONS"}}
    assert routes == {(m, p.split("?")[0]) for m, p in ADMIN_PATHS}


@pytest.mark.parametrize("method, path", ADMIN_PATHS)
@pytest.mark.parametrize("who", ["nobody", "read key", "unknown key", "basic auth", "spent ticket", "bad ticket"])
def test_anyone_but_an_admin_gets_403(bare_app, method, path, who):
    app = bare_app
    ws = new_workspace(app)
    client = app.test_client()
    headers = {}
    if who == "read key":
        headers = bearer(ws.read_key)
    elif who == "unknown key":
        headers = bearer("xm_" + "x" * 43)
    elif who == "basic auth":
        headers = {"Authorization": "Basic YWRtaW46YWRtaW4="}
    elif who == "spent ticket":  # someone else opened this ticket first
        url = app.test_client().post("/admin/sessions", headers=bearer(ws.admin_key)).get_json()["url"]
        assert app.test_client().get(url).status_code == 303
        assert client.get(url).status_code == 403
    elif who == "bad ticket":
        assert client.get("/admin/xero?ticket=forged").status_code == 403

    answer = client.open(path, method=method, headers=headers, data={"csrf": "x"})
    assert answer.status_code == 403
    assert ws.admin_key not in answer.get_data(as_text=True)
    with app.extensions["xm"].sessions() as s:
        assert s.scalars(select(XeroConnection)).all() == []


def test_a_ticket_opens_one_session_once_and_leaves_the_url(bare_app):
    app = bare_app
    ws = new_workspace(app)
    issued = app.test_client().post("/admin/sessions", headers=bearer(ws.admin_key))
    assert issued.status_code == 201 and issued.get_json()["expires_in"] == 60
    url = issued.get_json()["url"]
    assert url.startswith("http://localhost/admin/xero?ticket=")

    browser = app.test_client()
    opened = browser.get(url)
    assert (opened.status_code, opened.headers["Location"]) == (303, "/admin/xero")
    cookie = opened.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/admin" in cookie
    assert shown(browser)["status"] == "Not connected"

    assert app.test_client().get(url).status_code == 403, "a ticket is single-use"


def test_a_session_cannot_mint_tickets_and_expires(bare_app):
    app = bare_app
    browser = open_session(app, new_workspace(app))
    assert browser.post("/admin/sessions", data={"csrf": csrf(browser)}).status_code == 403
    with browser.session_transaction() as session:
        session["exp"] = 0
    assert browser.get("/admin/xero").status_code == 403


def test_session_posts_without_the_csrf_token_are_refused(app, emulator):
    ws = new_workspace(app)
    browser = open_session(app, ws)
    assert browser.post("/admin/xero/connect").status_code == 403
    assert browser.post("/admin/xero/connect", data={"csrf": "guess"}).status_code == 403
    assert browser.post("/admin/xero/remove", data={"csrf": ""}).status_code == 403
    assert emulator.state.call_count() == 0


def test_an_admin_key_works_for_api_style_calls(app, emulator):
    tenant = emulator.state.tenant_ids[0]
    ws = new_workspace(app)
    client = app.test_client()
    answer = client.get("/admin/xero", headers=bearer(ws.admin_key))
    assert answer.get_json() == {"workspace": {"id": ws.id, "name": "Acme CRM"}, "connection": None,
                                 "webhook_warning": None}

    connect_and_save(app, ws, tenant)
    status = client.get("/admin/xero", headers=bearer(ws.admin_key)).get_json()["connection"]
    assert (status["status"], status["tenant_id"], status["connected_email"]) == (
        "active", tenant, emulator.config.user_email
    )
    assert set(status) == {"status", "tenant_id", "tenant_name", "short_code", "base_currency", "connected_email",
                           "last_error", "backfill_status", "backfill_phase", "backfill_fetched",
                           "last_success_at", "timezone", "timezone_xero", "timezone_mapped", "timezone_warning",
                           "today"}

    removed = remove_with_key(client, ws.admin_key)
    assert removed.status_code == 200 and removed.get_json()["connection"] is None


def test_connect_with_an_admin_key_binds_the_flow_to_the_session_it_starts(app, emulator):
    ws = new_workspace(app)
    client = app.test_client()
    answer = client.post("/admin/xero/connect", headers=bearer(ws.admin_key))
    assert answer.status_code == 303 and "xm_admin=" in answer.headers["Set-Cookie"]
    back = client.get(consent(answer.headers["Location"], [emulator.state.tenant_ids[0]]))
    assert back.status_code == 303
    assert shown(client)["status"] == "Ready to save"
