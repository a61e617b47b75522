"""The worker's side of the inbox: a tenant's outstanding events, and what became of them.

Intake writes events `pending`, then `enqueued` (store.inbox); the sync job reads the
outstanding ones in arrival order and settles each as `done`, `ignored` or `failed`.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from store import mirror
from store.models import OUTSTANDING, Contact, EventState, InboxEvent, Invoice

_CHUNK = 500


@dataclass(frozen=True)
class Event:
    id: int
    category: str
    event_type: str
    resource_id: str  # lower case, as the mirror keeps ids
    event_date_utc: datetime
    received_at: datetime
    attempts: int
    data: dict | None = None  # CREDITNOTE events: {"Type": ..., "Status": ...}


def outstanding(session: Session, tenant_id: str, limit: int = 20_000) -> list[Event]:
    rows = session.execute(
        select(
            InboxEvent.id,
            InboxEvent.category,
            InboxEvent.event_type,
            InboxEvent.resource_id,
            InboxEvent.event_date_utc,
            InboxEvent.received_at,
            InboxEvent.attempts,
            InboxEvent.data,
        )
        .where(InboxEvent.tenant_id == tenant_id, InboxEvent.state.in_(OUTSTANDING))
        .order_by(InboxEvent.id)
        .limit(limit)
    ).all()
    return [
        Event(
            r.id, r.category.upper(), r.event_type, r.resource_id.lower(), r.event_date_utc, r.received_at,
            r.attempts, r.data if isinstance(r.data, dict) else None,
        )
        for r in rows
    ]


def awaiting_sync(session: Session, tenant_id: str, category: str, resource_ids: Iterable[str]) -> set[str]:
    """Of these resources, those with an event still waiting (announced, not yet synced)."""
    wanted = sorted(set(resource_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        found.update(
            r.lower()
            for r in session.scalars(
                select(InboxEvent.resource_id).where(
                    InboxEvent.tenant_id == tenant_id,
                    InboxEvent.category == category,
                    InboxEvent.resource_id.in_(chunk + [c.upper() for c in chunk]),
                    InboxEvent.state.in_(OUTSTANDING),
                )
            )
        )
    return found


MIRRORED = {"INVOICE": (Invoice, "invoice_id"), "CONTACT": (Contact, "contact_id")}


def already_current(session: Session, tenant_id: str, events: Iterable[Event]) -> list[Event]:
    """The events, on their first attempt, whose object the mirror already holds at least as
    new as the event. An event tried before (a retry, or an operator's `ops replay`, which
    exists to fetch again) is never among them.

    An event says "this object changed at eventDateUtc"; Xero stamps the object's
    UpdatedDateUTC with the same change, so a mirrored copy whose UpdatedDateUTC is not older
    than the event already shows it (XERO.md: decide staleness by eventDateUtc against the
    fetched UpdatedDateUTC). Such an event needs no call: typically the later deliveries of a
    burst that one If-Modified-Since sweep has already fetched, or a redelivery. Should a
    Xero clock ever stamp a change earlier than the copy we hold, reconciliation's sweep
    (with its overlap) still brings it.
    """
    wanted: dict[str, list[Event]] = {}
    for event in events:
        if event.category in MIRRORED and event.attempts == 0:
            wanted.setdefault(event.category, []).append(event)
    current: list[Event] = []
    for category, of_category in wanted.items():
        model, key = MIRRORED[category]
        held = mirror.stored_versions(session, model, key, tenant_id, sorted({e.resource_id for e in of_category}))
        for event in of_category:
            version = held.get(event.resource_id)
            if version is not None and version >= event.event_date_utc:
                current.append(event)
    return current


def count_attempt(session: Session, event_ids: Iterable[int]) -> None:
    ids = sorted(set(event_ids))
    for start in range(0, len(ids), _CHUNK):
        session.execute(
            update(InboxEvent)
            .where(InboxEvent.id.in_(ids[start : start + _CHUNK]), InboxEvent.state.in_(OUTSTANDING))
            .values(attempts=InboxEvent.attempts + 1)
        )


def settle(
    session: Session, event_ids: Iterable[int], state: EventState, now: datetime, error: str | None = None
) -> int:
    """Mark events done, ignored or failed (only those still outstanding)."""
    ids = sorted(set(event_ids))
    changed = 0
    for start in range(0, len(ids), _CHUNK):
        result = cast(CursorResult[Any], session.execute(
            update(InboxEvent)
            .where(InboxEvent.id.in_(ids[start : start + _CHUNK]), InboxEvent.state.in_(OUTSTANDING))
            .values(state=state, processed_at=now, error=error)
        ))
        changed += result.rowcount
    return changed
