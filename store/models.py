"""The SQLAlchemy 2 schema of the mirror, the inbox and the CRM side."""
from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store.natural import number_key
from store.types import Money, Rate, UTCDateTime

RawJSON = JSON().with_variant(JSONB(), "postgresql")
NumberKey = String(400).with_variant(String(400, collation="C"), "postgresql")


class Base(DeclarativeBase):
    pass


# --- workspaces and their keys -------------------------------------------------------


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """A workspace API key, stored as a SHA-256 hash; the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))  # read | admin
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --- the Xero connection of a workspace --------------------------------------------


class XeroConnection(Base):
    """One Xero organisation per workspace; tokens are Fernet ciphertext, never clear."""

    __tablename__ = "xero_connections"
    __table_args__ = (
        Index(
            "uq_live_tenant",
            "tenant_id",
            unique=True,
            sqlite_where=text("status != 'disconnected'"),
            postgresql_where=text("status != 'disconnected'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    tenant_name: Mapped[str | None] = mapped_column(String(300))
    short_code: Mapped[str | None] = mapped_column(String(32))
    base_currency: Mapped[str | None] = mapped_column(String(3))
    xero_connection_id: Mapped[str | None] = mapped_column(String(64))
    auth_event_id: Mapped[str | None] = mapped_column(String(64))
    grant_type: Mapped[str] = mapped_column(String(32))  # client_credentials | authorization_code
    status: Mapped[str] = mapped_column(String(32))  # pending | active | needs_reauth | disconnected
    connected_email: Mapped[str | None] = mapped_column(String(320))
    token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Organisation.Timezone as Xero names it (a Windows zone id, e.g. NEWZEALANDSTANDARDTIME);
    # xero.timezones maps it to IANA. Refreshed by reconciliation at most once a day.
    timezone: Mapped[str | None] = mapped_column(String(64))
    organisation_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disconnected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # while pending: the digest of the admin session that consented, the only one that may save it
    pending_session: Mapped[str | None] = mapped_column(String(64))


# --- the mirror -----------------------------------------------------------------------


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_email", "tenant_id", "email_lower"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(500))
    email: Mapped[str | None] = mapped_column(String(320))
    email_lower: Mapped[str | None] = mapped_column(String(320))
    is_customer: Mapped[bool] = mapped_column(Boolean, default=False)
    is_supplier: Mapped[bool] = mapped_column(Boolean, default=False)
    contact_status: Mapped[str | None] = mapped_column(String(32))
    merged_to_contact_id: Mapped[str | None] = mapped_column(String(64))  # Xero's MergedToContactID
    updated_utc: Mapped[datetime] = mapped_column(UTCDateTime())
    raw: Mapped[dict] = mapped_column(RawJSON)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ContactEmail(Base):
    """The addresses of a Xero contact's ContactPersons (its main EmailAddress is contacts.email_lower)."""

    __tablename__ = "contact_emails"
    __table_args__ = (Index("ix_contact_emails_email", "tenant_id", "email_lower"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email_lower: Mapped[str] = mapped_column(String(320), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # person (the only kind kept here so far)
    person_name: Mapped[str | None] = mapped_column(String(300))


def _number_key_default(context) -> str | None:
    return number_key(context.get_current_parameters().get("invoice_number"))


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_contact_date", "tenant_id", "contact_id", "date"),
        Index("ix_invoices_number", "tenant_id", "invoice_number"),
        Index("ix_invoices_updated", "tenant_id", "updated_utc"),
        # A record's saved view and totals (views.queries): status is an equality in every
        # saved view, so a page is read in date order and stops after per_page rows; its
        # count and the summary are read from the index alone (covering, SQLite and PostgreSQL).
        # Type (sales or bill) is an equality too; the list's order is (date, number_key).
        Index(
            "ix_invoices_contact_status",
            "tenant_id",
            "contact_id",
            "status",
            "type",
            "date",
            "number_key",
            "amount_due",
            "due_date",
            "currency_code",
            "currency_rate",
            "total",
            "amount_paid",
            "amount_credited",
        ),
        # A record's payment behaviour (views.queries.behaviour_lateness, last_settlements): its
        # PAID sales invoices by settlement date, read from the index alone. Partial (PAID only):
        # smaller, and never mistaken for the index of the other statuses' reads.
        Index(
            "ix_invoices_contact_paid",
            "tenant_id",
            "contact_id",
            "status",  # constant here, but SQLite reads the index alone only if it holds the column
            "type",
            "fully_paid_on",
            "due_date",
            "invoice_id",
            sqlite_where=text("status = 'PAID'"),
            postgresql_where=text("status = 'PAID'"),
        ),
        # A record's last payment (views.queries.last_settlements): each contact's invoices by
        # the date of their latest settlement, newest first, one seek however many it has.
        # Partial: only invoices something was settled on.
        Index(
            "ix_invoices_contact_settled",
            "tenant_id",
            "contact_id",
            "last_settled_on",
            "type",
            "status",
            sqlite_where=text("last_settled_on IS NOT NULL"),
            postgresql_where=text("last_settled_on IS NOT NULL"),
        ),
    )

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoice_number: Mapped[str | None] = mapped_column(String(255))
    # natural order (store.natural: INV-9999 before INV-10000), compared bytewise everywhere
    number_key: Mapped[str | None] = mapped_column(NumberKey, default=_number_key_default)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    contact_id: Mapped[str | None] = mapped_column(String(64))
    date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[dt.date | None] = mapped_column(Date)  # dt.: `date` is the column above
    currency_code: Mapped[str] = mapped_column(String(3))
    currency_rate: Mapped[Decimal | None] = mapped_column(Rate)
    total: Mapped[Decimal] = mapped_column(Money)
    amount_due: Mapped[Decimal] = mapped_column(Money)
    amount_paid: Mapped[Decimal] = mapped_column(Money)
    amount_credited: Mapped[Decimal] = mapped_column(Money)
    reference: Mapped[str | None] = mapped_column(String(255))
    fully_paid_on: Mapped[dt.date | None] = mapped_column(Date)
    # The latest date of its live payments and allocations in the mirror (store.mirror.
    # refresh_last_settled keeps it, whenever either changes); None when nothing is settled.
    last_settled_on: Mapped[dt.date | None] = mapped_column(Date)
    updated_utc: Mapped[datetime] = mapped_column(UTCDateTime())
    raw: Mapped[dict] = mapped_column(RawJSON)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Payment(Base):
    """One installment against an invoice."""

    __tablename__ = "payments"
    __table_args__ = (
        Index("ix_payments_invoice", "tenant_id", "invoice_id", "date"),
        Index("ix_payments_updated", "tenant_id", "updated_utc"),
    )

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoice_id: Mapped[str | None] = mapped_column(String(64))
    date: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency_rate: Mapped[Decimal | None] = mapped_column(Rate)
    reference: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # AUTHORISED | DELETED
    payment_type: Mapped[str | None] = mapped_column(String(32))
    updated_utc: Mapped[datetime | None] = mapped_column(UTCDateTime())
    raw: Mapped[dict] = mapped_column(RawJSON)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Allocation(Base):
    """A credit note, prepayment or overpayment applied to an invoice, as the invoice lists it."""

    __tablename__ = "allocations"
    __table_args__ = (Index("ix_allocations_document", "tenant_id", "document_id"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # credit_note | prepayment | overpayment
    document_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)  # nth entry of that document on the invoice
    number: Mapped[str | None] = mapped_column(String(255))
    date: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- intake ---------------------------------------------------------------------------


class EventState(StrEnum):
    """An inbox event's state, stored (and compared in SQL) as its value."""

    PENDING = "pending"  # stored, not yet on a queue
    ENQUEUED = "enqueued"  # a sync job was asked for
    DONE = "done"  # synced
    FAILED = "failed"  # Xero refused it or sent what we cannot read; the error says which
    IGNORED = "ignored"  # nothing to do (a category we do not sync, no live connection)


OUTSTANDING = (EventState.PENDING, EventState.ENQUEUED)  # not yet settled by a sync job


class BackfillStatus(StrEnum):
    """Where a tenant's full load stands (sync_state.backfill_status)."""

    PENDING = "pending"  # asked for, not begun
    RUNNING = "running"
    DONE = "done"


class WebhookDelivery(Base):
    """A signed POST as received: kept when it could not be parsed, for inspection."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # accepted | malformed
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    error: Mapped[str | None] = mapped_column(Text)


class InboxEvent(Base):
    """One accepted Xero event; the durable record of what changed and must be synced."""

    __tablename__ = "inbox_events"
    __table_args__ = (
        Index("ix_inbox_tenant_state", "tenant_id", "state"),
        Index("ix_inbox_state_received", "state", "received_at"),
        # the child side of delivery_id's foreign key: deleting a delivery row (the intake drops
        # those nothing new came of, every duplicate delivery) looks up its events by it
        Index("ix_inbox_delivery", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="SET NULL"))
    tenant_id: Mapped[str] = mapped_column(String(64))
    tenant_type: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(32))
    event_type: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[str] = mapped_column(String(64))
    event_date_utc: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))  # an EventState
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(RawJSON)


class SyncState(Base):
    """Per-tenant progress: high-water marks, backfill position, last outcomes."""

    __tablename__ = "sync_state"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoices_hwm: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payments_hwm: Mapped[datetime | None] = mapped_column(UTCDateTime())
    contacts_hwm: Mapped[datetime | None] = mapped_column(UTCDateTime())
    backfill_status: Mapped[str] = mapped_column(String(16), default=BackfillStatus.PENDING)  # a BackfillStatus
    backfill_phase: Mapped[str | None] = mapped_column(String(16))  # a worker.sync.Phase
    backfill_page: Mapped[int] = mapped_column(Integer, default=0)
    backfill_fetched: Mapped[int] = mapped_column(Integer, default=0)
    last_webhook_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    unannounced_changes: Mapped[int] = mapped_column(Integer, default=0)
    # when reconciliation last swept each kind, and last found a change no webhook announced
    # (worker.cadence decides from these when the next sweep of each kind is due)
    contacts_swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    invoices_swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payments_swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unannounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --- the CRM side ---------------------------------------------------------------------


class CrmRecord(Base):
    """A contact, account or deal as the CRM told us about it."""

    __tablename__ = "crm_records"
    __table_args__ = (
        UniqueConstraint("workspace_id", "kind", "external_id"),
        Index("ix_crm_records_account", "workspace_id", "account_external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # contact | account | deal
    external_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(500))
    email_lower: Mapped[str | None] = mapped_column(String(320))
    account_external_id: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RecordLink(Base):
    """Why a CRM record sees a Xero contact's (or a single invoice's) billing."""

    __tablename__ = "record_links"
    __table_args__ = (
        UniqueConstraint("record_id", "tenant_id", "xero_contact_id", "invoice_id", "reason"),
        Index("ix_record_links_contact", "tenant_id", "xero_contact_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("crm_records.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    xero_contact_id: Mapped[str | None] = mapped_column(String(64))
    invoice_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(16))  # email | explicit
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Pin(Base):
    __tablename__ = "pins"
    __table_args__ = (UniqueConstraint("record_id", "invoice_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("crm_records.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(64))
    invoice_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
