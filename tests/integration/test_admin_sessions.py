"""Admin links and sessions (issue 19): every page names its workspace, a link to another
workspace asks before switching, a pending connection belongs to the session that consented,
sign-out and key revocation end a session server-side, a foreign callback burns no state."""
from __future__ import annotations

import re

from sqlalchemy import select

from infra.settings import Settings
from store import workspaces
from store.db import transaction
from store.models import Invoice, SyncState, XeroConnection
from tests.integration.admin_flow import (  # noqa: F401  (fixtures)
    NOW,
    app,
    bare_app,
    bearer,
    calls,
    confirm_remove,
    consent,
    count,
    csrf,
    dance,
    emulator,
    mint_link,
    new_workspace,
    open_session,
    redis,
    remove_with_key,
    session_cookie,
    settings,
    shown,
    start_connect,
    texts,
    token_key,
)
from views.admin import KEY_CANNOT_SAVE
from wsgi import close_app, create_app


def rows(app) -> list[tuple[int, str, str]]:
    with app.extensions["xm"].sessions() as s:
        return [(r.workspace_id, r.tenant_id, r.status) for r in
                s.scalars(select(XeroConnection).where(XeroConnection.status != "disconnected"))]


def revoke(app, key: str) -> None:
    with transaction(app.extensions["xm"].sessions) as s:
        key_id = workspaces.key_id_of(s, key)
        assert key_id is not None
        workspaces.revoke_key(s, key_id, NOW)


def offer_of(answer) -> str:
    return re.search(r'name="offer" value="([^"]+)"', answer.get_data(as_text=True)).group(1)


# --- the workspace, named everywhere --------------------------------------------------------------


def test_every_admin_page_names_the_workspace_it_acts_for(app, emulator):
    ws = new_workspace(app, "Kauri Accounting")
    browser = open_session(app, ws)
    page = browser.get("/admin/xero")
    assert f"Kauri Accounting (#{ws.id})" in re.search(r"<title>(.*)</title>", page.get_data(as_text=True)).group(1)
    named = shown(browser)
    assert (named["workspace-name"], named["workspace-id"]) == ("Kauri Accounting", f"#{ws.id}")

    granted = emulator.state.tenant_ids[:2]
    choose = dance(browser, granted)  # two organisations granted: the choice page
    assert choose.status_code == 200 and "tenant-choice" in choose.get_data(as_text=True)
    assert texts(choose)["workspace-name"] == "Kauri Accounting"
    picked = browser.post("/admin/xero/choose", data={"csrf": csrf(browser), "tenant_id": granted[0]})
    assert picked.status_code == 303 and "save" in shown(browser), "the choosing session consented: it may save"

    refused = browser.post("/admin/xero/save", data={"csrf": "wrong"})  # a refusal page, still named
    assert refused.status_code == 403 and texts(refused)["workspace-name"] == "Kauri Accounting"

    as_json = app.test_client().get("/admin/xero", headers=bearer(ws.admin_key)).get_json()
    assert as_json["workspace"] == {"id": ws.id, "name": "Kauri Accounting"}
    assert browser.post("/admin/xero/save", data={"csrf": csrf(browser)}).status_code == 303
    assert rows(app) == [(ws.id, granted[0], "active")]


# --- links to another workspace -----------------------------------------------------------------------


def test_a_link_to_another_workspace_asks_first_and_the_open_session_stays_until_confirmed(bare_app):
    app = bare_app
    mine, theirs = new_workspace(app, "Mine"), new_workspace(app, "Theirs")
    browser = open_session(app, mine)
    link = mint_link(app, theirs)

    asked = browser.get(link)
    assert asked.status_code == 200
    question = texts(asked)["switch-question"]
    assert question == (f"You are signed in to workspace Mine (#{mine.id}). "
                        f"This link opens workspace Theirs (#{theirs.id}). Switch?")
    assert shown(browser)["workspace-name"] == "Mine", "nothing switched before the admin confirms"
    assert browser.get(link).status_code == 403, "the link itself is spent: its offer lives in the page only"

    offer = offer_of(asked)
    assert browser.post("/admin/switch", data={"offer": offer}).status_code == 403  # no CSRF token
    stranger = open_session(app, new_workspace(app, "Stranger"))  # another session cannot take the offer
    assert stranger.post("/admin/switch", data={"offer": offer, "csrf": csrf(stranger)}).status_code == 403
    assert shown(stranger)["workspace-name"] == "Stranger" and shown(browser)["workspace-name"] == "Mine"

    old_cookie = session_cookie(browser)
    switched = browser.post("/admin/switch", data={"offer": offer, "csrf": csrf(browser)})
    assert (switched.status_code, switched.headers["Location"]) == (303, "/admin/xero")
    page = shown(browser)
    assert (page["workspace-name"], page["message"]) == ("Theirs", f"Switched to workspace Theirs (#{theirs.id}).")

    replay = app.test_client()
    replay.set_cookie("xm_admin", old_cookie, path="/admin")
    assert replay.get("/admin/xero").status_code == 403, "the session switched away from ended server-side"
    assert browser.post("/admin/switch", data={"offer": offer, "csrf": csrf(browser)}).status_code == 403


def test_declining_a_switch_keeps_the_session_and_a_bad_link_does_not_end_it(bare_app):
    app = bare_app
    mine, theirs = new_workspace(app, "Mine"), new_workspace(app, "Theirs")
    browser = open_session(app, mine)
    assert browser.get(mint_link(app, theirs)).status_code == 200
    assert browser.get("/admin/xero").status_code == 200  # "Stay": the page, as before
    refused = browser.get("/admin/xero?ticket=forged")
    assert refused.status_code == 403 and "Link not valid" in refused.get_data(as_text=True)
    assert shown(browser)["workspace-name"] == "Mine"
    for offer in ("", "forged", "x" * 5000):
        assert browser.post("/admin/switch", data={"offer": offer, "csrf": csrf(browser)}).status_code == 403
    assert shown(browser)["workspace-name"] == "Mine"


def test_a_link_to_the_same_workspace_opens_without_asking(bare_app):
    app = bare_app
    ws = new_workspace(app)
    browser = open_session(app, ws)
    again = browser.get(mint_link(app, ws))
    assert (again.status_code, again.headers["Location"]) == (303, "/admin/xero")
    assert shown(browser)["workspace-name"] == "Acme CRM"


# --- a pending connection belongs to the session that consented ------------------------------------


def test_a_pending_connection_is_saved_or_discarded_only_by_the_session_that_consented(app, emulator):
    tenant = emulator.state.tenant_ids[0]
    ws = new_workspace(app)
    consenting = open_session(app, ws)
    assert dance(consenting, [tenant]).status_code == 303
    other = open_session(app, ws)  # the same workspace's admin, in another browser
    key = app.test_client()

    page = shown(other)
    assert page["status"] == "Ready to save" and "save" not in page and "remove" not in page
    assert "only that session can save it or discard it" in page["pending-elsewhere"]
    refused = other.post("/admin/xero/save", data={"csrf": csrf(other)})
    assert refused.status_code == 303 and "started in another admin session" in shown(other)["message"]
    assert other.get("/admin/xero/remove").status_code == 303, "no confirmation page: refused, flashed"
    forged = other.post("/admin/xero/remove", data={"csrf": csrf(other), "confirm": tenant})
    assert forged.status_code == 303 and "started in another admin session" in shown(other)["message"]
    for path in ("/admin/xero/save", "/admin/xero/remove"):
        answer = key.post(path, headers=bearer(ws.admin_key))
        assert answer.status_code == 403 and answer.get_json()["message"] == KEY_CANNOT_SAVE
        assert answer.get_json()["connection"]["status"] == "pending"
    assert rows(app) == [(ws.id, tenant, "pending")]
    assert calls(emulator, "DELETE /Connections/{id}") == 0 and calls(emulator, "POST /connect/revocation") == 0

    assert "save" in shown(consenting)
    assert consenting.post("/admin/xero/save", data={"csrf": csrf(consenting)}).status_code == 303
    assert rows(app) == [(ws.id, tenant, "active")]
    with app.extensions["xm"].sessions() as s:
        assert s.scalars(select(XeroConnection.pending_session)).one() is None


def test_a_pending_connection_whose_session_ended_can_be_discarded_but_never_saved_elsewhere(app, emulator):
    tenant = emulator.state.tenant_ids[0]
    ws = new_workspace(app)
    consenting = open_session(app, ws)
    assert dance(consenting, [tenant]).status_code == 303
    with app.extensions["xm"].sessions() as s:
        stored = s.scalars(select(XeroConnection.pending_session)).one()
    assert stored and re.fullmatch(r"[0-9a-f]{64}", stored), "a digest, never the session id"
    assert consenting.post("/admin/signout", data={"csrf": csrf(consenting)}).status_code == 200

    other = open_session(app, ws)
    assert "save" not in shown(other) and shown(other)["remove"] == "Discard"
    key = app.test_client()
    assert key.post("/admin/xero/save", headers=bearer(ws.admin_key)).status_code == 403
    assert rows(app) == [(ws.id, tenant, "pending")]
    discarded = remove_with_key(key, ws.admin_key)
    assert discarded.status_code == 200 and discarded.get_json()["connection"] is None
    assert rows(app) == []


# --- sign-out, revocation ----------------------------------------------------------------------------


def test_sign_out_needs_the_csrf_token_and_ends_the_session_server_side(bare_app):
    app = bare_app
    ws = new_workspace(app)
    browser = open_session(app, ws)
    copied = session_cookie(browser)
    assert 'id="signout"' in browser.get("/admin/xero").get_data(as_text=True)
    assert browser.post("/admin/signout").status_code == 403
    assert browser.post("/admin/signout", data={"csrf": "guess"}).status_code == 403
    assert shown(browser)["workspace-name"] == "Acme CRM"

    out = browser.post("/admin/signout", data={"csrf": csrf(browser)})
    assert out.status_code == 200 and texts(out)["problem"].startswith("You are signed out")
    assert "xm_admin=;" in out.headers["Set-Cookie"]
    assert browser.get("/admin/xero").status_code == 403
    replay = app.test_client()
    replay.set_cookie("xm_admin", copied, path="/admin")
    assert replay.get("/admin/xero").status_code == 403, "a copied cookie opens nothing after sign-out"
    assert app.test_client().post("/admin/signout", headers=bearer(ws.admin_key)).status_code == 403


def test_revoking_a_key_ends_the_sessions_and_links_it_opened_and_no_other(bare_app):
    app = bare_app
    ws = new_workspace(app)
    with transaction(app.extensions["xm"].sessions) as s:
        second_key = workspaces.issue_key(s, ws.id, "admin", NOW)
    doomed = open_session(app, ws)
    unopened = mint_link(app, ws)
    spared = app.test_client()
    link = app.test_client().post("/admin/sessions", headers=bearer(second_key)).get_json()["url"]
    assert spared.get(link).status_code == 303

    revoke(app, ws.admin_key)
    assert doomed.get("/admin/xero").status_code == 403
    assert doomed.post("/admin/xero/connect", data={"csrf": "x"}).status_code == 403
    assert app.test_client().get(unopened).status_code == 403
    assert app.test_client().post("/admin/sessions", headers=bearer(ws.admin_key)).status_code == 403
    assert shown(spared)["workspace-name"] == "Acme CRM", "a session of another key stands"


# --- the OAuth state ---------------------------------------------------------------------------------


def test_a_callback_from_another_session_is_refused_without_burning_the_owners_state(app, emulator):
    tenant = emulator.state.tenant_ids[0]
    ws = new_workspace(app)
    owner = open_session(app, ws)
    back = consent(start_connect(owner), [tenant])
    for intruder in (open_session(app, ws), open_session(app, new_workspace(app, "Other")), app.test_client()):
        answer = intruder.get(back)
        assert answer.status_code in (400, 403)
    assert calls(emulator, "POST /connect/token") == 0
    assert owner.get(back).status_code == 303, "the owner's state survived the foreign callbacks"
    assert shown(owner)["status"] == "Ready to save"
    assert owner.get(back).status_code == 400, "and is then spent"


# --- the attack of issue 19, step by step ----------------------------------------------------------


def test_another_workspaces_admin_cannot_take_an_organisation_through_a_link(app, emulator):
    tenant_b = emulator.state.tenant_ids[0]
    attacker, victim = new_workspace(app, "Attacker"), new_workspace(app, "Victim")
    victim_browser = open_session(app, victim)

    lure = victim_browser.get(mint_link(app, attacker))  # A's link, opened in B's browser
    assert lure.status_code == 200 and "This link opens workspace Attacker" in texts(lure)["switch-question"]
    assert shown(victim_browser)["workspace-name"] == "Victim"
    # the worst case: B confirms without reading, and connects in the page that names Attacker
    assert victim_browser.post("/admin/switch", data={"offer": offer_of(lure),
                                                       "csrf": csrf(victim_browser)}).status_code == 303
    assert shown(victim_browser)["workspace-name"] == "Attacker"
    assert dance(victim_browser, [tenant_b]).status_code == 303
    assert rows(app) == [(attacker.id, tenant_b, "pending")]

    saved_by_key = app.test_client().post("/admin/xero/save", headers=bearer(attacker.admin_key))
    assert saved_by_key.status_code == 403 and saved_by_key.get_json()["message"] == KEY_CANNOT_SAVE
    attacker_browser = open_session(app, attacker)
    assert attacker_browser.post("/admin/xero/save", data={"csrf": csrf(attacker_browser)}).status_code == 303
    assert "started in another admin session" in shown(attacker_browser)["message"]
    assert rows(app) == [(attacker.id, tenant_b, "pending")], "nothing the attacker's keys can read"
    assert count(app, SyncState, tenant_id=tenant_b) == 0 and count(app, Invoice, tenant_id=tenant_b) == 0, \
        "no backfill was ever asked for: nothing of B's organisation reached the mirror"


def test_without_redis_admin_requests_answer_503_not_500(database_url, token_key):
    app = create_app(Settings(database_url=database_url, redis_url="redis://127.0.0.1:9/0", token_keys=(token_key,),
                              secret_key="test-secret-key", xero_client_id="cid", xero_client_secret="cs"))
    try:
        ws = new_workspace(app)
        answer = app.test_client().post("/admin/sessions", headers=bearer(ws.admin_key))
        assert answer.status_code == 503 and "Redis" in answer.get_json()["error"]
        assert app.test_client().get("/admin/xero?ticket=anything").status_code == 503
    finally:
        close_app(app)
