"""Rows for the read-side tests: workspaces with a live connection, and mirror rows written
straight through store.models (how they got there does not matter to the read side)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from store.models import Allocation, Contact, Invoice, Payment, XeroConnection
from store.workspaces import create_workspace, issue_key

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Ws:
    id: int
    tenant_id: str
    admin_key: str
    read_key: str


def workspace(
    s, name: str, tenant_id: str | None, *, short_code: str | None = "!Ab1x", base: str = "NZD"
) -> Ws:
    ws = create_workspace(s, name, NOW)
    if tenant_id is not None:
        s.add(
            XeroConnection(
                workspace_id=ws.id,
                tenant_id=tenant_id,
                tenant_name=f"{name} Ltd",
                short_code=short_code,
                base_currency=base,
                grant_type="client_credentials",
                status="active",
                created_at=NOW,
                updated_at=NOW,
            )
        )
    admin, read = issue_key(s, ws.id, "admin", NOW), issue_key(s, ws.id, "read", NOW)
    s.flush()
    return Ws(ws.id, tenant_id or "", admin, read)


def contact(
    tenant_id: str, contact_id: str, email: str | None, *, customer: bool = True, name: str | None = None
):
    return Contact(
        tenant_id=tenant_id,
        contact_id=contact_id,
        name=name or contact_id.title(),
        email=email,
        email_lower=email.lower() if email else None,
        is_customer=customer,
        is_supplier=not customer,
        contact_status="ACTIVE",
        updated_utc=NOW,
        raw={},
        synced_at=NOW,
    )


def invoice(
    tenant_id: str,
    invoice_id: str,
    contact_id: str | None,
    *,
    number: str | None = None,
    on: date | None = date(2026, 11, 1),
    due: date | None = date(2026, 12, 1),
    status: str = "AUTHORISED",
    total: str = "100.00",
    due_amount: str | None = None,
    paid: str = "0",
    credited: str = "0",
    currency: str = "NZD",
    rate: str | None = "1",
    type: str = "ACCREC",
) -> Invoice:
    amount_due = (
        Decimal(due_amount) if due_amount is not None else Decimal(total) - Decimal(paid) - Decimal(credited)
    )
    return Invoice(
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        invoice_number=number or invoice_id.upper(),
        type=type,
        status=status,
        contact_id=contact_id,
        date=on,
        due_date=due,
        currency_code=currency,
        currency_rate=Decimal(rate) if rate is not None else None,
        total=Decimal(total),
        amount_due=amount_due,
        amount_paid=Decimal(paid),
        amount_credited=Decimal(credited),
        reference=None,
        fully_paid_on=None,
        updated_utc=NOW,
        raw={},
        synced_at=NOW,
    )


def payment(
    tenant_id: str,
    payment_id: str,
    invoice_id: str,
    amount: str,
    on: date,
    *,
    status: str = "AUTHORISED",
    reference: str | None = None,
) -> Payment:
    return Payment(
        tenant_id=tenant_id,
        payment_id=payment_id,
        invoice_id=invoice_id,
        date=on,
        amount=Decimal(amount),
        currency_rate=Decimal(1),
        reference=reference,
        status=status,
        payment_type="ACCRECPAYMENT",
        updated_utc=NOW,
        raw={},
        synced_at=NOW,
    )


def allocation(
    tenant_id: str,
    invoice_id: str,
    kind: str,
    document_id: str,
    amount: str,
    on: date | None,
    *,
    number: str | None = None,
    seq: int = 0,
) -> Allocation:
    """A credit note, prepayment or overpayment (`kind`) applied to an invoice."""
    return Allocation(
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        kind=kind,
        document_id=document_id,
        seq=seq,
        number=number,
        date=on,
        amount=Decimal(amount),
        synced_at=NOW,
    )
