"""Connecting Xero from /admin/xero: the OAuth2 dance against the emulator, end to end.

Through the real HTTP endpoints: our app (Flask's test client as the browser), the
emulator's consent page and token endpoint over loopback, a real database and Redis, and
the backfill run by an in-process RQ worker.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from rq import Queue
from sqlalchemy import select, text

from infra import queue
from store.models import Invoice, XeroConnection
from store.secrets import SecretsError, TokenBox
from tests.integration.admin_flow import (  # noqa: F401  (fixtures)
    app,
    bearer,
    calls,
    connect_and_save,
    consent,
    count,
    csrf,
    dance,
    emulator,
    new_workspace,
    open_session,
    parse,
    redis,
    remove_with_key,
    run_worker,
    settings,
    shown,
    start_connect,
    stored_token,
    token_key,
)
from wsgi import close_app
from xero import timezones
from xero.identity import IdentityClient


def test_admin_connects_with_pkce_sees_company_and_email_saves_and_the_backfill_mirrors_it(
    app, emulator, redis, database_url, caplog
):
    caplog.set_level(logging.DEBUG)
    tenant = emulator.state.tenant_ids[0]
    org = next(t for t in emulator.state.tenants() if t["tenant_id"] == tenant)
    ws = new_workspace(app)
    browser = open_session(app, ws)
    bodies = []

    before = shown(browser)
    assert before["status"] == "Not connected" and "connect" in before

    authorize = start_connect(browser)
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert authorize.startswith(emulator.login_url + "/identity/connect/authorize?")
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["scope"].split() == app.extensions["xm"].settings.xero_scopes.split()
    assert "accounting.invoices.read" in query["scope"] and "accounting.transactions.read" not in query["scope"]
    assert query["redirect_uri"] == "http://localhost/admin/xero/callback"

    back = browser.get(consent(authorize, [tenant]))
    assert back.status_code == 303
    page = shown(browser)
    bodies.append(browser.get("/admin/xero").get_data(as_text=True))
    assert page["status"] == "Ready to save"
    assert page["company-name"] == org["name"]
    assert page["connected-email"] == emulator.config.user_email
    assert page["short-code"] == org["short_code"] and page["base-currency"] == org["base_currency"]
    assert "save" in page and "connect" not in page
    assert not Queue(queue.BACKFILL_QUEUE, connection=redis).get_jobs(), "nothing loads before Save"

    with app.extensions["xm"].sessions() as s:
        row = s.scalars(select(XeroConnection)).one()
        assert (row.status, row.workspace_id, row.tenant_id, row.grant_type) == (
            "pending", ws.id, tenant, "authorization_code"
        )
        assert row.xero_connection_id and row.auth_event_id

    saved = browser.post("/admin/xero/save", data={"csrf": csrf(browser)})
    assert saved.status_code == 303
    page = shown(browser)
    bodies.append(browser.get("/admin/xero").get_data(as_text=True))
    assert page["status"] == "Connected" and "Saved" in page["message"]
    assert "remove" in page and "save" not in page

    jobs = Queue(queue.BACKFILL_QUEUE, connection=redis).get_jobs()
    assert [(j.func_name, j.args) for j in jobs] == [("worker.jobs.backfill_tenant", (tenant,))]

    run_worker(redis)
    expected = len(emulator.state.snapshot(tenant)["Invoices"])
    assert expected > 0 and count(app, Invoice, tenant_id=tenant) == expected
    assert shown(browser)["backfill"] == "done"

    # no token anywhere it could leak: pages, the JSON view, the log
    token = stored_token(app, tenant)
    bodies.append(app.test_client().get("/admin/xero", headers=bearer(ws.admin_key)).get_data(as_text=True))
    secrets = [token["access_token"], token["refresh_token"]]
    for body in bodies:
        assert not any(s in body for s in secrets)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert not any(s in logged for s in secrets)


def test_database_holds_tokens_only_as_ciphertext(app, emulator, database_url):
    tenant = emulator.state.tenant_ids[0]
    connect_and_save(app, new_workspace(app), tenant)
    token = stored_token(app, tenant)
    secrets = [token["access_token"], token["refresh_token"], token["access_token"].split(".")[1]]

    with app.extensions["xm"].engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM xero_connections")).all()
    raw = b"".join(v if isinstance(v, bytes) else str(v).encode() for row in rows for v in row)
    assert rows and rows[0]._mapping["token_ciphertext"]
    assert not any(s.encode() in raw for s in secrets)
    if database_url.startswith("sqlite:///"):  # and the file's pages themselves, WAL included
        path = database_url[len("sqlite:///"):]
        pages = b"".join(p.read_bytes() for p in (Path(path), Path(path + "-wal")) if p.exists())
        assert not any(s.encode() in pages for s in secrets)


def test_tokens_rotate_reencrypts_under_the_newest_key_and_the_old_key_can_then_go(
    app, emulator, settings, token_key, database_url, redis_url
):
    from store.secrets import new_key
    from wsgi import create_app

    tenant = emulator.state.tenant_ids[0]
    ws = new_workspace(app)
    connect_and_save(app, ws, tenant)
    before = stored_token(app, tenant)
    newest = new_key()

    both = create_app(settings.__class__(**{**settings.__dict__, "token_keys": (newest, token_key)}))
    result = both.test_cli_runner().invoke(args=["tokens", "rotate"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 tokens" in result.output
    close_app(both)

    with app.extensions["xm"].sessions() as s:
        sealed = s.scalars(select(XeroConnection.token_ciphertext)).one()
    assert TokenBox([newest]).open(sealed) == before
    with pytest.raises(SecretsError):
        TokenBox([token_key]).open(sealed)  # really re-encrypted, not merely still readable

    only_new = create_app(settings.__class__(**{**settings.__dict__, "token_keys": (newest,)}))
    answer = remove_with_key(only_new.test_client(), ws.admin_key)
    assert answer.status_code == 200 and answer.get_json()["problems"] == []
    assert calls(emulator, "POST /connect/revocation", 200) == 1, "the token was readable with the newest key alone"
    close_app(only_new)


def test_several_organisations_granted_the_admin_picks_one_and_the_others_are_disconnected_at_xero(
    app, emulator
):
    chosen, unchosen = emulator.state.tenant_ids[:2]
    browser = open_session(app, new_workspace(app))

    answer = dance(browser, [chosen, unchosen])
    assert answer.status_code == 200
    form = next(f for f in parse(answer.get_data(as_text=True)).forms if f["id"] == "tenant-choice")
    names = {t["tenant_id"]: t["name"] for t in emulator.state.tenants()}
    assert names[chosen] in answer.get_data(as_text=True) and names[unchosen] in answer.get_data(as_text=True)

    picked = browser.post(form["action"], data={"csrf": csrf(browser), "tenant_id": chosen})
    assert picked.status_code == 303
    page = shown(browser)
    assert (page["status"], page["company-name"]) == ("Ready to save", names[chosen])

    token = stored_token(app, chosen)
    with IdentityClient(app.extensions["xm"].settings) as identity:
        left = {c.tenant_id for c in identity.connections(token["access_token"])}
    assert left == {chosen}
    assert calls(emulator, "DELETE /Connections/{id}", 204) == 1

    again = browser.post("/admin/xero/choose", data={"csrf": csrf(browser), "tenant_id": unchosen})
    assert again.status_code == 303 and "expired" in shown(browser)["message"]


def test_the_organisations_time_zone_is_kept_at_connect_and_shown_on_the_page_and_in_json(app, emulator):
    tenant = emulator.state.tenant_ids[0]
    xero_zone = emulator.state.snapshot(tenant)["Organisation"]["Timezone"]
    iana = timezones.zone_for(xero_zone).iana
    ws = new_workspace(app)
    browser = connect_and_save(app, ws, tenant)

    with app.extensions["xm"].sessions() as s:
        row = s.scalars(select(XeroConnection)).one()
        assert row.timezone == xero_zone and row.organisation_checked_at is not None
    page = shown(browser)
    assert page["timezone"].startswith(iana) and xero_zone in page["timezone"]
    assert "timezone-warning" not in page

    for answer in (app.test_client().get("/admin/xero", headers=bearer(ws.admin_key)),
                   browser.get("/admin/xero", headers={"Accept": "application/json"})):
        connection = answer.get_json()["connection"]
        assert (connection["timezone"], connection["timezone_xero"]) == (iana, xero_zone)
        assert connection["timezone_mapped"] is True and connection["timezone_warning"] is None
        assert connection["today"] == timezones.org_today(timezones.zone_for(xero_zone), _utc_now()).isoformat()


def test_an_unknown_time_zone_is_said_plainly_on_the_page_and_in_json(app, emulator):
    tenant = emulator.state.tenant_ids[1]
    with emulator.state.lock:
        emulator.state.books[tenant].org.timezone = "MARSSTANDARDTIME"  # an id no table knows
    ws = new_workspace(app)
    browser = connect_and_save(app, ws, tenant)

    warning = "Xero time zone 'MARSSTANDARDTIME' is unknown; dates use UTC"
    page = shown(browser)
    assert warning in page["timezone-warning"]
    assert page["timezone"].startswith("UTC") and "MARSSTANDARDTIME" in page["timezone"]
    connection = app.test_client().get("/admin/xero", headers=bearer(ws.admin_key)).get_json()["connection"]
    assert (connection["timezone"], connection["timezone_xero"]) == ("UTC", "MARSSTANDARDTIME")
    assert connection["timezone_mapped"] is False and connection["timezone_warning"] == warning


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)
