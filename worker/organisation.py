"""Keeping the connection's copy of Xero's Organisation record fresh: its Timezone above all.

"Today" for every rule is the date in the organisation's own time zone (xero.timezones), and
an organisation can move: reconciliation calls `refresh_if_stale`, which asks Xero for
GET /Organisation at most once per `max_age` per tenant (one budgeted call a day by default),
and at once when the record was never read (Xero did not answer when the connection was made).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store import connections
from store.db import transaction
from store.models import XeroConnection
from worker.gateway import TenantApi
from xero.timezones import zone_for

log = logging.getLogger(__name__)

MAX_AGE = timedelta(hours=24)


def _live_row(session: Session, tenant_id: str) -> XeroConnection | None:
    return session.scalars(
        select(XeroConnection)
        .where(XeroConnection.tenant_id == tenant_id, XeroConnection.status != connections.DISCONNECTED)
        .order_by(XeroConnection.id.desc())
    ).first()


def is_stale(checked_at: datetime | None, now: datetime, max_age: timedelta = MAX_AGE) -> bool:
    """Whether the Organisation record read at `checked_at` is due to be read again."""
    return checked_at is None or now - checked_at >= max_age


def refresh_if_stale(
    api: TenantApi,
    sessions: sessionmaker[Session],
    tenant_id: str,
    now: datetime,
    max_age: timedelta = MAX_AGE,
) -> bool:
    """Read GET /Organisation again when the connection's copy is older than `max_age` (or was
    never read), and keep its Timezone, ShortCode, BaseCurrency, Name and the moment; whether
    Xero was called.

    Xero's errors (Throttled, XeroError, ConnectionRevoked) propagate, as from any call the
    caller makes with `api`. An answer with no organisation in it changes nothing, so the
    next pass asks again.
    """
    with sessions() as session:
        row = _live_row(session, tenant_id)
        if row is None or not is_stale(row.organisation_checked_at, now, max_age):
            return False
        before = row.timezone
    organisation = api.organisation()
    with transaction(sessions) as session:
        row = _live_row(session, tenant_id)
        if row is None:  # removed while we asked
            return True
        connections.record_organisation(row, organisation, now)
        after = row.timezone
    if organisation and after != before:
        zone = zone_for(after)
        log.info("organisation time zone changed", extra={
            "tenant_id": tenant_id, "timezone_xero": after, "timezone": zone.iana, "previous": before,
        })
        if not zone.mapped:
            log.warning("organisation time zone unknown; dates use UTC",
                        extra={"tenant_id": tenant_id, "timezone_xero": after})
    return True
