"""Xero's settlements and people to mirror rows: allocations, contact persons, merges, natural order."""

from datetime import date
from decimal import Decimal

import pytest

from store.natural import number_key
from xero.client import credit_notes_where, is_xero_id
from xero.translate import TranslationError, allocation_rows, contact_email_rows, contact_row

CN = "5b6f0a52-54f3-4a5c-bb9f-0d6cd3a6e9f1"
PP = "0f1c0e6e-3a44-4f5e-9b7b-52a1dbf1b2d4"
INVOICE = {
    "InvoiceID": "ABC",
    "CreditNotes": [
        {"CreditNoteID": CN, "CreditNoteNumber": "CN-0012", "AppliedAmount": Decimal("300.00"),
         "Date": "/Date(1764547200000+0000)/", "Total": Decimal("300.00")},
        {"CreditNoteID": CN, "CreditNoteNumber": "CN-0012", "AppliedAmount": Decimal("5.00"),
         "Date": "/Date(1764547200000+0000)/", "Total": Decimal("300.00")},
    ],
    "Prepayments": [{"PrepaymentID": PP, "AppliedAmount": Decimal("10.00"), "Date": "/Date(1764547200000+0000)/"}],
    "Overpayments": [],
}


def test_every_credit_note_prepayment_and_overpayment_entry_is_one_allocation():
    rows = allocation_rows("t", INVOICE)
    assert [(r["kind"], r["document_id"], r["seq"], r["amount"], r["number"]) for r in rows] == [
        ("credit_note", CN, 1, Decimal("300.00"), "CN-0012"),
        ("credit_note", CN, 2, Decimal("5.00"), "CN-0012"),
        ("prepayment", PP, 1, Decimal("10.00"), None),
    ]
    assert rows[0]["date"] == date(2025, 12, 1) and rows[0]["invoice_id"] == "abc"


def test_an_allocation_without_its_amount_is_refused_not_guessed():
    with pytest.raises(TranslationError):
        allocation_rows("t", {"InvoiceID": "a", "CreditNotes": [{"CreditNoteID": CN}]})
    with pytest.raises(TranslationError):
        allocation_rows("t", {"InvoiceID": "a", "CreditNotes": [{"CreditNoteID": CN, "AppliedAmount": 1.5}]})


def test_contact_persons_addresses_are_kept_lower_case_and_once():
    raw = {
        "ContactID": "C1",
        "EmailAddress": "Accounts@Acme.example",
        "ContactPersons": [
            {"FirstName": "Mere", "LastName": "Ngata", "EmailAddress": " Mere@Acme.example "},
            {"FirstName": "Dup", "EmailAddress": "mere@acme.example"},
            {"FirstName": "Main", "EmailAddress": "accounts@acme.example"},  # the main address: nothing new
            {"FirstName": "NoMail", "EmailAddress": ""},
        ],
    }
    assert [(r["contact_id"], r["email_lower"], r["person_name"]) for r in contact_email_rows("t", raw)] == [
        ("c1", "mere@acme.example", "Mere Ngata")
    ]


def test_merged_to_is_kept_lower_case_and_the_nil_id_means_not_merged():
    base = {"ContactID": "C1", "UpdatedDateUTC": "/Date(1764547200000+0000)/"}
    assert contact_row("t", {**base, "MergedToContactID": "ABC-1"})["merged_to_contact_id"] == "abc-1"
    assert contact_row("t", {**base, "MergedToContactID": "00000000-0000-0000-0000-000000000000"})[
        "merged_to_contact_id"
    ] is None
    assert "BankAccountDetails" not in contact_row("t", {**base, "BankAccountDetails": "12-3456"})["raw"]


def test_invoice_numbers_sort_as_people_read_them():
    numbers = ["INV-10000", "INV-9999", "inv-998", "INV-0999", "CN-2", "INV-10000-B"]
    assert sorted(numbers, key=number_key) == ["CN-2", "inv-998", "INV-0999", "INV-9999", "INV-10000", "INV-10000-B"]
    assert number_key(None) is None and len(number_key("9" * 400)) == 400


def test_credit_notes_are_asked_for_by_guid_only():
    assert credit_notes_where([CN, PP]) == f'CreditNoteID==guid("{CN}") OR CreditNoteID==guid("{PP}")'
    assert is_xero_id(CN) and not is_xero_id('x") OR 1==1 OR ("')
    with pytest.raises(ValueError):
        credit_notes_where(['x") OR ("'])
