import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from xero.translate import (
    TranslationError,
    contact_row,
    installment_rows,
    invoice_row,
    ms_date,
    ms_datetime,
    payment_row,
)

INVOICE = """{
  "Type": "ACCREC", "InvoiceID": "243216C5-369E-4056-AC67-05388F86DC81", "InvoiceNumber": "INV-0002",
  "Reference": "Ref 7", "AmountDue": 100.10, "AmountPaid": 15.00, "AmountCredited": 0,
  "CurrencyRate": 1.000000, "Contact": {"ContactID": "025867F1-D741-4D6B-B1AF-9AC774B59BA7", "Name": "City"},
  "Date": "/Date(1539993600000+0000)/", "DueDate": "/Date(1540857600000+1300)/", "Status": "AUTHORISED",
  "Total": 115.10, "CurrencyCode": "NZD", "UpdatedDateUTC": "/Date(1541176290160+0000)/",
  "SomethingXeroAddsTomorrow": {"x": [1, 2]},
  "Payments": [{"PaymentID": "0D666415-CF77-43FA-80C7-56775591D426", "Date": "/Date(1541030400000+0000)/",
                "Amount": 15.00, "CurrencyRate": 1.000000, "HasAccount": false}]
}"""


def parsed(text: str) -> dict:
    return json.loads(text, parse_float=Decimal)


def test_ms_dates_become_aware_utc_with_milliseconds():
    assert ms_datetime("/Date(1541176290160+0000)/") == datetime(2018, 11, 2, 16, 31, 30, 160000, tzinfo=timezone.utc)
    assert ms_datetime("/Date(1552326816230)/") == datetime(2019, 3, 11, 17, 53, 36, 230000, tzinfo=timezone.utc)
    assert ms_datetime("/Date(-1000+0000)/") == datetime(1969, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert ms_datetime(None) is None


def test_date_only_fields_are_the_utc_day_whatever_the_offset_says():
    assert ms_date("/Date(1539993600000+0000)/") == date(2018, 10, 20)
    assert ms_date("/Date(1540857600000+1300)/") == date(2018, 10, 30)


def test_a_date_xero_never_writes_is_refused():
    with pytest.raises(TranslationError):
        ms_datetime("2018-10-20T00:00:00")


def test_invoice_row_keeps_exact_money_lower_case_ids_and_the_raw_object():
    raw = parsed(INVOICE)
    row = invoice_row("t1", raw)
    assert row["invoice_id"] == "243216c5-369e-4056-ac67-05388f86dc81"
    assert row["contact_id"] == "025867f1-d741-4d6b-b1af-9ac774b59ba7"
    assert (row["total"], row["amount_due"], row["amount_paid"]) == (
        Decimal("115.10"), Decimal("100.10"), Decimal("15.00"))
    assert row["amount_credited"] == Decimal(0) and isinstance(row["amount_credited"], Decimal)
    assert row["date"] == date(2018, 10, 20) and row["due_date"] == date(2018, 10, 30)
    assert row["fully_paid_on"] is None
    assert row["updated_utc"] == datetime(2018, 11, 2, 16, 31, 30, 160000, tzinfo=timezone.utc)
    assert row["raw"]["SomethingXeroAddsTomorrow"] == {"x": [1, 2]} and row["raw"]["Payments"] == raw["Payments"]
    lined = {**raw, "LineItems": [{"Description": "Consulting", "LineAmount": 100.1}]}
    assert "LineItems" not in invoice_row("t1", lined)["raw"]  # nothing reads them: not stored


def test_money_read_as_float_is_refused():
    raw = json.loads(INVOICE)  # no parse_float=Decimal
    with pytest.raises(TranslationError, match="never float"):
        invoice_row("t1", raw)


def test_an_invoice_lists_its_live_payments_as_installments_without_an_update_time():
    rows = installment_rows("t1", parsed(INVOICE))
    assert rows == [
        {
            "tenant_id": "t1",
            "payment_id": "0d666415-cf77-43fa-80c7-56775591d426",
            "invoice_id": "243216c5-369e-4056-ac67-05388f86dc81",
            "date": date(2018, 11, 1),
            "amount": Decimal("15.00"),
            "currency_rate": Decimal("1.000000"),
            "reference": None,
            "status": "AUTHORISED",
            "payment_type": None,
            "updated_utc": None,
            "raw": parsed(INVOICE)["Payments"][0],
        }
    ]


def test_full_payment_record_carries_status_type_and_its_invoice():
    raw = parsed(
        '{"PaymentID": "P1", "Date": "/Date(1541030400000+0000)/", "Amount": 15.00, "Reference": "Cheque",'
        ' "CurrencyRate": 0.946183, "PaymentType": "ACCRECPAYMENT", "Status": "DELETED",'
        ' "UpdatedDateUTC": "/Date(1541176290160+0000)/", "Invoice": {"InvoiceID": "I1"}}'
    )
    row = payment_row("t1", raw)
    assert (row["payment_id"], row["invoice_id"], row["status"], row["payment_type"]) == (
        "p1", "i1", "DELETED", "ACCRECPAYMENT")
    assert row["currency_rate"] == Decimal("0.946183") and row["reference"] == "Cheque"


def test_contact_row_keeps_whether_it_is_a_customer_and_a_searchable_email():
    raw = parsed(
        '{"ContactID": "C1", "Name": "Acme", "EmailAddress": "Ann@Acme.Example", "IsCustomer": true,'
        ' "IsSupplier": false, "ContactStatus": "ACTIVE", "UpdatedDateUTC": "/Date(1541176290160+0000)/"}'
    )
    row = contact_row("t1", raw)
    assert (row["contact_id"], row["is_customer"], row["is_supplier"]) == ("c1", True, False)
    assert (row["email"], row["email_lower"]) == ("Ann@Acme.Example", "ann@acme.example")
    assert contact_row("t1", {**raw, "EmailAddress": ""})["email"] is None


def test_an_object_without_its_id_or_update_time_is_refused():
    with pytest.raises(TranslationError, match="ContactID"):
        contact_row("t1", {"UpdatedDateUTC": "/Date(1541176290160+0000)/"})
    with pytest.raises(TranslationError, match="UpdatedDateUTC"):
        contact_row("t1", {"ContactID": "c"})
