"""The CRM JSON API of DESIGN.md: records, their invoices and totals, installments and pins.

Keys: `Authorization: Bearer <workspace API key>`; every query is scoped to that key's
workspace (CRM rows by workspace id, mirror rows by the tenant of its live connection).
Scopes: a read key may GET everything and pin or unpin (a pin is a sales person's
bookmark: it changes what the widget shows first, never which data a record can reach).
PUT of a record needs an admin key, because its links decide whose billing the record
reveals; a read key gets 403 there. `GET /api/v1/openapi.json` needs no key.

Today: the API's "today" is the organisation's date: the date, at the moment of the request,
in the connected Xero organisation's own time zone (Organisation.Timezone, mapped to IANA by
xero.timezones; UTC when Xero's id cannot be mapped, and the answer says so). Every answer
carries the `today` it used.

Embed tokens (views/widget.py): `POST /api/v1/embed-tokens` with a workspace key returns a
signed, hour-long token for one record, which the widget's iframe sends as its bearer. It
reads that record (GET, with its links, as the summary shows them), its invoices, summary
and pins (and the payments of invoices the record sees), and pins only invoices the record
already sees; anything else is 404, a record PUT 403, and asking for another token with one
401. The token's `url` is absolute: PUBLIC_URL's, else this request's host.

Records: `GET /api/v1/{kind}/{id}` answers what a PUT answers: the record as stored and
every link, why it exists (`reason`) and whether its target is in the mirror of the
connected organisation (`target_found`, `target_note`). Explicit links made while another
organisation was connected (a Remove keeps them) are listed, not found, until that
organisation is connected again.

Pins: an admin key pins any invoice of the workspace's organisation; a read key or an embed
token only an invoice the record already shows (what its invoice list would contain), so a
pin never widens what a record reaches. Pinning or unpinning anything else is 404, whether the
invoice exists or not (an unpin of the record's own pin always succeeds).

Bodies: at most 64 KB (413 beyond, before the key is even read) of JSON nested at most
MAX_DEPTH deep; malformed or deeper JSON is 400, never a 500.

Errors are JSON `{"error": "..."}`: 400 bad date (or `from` after `to`), view, paging or
body (a malformed email included, named); 401 no valid key;
403 a read key on a record PUT; 404 an unknown record or an invoice that is not in the
caller's reach (never 403, so the existence of another workspace's data is not leaked);
409 explicit links while the workspace has no live Xero connection; 413 a body over 64 KB.
Money is a string (exact decimal, at least two places), never a float.

Conditional reads: the invoice list, the summary and the payments carry a strong ETag over
their body (`Cache-Control: private, no-cache`); `If-None-Match` with it answers 304 with no
body, which the widget's polling relies on. The bodies hold no clock reading but `today`, so
they change only with the mirror, the record's links or the organisation's date.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from infra.errors import InputError
from store import records
from store.db import transaction
from store.workspaces import Caller, authenticate
from views import aging, deeplinks, freshness, installments, queries, saved_views, totals, widget
from views.openapi import (
    DEFAULT_PER_PAGE,
    ID_MAX,
    KIND_FIELDS,
    LIST_MAX,
    MAX_PAGE,
    MAX_PER_PAGE,
    Q_MAX,
    SAVED_VIEWS,
    XERO_ID_MAX,
    document,
)
from xero import timezones

bp = Blueprint("api", __name__, url_prefix="/api/v1")

KIND = "<any(contacts, accounts, deals):kind>"
CONDITIONAL = ("api.list_invoices", "api.summary", "api.payments")  # the widget's polls: ETag, 304
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DIGITS = re.compile(r"[0-9]{1,9}")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
BODY_MAX = 64 * 1024  # bytes: a record PUT at LIST_MAX ids of XERO_ID_MAX characters fits
MAX_DEPTH = 32  # nesting of arrays and objects in a body (ours are two deep)


class ApiError(InputError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@bp.errorhandler(ApiError)
def api_error(e: ApiError):
    response = jsonify(error=e.message)
    response.status_code = e.status
    if e.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="xero-mirror"'
    return response


@bp.errorhandler(HTTPException)
def http_error(e: HTTPException):
    response = jsonify(error=e.description or e.name)
    response.status_code = e.code or 500
    return response


@bp.before_request
def _limit_body():
    """A body over BODY_MAX is refused before anything reads it (413). A chunked one (no
    Content-Length) is read no further than one byte past BODY_MAX: `_json_body` says 413."""
    request.max_content_length = BODY_MAX + 1
    if (request.content_length or 0) > BODY_MAX:
        raise ApiError(413, f"the body is over {BODY_MAX // 1024} KB")


@bp.after_request
def _conditional(response):
    """A strong ETag over the body of the reads the widget polls; `If-None-Match` with it
    answers 304 and no body. The bodies hold no clock but the organisation's date."""
    if request.endpoint in CONDITIONAL and request.method in ("GET", "HEAD") and response.status_code == 200:
        response.headers["Cache-Control"] = "private, no-cache"
        response.vary.add("Authorization")
        response.add_etag()
        response.make_conditional(request)
    return response


# --- routes ----------------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi():
    return jsonify(document())


@bp.get(f"/{KIND}/<external_id>")
def get_record(kind: str, external_id: str):
    """The record as stored, with its links and why each exists (what a PUT answers)."""
    with _session() as s:
        caller = _caller(s)
        record = _record(s, caller, kind, external_id)
        body = _record_json(s, kind, record, queries.live_tenant(s, caller.workspace_id))
    return jsonify(body)


@bp.put(f"/{KIND}/<external_id>")
def put_record(kind: str, external_id: str):
    with _session(write=True) as s:
        caller = _caller(s, admin=True)
        data = _record_body(kind)
        if len(external_id) > ID_MAX or not _clean(external_id):
            raise ApiError(400, f"a record id is 1 to {ID_MAX} characters")
        tenant = queries.live_tenant(s, caller.workspace_id)
        try:
            record = records.upsert(
                s,
                caller.workspace_id,
                records.KINDS[kind],
                external_id,
                data,
                tenant.tenant_id if tenant else None,
                _now(),
            )
        except records.NotConnected as e:
            raise ApiError(409, str(e)) from None
        body = _record_json(s, kind, record, tenant)
    return jsonify(body)


@bp.get(f"/{KIND}/<external_id>/invoices")
def list_invoices(kind: str, external_id: str):
    with _session() as s:
        caller = _caller(s)
        filters = queries.Filters(
            view=_view(),
            type=_type(),
            q=_text_arg("q", Q_MAX),
            date_from=_date_arg("from"),
            date_to=_date_arg("to"),
            overdue=_overdue(),
        )
        if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
            raise ApiError(400, f"from ({filters.date_from}) is later than to ({filters.date_to}): "
                                "no invoice date can be both")
        page = _int_arg("page", 1, MAX_PAGE)
        per_page = _int_arg("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
        record = _record(s, caller, kind, external_id)
        tenant = queries.live_tenant(s, caller.workspace_id)
        today = _today(tenant)
        elsewhere: list[dict] | None = None
        if tenant is None:
            result = queries.Page([], 0, page, per_page)
            elsewhere = [] if filters.q else None
        else:
            scope = records.resolve(s, record, tenant.tenant_id).scope
            result = queries.list_invoices(s, scope, filters, today, page, per_page)
            if filters.q:  # where else the number is: "INV-0042 is under Paid"
                counted = queries.view_counts(s, scope, filters, today)
                elsewhere = [
                    {"view": view, "count": counted[view]}
                    for view in SAVED_VIEWS
                    if view != filters.view and counted[view]
                ]
    short_code = tenant.short_code if tenant else None
    return jsonify(
        invoices=[_invoice_json(row, today, short_code) for row in result.rows],
        view=filters.view,
        type=filters.type,
        page=result.page,
        per_page=result.per_page,
        total=result.total,
        elsewhere=elsewhere,
        today=today.isoformat(),
    )


@bp.get(f"/{KIND}/<external_id>/summary")
def summary(kind: str, external_id: str):
    with _session() as s:
        caller = _caller(s)
        record = _record(s, caller, kind, external_id)
        tenant = queries.live_tenant(s, caller.workspace_id)
        today = _today(tenant)
        lines: list[totals.Line] = []
        links: tuple[records.Link, ...] = ()
        counts = dict.fromkeys(saved_views.VIEWS, 0)
        fresh = freshness.Freshness(None, "stale", "No Xero organisation is connected.")
        behaviour = aging.behaviour((), (), today)
        if tenant is not None:
            resolved = records.resolve(s, record, tenant.tenant_id)
            facts = queries.summary_facts(s, resolved.scope, today)
            lines = facts.lines
            behaviour = aging.behaviour(facts.lateness, queries.last_settlements(s, resolved.scope, today), today)
            links = resolved.links
            counts = queries.view_counts_of(s, resolved.scope, facts.parts)
            fresh = freshness.of(current_app.extensions["xm"], s, tenant.tenant_id, _now())
    result = totals.summarise(lines, tenant.base_currency if tenant else None)

    def block(name: str, view: str | None) -> dict:
        total = result.block(name)
        return {
            "label": total.label,
            "count": total.count,
            "by_currency": [_amount_json(a) for a in total.by_currency],
            "converted": [_converted_json(c) for c in total.converted],
            "link": url_for(".list_invoices", kind=kind, external_id=external_id, view=view) if view else None,
        }

    zone = _zone(tenant)
    return jsonify(
        record={"kind": kind, "id": external_id, "links": [_link_json(link) for link in links]},
        base_currency=result.base_currency,
        invoiced=block("invoiced", "all"),
        paid=block("paid", "paid"),
        credited=block("credited", None),
        unpaid=block("unpaid", "unpaid"),
        overdue=block("overdue", "overdue"),
        aging=_aging_json(aging.aging(lines, result.base_currency), kind, external_id),
        behaviour=_behaviour_json(behaviour),
        counts=counts,
        freshness={"last_synced_at": _iso(fresh.last_synced_at), "state": fresh.state, "reason": fresh.reason},
        last_synced_at=_iso(fresh.last_synced_at),
        today=today.isoformat(),
        timezone=zone.iana,
        timezone_note=None if zone.mapped else _unmapped(zone),
    )


@bp.get("/invoices/<invoice_id>/payments")
def payments(invoice_id: str):
    with _session() as s:
        caller = _caller(s)
        tenant = queries.live_tenant(s, caller.workspace_id)
        today = _today(tenant)
        found = (
            queries.invoice_with_payments(s, tenant.tenant_id, invoice_id)
            if tenant and _clean(invoice_id) and _embed_sees(s, caller, tenant.tenant_id, invoice_id)
            else None
        )
    if found is None or tenant is None:  # no live tenant finds nothing
        raise ApiError(404, "no such invoice")
    invoice, rows, allocated = found
    plan = installments.installments(rows, allocated)
    return jsonify(
        invoice_id=invoice.invoice_id,
        number=invoice.invoice_number,
        xero_url=deeplinks.invoice_url(invoice.invoice_id, invoice.type, tenant.short_code),
        type=invoice.type,
        type_label=saved_views.type_label(invoice.type),
        status=invoice.status,
        status_label=saved_views.status_word(invoice, today),
        currency=invoice.currency_code,
        total=_money(invoice.total),
        balance=_money(invoice.amount_due),
        amount_paid=_money(invoice.amount_paid),
        amount_credited=_money(invoice.amount_credited),
        paid_count=plan.paid_count,
        paid_amount=_money(plan.paid_amount),
        credited_amount=_money(plan.credited_amount),
        installments=[
            {
                "number": i.number,
                "kind": i.kind,
                "kind_label": i.kind_label,
                "payment_id": i.id if i.kind == "payment" else None,
                "document_id": i.id,
                "date": _iso(i.date),
                "amount": _money(i.amount),
                "reference": i.reference,
            }
            for i in plan.items
        ],
        today=today.isoformat(),
    )


@bp.put(f"/{KIND}/<external_id>/pins/<invoice_id>")
def pin(kind: str, external_id: str, invoice_id: str):
    with _session(write=True) as s:
        caller = _caller(s)
        record = _record(s, caller, kind, external_id)
        tenant = queries.live_tenant(s, caller.workspace_id)
        if (
            tenant is None
            or not _clean(invoice_id)
            or not records.pin(s, record, tenant.tenant_id, invoice_id, _now(), anywhere=caller.is_admin)
        ):
            raise ApiError(404, "no such invoice")
    return jsonify(record={"kind": kind, "id": external_id}, invoice_id=invoice_id, pinned=True)


@bp.delete(f"/{KIND}/<external_id>/pins/<invoice_id>")
def unpin(kind: str, external_id: str, invoice_id: str):
    with _session(write=True) as s:
        caller = _caller(s)
        record = _record(s, caller, kind, external_id)
        tenant = queries.live_tenant(s, caller.workspace_id)
        if not _clean(invoice_id) or not records.unpin(
            s, record, tenant.tenant_id if tenant else None, invoice_id, anywhere=caller.is_admin
        ):
            raise ApiError(404, "no such invoice")
    return jsonify(record={"kind": kind, "id": external_id}, invoice_id=invoice_id, pinned=False)


@bp.route("/<path:anything>", methods=list(METHODS))
def elsewhere(anything: str):
    """Anything else under /api/v1 answers in JSON too: 405 (with Allow) for a path that
    exists under other methods, else 404 (an id holding a slash lands here, for one)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = set()
    for method in METHODS:
        try:
            rule, _ = adapter.match(method=method, return_rule=True)
        except HTTPException:
            continue
        if rule.endpoint != request.endpoint:
            allowed.add(method)
    if not allowed:
        raise ApiError(404, "no such resource")
    response = jsonify(error=f"{request.method} is not allowed here")
    response.status_code = 405
    response.headers["Allow"] = ", ".join(sorted(allowed | ({"HEAD"} if "GET" in allowed else set())))
    return response


# --- embed tokens: the widget's bearer (views/widget.py) ------------------------------------


@bp.post("/embed-tokens")
def issue_embed_token():
    """A token and widget URL for one record, for the CRM's server to put in an iframe."""
    with _session() as s:
        caller = _caller(s, key_only=True)
        kind, external_id = _embed_body()
        _record(s, caller, kind, external_id)
        _, _, key = request.headers["Authorization"].partition(" ")
        try:
            issued = widget.issue(s, _secret(), key.strip(), caller, kind, external_id, _now())
        except widget.EmbedDisabled as e:
            raise ApiError(503, str(e)) from None
    return jsonify(url=_absolute(issued.url), token=issued.token, expires_at=_iso(issued.expires_at))


def _absolute(path: str) -> str:
    """A URL of ours as the CRM's server hands it on: under PUBLIC_URL, else this request's host."""
    public = current_app.extensions["xm"].settings.public_url
    return (public or request.host_url.rstrip("/")) + path


def _embed_caller(s: Session, token: str, key_only: bool) -> Caller:
    if key_only:
        raise ApiError(401, "this needs a workspace API key; an embed token cannot do it")
    try:
        return widget.read(s, _secret(), token, _now())
    except (widget.BadEmbedToken, widget.EmbedDisabled) as e:
        raise ApiError(401, str(e)) from None


def _embed_sees(s: Session, caller: Caller, tenant_id: str, invoice_id: str) -> bool:
    """Any key sees the whole organisation; an embed token only what its record sees."""
    if not isinstance(caller, widget.EmbedCaller):
        return True
    return widget.sees_invoice(s, caller, tenant_id, invoice_id)


def _embed_body() -> tuple[str, str]:
    body = _json_body()
    if not isinstance(body, dict) or set(body) != {"kind", "id"}:
        raise ApiError(400, 'the body must be {"kind": "contacts|accounts|deals", "id": "<record id>"}')
    kind, external_id = body["kind"], body["id"]
    if kind not in records.KINDS:
        raise ApiError(400, "kind must be contacts, accounts or deals")
    if not isinstance(external_id, str) or not 1 <= len(external_id) <= ID_MAX or not _clean(external_id):
        raise ApiError(400, f"a record id is 1 to {ID_MAX} characters")
    return kind, external_id


def _secret() -> str:
    return current_app.extensions["xm"].settings.secret_key


# --- request plumbing ------------------------------------------------------------------


@contextmanager
def _session(write: bool = False) -> Iterator[Session]:
    rt = current_app.extensions["xm"]
    if write:
        with transaction(rt.sessions) as s:
            yield s
    else:
        # a read ends in COMMIT when it succeeds, not ROLLBACK: psycopg forgets a connection's
        # prepared statements at every ROLLBACK, so reads that roll back are parsed and planned
        # afresh each time. Read sessions cannot write (Runtime.read_engine).
        with transaction(rt.read_sessions) as s:
            yield s


def _json_body(empty: Any = None) -> Any:
    """The request's body as JSON (`empty` when there is none); None when it is not JSON, or
    is nested deeper than MAX_DEPTH (never a RecursionError: that was a 500)."""
    raw = request.get_data()
    if len(raw) > BODY_MAX:
        raise ApiError(413, f"the body is over {BODY_MAX // 1024} KB")
    if not raw.strip():
        return empty
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return body if _depth(body) <= MAX_DEPTH else None


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in `value` (a scalar: 0), without recursing."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:  # deeper is refused whatever lies below
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _caller(s: Session, *, admin: bool = False, key_only: bool = False) -> Caller:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and widget.is_embed_token(key.strip()):
        caller: Caller | None = _embed_caller(s, key.strip(), key_only)
    else:
        caller = authenticate(s, key.strip()) if scheme.lower() == "bearer" else None
    if caller is None:
        raise ApiError(401, "a valid API key is required: Authorization: Bearer <key>")
    if admin and not caller.is_admin:
        raise ApiError(403, "creating or changing a record needs an admin API key")
    return caller


def _record(s: Session, caller: Caller, kind: str, external_id: str) -> records.Record:
    record = None
    if isinstance(caller, widget.EmbedCaller) and not caller.sees_record(kind, external_id):
        pass  # an embed token reaches its own record only
    elif len(external_id) <= ID_MAX and _clean(external_id):
        record = records.find(s, caller.workspace_id, records.KINDS[kind], external_id)
    if record is None:
        raise ApiError(404, f"no such {records.KINDS[kind]}")
    return record


def _zone(tenant: queries.Tenant | None) -> timezones.OrgZone:
    return timezones.zone_for(tenant.timezone if tenant else None)


def _today(tenant: queries.Tenant | None) -> date:
    """The organisation's date now (UTC's when no organisation is connected)."""
    return timezones.org_today(_zone(tenant), _now())


def _unmapped(zone: timezones.OrgZone) -> str:
    if zone.xero:
        return f"Xero's time zone {zone.xero!r} is unknown here: dates are read in UTC"
    return "the organisation's time zone is not known yet: dates are read in UTC"


def _now() -> datetime:
    return datetime.now(UTC)


def _clean(text: str) -> bool:
    """Text every database can store and compare: no NUL, no lone surrogates."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _type() -> str:
    try:
        return saved_views.parse_type(request.args.get("type"))
    except saved_views.UnknownType as e:
        raise ApiError(400, str(e)) from None


def _view() -> str:
    try:
        return saved_views.parse_view(request.args.get("view"))
    except saved_views.UnknownView as e:
        raise ApiError(400, str(e)) from None


def _overdue() -> str | None:
    try:
        return aging.parse_bucket(request.args.get("overdue"))
    except aging.UnknownBucket as e:
        raise ApiError(400, str(e)) from None


def _text_arg(name: str, max_len: int) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_len or not _clean(value):
        raise ApiError(400, f"{name} is at most {max_len} characters of text")
    return value


def _date_arg(name: str) -> date | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    try:
        if not DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{name} must be a date as YYYY-MM-DD") from None


def _int_arg(name: str, default: int, maximum: int) -> int:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if not DIGITS.fullmatch(value) or not 1 <= int(value) <= maximum:
        raise ApiError(400, f"{name} must be a whole number from 1 to {maximum}")
    return int(value)


def _record_body(kind: str) -> records.RecordInput:
    """The PUT body, checked field by field against what this kind of record may say."""
    body = _json_body({})
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    allowed = KIND_FIELDS[kind]
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, f"{kind} take only {', '.join(allowed)}; not {', '.join(unknown)}")
    fields = {}
    for name, value in body.items():
        fields[name] = _field(name, value)
    if "xero_contact_ids" in fields:
        fields["xero_contact_ids"] = tuple(fields["xero_contact_ids"])
    if "invoice_ids" in fields:
        fields["invoice_ids"] = tuple(fields["invoice_ids"])
    return records.RecordInput(**fields)


def _field(name: str, value):
    limits = {"name": 500, "email": 320, "account_id": ID_MAX}
    if name in limits:
        if value is None:
            return None
        # an email is kept lower-cased, and lower-casing can lengthen text ("İ" -> "i̇")
        stored = records.normalise_email(value) if name == "email" and isinstance(value, str) else value
        if not isinstance(value, str) or len(stored or "") > limits[name] or not _clean(value):
            raise ApiError(400, f"{name} must be text of at most {limits[name]} characters, or null")
        wrong = _email_problem(value) if name == "email" and value.strip() else None
        if wrong:
            shown = value if len(value) <= 80 else value[:77] + "..."
            raise ApiError(400, f"email {json.dumps(shown)} is not an email address: {wrong}")
        return value or None
    if name == "match_email":
        if not isinstance(value, bool):
            raise ApiError(400, "match_email must be true or false")
        return value
    # xero_contact_ids, invoice_ids
    if (
        not isinstance(value, list)
        or len(value) > LIST_MAX
        or not all(isinstance(v, str) and 1 <= len(v) <= XERO_ID_MAX and _clean(v) for v in value)
    ):
        raise ApiError(
            400, f"{name} must be a list of at most {LIST_MAX} ids of 1 to {XERO_ID_MAX} characters"
        )
    return value


EMAIL_FORBIDDEN = set('"(),:;<>[\\]')  # outside a quoted local part, which no CRM sends


def _email_problem(value: str) -> str | None:
    """Why `value` is not a practical email address (None: it is one). One @, a local part of
    1 to 64 characters, a domain of at most 253 with a dot, no empty label and labels of at most
    63, no spaces or control characters; surrounding spaces are trimmed (as when matching)."""
    email = value.strip()
    if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in email):
        return "it holds a space or a control character"
    if email.count("@") != 1:
        return "it must hold exactly one @"
    local, domain = email.split("@")
    if not local:
        return "nothing comes before the @"
    if len(local) > 64:
        return "the part before the @ is over 64 characters"
    if EMAIL_FORBIDDEN & set(email):
        return 'it holds one of " ( ) , : ; < > [ \\ ]'
    if "." not in domain:
        return "the domain after the @ has no dot"
    if len(domain) > 253:
        return "the domain is over 253 characters"
    if any(not label or len(label) > 63 for label in domain.split(".")):
        return "the domain has an empty label (a dot at either end, or two dots together) or one over 63 characters"
    return None


# --- JSON shapes (views/openapi.py describes each) --------------------------------------


def _money(value: Decimal) -> str:
    """Exact, with at least two decimal places: 12.5000 -> "12.50", 0.1234 -> "0.1234"."""
    cents = value.quantize(Decimal("0.01"))
    return str(cents if cents == value else value.normalize())


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _invoice_json(row: queries.InvoiceRow, today: date, short_code: str | None) -> dict:
    return {
        "invoice_id": row.invoice_id,
        "number": row.invoice_number,
        "xero_url": deeplinks.invoice_url(row.invoice_id, row.type, short_code),
        "date": _iso(row.date),
        "due_date": _iso(row.due_date),
        "type": row.type,
        "type_label": saved_views.type_label(row.type),
        "balance": _money(row.amount_due),
        "total": _money(row.total),
        "amount_paid": _money(row.amount_paid),
        "amount_credited": _money(row.amount_credited),
        "currency": row.currency_code,
        "status": row.status,
        "status_label": saved_views.status_word(row, today),
        "days_overdue": aging.days_overdue(row, today),
        "pinned": row.pinned,
        "payment_count": row.payment_count,
        "allocation_count": row.allocation_count,
    }


def _amount_json(a: totals.Amount) -> dict:
    return {
        "type": a.type,
        "type_label": saved_views.type_label(a.type),
        "currency": a.currency,
        "amount": _money(a.amount),
        "count": a.count,
    }


def _converted_json(c: totals.Converted) -> dict:
    return {
        "type": c.type,
        "type_label": saved_views.type_label(c.type),
        "currency": c.currency,
        "amount": _money(c.amount),
        "count": c.count,
        "label": f"Converted to {c.currency} at each invoice's own currency rate",
        "unconverted": [_amount_json(a) for a in c.unconverted],
    }


def _aging_json(buckets: tuple[aging.Bucket, ...], kind: str, external_id: str) -> list[dict]:
    return [
        {
            "bucket": b.name,
            "label": b.label,
            "count": b.total.count,
            "by_currency": [_amount_json(a) for a in b.total.by_currency],
            "converted": [_converted_json(c) for c in b.total.converted],
            "link": url_for(".list_invoices", kind=kind, external_id=external_id, overdue=b.name),
        }
        for b in buckets
    ]


def _behaviour_json(b: aging.Behaviour) -> dict:
    last = b.last_payment
    return {
        "since": b.since.isoformat(),
        "settled_count": b.settled_count,
        "open_overdue_count": b.open_overdue_count,
        "counted": b.counted,
        "on_time_count": b.on_time_count,
        "on_time_share": _number(b.on_time_share),
        "median_days_late": _number(b.median_days_late),
        "year_before_counted": b.year_before_counted,
        "year_before_median_days_late": _number(b.year_before_median_days_late),
        "trend": b.trend,
        "last_payment": None
        if last is None
        else {"date": last.date.isoformat(), "amount": _money(last.amount), "currency": last.currency,
              "count": last.count},
    }


def _number(value: Decimal | None) -> int | float | None:
    """A count of days (whole, or a half) or a share (4 places) as a JSON number; not money."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


NOT_CONNECTED = "no Xero organisation is connected"
OTHER_ORGANISATION = "linked while another Xero organisation was connected: not in this one's mirror"
NOT_MIRRORED = "not in the mirror: unknown to this organisation, deleted in Xero, or not synced yet"


def _link_json(link: records.Link) -> dict:
    found = link.is_customer is not None
    return {
        "xero_contact_id": link.xero_contact_id,
        "target_found": found,
        "target_note": None if found else NOT_MIRRORED,
        "reason": link.reason,
        "via_contact_id": link.via_contact_id,
        "name": link.name,
        "email": link.email,
        "in_mirror": link.is_customer is not None,
        "is_customer": bool(link.is_customer),
        "matched_email": link.matched_email,
        "matched_by": link.matched_by,
        "person_name": link.person_name,
        "merged_from": link.merged_from,
    }


def _record_json(s: Session, kind: str, record: records.Record, tenant: queries.Tenant | None) -> dict:
    own = records.stored(s, record)
    live = tenant.tenant_id if tenant else None
    links = records.resolve(s, record, live).links if live else ()
    explicit = records.explicit_links(s, record, live)
    away = NOT_CONNECTED if live is None else OTHER_ORGANISATION
    body: dict[str, Any] = {
        "kind": kind,
        "id": record.external_id,
        "name": record.name,
        "xero_contact_ids": list(own.xero_contact_ids),
        "invoice_ids": list(own.invoice_ids),
        "links": [_link_json(link) for link in links] + [
            _link_json(records.Link(e.xero_contact_id, "explicit", None, None, None, None)) | {"target_note": away}
            for e in explicit if e.xero_contact_id and e.tenant_id != live
        ],
        "invoice_links": [
            {"invoice_id": e.invoice_id, "reason": "explicit", "target_found": e.found,
             "target_note": None if e.found else NOT_MIRRORED if e.tenant_id == live else away}
            for e in explicit if e.invoice_id
        ],
    }
    if kind != "deals":
        body["email"] = record.email
        body["match_email"] = own.match_email
    if kind == "contacts":
        body["account_id"] = record.account_id
    return body
