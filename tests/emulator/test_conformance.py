"""Every response and webhook body validates against Xero's own OpenAPI descriptions."""

from __future__ import annotations

import json

import pytest

from . import openapi
from .http import bearer, call
from .receiver import Receiver

pytestmark = openapi.needs_spec
ACCOUNTING = "xero_accounting.yaml"
IDENTITY = "xero-identity.yaml"


def assert_valid(validator, body) -> None:
    problems = openapi.errors(validator, body)
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("query", ["?page=1&pageSize=1000", "", "?page=2&summaryOnly=true&unitdp=4"])
def test_invoices_list(get, query):
    body = get(f"/Invoices{query}")
    assert body["Invoices"]
    assert_valid(openapi.response_validator(ACCOUNTING, "/Invoices"), body)


def test_invoice_by_id(get, xero, read_tenant):
    books = xero.state.books[read_tenant]
    paid = next(i for i in books.invoices.values() if i.status == "PAID")
    body = get(f"/Invoices/{paid.invoice_id}")
    assert_valid(openapi.response_validator(ACCOUNTING, "/Invoices/{InvoiceID}"), body)


def test_payments_list_and_by_id(get, xero, read_tenant):
    body = get("/Payments?page=1&pageSize=1000")
    assert_valid(openapi.response_validator(ACCOUNTING, "/Payments"), body)
    deleted = next(p for p in xero.state.books[read_tenant].payments.values() if p.status == "DELETED")
    one = get(f"/Payments/{deleted.payment_id}")
    assert_valid(openapi.response_validator(ACCOUNTING, "/Payments/{PaymentID}"), one)


def test_contacts_list_and_by_id(get, xero, read_tenant):
    body = get("/Contacts?page=1&includeArchived=true")
    assert_valid(openapi.response_validator(ACCOUNTING, "/Contacts"), body)
    assert_valid(openapi.response_validator(ACCOUNTING, "/Contacts"), get("/Contacts?summaryOnly=true"))
    contact_id = body["Contacts"][0]["ContactID"]
    assert_valid(
        openapi.response_validator(ACCOUNTING, "/Contacts/{ContactID}"), get(f"/Contacts/{contact_id}")
    )


def test_organisation(get):
    assert_valid(openapi.response_validator(ACCOUNTING, "/Organisation"), get("/Organisation"))


def test_mutated_records_still_conform(get, xero, write_tenant, customer):
    invoice = xero.state.create_invoice(
        write_tenant, customer, "99.95", currency="GBP", currency_rate="0.47", line_amount_types="Inclusive"
    )
    payment = xero.state.apply_payment(write_tenant, invoice["InvoiceID"])
    assert_valid(
        openapi.response_validator(ACCOUNTING, "/Invoices/{InvoiceID}"),
        get(f"/Invoices/{invoice['InvoiceID']}", write_tenant),
    )
    assert_valid(
        openapi.response_validator(ACCOUNTING, "/Payments/{PaymentID}"),
        get(f"/Payments/{payment['PaymentID']}", write_tenant),
    )


def test_connections(xero):
    token = xero.state.user_token([xero.state.tenant_ids[1]])["access_token"]
    body = call("GET", xero.connections_url, headers=bearer(token)).json()
    assert body
    assert_valid(openapi.response_validator(IDENTITY, "/Connections"), body)


@pytest.mark.parametrize("grant", ["client_credentials", "authorization_code", "refresh_token"])
def test_token_responses(xero, grant):
    validator = openapi.component_validator(IDENTITY, "AccessToken")
    if grant == "client_credentials":
        form = {"grant_type": grant, "client_id": xero.client_id, "client_secret": xero.client_secret}
    else:
        first = xero.state.user_token([xero.state.tenant_ids[1]])
        if grant == "authorization_code":
            assert_valid(validator, first)
            return
        form = {
            "grant_type": grant,
            "refresh_token": first["refresh_token"],
            "client_id": xero.client_id,
            "client_secret": xero.client_secret,
        }
    reply = call("POST", f"{xero.identity_url}/connect/token", form=form)
    assert reply.status == 200
    assert_valid(validator, reply.json())


def test_webhook_payload(xero, write_tenant, customer):
    receiver = Receiver(xero.webhook_key)
    xero.state.wait_for_webhooks()
    xero.state.set_webhook_url(receiver.url)
    try:
        invoice = xero.state.create_invoice(write_tenant, customer, "12.00")
        xero.state.apply_payment(write_tenant, invoice["InvoiceID"], "2.00")
        xero.state.update_contact(write_tenant, customer, email="conform@example.com")
        xero.state.wait_for_webhooks()
    finally:
        xero.state.set_webhook_url(None)
        receiver.stop()
    validator = openapi.webhook_validator()
    assert receiver.received
    for body, _, _ in receiver.received:
        assert_valid(validator, json.loads(body))


def test_spec_examples_pass_our_validators():
    """Sanity check of the conversion itself on Xero's own examples."""
    doc = openapi.document(ACCOUNTING)
    for path in ("/Invoices", "/Contacts", "/Organisation"):
        example = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["example"]
        assert_valid(openapi.response_validator(ACCOUNTING, path), example)
    # Known flaw of the spec itself: its Payments example writes BatchPayment numbers and booleans as
    # strings ("50.00", "false") against its own schema. The emulator sends no BatchPayment.
    example = doc["paths"]["/Payments"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
    assert sorted(openapi.errors(openapi.response_validator(ACCOUNTING, "/Payments"), example)) == [
        "Payments/0/BatchPayment/IsReconciled: 'false' is not of type 'boolean'",
        "Payments/0/BatchPayment/TotalAmount: '50.00' is not of type 'number'",
    ]


def test_validators_bite(get):
    """A body Xero would never send fails: wrong enum, ISO date instead of /Date()/, bad uuid."""
    body = get("/Invoices?page=1&pageSize=1")
    validator = openapi.response_validator(ACCOUNTING, "/Invoices")
    for field, bad in (
        ("Status", "OPEN"),
        ("Date", "2024-01-01"),
        ("InvoiceID", "not-a-uuid"),
        ("LineAmountTypes", "EXCLUSIVE"),
        ("AmountDue", "12.00"),
    ):
        broken = json.loads(json.dumps(body))
        broken["Invoices"][0][field] = bad
        assert openapi.errors(validator, broken), field
