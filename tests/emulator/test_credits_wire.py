"""Credit notes, prepayments, overpayments, contact persons, merges and time zones on the wire:
every answer validates against Xero's OpenAPI and the real SDK reads it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from xero_python.accounting.models import TimeZone

from . import openapi
from .http import bearer, call

ACCOUNTING = "xero_accounting.yaml"
needs_spec = openapi.needs_spec


def assert_valid(path: str, body) -> None:
    problems = openapi.errors(openapi.response_validator(ACCOUNTING, path), body)
    assert not problems, "\n".join(problems[:20])


def books(xero, tenant):
    return xero.state.books[tenant]


def allocated_invoice(xero, tenant, kind: str):
    return next(
        i for i in books(xero, tenant).invoices.values() if any(a.kind == kind for a in i.allocations)
    )


# -- OpenAPI conformance --------------------------------------------------------------------------
@needs_spec
@pytest.mark.parametrize("query", ["?page=1&pageSize=1000", "", "?page=2&pageSize=10"])
@pytest.mark.parametrize("collection", ["CreditNotes", "Prepayments", "Overpayments"])
def test_credit_lists_conform(get, collection, query):
    body = get(f"/{collection}{query}")
    assert body[collection]
    assert_valid(f"/{collection}", body)


@needs_spec
@pytest.mark.parametrize(
    "kind, path", [("CreditNote", "CreditNoteID"), ("Prepayment", "PrepaymentID"), ("Overpayment", "OverpaymentID")]
)
def test_credit_by_id_conforms(get, xero, read_tenant, kind, path):
    allocated = next(c for c in books(xero, read_tenant).credits(kind).values() if c.allocations)
    collection = f"{kind}s"
    body = get(f"/{collection}/{allocated.credit_id}")
    [one] = body[collection]
    assert one["Allocations"] and one["Allocations"][0]["Invoice"]["InvoiceID"]
    assert_valid(f"/{collection}/{{{path}}}", body)


@needs_spec
def test_invoices_with_credits_conform(get, xero, read_tenant):
    ids = [allocated_invoice(xero, read_tenant, kind).invoice_id
           for kind in ("CreditNote", "Prepayment", "Overpayment")]
    body = get(f"/Invoices?IDs={','.join(ids)}&page=1")
    assert_valid("/Invoices", body)
    shown = {i["InvoiceID"]: i for i in body["Invoices"]}
    assert shown[ids[0]]["CreditNotes"] and shown[ids[1]]["Prepayments"] and shown[ids[2]]["Overpayments"]
    for invoice_id in ids:
        assert_valid("/Invoices/{InvoiceID}", get(f"/Invoices/{invoice_id}"))


@needs_spec
def test_paged_contacts_with_merges_and_people_conform(get, xero, read_tenant):
    body = get("/Contacts?page=1&includeArchived=true")
    assert_valid("/Contacts", body)
    merged = [c for c in body["Contacts"] if "MergedToContactID" in c]
    assert merged and all(c["ContactStatus"] == "ARCHIVED" for c in merged)
    assert any(c["ContactPersons"] for c in body["Contacts"])


@needs_spec
def test_organisation_time_zone_conforms(get, xero, write_tenant):
    xero.state.set_timezone(write_tenant, "PACIFICSTANDARDTIME")
    body = get("/Organisation", write_tenant)
    assert body["Organisations"][0]["Timezone"] == "PACIFICSTANDARDTIME"
    assert_valid("/Organisation", body)


@needs_spec
def test_timezone_list_is_the_specs_enum():
    from emulator.seed import PROFILES
    from emulator.timezones import TIMEZONES

    spec = set(openapi.document(ACCOUNTING)["components"]["schemas"]["TimeZone"]["enum"])
    assert spec == TIMEZONES
    assert {profile[3] for profile in PROFILES} <= spec


@needs_spec
def test_credit_note_webhooks_conform(xero, write_tenant, customer):
    state = xero.state
    start = len(state.webhook_events())
    note = state.create_credit_note(write_tenant, customer, "10.00", status="DRAFT")
    state.set_credit_note_status(write_tenant, note["CreditNoteID"], "AUTHORISED")
    invoice = state.create_invoice(write_tenant, customer, "10.00")
    state.allocate_credit_note(write_tenant, note["CreditNoteID"], invoice["InvoiceID"])
    events = [
        {k: v for k, v in e.items() if k != "sequence"} for e in state.webhook_events()[start:]
    ]
    payload = {"events": events, "firstEventSequence": 1, "lastEventSequence": 2, "entropy": "ABCDEFGHIJKLMNOPQRST"}
    problems = openapi.errors(openapi.webhook_validator(), payload)
    assert not problems, problems
    credit_only = {**payload, "events": [e for e in events if e["eventCategory"] == "CREDITNOTE"]}
    assert len(credit_only["events"]) == 3
    problems = openapi.errors(openapi.webhook_validator("CreditNoteWebhookEvent"), credit_only)
    assert not problems, problems


# -- the real SDK --------------------------------------------------------------------------------
def test_sdk_reads_credit_notes(sdk, xero, read_tenant):
    notes = sdk.accounting.get_credit_notes(read_tenant, page=1, page_size=1000).credit_notes
    assert len(notes) == len(books(xero, read_tenant).credit_notes)
    assert {n.type for n in notes} == {"ACCRECCREDIT", "ACCPAYCREDIT"}
    assert {"DRAFT", "AUTHORISED", "PAID", "VOIDED"} <= {n.status for n in notes}
    allocated = next(n for n in notes if n.allocations)
    first = allocated.allocations[0]
    assert isinstance(first.amount, Decimal) and isinstance(first.date, date)
    assert first.invoice.invoice_id in books(xero, read_tenant).invoices and first.allocation_id
    assert allocated.remaining_credit == allocated.total - sum(a.amount for a in allocated.allocations)
    assert allocated.credit_note_number and allocated.line_items
    [one] = sdk.accounting.get_credit_note(read_tenant, allocated.credit_note_id).credit_notes
    assert one.credit_note_id == allocated.credit_note_id and one.contact.name
    unpaged = sdk.accounting.get_credit_notes(read_tenant).credit_notes
    assert len(unpaged) == len(notes) and all(n.line_items == [] for n in unpaged)


def test_sdk_credit_note_filters(sdk, xero, read_tenant):
    supplier = sdk.accounting.get_credit_notes(read_tenant, where='Type=="ACCPAYCREDIT"', page=1).credit_notes
    assert supplier and {n.type for n in supplier} == {"ACCPAYCREDIT"}
    ordered = sdk.accounting.get_credit_notes(read_tenant, order="UpdatedDateUTC ASC", page=1).credit_notes
    stamps = [n.updated_date_utc for n in ordered]
    assert stamps == sorted(stamps)
    latest = max(c.updated_utc for c in books(xero, read_tenant).credit_notes.values())
    assert sdk.accounting.get_credit_notes(read_tenant, if_modified_since=latest).credit_notes == []


def test_credit_note_ids_on_the_wire(xero, read_tenant):
    """The SDK's get_credit_notes has no IDs argument; Xero's gateway and we still take it."""
    token = xero.state.client_credentials_token()["access_token"]
    wanted = list(books(xero, read_tenant).credit_notes)[:3]
    reply = call(
        "GET", f"{xero.api_url}/CreditNotes?IDs={','.join(wanted)}", headers=bearer(token, read_tenant)
    )
    assert sorted(n["CreditNoteID"] for n in reply.json()["CreditNotes"]) == sorted(wanted)
    many = ",".join(list(books(xero, read_tenant).invoices)[:60])
    assert call("GET", f"{xero.api_url}/CreditNotes?IDs={many}", headers=bearer(token, read_tenant)).status == 404


def test_sdk_reads_prepayments_and_overpayments(sdk, xero, read_tenant):
    prepayments = sdk.accounting.get_prepayments(read_tenant, page=1, page_size=1000).prepayments
    overpayments = sdk.accounting.get_overpayments(read_tenant, page=1).overpayments
    assert len(prepayments) == len(books(xero, read_tenant).prepayments)
    assert {p.type for p in prepayments} <= {"RECEIVE-PREPAYMENT", "SPEND-PREPAYMENT"}
    assert {p.type for p in overpayments} == {"RECEIVE-OVERPAYMENT"}
    one = next(p for p in prepayments if p.allocations)
    [again] = sdk.accounting.get_prepayment(read_tenant, one.prepayment_id).prepayments
    assert again.allocations[0].amount == one.allocations[0].amount
    [over] = sdk.accounting.get_overpayment(read_tenant, overpayments[0].overpayment_id).overpayments
    assert over.overpayment_id == overpayments[0].overpayment_id and over.remaining_credit is not None


def test_sdk_reads_invoices_carrying_credits(sdk, xero, read_tenant):
    ids = [allocated_invoice(xero, read_tenant, kind).invoice_id
           for kind in ("CreditNote", "Prepayment", "Overpayment")]
    invoices = {i.invoice_id: i for i in sdk.accounting.get_invoices(read_tenant, i_ds=ids, page=1).invoices}
    note = invoices[ids[0]].credit_notes[0]
    assert note.credit_note_id and note.credit_note_number.startswith("CN-") and note.applied_amount > 0
    assert invoices[ids[1]].prepayments[0].prepayment_id and invoices[ids[2]].overpayments[0].overpayment_id
    for invoice in invoices.values():
        applied = sum(
            (c.applied_amount for c in [*invoice.credit_notes, *invoice.prepayments, *invoice.overpayments]),
            Decimal("0.00"),
        )
        assert invoice.amount_credited == applied
        assert invoice.amount_due == invoice.total - invoice.amount_paid - invoice.amount_credited


def test_sdk_reads_contact_persons_and_merges(sdk, xero, read_tenant):
    contacts = sdk.accounting.get_contacts(read_tenant, page=1, include_archived=True).contacts
    merged = [c for c in contacts if c.merged_to_contact_id]
    assert merged and all(c.contact_status == "ARCHIVED" for c in merged)
    survivor = merged[0].merged_to_contact_id
    assert survivor in books(xero, read_tenant).contacts
    people = next(c for c in contacts if c.contact_persons)
    assert people.contact_persons[0].email_address and people.contact_persons[0].first_name
    assert isinstance(people.contact_persons[0].include_in_emails, bool)


def test_merged_to_contact_id_only_on_pages_and_single_gets(xero, read_tenant, get):
    merged = next(c for c in books(xero, read_tenant).contacts.values() if c.merged_to)
    unpaged = get(f"/Contacts?IDs={merged.contact_id}&includeArchived=true")["Contacts"]
    assert unpaged and "MergedToContactID" not in unpaged[0]
    paged = get(f"/Contacts?IDs={merged.contact_id}&includeArchived=true&page=1")["Contacts"]
    assert paged[0]["MergedToContactID"] == merged.merged_to
    assert get(f"/Contacts/{merged.contact_id}")["Contacts"][0]["MergedToContactID"] == merged.merged_to


def test_sdk_reads_the_time_zone(sdk, xero, write_tenant):
    xero.state.set_timezone(write_tenant, "pacificstandardtime")
    org = sdk.accounting.get_organisations(write_tenant).organisations[0]
    assert org.timezone == TimeZone.PACIFICSTANDARDTIME
