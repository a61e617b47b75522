"""A duplicate delivery costs the same however many events the inbox holds.

The intake keeps no row for a delivery nothing new came of: it inserts the delivery row, finds
every event already held, and deletes the row. That DELETE makes the database look up the events
that point at the row (the foreign key's ON DELETE SET NULL), and the inbox is never pruned, so
without an index on inbox_events.delivery_id every redelivery from Xero scanned every event ever
received, and the intake's one writer waited on it (migration 0003).
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect

from store import inbox
from store.models import Base
from tests.conftest import POSTGRES
from tests.integration.test_webhook_intake import NOW, TENANT, body, connect, event
from webhook import batcher


def test_every_foreign_key_leads_an_index(engine):
    """Deleting (or re-keying) a parent row looks its children up by the foreign key's columns:
    each needs an index (or a unique constraint, or the primary key) that starts with them."""
    schema = inspect(engine)
    unindexed = []
    for table in Base.metadata.sorted_tables:
        leading = [tuple(ix["column_names"]) for ix in schema.get_indexes(table.name)]
        leading += [tuple(uc["column_names"]) for uc in schema.get_unique_constraints(table.name)]
        leading.append(tuple(schema.get_pk_constraint(table.name)["constrained_columns"]))
        for fk in schema.get_foreign_keys(table.name):
            columns = tuple(fk["constrained_columns"])
            if not any(index[: len(columns)] == columns for index in leading):
                unindexed.append(f"{table.name}({', '.join(columns)})")
    assert unindexed == []


def _deliveries(count: int, start: int) -> list[inbox.Delivery]:
    """`count` deliveries of one new event each (numbered from `start`, so never the same twice)."""
    out = []
    for n in range(start, start + count):
        raw = body(event(TENANT, resource_id=f"00000000-0000-4000-8000-{n:012d}"))
        delivery = batcher.delivery_for(raw, NOW + timedelta(milliseconds=n))
        assert delivery is not None and not delivery.malformed
        out.append(delivery)
    return out


@pytest.mark.skipif(POSTGRES, reason="counts SQLite's virtual machine steps")
def test_a_duplicate_delivery_does_not_scan_the_inbox(engine, sessions):
    connect(sessions, TENANT)
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    def store(deliveries: list[inbox.Delivery]) -> list[inbox.Stored]:
        with engine.connect() as conn, conn.begin():
            return inbox.store_many(conn, deliveries)

    def duplicate_cost(held: list[inbox.Delivery]) -> int:
        """SQLite VM steps to store again the last delivery already held: a duplicate."""
        nonlocal steps
        with engine.connect() as conn:
            conn.connection.dbapi_connection.set_progress_handler(step, 1)
            try:
                steps = 0
                with conn.begin():
                    again = inbox.store_many(conn, held[-1:])
            finally:
                conn.connection.dbapi_connection.set_progress_handler(None, 1)
        assert [(s.received, s.inserted, s.delivery_id) for s in again] == [(1, 0, None)]  # nothing new, no row
        return steps

    held = _deliveries(100, 0)
    assert all(s.inserted == 1 for s in store(held))
    small = duplicate_cost(held)
    more = _deliveries(3_000, 100)
    for start in range(0, len(more), 500):
        store(more[start:start + 500])
    large = duplicate_cost(more)
    # a scan of 31 times as many events would cost about that many times the steps
    assert large < 2 * small, (small, large)


def _seq_tuples_read(conn, table: str) -> int:
    """Rows PostgreSQL has read from `table` by sequential scan, this connection's own included."""
    conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
    conn.commit()
    conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
    found = conn.exec_driver_sql("SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = %(t)s", {"t": table})
    value = found.scalar_one()
    conn.commit()
    return value


@pytest.mark.skipif(not POSTGRES, reason="PostgreSQL's cached plans")
def test_the_intake_does_not_scan_the_inbox_as_it_grows(engine, sessions):
    """psycopg prepares a statement a connection has run five times, and PostgreSQL may then plan
    it once for every set of values (a generic plan) with the statistics of that moment. The
    intake's writer keeps its connection, and its first batches meet an empty inbox, where
    reading the whole table is the cheapest way to find a batch's events: so the DELETE of
    delivery rows nothing new came of kept scanning the inbox as it grew (the intake benchmark
    went from 2,700 to 650 deliveries a second over its first 30,000 events, until autovacuum's
    first ANALYZE made PostgreSQL plan it again). It is planned for its values every time now."""
    connect(sessions, TENANT)
    with engine.connect() as conn:
        def store(deliveries: list[inbox.Delivery]) -> None:
            with conn.begin():
                assert all(s.inserted == 1 for s in inbox.store_many(conn, deliveries))

        for start in range(0, 40, 2):  # the writer's first batches: prepared while the inbox is tiny
            store(_deliveries(2, start))
        with engine.connect() as other:  # the inbox grows
            more = _deliveries(5_000, 100)
            for start in range(0, len(more), 500):
                with other.begin():
                    inbox.store_many(other, more[start:start + 500])
        before = _seq_tuples_read(conn, "inbox_events")
        for start in range(10_000, 10_020, 2):
            store(_deliveries(2, start))
        read = _seq_tuples_read(conn, "inbox_events") - before
    assert read < 5_000, f"{read} inbox rows read by sequential scan for 10 batches of 2 deliveries"
