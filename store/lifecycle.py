"""The SQL of a workspace's Xero connection's life: held pending, saved, removed; key rotation.

`services.connection` drives these steps; each takes a session and commits nothing.

- `hold_pending`: an admin has just consented; the token set is sealed in a `pending`
  connection that nothing syncs, until `activate` (the admin's Save) makes it `active`.
  Both write the row through `store.connections.connect`. The pending row remembers the
  admin session that consented (its digest): only that session may save it.
- `detach`: the first, local half of Remove: the connection is `disconnected` and its
  token wiped in one transaction, so no worker can load it any more; the tenant's
  outstanding inbox events are settled `ignored` (the rows stay: they are history).
- `inventory`: what Remove would delete of an organisation (its mirror, the workspace's
  pins of it) and what it keeps (the CRM's records and their links), in counts.
- `purge`: the mirrored contacts (and their people's emails), invoices, payments,
  allocations, sync state, and the workspace's pins of that organisation. The CRM's records
  and their links stay: an explicit link names a Xero id the CRM chose, and works again when
  the same organisation is connected again; reconnecting starts a fresh backfill.
- `rotate_tokens`: every sealed token re-encrypted under the newest TOKEN_KEYS key.

One organisation per workspace, one live workspace per organisation. Nothing here puts a
token in an error, a log line or `last_error`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from infra.errors import Conflict
from store import connections
from store.connections import AUTHORIZATION_CODE, DISCONNECTED, PENDING
from store.models import (
    Allocation,
    Contact,
    ContactEmail,
    CrmRecord,
    InboxEvent,
    Invoice,
    Payment,
    Pin,
    RecordLink,
    SyncState,
    Workspace,
    XeroConnection,
)
from store.secrets import TokenBox

OUTSTANDING_EVENTS = ("pending", "enqueued")


class LifecycleError(Conflict):
    """A connection change that is refused; the message is fit to show an admin."""


class TenantTaken(LifecycleError):
    """The organisation is live in another workspace."""


class WorkspaceTaken(LifecycleError):
    """The workspace is already connected to another organisation."""


class NothingPending(LifecycleError):
    """Save was asked for, but no consent is waiting to be saved."""


class NothingToRemove(LifecycleError):
    """Remove was asked for, but the workspace has no Xero connection."""


class NotTheOneConfirmed(LifecycleError):
    """Remove was confirmed for an organisation that is no longer the workspace's connection."""


class PendingElsewhere(LifecycleError):
    """The pending connection was started by another admin session: only that one may save
    or discard it (an API key never may)."""


PENDING_ELSEWHERE = (
    "This Xero connection was started in another admin session: only that session can save or "
    "discard it. Nothing was changed."
)


@dataclass(frozen=True)
class Shown:
    """What the admin page shows of a workspace's live connection (never a token)."""

    status: str
    tenant_id: str
    tenant_name: str | None
    short_code: str | None
    base_currency: str | None
    connected_email: str | None
    last_error: str | None
    backfill_status: str | None
    backfill_phase: str | None = None
    backfill_fetched: int = 0
    last_success_at: datetime | None = None


@dataclass(frozen=True)
class Detached:
    """What is left to do at Xero after `detach`: the tokens are no longer in the database."""

    tenant_id: str
    tenant_name: str | None
    token: dict
    xero_connection_id: str | None
    user_shared: bool  # the same Xero user connects another live workspace: do not revoke


@dataclass(frozen=True)
class Purged:
    contacts: int
    invoices: int  # bills included
    payments: int
    allocations: int
    pins: int


@dataclass(frozen=True)
class Deletes:
    """What Remove deletes: the organisation's mirror and the workspace's pins of its invoices."""

    contacts: int
    invoices: int  # sales invoices (ACCREC)
    bills: int  # ACCPAY
    payments: int
    credit_notes: int  # applied to the mirrored invoices (distinct documents)
    prepayments: int
    overpayments: int
    pins: int


@dataclass(frozen=True)
class Keeps:
    """What Remove keeps: the workspace's CRM records and the links the CRM made."""

    records: int
    contact_links: int  # explicit links to this organisation's Xero contacts
    invoice_links: int  # explicit links to its invoices
    email_rules: int  # records matching Xero contacts by email (in whichever organisation is connected)


@dataclass(frozen=True)
class Inventory:
    tenant_id: str
    tenant_name: str | None
    status: str
    deletes: Deletes
    keeps: Keeps


def _live(session: Session, workspace_id: int) -> XeroConnection | None:
    return session.scalars(
        select(XeroConnection)
        .where(XeroConnection.workspace_id == workspace_id, XeroConnection.status != DISCONNECTED)
        .order_by(XeroConnection.id.desc())
    ).first()


def shown(session: Session, workspace_id: int) -> Shown | None:
    row = _live(session, workspace_id)
    if row is None:
        return None
    sync = session.get(SyncState, row.tenant_id)
    return Shown(
        status=row.status, tenant_id=row.tenant_id, tenant_name=row.tenant_name, short_code=row.short_code,
        base_currency=row.base_currency, connected_email=row.connected_email, last_error=row.last_error,
        backfill_status=sync.backfill_status if sync else None,
        backfill_phase=sync.backfill_phase if sync else None,
        backfill_fetched=sync.backfill_fetched if sync else 0,
        last_success_at=sync.last_success_at if sync else None,
    )


def workspace_exists(session: Session, workspace_id: int) -> bool:
    return session.get(Workspace, workspace_id) is not None


def workspace_name(session: Session, workspace_id: int) -> str | None:
    """The workspace's name, what every admin page says it acts for (None: no such workspace)."""
    return session.scalar(select(Workspace.name).where(Workspace.id == workspace_id))


def pending_session(session: Session, workspace_id: int) -> str | None:
    """The digest of the admin session whose consent is pending in the workspace ('' when a
    pending row names none; None when nothing is pending)."""
    row = _live(session, workspace_id)
    if row is None or row.status != PENDING:
        return None
    return row.pending_session or ""


def owner_of(session: Session, tenant_id: str) -> int | None:
    """The workspace the organisation is live in, if any."""
    record = connections.find(session, tenant_id)
    return record.workspace_id if record else None


def in_use(session: Session, xero_connection_id: str) -> bool:
    """Whether a live connection of ours stands on this Xero connection (never delete it then)."""
    return (
        session.scalar(
            select(func.count()).select_from(XeroConnection).where(
                func.lower(XeroConnection.xero_connection_id) == xero_connection_id.lower(),
                XeroConnection.status != DISCONNECTED,
            )
        )
        or 0
    ) > 0


def user_connects_elsewhere(session: Session, email: str | None, except_id: int | None = None) -> bool:
    """Whether the same Xero user (by email) connects another live connection of ours.

    Revoking a refresh token removes ALL of that user's connections to this app, so it
    would silently cut another workspace off.
    """
    if not email:
        return False
    stmt = select(func.count()).select_from(XeroConnection).where(
        func.lower(XeroConnection.connected_email) == email.lower(), XeroConnection.status != DISCONNECTED
    )
    if except_id is not None:
        stmt = stmt.where(XeroConnection.id != except_id)
    return (session.scalar(stmt) or 0) > 0


def hold_pending(
    session: Session,
    box: TokenBox,
    *,
    workspace_id: int,
    tenant_id: str,
    token: dict,
    now: datetime,
    tenant_name: str | None,
    xero_connection_id: str | None,
    auth_event_id: str | None,
    connected_email: str | None,
    organisation: dict | None = None,
    started_by: str | None = None,
) -> int:
    """Keep a fresh consent, sealed, as the workspace's `pending` connection; its id.

    Re-consenting to the workspace's own organisation (after "needs reconnecting") reuses
    its row, mirrored data and all. Refused: an organisation live in another workspace
    (TenantTaken) or a workspace live on another organisation (WorkspaceTaken).
    `organisation`, Xero's Organisation record when it answered, is kept with it, and
    `started_by`, the digest of the admin session that consented: the one that may save it.
    """
    taken_by = owner_of(session, tenant_id)
    if taken_by is not None and taken_by != workspace_id:
        raise TenantTaken(
            f"{tenant_name or 'This organisation'} is already connected to another workspace. "
            "Remove it there first, or choose another organisation."
        )
    row = _live(session, workspace_id)
    if row is not None and row.tenant_id != tenant_id:
        raise WorkspaceTaken(
            f"This workspace is already connected to {row.tenant_name or 'another organisation'}. "
            "Remove that connection first: a workspace reads one Xero organisation."
        )
    # past both refusals, the tenant's live row (if any) is this workspace's: connect finds it
    held = connections.connect(
        session, box, workspace_id=workspace_id, tenant_id=tenant_id, token=token, now=now,
        grant_type=AUTHORIZATION_CODE, status=PENDING, tenant_name=tenant_name,
        xero_connection_id=xero_connection_id, auth_event_id=auth_event_id, connected_email=connected_email,
        organisation=organisation,
    )
    session.execute(update(XeroConnection).where(XeroConnection.id == held.id).values(pending_session=started_by))
    return held.id


def activate(
    session: Session, box: TokenBox, workspace_id: int, now: datetime, started_by: str | None
) -> connections.ConnectionRecord:
    """Save: the workspace's pending connection becomes active; the caller starts the backfill.
    Only the admin session that consented (`started_by`, its digest) may save it: anyone else,
    an API key (None) included, gets PendingElsewhere and nothing changes."""
    row = _live(session, workspace_id)
    if row is None or row.status != PENDING or row.token_ciphertext is None:
        raise NothingPending("There is no new Xero connection waiting to be saved.")
    if started_by is None or row.pending_session is None or row.pending_session != started_by:
        raise PendingElsewhere(PENDING_ELSEWHERE)
    record = connections.connect(
        session, box, workspace_id=workspace_id, tenant_id=row.tenant_id, token=box.open(row.token_ciphertext),
        now=now, grant_type=AUTHORIZATION_CODE, tenant_name=row.tenant_name,
        xero_connection_id=row.xero_connection_id, auth_event_id=row.auth_event_id,
        connected_email=row.connected_email,
    )
    row.pending_session = None
    session.flush()
    return record


def inventory(session: Session, workspace_id: int) -> Inventory | None:
    """What removing the workspace's live connection would delete and keep (None: nothing to remove)."""
    row = _live(session, workspace_id)
    if row is None:
        return None
    tenant_id = row.tenant_id

    def counted(stmt) -> int:
        return session.scalar(stmt) or 0

    def rows(model, *where) -> int:
        return counted(select(func.count()).select_from(model).where(*where))

    def documents(kind: str) -> int:
        return counted(select(func.count(func.distinct(Allocation.document_id)))
                       .where(Allocation.tenant_id == tenant_id, Allocation.kind == kind))

    explicit = (RecordLink.workspace_id == workspace_id, RecordLink.tenant_id == tenant_id,
                RecordLink.reason == "explicit")
    return Inventory(
        tenant_id=tenant_id, tenant_name=row.tenant_name, status=row.status,
        deletes=Deletes(
            contacts=rows(Contact, Contact.tenant_id == tenant_id),
            invoices=rows(Invoice, Invoice.tenant_id == tenant_id, Invoice.type != "ACCPAY"),
            bills=rows(Invoice, Invoice.tenant_id == tenant_id, Invoice.type == "ACCPAY"),
            payments=rows(Payment, Payment.tenant_id == tenant_id),
            credit_notes=documents("credit_note"),
            prepayments=documents("prepayment"),
            overpayments=documents("overpayment"),
            pins=rows(Pin, Pin.workspace_id == workspace_id, Pin.tenant_id == tenant_id),
        ),
        keeps=Keeps(
            records=rows(CrmRecord, CrmRecord.workspace_id == workspace_id),
            contact_links=rows(RecordLink, *explicit, RecordLink.xero_contact_id.is_not(None)),
            invoice_links=rows(RecordLink, *explicit, RecordLink.invoice_id.is_not(None)),
            email_rules=rows(RecordLink, RecordLink.workspace_id == workspace_id, RecordLink.reason == "email"),
        ),
    )


def detach(
    session: Session, box: TokenBox, workspace_id: int, now: datetime, confirmed: str | None = None
) -> Detached | None:
    """Disconnect the workspace's live connection locally; what remains to undo at Xero.
    With `confirmed` (the tenant id the admin confirmed removing), another organisation's
    connection is refused (NotTheOneConfirmed) and nothing changes."""
    row = _live(session, workspace_id)
    if row is None:
        return None
    if confirmed is not None and row.tenant_id != confirmed:
        raise NotTheOneConfirmed(
            f"The removal you confirmed was for another connection; the workspace is now connected to "
            f"{row.tenant_name or 'another organisation'}. Nothing was removed: look again, then confirm."
        )
    token = box.open(row.token_ciphertext) if row.token_ciphertext else {}
    detached = Detached(
        tenant_id=row.tenant_id, tenant_name=row.tenant_name, token=token,
        xero_connection_id=row.xero_connection_id,
        user_shared=user_connects_elsewhere(session, row.connected_email, except_id=row.id),
    )
    row.status = DISCONNECTED
    row.disconnected_at = now
    row.updated_at = now
    row.token_ciphertext = None
    row.token_expires_at = None
    row.last_error = None
    row.pending_session = None
    session.execute(
        update(InboxEvent)
        .where(InboxEvent.tenant_id == row.tenant_id, InboxEvent.state.in_(OUTSTANDING_EVENTS))
        .values(state="ignored", processed_at=now, error="the Xero connection was removed")
    )
    session.flush()
    return detached


def purge(session: Session, workspace_id: int, tenant_id: str) -> Purged:
    """Delete what the mirror holds of a disconnected organisation, and the workspace's pins of
    it. Refused while it is live. The CRM's records and links stay (see the module docstring)."""
    if owner_of(session, tenant_id) is not None:
        raise LifecycleError("the organisation is connected again: its data stays")

    def gone(stmt) -> int:
        return cast(CursorResult, session.execute(stmt)).rowcount or 0  # a DELETE's result is a cursor's

    purged = Purged(
        pins=gone(delete(Pin).where(Pin.workspace_id == workspace_id, Pin.tenant_id == tenant_id)),
        payments=gone(delete(Payment).where(Payment.tenant_id == tenant_id)),
        allocations=gone(delete(Allocation).where(Allocation.tenant_id == tenant_id)),
        invoices=gone(delete(Invoice).where(Invoice.tenant_id == tenant_id)),
        contacts=gone(delete(Contact).where(Contact.tenant_id == tenant_id)),
    )
    session.execute(delete(ContactEmail).where(ContactEmail.tenant_id == tenant_id))
    session.execute(delete(SyncState).where(SyncState.tenant_id == tenant_id))
    return purged


def rotate_tokens(session: Session, box: TokenBox) -> int:
    """Re-encrypt every sealed token under the newest key; how many were re-encrypted.

    The rows are locked (PostgreSQL; SQLite's write transaction serialises anyway), so a
    worker saving a freshly refreshed token waits rather than being overwritten.
    """
    rows = session.scalars(
        select(XeroConnection).where(XeroConnection.token_ciphertext.is_not(None)).with_for_update()
    ).all()
    for row in rows:
        if row.token_ciphertext is not None:  # always, by the query: for the type checker
            row.token_ciphertext = box.rotate(row.token_ciphertext)
    session.flush()
    return len(rows)

