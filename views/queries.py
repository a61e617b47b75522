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
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import and_, case, false, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from store.models import Allocation, Invoice, Payment, SyncState, XeroConnection
from store.records import Scope
from store.types import Money
from views import saved_views, totals
from views.totals import Line


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


@dataclass(frozen=True)
class Page:
    rows: list[InvoiceRow]
    total: int
    page: int
    per_page: int


def live_tenant(session: Session, workspace_id: int) -> Tenant | None:
    """The organisation the workspace reads from: its connection that is not disconnected."""
    row = session.execute(
        select(
            XeroConnection.tenant_id, XeroConnection.short_code, XeroConnection.base_currency, XeroConnection.timezone
        )
        .where(XeroConnection.workspace_id == workspace_id, XeroConnection.status != "disconnected")
        .order_by(XeroConnection.updated_at.desc(), XeroConnection.id.desc())
        .limit(1)
    ).first()
    return Tenant(row.tenant_id, row.short_code, row.base_currency, row.timezone) if row else None


def last_synced(session: Session, tenant_id: str) -> datetime | None:
    return session.execute(
        select(SyncState.last_success_at).where(SyncState.tenant_id == tenant_id)
    ).scalar_one_or_none()


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
    if scope.is_empty:
        return []
    unpaid = and_(Invoice.status == "AUTHORISED", Invoice.amount_due > 0)
    overdue = and_(unpaid, Invoice.due_date < today)
    per_invoice = (
        select(
            case((overdue, "overdue"), (unpaid, "open"), else_="settled").label("state"),
            Invoice.currency_code.label("currency"),
            Invoice.currency_rate.label("rate"),
            Invoice.total.label("total"),
            Invoice.amount_paid.label("paid"),
            Invoice.amount_credited.label("credited"),
            case((unpaid, Invoice.amount_due), else_=0).label("due"),
            case((Invoice.amount_paid > 0, 1), else_=0).label("has_paid"),
            case((Invoice.amount_credited > 0, 1), else_=0).label("has_credit"),
        )
        .where(
            *_scope_where(scope),
            Invoice.type == totals.SALES,
            Invoice.status.in_(totals.COUNTED_STATUSES),
        )
        .subquery()
    )
    # Grouping on the subquery's columns, not on the CASE itself: PostgreSQL cannot tell two
    # copies of a CASE with bound parameters apart from different expressions.
    c = per_invoice.c

    def money_sum(column):
        return type_coerce(func.sum(column), Money)

    rows = session.execute(
        select(
            c.state, c.currency, c.rate, money_sum(c.total), money_sum(c.paid), money_sum(c.credited),
            money_sum(c.due), func.count(), func.sum(c.has_paid), func.sum(c.has_credit),
        ).group_by(c.state, c.currency, c.rate)
    ).all()
    return [
        Line(state, cur, rate, total, paid, credited, due, n, int(n_paid), int(n_credit))
        for state, cur, rate, total, paid, credited, due, n, n_paid, n_credit in rows
    ]


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


def _where(scope: Scope, filters: Filters, today: date) -> list:
    return _scope_where(scope) + [view_clause(filters.view, today, scope.pinned_ids)] + _filter_where(filters)


def _filter_where(filters: Filters) -> list:
    """The type, search and date filters: everything of `filters` but its view."""
    where = []
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


def view_counts(session: Session, scope: Scope, filters: Filters, today: date) -> dict[str, int]:
    """How many of the record's invoices each view holds (every view of saved_views.VIEWS),
    under `filters` but for its view: one statement, a COUNT per view over one scan."""
    if scope.is_empty:
        return dict.fromkeys(saved_views.VIEWS, 0)
    where = _scope_where(scope) + _filter_where(filters)
    counts = [
        func.coalesce(func.sum(case((view_clause(view, today, scope.pinned_ids), 1), else_=0)), 0).label(view)
        for view in saved_views.VIEWS
    ]
    row = session.execute(select(*counts).select_from(Invoice).where(*where)).one()
    return {view: int(getattr(row, view)) for view in saved_views.VIEWS}
