"""GET /Reports/AgedReceivablesByContact: Xero's ReportWithRows shape (validated against the
spec), the reports scope, and figures computed from the organisation's own records as of the
report's date (later payments and allocations do not count)."""

from __future__ import annotations

import itertools
import json
from datetime import date

import pytest
from xero_python.accounting import AccountingApi
from xero_python.exceptions import HTTPStatusException

from . import openapi
from .http import bearer, call
from .sdk import Sdk, sdk_token

ACCOUNTING = "xero_accounting.yaml"
PATH = "/Reports/AgedReceivablesByContact"
REPORTS = "accounting.reports.aged.read"


@pytest.fixture
def report(xero, write_tenant):
    token = xero.state.client_credentials_token(scope=REPORTS)["access_token"]

    def fetch(query: str, tenant: str = write_tenant, expect: int = 200):
        reply = call("GET", f"{xero.api_url}{PATH}?{query}", headers=bearer(token, tenant))
        assert reply.status == expect, reply.body[:300]
        return json.loads(reply.body) if reply.body.startswith(b"{") else reply.body

    return fetch


SERIES = itertools.count(1)


@pytest.fixture
def books(xero, write_tenant):
    """A customer with an invoice paid in two parts, one credited in part and one untouched
    (numbered AGE-1.. here; the emulator is the session's, so each test's are renamed)."""
    state, t, n = xero.state, write_tenant, next(SERIES)
    customer = state.create_contact(t, "Aged Customer", "aged@example.com")["ContactID"]
    a = state.create_invoice(t, customer, "300.00", date="2026-01-10", due_date="2026-02-09", number=f"AGE-1.{n}")
    state.apply_payment(t, a["InvoiceID"], "100.00", date="2026-02-01")
    state.apply_payment(t, a["InvoiceID"], "200.00", date="2026-03-15")  # PAID on 15 March
    b = state.create_invoice(t, customer, "500.00", date="2026-02-01", due_date="2026-03-03", number=f"AGE-2.{n}")
    note = state.create_credit_note(t, customer, "120.00", date="2026-03-01")
    state.allocate_credit_note(t, note["CreditNoteID"], b["InvoiceID"], "120.00", date="2026-03-01")
    c = state.create_invoice(t, customer, "80.00", date="2026-03-20", due_date="2026-04-19", number=f"AGE-3.{n}")
    state.create_invoice(t, customer, "999.00", date="2026-01-05", status="DRAFT", number=f"AGE-DRAFT.{n}")
    return customer, a["InvoiceID"], b["InvoiceID"], c["InvoiceID"]


def rows_of(body) -> dict[str, list[str]]:
    """{invoice number: [Date, Number, Due Date, overdue words, Total, Paid, Credited, Due]}."""
    (rep,) = body["Reports"]
    out = {}
    for section in rep["Rows"][1:]:
        for row in section.get("Rows", []):
            values = [c["Value"] for c in row["Cells"]]
            if row["RowType"] == "Row" and values[1] != "Opening Balance":
                values[1] = values[1].split(".")[0]
                out[values[1]] = values
    return out


def summary_rows(body) -> dict[str, list[str]]:
    (rep,) = body["Reports"]
    return {
        row["Cells"][0]["Value"]: [c["Value"] for c in row["Cells"]]
        for section in rep["Rows"][1:]
        for row in section.get("Rows", [])
        if row["RowType"] == "SummaryRow" or row["Cells"][1]["Value"] == "Opening Balance"
    }


@openapi.needs_spec
def test_the_report_conforms_to_xeros_schema(report, books):
    body = report(f"contactId={books[0]}&date=2026-03-10")
    errors = openapi.errors(openapi.response_validator(ACCOUNTING, PATH), body)
    assert not errors, errors
    example = openapi.document(ACCOUNTING)["paths"][PATH]["get"]["responses"]["200"]["content"]["application/json"]
    assert not openapi.errors(openapi.response_validator(ACCOUNTING, PATH), example["example"])
    (rep,) = body["Reports"]
    assert (rep["ReportName"], rep["ReportType"]) == ("Aged Receivables By Contact", "AgedReceivablesByContact")
    assert rep["ReportTitles"] == ["Invoices", "Aged Customer", "From 10 January 2026 to 10 March 2026",
                                   "Showing payments to 10 March 2026"]
    header = example["example"]["Reports"][0]["Rows"][0]
    assert rep["Rows"][0] == header  # Date, Number, Due Date, "", Total, Paid, Credited, Due


def test_figures_as_of_the_report_date(report, books):
    customer, a, b, _ = books
    before = rows_of(report(f"contactId={customer}&date=2026-03-10"))
    assert before == {
        "AGE-1": ["2026-01-10T00:00:00", "AGE-1", "2026-02-09T00:00:00", "29 days overdue", "300.00", "100.00",
                  "0.00", "200.00"],  # the second payment (15 March) is after the report date
        "AGE-2": ["2026-02-01T00:00:00", "AGE-2", "2026-03-03T00:00:00", "7 days overdue", "500.00", "0.00",
                  "120.00", "380.00"],
    }  # AGE-3 is dated after it; the draft is never listed
    after = report(f"contactId={customer}&date=2026-04-20")
    assert set(rows_of(after)) == {"AGE-2", "AGE-3"}  # AGE-1 settled: nothing due, not listed
    assert rows_of(after)["AGE-3"][3] == "1 day overdue"
    assert summary_rows(after)["Total"][4:] == ["580.00", "0.00", "120.00", "460.00"]
    assert summary_rows(after)["Closing Balance"][4:] == ["580.00", "0.00", "120.00", "460.00"]
    due_today = report(f"contactId={customer}&date=2026-04-19")
    assert rows_of(due_today)["AGE-3"][3] == ""  # due on the report date: not overdue
    cells = report(f"contactId={customer}&date=2026-03-10")["Reports"][0]["Rows"][2]["Rows"][0]["Cells"]
    assert all(c["Attributes"] == [{"Value": a, "Id": "invoiceID"}] for c in cells)


def test_from_and_to_dates_move_invoices_into_the_opening_balance(report, books):
    customer = books[0]
    body = report(f"contactId={customer}&date=2026-04-20&fromDate=2026-03-01&toDate=2026-04-30")
    assert set(rows_of(body)) == {"AGE-3"}
    assert summary_rows(body)["2026-03-01T00:00:00"][1:] == ["Opening Balance", "", "", "", "", "", "380.00"]
    assert summary_rows(body)["Closing Balance"][4:] == ["80.00", "0.00", "0.00", "460.00"]
    assert set(rows_of(report(f"contactId={customer}&date=2026-04-20&toDate=2026-02-28"))) == {"AGE-2"}


def test_the_report_needs_a_reports_scope(xero, write_tenant, books):
    url = f"{xero.api_url}{PATH}?contactId={books[0]}"
    product = xero.state.client_credentials_token()["access_token"]  # the scopes xero-mirror asks for
    refused = call("GET", url, headers=bearer(product, write_tenant))
    assert refused.status == 401 and json.loads(refused.body)["Detail"] == "AuthorizationUnsuccessful"
    for scope in ("accounting.reports.read", "accounting.reports.aged.read"):
        token = xero.state.client_credentials_token(scope=scope)["access_token"]
        assert call("GET", url, headers=bearer(token, write_tenant)).status == 200


@pytest.mark.parametrize(
    "query", ["", "contactId=not-a-guid", "contactId={c}&date=10/03/2026", "contactId={c}&fromDate=2026-3-1"]
)
def test_bad_input_is_a_400(report, books, query):
    body = report(query.format(c=books[0]), expect=400)
    assert body["Type"] == "QueryParseException"


def test_an_unknown_contact_is_a_404(report, books):
    report("contactId=00000000-0000-4000-8000-000000000000", expect=404)


def test_the_sdk_reads_it(xero, write_tenant, books, token_urls):
    sdk = Sdk(xero, sdk_token(xero.state.client_credentials_token(scope=REPORTS)))
    api: AccountingApi = sdk.accounting
    got = api.get_report_aged_receivables_by_contact(write_tenant, books[0], date=date(2026, 3, 10))
    rows = got.reports[0].rows
    assert rows[0].row_type.value == "Header" and rows[-1].rows[0].cells[0].value == "Closing Balance"
    with pytest.raises(HTTPStatusException):
        Sdk(xero, sdk_token(xero.state.client_credentials_token())).accounting.get_report_aged_receivables_by_contact(
            write_tenant, books[0]
        )
