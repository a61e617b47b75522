"""Pure rules: the `where` language and list-query parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from werkzeug.datastructures import MultiDict

from emulator.listing import Args, QueryError, order_clauses, page_request, parse_if_modified_since
from emulator.where import WhereError, compile_where

INVOICE = {
    "Type": "ACCREC",
    "Status": "AUTHORISED",
    "AmountDue": Decimal("12.50"),
    "InvoiceNumber": "INV-0042",
    "Date": "/Date(1704067200000+0000)/",
    "Contact": {"ContactID": "ABCDEF00-0000-4000-8000-000000000001", "Name": "Acme Ltd"},
    "IsCustomer": True,
}
FIELDS = set(INVOICE)


@pytest.mark.parametrize(
    "expression, expected",
    [
        ('Status=="AUTHORISED"', True),
        ('Status!="AUTHORISED"', False),
        ('Type=="ACCREC" AND Status=="PAID"', False),
        ('Type=="ACCPAY" OR Status=="AUTHORISED"', True),
        ('Type=="ACCREC" && (Status=="PAID" || AmountDue>10)', True),
        ('Contact.ContactID==guid("abcdef00-0000-4000-8000-000000000001")', True),
        ('Contact.ContactID=Guid("ABCDEF00-0000-4000-8000-000000000001")', True),
        ("Date>=DateTime(2024,01,01)", True),
        ("Date>DateTime(2024, 1, 1)", False),
        ("Date<DateTime(2024,01,02,00,00,00)", True),
        ("AmountDue>=12.5 AND AmountDue<=12.50", True),
        ("AmountDue<0", False),
        ("IsCustomer==true", True),
        ("IsCustomer", True),
        ("NOT IsCustomer", False),
        ('Contact.Name.Contains("Acme")', True),
        ('Contact.Name.ToLower()=="acme ltd"', True),
        ('InvoiceNumber.StartsWith("INV-")', True),
    ],
)
def test_where_expressions(expression, expected):
    assert compile_where(expression, FIELDS)(INVOICE) is expected


@pytest.mark.parametrize(
    "expression", ['Nope=="x"', "Status==", 'Status=="A" AND', "Date>=DateTime(2024,13,1)", 'Status=="open']
)
def test_bad_where_expressions_are_refused(expression):
    with pytest.raises(WhereError):
        compile_where(expression, FIELDS)


def test_lists_accept_encoded_commas_repeats_and_any_case_names():
    args = Args(MultiDict([("ids", "a,b"), ("IDs", " c "), ("summaryOnly", "True"), ("PAGE", "2")]))
    assert args.csv("IDs") == ["a", "b", "c"]
    assert args.flag("summaryonly") is True and args.flag("includeArchived") is False
    assert page_request(args) == (2, 100)
    assert page_request(Args(MultiDict([("page", "1"), ("pageSize", "5000")]))) == (1, 1000)
    with pytest.raises(QueryError):
        page_request(Args(MultiDict([("page", "x")])))


@pytest.mark.parametrize(
    "header",
    [
        "2024-01-02T03:04:05+00:00",
        "2024-01-02T03:04:05",
        "2024-01-02T03:04:05Z",
        "2024-01-02T16:04:05+13:00",
        "Tue, 02 Jan 2024 03:04:05 GMT",
    ],
)
def test_if_modified_since_formats(header):
    assert parse_if_modified_since(header) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_if_modified_since_keeps_microseconds_and_rejects_garbage():
    moment = parse_if_modified_since("2024-01-02T03:04:05.123456+00:00")
    assert moment.microsecond == 123456
    with pytest.raises(QueryError):
        parse_if_modified_since("yesterday")


def test_order_clauses():
    assert order_clauses("UpdatedDateUTC ASC, Date desc", {"UpdatedDateUTC", "Date"}) == [
        (("UpdatedDateUTC",), False),
        (("Date",), True),
    ]
    with pytest.raises(QueryError):
        order_clauses("Colour ASC", {"Date"})
