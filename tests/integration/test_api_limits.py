"""/api/v1 against hostile bodies and out-of-scope pins (issue 19): 413 over 64 KB, 400 for
malformed or too-deep JSON, never a 500; pins and unpins 404 for anything out of the caller's
reach, existing or not; a read key pins only what the record already shows."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from infra.settings import Settings
from store.db import transaction
from store.models import Pin
from views.api import BODY_MAX, MAX_DEPTH
from wsgi import close_app, create_app

from .mirror_rows import contact, invoice, workspace

T = "tenant-a"
SECRET = "api-limits-secret-key-of-some-length"


@pytest.fixture
def app(database_url):
    app = create_app(Settings(database_url=database_url, xero_api_url="http://127.0.0.1:9", secret_key=SECRET))
    yield app
    close_app(app)


@pytest.fixture
def ws(sessions):
    """Ann (x-ann) with inv-ann; Bob (x-bob) with inv-bob, whom the CRM contact c1 does not see;
    another workspace's organisation with inv-other."""
    with transaction(sessions) as s:
        a = workspace(s, "Acme", T)
        b = workspace(s, "Other", "tenant-b")
        s.add_all([
            contact(T, "x-ann", "ann@example.com"),
            contact(T, "x-bob", "bob@example.com"),
            invoice(T, "inv-ann", "x-ann"),
            invoice(T, "inv-bob", "x-bob"),
            contact("tenant-b", "y-ann", "ann@example.com"),
            invoice("tenant-b", "inv-other", "y-ann"),
        ])
    return a, b


@pytest.fixture
def client(app, ws):
    client = app.test_client()
    a, _ = ws
    answer = client.put("/api/v1/contacts/c1", json={"email": "ann@example.com"}, headers=bearer(a.admin_key))
    assert answer.status_code == 200, answer.json
    return client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def nested(depth: int) -> bytes:
    """A record body whose `xero_contact_ids` nests `depth` levels of arrays in all."""
    return ('{"xero_contact_ids": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}").encode()


def pinned(sessions) -> set[str]:
    with sessions() as s:
        return set(s.scalars(select(Pin.invoice_id)))


# --- bodies --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path,method", [("/api/v1/contacts/c9", "PUT"), ("/api/v1/embed-tokens", "POST")])
def test_a_body_over_64_kb_is_413_and_one_at_the_limit_is_read(client, ws, path, method):
    a, _ = ws
    padded = b'{"name": "' + b"x" * BODY_MAX + b'"}'
    answer = client.open(path, method=method, data=padded, headers=bearer(a.admin_key),
                         content_type="application/json")
    assert answer.status_code == 413 and answer.mimetype == "application/json"
    assert "64 KB" in answer.json["error"]
    # without a key too: the size is refused before anything is read
    assert client.open(path, method=method, data=padded, content_type="application/json").status_code == 413
    at_limit = b'{"name": "' + b"x" * (BODY_MAX - 12) + b'"}'
    assert len(at_limit) == BODY_MAX
    answer = client.open(path, method=method, data=at_limit, headers=bearer(a.admin_key),
                         content_type="application/json")
    assert answer.status_code == 400  # read, and refused for what it says (a name over 500 characters)


def test_a_chunked_body_that_runs_past_64_kb_is_413(client, ws):
    a, _ = ws
    big = b'{"name": "' + b"x" * (2 * BODY_MAX) + b'"}'
    # no Content-Length: werkzeug's limit cuts the stream off at BODY_MAX
    environ = {"wsgi.input_terminated": True}
    answer = client.open("/api/v1/contacts/c9", method="PUT", input_stream=io.BytesIO(big),
                         headers={**bearer(a.admin_key), "Transfer-Encoding": "chunked"},
                         environ_overrides=environ)
    assert answer.status_code == 413 and "64 KB" in answer.json["error"]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 200_000])
@pytest.mark.parametrize("path,method", [("/api/v1/contacts/c9", "PUT"), ("/api/v1/embed-tokens", "POST")])
def test_json_nested_too_deep_is_400_not_500(client, ws, depth, path, method):
    a, _ = ws
    body = nested(depth)[: BODY_MAX]
    if len(body) == BODY_MAX:  # the deepest cut to fit: unbalanced is malformed, still 400
        body = b"[" * BODY_MAX
    answer = client.open(path, method=method, data=body, headers=bearer(a.admin_key),
                         content_type="application/json")
    assert answer.status_code == 400 and answer.mimetype == "application/json", answer.data[:200]


def test_json_at_the_depth_limit_is_read(client, ws):
    a, _ = ws
    answer = client.put("/api/v1/contacts/c9", data=nested(MAX_DEPTH), headers=bearer(a.admin_key),
                        content_type="application/json")
    assert answer.status_code == 400  # parsed: refused for its shape (ids are strings), not its depth
    assert "xero_contact_ids must be a list" in answer.json["error"]


@pytest.mark.parametrize("body", [b"{", b'{"email": "a@b.test",}', b"\xff\xfe{}", b"[]", b"null", b"NaN-ish",
                                  b'{"email": "\\ud800"}'])
def test_malformed_bodies_are_400(client, ws, body):
    a, _ = ws
    for path, method in (("/api/v1/contacts/c9", "PUT"), ("/api/v1/embed-tokens", "POST")):
        answer = client.open(path, method=method, data=body, headers=bearer(a.admin_key),
                             content_type="application/json")
        assert answer.status_code == 400 and "error" in answer.json, (path, body, answer.status_code)


# --- pins ----------------------------------------------------------------------------------------


def embed_token(client, key: str) -> str:
    answer = client.post("/api/v1/embed-tokens", json={"kind": "contacts", "id": "c1"}, headers=bearer(key))
    assert answer.status_code == 200, answer.json
    return answer.json["token"]


def test_an_embed_token_gets_the_same_404_for_out_of_scope_invoices_existing_or_not(client, ws, sessions):
    a, _ = ws
    token = embed_token(client, a.read_key)
    base = "/api/v1/contacts/c1/pins/"
    for method in ("PUT", "DELETE"):
        answers = [client.open(base + invoice_id, method=method, headers=bearer(token))
                   for invoice_id in ("inv-bob", "no-such-invoice", "inv-other")]
        assert [(r.status_code, r.json) for r in answers] == [(404, {"error": "no such invoice"})] * 3, method
    assert pinned(sessions) == set()
    assert client.put(base + "inv-ann", headers=bearer(token)).status_code == 200
    assert client.delete(base + "inv-ann", headers=bearer(token)).status_code == 200
    assert client.delete(base + "inv-ann", headers=bearer(token)).status_code == 200  # in reach: idempotent


def test_a_read_key_pins_only_what_the_record_shows(client, ws, sessions):
    a, _ = ws
    base = "/api/v1/contacts/c1/pins/"
    for method in ("PUT", "DELETE"):
        for invoice_id in ("inv-bob", "no-such-invoice", "inv-other"):
            answer = client.open(base + invoice_id, method=method, headers=bearer(a.read_key))
            assert (answer.status_code, answer.json) == (404, {"error": "no such invoice"}), (method, invoice_id)
    assert pinned(sessions) == set()
    listed = client.get("/api/v1/contacts/c1/invoices", headers=bearer(a.read_key)).json
    assert [row["invoice_id"] for row in listed["invoices"]] == ["inv-ann"]  # nothing widened
    assert client.put(base + "inv-ann", headers=bearer(a.read_key)).json["pinned"] is True
    assert pinned(sessions) == {"inv-ann"}
    assert client.delete(base + "inv-ann", headers=bearer(a.read_key)).json["pinned"] is False


def test_an_admin_key_pins_any_invoice_of_its_organisation_and_nothing_else(client, ws, sessions):
    a, b = ws
    base = "/api/v1/contacts/c1/pins/"
    assert client.put(base + "inv-bob", headers=bearer(a.admin_key)).status_code == 200
    listed = client.get("/api/v1/contacts/c1/invoices", headers=bearer(a.read_key)).json
    assert {row["invoice_id"] for row in listed["invoices"]} == {"inv-ann", "inv-bob"}
    # a read key may take back a pin the record has (it shows it), and then no longer reach it
    assert client.delete(base + "inv-bob", headers=bearer(a.read_key)).status_code == 200
    assert client.delete(base + "inv-bob", headers=bearer(a.read_key)).status_code == 404
    for method in ("PUT", "DELETE"):
        for invoice_id in ("inv-other", "no-such-invoice"):
            answer = client.open(base + invoice_id, method=method, headers=bearer(a.admin_key))
            assert (answer.status_code, answer.json) == (404, {"error": "no such invoice"})
    assert pinned(sessions) == set()
    # another workspace's admin key does not reach this workspace's record at all
    assert client.put(base + "inv-ann", headers=bearer(b.admin_key)).status_code == 404
