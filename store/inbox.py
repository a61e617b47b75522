"""The inbox: every accepted Xero event, committed before Xero hears 200, and its relay to the queue.

An event's state: `pending` (stored, no job asked for yet), `enqueued` (a sync job was asked
for), `done`, `failed`, or `ignored` (a category we do not sync, or a tenant with no live
connection). The intake stores and wakes; `relay` wakes whatever the intake could not.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from redis import Redis
from sqlalchemy import and_, null, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from store import dispatch
from store.db import chunks, transaction, upsert_insert
from store.models import InboxEvent, SyncState, WebhookDelivery, XeroConnection

PENDING, ENQUEUED, DONE, FAILED, IGNORED = "pending", "enqueued", "done", "failed", "ignored"
LAST_WEBHOOK_RESOLUTION = timedelta(seconds=1)  # sync_state.last_webhook_at is at most this stale
SYNCED_CATEGORIES = frozenset({"INVOICE", "CONTACT", "CREDITNOTE"})  # a credit note re-syncs its invoices


class Announcement(Protocol):
    """What the inbox needs of an event (webhook.payload.Event has it; nothing here imports webhook)."""

    @property
    def dedupe_key(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def tenant_type(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def resource_id(self) -> str: ...
    @property
    def event_date_utc(self) -> datetime: ...
    @property
    def data(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Stored:
    """What one delivery added to the inbox."""

    received: int  # events in the delivery
    inserted: int  # of which new (the rest were duplicates)
    delivery_id: int | None = None  # None when nothing was new
    pending: dict[str, list[int]] = field(default_factory=dict)  # tenant -> ids of its new pending events

    @property
    def duplicates(self) -> int:
        return self.received - self.inserted

    @property
    def tenant_ids(self) -> list[str]:
        return sorted(self.pending)

    @property
    def pending_ids(self) -> list[int]:
        return sorted(i for ids in self.pending.values() for i in ids)


def store(session: Session, events: Sequence[Announcement], now: datetime) -> Stored:
    """Add a delivery's events, skipping any already held; safe against concurrent duplicates.

    A delivery row is kept only when something was new, so a redelivery adds nothing at all.
    """
    unique: dict[str, Announcement] = {}
    for event in events:
        unique.setdefault(event.dedupe_key, event)
    if not unique:
        return Stored(received=len(events), inserted=0)
    live = _live_and_last_heard(session, {e.tenant_id for e in unique.values()})
    delivery = WebhookDelivery(received_at=now, outcome="accepted", event_count=len(events))
    session.add(delivery)
    session.flush()
    rows = [_row(e, delivery.id, now, live) for _, e in sorted(unique.items())]  # one lock order for all
    new = []
    for chunk in chunks(rows, 200):  # multi-row VALUES, under SQLite's bound-parameter limit
        insert = upsert_insert(session, InboxEvent).values(chunk)
        insert = insert.on_conflict_do_nothing(index_elements=["dedupe_key"])
        new += session.execute(insert.returning(InboxEvent.id, InboxEvent.tenant_id, InboxEvent.state)).all()
    if not new:
        session.delete(delivery)
    _touch_last_webhook(session, live, now)
    pending: dict[str, list[int]] = {}
    for event_id, tenant_id, state in new:
        if state == PENDING:
            pending.setdefault(tenant_id, []).append(event_id)
    return Stored(
        received=len(events), inserted=len(new), delivery_id=delivery.id if new else None, pending=pending
    )


def record_malformed(session: Session, body: bytes, error: str, now: datetime) -> int:
    """Keep a signed body we could not parse, for inspection; return its delivery id."""
    delivery = WebhookDelivery(
        received_at=now, outcome="malformed", event_count=0, body=body, error=error[:2000]
    )
    session.add(delivery)
    session.flush()
    return delivery.id


def live_tenants(session: Session, tenant_ids: Iterable[str]) -> set[str]:
    """The tenants among `tenant_ids` that a workspace is connected to (not disconnected)."""
    wanted = sorted(set(tenant_ids))
    found: set[str] = set()
    for chunk in chunks(wanted):
        found.update(
            session.scalars(
                select(XeroConnection.tenant_id).where(
                    XeroConnection.tenant_id.in_(chunk), XeroConnection.status != "disconnected"
                )
            )
        )
    return found


def mark_enqueued(session: Session, event_ids: Iterable[int], now: datetime) -> int:
    """Record that a sync job was asked for these events; return how many rows changed.

    By id, not by tenant: an event committed after the wake must stay `pending` until its own
    wake (or the relay) succeeds. Events already done, failed or ignored are left alone.
    """
    changed = 0
    for chunk in chunks(sorted(set(event_ids))):
        result = session.execute(
            update(InboxEvent)
            .where(InboxEvent.id.in_(chunk), InboxEvent.state.in_((PENDING, ENQUEUED)))
            .values(state=ENQUEUED, enqueued_at=now)
        )
        changed += result.rowcount
    return changed


def relay(
    sessions: sessionmaker[Session],
    redis: Redis,
    now: datetime,
    older_than: timedelta = timedelta(seconds=5),
    stale_after: timedelta = timedelta(minutes=30),
    limit: int = 10_000,
) -> int:
    """Wake every tenant whose events the queue never heard of; return how many tenants.

    Two cases: `pending` older than `older_than` (Redis was down, or the process died between
    commit and wake), and `enqueued` longer ago than `stale_after` (the job was lost, e.g. a
    Redis restart without persistence). Waking is coalesced, so a tenant whose job is already
    queued gets no second one. Raises `redis.RedisError` if Redis is still down.
    """
    with sessions() as session:
        due = session.execute(
            select(InboxEvent.id, InboxEvent.tenant_id)
            .where(
                or_(
                    and_(InboxEvent.state == PENDING, InboxEvent.received_at <= now - older_than),
                    and_(InboxEvent.state == ENQUEUED, InboxEvent.enqueued_at <= now - stale_after),
                )
            )
            .order_by(InboxEvent.id)
            .limit(limit)
        ).all()
    if not due:
        return 0
    tenants = sorted({tenant_id for _, tenant_id in due})
    dispatch.wake(redis, tenants)
    with transaction(sessions) as session:
        mark_enqueued(session, [event_id for event_id, _ in due], now)
    return len(tenants)


def _row(event: Announcement, delivery_id: int, now: datetime, live: set[str]) -> dict[str, Any]:
    wanted = event.category in SYNCED_CATEGORIES and event.tenant_id in live
    return {
        "dedupe_key": event.dedupe_key,
        "delivery_id": delivery_id,
        "tenant_id": event.tenant_id,
        "tenant_type": event.tenant_type,
        "category": event.category,
        "event_type": event.event_type,
        "resource_id": event.resource_id,
        "event_date_utc": event.event_date_utc,
        "received_at": now,
        "state": PENDING if wanted else IGNORED,
        "attempts": 0,
        "data": null() if event.data is None else event.data,  # SQL NULL, not JSON 'null'
    }


def _live_and_last_heard(session: Session, tenant_ids: Iterable[str]) -> dict[str, datetime | None]:
    """`live_tenants`, each with its last_webhook_at (None: never, or no sync_state row yet)."""
    found: dict[str, datetime | None] = {}
    for chunk in chunks(sorted(set(tenant_ids))):
        found.update(session.execute(
            select(XeroConnection.tenant_id, SyncState.last_webhook_at)
            .outerjoin(SyncState, SyncState.tenant_id == XeroConnection.tenant_id)
            .where(XeroConnection.tenant_id.in_(chunk), XeroConnection.status != "disconnected")
        ).all())
    return found


def _touch_last_webhook(session: Session, heard: dict[str, datetime | None], now: datetime) -> None:
    """Move each tenant's last_webhook_at to `now`, at most once per LAST_WEBHOOK_RESOLUTION.

    Writing it on every delivery made every intake transaction of a tenant wait for the
    previous one's commit on PostgreSQL (they all lock its one sync_state row), and cost
    every request a write on SQLite; a second's resolution is all "last heard" needs."""
    stale = sorted(t for t, at in heard.items() if at is None or at <= now - LAST_WEBHOOK_RESOLUTION)
    if not stale:
        return
    insert = upsert_insert(session, SyncState)
    upsert = insert.on_conflict_do_update(
        index_elements=["tenant_id"],
        set_={"last_webhook_at": insert.excluded.last_webhook_at},
        where=or_(SyncState.last_webhook_at.is_(None), SyncState.last_webhook_at < insert.excluded.last_webhook_at),
    )
    session.execute(upsert, [{"tenant_id": t, "last_webhook_at": now} for t in stale])
