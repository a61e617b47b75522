"""The inbox: every accepted Xero event, committed before Xero hears 200, and its relay to the queue.

An event's state: `pending` (stored, no job asked for yet), `enqueued` (a sync job was asked
for), `done`, `failed`, or `ignored` (a category we do not sync, or a tenant with no live
connection). The intake stores and wakes; `relay` wakes whatever the intake could not.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Protocol, cast

from redis import Redis
from sqlalchemy import Connection, CursorResult, Table, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from infra import queue
from store.db import chunks, transaction
from store.models import OUTSTANDING, EventState, InboxEvent, SyncState, WebhookDelivery, XeroConnection

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
    malformed: bool = False  # kept for inspection only (delivery_id is its row)

    @property
    def duplicates(self) -> int:
        return self.received - self.inserted

    @property
    def tenant_ids(self) -> list[str]:
        return sorted(self.pending)

    @property
    def pending_ids(self) -> list[int]:
        return sorted(i for ids in self.pending.values() for i in ids)


@dataclass(frozen=True)
class Delivery:
    """One signed POST to keep: its parsed events, or (malformed) its body and why it failed."""

    received_at: datetime
    events: Sequence[Announcement] = ()
    body: bytes | None = None  # malformed only
    error: str | None = None  # set: a malformed delivery, kept for inspection

    @property
    def malformed(self) -> bool:
        return self.error is not None


def store(session: Session, events: Sequence[Announcement], now: datetime) -> Stored:
    """Add a delivery's events, skipping any already held; safe against concurrent duplicates.

    A delivery row is kept only when something was new, so a redelivery adds nothing at all.
    """
    return store_many(session.connection(), [Delivery(now, events)])[0]


class LiveTenants:
    """Which tenants are live (connected, not removed) with their last_webhook_at, as one
    process's intake last read them: a tenant found live is taken as live for `ttl` seconds
    more without asking the database again (one query fewer in every intake transaction).

    Only "live" is remembered, never "not live": a tenant connected a moment ago has its very
    first events kept `pending`. A tenant removed within the last `ttl` seconds may have a few
    more events kept `pending` instead of `ignored`; its sync job settles them as ignored
    (worker.sync.drain). Not thread-safe: one intake writer uses it at a time.
    """

    def __init__(self, ttl: float = 1.0, clock=time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._known: dict[str, tuple[float, datetime | None]] = {}  # tenant -> (read at, last_webhook_at)

    def lookup(self, conn: Connection, tenant_ids: Iterable[str]) -> dict[str, datetime | None]:
        now = self._clock()
        found: dict[str, datetime | None] = {}
        missing = []
        for tenant_id in tenant_ids:
            known = self._known.get(tenant_id)
            if known is not None and now - known[0] < self._ttl:
                found[tenant_id] = known[1]
            else:
                missing.append(tenant_id)
        if missing:
            read = _live_and_last_heard(conn, missing)
            for tenant_id, last in read.items():
                self._known[tenant_id] = (now, last)
            found.update(read)
        return found

    def heard(self, touched: dict[str, datetime]) -> None:
        """These tenants' last_webhook_at were just moved (in a transaction still open)."""
        for tenant_id, at in touched.items():
            known = self._known.get(tenant_id)
            if known is not None:
                self._known[tenant_id] = (known[0], at)

    def forget(self) -> None:
        """Drop everything remembered (a transaction that moved last_webhook_at rolled back)."""
        self._known.clear()


def store_many(
    conn: Connection, deliveries: Sequence[Delivery], live_tenants: LiveTenants | None = None,
    delivery_ids: DeliveryIds | None = None,
) -> list[Stored]:
    """Store several deliveries in the caller's transaction; one `Stored` each, in order.

    The intake's group commit: a handful of statements for the whole batch (one multi-row
    INSERT of delivery rows, one of events with ON CONFLICT DO NOTHING RETURNING), yet each
    delivery's result is what storing it alone, in this order, would have given: an event
    repeated within the batch counts as new for its first delivery only, and a delivery with
    nothing new keeps no row. A malformed delivery's `Stored` carries only its delivery id.

    How the rows are written depends on the driver, chosen once (`_writer_for`): on PostgreSQL
    with psycopg 3 the statements go out as one pipeline (`_Pipelined`); elsewhere each waits
    for its RETURNING (`_Returning`).
    """
    claimed = claim(deliveries)
    keeping = [i for i, d in enumerate(deliveries) if d.malformed or claimed[i]]
    if not keeping:
        return [Stored(received=len(d.events), inserted=0) for d in deliveries]
    tenants = {e.tenant_id for i in keeping for _, e in claimed[i]}
    live = live_tenants.lookup(conn, tenants) if live_tenants else _live_and_last_heard(conn, tenants)
    touched = _touch_last_webhook(conn, live, last_heard(deliveries, claimed, live))
    writer = _writer_for(conn, delivery_ids)
    kept = [deliveries[i] for i in keeping]
    ids = writer.delivery_ids(conn, kept)
    delivery_ids_of = dict(zip(keeping, ids))
    rows = sorted(  # one lock order for every writer (the key is each row's first value)
        _row(k, e, delivery_ids_of[i], deliveries[i].received_at, live) for i in keeping for k, e in claimed[i]
    )
    written = writer.write(conn, kept, ids, rows)
    results, unused = outcomes(deliveries, claimed, delivery_ids_of, written)
    writer.drop(conn, unused)
    if live_tenants:
        live_tenants.heard(touched)
    return results


# --- store_many's pure parts ----------------------------------------------------------------


def claim(deliveries: Sequence[Delivery]) -> list[list[tuple[str, Announcement]]]:
    """Each delivery's events by dedupe key, each key claimed by the first delivery naming it
    (a later one, or a repeat within the same delivery, is a duplicate)."""
    taken: set[str] = set()
    claimed: list[list[tuple[str, Announcement]]] = [[] for _ in deliveries]
    for index, delivery in enumerate(deliveries):
        for event in delivery.events:
            key = event.dedupe_key
            if key not in taken:
                taken.add(key)
                claimed[index].append((key, event))
    return claimed


def last_heard(
    deliveries: Sequence[Delivery], claimed: Sequence[Sequence[tuple[str, Announcement]]], live: Iterable[str]
) -> dict[str, datetime]:
    """Each live tenant the claimed events name, with the latest received_at among them."""
    heard: dict[str, datetime] = {}
    for delivery, events in zip(deliveries, claimed):
        for _, event in events:
            if event.tenant_id in live:
                heard[event.tenant_id] = max(heard.get(event.tenant_id, delivery.received_at), delivery.received_at)
    return heard


def outcomes(
    deliveries: Sequence[Delivery], claimed: Sequence[Sequence[tuple[str, Announcement]]],
    delivery_ids_of: dict[int, int], written: Iterable[tuple],
) -> tuple[list[Stored], list[int]]:
    """Each delivery's `Stored`, given the event rows the INSERT wrote (dedupe_key, id,
    tenant_id, state: a key already held wrote none); and the ids of the delivery rows of
    well-formed deliveries nothing new came of (rows to drop)."""
    new = {key: (event_id, tenant_id, state) for key, event_id, tenant_id, state in written}
    results: list[Stored] = []
    unused: list[int] = []
    for index, delivery in enumerate(deliveries):
        if delivery.malformed:
            results.append(Stored(received=0, inserted=0, delivery_id=delivery_ids_of[index], malformed=True))
            continue
        pending: dict[str, list[int]] = {}
        inserted = 0
        for key, _ in claimed[index]:
            row = new.get(key)
            if row is None:
                continue
            inserted += 1
            if row[2] == EventState.PENDING:
                pending.setdefault(row[1], []).append(row[0])
        if index in delivery_ids_of and not inserted:
            unused.append(delivery_ids_of[index])
        results.append(Stored(received=len(delivery.events), inserted=inserted,
                              delivery_id=delivery_ids_of[index] if inserted else None, pending=pending))
    return results, unused


# --- store_many's two ways to write: chosen once per batch by the driver ------------------


class _Writer(Protocol):
    def delivery_ids(self, conn: Connection, deliveries: Sequence[Delivery]) -> list[int]:
        """Ids for these deliveries' rows, in order (inserting the rows, or reserving ids)."""

    def write(self, conn: Connection, deliveries: Sequence[Delivery], ids: list[int], rows: list[tuple]) -> list[tuple]:
        """Write the event rows (and whatever delivery rows are not written yet); the new events'
        (dedupe_key, id, tenant_id, state)."""

    def drop(self, conn: Connection, unused: list[int]) -> None:
        """Delete the delivery rows nothing new came of (if not deleted already)."""


class _Returning:
    """Each statement waits for its answer: SQLite (and PostgreSQL without psycopg 3's pipeline)."""

    def delivery_ids(self, conn: Connection, deliveries: Sequence[Delivery]) -> list[int]:
        return _insert_deliveries(conn, deliveries)

    def write(self, conn: Connection, deliveries: Sequence[Delivery], ids: list[int], rows: list[tuple]) -> list[tuple]:
        return _insert_rows(conn, _EVENT_COLUMNS, rows, _insert_events)

    def drop(self, conn: Connection, unused: list[int]) -> None:
        for chunk in chunks(unused):  # every event of these deliveries was already held: keep no row for them
            conn.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(chunk)))


@dataclass(frozen=True)
class _Pipelined:
    """PostgreSQL with psycopg 3: one pipeline a batch, and the caller's COMMIT the only other
    round trip. The delivery rows take ids reserved ahead from their sequence (`reserved`, a
    block at a time), so nothing waits for a RETURNING, and the rows nothing new came of are
    deleted in the same flight by a statement that looks for their events."""

    reserved: DeliveryIds

    def delivery_ids(self, conn: Connection, deliveries: Sequence[Delivery]) -> list[int]:
        return self.reserved.take(conn, len(deliveries))

    def write(self, conn: Connection, deliveries: Sequence[Delivery], ids: list[int], rows: list[tuple]) -> list[tuple]:
        accepted = [i for i, d in zip(ids, deliveries) if not d.malformed]
        return _write_pipelined(conn, deliveries, ids, rows, accepted)

    def drop(self, conn: Connection, unused: list[int]) -> None:
        pass  # the pipeline deleted them already


def _writer_for(conn: Connection, delivery_ids: DeliveryIds | None) -> _Writer:
    """How this connection writes a batch (without `delivery_ids`, a pipeline reserves just
    the ids it needs)."""
    if _pipelines(conn):
        return _Pipelined(delivery_ids or DeliveryIds(at_once=1))
    return _Returning()


def mark_enqueued(session: Session | Connection, event_ids: Iterable[int], now: datetime) -> int:
    """Record that a sync job was asked for these events; return how many rows changed.

    By id, not by tenant: an event committed after the wake must stay `pending` until its own
    wake (or the relay) succeeds. Events already done, failed or ignored are left alone.
    """
    changed = 0
    for chunk in chunks(sorted(set(event_ids))):
        result = cast(CursorResult[Any], session.execute(_MARK_ENQUEUED, {"ids": list(chunk), "now": now}))
        changed += result.rowcount
    return changed


_MARK_ENQUEUED = (  # built once: the intake marks after every wake
    update(InboxEvent)
    # `state || ''`, not `state`: SQLite would otherwise pick the (state, received_at) index and
    # walk every enqueued event, not the few ids by primary key (0.5 ms for 8 ids at 100k rows)
    .where(InboxEvent.id.in_(bindparam("ids", expanding=True)), InboxEvent.state.concat("").in_(OUTSTANDING))
    .values(state=EventState.ENQUEUED, enqueued_at=bindparam("now", type_=InboxEvent.enqueued_at.type))
)


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
                    and_(InboxEvent.state == EventState.PENDING, InboxEvent.received_at <= now - older_than),
                    and_(InboxEvent.state == EventState.ENQUEUED, InboxEvent.enqueued_at <= now - stale_after),
                )
            )
            .order_by(InboxEvent.id)
            .limit(limit)
        ).all()
    if not due:
        return 0
    tenants = sorted({tenant_id for _, tenant_id in due})
    queue.wake(redis, tenants)
    with transaction(sessions) as session:
        mark_enqueued(session, [event_id for event_id, _ in due], now)
    return len(tenants)


def _row(key: str, event: Announcement, delivery_id: int, now: datetime, live: Iterable[str]) -> tuple:
    """An inbox_events row, its values in _EVENT_COLUMNS order (as given, not yet bound)."""
    wanted = event.category in SYNCED_CATEGORIES and event.tenant_id in live
    state = EventState.PENDING if wanted else EventState.IGNORED
    return (key, delivery_id, event.tenant_id, event.tenant_type, event.category, event.event_type,
            event.resource_id, event.event_date_utc, now, state, 0, event.data)


_EVENT_COLUMNS = ("dedupe_key", "delivery_id", "tenant_id", "tenant_type", "category", "event_type",
                  "resource_id", "event_date_utc", "received_at", "state", "attempts", "data")
_DELIVERY_COLUMNS = ("received_at", "outcome", "event_count", "body", "error")


def _live_and_last_heard(conn: Connection, tenant_ids: Iterable[str]) -> dict[str, datetime | None]:
    """The tenants among `tenant_ids` a workspace is connected to (not disconnected), each with
    its last_webhook_at (None: never, or no sync_state row yet)."""
    found: dict[str, datetime | None] = {}
    for chunk in chunks(sorted(set(tenant_ids))):
        found.update(conn.execute(_LIVE_AND_LAST_HEARD, {"tenants": list(chunk)}).all())
    return found


_LIVE_AND_LAST_HEARD = (  # built once: the intake runs it for every batch
    select(XeroConnection.tenant_id, SyncState.last_webhook_at)
    .outerjoin(SyncState, SyncState.tenant_id == XeroConnection.tenant_id)
    .where(XeroConnection.tenant_id.in_(bindparam("tenants", expanding=True)),
           XeroConnection.status != "disconnected")
)


def _touch_last_webhook(
    conn: Connection, last_heard: dict[str, datetime | None], heard: dict[str, datetime]
) -> dict[str, datetime]:
    """Move each live tenant's last_webhook_at to when it was `heard`, at most once per
    LAST_WEBHOOK_RESOLUTION.

    Writing it on every delivery made every intake transaction of a tenant wait for the
    previous one's commit on PostgreSQL (they all lock its one sync_state row), and cost
    every request a write on SQLite; a second's resolution is all "last heard" needs. Returns
    the tenants moved, and to when."""
    stale = {
        t: at for t, at in sorted(heard.items())
        if (last := last_heard.get(t)) is None or last <= at - LAST_WEBHOOK_RESOLUTION
    }
    if stale:
        conn.execute(_touch_statement(conn.dialect.name),
                     [{"tenant_id": t, "last_webhook_at": at} for t, at in stale.items()])
    return stale


def _dialect_insert(dialect: str, model: type) -> Any:
    """INSERT that can say ON CONFLICT ..., in the dialect at hand (both of ours have it)."""
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"no upsert for {dialect}")


def _insert_events(dialect: str, values: list[dict[str, Any]]) -> Any:
    """INSERT ... VALUES (...), ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING what a new row became."""
    statement = _dialect_insert(dialect, InboxEvent).values(values)
    statement = statement.on_conflict_do_nothing(index_elements=["dedupe_key"])
    return statement.returning(InboxEvent.dedupe_key, InboxEvent.id, InboxEvent.tenant_id, InboxEvent.state)


def _insert_deliveries_statement(dialect: str, values: list[dict[str, Any]]) -> Any:
    """INSERT ... VALUES (...), ... RETURNING id (SQLite only: see _insert_deliveries)."""
    return insert(WebhookDelivery).values(values).returning(WebhookDelivery.id)


# --- the intake's hot INSERTs, straight to the driver ------------------------------------------
#
# SQLAlchemy writes each statement's SQL once per dialect and row count (the cache below); the
# rows go to the DBAPI cursor as plain tuples, each value passed through its column type's own
# bind processor (UTCDateTime, the dialect's DateTime and JSON), which is what SQLAlchemy itself
# would bind, minus its per-row, per-parameter bookkeeping (most of the writer's SQLAlchemy time).
# The SQL is run with exec_driver_sql, so errors are SQLAlchemy's as for any other statement.
# A None stays None: SQL NULL (the JSON type alone would write JSON 'null').

ROWS_PER_STATEMENT = 64  # rows of one multi-row VALUES: 768 parameters at most, far under every limit


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...] | None  # positional parameters' names in order; None: named (a dict)


_compiled: dict[tuple[Any, Any, int], _Compiled] = {}
_processors: dict[tuple[Any, str, tuple[str, ...]], tuple[Any, ...]] = {}


def _insert_rows(conn: Connection, columns: tuple[str, ...], rows: Sequence[tuple], build: Any) -> list[tuple]:
    """Run `build(dialect, values)` (a multi-row INSERT ... RETURNING of `columns`) for `rows`
    through the connection's DBAPI cursor; every row it returns."""
    found: list[tuple] = []
    for sql, params in _bound(conn, columns, rows, build):
        # exec_driver_sql: no per-parameter processing, yet SQLAlchemy's error wrapping (DBAPIError,
        # a lost connection invalidated) and events, as for any statement
        found.extend(conn.exec_driver_sql(sql, params).all())
    return found


def _bound(conn: Connection, columns: tuple[str, ...], rows: Sequence[tuple], build: Any) -> list[tuple[str, Any]]:
    """`build`'s SQL and bound parameters for `rows`, ROWS_PER_STATEMENT rows a statement."""
    if not rows:
        return []
    dialect = conn.dialect
    table = cast(Table, WebhookDelivery.__table__ if build in (_insert_deliveries_statement, _insert_deliveries_plain)
                 else InboxEvent.__table__)
    processors = _processors.get((dialect, table.name, columns))
    if processors is None:
        processors = tuple(table.c[name].type._cached_bind_processor(dialect) for name in columns)
        _processors[(dialect, table.name, columns)] = processors
    bound = [
        tuple(value if value is None or process is None else process(value) for value, process in zip(row, processors))
        for row in rows
    ]
    statements = []
    for start in range(0, len(bound), ROWS_PER_STATEMENT):
        part = bound[start:start + ROWS_PER_STATEMENT]
        compiled = _statement(dialect, table, columns, len(part), build)
        flat = [value for row in part for value in row]
        params = dict(zip(_names(columns, len(part)), flat)) if compiled.names is None else tuple(flat)
        statements.append((compiled.sql, params))
    return statements


def _names(columns: tuple[str, ...], count: int) -> list[str]:
    return [f"{name}_{i}" for i in range(count) for name in columns]


def _statement(dialect: Any, table: Any, columns: tuple[str, ...], count: int, build: Any) -> _Compiled:
    found = _compiled.get((dialect, build, count))
    if found is None:
        values = [{name: bindparam(f"{name}_{i}", type_=table.c[name].type) for name in columns} for i in range(count)]
        compiled = build(dialect.name, values).compile(dialect=dialect)
        if compiled.positional:
            expected = _names(columns, count)
            assert list(compiled.positiontup) == expected, "parameters out of row order"
            found = _Compiled(compiled.string, tuple(expected))
        else:
            found = _Compiled(compiled.string, None)
        _compiled[(dialect, build, count)] = found
    return found


@cache
def _touch_statement(dialect: str) -> Any:
    insert_ = _dialect_insert(dialect, SyncState)
    return insert_.on_conflict_do_update(
        index_elements=["tenant_id"],
        set_={"last_webhook_at": insert_.excluded.last_webhook_at},
        where=or_(SyncState.last_webhook_at.is_(None), SyncState.last_webhook_at < insert_.excluded.last_webhook_at),
    )


_INSERT_DELIVERIES = insert(WebhookDelivery).returning(WebhookDelivery.id, sort_by_parameter_order=True)


def _insert_deliveries_plain(dialect: str, values: list[dict[str, Any]]) -> Any:
    """INSERT ... VALUES (...), ... with the ids given (PostgreSQL's pipeline: nothing to wait for)."""
    return insert(WebhookDelivery).values(values)


# --- PostgreSQL: one pipeline a batch -------------------------------------------------------------

DELIVERY_IDS_AT_ONCE = 1024  # ids reserved from webhook_deliveries' sequence in one round trip
_DELIVERY_COLUMNS_WITH_ID = ("id", *_DELIVERY_COLUMNS)
_DROP_UNUSED = (  # the batch's delivery rows none of whose events is new (each new event names its row)
    "DELETE FROM webhook_deliveries WHERE id = ANY(%(ids)s) AND NOT EXISTS "
    "(SELECT 1 FROM inbox_events WHERE inbox_events.dedupe_key = ANY(%(keys)s) "
    "AND inbox_events.delivery_id = webhook_deliveries.id)"
)


class DeliveryIds:
    """Ids for new webhook_deliveries rows on PostgreSQL, reserved from the table's sequence a
    block at a time, so a batch's INSERT waits for no RETURNING. An id reserved and never used
    (a rollback, a restart) is a gap, as with any sequence. `forget` drops what is reserved (a
    failed transaction: the sequence may have been reset, by a restore say). Thread-safe."""

    def __init__(self, at_once: int = DELIVERY_IDS_AT_ONCE):
        self._at_once = at_once
        self._free: deque[int] = deque()
        self._lock = threading.Lock()

    def take(self, conn: Connection, count: int) -> list[int]:
        with self._lock:
            if len(self._free) < count:
                self._free.extend(conn.exec_driver_sql(
                    "SELECT nextval(pg_get_serial_sequence('webhook_deliveries', 'id')) "
                    "FROM generate_series(1, %(n)s)", {"n": max(count - len(self._free), self._at_once)}
                ).scalars())
            return [self._free.popleft() for _ in range(count)]

    def forget(self) -> None:
        with self._lock:
            self._free.clear()


def _pipelines(conn: Connection) -> bool:
    """Whether this connection can send a batch's statements as one pipeline (psycopg 3 on PostgreSQL)."""
    return conn.dialect.name == "postgresql" and hasattr(conn.connection.driver_connection, "pipeline")


def _write_pipelined(conn: Connection, deliveries: Sequence[Delivery], ids: list[int], rows: list[tuple],
                     accepted_ids: list[int]) -> list[tuple]:
    """INSERT the delivery rows (their ids given) and the events, and delete the delivery rows
    nothing new came of, in one round trip; the new events' (dedupe_key, id, tenant_id, state).
    psycopg's errors come out as SQLAlchemy's (DBAPIError), as from any statement."""
    delivery_rows = [(i, *_delivery_row(d)) for i, d in zip(ids, deliveries)]
    statements = _bound(conn, _DELIVERY_COLUMNS_WITH_ID, delivery_rows, _insert_deliveries_plain)
    returning = _bound(conn, _EVENT_COLUMNS, rows, _insert_events)
    raw: Any = conn.connection.driver_connection
    try:
        with raw.pipeline():
            with raw.cursor() as cursor:
                for sql, params in statements:
                    cursor.execute(sql, params)
            cursors = [raw.cursor() for _ in returning]
            for cursor, (sql, params) in zip(cursors, returning):
                cursor.execute(sql, params)
            if accepted_ids:
                # never prepared: psycopg prepares a statement run five times, and PostgreSQL may then
                # keep one plan for all values, made while the inbox was nearly empty (read it all);
                # planned for its own values, it looks its few keys up (test_inbox_duplicates.py)
                with raw.cursor() as cursor:
                    cursor.execute(_DROP_UNUSED, {"ids": accepted_ids, "keys": [row[0] for row in rows]}, prepare=False)
        found = [tuple(row) for cursor in cursors for row in cursor.fetchall()]
        for cursor in cursors:
            cursor.close()
        return found
    except conn.dialect.loaded_dbapi.Error as error:
        invalidated = conn.dialect.is_disconnect(error, raw, None)
        if invalidated:
            conn.invalidate(error)
        raise DBAPIError.instance(None, None, error, conn.dialect.loaded_dbapi.Error,
                                  connection_invalidated=invalidated, dialect=conn.dialect) from error


def _delivery_row(d: Delivery) -> tuple:
    """A webhook_deliveries row's values, in _DELIVERY_COLUMNS order."""
    return (d.received_at, "malformed" if d.malformed else "accepted", len(d.events), d.body if d.malformed else None,
            d.error[:2000] if d.error is not None else None)


def _insert_deliveries(conn: Connection, deliveries: Sequence[Delivery]) -> list[int]:
    """One webhook_deliveries row each; their ids, in the same order."""
    rows = [_delivery_row(d) for d in deliveries]
    if conn.dialect.name == "sqlite":
        # One multi-row INSERT. Holding the write lock (BEGIN IMMEDIATE), SQLite gives each new
        # row max(rowid) + 1 as it inserts the VALUES in order, so the ids in ascending order
        # are the rows in order.
        return sorted(row[0] for row in _insert_rows(conn, _DELIVERY_COLUMNS, rows, _insert_deliveries_statement))
    # PostgreSQL promises no order of RETURNING: SQLAlchemy's sort_by_parameter_order does.
    return list(conn.execute(_INSERT_DELIVERIES, [dict(zip(_DELIVERY_COLUMNS, row)) for row in rows]).scalars())
