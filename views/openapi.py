"""The OpenAPI 3.0 document of the CRM API, served at /api/v1/openapi.json, and the limits it states.

The routes (views/api.py) enforce exactly these limits; tests validate every answer they
get against the schemas here, so the document cannot drift from the behaviour unnoticed.
"""

from __future__ import annotations

from functools import cache

from views.aging import BUCKET_LABELS, BUCKETS, TREND_DAYS, TREND_MIN
from views.installments import KIND_LABELS
from views.installments import KINDS as INSTALLMENT_KINDS
from views.saved_views import DEFAULT_TYPE, DEFAULT_VIEW, STATUS_WORDS, TYPES, VIEWS

SAVED_VIEWS = ("unpaid", "overdue", "open", "paid", "pinned")  # the widget's tabs; `all` is no saved view

ID_MAX = 200  # a CRM record id
XERO_ID_MAX = 64  # a Xero id (contact, invoice)
LIST_MAX = 1000  # ids in one link list
Q_MAX = 255
MAX_PAGE = 100_000
MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50
KINDS = ("contacts", "accounts", "deals")
KIND_FIELDS = {
    "contacts": ("name", "email", "account_id", "match_email", "xero_contact_ids", "invoice_ids"),
    "accounts": ("name", "email", "match_email", "xero_contact_ids", "invoice_ids"),
    "deals": ("name", "xero_contact_ids", "invoice_ids"),
}
NO_NUL = "^[^\\u0000]*$"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: dict, **extra) -> dict:
    return {
        "type": "object",
        "required": list(required),
        "properties": required,
        "additionalProperties": False,
        **extra,
    }


def _text(max_len: int, nullable: bool = False) -> dict:
    schema = {"type": "string", "maxLength": max_len, "pattern": NO_NUL}
    return {**schema, "nullable": True} if nullable else schema


NULL_STR = {"type": "string", "nullable": True}
NULL_DATE = {"type": "string", "format": "date", "nullable": True}
TYPE = {"type": "string", "description": "Xero's invoice type: ACCREC (sales invoice) or ACCPAY (bill)"}
TYPE_LABEL = {"type": "string", "description": '"Sales invoice", "Bill", or Xero\'s code for any other type'}
CURRENCY = {"type": "string", "description": "ISO 4217 code"}
COUNT = {"type": "integer", "minimum": 0}

LAST_PAYMENT = _obj(
    {
        "date": {"type": "string", "format": "date"},
        "amount": _ref("Money"),
        "currency": CURRENCY,
        "count": {
            "type": "integer",
            "minimum": 1,
            "description": "Settlements of that day in that currency, added up",
        },
    },
    description=(
        "The latest payment or credit note, prepayment or overpayment allocation of the "
        "record's sales invoices (deleted payments excluded)"
    ),
)

SCHEMAS = {
    "Error": _obj({"error": {"type": "string"}}),
    "Money": {
        "type": "string",
        "pattern": "^-?[0-9]+\\.[0-9]{2,4}$",
        "description": "An exact decimal amount, at least two places; never a float",
    },
    "Invoice": _obj(
        {
            "invoice_id": {"type": "string"},
            "number": NULL_STR,
            "xero_url": {"type": "string", "description": "Opens the invoice in Xero's web app"},
            "date": NULL_DATE,
            "due_date": NULL_DATE,
            "type": TYPE,
            "type_label": TYPE_LABEL,
            "balance": _ref("Money"),
            "total": _ref("Money"),
            "currency": CURRENCY,
            "status": {
                "type": "string",
                "description": "Xero's status (DRAFT, SUBMITTED, AUTHORISED, PAID, VOIDED)",
            },
            "status_label": {"type": "string", "enum": list(STATUS_WORDS)},
            "days_overdue": {
                **COUNT,
                "description": "Days past the due date in the organisation's calendar, if unpaid; 0 when not yet due",
            },
            "amount_paid": {**_ref("Money"), "description": "Xero's AmountPaid: money received"},
            "amount_credited": {
                **_ref("Money"),
                "description": "Xero's AmountCredited: credit notes, prepayments, overpayments applied",
            },
            "pinned": {"type": "boolean"},
            "payment_count": {**COUNT, "description": "Payments against it, deleted ones excluded"},
            "allocation_count": {
                **COUNT,
                "description": "Credit notes, prepayments and overpayments applied to it",
            },
        }
    ),
    "InvoicePage": _obj(
        {
            "invoices": {"type": "array", "items": _ref("Invoice")},
            "view": {"type": "string", "enum": list(VIEWS)},
            "type": {"type": "string", "enum": list(TYPES)},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "total": {**COUNT, "description": "Invoices matching, over every page"},
            "elsewhere": {
                "type": "array",
                "nullable": True,
                "description": (
                    "With `q` only (null without): the other saved views in which invoices match the "
                    "search (same type and dates), with how many; views without a match are left out"
                ),
                "items": _obj(
                    {"view": {"type": "string", "enum": list(SAVED_VIEWS)}, "count": {**COUNT, "minimum": 1}}
                ),
            },
            "today": {
                "type": "string",
                "format": "date",
                "description": "The organisation's date the views were computed for, in its own time zone",
            },
        }
    ),
    "Amount": _obj(
        {
            "type": TYPE,
            "type_label": TYPE_LABEL,
            "currency": CURRENCY,
            "amount": _ref("Money"),
            "count": COUNT,
        }
    ),
    "Converted": _obj(
        {
            "type": TYPE,
            "type_label": TYPE_LABEL,
            "currency": {**CURRENCY, "description": "The organisation's base currency"},
            "amount": _ref("Money"),
            "count": {**COUNT, "description": "Invoices included in the converted amount"},
            "label": {
                "type": "string",
                "description": "Says the amount is converted at each invoice's own rate",
            },
            "unconverted": {
                "type": "array",
                "items": _ref("Amount"),
                "description": "Foreign-currency invoices without a usable rate, never dropped silently",
            },
        }
    ),
    "Total": _obj(
        {
            "label": {"type": "string", "description": "What the figure is, in words a sales person reads"},
            "count": COUNT,
            "by_currency": {
                "type": "array",
                "items": _ref("Amount"),
                "description": "One entry per currency (sales invoices only); never added across currencies",
            },
            "converted": {
                "type": "array",
                "items": _ref("Converted"),
                "description": "In the base currency (one entry); empty when it is unknown",
            },
            "link": {**NULL_STR, "description": "The invoice list these totals lead to, if one does"},
        }
    ),
    "AgingBucket": _obj(
        {
            "bucket": {"type": "string", "enum": list(BUCKETS)},
            "label": {"type": "string", "enum": list(BUCKET_LABELS.values())},
            "count": {**COUNT, "description": "Unpaid sales invoices in the bucket"},
            "by_currency": {
                "type": "array",
                "items": _ref("Amount"),
                "description": "AmountDue per currency; the buckets add up to unpaid exactly",
            },
            "converted": {
                "type": "array",
                "items": _ref("Converted"),
                "description": "In the base currency (one entry); empty when it is unknown",
            },
            "link": {"type": "string", "description": "The invoice list of this bucket (overdue=...)"},
        },
        description=(
            "Unpaid sales invoices by days past due: current (not yet due, or due today), "
            "1-30, 31-60, 61-90, 90+ (91 days or more)"
        ),
    ),
    "Behaviour": _obj(
        {
            "since": {
                "type": "string",
                "format": "date",
                "description": "First day of the 365 counted (they end on today)",
            },
            "settled_count": {**COUNT, "description": "PAID sales invoices whose FullyPaidOnDate is since..today"},
            "open_overdue_count": {
                **COUNT,
                "description": "Unpaid sales invoices past due, counted with their days overdue so far",
            },
            "counted": {**COUNT, "description": "settled_count + open_overdue_count"},
            "on_time_count": {**COUNT, "description": "Settled on or before the due date"},
            "on_time_share": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "nullable": True,
                "description": "on_time_count / counted (4 places); null when nothing is counted",
            },
            "median_days_late": {
                "type": "number",
                "multipleOf": 0.5,
                "nullable": True,
                "description": (
                    "Median of settlement (or today, if still open) minus due date, in days; negative "
                    "when early. An even count takes the mean of the two middle values (a whole or a "
                    "half). Null when nothing is counted"
                ),
            },
            "year_before_counted": {**COUNT, "description": "Invoices settled in the 365 days before since"},
            "year_before_median_days_late": {"type": "number", "multipleOf": 0.5, "nullable": True},
            "trend": {
                "type": "string",
                "enum": ["later", "earlier", "steady"],
                "nullable": True,
                "description": (
                    f"The median against the year before's: {TREND_DAYS} days or more later or "
                    f"earlier, else steady; null when either year counts fewer than {TREND_MIN} invoices"
                ),
            },
            "last_payment": {**LAST_PAYMENT, "nullable": True},  # inline: a $ref cannot be nullable
        },
        description="How late the customer pays, over the last 365 days (DESIGN.md)",
    ),
    "Link": _obj(
        {
            "xero_contact_id": {"type": "string"},
            "reason": {"type": "string", "enum": ["email", "explicit"]},
            "via_contact_id": {
                **NULL_STR,
                "description": "For an account: the CRM contact the link comes through",
            },
            "name": NULL_STR,
            "email": NULL_STR,
            "in_mirror": {"type": "boolean"},
            "target_found": {
                "type": "boolean",
                "description": "Whether the linked contact is in the mirror of the connected organisation",
            },
            "target_note": {**NULL_STR, "description": "Why the target was not found (null when it was)"},
            "is_customer": {"type": "boolean", "description": "Only customers have invoices listed"},
            "matched_email": {**NULL_STR, "description": "reason email: the address that matched"},
            "matched_by": {
                "type": "string",
                "enum": ["main", "contact_person"],
                "nullable": True,
                "description": "reason email: the contact's main EmailAddress or one of its ContactPersons",
            },
            "person_name": {**NULL_STR, "description": "matched_by contact_person: whose address it is"},
            "merged_from": {
                **NULL_STR,
                "description": "The contact the link named, merged in Xero into xero_contact_id",
            },
        }
    ),
    "InvoiceLink": _obj(
        {
            "invoice_id": {"type": "string"},
            "reason": {"type": "string", "enum": ["explicit"]},
            "target_found": {
                "type": "boolean",
                "description": "Whether the invoice is in the mirror of the connected organisation",
            },
            "target_note": {**NULL_STR, "description": "Why the target was not found (null when it was)"},
        }
    ),
    "Summary": _obj(
        {
            "record": _obj(
                {
                    "kind": {"type": "string", "enum": list(KINDS)},
                    "id": {"type": "string"},
                    "links": {"type": "array", "items": _ref("Link")},
                }
            ),
            "base_currency": {**NULL_STR, "description": "The organisation's base currency, when known"},
            "invoiced": {
                **_ref("Total"),
                "description": "Sum of Total; for every currency paid + credited + unpaid equals it",
            },
            "paid": {**_ref("Total"), "description": "Received: sum of AmountPaid, part payments included"},
            "credited": {
                **_ref("Total"),
                "description": "Credited: sum of AmountCredited (credit notes, prepayments, overpayments)",
            },
            "unpaid": {**_ref("Total"), "description": "Still to pay: AmountDue of AUTHORISED invoices"},
            "overdue": {**_ref("Total"), "description": "The part of unpaid due before the organisation's today"},
            "aging": {
                "type": "array",
                "items": _ref("AgingBucket"),
                "minItems": len(BUCKETS),
                "maxItems": len(BUCKETS),
                "description": f"Unpaid by days past due, always the five buckets in order: {', '.join(BUCKETS)}",
            },
            "behaviour": _ref("Behaviour"),
            "counts": _obj(
                dict.fromkeys(VIEWS, COUNT),
                description="Sales invoices in each view, as the invoice list with no type, q or dates counts them",
            ),
            "freshness": _obj(
                {
                    "last_synced_at": {"type": "string", "format": "date-time", "nullable": True},
                    "state": {"type": "string", "enum": ["fresh", "stale"]},
                    "reason": {
                        **NULL_STR,
                        "description": (
                            "Why stale, for a sales person: not synced yet, changes waiting over 5 minutes "
                            "(sync lag), or webhooks that look broken; null when fresh"
                        ),
                    },
                },
                description="Whether these figures are up to date with Xero (ops status's sync facts)",
            ),
            "last_synced_at": {"type": "string", "format": "date-time", "nullable": True},
            "today": {"type": "string", "format": "date", "description": "The organisation's date"},
            "timezone": {"type": "string", "description": "The organisation's time zone (IANA)"},
            "timezone_note": {
                **NULL_STR,
                "description": "Set when Xero's time zone could not be mapped and UTC is used",
            },
        },
        description="Over the record's AUTHORISED and PAID sales invoices (bills never count)",
    ),
    "Installment": _obj(
        {
            "number": {"type": "integer", "minimum": 1},
            "kind": {"type": "string", "enum": list(INSTALLMENT_KINDS)},
            "kind_label": {"type": "string", "enum": list(KIND_LABELS.values())},
            "payment_id": {**NULL_STR, "description": "Xero's PaymentID (kind payment only)"},
            "document_id": {
                "type": "string",
                "description": "The PaymentID, CreditNoteID, PrepaymentID or OverpaymentID",
            },
            "date": NULL_DATE,
            "amount": _ref("Money"),
            "reference": {**NULL_STR, "description": "The payment's reference or the credit note's number"},
        }
    ),
    "Payments": _obj(
        {
            "invoice_id": {"type": "string"},
            "number": NULL_STR,
            "xero_url": {"type": "string"},
            "type": TYPE,
            "type_label": TYPE_LABEL,
            "status": {"type": "string"},
            "status_label": {"type": "string", "enum": list(STATUS_WORDS)},
            "currency": CURRENCY,
            "total": _ref("Money"),
            "balance": _ref("Money"),
            "amount_paid": {**_ref("Money"), "description": "Xero's AmountPaid"},
            "amount_credited": {**_ref("Money"), "description": "Xero's AmountCredited"},
            "paid_count": {**COUNT, "description": "Payments (deleted ones excluded)"},
            "paid_amount": {**_ref("Money"), "description": "Sum of the payments listed"},
            "credited_amount": {**_ref("Money"), "description": "Sum of the allocations listed"},
            "installments": {
                "type": "array",
                "items": _ref("Installment"),
                "description": "Every settlement (payment or allocation) in date order, numbered from 1",
            },
            "today": {"type": "string", "format": "date"},
        }
    ),
    "EmbedTokenBody": _obj(
        {
            "kind": {"type": "string", "enum": list(KINDS)},
            "id": {**_text(ID_MAX), "minLength": 1, "description": "The CRM's own record id"},
        }
    ),
    "EmbedToken": _obj(
        {
            "url": {
                "type": "string",
                "description": (
                    "The widget for the record, absolute (under PUBLIC_URL, else this request's host), "
                    "token included in the fragment"
                ),
            },
            "token": {
                "type": "string",
                "pattern": "^xme_",
                "description": "A bearer for this one record: its invoices, summary, pins, payments",
            },
            "expires_at": {"type": "string", "format": "date-time"},
        }
    ),
    "PinState": _obj(
        {
            "record": _obj({"kind": {"type": "string", "enum": list(KINDS)}, "id": {"type": "string"}}),
            "invoice_id": {"type": "string"},
            "pinned": {"type": "boolean"},
        }
    ),
    "ApiKey": _obj(
        {
            "id": {"type": "integer", "minimum": 1},
            "role": {"type": "string", "enum": ["read", "admin"]},
            "prefix": {"type": "string", "description": "The key's first characters, to recognise it; never the key"},
            "created_at": {"type": "string", "format": "date-time"},
            "revoked_at": {"type": "string", "format": "date-time", "nullable": True},
        }
    ),
    "ApiKeyList": _obj({"keys": {"type": "array", "items": _ref("ApiKey"), "description": "Oldest first"}}),
    "ApiKeyBody": _obj({"role": {"type": "string", "enum": ["read", "admin"]}}),
    "IssuedApiKey": _obj(
        {
            "id": {"type": "integer", "minimum": 1},
            "role": {"type": "string", "enum": ["read", "admin"]},
            "prefix": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "revoked_at": {"type": "string", "format": "date-time", "nullable": True},
            "key": {"type": "string", "pattern": "^xm_", "description": "The key itself: shown this once only"},
        }
    ),
}

_BODY_FIELDS = {
    "name": _text(500, nullable=True),
    "email": {
        **_text(320, nullable=True),
        "description": (
            "Matched case-insensitively to Xero contacts' emails. An address: one @, a non-empty local "
            "part of at most 64 characters, a domain with a dot, no spaces (else 400, naming it)"
        ),
    },
    "account_id": {**_text(ID_MAX, nullable=True), "description": "The CRM account this contact belongs to"},
    "match_email": {
        "type": "boolean",
        "description": "Link by email; defaults to true unless xero_contact_ids is given",
    },
    "xero_contact_ids": {
        "type": "array",
        "maxItems": LIST_MAX,
        "items": {"type": "string", "minLength": 1, "maxLength": XERO_ID_MAX, "pattern": NO_NUL},
        "description": "Explicit links; given, they replace email matching (unless match_email is true)",
    },
    "invoice_ids": {
        "type": "array",
        "maxItems": LIST_MAX,
        "items": {"type": "string", "minLength": 1, "maxLength": XERO_ID_MAX, "pattern": NO_NUL},
        "description": "Single invoices linked explicitly",
    },
}
_RECORD_OUT = {
    "kind": {"type": "string", "enum": list(KINDS)},
    "id": {"type": "string"},
    "name": NULL_STR,
    "email": NULL_STR,
    "account_id": NULL_STR,
    "match_email": {"type": "boolean"},
    "xero_contact_ids": {"type": "array", "items": {"type": "string"}},
    "invoice_ids": {"type": "array", "items": {"type": "string"}},
    "links": {
        "type": "array",
        "items": _ref("Link"),
        "description": (
            "Every Xero contact the record is linked to and why; explicit links made while another "
            "organisation was connected are listed too, with target_found false"
        ),
    },
    "invoice_links": {"type": "array", "items": _ref("InvoiceLink"), "description": "The invoices linked one by one"},
}
for _kind, _fields in KIND_FIELDS.items():
    _name = _kind[:-1].capitalize()
    SCHEMAS[f"{_name}Body"] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {f: _BODY_FIELDS[f] for f in _fields},
    }
    _out = [
        f
        for f in _RECORD_OUT
        if f in ("kind", "id", "name", "xero_contact_ids", "invoice_ids", "links", "invoice_links") or f in _fields
    ]
    SCHEMAS[_name] = _obj({f: _RECORD_OUT[f] for f in _out})


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(schema: str, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _ok_etag(schema: str) -> dict:
    """A read the widget polls: a strong ETag over the body."""
    etag = {"description": "Strong, over the body; send it back as If-None-Match", "schema": {"type": "string"}}
    return {**_ok(schema), "headers": {"ETag": etag}}


NOT_MODIFIED = {"description": "Not modified: If-None-Match named the current ETag; no body"}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of the answer held: 304 with no body while it is still the answer",
    "schema": {"type": "string"},
}


E400 = _error(
    "Bad input: a date (or from later than to), view, overdue bucket, paging value or body field (a malformed email)"
)
E401 = _error("No valid API key")
E403 = _error("A read key cannot create or change records")
E404 = _error("No such record or invoice in this workspace")
E409 = _error("Explicit links need a live Xero connection")
E503 = _error("Embed tokens are disabled: the server has no SECRET_KEY")
E403_KEYS = _error("Managing API keys needs an admin key")
E404_KEY = _error("No such API key in this workspace (another workspace's keys are never found)")
E409_KEY = _error("The key is already revoked, or is the key making the request")
E413 = _error("The body is too large")
KEY_ID_MAX = 999_999_999

RECORD_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The CRM's own record id",
    "schema": {"type": "string", "minLength": 1, "maxLength": ID_MAX},
}
INVOICE_ID = {
    "name": "invoice_id",
    "in": "path",
    "required": True,
    "description": "Xero's InvoiceID",
    "schema": {"type": "string", "minLength": 1, "maxLength": XERO_ID_MAX},
}
LIST_PARAMS = [
    {
        "name": "view",
        "in": "query",
        "description": f"Saved view; {DEFAULT_VIEW} when absent",
        "schema": {"type": "string", "enum": list(VIEWS)},
    },
    {
        "name": "type",
        "in": "query",
        "description": f"sales invoices, bills or all; {DEFAULT_TYPE} when absent (a bill is not the customer's debt)",
        "schema": {"type": "string", "enum": list(TYPES)},
    },
    {
        "name": "q",
        "in": "query",
        "description": "Invoice number: prefix or any part, case-insensitive",
        "schema": _text(Q_MAX),
    },
    {
        "name": "from",
        "in": "query",
        "description": "Earliest invoice date, inclusive; later than `to` is 400",
        "schema": {"type": "string", "format": "date"},
    },
    {
        "name": "to",
        "in": "query",
        "description": "Latest invoice date, inclusive",
        "schema": {"type": "string", "format": "date"},
    },
    {
        "name": "overdue",
        "in": "query",
        "description": (
            "One ageing bucket of unpaid invoices by days past due: current (not yet due, or due "
            "today), 1-30, 31-60, 61-90, 90+ (91 days or more)"
        ),
        "schema": {"type": "string", "enum": list(BUCKETS)},
    },
    {
        "name": "page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
    },
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": DEFAULT_PER_PAGE},
    },
]


def _kind_paths(kind: str) -> dict:
    name = kind[:-1]
    model = name.capitalize()
    base = f"/api/v1/{kind}/{{id}}"
    pin_ops = {
        "parameters": [RECORD_ID, INVOICE_ID],
        "put": {
            "operationId": f"pin_{name}_invoice",
            "summary": f"Pin an invoice to the {name} (idempotent)",
            "responses": {"200": _ok("PinState"), "401": E401, "404": E404},
        },
        "delete": {
            "operationId": f"unpin_{name}_invoice",
            "summary": "Unpin an invoice (idempotent)",
            "responses": {"200": _ok("PinState"), "401": E401, "404": E404},
        },
    }
    return {
        base: {
            "parameters": [RECORD_ID],
            "get": {
                "operationId": f"get_{name}",
                "summary": f"The {name} as stored, with its links and why each exists (what PUT answers)",
                "description": "Any key of the workspace, or an embed token for this record.",
                "responses": {"200": _ok(model), "401": E401, "404": E404},
            },
            "put": {
                "operationId": f"put_{name}",
                "summary": f"Create or replace a {name} and its links to Xero (admin key)",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref(f"{model}Body")}},
                },
                "responses": {
                    "200": _ok(model, f"The {name} as stored, with its resolved links"),
                    "400": E400,
                    "401": E401,
                    "403": E403,
                    "409": E409,
                },
            },
        },
        f"{base}/invoices": {
            "parameters": [RECORD_ID],
            "get": {
                "operationId": f"list_{name}_invoices",
                "summary": f"The {name}'s invoices, newest invoice date first, then number",
                "parameters": [*LIST_PARAMS, IF_NONE_MATCH],
                "responses": {
                    "200": _ok_etag("InvoicePage"),
                    "304": NOT_MODIFIED,
                    "400": E400,
                    "401": E401,
                    "404": E404,
                },
            },
        },
        f"{base}/summary": {
            "parameters": [RECORD_ID],
            "get": {
                "operationId": f"{name}_summary",
                "summary": "Received, credited, still to pay and overdue, per currency (sales invoices)",
                "parameters": [IF_NONE_MATCH],
                "responses": {"200": _ok_etag("Summary"), "304": NOT_MODIFIED, "401": E401, "404": E404},
            },
        },
        f"{base}/pins/{{invoice_id}}": pin_ops,
    }


def _key_paths() -> dict:
    admin_only = "Admin key only; the caller's workspace only."
    return {
        "/api/v1/keys": {
            "get": {
                "operationId": "list_api_keys",
                "summary": "The workspace's API keys, revoked ones included (never the keys themselves)",
                "description": admin_only,
                "responses": {"200": _ok("ApiKeyList"), "401": E401, "403": E403_KEYS},
            },
            "post": {
                "operationId": "issue_api_key",
                "summary": "Issue a new API key; the answer holds it, once",
                "description": admin_only,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ApiKeyBody")}},
                },
                "responses": {
                    "201": _ok("IssuedApiKey", "Issued"),
                    "400": E400,
                    "401": E401,
                    "403": E403_KEYS,
                    "413": E413,
                },
            },
        },
        "/api/v1/keys/{key_id}": {
            "parameters": [
                {
                    "name": "key_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": KEY_ID_MAX},
                }
            ],
            "delete": {
                "operationId": "revoke_api_key",
                "summary": "Revoke a key now, with every embed token and admin session it issued",
                "description": admin_only + " A key cannot revoke itself (409): use another admin key.",
                "responses": {"200": _ok("ApiKey"), "401": E401, "403": E403_KEYS, "404": E404_KEY, "409": E409_KEY},
            },
        },
    }


@cache
def document() -> dict:
    paths = {}
    for kind in KINDS:
        paths.update(_kind_paths(kind))
    paths["/api/v1/invoices/{invoice_id}/payments"] = {
        "parameters": [INVOICE_ID],
        "get": {
            "operationId": "invoice_payments",
            "summary": "The invoice's installments, in date order",
            "parameters": [IF_NONE_MATCH],
            "responses": {"200": _ok_etag("Payments"), "304": NOT_MODIFIED, "401": E401, "404": E404},
        },
    }
    paths["/api/v1/embed-tokens"] = {
        "post": {
            "operationId": "issue_embed_token",
            "summary": "A signed, one-hour token and widget URL for one record (workspace key only)",
            "description": (
                "For the CRM's server: put `url` in an iframe on the record's page. The widget "
                "sends `token` as its bearer; it reads and pins for that record only (404 for any "
                "other record, 403 on a record PUT) and cannot ask for another token."
            ),
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("EmbedTokenBody")}},
            },
            "responses": {
                "200": _ok("EmbedToken"),
                "400": E400,
                "401": E401,
                "404": E404,
                "503": E503,
            },
        },
    }
    paths.update(_key_paths())
    paths["/api/v1/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.0",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "xero-mirror CRM API",
            "version": "1.0.0",
            "description": "Xero invoices, totals and installments for CRM records, served from the mirror.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "A workspace API key (read or admin scope), or an embed token "
                        "(POST /api/v1/embed-tokens) for one record's widget"
                    ),
                }
            },
            "schemas": SCHEMAS,
        },
    }
