"""The read side's SQL: a workspace's live tenant, a record's invoices page by page, its totals, installments.

Every query is scoped twice: CRM rows by workspace_id, mirror rows by the tenant_id of the
workspace's live connection. A page of invoices is one statement (the payment count is a
correlated subquery on ix_payments_invoice, the total row count an uncorrelated subquery run
once), after the small lookups that resolve the record's scope (store.records.scope): no N+1.
Not a window function for the count: it would make the page read, and fetch the payment
count of, every matching row before the LIMIT; this way, on ix_invoices_contact_status, the
page stops after per_page rows and the count reads the index alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    String,
    and_,
    bindparam,
    case,
    false,
    func,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.expression import FunctionElement

from store.models import Allocation, Invoice, Payment, XeroConnection
from store.records import Scope
from store.types import Money, Rate
from views import aging, saved_views, totals
from views.aging import Lateness, Settlement
from views.totals import Line

# Written out, not a bound parameter, so that both databases see it implies the partial index
# ix_invoices_contact_paid's condition (a parameter's value is not known when a plan is made).
PAID = Invoice.status == literal_column("'PAID'")


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    short_code: str | None
    base_currency: str | None
    timezone: str | None = None  # Organisation.Timezone as Xero names it (xero.timezones maps it)


@dataclass(frozen=True)
class InvoiceRow:
    invoice_id: str
    invoice_number: str | None
    type: str
    status: str
    contact_id: str | None
    date: dt.date | None  # dt.: a field named `date` shadows the type in the lines below it
    due_date: dt.date | None
    currency_code: str
    currency_rate: Decimal | None
    total: Decimal
    amount_due: Decimal
    amount_paid: Decimal
    amount_credited: Decimal
    reference: str | None
    payment_count: int
    pinned: bool = False
    allocation_count: int = 0


@dataclass(frozen=True)
class PaymentRow:
    payment_id: str
    date: date | None
    amount: Decimal
    reference: str | None
    status: str


@dataclass(frozen=True)
class AllocationRow:
    kind: str
    document_id: str
    date: date | None
    amount: Decimal
    number: str | None


@dataclass(frozen=True)
class Filters:
    view: str = saved_views.DEFAULT_VIEW
    type: str = saved_views.DEFAULT_TYPE
    q: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    overdue: str | None = None  # one ageing bucket (views/aging.py BUCKETS) of unpaid invoices


@dataclass(frozen=True)
class Page:
    rows: list[InvoiceRow]
    total: int
    page: int
    per_page: int


def live_tenant(session: Session, workspace_id: int) -> Tenant | None:
    """The organisation the workspace reads from: its connection that is not disconnected."""
    row = session.execute(_LIVE_TENANT, {"workspace": workspace_id}).first()
    return Tenant(row.tenant_id, row.short_code, row.base_currency, row.timezone) if row else None


_LIVE_TENANT = (  # built once: every read asks it (see "statements built once" below)
    select(XeroConnection.tenant_id, XeroConnection.short_code, XeroConnection.base_currency, XeroConnection.timezone)
    .where(XeroConnection.workspace_id == bindparam("workspace"), XeroConnection.status != "disconnected")
    .order_by(XeroConnection.updated_at.desc(), XeroConnection.id.desc())
    .limit(1)
)


def view_clause(view: str, today: date, pinned_ids=frozenset()):
    """saved_views' rules as SQL (tests/integration/test_read_queries.py holds them equal)."""
    paid = and_(Invoice.status == "PAID", Invoice.amount_due == 0)
    unpaid = and_(Invoice.status == "AUTHORISED", Invoice.amount_due > 0)
    if view == "paid":
        return paid
    if view == "unpaid":
        return unpaid
    if view == "overdue":
        return and_(unpaid, Invoice.due_date < today)
    if view == "open":
        return and_(unpaid, or_(Invoice.due_date >= today, Invoice.due_date.is_(None)))
    if view == "pinned":
        if not pinned_ids:
            return false()
        return and_(Invoice.invoice_id.in_(sorted(pinned_ids)), Invoice.status.in_(saved_views.LIVE_STATUSES))
    if view == "all":
        return Invoice.status.not_in(saved_views.HIDDEN_STATUSES)
    raise saved_views.UnknownView(view)


def list_invoices(
    session: Session, scope: Scope, filters: Filters, today: date, page: int, per_page: int
) -> Page:
    """One page of the record's invoices, newest invoice date first, then number (natural order)."""
    if scope.is_empty:
        return Page([], 0, page, per_page)
    where = _where(scope, filters, today)
    payments = (
        select(func.count())
        .where(
            Payment.tenant_id == Invoice.tenant_id,
            Payment.invoice_id == Invoice.invoice_id,
            Payment.status != "DELETED",
        )
        .correlate(Invoice)
        .scalar_subquery()
    )
    allocations = (
        select(func.count())
        .where(Allocation.tenant_id == Invoice.tenant_id, Allocation.invoice_id == Invoice.invoice_id)
        .correlate(Invoice)
        .scalar_subquery()
    )
    # correlate(None): its own FROM invoices (the inner name shadows the outer one), run once
    full_count = select(func.count()).select_from(Invoice).where(*where).correlate(None).scalar_subquery()
    stmt = (
        select(
            *_COLUMNS,
            payments.label("payment_count"),
            allocations.label("allocation_count"),
            full_count.label("full_count"),
        )
        .where(*where)
        .order_by(Invoice.date.desc().nulls_last(), Invoice.number_key.desc().nulls_last(), Invoice.invoice_id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    result = session.execute(stmt).all()
    if result:
        total = result[0].full_count
    elif page > 1:  # past the end: no row carries the count, so count on its own
        total = session.execute(select(func.count()).select_from(Invoice).where(*where)).scalar_one()
    else:
        total = 0
    rows = [
        InvoiceRow(
            **{k: getattr(r, k) for k in _FIELDS},
            payment_count=r.payment_count,
            pinned=r.invoice_id in scope.pinned_ids,
            allocation_count=r.allocation_count,
        )
        for r in result
    ]
    return Page(rows, total, page, per_page)


def summary_lines(session: Session, scope: Scope, today: date) -> list[Line]:
    """The record's AUTHORISED and PAID sales invoices added up by state, currency and rate."""
    return summary_parts(session, scope, today)[0]


def summary_parts(session: Session, scope: Scope, today: date) -> tuple[list[Line], dict[str, int]]:
    """summary_lines, and how many invoices each part holds (`other`, `paid`, `settled`, and the
    ageing buckets of the unpaid ones): the counts of the saved views come from these
    (view_counts_of). `other` is left out of the lines."""
    facts = summary_facts(session, scope, today)
    return facts.lines, facts.parts


def behaviour_lateness(session: Session, scope: Scope, today: date) -> list[Lateness]:
    """views.aging.lateness_for in SQL (summary_facts' `lateness`)."""
    return summary_facts(session, scope, today).lateness


@dataclass(frozen=True)
class SummaryFacts:
    lines: list[Line]  # summary_lines
    parts: dict[str, int]  # how many invoices each part holds (summary_parts)
    lateness: list[Lateness]  # the payment behaviour's groups (views.aging.lateness_for)


def summary_facts(session: Session, scope: Scope, today: date) -> SummaryFacts:
    """The record's totals by part, currency and rate, and its payment behaviour's lateness, in
    one statement (one round trip: on PostgreSQL a round trip costs more than these reads):

    - one pass over the record's live sales invoices (ix_invoices_contact_status alone), each
      in its part by _part_column, grouped by part, currency and rate;
    - the PAID ones settled in the last two years, grouped by year and days late
      (ix_invoices_contact_paid alone);
    - the unpaid ones past due, grouped by their days overdue, today - due date
      (ix_invoices_contact_status alone).

    Each row says which it is by its first column: a part, or a lateness window."""
    if scope.is_empty:
        return SummaryFacts([], {}, [])
    values = {**_scope_values(scope), **_day_values(today)}
    lines: list[Line] = []
    counts: dict[str, int] = {}
    lateness: list[Lateness] = []
    for tag, days, n, cur, rate, total, paid, credited, due, n_paid, n_credit in session.execute(
        _summary_statement(_shape(scope)), values
    ).all():
        if tag in _WINDOWS:
            still_open = tag == "open"
            lateness.append(Lateness("year" if still_open else tag, not still_open, int(days), n))
            continue
        counts[tag] = counts.get(tag, 0) + n
        if tag != "other":
            state = _STATE_OF_PART[tag]
            total, paid, credited, due = (_money(v) for v in (total, paid, credited, due))
            lines.append(Line(state, cur, _rate(rate), total, paid, credited, due, n, int(n_paid), int(n_credit),
                              None if state == "settled" else tag))
    return SummaryFacts(lines, counts, lateness)


def _money(stored):
    return Money.process_result_value(stored, None)


def _rate(stored):
    return Rate.process_result_value(stored, None)


_WINDOWS = frozenset(("year", "year_before", "open"))  # the lateness rows' tags ("open": still open, this year)


@lru_cache(maxsize=64)
def _summary_statement(shape: _Shape):
    unpaid = and_(Invoice.status == "AUTHORISED", Invoice.amount_due > 0)
    sales = [*_scope_bound(shape), Invoice.type == totals.SALES]
    per_invoice = (
        select(
            _part_column().label("part"),
            Invoice.currency_code.label("currency"),
            Invoice.currency_rate.label("rate"),
            Invoice.total.label("total"),
            Invoice.amount_paid.label("paid"),
            Invoice.amount_credited.label("credited"),
            case((unpaid, Invoice.amount_due), else_=0).label("due"),
            case((Invoice.amount_paid > 0, 1), else_=0).label("has_paid"),
            case((Invoice.amount_credited > 0, 1), else_=0).label("has_credit"),
        )
        .where(*sales, Invoice.status.not_in(saved_views.HIDDEN_STATUSES))  # the others only counted (All view)
        .subquery()
    )
    # Grouping on the subquery's columns, not on the CASE itself: PostgreSQL cannot tell two
    # copies of a CASE with bound parameters apart from different expressions.
    c = per_invoice.c

    def stored(column):  # money and rates as stored, scaled integers: summary_facts reads the few parts rows
        return type_coerce(column, BigInteger)  # (a type here would be applied to every lateness row's NULLs too)

    parts = select(
        c.part, null().label("days"), func.count().label("n"), c.currency, stored(c.rate),
        *(stored(func.sum(column)) for column in (c.total, c.paid, c.credited, c.due)),
        func.sum(c.has_paid), func.sum(c.has_credit),
    ).group_by(c.part, c.currency, c.rate)
    settled = (
        select(
            case((Invoice.fully_paid_on >= _SINCE, "year"), else_="year_before").label("window"),
            days_between(Invoice.fully_paid_on, Invoice.due_date).label("days"),
        )
        .where(
            *sales,
            PAID,
            Invoice.fully_paid_on >= _BEFORE,
            Invoice.fully_paid_on <= _TODAY,
            Invoice.due_date.is_not(None),
        )
        .subquery()
    )
    # the open ones by days overdue, counted in SQL (an integer per group: no date to parse)
    overdue = (
        select(days_between(_TODAY, Invoice.due_date).label("days"))
        .where(*sales, unpaid, Invoice.due_date < _TODAY)
        .subquery()
    )
    padding = [null().label(name) for name in ("currency", "rate", "total", "paid", "credited", "due", "np", "nc")]
    late = select(settled.c.window, settled.c.days, func.count(), *padding).group_by(settled.c.window, settled.c.days)
    still_open = select(literal_column("'open'"), overdue.c.days, func.count(), *padding).group_by(overdue.c.days)
    return union_all(parts, late, still_open)


# the summary's state of each part: settled (paid, as the Paid view has it, or otherwise
# owing nothing), or unpaid and in an ageing bucket
_STATE_OF_PART: dict[str, totals.State] = {  # `other` has none: it is in no line
    "paid": "settled",
    "settled": "settled",
    aging.BUCKETS[0]: "open",
    **dict.fromkeys(aging.BUCKETS[1:], "overdue"),
}


def _part_column():
    """Each live invoice's part of the summary in one CASE (unpaid is tested once): `other` (not
    AUTHORISED or PAID), `paid` or `settled`, or the ageing bucket of an unpaid one, `current`
    being the open ones (not yet due, due today, or without a due date) and the others overdue.
    Each bucket's earliest due date is bound as `edge_<bucket>` (_day_values)."""
    whens = [
        (Invoice.status.not_in(totals.COUNTED_STATUSES), "other"),  # drafts, submitted, voided: no figure
        (and_(Invoice.status == "PAID", Invoice.amount_due == 0), "paid"),  # the Paid view's rule
        (or_(Invoice.status != "AUTHORISED", Invoice.amount_due <= 0), "settled"),
        (or_(Invoice.due_date.is_(None), Invoice.due_date >= _TODAY), aging.BUCKETS[0]),
    ]
    for name in aging.BUCKETS[1:-1]:
        whens.append((Invoice.due_date >= bindparam(f"edge_{name}", type_=Date), name))
    return case(*whens, else_=aging.BUCKETS[-1])


def last_settlements(session: Session, scope: Scope, today: date) -> list[Settlement]:
    """The record's settlements on the day of its latest one up to today (live payments and
    allocations of its AUTHORISED and PAID sales invoices): what views.aging.last_payment needs.

    Each invoice keeps the date of its latest settlement (`last_settled_on`, kept by
    store.mirror.refresh_last_settled), so that day is the latest `last_settled_on` up to today,
    read from ix_invoices_contact_settled alone, unless an invoice settled after today (a
    payment dated ahead) was also settled earlier: those few are probed by their key for their
    latest settlement up to today. The second statement reads the settlements of that day."""
    if scope.is_empty:
        return []
    shape = _shape(scope)
    values = {**_scope_values(scope), "today": today}
    latest, settled_ahead = session.execute(_latest_day_statement(shape), values).one()
    if not settled_ahead:  # the usual case: the day is the latest, its invoices those settled last on it
        if latest is None:
            return []
        return _settlements(latest, session.execute(_last_day_statement(shape), {**values, "day": latest}))
    found = session.execute(_candidates_statement(shape, latest is not None), {**values, "day": latest}).all()
    latest_of = {}  # {invoice id: its latest settlement up to today}
    for invoice_id, paid_on, allocated_on in found:
        days = [d for d in (paid_on, allocated_on) if d is not None]
        if days:
            latest_of[invoice_id] = max(days)
    if not latest_of:
        return []
    day = max(latest_of.values())
    on_that_day = sorted(invoice_id for invoice_id, latest_on in latest_of.items() if latest_on == day)
    values = {"tenant": scope.tenant_id, "ids": on_that_day, "day": day}
    return _settlements(day, session.execute(_days_settlements_statement(), values))


@lru_cache(maxsize=64)
def _latest_day_statement(shape: _Shape) -> Select:
    """(the latest last_settled_on up to today, whether an invoice settled after today): one max
    per customer (a single seek of ix_invoices_contact_settled each) and one over the invoices
    linked one by one; a max over them all at once would read every settled invoice of the scope."""
    counted = [Invoice.type == totals.SALES, Invoice.status.in_(totals.COUNTED_STATUSES)]
    parts = [Invoice.contact_id == bindparam(f"contact_{i}") for i in range(shape.contacts)]
    if shape.invoices:
        parts.append(Invoice.invoice_id.in_(bindparam("invoice_ids", expanding=True)))
    maxima = union_all(
        *(
            select(func.max(Invoice.last_settled_on).label("day"))
            .where(Invoice.tenant_id == _TENANT, *counted, Invoice.last_settled_on <= _TODAY, part)
            for part in parts
        )
    ).subquery()
    after_today = Invoice.last_settled_on > _TODAY
    ahead = select(Invoice.invoice_id).where(*_scope_bound(shape), *counted, after_today).limit(1).exists()
    return select(select(type_coerce(func.max(maxima.c.day), Date)).scalar_subquery(), ahead)


@lru_cache(maxsize=64)
def _last_day_statement(shape: _Shape):
    """The settlements dated `day` of the scope's counted sales invoices last settled that day."""
    day = bindparam("day", type_=Date)
    invoices = and_(
        *_scope_bound(shape),
        Invoice.type == totals.SALES,
        Invoice.status.in_(totals.COUNTED_STATUSES),
        Invoice.last_settled_on == day,
    )
    return _settled_on(invoices, day)


def _settled_on(invoices, day):
    """(currency, paid, payments, allocated, allocations) for each invoice `invoices` selects:
    the sum and number of its live payments and of its allocations dated `day`. Each figure is
    a subquery correlated on the invoice's key (ix_payments_invoice, the allocations' key), so
    the invoices drive the read whatever the planner knows: joined instead, SQLite without
    statistics read every payment of the tenant first."""
    live = Payment.status != "DELETED"
    figures = []
    for table, where in ((Payment, [live]), (Allocation, [])):
        of_invoice = [table.tenant_id == Invoice.tenant_id, table.invoice_id == Invoice.invoice_id]
        on_day = [*of_invoice, table.date == day, *where]
        figures.append(select(func.sum(table.amount)).where(*on_day).correlate(Invoice).scalar_subquery())
        figures.append(select(func.count()).select_from(table).where(*on_day).correlate(Invoice).scalar_subquery())
    return select(Invoice.currency_code, *figures).where(invoices)


def _settlements(day: date, rows) -> list[Settlement]:
    """Settlement per invoice and kind from _settled_on's rows (those of none left out)."""
    out = []
    for currency, paid, payments, allocated, allocations in rows:
        if payments:
            out.append(Settlement(day, currency, paid, payments))
        if allocations:
            out.append(Settlement(day, currency, allocated, allocations))
    return out


@lru_cache(maxsize=64)
def _candidates_statement(shape: _Shape, with_day: bool):
    """{invoice id: its latest payment and allocation up to today} of the scope's counted sales
    invoices settled after today, and (`with_day`) of those last settled on `day`: each arm a
    search of ix_invoices_contact_settled, then a probe of each invoice's payments
    (ix_payments_invoice) and allocations (their key)."""
    counted = [*_scope_bound(shape), Invoice.type == totals.SALES, Invoice.status.in_(totals.COUNTED_STATUSES)]
    arms = [Invoice.last_settled_on > _TODAY]
    if with_day:
        arms.append(Invoice.last_settled_on == bindparam("day", type_=Date))
    c = union_all(*(select(Invoice.invoice_id).where(*counted, arm) for arm in arms)).subquery().c
    last_payment = (
        select(func.max(Payment.date))
        .where(
            Payment.tenant_id == _TENANT,
            Payment.invoice_id == c.invoice_id,
            Payment.status != "DELETED",
            Payment.date <= _TODAY,
        )
        .scalar_subquery()
    )
    last_allocation = (
        select(func.max(Allocation.date))
        .where(Allocation.tenant_id == _TENANT, Allocation.invoice_id == c.invoice_id, Allocation.date <= _TODAY)
        .scalar_subquery()
    )
    return select(c.invoice_id, last_payment, last_allocation)


@lru_cache(maxsize=1)
def _days_settlements_statement():
    """The settlements dated `day` of the invoices `ids`, by their keys."""
    ids = and_(Invoice.tenant_id == _TENANT, Invoice.invoice_id.in_(bindparam("ids", expanding=True)))
    return _settled_on(ids, bindparam("day", type_=Date))


def invoice_with_payments(
    session: Session, tenant_id: str, invoice_id: str
) -> tuple[InvoiceRow, list[PaymentRow], list[AllocationRow]] | None:
    """An invoice of the tenant, every payment against it (deleted ones too: the installment
    rules decide) and the credit notes, prepayments and overpayments applied to it, or None
    when the tenant has no such invoice."""
    inv = session.execute(
        select(*_COLUMNS).where(Invoice.tenant_id == tenant_id, Invoice.invoice_id == invoice_id)
    ).first()
    if inv is None:
        return None
    payments = [
        PaymentRow(p.payment_id, p.date, p.amount, p.reference, p.status)
        for p in session.execute(
            select(Payment.payment_id, Payment.date, Payment.amount, Payment.reference, Payment.status)
            .where(Payment.tenant_id == tenant_id, Payment.invoice_id == invoice_id)
            .order_by(Payment.date, Payment.payment_id)
        )
    ]
    allocations = [
        AllocationRow(a.kind, a.document_id, a.date, a.amount, a.number)
        for a in session.execute(
            select(Allocation.kind, Allocation.document_id, Allocation.date, Allocation.amount, Allocation.number)
            .where(Allocation.tenant_id == tenant_id, Allocation.invoice_id == invoice_id)
            .order_by(Allocation.date, Allocation.kind, Allocation.document_id, Allocation.seq)
        )
    ]
    live = sum(1 for p in payments if p.status != "DELETED")
    row = InvoiceRow(
        **{k: getattr(inv, k) for k in _FIELDS}, payment_count=live, allocation_count=len(allocations)
    )
    return row, payments, allocations


# --- helpers ---------------------------------------------------------------------------

_FIELDS = (
    "invoice_id",
    "invoice_number",
    "type",
    "status",
    "contact_id",
    "date",
    "due_date",
    "currency_code",
    "currency_rate",
    "total",
    "amount_due",
    "amount_paid",
    "amount_credited",
    "reference",
)
_COLUMNS = tuple(getattr(Invoice, f) for f in _FIELDS)


def _scope_where(scope: Scope) -> list:
    seen = []
    if scope.contact_ids:
        seen.append(Invoice.contact_id.in_(scope.contact_ids))
    if scope.invoice_ids:
        seen.append(Invoice.invoice_id.in_(scope.invoice_ids))
    return [Invoice.tenant_id == scope.tenant_id, or_(*seen)]


# --- statements built once per scope shape, run with their values bound ---------------------
# Building a statement costs far more than SQLite takes to run it for a typical record
# (0.2 ms against 1.8 ms for the summary's pass): the summary's statements are built once
# per shape of scope and kept (SQLAlchemy then also keeps their compiled form).

_TENANT = bindparam("tenant", type_=String)
_TODAY = bindparam("today", type_=Date)
_SINCE = bindparam("since", type_=Date)  # the first day of the year of behaviour (aging.windows)
_BEFORE = bindparam("before", type_=Date)  # the first day of the year before


@dataclass(frozen=True)
class _Shape:
    """What a statement over a scope depends on: how many customers (each bound on its own, so
    that one customer's is an equality, not an IN list to expand) and whether invoices are
    linked one by one (one expanding IN)."""

    contacts: int
    invoices: bool


def _shape(scope: Scope) -> _Shape:
    return _Shape(len(scope.contact_ids), bool(scope.invoice_ids))


def _scope_bound(shape: _Shape) -> list:
    """_scope_where with its values bound by name (_scope_values)."""
    seen = []
    if shape.contacts == 1:
        seen.append(Invoice.contact_id == bindparam("contact_0"))
    elif shape.contacts:
        seen.append(Invoice.contact_id.in_([bindparam(f"contact_{i}") for i in range(shape.contacts)]))
    if shape.invoices:
        seen.append(Invoice.invoice_id.in_(bindparam("invoice_ids", expanding=True)))
    return [Invoice.tenant_id == _TENANT, or_(*seen)]


def _scope_values(scope: Scope) -> dict:
    values: dict = {"tenant": scope.tenant_id, **{f"contact_{i}": c for i, c in enumerate(scope.contact_ids)}}
    if scope.invoice_ids:
        values["invoice_ids"] = list(scope.invoice_ids)
    return values


def _day_values(today: date) -> dict:
    """Today, the first due date of each ageing bucket between `current` and the last, and the
    behaviour's two years."""
    since, before = aging.windows(today)
    edges = {f"edge_{name}": aging.due_range(name, today)[0] for name in aging.BUCKETS[1:-1]}
    return {"today": today, "since": since, "before": before, **edges}


class days_between(FunctionElement):
    """later - earlier in whole days, for two DATE columns (no bound parameters: it can be grouped on)."""

    type = Integer()
    inherit_cache = True


@compiles(days_between)
def _days_between(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return f"({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return f"CAST(julianday({compiler.process(later, **kw)}) - julianday({compiler.process(earlier, **kw)}) AS INTEGER)"


def bucket_clause(bucket: str, today: date):
    """The unpaid invoices of one ageing bucket (views.aging.due_range) as SQL."""
    earliest, latest = aging.due_range(bucket, today)
    where = [Invoice.status == "AUTHORISED", Invoice.amount_due > 0]
    if bucket == "current":
        return and_(*where, or_(Invoice.due_date >= today, Invoice.due_date.is_(None)))
    if earliest is not None:
        where.append(Invoice.due_date >= earliest)
    if latest is not None:
        where.append(Invoice.due_date <= latest)
    return and_(*where)


def _where(scope: Scope, filters: Filters, today: date) -> list:
    return _scope_where(scope) + [view_clause(filters.view, today, scope.pinned_ids)] + _filter_where(filters, today)


def _filter_where(filters: Filters, today: date) -> list:
    """The ageing bucket, type, search and date filters: everything of `filters` but its view."""
    where = []
    if filters.overdue is not None:
        where.append(bucket_clause(filters.overdue, today))
    if filters.type != "all":
        where.append(Invoice.type == saved_views.TYPES[filters.type])
    if filters.q:
        pattern = "%" + _escape_like(filters.q.lower()) + "%"  # a prefix is a match too
        where.append(func.lower(Invoice.invoice_number).like(pattern, escape="\\"))
    if filters.date_from is not None:
        where.append(Invoice.date >= filters.date_from)
    if filters.date_to is not None:
        where.append(Invoice.date <= filters.date_to)
    return where


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def view_counts_of(session: Session, scope: Scope, parts: dict[str, int]) -> dict[str, int]:
    """What view_counts with no filters answers, from summary_parts' counts: every view but
    `pinned` is a sum of parts (`other` being the drafts, submitted and voided, which only the
    All view shows); `pinned` counts the pins, by key, in a statement only when there are pins."""
    counts = dict.fromkeys(saved_views.VIEWS, 0)
    if scope.is_empty:
        return counts
    overdue = sum(parts.get(b, 0) for b in aging.BUCKETS[1:])
    current = parts.get(aging.BUCKETS[0], 0)
    counts.update(open=current, overdue=overdue, unpaid=current + overdue, paid=parts.get("paid", 0))
    counts["all"] = sum(parts.values())
    sales = [*_scope_where(scope), Invoice.type == totals.SALES]
    if scope.pinned_ids:
        counts["pinned"] = int(
            session.scalar(
                select(func.count())
                .select_from(Invoice)
                .where(*sales, view_clause("pinned", date.min, scope.pinned_ids))
            )
            or 0
        )
    return counts


def view_counts(session: Session, scope: Scope, filters: Filters, today: date) -> dict[str, int]:
    """How many of the record's invoices each view holds (every view of saved_views.VIEWS),
    under `filters` but for its view: one statement, a COUNT per view over one scan."""
    if scope.is_empty:
        return dict.fromkeys(saved_views.VIEWS, 0)
    where = _scope_where(scope) + _filter_where(filters, today)
    counts = [
        func.coalesce(func.sum(case((view_clause(view, today, scope.pinned_ids), 1), else_=0)), 0).label(view)
        for view in saved_views.VIEWS
    ]
    row = session.execute(select(*counts).select_from(Invoice).where(*where)).one()
    return {view: int(getattr(row, view)) for view in saved_views.VIEWS}
