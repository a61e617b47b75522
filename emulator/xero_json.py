"""Records to Xero's JSON: PascalCase, /Date(ms+0000)/ dates, 2dp money, the envelope."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal

from .books import TenantBooks
from .records import ZERO, Allocation, Contact, ContactPerson, Credit, Invoice, LineItem, Organisation, Payment

MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{2,4})?\)/$")
_BANK_ACCOUNT_ID = "c1d3f5a7-0b2c-4e6d-8f1a-3b5c7d9e1f20"


def epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def ms_datetime(moment: datetime) -> str:
    return f"/Date({epoch_ms(moment)}+0000)/"


def ms_date(day: date) -> str:
    """A date-only field: midnight UTC of that day."""
    return ms_datetime(datetime.combine(day, time(), UTC))


def envelope_datetime(moment: datetime) -> str:
    return f"/Date({epoch_ms(moment)})/"


def date_string(day: date) -> str:
    return f"{day.isoformat()}T00:00:00"


def utc_string(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ms_date(text: str) -> datetime | None:
    match = MS_DATE.match(text)
    if not match:
        return None
    return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)


def envelope(key: str, items: list, now: datetime, provider: str, pagination: dict | None = None) -> dict:
    body = {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": provider,
        "DateTimeUTC": envelope_datetime(now),
    }
    if pagination is not None:
        body["pagination"] = pagination
    body[key] = items
    return body


def organisation_json(org: Organisation) -> dict:
    return {
        "OrganisationID": org.organisation_id,
        "APIKey": "",
        "Name": org.name,
        "LegalName": org.name,
        "PaysTax": True,
        "Version": org.version,
        "OrganisationType": "COMPANY",
        "BaseCurrency": org.base_currency,
        "CountryCode": org.country_code,
        "IsDemoCompany": False,
        "OrganisationStatus": "ACTIVE",
        "FinancialYearEndDay": 31,
        "FinancialYearEndMonth": 3,
        "SalesTaxBasis": "ACCRUALS" if org.version == "UK" else "INVOICE",
        "SalesTaxPeriod": "QUARTERLY" if org.version == "UK" else "TWOMONTHS",
        "DefaultSalesTax": "Tax Exclusive",
        "DefaultPurchasesTax": "Tax Exclusive",
        "CreatedDateUTC": envelope_datetime(org.created_utc),
        "OrganisationEntityType": "COMPANY",
        "Timezone": org.timezone,
        "ShortCode": org.short_code,
        "Edition": "BUSINESS",
        "Class": "PREMIUM",
        "Addresses": [],
        "Phones": [],
        "ExternalLinks": [],
        "PaymentTerms": {},
    }


def contact_person_json(person: ContactPerson) -> dict:
    return {
        "FirstName": person.first_name,
        "LastName": person.last_name,
        "EmailAddress": person.email,
        "IncludeInEmails": person.include_in_emails,
    }


def contact_json(
    contact: Contact, summary_only: bool = False, *, paged: bool = False, detail: bool = False
) -> dict:
    """A contact. MergedToContactID, on a merged-away contact, only in paged lists and single GETs
    (the spec: "Only returned when using paging or when fetching a contact by ContactId")."""
    body = {
        "ContactID": contact.contact_id,
        "ContactNumber": contact.contact_number,
        "AccountNumber": contact.account_number,
        "ContactStatus": contact.status,
        "Name": contact.name,
        "FirstName": contact.first_name,
        "LastName": contact.last_name,
        "EmailAddress": contact.email,
        "BankAccountDetails": "",
        "UpdatedDateUTC": ms_datetime(contact.updated_utc),
        "IsSupplier": contact.is_supplier,
        "IsCustomer": contact.is_customer,
        "HasAttachments": False,
        "HasValidationErrors": False,
    }
    if not summary_only:
        body["Addresses"] = [{"AddressType": "STREET"}, {"AddressType": "POBOX"}]
        body["Phones"] = [{"PhoneType": t} for t in ("DEFAULT", "DDI", "FAX", "MOBILE")]
        body["ContactGroups"] = []
        body["ContactPersons"] = [contact_person_json(p) for p in contact.contact_persons]
    if contact.merged_to and (paged or detail):
        body["MergedToContactID"] = contact.merged_to
    return body


def contact_ref_json(contact: Contact, detail: bool) -> dict:
    """The Contact nested in an invoice: a summary in lists, more on a single GET."""
    body = {"ContactID": contact.contact_id, "Name": contact.name}
    if detail:
        body.update(
            ContactStatus=contact.status,
            FirstName=contact.first_name,
            LastName=contact.last_name,
            EmailAddress=contact.email,
            IsSupplier=contact.is_supplier,
            IsCustomer=contact.is_customer,
        )
    body.update(Addresses=[], Phones=[], ContactGroups=[], ContactPersons=[], HasValidationErrors=False)
    return body


def line_item_json(line: LineItem, unitdp: int) -> dict:
    unit = line.unit_amount.quantize(Decimal(1).scaleb(-unitdp))
    return {
        "Description": line.description,
        "UnitAmount": unit,
        "TaxType": line.tax_type,
        "TaxAmount": line.tax_amount,
        "LineAmount": line.line_amount,
        "AccountCode": line.account_code,
        "Tracking": [],
        "Quantity": line.quantity,
        "LineItemID": line.line_item_id,
    }


def payment_ref_json(payment: Payment) -> dict:
    """The abbreviated Payment nested in an invoice."""
    return {
        "PaymentID": payment.payment_id,
        "Date": ms_date(payment.date),
        "Amount": payment.amount,
        "Reference": payment.reference,
        "CurrencyRate": payment.currency_rate,
        "HasAccount": False,
        "HasValidationErrors": False,
    }


def invoice_json(
    invoice: Invoice,
    books: TenantBooks,
    *,
    line_items: bool = True,
    summary_only: bool = False,
    detail: bool = False,
    unitdp: int = 2,
) -> dict:
    """One invoice. `line_items=False` empties LineItems (un-paged lists); `summary_only` drops heavy arrays."""
    contact = books.contact(invoice.contact_id)
    body: dict = {"Type": invoice.type, "InvoiceID": invoice.invoice_id, "InvoiceNumber": invoice.number}
    body["Reference"] = invoice.reference
    if not summary_only:
        live = [p for p in invoice.payments if p.status == "AUTHORISED"]
        body.update(
            Payments=[payment_ref_json(p) for p in live],
            CreditNotes=[credit_ref_json(a, books) for a in invoice.allocations if a.kind == "CreditNote"],
            Prepayments=[credit_ref_json(a, books) for a in invoice.allocations if a.kind == "Prepayment"],
            Overpayments=[credit_ref_json(a, books) for a in invoice.allocations if a.kind == "Overpayment"],
        )
    body.update(
        AmountDue=invoice.amount_due,
        AmountPaid=invoice.amount_paid,
        AmountCredited=invoice.amount_credited,
        SentToContact=invoice.sent_to_contact,
        CurrencyRate=invoice.currency_rate,
        IsDiscounted=False,
        HasAttachments=False,
        HasErrors=False,
        Contact=contact_ref_json(contact, detail),
        DateString=date_string(invoice.date),
        Date=ms_date(invoice.date),
        DueDateString=date_string(invoice.due_date),
        DueDate=ms_date(invoice.due_date),
        Status=invoice.status,
        LineAmountTypes=invoice.line_amount_types,
    )
    if not summary_only:
        body["LineItems"] = [line_item_json(li, unitdp) for li in invoice.line_items] if line_items else []
    body.update(
        SubTotal=invoice.sub_total,
        TotalTax=invoice.total_tax,
        Total=invoice.total,
        UpdatedDateUTC=ms_datetime(invoice.updated_utc),
        UpdatedDateUTCString=utc_string(invoice.updated_utc),
        CurrencyCode=invoice.currency_code,
    )
    if invoice.fully_paid_on is not None:
        body["FullyPaidOnDate"] = ms_date(invoice.fully_paid_on)
    return body


def credit_ref_json(allocation: Allocation, books: TenantBooks) -> dict:
    """One allocation as the invoice lists it under CreditNotes/Prepayments/Overpayments: the
    document's summary (its own Date and Total) with the AppliedAmount of this allocation."""
    credit = books.credit(allocation.kind, allocation.credit_id)
    body = {f"{allocation.kind}ID": credit.credit_id}
    if allocation.kind == "CreditNote":
        body["CreditNoteNumber"] = credit.number
    body.update(
        ID=credit.credit_id,
        AppliedAmount=allocation.amount,
        DateString=date_string(credit.date),
        Date=ms_date(credit.date),
        LineItems=[],
        Total=credit.total,
    )
    return body


def allocation_invoice_json(invoice: Invoice) -> dict:
    """The Invoice summary nested in an allocation."""
    return {**_invoice_stub(invoice), "LineItems": []}


def _invoice_stub(invoice: Invoice) -> dict:
    """What every Invoice summary nested in another document says: its ids and empty arrays."""
    return {
        "InvoiceID": invoice.invoice_id,
        "InvoiceNumber": invoice.number,
        "Payments": [],
        "CreditNotes": [],
        "Prepayments": [],
        "Overpayments": [],
        "HasErrors": False,
        "IsDiscounted": False,
    }


def allocation_json(allocation: Allocation, books: TenantBooks, *, deleted: bool = False) -> dict:
    body = {
        "AllocationID": allocation.allocation_id,
        "Amount": allocation.amount,
        "Date": ms_date(allocation.date),
        "Invoice": allocation_invoice_json(books.invoices[allocation.invoice_id]),
    }
    if deleted:
        body["IsDeleted"] = True
    return body


def credit_json(credit: Credit, books: TenantBooks, *, line_items: bool = True, detail: bool = False) -> dict:
    """A credit note, prepayment or overpayment as GET /CreditNotes|Prepayments|Overpayments give it."""
    contact = books.contact(credit.contact_id)
    live = credit.status in ("DRAFT", "SUBMITTED", "AUTHORISED", "PAID")
    body: dict = {}
    if credit.kind == "CreditNote":
        body.update(
            CreditNoteID=credit.credit_id,
            CreditNoteNumber=credit.number,
            Payments=[],
            Type=credit.type,
            Reference=credit.reference,
            RemainingCredit=credit.remaining if live else ZERO,
            Allocations=[allocation_json(a, books) for a in credit.allocations],
            AppliedAmount=credit.applied,
            HasAttachments=False,
            HasErrors=False,
            SentToContact=credit.sent_to_contact,
        )
    else:
        body.update(
            Type=credit.type,
            Reference=credit.reference,
            RemainingCredit=credit.remaining if live else ZERO,
            Allocations=[allocation_json(a, books) for a in credit.allocations],
            AppliedAmount=credit.applied,
            Payments=[],
            HasAttachments=False,
        )
    body.update(
        CurrencyRate=credit.currency_rate,
        Contact=contact_ref_json(contact, detail),
        DateString=date_string(credit.date),
        Date=ms_date(credit.date),
        Status=credit.status,
        LineAmountTypes=credit.line_amount_types,
        LineItems=[line_item_json(li, 2) for li in credit.line_items] if line_items else [],
        SubTotal=credit.sub_total,
        TotalTax=credit.total_tax,
        Total=credit.total,
        UpdatedDateUTC=ms_datetime(credit.updated_utc),
        UpdatedDateUTCString=utc_string(credit.updated_utc),
        CurrencyCode=credit.currency_code,
    )
    if credit.kind != "CreditNote":
        body[f"{credit.kind}ID"] = credit.credit_id
    if credit.fully_paid_on is not None and credit.kind == "CreditNote":
        body["FullyPaidOnDate"] = ms_date(credit.fully_paid_on)
    return body


def payment_invoice_json(invoice: Invoice, books: TenantBooks) -> dict:
    """The Invoice summary nested in a Payment."""
    contact = books.contact(invoice.contact_id)
    return {
        "Type": invoice.type,
        **_invoice_stub(invoice),
        "Contact": {
            "ContactID": contact.contact_id,
            "ContactNumber": contact.contact_number,
            "Name": contact.name,
            "Addresses": [],
            "Phones": [],
            "ContactGroups": [],
            "ContactPersons": [],
            "HasValidationErrors": False,
        },
        "LineItems": [],
        "CurrencyCode": invoice.currency_code,
    }


def payment_json(payment: Payment, books: TenantBooks) -> dict:
    invoice = books.invoices[payment.invoice_id]
    bank_amount = (payment.amount / payment.currency_rate).quantize(Decimal("0.01"))
    return {
        "PaymentID": payment.payment_id,
        "Date": ms_date(payment.date),
        "BankAmount": bank_amount,
        "Amount": payment.amount,
        "Reference": payment.reference,
        "CurrencyRate": payment.currency_rate,
        "PaymentType": payment.payment_type,
        "Status": payment.status,
        "UpdatedDateUTC": ms_datetime(payment.updated_utc),
        "UpdatedDateUTCString": utc_string(payment.updated_utc),
        "HasAccount": True,
        "IsReconciled": payment.is_reconciled,
        "Account": {"AccountID": payment.account_id, "Code": payment.account_code},
        "Invoice": payment_invoice_json(invoice, books),
        "HasValidationErrors": False,
    }


def encode(value) -> str:
    """JSON text with Decimals written exactly (46.00, not 46.0 or "46.00")."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(key))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, Decimal):
        out.append(format(value, "f"))
    else:
        out.append(json.dumps(value))
