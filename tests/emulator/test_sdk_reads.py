"""The real xero-python AccountingApi/IdentityApi reading from the emulator."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from xero_python.accounting.models import CurrencyCode, LineAmountTypes
from xero_python.exceptions import NotFoundException

from .conftest import INVOICES_PER_TENANT


def test_invoices_page_through_2500_at_page_size_1000(sdk, read_tenant):
    pages = [sdk.accounting.get_invoices(read_tenant, page=n, page_size=1000) for n in (1, 2, 3)]
    sizes = [len(p.invoices) for p in pages]
    assert sizes == [1000, 1000, 500]
    ids = {i.invoice_id for p in pages for i in p.invoices}
    assert len(ids) == INVOICES_PER_TENANT
    assert pages[0].pagination.page_count == 3 and pages[0].pagination.item_count == INVOICES_PER_TENANT
    assert sdk.accounting.get_invoices(read_tenant, page=4, page_size=1000).invoices == []


def test_invoice_fields_decode_as_xero_types(sdk, read_tenant):
    invoices = sdk.accounting.get_invoices(read_tenant, page=1).invoices
    assert len(invoices) == 100  # default page size
    paid = next(i for i in invoices if i.status == "PAID")
    assert isinstance(paid.total, Decimal) and paid.amount_due == Decimal("0.00")
    assert isinstance(paid.date, date) and paid.updated_date_utc.tzinfo is not None
    assert paid.fully_paid_on_date is not None and paid.payments
    assert isinstance(paid.currency_code, CurrencyCode)
    assert paid.line_amount_types in set(LineAmountTypes) and paid.line_items
    for invoice in invoices:
        assert invoice.amount_due == invoice.total - invoice.amount_paid - invoice.amount_credited


def test_invoice_by_id_returns_the_plural_wrapper(sdk, xero, read_tenant):
    invoice_id = next(iter(xero.state.books[read_tenant].invoices))
    result = sdk.accounting.get_invoice(read_tenant, invoice_id)
    assert [i.invoice_id for i in result.invoices] == [invoice_id]
    assert result.invoices[0].contact.name


def test_unknown_invoice_is_not_found(sdk, read_tenant):
    with pytest.raises(NotFoundException):
        sdk.accounting.get_invoice(read_tenant, "00000000-0000-0000-0000-000000000001")


def test_fifty_ids_in_one_call(sdk, xero, read_tenant):
    wanted = list(xero.state.books[read_tenant].invoices)[:50]
    result = sdk.accounting.get_invoices(read_tenant, i_ds=wanted, page=1)
    assert sorted(i.invoice_id for i in result.invoices) == sorted(wanted)


def test_sixty_ids_are_refused_like_xeros_gateway(sdk, xero, read_tenant):
    wanted = list(xero.state.books[read_tenant].invoices)[:60]
    with pytest.raises(NotFoundException):
        sdk.accounting.get_invoices(read_tenant, i_ds=wanted, page=1)


def test_if_modified_since_returns_only_the_changed_invoice(sdk, xero, write_tenant):
    state = xero.state
    target = next(i for i in state.books[write_tenant].invoices.values() if i.status == "AUTHORISED")
    latest = max(i.updated_utc for i in state.books[write_tenant].invoices.values())
    assert sdk.accounting.get_invoices(write_tenant, if_modified_since=latest, page=1).invoices == []
    state.set_due_date(write_tenant, target.invoice_id, date.today() + timedelta(days=3))
    changed = sdk.accounting.get_invoices(write_tenant, if_modified_since=latest, page=1).invoices
    assert [i.invoice_id for i in changed] == [target.invoice_id]
    assert changed[0].due_date == date.today() + timedelta(days=3)


def test_statuses_contact_ids_and_where_filters(sdk, xero, read_tenant):
    books = xero.state.books[read_tenant]
    authorised = sdk.accounting.get_invoices(
        read_tenant, statuses=["AUTHORISED", "PAID"], page=1, page_size=1000
    )
    assert {i.status for i in authorised.invoices} == {"AUTHORISED", "PAID"}
    contact_id = next(i.contact_id for i in books.invoices.values())
    by_contact = sdk.accounting.get_invoices(read_tenant, contact_i_ds=[contact_id], page=1).invoices
    expected = sorted(i.invoice_id for i in books.invoices.values() if i.contact_id == contact_id)
    assert sorted(i.invoice_id for i in by_contact) == expected
    where = f'Type=="ACCREC" AND Contact.ContactID==guid("{contact_id}") && AmountDue>0'
    filtered = sdk.accounting.get_invoices(read_tenant, where=where, page=1).invoices
    assert all(i.type == "ACCREC" and i.amount_due > 0 for i in filtered)
    assert {i.contact.contact_id for i in filtered} <= {contact_id}


def test_order_by_date_descending(sdk, read_tenant):
    invoices = sdk.accounting.get_invoices(read_tenant, order="Date DESC", page=1).invoices
    dates = [i.date for i in invoices]
    assert dates == sorted(dates, reverse=True)


def test_summary_only_drops_line_items(sdk, read_tenant):
    invoice = sdk.accounting.get_invoices(read_tenant, summary_only=True, page=1).invoices[0]
    assert invoice.line_items is None and invoice.total is not None


def test_payments_list_by_id_and_by_invoice(sdk, xero, read_tenant):
    books = xero.state.books[read_tenant]
    payments = sdk.accounting.get_payments(read_tenant, page=1, page_size=1000).payments
    assert payments and {p.status for p in payments} <= {"AUTHORISED", "DELETED"}
    sample = payments[0]
    assert sample.invoice.invoice_id in books.invoices and isinstance(sample.amount, Decimal)
    single = sdk.accounting.get_payment(read_tenant, sample.payment_id).payments
    assert [p.payment_id for p in single] == [sample.payment_id]
    where = f'Invoice.InvoiceID==guid("{sample.invoice.invoice_id}")'
    for_invoice = sdk.accounting.get_payments(read_tenant, where=where).payments
    assert {p.invoice.invoice_id for p in for_invoice} == {sample.invoice.invoice_id}


def test_contacts_customers_and_by_id(sdk, xero, read_tenant):
    customers = sdk.accounting.get_contacts(read_tenant, where="IsCustomer==true", page=1).contacts
    assert customers and all(c.is_customer for c in customers)
    some = [c.contact_id for c in customers[:3]]
    assert sorted(
        c.contact_id for c in sdk.accounting.get_contacts(read_tenant, i_ds=some).contacts
    ) == sorted(some)
    one = sdk.accounting.get_contact(read_tenant, some[0]).contacts[0]
    assert one.contact_id == some[0] and one.name


def test_organisation(sdk, xero, read_tenant):
    org = sdk.accounting.get_organisations(read_tenant).organisations[0]
    assert org.organisation_id == read_tenant
    assert org.short_code.startswith("!") and len(org.short_code) == 6
    assert org.base_currency.value == xero.state.books[read_tenant].org.base_currency


def test_connections_list_every_seeded_organisation(sdk, xero):
    connections = sdk.identity.get_connections()
    assert {c.tenant_id for c in connections} == set(xero.state.tenant_ids)
    assert all(c.tenant_type == "ORGANISATION" and c.created_date_utc.tzinfo is not None for c in connections)


def test_payments_and_contacts_honour_if_modified_since(sdk, xero, write_tenant, customer):
    state = xero.state
    invoice = state.create_invoice(write_tenant, customer, "80.00")
    since = state.books[write_tenant].last_stamp
    payment = state.apply_payment(write_tenant, invoice["InvoiceID"], "30.00")
    changed = sdk.accounting.get_payments(write_tenant, if_modified_since=since, page=1).payments
    assert [(p.payment_id, p.status) for p in changed] == [(payment["PaymentID"], "AUTHORISED")]
    since = state.books[write_tenant].last_stamp
    state.delete_payment(write_tenant, payment["PaymentID"])
    changed = sdk.accounting.get_payments(
        write_tenant, if_modified_since=since, order="UpdatedDateUTC ASC"
    ).payments
    assert [(p.payment_id, p.status) for p in changed] == [(payment["PaymentID"], "DELETED")]
    since = state.books[write_tenant].last_stamp
    assert sdk.accounting.get_contacts(write_tenant, if_modified_since=since).contacts == []
    state.update_contact(write_tenant, customer, email="moved@example.com")
    [contact] = sdk.accounting.get_contacts(write_tenant, if_modified_since=since).contacts
    assert contact.contact_id == customer and contact.email_address == "moved@example.com"


def test_archived_contacts_need_include_archived(sdk, xero, write_tenant, customer):
    xero.state.update_contact(write_tenant, customer, status="ARCHIVED")
    listed = {c.contact_id for c in sdk.accounting.get_contacts(write_tenant, i_ds=[customer]).contacts}
    assert listed == set()
    archived = sdk.accounting.get_contacts(write_tenant, i_ds=[customer], include_archived=True).contacts
    assert [c.contact_status for c in archived] == ["ARCHIVED"]
    assert sdk.accounting.get_contact(write_tenant, customer).contacts[0].contact_status == "ARCHIVED"


def test_paths_are_case_insensitive_and_lists_accept_encoded_commas(xero, read_tenant):
    from .http import bearer, call

    token = xero.state.client_credentials_token()["access_token"]
    ids = list(xero.state.books[read_tenant].invoices)[:2]
    reply = call(
        "GET",
        f"{xero.url}/API.XRO/2.0/invoices?ids={ids[0]}%2C{ids[1]}&SUMMARYONLY=False",
        headers=bearer(token, read_tenant),
    )
    assert reply.status == 200 and sorted(i["InvoiceID"] for i in reply.json()["Invoices"]) == sorted(ids)
    assert "pagination" not in reply.json()
