"""Issue 20, for CRM developers: a record read back with its links, dates and emails refused
with a clear 400, and an embed URL a CRM's server can use as it is. Every answer is checked
against /api/v1/openapi.json (tests/integration/test_read_api.Api)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from infra.settings import Settings
from store.db import transaction
from wsgi import close_app, create_app

from .mirror_rows import contact, invoice, workspace
from .test_read_api import Api

T = "tenant-r"
SECRET = "test-secret-key"


def _app(database_url, public_url: str = ""):
    return create_app(Settings(database_url=database_url, xero_api_url="http://127.0.0.1:9", secret_key=SECRET,
                               public_url=public_url))


@pytest.fixture
def app(database_url):
    app = _app(database_url)
    yield app
    close_app(app)


@pytest.fixture
def ws(sessions):
    """Ann (x-ann) with two invoices in Acme's organisation; another workspace with its own Ann."""
    with transaction(sessions) as s:
        acme = workspace(s, "Acme", T)
        other = workspace(s, "Other", "tenant-o")
        s.add_all([
            contact(T, "x-ann", "ann@example.com"),
            invoice(T, "i-1", "x-ann", number="INV-1", on=date(2026, 10, 1)),
            invoice(T, "i-2", "x-ann", number="INV-2", on=date(2026, 11, 1)),
            contact("tenant-o", "y-ann", "ann@example.com"),
        ])
    return acme, other


@pytest.fixture
def api(app, ws):
    acme, other = ws
    api = Api(app.test_client(), acme.admin_key)
    assert api.put("/api/v1/contacts/ann", json={"name": "Ann", "email": "Ann@Example.com"}).status_code == 200
    assert api.put("/api/v1/deals/d1", json={"name": "Big one", "invoice_ids": ["i-1", "i-gone"],
                                             "xero_contact_ids": ["x-ann", "x-gone"]}).status_code == 200
    assert api.put("/api/v1/contacts/ann", key=other.admin_key, json={"name": "Other Ann"}).status_code == 200
    return api


# --- GET a record ----------------------------------------------------------------------------


def test_get_answers_what_put_answers_with_every_link_and_why(api, ws):
    acme, _ = ws
    put = api.put("/api/v1/deals/d1", json={"name": "Big one", "invoice_ids": ["i-1", "i-gone"],
                                            "xero_contact_ids": ["x-ann", "x-gone"]}).json
    for key in (acme.admin_key, acme.read_key):
        got = api.get("/api/v1/deals/d1", key=key)
        assert got.status_code == 200 and got.json == put
    assert [(ln["xero_contact_id"], ln["reason"], ln["target_found"]) for ln in put["links"]] == [
        ("x-ann", "explicit", True), ("x-gone", "explicit", False)]
    assert [(ln["invoice_id"], ln["target_found"]) for ln in put["invoice_links"]] == [("i-1", True), ("i-gone", False)]
    assert put["invoice_links"][1]["target_note"].startswith("not in the mirror")

    ann = api.get("/api/v1/contacts/ann").json
    assert (ann["name"], ann["email"], ann["match_email"]) == ("Ann", "ann@example.com", True)
    assert [(ln["xero_contact_id"], ln["reason"], ln["matched_email"], ln["matched_by"], ln["target_found"])
            for ln in ann["links"]] == [("x-ann", "email", "ann@example.com", "main", True)]


def test_get_of_an_unknown_record_or_another_workspaces_is_404_and_needs_a_key(api, ws):
    _, other = ws
    assert api.get("/api/v1/contacts/nobody").status_code == 404
    assert api.get("/api/v1/accounts/ann").status_code == 404  # the id of a contact, asked as an account
    assert api.get("/api/v1/deals/d1", key=other.admin_key).status_code == 404
    assert api.get("/api/v1/contacts/ann", key=other.read_key).json["name"] == "Other Ann"
    assert api.get("/api/v1/contacts/ann", key=None).status_code == 401
    assert api.get("/api/v1/contacts/ann", key="xm_" + "x" * 43).status_code == 401


def test_an_embed_token_reads_its_own_record_and_no_other(api, ws):
    acme, _ = ws
    token = api.call("POST", "/api/v1/embed-tokens", documented="/api/v1/embed-tokens",
                     json={"kind": "deals", "id": "d1"}, key=acme.read_key).json["token"]
    assert api.get("/api/v1/deals/d1", key=token).json == api.get("/api/v1/deals/d1").json
    assert api.get("/api/v1/contacts/ann", key=token).status_code == 404
    assert api.put("/api/v1/deals/d1", key=token, json={"name": "x"}).status_code == 403


# --- 400s with a clear message ---------------------------------------------------------------


def test_from_later_than_to_is_400_saying_so(api):
    refused = api.get("/api/v1/contacts/ann/invoices?view=all&from=2026-11-02&to=2026-10-01")
    assert refused.status_code == 400
    assert refused.json["error"] == "from (2026-11-02) is later than to (2026-10-01): no invoice date can be both"
    same_day = api.get("/api/v1/contacts/ann/invoices?view=all&from=2026-11-01&to=2026-11-01")
    assert [r["invoice_id"] for r in same_day.json["invoices"]] == ["i-2"]


@pytest.mark.parametrize("email, why", [
    ("ann", "exactly one @"),
    ("ann@@example.com", "exactly one @"),
    ("ann@bob@example.com", "exactly one @"),
    ("@example.com", "nothing comes before the @"),
    ("ann@example", "no dot"),
    ("ann@", "no dot"),
    ("ann smith@example.com", "a space"),
    ("ann@exa mple.com", "a space"),
    ("ann\t@example.com", "a space"),
    ("ann@example..com", "empty label"),
    ("ann@.example.com", "empty label"),
    ("ann@example.com.", "empty label"),
    ("a" * 65 + "@example.com", "over 64"),
    ("ann@" + "b" * 64 + ".com", "over 63"),
    ("<ann@example.com>", 'holds one of'),
    ("ann,bob@example.com", 'holds one of'),
])
def test_a_malformed_email_is_400_naming_it(api, email, why):
    refused = api.put("/api/v1/contacts/ann", json={"email": email})
    assert refused.status_code == 400
    assert refused.json["error"].startswith(f"email {json.dumps(email)} is not an email address: ")  # quoted, escaped
    assert why in refused.json["error"]
    assert api.get("/api/v1/contacts/ann").json["email"] == "ann@example.com", "nothing was changed"


@pytest.mark.parametrize("email, stored", [
    ("Ann.O'Brien+crm@Sub.Example.co.nz", "ann.o'brien+crm@sub.example.co.nz"),
    ("  bob@example.com ", "bob@example.com"),
    ("zoë@exämple.de", "zoë@exämple.de"),
    ("", None),
    (None, None),
])
def test_practical_emails_are_taken(api, email, stored):
    taken = api.put("/api/v1/contacts/ann", json={"email": email})
    assert taken.status_code == 200 and taken.json["email"] == stored


def test_a_long_email_is_named_shortened(api):
    email = "a" * 100 + "@example"
    error = api.put("/api/v1/accounts/acme", json={"email": email}).json["error"]
    assert error.startswith('email "' + "a" * 77 + '..." is not an email address: ')


# --- the embed URL -----------------------------------------------------------------------------


def test_the_embed_url_is_absolute_under_public_url(database_url, ws):
    acme, _ = ws
    app = _app(database_url, public_url="https://mirror.example.com")
    try:
        api = Api(app.test_client(), acme.read_key)
        assert api.put("/api/v1/contacts/ann", key=acme.admin_key, json={}).status_code == 200
        body = api.call("POST", "/api/v1/embed-tokens", documented="/api/v1/embed-tokens",
                        json={"kind": "contacts", "id": "ann"}).json
        assert body["url"] == "https://mirror.example.com/embed/contacts/ann#token=" + body["token"]
    finally:
        close_app(app)


def test_without_public_url_the_embed_url_takes_the_requests_host(api, ws):
    acme, _ = ws
    body = api.call("POST", "/api/v1/embed-tokens", documented="/api/v1/embed-tokens", key=acme.read_key,
                    json={"kind": "contacts", "id": "ann"}, base_url="http://crm-dev.test:5055").json
    assert body["url"] == "http://crm-dev.test:5055/embed/contacts/ann#token=" + body["token"]
    page = api.client.get(body["url"].partition("#")[0])
    assert page.status_code == 200 and page.mimetype == "text/html"
