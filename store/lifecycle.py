"""The life of a workspace's Xero connection: held pending, saved, removed; and key rotation.

- `hold_pending`: an admin has just consented; the token set is sealed in a `pending`
  connection that nothing syncs, until `activate` (the admin's Save) makes it `active`
  through `store.connections.connect`.
- `detach`: the first, local half of Remove: the connection is `disconnected` and its
  token wiped in one transaction, so no worker can load it any more; the tenant's
  outstanding inbox events are settled `ignored` (the rows stay: they are history).
- `purge`: the mirrored contacts, invoices, payments, sync state, and the workspace's
  pins and record links of that organisation. Reconnecting later starts a fresh backfill.
- `cancel_jobs`: the tenant's jobs still waiting in any RQ queue, or scheduled, are
  cancelled; running ones are told to stop.
- `rotate_tokens`: every sealed token re-encrypted under the newest TOKEN_KEYS key.

One organisation per workspace, one live workspace per organisation. Nothing here puts a
token in an error, a log line or `last_error`.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from store import connections
from infra import queue
from store.connections import AUTHORIZATION_CODE, DISCONNECTED
from store.models import (
    Contact, InboxEvent, Invoice, Payment, Pin, RecordLink, SyncState, XeroConnection,
)
from store.secrets import TokenBox

PENDING = "pending"
OUTSTANDING_EVENTS = ("pending", "enqueued")


class LifecycleError(Exception):
    """A connection change that is refused; the message is fit to show an admin."""


class TenantTaken(LifecycleError):
    """The organisation is live in another workspace."""


class WorkspaceTaken(LifecycleError):
    """The workspace is already connected to another organisation."""


class NothingPending(LifecycleError):
    """Save was asked for, but no consent is waiting to be saved."""


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
    invoices: int
    payments: int
    pins: int
    record_links: int


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
    short_code: str | None = None,
    base_currency: str | None = None,
) -> int:
    """Keep a fresh consent, sealed, as the workspace's `pending` connection; its id.

    Re-consenting to the workspace's own organisation (after "needs reconnecting") reuses
    its row, mirrored data and all. Refused: an organisation live in another workspace
    (TenantTaken) or a workspace live on another organisation (WorkspaceTaken).
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
    if row is None:
        row = XeroConnection(workspace_id=workspace_id, tenant_id=tenant_id, created_at=now)
        session.add(row)
    connections.record_grant(
        row, box, token, now, grant_type=AUTHORIZATION_CODE, status=PENDING, track_expiry=False,
        tenant_name=tenant_name, short_code=short_code, base_currency=base_currency,
        xero_connection_id=xero_connection_id, auth_event_id=auth_event_id, connected_email=connected_email,
    )
    session.flush()
    return row.id


def activate(session: Session, box: TokenBox, workspace_id: int, now: datetime) -> connections.ConnectionRecord:
    """Save: the workspace's pending connection becomes active; the caller starts the backfill."""
    row = _live(session, workspace_id)
    if row is None or row.status != PENDING or row.token_ciphertext is None:
        raise NothingPending("There is no new Xero connection waiting to be saved.")
    return connections.connect(
        session, box, workspace_id=workspace_id, tenant_id=row.tenant_id, token=box.open(row.token_ciphertext),
        now=now, grant_type=AUTHORIZATION_CODE, tenant_name=row.tenant_name,
        xero_connection_id=row.xero_connection_id, auth_event_id=row.auth_event_id,
        connected_email=row.connected_email,
    )


def detach(session: Session, box: TokenBox, workspace_id: int, now: datetime) -> Detached | None:
    """Disconnect the workspace's live connection locally; what remains to undo at Xero."""
    row = _live(session, workspace_id)
    if row is None:
        return None
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
    session.execute(
        update(InboxEvent)
        .where(InboxEvent.tenant_id == row.tenant_id, InboxEvent.state.in_(OUTSTANDING_EVENTS))
        .values(state="ignored", processed_at=now, error="the Xero connection was removed")
    )
    session.flush()
    return detached


def purge(session: Session, workspace_id: int, tenant_id: str) -> Purged:
    """Delete what the mirror holds of a disconnected organisation. Refused while it is live."""
    if owner_of(session, tenant_id) is not None:
        raise LifecycleError("the organisation is connected again: its data stays")

    def gone(stmt) -> int:
        return session.execute(stmt).rowcount or 0

    purged = Purged(
        pins=gone(delete(Pin).where(Pin.workspace_id == workspace_id, Pin.tenant_id == tenant_id)),
        record_links=gone(
            delete(RecordLink).where(RecordLink.workspace_id == workspace_id, RecordLink.tenant_id == tenant_id)
        ),
        payments=gone(delete(Payment).where(Payment.tenant_id == tenant_id)),
        invoices=gone(delete(Invoice).where(Invoice.tenant_id == tenant_id)),
        contacts=gone(delete(Contact).where(Contact.tenant_id == tenant_id)),
    )
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
        row.token_ciphertext = box.rotate(row.token_ciphertext)
    session.flush()
    return len(rows)


# --- the queues ---------------------------------------------------------------------------


def cancel_jobs(redis: Redis, tenant_id: str, guard_keys: Iterable[str] = ()) -> int:
    """Cancel the tenant's queued and scheduled jobs in every queue, stop its running ones,
    and drop its queued-guards (`dispatch`'s, and any given); how many jobs were hit.

    A job belongs to a tenant when its first argument is the tenant id.
    """
    hit = 0
    for name in queue.PRIORITY_ORDER:
        target = Queue(name, connection=redis)
        for job in target.get_jobs():
            if _for_tenant(job, tenant_id):
                hit += _cancel(job)
        for job_id in target.scheduled_job_registry.get_job_ids():
            job = _fetch(redis, job_id)
            if job is not None and _for_tenant(job, tenant_id):
                hit += _cancel(job)
        for job_id in target.started_job_registry.get_job_ids():
            job = _fetch(redis, job_id)
            if job is not None and _for_tenant(job, tenant_id):
                with contextlib.suppress(InvalidJobOperation, NoSuchJobError):
                    send_stop_job_command(redis, job.id)
                    hit += 1
    queue.clear_queued(redis, tenant_id)
    for key in guard_keys:
        redis.delete(key)
    return hit


def _for_tenant(job: Job, tenant_id: str) -> bool:
    args = job.args or ()
    return bool(args) and args[0] == tenant_id


def _fetch(redis: Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return None


def _cancel(job: Job) -> int:
    try:
        job.cancel()
    except InvalidJobOperation:  # already cancelled
        return 0
    return 1
