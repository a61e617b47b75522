"""Embed tokens: issued only for a workspace key, good for one record's widget for an hour."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from freezegun import freeze_time
from itsdangerous import URLSafeSerializer
from sqlalchemy import update

from infra.settings import Settings
from store.db import transaction
from store.models import ApiKey, Pin
from views import widget
from wsgi import close_app, create_app

from .mirror_rows import contact, invoice, payment, workspace
from .test_read_api import Api

SECRET = "test-secret-key"
ISSUE = "/api/v1/embed-tokens"


@pytest.fixture
def app(database_url, monkeypatch):
    monkeypatch.delenv("EMBED_FRAME_ANCESTORS", raising=False)
    settings = Settings(database_url=database_url, xero_api_url="http://127.0.0.1:9", secret_key=SECRET)
    app = create_app(settings)
    yield app
    close_app(app)


@pytest.fixture
def ws(sessions):
    """Workspace A: Ann (c1) and Bob (c2), one invoice each, Ann's paid in two installments;
    workspace B: its own Ann (c1) in another organisation."""
    with transaction(sessions) as s:
        a = workspace(s, "Acme", "tenant-a")
        b = workspace(s, "Other", "tenant-b")
        s.add_all(
            [
                contact("tenant-a", "x-ann", "ann@example.com"),
                contact("tenant-a", "x-bob", "bob@example.com"),
                invoice("tenant-a", "inv-ann", "x-ann", status="PAID", total="90.00", paid="90.00"),
                invoice("tenant-a", "inv-bob", "x-bob"),
                payment("tenant-a", "p1", "inv-ann", "40.00", date(2026, 10, 1)),
                payment("tenant-a", "p2", "inv-ann", "50.00", date(2026, 10, 9)),
                contact("tenant-b", "y-ann", "ann@example.com"),
                invoice("tenant-b", "inv-b", "y-ann"),
            ]
        )
    return a, b


@pytest.fixture
def api(app, ws):
    a, b = ws
    api = Api(app.test_client(), a.admin_key)
    for key in (a.admin_key, b.admin_key):
        assert api.put("/api/v1/contacts/c1", key=key, json={"email": "ann@example.com"}).status_code == 200
    assert api.put("/api/v1/contacts/c2", json={"email": "bob@example.com"}).status_code == 200
    return api


def issue(api, key, kind="contacts", record="c1", **kw):
    return api.call("POST", ISSUE, key=key, documented=ISSUE, json={"kind": kind, "id": record}, **kw)


def token_for(api, key, record="c1") -> str:
    response = issue(api, key, record=record)
    assert response.status_code == 200, response.json
    return response.json["token"]


def ids(response) -> list[str]:
    return [row["invoice_id"] for row in response.json["invoices"]]


# --- issuing ---------------------------------------------------------------------------------


@freeze_time("2026-11-25 09:00:00")
def test_a_workspace_key_gets_a_token_and_the_widget_url_for_an_hour(api, ws):
    a, _ = ws
    for key in (a.admin_key, a.read_key):
        body = issue(api, key).json
        assert body["token"].startswith("xme_")
        # absolute (the test client's host, PUBLIC_URL being unset); the token in the fragment: never sent
        assert body["url"] == "http://localhost/embed/contacts/c1#token=" + body["token"]
        assert datetime.fromisoformat(body["expires_at"]) == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("header", [None, "Bearer xm_wrong", "Basic abc", "Bearer "])
def test_issuing_a_token_needs_a_workspace_key(api, header):
    headers = {"Authorization": header} if header is not None else {}
    response = api.client.post(ISSUE, headers=headers, json={"kind": "contacts", "id": "c1"})
    assert response.status_code == 401 and response.json["error"]


def test_an_embed_token_cannot_ask_for_another_token(api, ws):
    token = token_for(api, ws[0].read_key)
    response = issue(api, token, record="c2")
    assert response.status_code == 401 and "API key" in response.json["error"]


@pytest.mark.parametrize(
    "body",
    [{}, {"kind": "contacts"}, {"kind": "people", "id": "c1"}, {"kind": "contacts", "id": ""},
     {"kind": "contacts", "id": 7}, {"kind": "contacts", "id": "c1", "extra": 1}, [], "c1"],
)
def test_bad_token_requests_are_400(api, ws, body):
    response = api.call("POST", ISSUE, key=ws[0].admin_key, documented=ISSUE, json=body)
    assert response.status_code == 400


def test_a_token_for_an_unknown_record_is_404(api, ws):
    assert issue(api, ws[0].admin_key, record="nobody").status_code == 404
    assert issue(api, ws[0].admin_key, kind="deals").status_code == 404


def test_without_a_secret_key_tokens_are_refused_with_a_clear_error(database_url, ws):
    app = create_app(Settings(database_url=database_url, xero_api_url="http://127.0.0.1:9"))
    try:
        api = Api(app.test_client(), ws[0].admin_key)
        api.put("/api/v1/contacts/c1", json={"email": "ann@example.com"})
        response = issue(api, ws[0].admin_key)
        assert response.status_code == 503 and "SECRET_KEY" in response.json["error"]
        forged = "xme_" + URLSafeSerializer("", salt=widget.TOKEN_SALT).dumps({"w": 1})
        assert api.get("/api/v1/contacts/c1/invoices", key=forged).status_code == 401
    finally:
        close_app(app)


# --- what a token reaches ----------------------------------------------------------------------


def test_a_token_reads_and_pins_its_own_record(api, ws):
    token = token_for(api, ws[0].read_key)
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=all", key=token)) == ["inv-ann"]
    assert api.get("/api/v1/contacts/c1/summary", key=token).json["paid"]["count"] == 1
    installments = api.get("/api/v1/invoices/inv-ann/payments", key=token).json["installments"]
    assert [i["amount"] for i in installments] == ["40.00", "50.00"]
    assert api.put("/api/v1/contacts/c1/pins/inv-ann", key=token).json["pinned"] is True
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=pinned", key=token)) == ["inv-ann"]
    assert api.delete("/api/v1/contacts/c1/pins/inv-ann", key=token).json["pinned"] is False


def test_a_token_reaches_no_other_record(api, ws):
    token = token_for(api, ws[0].read_key)
    for url in [
        "/api/v1/contacts/c2/invoices",
        "/api/v1/contacts/c2/summary",
        "/api/v1/accounts/c1/invoices",  # the same id, another kind
        "/api/v1/deals/c1/summary",
    ]:
        assert api.get(url, key=token).status_code == 404, url
    assert api.put("/api/v1/contacts/c2/pins/inv-bob", key=token).status_code == 404
    assert api.delete("/api/v1/contacts/c2/pins/inv-bob", key=token).status_code == 404


def test_a_token_sees_payments_only_of_invoices_its_record_sees(api, ws):
    token = token_for(api, ws[0].read_key)
    assert api.get("/api/v1/invoices/inv-bob/payments", key=token).status_code == 404
    assert api.get("/api/v1/invoices/inv-bob/payments", key=ws[0].read_key).status_code == 200


def test_a_token_cannot_pin_an_invoice_its_record_does_not_see(api, ws, sessions):
    """A key may pin any invoice (that is how a deal collects them); a token may not, or
    pinning would widen what the widget can read."""
    token = token_for(api, ws[0].read_key)
    assert api.put("/api/v1/contacts/c1/pins/inv-bob", key=token).status_code == 404
    assert api.get("/api/v1/invoices/inv-bob/payments", key=token).status_code == 404
    with sessions() as s:
        assert s.query(Pin).count() == 0


def test_a_token_cannot_change_records(api, ws):
    token = token_for(api, ws[0].admin_key)  # even one issued with an admin key
    response = api.put("/api/v1/contacts/c1", key=token, json={"email": "bob@example.com"})
    assert response.status_code == 403
    assert api.put("/api/v1/contacts/c2", key=token, json={}).status_code == 403


def test_a_token_of_another_workspace_reaches_only_that_workspace(api, ws):
    _, b = ws
    token = token_for(api, b.read_key)
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=all", key=token)) == ["inv-b"]
    assert api.get("/api/v1/invoices/inv-ann/payments", key=token).status_code == 404
    assert api.put("/api/v1/contacts/c1/pins/inv-ann", key=token).status_code == 404


# --- tokens that are no good -------------------------------------------------------------------


def test_a_token_expires_after_an_hour(api, ws):
    with freeze_time("2026-11-25 09:00:00"):
        token = token_for(api, ws[0].read_key)
    with freeze_time("2026-11-25 09:59:59"):
        assert api.get("/api/v1/contacts/c1/summary", key=token).status_code == 200
    with freeze_time("2026-11-25 10:00:00"):
        response = api.get("/api/v1/contacts/c1/summary", key=token)
        assert response.status_code == 401 and "expired" in response.json["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_forged_tokens_are_401(api, ws):
    a, _ = ws
    token = token_for(api, a.read_key)
    payload, _, signature = token.rpartition(".")
    claims = URLSafeSerializer(SECRET, salt=widget.TOKEN_SALT).loads(token[4:])
    forged = [
        payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:],  # tampered signature
        "xme_" + URLSafeSerializer("another-secret", salt=widget.TOKEN_SALT).dumps(claims),
        "xme_" + URLSafeSerializer(SECRET, salt="another-purpose").dumps(claims),
        # the claims of one token with the signature of another
        "xme_" + URLSafeSerializer(SECRET).dumps({**claims, "r": "c2"}).split(".")[0] + "." + signature,
        "xme_",
        "xme_garbage",
    ]
    for bad in forged:
        response = api.get("/api/v1/contacts/c1/invoices", key=bad)
        assert response.status_code == 401, bad


def test_a_token_dies_with_the_key_that_issued_it(api, ws, sessions):
    a, _ = ws
    token = token_for(api, a.read_key)
    with transaction(sessions) as s:
        s.execute(update(ApiKey).where(ApiKey.scope == "read").values(revoked_at=datetime.now(UTC)))
    response = api.get("/api/v1/contacts/c1/invoices", key=token)
    assert response.status_code == 401 and "revoked" in response.json["error"]


# --- the page --------------------------------------------------------------------------------


def test_the_page_serves_the_widget_for_its_record_with_a_strict_policy(api, ws):
    url = issue(api, ws[0].read_key).json["url"]
    response = api.client.get(url.partition("#")[0])  # what a browser asks for: no fragment
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert 'id="invoice-list"' in html and "xme_" not in html  # the script reads the fragment
    assert 'data-access-url="/embed/contacts/c1/access"' in html
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors *" in csp
    assert "unsafe-inline" not in csp and "X-Frame-Options" not in response.headers
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    with api.client.get("/embed/static/widget.js") as script:
        assert script.status_code == 200 and "Content-Security-Policy" in script.headers


def test_a_link_in_the_older_query_form_still_opens_the_widget(api, ws):
    token = token_for(api, ws[0].read_key)
    response = api.client.get(f"/embed/contacts/c1?token={token}")
    assert response.status_code == 200 and f'data-token="{token}"' in response.get_data(as_text=True)
    assert response.headers["Referrer-Policy"] == "no-referrer" and response.headers["Cache-Control"] == "no-store"


def test_the_page_in_the_older_form_refuses_expired_and_other_records_tokens(api, ws):
    with freeze_time("2026-11-25 09:00:00"):
        token = token_for(api, ws[0].read_key)
    with freeze_time("2026-11-25 09:30:00"):  # within the token's hour, whatever the real clock says
        assert api.client.get(f"/embed/contacts/c2?token={token}").status_code == 404
        assert api.client.get(f"/embed/accounts/c1?token={token}").status_code == 404
    with freeze_time("2026-11-25 10:00:01"):
        response = api.client.get(f"/embed/contacts/c1?token={token}")
        assert response.status_code == 401 and 'id="state-error"' in response.get_data(as_text=True)
        assert "expired" in response.get_data(as_text=True)


def access(api, path: str, token: str | None):
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return api.client.post(f"{path}/access", headers=headers)


def test_the_access_check_opens_the_tokens_own_record_only(api, ws):
    with freeze_time("2026-11-25 09:00:00"):
        token = token_for(api, ws[0].read_key)
    with freeze_time("2026-11-25 09:30:00"):
        ok = access(api, "/embed/contacts/c1", token)
        assert ok.status_code == 204 and ok.headers["Cache-Control"] == "no-store"
        for path in ("/embed/contacts/c2", "/embed/accounts/c1", "/embed/contacts/" + "x" * 300):
            other = access(api, path, token)
            assert other.status_code == 404 and other.json["error"] == "This link is for a different record.", path
    with freeze_time("2026-11-25 10:00:01"):
        late = access(api, "/embed/contacts/c1", token)
        assert late.status_code == 401 and "expired" in late.json["error"]


@pytest.mark.parametrize("token", [None, "", "xme_forged", "xm_an-api-key", "xme_" + "a" * 5000])
def test_the_access_check_refuses_a_missing_or_bad_token_with_a_message(api, token):
    response = access(api, "/embed/contacts/c1", token)
    assert response.status_code == 401 and response.json["error"]


def test_the_access_check_ends_with_the_key_that_issued_the_token(api, ws, sessions):
    token = token_for(api, ws[0].read_key)
    assert access(api, "/embed/contacts/c1", token).status_code == 204
    with transaction(sessions) as s:
        s.execute(update(ApiKey).where(ApiKey.workspace_id == ws[0].id, ApiKey.scope == "read")
                  .values(revoked_at=datetime.now(UTC)))
    assert access(api, "/embed/contacts/c1", token).status_code == 401


def test_the_access_check_without_a_secret_key_says_embeds_are_off(database_url, ws):
    app = create_app(Settings(database_url=database_url, xero_api_url="http://127.0.0.1:9"))
    try:
        response = app.test_client().post("/embed/contacts/c1/access", headers={"Authorization": "Bearer xme_x"})
        assert response.status_code == 503 and "not enabled" in response.json["error"]
    finally:
        close_app(app)


def test_frame_ancestors_come_from_the_environment(database_url, ws, monkeypatch):
    env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET,
           "EMBED_FRAME_ANCESTORS": "https://crm.example.com  https://*.example.org"}
    app = create_app(Settings.from_env(env))
    try:
        response = app.test_client().get("/embed/contacts/c1")
        policy = response.headers["Content-Security-Policy"]
        assert policy.endswith("frame-ancestors https://crm.example.com https://*.example.org")
    finally:
        close_app(app)


@pytest.mark.parametrize(
    "value", ["*; script-src *", "https://a.example, https://b.example", "'unsafe-inline'"]
)
def test_a_frame_ancestors_value_that_is_not_a_source_list_is_refused(value):
    with pytest.raises(ValueError, match="EMBED_FRAME_ANCESTORS"):
        Settings.from_env({"EMBED_FRAME_ANCESTORS": value})


@pytest.mark.parametrize("name, value", [("EMBED_POLL_SECONDS", "0.1"), ("EMBED_POLL_SECONDS", "soon"),
                                         ("EMBED_PER_PAGE", "0"), ("EMBED_PER_PAGE", "500")])
def test_widget_knobs_out_of_range_are_refused_at_start_up(name, value):
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_widget_knobs_reach_the_page(database_url, ws):
    app = create_app(Settings.from_env({"DATABASE_URL": database_url, "SECRET_KEY": SECRET,
                                        "EMBED_POLL_SECONDS": "7.5", "EMBED_PER_PAGE": "25"}))
    try:
        assert (app.config["EMBED_POLL_SECONDS"], app.config["EMBED_PER_PAGE"]) == (7.5, 25)
    finally:
        close_app(app)
