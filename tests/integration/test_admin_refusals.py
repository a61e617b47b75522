"""What the connect flow refuses: forged, replayed or foreign `state`, a cancelled consent,
an organisation live in another workspace, a second organisation for one workspace."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from store.models import XeroConnection
from tests.integration.admin_flow import (  # noqa: F401  (fixtures)
    app,
    calls,
    connect_and_save,
    consent,
    dance,
    emulator,
    new_workspace,
    open_session,
    redis,
    settings,
    shown,
    start_connect,
    stored_token,
    token_key,
)
from xero.identity import IdentityClient, IdentityRefused, IdentityUnavailable


def live_rows(app) -> list[tuple[int, str, str]]:
    with app.extensions["xm"].sessions() as s:
        return [(r.workspace_id, r.tenant_id, r.status) for r in
                s.scalars(select(XeroConnection).where(XeroConnection.status != "disconnected"))]


def test_forged_state_is_refused_before_any_call_to_xero(app, emulator):
    browser = open_session(app, new_workspace(app))
    start_connect(browser)  # a real flow is under way; the forged state is not it
    answer = browser.get("/admin/xero/callback?code=anything&state=forged-by-someone")
    assert answer.status_code == 400
    assert "refused" in answer.get_data(as_text=True)
    assert calls(emulator, "POST /connect/token") == 0
    assert live_rows(app) == []


def test_replayed_callback_is_refused_and_changes_nothing(app, emulator):
    tenant = emulator.state.tenant_ids[0]
    browser = open_session(app, new_workspace(app))
    back = consent(start_connect(browser), [tenant])
    assert browser.get(back).status_code == 303
    rows = live_rows(app)

    replay = browser.get(back)
    assert replay.status_code == 400 and "already used" in replay.get_data(as_text=True)
    assert calls(emulator, "POST /connect/token") == 1
    assert live_rows(app) == rows


def test_state_is_bound_to_the_session_and_the_workspace_that_started_the_flow(app, emulator):
    tenant = emulator.state.tenant_ids[0]
    ws = new_workspace(app)
    started_here = open_session(app, ws)
    same_workspace_other_browser = open_session(app, ws)
    other_workspace = open_session(app, new_workspace(app, "Other CRM"))

    back = consent(start_connect(started_here), [tenant])
    assert same_workspace_other_browser.get(back).status_code == 400
    back = consent(start_connect(started_here), [tenant])
    assert other_workspace.get(back).status_code == 400
    assert calls(emulator, "POST /connect/token") == 0
    assert live_rows(app) == []


def test_consent_cancelled_at_xero_says_so_and_connects_nothing(app, emulator):
    browser = open_session(app, new_workspace(app))
    back = consent(start_connect(browser), [emulator.state.tenant_ids[0]], decision="deny")
    assert parse_qs(urlsplit(back).query)["error"] == ["access_denied"]
    assert browser.get(back).status_code == 303
    page = shown(browser)
    assert "access_denied" in page["message"] and page["status"] == "Not connected"
    assert live_rows(app) == []


def test_organisation_live_in_another_workspace_is_refused_and_that_workspace_keeps_its_connection(app, emulator):
    tenant = emulator.state.tenant_ids[0]
    first = new_workspace(app, "First")
    connect_and_save(app, first, tenant)
    first_token = stored_token(app, tenant)

    second = open_session(app, new_workspace(app, "Second"))
    assert dance(second, [tenant]).status_code == 303
    page = shown(second)
    assert "already connected to another workspace" in page["message"]
    assert page["status"] == "Not connected"
    assert live_rows(app) == [(first.id, tenant, "active")]

    # the first workspace's connection at Xero is the one the second consent re-used: it stays
    assert calls(emulator, "DELETE /Connections/{id}") == 0
    assert calls(emulator, "POST /connect/revocation") == 0
    with IdentityClient(app.extensions["xm"].settings) as identity:
        assert [c.tenant_id for c in identity.connections(first_token["access_token"])] == [tenant]


def test_a_workspace_reads_one_organisation_and_the_refused_grant_does_not_dangle(app, emulator):
    kept, refused = emulator.state.tenant_ids[:2]
    ws = new_workspace(app)
    browser = connect_and_save(app, ws, kept)

    assert dance(browser, [refused]).status_code == 303
    page = shown(browser)
    assert "already connected to" in page["message"] and "Remove that connection first" in page["message"]
    assert (page["status"], live_rows(app)) == ("Connected", [(ws.id, kept, "active")])

    with IdentityClient(app.extensions["xm"].settings) as identity:
        left = {c.tenant_id for c in identity.connections(stored_token(app, kept)["access_token"])}
    assert left == {kept}, "the refused organisation's new connection was deleted at Xero; ours stands"


def test_id_token_from_another_issuer_is_refused_and_nothing_is_stored(app, emulator):
    emulator.state.config.issuer = "https://identity.impostor.example"
    browser = open_session(app, new_workspace(app))
    assert dance(browser, [emulator.state.tenant_ids[0]]).status_code == 303
    page = shown(browser)
    assert "Connecting to Xero failed: the id_token was issued by someone else" in page["message"]
    assert page["status"] == "Not connected" and live_rows(app) == []


def test_identity_errors_never_quote_the_secrets_they_carried(app, emulator):
    settings = app.extensions["xm"].settings
    code, refresh = "secret-code-0123456789", "secret-refresh-0123456789"
    with IdentityClient(settings) as identity:
        with pytest.raises(IdentityRefused) as refused_code:
            identity.exchange_code(code, "http://localhost/cb", "v" * 43)
        with pytest.raises(IdentityRefused) as refused_refresh:
            identity.refresh(refresh, ["openid"])
    offline = settings.__class__(**{**settings.__dict__, "xero_identity_url": "http://127.0.0.1:9"})
    with IdentityClient(offline) as identity, pytest.raises(IdentityUnavailable) as unreachable:
        identity.revoke(refresh)

    for caught in (refused_code, refused_refresh, unreachable):
        text = f"{caught.value} {caught.value!r}"
        assert code not in text and refresh not in text
        chained = caught.value.__cause__ or (None if caught.value.__suppress_context__ else caught.value.__context__)
        assert chained is None  # no urllib3 error riding along that might quote the request
    assert refused_code.value.error == refused_refresh.value.error == "invalid_grant"
