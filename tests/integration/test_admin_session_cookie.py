"""The admin session cookie (views.admin.CookieSessions): Flask's signed cookie, with the
serializer built once per secret key and no session work for a request without the cookie."""
from __future__ import annotations

from tests.integration.admin_flow import bare_app, new_workspace, open_session, token_key  # noqa: F401  (fixtures)
from views.admin import CookieSessions


def test_the_serializer_is_built_once_per_secret_key(bare_app):
    sessions = bare_app.session_interface
    assert isinstance(sessions, CookieSessions)
    first = sessions.get_signing_serializer(bare_app)
    assert first is not None and sessions.get_signing_serializer(bare_app) is first
    bare_app.secret_key = "another-secret-key"
    assert sessions.get_signing_serializer(bare_app) is not first


def test_a_session_survives_a_key_rotation_only_through_the_fallbacks(bare_app):
    ws = new_workspace(bare_app)
    browser = open_session(bare_app, ws)
    assert browser.get("/admin/xero").status_code == 200
    old = bare_app.secret_key
    bare_app.secret_key = "rotated-secret-key"
    bare_app.config["SECRET_KEY_FALLBACKS"] = [old]
    assert browser.get("/admin/xero").status_code == 200  # signed with the old key, still good
    bare_app.config["SECRET_KEY_FALLBACKS"] = []
    assert browser.get("/admin/xero").status_code == 403  # nobody holds that key any more


def test_a_forged_cookie_opens_no_session(bare_app):
    browser = bare_app.test_client()
    browser.set_cookie("xm_admin", "eyJ3cyI6MX0.forged.signature", path="/admin")
    assert browser.get("/admin/xero").status_code == 403


def test_webhooks_and_reads_neither_get_nor_clear_a_cookie(bare_app):
    client = bare_app.test_client()
    for answer in (client.get("/healthz"), client.post("/webhooks/xero", data=b"{}"),
                   client.get("/api/v1/openapi.json")):
        assert answer.status_code in (200, 401), answer.status_code
        assert "Set-Cookie" not in answer.headers and "Cookie" not in answer.headers.get("Vary", ""), answer.headers
