"""The CRM JSON API over a real database: every answer checked against /api/v1/openapi.json."""

from __future__ import annotations

import socket
import sys
from datetime import UTC, date, datetime
from decimal import Decimal

import jsonschema
import pytest
from freezegun import freeze_time

from infra.settings import Settings
from store.db import transaction
from store.models import Pin, SyncState
from wsgi import close_app, create_app

from .mirror_rows import contact, invoice, payment, workspace

T = "tenant-a"
SYNCED = datetime(2026, 11, 25, 8, 59, 30, tzinfo=UTC)


# --- the document, as a validator -------------------------------------------------------


def _json_schema(node, doc):
    """OpenAPI 3.0 schema -> JSON Schema: inline $refs, turn `nullable` into a null type."""
    if isinstance(node, list):
        return [_json_schema(n, doc) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return _json_schema(target, doc)
    out = {k: _json_schema(v, doc) for k, v in node.items() if k != "nullable"}
    return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") else out


class Api:
    """A test client that checks each answer against the operation's documented response."""

    def __init__(self, client, key: str | None):
        self.client, self.key = client, key
        self.doc = client.get("/api/v1/openapi.json").get_json()

    def call(
        self, method: str, url: str, *, key: str | None = "default", documented: str | None = None, **kw
    ):
        key = self.key if key == "default" else key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = self.client.open(url, method=method, headers=headers, **kw)
        template = documented or _template(url.split("?")[0])
        operation = self.doc["paths"][template][method.lower()]
        assert str(response.status_code) in operation["responses"], (
            response.status_code,
            response.get_json(),
        )
        assert response.mimetype == "application/json"
        documented_response = operation["responses"][str(response.status_code)]
        schema = _json_schema(documented_response["content"]["application/json"]["schema"], self.doc)
        jsonschema.validate(response.get_json(), schema, format_checker=jsonschema.FormatChecker())
        return response

    def get(self, url, **kw):
        return self.call("GET", url, **kw)

    def put(self, url, **kw):
        return self.call("PUT", url, **kw)

    def delete(self, url, **kw):
        return self.call("DELETE", url, **kw)


def _template(path: str) -> str:
    parts = path.strip("/").split("/")  # api v1 kind id [tail...]
    if parts[2] == "invoices":
        return "/api/v1/invoices/{invoice_id}/payments"
    tail = parts[4:]
    if tail[:1] == ["pins"]:
        tail = ["pins", "{invoice_id}"]
    return "/".join(["", "api", "v1", parts[2], "{id}", *tail])


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def app(database_url):
    app = create_app(Settings(database_url=database_url, xero_api_url="http://127.0.0.1:9"))
    yield app
    close_app(app)


@pytest.fixture
def ws(sessions):
    """Ann (contact c1) with five invoices around 2026-11-25, one part-paid in installments."""
    with transaction(sessions) as s:
        ws = workspace(s, "Acme", T, short_code="!Ab1x", base="NZD")
        s.add_all(
            [
                contact(T, "x1", "Ann@Example.com"),
                invoice(
                    T, "i-yesterday", "x1", number="INV-0001", on=date(2026, 10, 1), due=date(2026, 11, 24)
                ),
                invoice(T, "i-today", "x1", number="INV-0002", on=date(2026, 10, 2), due=date(2026, 11, 25)),
                invoice(
                    T,
                    "i-tomorrow",
                    "x1",
                    number="INV-0003",
                    on=date(2026, 10, 3),
                    due=date(2026, 11, 26),
                    total="300.00",
                    paid="120.00",
                ),
                invoice(
                    T,
                    "i-paid",
                    "x1",
                    number="INV-0004",
                    on=date(2026, 10, 4),
                    status="PAID",
                    total="80.00",
                    paid="80.00",
                    currency="USD",
                    rate="0.6",
                ),
                invoice(T, "i-draft", "x1", number="INV-0005", on=date(2026, 10, 5), status="DRAFT"),
                invoice(
                    T,
                    "b-1",
                    "x1",
                    number="BILL-1",
                    on=date(2026, 9, 1),
                    type="ACCPAY",
                    status="PAID",
                    total="10.00",
                    paid="10.00",
                ),
                payment(T, "p2", "i-tomorrow", "70.00", date(2026, 11, 10), reference="second"),
                payment(T, "p1", "i-tomorrow", "50.00", date(2026, 10, 20), reference="first"),
                payment(T, "p0", "i-tomorrow", "9.00", date(2026, 10, 25), status="DELETED"),
                SyncState(tenant_id=T, last_success_at=SYNCED),
            ]
        )
    return ws


@pytest.fixture
def api(app, ws):
    api = Api(app.test_client(), ws.admin_key)
    assert api.put("/api/v1/contacts/c1", json={"name": "Ann", "email": "ann@example.com"}).status_code == 200
    return api


def ids(response) -> list[str]:
    return [row["invoice_id"] for row in response.get_json()["invoices"]]


# --- lists and views ----------------------------------------------------------------------


@freeze_time("2026-11-25 23:30:00")
def test_views_through_the_api_put_due_today_in_open_not_overdue(api):
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=overdue")) == ["i-yesterday"]
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=open")) == ["i-tomorrow", "i-today"]
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=paid")) == ["i-paid"]  # a bill only when asked
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=paid&type=bill")) == ["b-1"]
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=all&type=all")) == [
        "i-draft",
        "i-paid",
        "i-tomorrow",
        "i-today",
        "i-yesterday",
        "b-1",
    ]
    labels = {
        r["invoice_id"]: r["status_label"]
        for r in api.get("/api/v1/contacts/c1/invoices?view=all&type=all").json["invoices"]
    }
    assert labels == {
        "i-yesterday": "Overdue",
        "i-today": "Open",
        "i-tomorrow": "Partially paid",
        "i-paid": "Paid",
        "i-draft": "Draft",
        "b-1": "Paid",
    }


def test_the_api_takes_today_from_the_clock(api):
    with freeze_time("2026-11-25 12:00:00"):
        assert ids(api.get("/api/v1/contacts/c1/invoices?view=overdue")) == ["i-yesterday"]
    with freeze_time("2026-11-26 00:00:01"):
        response = api.get("/api/v1/contacts/c1/invoices?view=overdue")
        assert ids(response) == ["i-today", "i-yesterday"] and response.json["today"] == "2026-11-26"


@freeze_time("2026-11-25 12:00:00")
def test_no_view_lists_the_unpaid_set_including_overdue(api):
    response = api.get("/api/v1/contacts/c1/invoices")
    assert response.json["view"] == "unpaid"
    assert ids(response) == ["i-tomorrow", "i-today", "i-yesterday"]


@freeze_time("2026-11-25 12:00:00")
def test_each_row_carries_what_the_design_lists(api):
    (row,) = api.get("/api/v1/contacts/c1/invoices?q=0003").json["invoices"]
    assert row == {
        "invoice_id": "i-tomorrow",
        "number": "INV-0003",
        "xero_url": "https://go.xero.com/organisationlogin/default.aspx?shortcode=!Ab1x"
        "&redirecturl=/AccountsReceivable/View.aspx?InvoiceID=i-tomorrow",
        "date": "2026-10-03",
        "due_date": "2026-11-26",
        "type": "ACCREC",
        "type_label": "Sales invoice",
        "balance": "180.00",
        "total": "300.00",
        "currency": "NZD",
        "status": "AUTHORISED",
        "status_label": "Partially paid",
        "days_overdue": 0,
        "amount_paid": "120.00",
        "amount_credited": "0.00",
        "pinned": False,
        "payment_count": 2,
        "allocation_count": 0,
    }
    (bill,) = api.get("/api/v1/contacts/c1/invoices?view=paid&type=bill&q=bill").json["invoices"]
    assert bill["type_label"] == "Bill" and "/AccountsPayable/Edit.aspx?InvoiceID=b-1" in bill["xero_url"]


def test_without_a_short_code_the_link_opens_in_the_current_organisation(app, sessions):
    with transaction(sessions) as s:
        ws = workspace(s, "NoCode", "t-nocode", short_code=None)
        s.add_all([contact("t-nocode", "x1", "a@b.c"), invoice("t-nocode", "i1", "x1")])
    api = Api(app.test_client(), ws.admin_key)
    api.put("/api/v1/contacts/c1", json={"email": "a@b.c"})
    (row,) = api.get("/api/v1/contacts/c1/invoices").json["invoices"]
    assert row["xero_url"] == "https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=i1"


def test_search_date_filter_and_paging(api):
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=all&q=inv-000")) == [
        "i-draft",
        "i-paid",
        "i-tomorrow",
        "i-today",
        "i-yesterday",
    ]
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=all&q=02")) == ["i-today"]
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=all&from=2026-10-02&to=2026-10-04")) == [
        "i-paid",
        "i-tomorrow",
        "i-today",
    ]
    first = api.get("/api/v1/contacts/c1/invoices?view=all&per_page=4").json
    second = api.get("/api/v1/contacts/c1/invoices?view=all&per_page=4&page=2").json
    assert (first["total"], second["total"], len(first["invoices"]), len(second["invoices"])) == (5, 5, 4, 1)
    assert api.get("/api/v1/contacts/c1/invoices?view=all&page=9").json["invoices"] == []


@pytest.mark.parametrize(
    "query",
    [
        "view=Paid",
        "view=drafts",
        "from=2026-02-30",
        "from=20260101",
        "to=yesterday",
        "to=2026-1-1",
        "page=0",
        "page=-1",
        "page=1.5",
        "page=100001",
        "per_page=201",
        "per_page=abc",
        "q=" + "x" * 256,
    ],
)
def test_bad_list_parameters_are_400_with_a_message(api, query):
    response = api.get(f"/api/v1/contacts/c1/invoices?{query}")
    assert response.status_code == 400 and response.json["error"]


def test_money_is_exact_strings_never_floats(api):
    body = api.get("/api/v1/contacts/c1/invoices?view=all").json
    amounts = [row[k] for row in body["invoices"] for k in ("balance", "total")]
    assert all(isinstance(a, str) for a in amounts) and Decimal("180.00") in map(Decimal, amounts)


# --- summary ----------------------------------------------------------------------------


@freeze_time("2026-11-25 12:00:00")
def test_summary_says_received_credited_still_to_pay_per_currency_with_links_and_sync_time(api):
    body = api.get("/api/v1/contacts/c1/summary").json
    sales = {"type": "ACCREC", "type_label": "Sales invoice"}
    # received: AmountPaid of sales invoices, the part payment of i-tomorrow included; the bill never counts
    assert body["paid"]["label"] == "Received"
    assert body["paid"]["by_currency"] == [
        {**sales, "currency": "NZD", "amount": "120.00", "count": 1},
        {**sales, "currency": "USD", "amount": "80.00", "count": 1},
    ]
    assert body["credited"]["by_currency"] == [] and body["credited"]["label"] == "Credited"
    assert body["unpaid"]["label"] == "Still to pay"
    assert body["unpaid"]["by_currency"] == [{**sales, "currency": "NZD", "amount": "380.00", "count": 3}]
    assert body["invoiced"]["by_currency"] == [
        {**sales, "currency": "NZD", "amount": "500.00", "count": 3},
        {**sales, "currency": "USD", "amount": "80.00", "count": 1},
    ]
    assert body["overdue"]["by_currency"][0]["amount"] == "100.00"
    (converted,) = body["paid"]["converted"]
    assert converted["amount"] == "253.33" and converted["currency"] == "NZD"  # 120 + 80 / 0.6
    assert "each invoice's own currency rate" in converted["label"]
    assert body["paid"]["link"] == "/api/v1/contacts/c1/invoices?view=paid"
    assert body["unpaid"]["link"] == "/api/v1/contacts/c1/invoices?view=unpaid"
    assert datetime.fromisoformat(body["last_synced_at"]) == SYNCED
    assert body["record"]["links"][0]["reason"] == "email"
    assert body["record"]["links"][0]["matched_by"] == "main"
    assert (body["today"], body["timezone"]) == ("2026-11-25", "UTC")  # the workspace's org has no zone yet


def test_summary_figures_add_up_to_what_was_invoiced_per_currency(api):
    body = api.get("/api/v1/contacts/c1/summary").json
    for currency in {a["currency"] for a in body["invoiced"]["by_currency"]}:
        def amount(block, currency=currency):
            return sum(Decimal(a["amount"]) for a in body[block]["by_currency"] if a["currency"] == currency)

        assert amount("paid") + amount("credited") + amount("unpaid") == amount("invoiced")


def test_summary_totals_lead_to_lists_with_the_same_invoices(api):
    body = api.get("/api/v1/contacts/c1/summary").json
    for block in ("unpaid", "overdue"):
        listed = api.get(body[block]["link"]).json
        assert listed["total"] == body[block]["count"]
        assert sum(Decimal(r["balance"]) for r in listed["invoices"]) == sum(
            Decimal(a["amount"]) for a in body[block]["by_currency"]
        )


# --- installments -------------------------------------------------------------------------


def test_payments_are_numbered_in_date_order_without_deleted_ones(api):
    body = api.get("/api/v1/invoices/i-tomorrow/payments").json
    assert [
        (i["number"], i["payment_id"], i["date"], i["amount"], i["reference"]) for i in body["installments"]
    ] == [(1, "p1", "2026-10-20", "50.00", "first"), (2, "p2", "2026-11-10", "70.00", "second")]
    assert (body["paid_count"], body["paid_amount"], body["balance"], body["total"]) == (
        2,
        "120.00",
        "180.00",
        "300.00",
    )


def test_payments_of_an_unknown_invoice_are_404(api):
    assert api.get("/api/v1/invoices/nope/payments").status_code == 404


# --- pins -----------------------------------------------------------------------------------


def test_pins_are_idempotent_and_show_in_the_pinned_view(api, sessions):
    for _ in range(2):
        response = api.put("/api/v1/contacts/c1/pins/i-paid")
        assert response.status_code == 200 and response.json["pinned"] is True
    with sessions() as s:
        assert s.query(Pin).count() == 1
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=pinned")) == ["i-paid"]
    assert [r["pinned"] for r in api.get("/api/v1/contacts/c1/invoices?view=paid&type=all").json["invoices"]] == [
        True,
        False,
    ]
    for _ in range(2):
        response = api.delete("/api/v1/contacts/c1/pins/i-paid")
        assert response.status_code == 200 and response.json["pinned"] is False
    assert ids(api.get("/api/v1/contacts/c1/invoices?view=pinned")) == []


def test_pinning_an_unknown_invoice_or_on_an_unknown_record_is_404(api):
    assert api.put("/api/v1/contacts/c1/pins/nope").status_code == 404
    assert api.put("/api/v1/contacts/nobody/pins/i-paid").status_code == 404
    assert api.delete("/api/v1/deals/nobody/pins/i-paid").status_code == 404


# --- records --------------------------------------------------------------------------------


def test_put_record_echoes_what_was_stored_and_the_links_with_their_reasons(api):
    body = api.put(
        "/api/v1/contacts/c1",
        json={
            "name": "Ann",
            "email": "ANN@example.com",
            "account_id": "acme",
            "xero_contact_ids": ["x1", "x-unknown"],
            "match_email": True,
        },
    ).json
    assert (body["email"], body["account_id"], body["match_email"], body["xero_contact_ids"]) == (
        "ann@example.com",
        "acme",
        True,
        ["x1", "x-unknown"],
    )
    assert sorted((ln["xero_contact_id"], ln["reason"], ln["in_mirror"]) for ln in body["links"]) == [
        ("x-unknown", "explicit", False),
        ("x1", "email", True),
        ("x1", "explicit", True),
    ]
    deal = api.put("/api/v1/deals/d1", json={"name": "Big one", "invoice_ids": ["i-paid"]}).json
    assert deal == {
        "kind": "deals",
        "id": "d1",
        "name": "Big one",
        "xero_contact_ids": [],
        "invoice_ids": ["i-paid"],
        "links": [],
        "invoice_links": [{"invoice_id": "i-paid", "reason": "explicit", "target_found": True, "target_note": None}],
    }
    assert ids(api.get("/api/v1/deals/d1/invoices?view=paid")) == ["i-paid"]


def test_put_record_can_unlink_a_wrong_email_match(api):
    api.put("/api/v1/contacts/c1", json={"email": "ann@example.com", "xero_contact_ids": []})
    assert api.get("/api/v1/contacts/c1/invoices?view=all").json["total"] == 0


@pytest.mark.parametrize(
    "kind, body",
    [
        ("contacts", {"nickname": "x"}),
        ("deals", {"email": "a@b.c"}),
        ("accounts", {"account_id": "a"}),
        ("contacts", {"match_email": "yes"}),
        ("contacts", {"xero_contact_ids": "x1"}),
        ("contacts", {"xero_contact_ids": [""]}),
        ("contacts", {"invoice_ids": ["x" * 65]}),
        ("contacts", {"name": 5}),
        ("contacts", {"name": "a\u0000b"}),
        ("contacts", {"email": "a" * 321}),
        ("contacts", [1, 2]),
    ],
)
def test_bad_record_bodies_are_400(api, kind, body):
    assert api.put(f"/api/v1/{kind}/r1", json=body).status_code == 400


def test_a_record_body_that_is_not_json_is_400(api):
    response = api.put("/api/v1/contacts/r1", data=b"{nope", content_type="application/json")
    assert response.status_code == 400


def test_a_record_id_longer_than_200_characters_is_400(api):
    assert api.put("/api/v1/contacts/" + "r" * 201, json={}).status_code == 400


def test_explicit_links_without_a_live_connection_are_409(app, sessions):
    with transaction(sessions) as s:
        lonely = workspace(s, "Lonely", None)
    api = Api(app.test_client(), lonely.admin_key)
    assert api.put("/api/v1/contacts/c1", json={"xero_contact_ids": ["x1"]}).status_code == 409
    assert api.put("/api/v1/contacts/c1", json={"email": "a@b.c"}).status_code == 200
    assert api.get("/api/v1/contacts/c1/invoices").json["invoices"] == []
    assert api.get("/api/v1/contacts/c1/summary").json["base_currency"] is None


# --- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer xm_wrong", "Basic abc", "Bearer "])
def test_requests_without_a_valid_key_are_401(api, header):
    headers = {"Authorization": header} if header is not None else {}
    for method, url in [
        ("GET", "/api/v1/contacts/c1/invoices"),
        ("GET", "/api/v1/contacts/c1/summary"),
        ("GET", "/api/v1/invoices/i-paid/payments"),
        ("PUT", "/api/v1/contacts/c1"),
        ("PUT", "/api/v1/contacts/c1/pins/i-paid"),
        ("DELETE", "/api/v1/contacts/c1/pins/i-paid"),
    ]:
        response = api.client.open(url, method=method, headers=headers)
        assert response.status_code == 401 and response.json["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_read_key_reads_and_pins_but_cannot_change_records(api, ws):
    assert api.put("/api/v1/contacts/c1", key=ws.read_key, json={"email": "x@y.z"}).status_code == 403
    assert api.get("/api/v1/contacts/c1/invoices", key=ws.read_key).status_code == 200
    assert api.put("/api/v1/contacts/c1/pins/i-paid", key=ws.read_key).status_code == 200
    assert api.delete("/api/v1/contacts/c1/pins/i-paid", key=ws.read_key).status_code == 200


# --- the document and the routes agree --------------------------------------------------------


def test_every_api_route_is_documented_and_every_documented_path_answers(app, api):
    documented = set(api.doc["paths"])
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("api.", "keys.")) and rule.endpoint != "api.elsewhere":
            path = rule.rule.replace("<external_id>", "{id}").replace("<invoice_id>", "{invoice_id}")
            path = path.replace("<key_id>", "{key_id}")
            kinds = ("contacts", "accounts", "deals") if "<any(" in path else (None,)
            for kind in kinds:
                concrete = (
                    path if kind is None else path.replace("<any(contacts, accounts, deals):kind>", kind)
                )
                routed.update((concrete, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"})
    assert {p for p, _ in routed} == documented
    assert routed == {(p, m) for p, ops in api.doc["paths"].items() for m in ops if m != "parameters"}
    jsonschema.Draft7Validator.check_schema(_json_schema(api.doc["components"]["schemas"], api.doc))


def test_other_methods_and_paths_under_the_api_answer_in_json(api):
    response = api.client.post("/api/v1/contacts/c1/invoices")
    assert response.status_code == 405 and response.json["error"] and "GET" in response.headers["Allow"]
    response = api.client.get(
        "/api/v1/contacts/a%2Fb/invoices", headers={"Authorization": f"Bearer {api.key}"}
    )
    assert response.status_code == 404 and response.json["error"]


# --- Xero is never called on a page view ------------------------------------------------------


def test_serving_lists_and_summaries_makes_no_call_to_xero(database_url, ws, monkeypatch, request):
    from emulator.testing import run_emulator

    with run_emulator(seed=1, tenants=1, contacts=2, invoices=2) as xero:
        settings = Settings(
            database_url=database_url,
            xero_api_url=xero.api_url,
            xero_identity_url=xero.identity_url,
            xero_connections_url=xero.connections_url,
        )
        app = create_app(settings)
        request.addfinalizer(app.extensions["xm"].close)
        client = app.test_client()
        client.get("/api/v1/openapi.json")  # warm: everything imported before we watch
        before_modules = {m for m in sys.modules if m.startswith("xero_python")}
        xero.state.reset_calls()
        connects = []
        real_connect = socket.socket.connect
        monkeypatch.setattr(
            socket.socket, "connect", lambda self, addr: (connects.append(addr), real_connect(self, addr))[1]
        )
        headers = {"Authorization": f"Bearer {ws.admin_key}"}
        client.put("/api/v1/contacts/c1", json={"email": "ann@example.com"}, headers=headers)
        for url in [
            "/api/v1/contacts/c1/invoices",
            "/api/v1/contacts/c1/invoices?view=all&q=inv",
            "/api/v1/contacts/c1/summary",
            "/api/v1/invoices/i-tomorrow/payments",
        ]:
            response = client.get(url, headers=headers)
            assert response.status_code == 200 and response.json
        assert xero.state.call_count() == 0
        assert connects == []
        assert {m for m in sys.modules if m.startswith("xero_python")} == before_modules


# --- the organisation's date ----------------------------------------------------------------


def _zoned(sessions, xero_timezone):
    from sqlalchemy import update as sql_update

    from store.models import XeroConnection

    with transaction(sessions) as s:
        s.execute(sql_update(XeroConnection).where(XeroConnection.tenant_id == T).values(timezone=xero_timezone))


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        # Auckland (NZDT, UTC+13): 2026-11-25 begins at 2026-11-24T11:00Z
        ("NEWZEALANDSTANDARDTIME", "2026-11-24 10:59:59", "2026-11-24 11:00:00"),
        # Los Angeles (PST, UTC-8): 2026-11-25 begins at 2026-11-25T08:00Z
        ("PACIFICSTANDARDTIME", "2026-11-25 07:59:59", "2026-11-25 08:00:00"),
    ],
)
def test_the_organisations_midnight_not_utcs_moves_an_invoice_into_overdue(api, sessions, zone, before, after):
    """i-yesterday is due 2026-11-24: open on the 24th, overdue from the 25th, in the org's calendar."""
    _zoned(sessions, zone)
    with freeze_time(before):
        overdue = api.get("/api/v1/contacts/c1/invoices?view=overdue")
        assert overdue.json["today"] == "2026-11-24" and ids(overdue) == []
        assert "i-yesterday" in ids(api.get("/api/v1/contacts/c1/invoices?view=open"))
        summary = api.get("/api/v1/contacts/c1/summary").json
        assert summary["overdue"]["count"] == 0 and summary["today"] == "2026-11-24"
    with freeze_time(after):
        assert ids(api.get("/api/v1/contacts/c1/invoices?view=overdue")) == ["i-yesterday"]
        summary = api.get("/api/v1/contacts/c1/summary").json
        assert (summary["today"], summary["overdue"]["count"]) == ("2026-11-25", 1)
        assert summary["timezone"] in ("Pacific/Auckland", "America/Los_Angeles") and summary["timezone_note"] is None
        labels = {r["invoice_id"]: r["status_label"] for r in api.get("/api/v1/contacts/c1/invoices").json["invoices"]}
        assert labels["i-yesterday"] == "Overdue"


def test_an_unknown_xero_time_zone_reads_dates_in_utc_and_says_so(api, sessions):
    _zoned(sessions, "ATLANTISSTANDARDTIME")
    with freeze_time("2026-11-24 23:30:00"):
        summary = api.get("/api/v1/contacts/c1/summary").json
    assert (summary["today"], summary["timezone"]) == ("2026-11-24", "UTC")
    assert "ATLANTISSTANDARDTIME" in summary["timezone_note"]


def test_same_day_invoices_sort_by_number_in_natural_order(api, sessions):
    with transaction(sessions) as s:
        s.add_all(
            [
                invoice(T, "n-9999", "x1", number="INV-9999", on=date(2026, 11, 20)),
                invoice(T, "n-10000", "x1", number="INV-10000", on=date(2026, 11, 20)),
                invoice(T, "n-998", "x1", number="INV-998", on=date(2026, 11, 20)),
            ]
        )
    listed = [i for i in ids(api.get("/api/v1/contacts/c1/invoices?view=all")) if i.startswith("n-")]
    assert listed == ["n-10000", "n-9999", "n-998"]  # newest first: the highest number first
