"""The Accounting API under /api.xro/2.0: Invoices, Payments, Contacts, CreditNotes, Prepayments,
Overpayments, Organisation (read side)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import wraps

from flask import Blueprint, current_app, g, request

from . import reports, responses, timezones, xero_json
from .books import NotFound, TenantBooks
from .listing import Args, QueryError, order_clauses, page_request, paginate, parse_if_modified_since, sort_rows
from .oauth import Unauthorized
from .where import WhereError, compile_where

bp = Blueprint("accounting", __name__, url_prefix="/api.xro/2.0")

MAX_IDS = 50
MAX_QUERY_STRING = 2048  # IIS's default maxQueryString: why Xero 404s beyond ~52 GUIDs
# Top-level fields `where` and `order` may name, per resource.
# fmt: off
INVOICE_FIELDS = {
    "Type", "InvoiceID", "InvoiceNumber", "Reference", "Payments", "CreditNotes", "Prepayments",
    "Overpayments", "AmountDue", "AmountPaid", "AmountCredited", "SentToContact", "CurrencyRate",
    "IsDiscounted", "HasAttachments", "HasErrors", "Contact", "Date", "DueDate", "Status",
    "LineAmountTypes", "LineItems", "SubTotal", "TotalTax", "Total", "UpdatedDateUTC", "CurrencyCode",
    "FullyPaidOnDate", "ExpectedPaymentDate", "PlannedPaymentDate", "BrandingThemeID", "Url",
    "TotalDiscount"
}
PAYMENT_FIELDS = {
    "PaymentID", "Date", "BankAmount", "Amount", "Reference", "CurrencyRate", "PaymentType", "Status",
    "UpdatedDateUTC", "HasAccount", "IsReconciled", "Account", "Invoice", "HasValidationErrors"
}
CONTACT_FIELDS = {
    "ContactID", "ContactNumber", "AccountNumber", "ContactStatus", "Name", "FirstName", "LastName",
    "EmailAddress", "BankAccountDetails", "UpdatedDateUTC", "IsSupplier", "IsCustomer", "HasAttachments",
    "HasValidationErrors", "Addresses", "Phones", "ContactGroups", "ContactPersons", "CompanyNumber",
    "TaxNumber", "DefaultCurrency", "MergedToContactID"
}
_CREDIT_FIELDS = {
    "Type", "Contact", "Date", "Status", "LineAmountTypes", "LineItems", "SubTotal", "TotalTax", "Total",
    "UpdatedDateUTC", "CurrencyCode", "CurrencyRate", "RemainingCredit", "Allocations", "AppliedAmount",
    "Payments", "HasAttachments", "Reference"
}
CREDIT_NOTE_FIELDS = _CREDIT_FIELDS | {
    "CreditNoteID", "CreditNoteNumber", "FullyPaidOnDate", "SentToContact", "HasErrors", "DueDate",
    "BrandingThemeID"
}
PREPAYMENT_FIELDS = _CREDIT_FIELDS | {"PrepaymentID", "InvoiceNumber"}
OVERPAYMENT_FIELDS = _CREDIT_FIELDS | {"OverpaymentID"}
CREDIT_RESOURCES = {  # kind: (collection, id field, fields for where/order)
    "CreditNote": ("CreditNotes", "CreditNoteID", CREDIT_NOTE_FIELDS),
    "Prepayment": ("Prepayments", "PrepaymentID", PREPAYMENT_FIELDS),
    "Overpayment": ("Overpayments", "OverpaymentID", OVERPAYMENT_FIELDS),
}
# fmt: on


def emulator():
    return current_app.extensions["emulator"]


def xero_call(label: str):
    """Gateway limits, bearer token, tenant header, rate limits and faults around a view."""

    def decorate(view):
        @wraps(view)
        def wrapper(**kwargs):
            state = emulator()
            g.call_label = label
            refusal = _refusal(state)
            if refusal is not None:
                return refusal
            verdict = state.limits.acquire(g.tenant_id)
            if not verdict.allowed:
                return responses.too_many_requests(verdict)
            try:
                response = responses.injected(state.faults.for_call(), state.faults.settings)
                response = response or _answer(view, state.tenant(g.tenant_id), kwargs)
            finally:
                state.limits.release(g.tenant_id)
            for name, value in verdict.headers.items():
                response.headers.setdefault(name, value)
            return response

        return wrapper

    return decorate


def _refusal(state):
    """The gateway 404, 401 or 403 that stops this call before it counts; else None (tenant in g)."""
    if _too_long():
        return responses.gateway_not_found()
    try:
        grant = state.oauth.authenticate(request.headers.get("Authorization"))
    except Unauthorized as exc:
        return responses.unauthorized(exc.detail, exc.expired)
    tenant_id = (request.headers.get("xero-tenant-id") or "").strip().lower()
    if tenant_id not in state.books or not state.oauth.may_access(grant, tenant_id):
        return responses.forbidden()
    g.tenant_id = tenant_id
    g.grant = grant
    return None


def _answer(view, books: TenantBooks, kwargs):
    try:
        return view(books, **kwargs)
    except (QueryError, WhereError) as exc:
        return responses.bad_query(str(exc))
    except NotFound:
        return responses.not_found()


def _too_long() -> bool:
    if len(request.query_string) > MAX_QUERY_STRING:
        return True
    ids = Args(request.args).csv("IDs")
    return ids is not None and len(ids) > MAX_IDS


def _envelope(key: str, items: list, pagination: dict | None = None):
    state = emulator()
    return responses.xero(
        xero_json.envelope(key, items, state.clock.now(), state.config.provider_name, pagination)
    )


def _listed(records: list, args: Args, fields: set[str], key: str, full, shape, keys=None):
    """Apply where/order/paging to records (`full` gives the JSON they filter on) and answer.

    `keys`, when given, sorts by the fields it knows (the id, UpdatedDateUTC) straight from the
    records: an `order` on those alone, with no `where`, then costs no JSON at all (a
    backfill's pages of 1,000 used to serialize the whole organisation for every page)."""
    where, order = args.get("where"), args.get("order")
    if (where and where.strip()) or (order and order.strip()):
        clauses = order_clauses(order, fields)
        cheap = keys is not None and not (where and where.strip()) and all(
            len(path) == 1 and path[0].lower() in keys.names for path, _ in clauses
        )
        if cheap:
            records = keys.sort(list(records), clauses)
        else:
            rows = [(record, full(record)) for record in records]
            if where and where.strip():
                predicate = compile_where(where, fields)
                rows = [row for row in rows if predicate(row[1])]
            records = [record for record, _ in sort_rows(rows, clauses)]
    page, size = page_request(args)
    if page is None:  # un-paged: line items left out, unless the switch says Xero sends them anyway
        return _envelope(key, [shape(record, emulator().unpaged_line_items) for record in records])
    block, pagination = paginate(records, page, size)
    return _envelope(key, [shape(record, True) for record in block], pagination)


class _SortKeys:
    """Sort keys for the fields an `order` most often names (the id, UpdatedDateUTC), computed
    from the record directly and equal to what sorting the record's JSON gives."""

    def __init__(self, id_field: str, id_attr: str):
        self.id_attr = id_attr
        self.names = {id_field.lower(), "updateddateutc"}

    def sort(self, records: list, clauses) -> list:
        for path, descending in reversed(clauses):  # stable, last clause first, as sort_rows
            records.sort(key=self._key(path[0].lower()), reverse=descending)
        return records

    def _key(self, name: str):
        if name == "updateddateutc":  # the JSON's /Date(ms)/, parsed back: milliseconds, UTC
            return lambda r: (1, datetime.fromtimestamp(xero_json.epoch_ms(r.updated_utc) / 1000, UTC))
        return lambda r: (1, getattr(r, self.id_attr).lower())


INVOICE_KEYS = _SortKeys("InvoiceID", "invoice_id")
PAYMENT_KEYS = _SortKeys("PaymentID", "payment_id")
CONTACT_KEYS = _SortKeys("ContactID", "contact_id")
CREDIT_KEYS = {kind: _SortKeys(id_field, "credit_id") for kind, (_, id_field, _) in CREDIT_RESOURCES.items()}


def _modified_since():
    return parse_if_modified_since(request.headers.get("If-Modified-Since"))


@bp.get("/invoices")
@xero_call("GET /Invoices")
def list_invoices(books: TenantBooks):
    args = Args(request.args)
    since = _modified_since()
    ids = {i.lower() for i in args.csv("IDs") or []}
    numbers = {n.lower() for n in args.csv("InvoiceNumbers") or []}
    contacts = {c.lower() for c in args.csv("ContactIDs") or []}
    statuses = {s.upper() for s in args.csv("Statuses") or []}
    search = (args.get("searchTerm") or "").strip().lower()
    summary_only = args.flag("summaryOnly")
    unitdp = 4 if args.integer("unitdp") == 4 else 2
    mine_only = args.flag("createdByMyApp")
    with emulator().lock:
        chosen = [
            i
            for i in books.invoices.values()
            if (since is None or i.updated_utc > since)
            and (not ids or i.invoice_id in ids)
            and (not numbers or i.number.lower() in numbers)
            and (not contacts or i.contact_id in contacts)
            and (not statuses or i.status in statuses)
            and (not search or search in i.number.lower() or search in i.reference.lower())
            and not mine_only  # nothing here was created by the calling app
        ]

        def shape(invoice, paged):
            return xero_json.invoice_json(
                invoice, books, line_items=paged, summary_only=summary_only, unitdp=unitdp
            )

        return _listed(
            chosen, args, INVOICE_FIELDS, "Invoices", lambda i: xero_json.invoice_json(i, books), shape,
            INVOICE_KEYS,
        )


@bp.get("/invoices/<key>")
@xero_call("GET /Invoices/{id}")
def get_invoice(books: TenantBooks, key: str):
    unitdp = 4 if Args(request.args).integer("unitdp") == 4 else 2
    with emulator().lock:
        invoice = books.invoice(key)
        return _envelope("Invoices", [xero_json.invoice_json(invoice, books, detail=True, unitdp=unitdp)])


@bp.get("/payments")
@xero_call("GET /Payments")
def list_payments(books: TenantBooks):
    args = Args(request.args)
    since = _modified_since()
    with emulator().lock:
        chosen = [p for p in books.payments.values() if since is None or p.updated_utc > since]

        def as_json(p):
            return xero_json.payment_json(p, books)

        return _listed(
            chosen, args, PAYMENT_FIELDS, "Payments", as_json, lambda p, paged: as_json(p), PAYMENT_KEYS
        )


@bp.get("/payments/<payment_id>")
@xero_call("GET /Payments/{id}")
def get_payment(books: TenantBooks, payment_id: str):
    with emulator().lock:
        return _envelope("Payments", [xero_json.payment_json(books.payment(payment_id), books)])


@bp.get("/contacts")
@xero_call("GET /Contacts")
def list_contacts(books: TenantBooks):
    args = Args(request.args)
    since = _modified_since()
    ids = {i.lower() for i in args.csv("IDs") or []}
    archived = args.flag("includeArchived")
    summary_only = args.flag("summaryOnly")
    search = (args.get("searchTerm") or "").strip().lower()
    with emulator().lock:
        chosen = [
            c
            for c in books.contacts.values()
            if (since is None or c.updated_utc > since)
            and (not ids or c.contact_id in ids)
            and (archived or c.status != "ARCHIVED")
            and (
                not search
                or any(
                    search in v.lower()
                    for v in (c.name, c.first_name, c.last_name, c.contact_number, c.email)
                )
            )
        ]
        return _listed(
            chosen,
            args,
            CONTACT_FIELDS,
            "Contacts",
            xero_json.contact_json,
            lambda c, paged: xero_json.contact_json(c, summary_only=summary_only, paged=paged),
            CONTACT_KEYS,
        )


@bp.get("/contacts/<contact_id>")
@xero_call("GET /Contacts/{id}")
def get_contact(books: TenantBooks, contact_id: str):
    with emulator().lock:
        return _envelope("Contacts", [xero_json.contact_json(books.contact(contact_id), detail=True)])


def _list_credits(books: TenantBooks, kind: str):
    """GET /CreditNotes, /Prepayments, /Overpayments: IDs, If-Modified-Since, where, order, paging
    (line items on pages only, as for invoices)."""
    collection, _, fields = CREDIT_RESOURCES[kind]
    args = Args(request.args)
    since = _modified_since()
    ids = {i.lower() for i in args.csv("IDs") or []}
    with emulator().lock:
        chosen = [
            c
            for c in books.credits(kind).values()
            if (since is None or c.updated_utc > since) and (not ids or c.credit_id in ids)
        ]
        return _listed(
            chosen,
            args,
            fields,
            collection,
            lambda c: xero_json.credit_json(c, books),
            lambda c, paged: xero_json.credit_json(c, books, line_items=paged),
            CREDIT_KEYS[kind],
        )


def _get_credit(books: TenantBooks, kind: str, key: str):
    with emulator().lock:
        credit = books.credit(kind, key)
        return _envelope(CREDIT_RESOURCES[kind][0], [xero_json.credit_json(credit, books, detail=True)])


@bp.get("/creditnotes")
@xero_call("GET /CreditNotes")
def list_credit_notes(books: TenantBooks):
    return _list_credits(books, "CreditNote")


@bp.get("/creditnotes/<key>")
@xero_call("GET /CreditNotes/{id}")
def get_credit_note(books: TenantBooks, key: str):
    return _get_credit(books, "CreditNote", key)


@bp.get("/prepayments")
@xero_call("GET /Prepayments")
def list_prepayments(books: TenantBooks):
    return _list_credits(books, "Prepayment")


@bp.get("/prepayments/<key>")
@xero_call("GET /Prepayments/{id}")
def get_prepayment(books: TenantBooks, key: str):
    return _get_credit(books, "Prepayment", key)


@bp.get("/overpayments")
@xero_call("GET /Overpayments")
def list_overpayments(books: TenantBooks):
    return _list_credits(books, "Overpayment")


@bp.get("/overpayments/<key>")
@xero_call("GET /Overpayments/{id}")
def get_overpayment(books: TenantBooks, key: str):
    return _get_credit(books, "Overpayment", key)


@bp.get("/organisation")
@xero_call("GET /Organisation")
def get_organisation(books: TenantBooks):
    return _envelope("Organisations", [xero_json.organisation_json(books.org)])


# Either scope reads the aged reports: the broad one of older apps, the granular one of apps
# created since March 2026 (XERO.md 4.3). xero-mirror asks for neither, and never calls this.
AGED_REPORT_SCOPES = {"accounting.reports.read", "accounting.reports.aged.read"}
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@bp.get("/reports/agedreceivablesbycontact")
@xero_call("GET /Reports/AgedReceivablesByContact")
def aged_receivables_by_contact(books: TenantBooks):
    """contactId (required), date (the report's: payments up to it; default the organisation's
    today), fromDate and toDate (the invoice dates listed); emulator/reports.py computes it."""
    if not AGED_REPORT_SCOPES & set(g.grant.scope.split()):
        return responses.problem(401, "Unauthorized", "AuthorizationUnsuccessful")
    args = Args(request.args)
    contact_id = (args.get("contactId") or "").strip().lower()
    if not UUID_TEXT.match(contact_id):
        raise QueryError("contactId must be a Contact's ContactID (a GUID)")
    state = emulator()
    now = state.clock.now()
    today = timezones.org_today(books.org.timezone, now)
    day = _report_date(args, "date") or today
    with state.lock:
        contact = books.contact(contact_id)
        report = reports.aged_receivables_by_contact(
            books, contact, day, _report_date(args, "fromDate"), _report_date(args, "toDate"), today, now
        )
    return _envelope("Reports", [report])


def _report_date(args: Args, name: str):
    value = (args.get(name) or "").strip()
    if not value:
        return None
    try:
        if not ISO_DATE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise QueryError(f"{name} must be a date as YYYY-MM-DD") from None


@bp.route("/<path:unknown>", methods=["GET", "PUT", "POST", "DELETE"])
def unknown_resource(unknown: str):
    g.call_label = f"{request.method} (unsupported)"
    return responses.not_found()
