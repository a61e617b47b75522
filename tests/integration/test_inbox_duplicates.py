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
