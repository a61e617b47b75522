"""A key of workspace A never reads, pins or learns of workspace B's records or invoices, on any endpoint."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from infra.settings import Settings
from store.db import transaction
from store.models import CrmRecord, Pin, RecordLink
from views.api import NOT_MIRRORED
from wsgi import close_app, create_app

from .mirror_rows import contact, invoice, payment, workspace


@pytest.fixture
def client(database_url):
    app = create_app(Settings(database_url=database_url))
    yield app.test_client()
    close_app(app)


@pytest.fixture
def two(sessions, client):
    """A and B each with a contact record "shared" (same CRM id), and B alone with "b-only"."""
    with transaction(sessions) as s:
        a, b = workspace(s, "A", "tenant-a"), workspace(s, "B", "tenant-b")
        s.add_all(
            [
                contact("tenant-a", "xa", "ann@a.test"),
                invoice("tenant-a", "ia", "xa", total="1.00"),
                contact("tenant-b", "xb", "ann@a.test"),
                invoice("tenant-b", "ib", "xb", total="999.00"),
                invoice("tenant-b", "ib-paid", "xb", status="PAID", total="5.00", paid="5.00"),
                payment("tenant-b", "pb", "ib-paid", "5.00", date(2026, 11, 1)),
            ]
        )
    for ws in (a, b):
        for external_id in ("shared", "b-only") if ws is b else ("shared",):
            response = client.put(
                f"/api/v1/contacts/{external_id}",
                json={"email": "ann@a.test"},
                headers={"Authorization": f"Bearer {ws.admin_key}"},
            )
            assert response.status_code == 200
    b_pin = client.put("/api/v1/contacts/shared/pins/ib", headers={"Authorization": f"Bearer {b.admin_key}"})
    assert b_pin.status_code == 200
    return client, a, b


def _call(client, key, method, url, **kw):
    return client.open(url, method=method, headers={"Authorization": f"Bearer {key}"}, **kw)


# Every endpoint, aimed at something only B has; each must be a 404 for A's keys.
B_ONLY = [
    ("GET", "/api/v1/contacts/b-only/invoices"),
    ("GET", "/api/v1/contacts/b-only/summary"),
    ("PUT", "/api/v1/contacts/b-only/pins/ia"),
    ("DELETE", "/api/v1/contacts/b-only/pins/ia"),
    ("GET", "/api/v1/invoices/ib/payments"),
    ("GET", "/api/v1/invoices/ib-paid/payments"),
    ("PUT", "/api/v1/contacts/shared/pins/ib"),
    ("DELETE", "/api/v1/contacts/shared/pins/ib"),
]


@pytest.mark.parametrize("scope", ["admin", "read"])
@pytest.mark.parametrize("method, url", B_ONLY)
def test_a_key_of_a_gets_404_for_what_only_b_has_exactly_as_for_what_nobody_has(two, scope, method, url):
    client, a, _ = two
    key = a.admin_key if scope == "admin" else a.read_key
    response = _call(client, key, method, url)
    nobody = _call(client, key, method, url.replace("b-only", "nobody").replace("/ib", "/nothing"))
    assert response.status_code == 404
    assert (response.status_code, response.get_json()) == (nobody.status_code, nobody.get_json())


def test_same_crm_id_in_two_workspaces_shows_each_only_its_own_invoices(two):
    client, a, b = two
    a_rows = _call(client, a.read_key, "GET", "/api/v1/contacts/shared/invoices?view=all").json["invoices"]
    b_rows = _call(client, b.read_key, "GET", "/api/v1/contacts/shared/invoices?view=all").json["invoices"]
    assert [r["invoice_id"] for r in a_rows] == ["ia"]
    assert sorted(r["invoice_id"] for r in b_rows) == ["ib", "ib-paid"]
    summary = _call(client, a.read_key, "GET", "/api/v1/contacts/shared/summary").json
    assert [x["xero_contact_id"] for x in summary["record"]["links"]] == ["xa"]
    assert summary["paid"]["count"] == 0 and summary["unpaid"]["by_currency"][0]["amount"] == "1.00"
    assert (
        _call(client, a.read_key, "GET", "/api/v1/contacts/shared/invoices?view=pinned").json["invoices"]
        == []
    )


def test_explicit_links_to_b_s_contacts_and_invoices_reveal_nothing_to_a(two):
    client, a, _ = two
    body = _call(
        client,
        a.admin_key,
        "PUT",
        "/api/v1/deals/spy",
        json={"xero_contact_ids": ["xb"], "invoice_ids": ["ib", "ib-paid"]},
    ).json
    assert body["links"] == [
        {
            "xero_contact_id": "xb",
            "reason": "explicit",
            "via_contact_id": None,
            "name": None,
            "email": None,
            "in_mirror": False,
            "is_customer": False,
            "matched_email": None,
            "matched_by": None,
            "person_name": None,
            "merged_from": None,
            "target_found": False,
            "target_note": NOT_MIRRORED,
        }
    ]
    assert body["invoice_links"] == [  # B's invoices are not found: A learns nothing of them
        {"invoice_id": i, "reason": "explicit", "target_found": False, "target_note": NOT_MIRRORED}
        for i in ("ib", "ib-paid")
    ]
    assert _call(client, a.read_key, "GET", "/api/v1/deals/spy/invoices?view=all").json["total"] == 0
    summary = _call(client, a.read_key, "GET", "/api/v1/deals/spy/summary").json
    assert summary["paid"]["count"] == summary["unpaid"]["count"] == 0


def test_a_cannot_change_b_s_records_or_pins(two, sessions):
    client, a, b = two
    # A "creating" a record with B's id makes A's own record; B's stays as it was.
    _call(client, a.admin_key, "PUT", "/api/v1/contacts/b-only", json={"xero_contact_ids": []})
    _call(client, a.admin_key, "DELETE", "/api/v1/contacts/shared/pins/ib")
    with sessions() as s:
        b_records = (
            s.execute(select(CrmRecord.external_id).where(CrmRecord.workspace_id == b.id)).scalars().all()
        )
        b_email_rules = s.execute(
            select(RecordLink.id).where(RecordLink.workspace_id == b.id, RecordLink.reason == "email")
        ).all()
        pins = s.execute(select(Pin.workspace_id, Pin.invoice_id)).all()
    assert sorted(b_records) == ["b-only", "shared"] and len(b_email_rules) == 2
    assert pins == [(b.id, "ib")]
    b_rows = _call(client, b.read_key, "GET", "/api/v1/contacts/b-only/invoices?view=all").json
    assert b_rows["total"] == 2


def test_a_workspace_without_a_connection_sees_no_one_s_invoices(two, sessions):
    client, _, _ = two
    with transaction(sessions) as s:
        lonely = workspace(s, "Lonely", None)
    _call(client, lonely.admin_key, "PUT", "/api/v1/contacts/shared", json={"email": "ann@a.test"})
    assert (
        _call(client, lonely.read_key, "GET", "/api/v1/contacts/shared/invoices?view=all").json["total"] == 0
    )
    assert _call(client, lonely.read_key, "GET", "/api/v1/invoices/ia/payments").status_code == 404
    assert _call(client, lonely.read_key, "PUT", "/api/v1/contacts/shared/pins/ia").status_code == 404
