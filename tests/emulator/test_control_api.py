"""The /_emulator control API over HTTP, and call counts."""

from __future__ import annotations

from .http import bearer, call


def test_mutations_over_http(xero, write_tenant):
    base = f"{xero.url}/_emulator/tenants/{write_tenant}"
    tenants = call("GET", f"{xero.url}/_emulator/tenants").json()
    assert write_tenant in {t["tenant_id"] for t in tenants}
    contact = call(
        "POST", f"{base}/contacts", json_body={"name": "Http Ltd", "email": "http@example.com"}
    ).json()
    invoice = call(
        "POST",
        f"{base}/invoices",
        json_body={
            "contact_id": contact["ContactID"],
            "total": "200.00",
            "currency": "EUR",
            "currency_rate": "0.55",
            "date": "2024-05-01",
            "due_date": "2024-05-31",
            "reference": "PO 7",
        },
    ).json()
    assert invoice["InvoiceNumber"].startswith("INV-") and invoice["CurrencyCode"] == "EUR"
    payment = call(
        "POST",
        f"{base}/invoices/{invoice['InvoiceID']}/payments",
        json_body={"amount": "50.00", "date": "2024-05-10", "reference": "dep"},
    ).json()
    assert payment["Amount"] == 50.0 and payment["Status"] == "AUTHORISED"
    moved = call("PATCH", f"{base}/invoices/{invoice['InvoiceID']}", json_body={"due_date": "2024-06-30"})
    assert moved.json()["DueDateString"] == "2024-06-30T00:00:00"
    refused = call("POST", f"{base}/invoices/{invoice['InvoiceID']}/void")
    assert refused.status == 400 and "payments" in refused.json()["error"]
    assert call("DELETE", f"{base}/payments/{payment['PaymentID']}").json()["Status"] == "DELETED"
    assert call("POST", f"{base}/invoices/{invoice['InvoiceID']}/void").json()["Status"] == "VOIDED"
    patched = call("PATCH", f"{base}/contacts/{contact['ContactID']}", json_body={"is_customer": False})
    assert patched.json()["IsCustomer"] is False
    snapshot = call("GET", f"{base}/snapshot").json()
    assert invoice["InvoiceID"] in {i["InvoiceID"] for i in snapshot["Invoices"]}
    assert payment["PaymentID"] in {p["PaymentID"] for p in snapshot["Payments"]}


def test_unknown_records_are_404(xero, write_tenant):
    assert (
        call("GET", f"{xero.url}/_emulator/tenants/00000000-0000-0000-0000-000000000000/snapshot").status
        == 404
    )
    missing = (
        f"{xero.url}/_emulator/tenants/{write_tenant}/invoices/00000000-0000-0000-0000-000000000000/void"
    )
    assert call("POST", missing).status == 404


def test_call_counts_per_tenant_endpoint_and_status(xero, read_tenant):
    xero.state.reset_calls()
    token = xero.state.client_credentials_token()["access_token"]
    for _ in range(2):
        call("GET", f"{xero.api_url}/invoices?page=1&pageSize=1", headers=bearer(token, read_tenant))
    call(
        "GET",
        f"{xero.api_url}/Invoices/00000000-0000-0000-0000-000000000009",
        headers=bearer(token, read_tenant),
    )
    call("GET", f"{xero.api_url}/Organisation", headers=bearer("bad"))
    assert xero.state.call_count(read_tenant, "GET /Invoices", 200) == 2
    assert xero.state.call_count(read_tenant, "GET /Invoices/{id}", 404) == 1
    assert xero.state.call_count(None, "GET /Organisation", 401) == 1
    counts = call("GET", f"{xero.url}/_emulator/calls?endpoint=GET%20/Invoices").json()
    assert counts["total"] == 2 and counts["rows"][0]["tenant_id"] == read_tenant
    call("DELETE", f"{xero.url}/_emulator/calls")
    assert xero.state.call_count() == 0


def test_tokens_and_intent_to_receive_over_http(xero):
    token = call("POST", f"{xero.url}/_emulator/tokens/client-credentials").json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 1800
    user = call(
        "POST", f"{xero.url}/_emulator/tokens/user", json_body={"tenant_ids": [xero.state.tenant_ids[1]]}
    )
    assert user.json()["refresh_token"]
    assert call("POST", f"{xero.url}/_emulator/webhooks/intent-to-receive", json_body={}).status == 400
