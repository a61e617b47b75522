"""Issue 20, for admins: Remove asks first and counts what goes and what stays; the CRM's own
links survive a remove, work again when the same organisation is connected again, and are
reported as not found while another one is connected."""
from __future__ import annotations

from sqlalchemy import func, select

from store.models import Allocation, Contact, Invoice, Payment, Pin, RecordLink, XeroConnection
from tests.integration.admin_flow import (  # noqa: F401  (fixtures)
    app,
    bearer,
    confirm_remove,
    connect_and_save,
    count,
    csrf,
    emulator,
    new_workspace,
    parse,
    redis,
    run_worker,
    settings,
    shown,
    texts,
    token_key,
)
from views.api import NOT_CONNECTED, OTHER_ORGANISATION
from wsgi import runtime


def crm_records(app, key: str, emulator, tenant: str) -> dict:
    """What a CRM makes through the API: a deal linked to three invoices, a contact linked
    explicitly to a Xero customer, another matched by email, and one pinned invoice."""
    snapshot = emulator.state.snapshot(tenant)
    customer = next(c for c in snapshot["Contacts"] if c["IsCustomer"] and c.get("EmailAddress"))
    invoices = [i["InvoiceID"] for i in snapshot["Invoices"] if i["Contact"]["ContactID"] == customer["ContactID"]]
    client = app.test_client()
    for path, body in (("/api/v1/deals/deal-1", {"name": "Demo deal", "invoice_ids": invoices[:3]}),
                       ("/api/v1/contacts/linked", {"xero_contact_ids": [customer["ContactID"]]}),
                       ("/api/v1/contacts/by-email", {"email": customer["EmailAddress"]})):
        assert client.put(path, json=body, headers=bearer(key)).status_code == 200
    assert client.put(f"/api/v1/contacts/linked/pins/{invoices[0]}", headers=bearer(key)).status_code == 200
    return {"deal_invoices": sorted(invoices[:3]), "customer": customer["ContactID"]}


def deal_invoices(app, key: str) -> list[str]:
    body = app.test_client().get("/api/v1/deals/deal-1/invoices?view=all&type=all", headers=bearer(key)).get_json()
    return sorted(row["invoice_id"] for row in body["invoices"])


def record(app, key: str, path: str) -> dict:
    answer = app.test_client().get(path, headers=bearer(key))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def mirror_counts(app, tenant: str) -> dict[str, int]:
    with runtime(app).sessions() as s:
        def n(stmt) -> int:
            return s.scalar(stmt) or 0
        return {
            "invoices": n(select(func.count()).where(Invoice.tenant_id == tenant, Invoice.type != "ACCPAY")),
            "bills": n(select(func.count()).where(Invoice.tenant_id == tenant, Invoice.type == "ACCPAY")),
            "payments": n(select(func.count()).select_from(Payment).where(Payment.tenant_id == tenant)),
            "contacts": n(select(func.count()).select_from(Contact).where(Contact.tenant_id == tenant)),
            "credit_notes": n(select(func.count(func.distinct(Allocation.document_id)))
                              .where(Allocation.tenant_id == tenant, Allocation.kind == "credit_note")),
        }


def test_remove_asks_first_says_what_goes_and_what_stays_and_a_post_without_confirm_removes_nothing(
    app, emulator, redis
):
    tenant, other_tenant = emulator.state.tenant_ids[:2]
    owing = next(i for i in emulator.state.snapshot(tenant)["Invoices"]
                 if i["Type"] == "ACCREC" and i["Status"] == "AUTHORISED" and float(i["AmountDue"]) > 2)
    credit = emulator.state.create_credit_note(tenant, owing["Contact"]["ContactID"], "1.00",
                                               currency=owing["CurrencyCode"])
    emulator.state.allocate_credit_note(tenant, credit["CreditNoteID"], owing["InvoiceID"])
    ws = new_workspace(app)
    browser = connect_and_save(app, ws, tenant)
    run_worker(redis)
    crm_records(app, ws.admin_key, emulator, tenant)
    before = mirror_counts(app, tenant)
    assert before["invoices"] and before["payments"] and before["contacts"] and before["credit_notes"]

    # the page's Remove is a plain GET form: no script, no side effect
    form = next(f for f in parse(browser.get("/admin/xero").get_data(as_text=True)).forms
                if f["action"] == "/admin/xero/remove")
    assert form["fields"] == []
    asked = browser.get("/admin/xero/remove")
    assert asked.status_code == 200
    page = texts(asked)
    name = emulator.state.tenants()[0]["name"]
    assert page["remove-name"] == name
    assert page["deletes-invoices"].startswith(f"{before['invoices']} mirrored sales invoice")
    assert f"and {before['bills']} bill" in page["deletes-invoices"]
    assert page["deletes-payments"].startswith(f"{before['payments']} payment")
    assert page["deletes-allocations"].startswith(f"{before['credit_notes']} credit note")
    assert page["deletes-contacts"].startswith(f"{before['contacts']} mirrored Xero contact")
    assert page["deletes-pins"].startswith("1 pin of its invoices")
    assert page["keeps-records"].startswith("the CRM's 3 records")
    assert page["keeps-links"].startswith("1 link to Xero contacts and 3 to single invoices")
    assert page["keeps-email"].startswith("1 record matching Xero contacts by email")
    confirm = next(f for f in parse(asked.get_data(as_text=True)).forms if f["id"] == "remove-form")
    assert dict(confirm["fields"]) == {"csrf": csrf(browser), "confirm": tenant}

    # a POST without the confirmation (an old page, a forged form) shows the confirmation again
    unconfirmed = browser.post("/admin/xero/remove", data={"csrf": csrf(browser)})
    assert unconfirmed.status_code == 400 and texts(unconfirmed)["remove-name"] == name
    # confirmed for another organisation than the one connected: refused, said
    other = browser.post("/admin/xero/remove", data={"csrf": csrf(browser), "confirm": other_tenant})
    assert other.status_code == 303 and "confirmed was for another connection" in shown(browser)["message"]
    assert mirror_counts(app, tenant) == before and shown(browser)["status"] == "Connected"

    removed = confirm_remove(browser)
    assert removed.status_code == 303
    message = shown(browser)["message"]
    assert f"Removed {name}" in message and "records and their links were kept" in message
    assert f"({before['invoices'] + before['bills']} invoices and bills, {before['payments']} payments" in message
    assert mirror_counts(app, tenant) == dict.fromkeys(before, 0)
    assert count(app, Pin) == 0 and count(app, RecordLink, tenant_id=tenant) == 4


def test_a_key_gets_the_confirmation_in_json_and_removes_only_naming_the_tenant(app, emulator, redis):
    tenant = emulator.state.tenant_ids[0]
    ws = new_workspace(app)
    connect_and_save(app, ws, tenant)
    run_worker(redis)
    client = app.test_client()
    before = mirror_counts(app, tenant)

    unconfirmed = client.post("/admin/xero/remove", headers=bearer(ws.admin_key))
    body = unconfirmed.get_json()
    assert unconfirmed.status_code == 400 and body["message"].startswith("Removing needs confirmation")
    assert f"confirm={tenant}" in body["message"] and body["connection"]["status"] == "active"
    assert body["remove"]["confirm"] == tenant
    assert {k: body["remove"]["deletes"][k] for k in before} == before
    assert body["remove"]["keeps"] == {"records": 0, "contact_links": 0, "invoice_links": 0, "email_rules": 0}
    assert client.get("/admin/xero/remove", headers=bearer(ws.admin_key)).get_json()["remove"] == body["remove"]

    wrong = client.post("/admin/xero/remove", headers=bearer(ws.admin_key), json={"confirm": "not-" + tenant})
    assert wrong.status_code == 409 and wrong.get_json()["connection"]["status"] == "active"
    assert mirror_counts(app, tenant) == before

    done = client.post("/admin/xero/remove", headers=bearer(ws.admin_key), data={"confirm": tenant})
    assert done.status_code == 200 and done.get_json()["connection"] is None
    assert done.get_json()["deleted"]["invoices"] == before["invoices"] + before["bills"]
    again = client.post("/admin/xero/remove", headers=bearer(ws.admin_key), json={"confirm": tenant})
    assert again.status_code == 409 and again.get_json()["message"] == "There is no Xero connection to remove."
    assert client.get("/admin/xero/remove", headers=bearer(ws.admin_key)).status_code == 409


def test_the_crms_links_survive_remove_and_work_again_when_the_same_organisation_is_reconnected(
    app, emulator, redis
):
    tenant = emulator.state.tenant_ids[0]
    ws = new_workspace(app)
    browser = connect_and_save(app, ws, tenant)
    run_worker(redis)
    made = crm_records(app, ws.admin_key, emulator, tenant)
    assert deal_invoices(app, ws.admin_key) == made["deal_invoices"]
    deal_before = record(app, ws.read_key, "/api/v1/deals/deal-1")
    linked_before = record(app, ws.read_key, "/api/v1/contacts/linked")
    assert all(link["target_found"] for link in deal_before["invoice_links"] + linked_before["links"])

    assert confirm_remove(browser).status_code == 303
    assert deal_invoices(app, ws.admin_key) == []
    deal = record(app, ws.read_key, "/api/v1/deals/deal-1")
    assert deal["invoice_ids"] == deal_before["invoice_ids"], "the CRM's links are kept"
    assert [(ln["invoice_id"], ln["target_found"], ln["target_note"]) for ln in deal["invoice_links"]] == [
        (i, False, NOT_CONNECTED) for i in deal_before["invoice_ids"]]
    linked = record(app, ws.read_key, "/api/v1/contacts/linked")
    assert [(ln["xero_contact_id"], ln["target_found"], ln["target_note"]) for ln in linked["links"]] == [
        (made["customer"], False, NOT_CONNECTED)]

    connect_and_save(app, ws, tenant)  # the same organisation, a new session
    run_worker(redis)
    assert deal_invoices(app, ws.admin_key) == made["deal_invoices"], "the demo deal's invoices are back"
    assert record(app, ws.read_key, "/api/v1/deals/deal-1") == deal_before
    assert record(app, ws.read_key, "/api/v1/contacts/linked") == linked_before


def test_with_another_organisation_connected_the_old_links_are_reported_not_found_and_email_matches_move(
    app, emulator, redis
):
    first, second = emulator.state.tenant_ids[:2]
    ws = new_workspace(app)
    browser = connect_and_save(app, ws, first)
    run_worker(redis)
    made = crm_records(app, ws.admin_key, emulator, first)
    assert confirm_remove(browser).status_code == 303
    email = record(app, ws.read_key, "/api/v1/contacts/by-email")["email"]
    twin = emulator.state.create_contact(second, "The same person, in the second organisation", email.upper())

    connect_and_save(app, ws, second)
    run_worker(redis)
    with runtime(app).sessions() as s:
        assert s.scalar(select(XeroConnection.tenant_id).where(XeroConnection.status == "active")) == second
    deal = record(app, ws.read_key, "/api/v1/deals/deal-1")
    assert [(ln["target_found"], ln["target_note"]) for ln in deal["invoice_links"]] == [
        (False, OTHER_ORGANISATION)] * 3
    linked = record(app, ws.read_key, "/api/v1/contacts/linked")
    assert [(ln["xero_contact_id"], ln["reason"], ln["target_found"], ln["target_note"])
            for ln in linked["links"]] == [(made["customer"], "explicit", False, OTHER_ORGANISATION)]
    assert deal_invoices(app, ws.admin_key) == []
    # an email match is derived: recomputed against whichever organisation is connected
    by_email = record(app, ws.read_key, "/api/v1/contacts/by-email")
    assert [(ln["xero_contact_id"], ln["reason"], ln["target_found"]) for ln in by_email["links"]] == [
        (twin["ContactID"], "email", True)]
