"""Xero connections: which workspace reads which organisation, with its tokens sealed at rest.

Tokens go in and out of the database only through `TokenBox` (Fernet). Nothing here ever
puts token text in an error, a log line or `last_error`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.errors import NotFound
from store.models import XeroConnection
from store.secrets import TokenBox

PENDING, ACTIVE, NEEDS_REAUTH, DISCONNECTED = "pending", "active", "needs_reauth", "disconnected"
CLIENT_CREDENTIALS, AUTHORIZATION_CODE = "client_credentials", "authorization_code"


class NoConnection(NotFound, LookupError):
    """No workspace is connected to this tenant."""


@dataclass(frozen=True)
class ConnectionRecord:
    """A connection as plain data, without its token."""

    id: int
    workspace_id: int
    tenant_id: str
    tenant_name: str | None
    grant_type: str
    status: str
    token_expires_at: datetime | None
    last_error: str | None
    timezone: str | None = None  # Organisation.Timezone as Xero sent it (xero.timezones maps it)
    organisation_checked_at: datetime | None = None  # when GET /Organisation last answered


@dataclass(frozen=True)
class SealedToken:
    connection: ConnectionRecord
    token: dict


def _record(row: XeroConnection) -> ConnectionRecord:
    return ConnectionRecord(
        id=row.id,
        workspace_id=row.workspace_id,
        tenant_id=row.tenant_id,
        tenant_name=row.tenant_name,
        grant_type=row.grant_type,
        status=row.status,
        token_expires_at=row.token_expires_at,
        last_error=row.last_error,
        timezone=row.timezone,
        organisation_checked_at=row.organisation_checked_at,
    )


def _expires_at(token: dict) -> datetime | None:
    value = token.get("expires_at")
    return datetime.fromtimestamp(float(value), timezone.utc) if value else None


def _live(session: Session, tenant_id: str) -> XeroConnection | None:
    return session.scalars(
        select(XeroConnection)
        .where(XeroConnection.tenant_id == tenant_id, XeroConnection.status != DISCONNECTED)
        .order_by(XeroConnection.id.desc())
    ).first()


def connect(
    session: Session,
    box: TokenBox,
    *,
    workspace_id: int,
    tenant_id: str,
    token: dict,
    now: datetime,
    grant_type: str = CLIENT_CREDENTIALS,
    status: str = ACTIVE,
    tenant_name: str | None = None,
    xero_connection_id: str | None = None,
    auth_event_id: str | None = None,
    connected_email: str | None = None,
    short_code: str | None = None,
    base_currency: str | None = None,
    organisation: dict | None = None,
) -> ConnectionRecord:
    """Connect a workspace to a tenant, or re-connect it (fresh token, `status` again): the one
    writer of a connection row.

    A tenant is read by one workspace at a time: connecting it elsewhere is refused. A detail
    not given keeps what the row had. A `pending` grant (held until an admin saves it) records no
    expiry: it is not in use yet. `organisation`, Xero's Organisation record when it
    answered, gives the time zone (and the short code and base currency where those are not
    given).
    """
    row = _live(session, tenant_id)
    if row is not None and row.workspace_id != workspace_id:
        raise ValueError(f"tenant {tenant_id} is already connected to workspace {row.workspace_id}")
    if row is None:
        row = XeroConnection(workspace_id=workspace_id, tenant_id=tenant_id, created_at=now)
        session.add(row)
    row.grant_type = grant_type
    row.status = status
    details = {"tenant_name": tenant_name, "xero_connection_id": xero_connection_id, "auth_event_id": auth_event_id,
               "connected_email": connected_email, "short_code": short_code, "base_currency": base_currency}
    for name, value in details.items():
        if value:
            setattr(row, name, value)
    row.token_ciphertext = box.seal(token)
    row.token_expires_at = _expires_at(token) if status != PENDING else None
    row.last_error = None
    row.updated_at = now
    if organisation:
        record_organisation(row, organisation, now, rename=False)
    session.flush()
    return _record(row)


def record_organisation(
    row: XeroConnection, organisation: dict, now: datetime, *, rename: bool = True
) -> None:
    """Keep what Xero's Organisation record says of the connection: its Timezone (exactly as
    Xero sent it), ShortCode, BaseCurrency and, with `rename`, Name; and when it was read.

    An empty record (Xero did not answer) changes nothing, so the next check asks again.
    A field Xero leaves out keeps what the row had.
    """
    if not organisation:
        return
    if organisation.get("Timezone"):
        row.timezone = str(organisation["Timezone"])[:64]
    if organisation.get("ShortCode"):
        row.short_code = organisation["ShortCode"]
    if organisation.get("BaseCurrency"):
        row.base_currency = organisation["BaseCurrency"]
    if rename and organisation.get("Name"):
        row.tenant_name = organisation["Name"]
    row.organisation_checked_at = now
    row.updated_at = now


def note_organisation(
    session: Session, connection_id: int, organisation: dict, now: datetime, *, rename: bool = False
) -> None:
    """`record_organisation` on the connection with this id (e.g. a pending one just held)."""
    row = session.get(XeroConnection, connection_id)
    if row is None:
        raise NoConnection(f"connection {connection_id} is gone")
    record_organisation(row, organisation, now, rename=rename)
    session.flush()


def find(session: Session, tenant_id: str) -> ConnectionRecord | None:
    """The tenant's live (not disconnected) connection, if any."""
    row = _live(session, tenant_id)
    return _record(row) if row else None


def load_token(session: Session, box: TokenBox, tenant_id: str) -> SealedToken:
    """The tenant's connection and its decrypted token; NoConnection if there is none."""
    row = _live(session, tenant_id)
    if row is None:
        raise NoConnection(f"no live Xero connection for tenant {tenant_id}")
    token = box.open(row.token_ciphertext) if row.token_ciphertext else {}
    return SealedToken(_record(row), token)


def save_token(session: Session, box: TokenBox, connection_id: int, token: dict, now: datetime) -> None:
    row = session.get(XeroConnection, connection_id)
    if row is None:
        raise NoConnection(f"connection {connection_id} is gone")
    row.token_ciphertext = box.seal(token)
    row.token_expires_at = _expires_at(token)
    row.updated_at = now
    session.flush()


def mark_needs_reauth(session: Session, connection_id: int, reason: str, now: datetime) -> None:
    """Stop syncing this connection until a person re-authorises it; mirrored data stays."""
    row = session.get(XeroConnection, connection_id)
    if row is None:
        return
    row.status = NEEDS_REAUTH
    row.last_error = reason[:1000]
    row.updated_at = now
    session.flush()


def live_tenants(session: Session) -> list[str]:
    """Tenants with an active connection: the ones worth reconciling."""
    return list(
        session.scalars(
            select(XeroConnection.tenant_id).where(XeroConnection.status == ACTIVE).order_by(XeroConnection.tenant_id)
        )
    )
