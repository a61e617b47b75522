"""The intake's group commit (webhook/batcher.py): deliveries share a transaction, yet each
request hears its own result; a failed batch stores nothing; the wake after the commit may
fail or never happen and the events stay pending for the relay."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from redis import Redis, RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from infra import queue
from store import inbox
from store.db import transaction as transaction_of
from store.models import InboxEvent, SyncState, WebhookDelivery, XeroConnection
from tests.conftest import POSTGRES
from tests.integration.test_webhook_intake import (
    KEY,
    NOW,
    OTHER,
    TENANT,
    body,
    connect,
    event,
    inbox_rows,
    jobs,
    make_app,
    post,
)
from webhook import batcher
from webhook.payload import parse
from webhook.signature import sign
from wsgi import close_app, runtime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(database_url, redis_url):
    app = make_app(database_url, redis_url)
    yield app
    assert close_app(app)  # nothing still writing while the engine is disposed


@pytest.fixture
def redis(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    client.close()


def intake_of(app) -> batcher.Intake:
    return batcher.for_app(app.extensions, runtime(app))


def count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


class HeldWriter:
    """Wraps inbox.store_many: the first batch waits until `release()`, so the deliveries that
    arrive meanwhile pile up and go together in the next one; records each batch's size."""

    def __init__(self, monkeypatch, fail_after_writing: bool = False):
        self.sizes: list[int] = []
        self.entered = threading.Event()
        self._go = threading.Event()
        self._fail = fail_after_writing
        real = inbox.store_many

        def store_many(conn, deliveries, *args):
            self.sizes.append(len(deliveries))
            if len(self.sizes) == 1:
                self.entered.set()
                self._go.wait(10)
            results = real(conn, deliveries, *args)  # writes everything, then (maybe) the batch fails
            if self._fail and len(self.sizes) > 1:
                raise OperationalError("INSERT ...", {}, Exception("disk I/O error"))
            return results

        monkeypatch.setattr(inbox, "store_many", store_many)

    def release(self) -> None:
        self._go.set()


def deliver_concurrently(app, raws: list[bytes], writer: HeldWriter) -> list[int]:
    """POST the first body alone (it holds the writer), then the rest at once; their statuses."""
    statuses: list[int | None] = [None] * len(raws)

    def send(i: int) -> None:
        response = app.test_client().post("/webhooks/xero", data=raws[i], content_type="application/json",
                                          headers={"x-xero-signature": sign(raws[i], KEY)})
        statuses[i] = response.status_code

    first = threading.Thread(target=send, args=(0,))
    first.start()
    assert writer.entered.wait(5)
    rest = [threading.Thread(target=send, args=(i,)) for i in range(1, len(raws))]
    for t in rest:
        t.start()
    deadline = 5.0
    while len(intake_of(app)._waiting) < len(rest) and deadline > 0:  # all queued behind the first
        threading.Event().wait(0.01)
        deadline -= 0.01
    writer.release()
    for t in [first, *rest]:
        t.join(10)
    return statuses


def test_concurrent_deliveries_share_one_commit_and_each_hears_its_own_result(app, sessions, redis, monkeypatch):
    connect(sessions, TENANT)
    connect(sessions, OTHER)
    shared = event(TENANT)
    raws = [
        body(event(TENANT)),  # holds the writer
        body(shared, event(OTHER)),  # new
        body(shared),  # the same event again, in the same batch: a duplicate, no delivery row
        b"signed, but not JSON",  # malformed: 400, kept
        body(event(category="SUBSCRIPTION")),  # new, ignored
        body(shared, event(TENANT)),  # one duplicate, one new
    ]
    writer = HeldWriter(monkeypatch)
    results: list[inbox.Stored] = []
    real_keep = batcher.Intake.keep

    def keep(self, delivery):
        stored = real_keep(self, delivery)
        results.append(stored)
        return stored

    monkeypatch.setattr(batcher.Intake, "keep", keep)

    statuses = deliver_concurrently(app, raws, writer)

    assert statuses == [200, 200, 200, 400, 200, 200]
    assert writer.sizes == [1, 5]  # everything that waited went in one transaction
    assert intake_of(app).settle(2.0)
    by_received = sorted((s.received, s.inserted, s.delivery_id is not None, s.malformed) for s in results)
    assert by_received == sorted([
        (1, 1, True, False), (2, 2, True, False), (1, 0, False, False), (0, 0, True, True),
        (1, 1, True, False), (2, 1, True, False),
    ])
    assert count(sessions, InboxEvent) == 5
    with sessions() as s:
        outcomes = sorted(s.scalars(select(WebhookDelivery.outcome)))
    assert outcomes == ["accepted"] * 4 + ["malformed"]
    states = {r.category: r.state for r in inbox_rows(sessions)}
    assert states["SUBSCRIPTION"] == "ignored"
    assert {r.state for r in inbox_rows(sessions) if r.category == "INVOICE"} == {"enqueued"}
    assert sorted(job.args for job in jobs(redis)) == sorted([(TENANT,), (OTHER,)])


def test_a_database_failure_answers_503_to_every_request_of_the_batch_and_stores_none_of_it(
    app, sessions, redis, monkeypatch
):
    connect(sessions, TENANT)
    raws = [body(event()) for _ in range(5)] + [b"signed garbage"]
    writer = HeldWriter(monkeypatch, fail_after_writing=True)

    statuses = deliver_concurrently(app, raws, writer)

    assert statuses == [200, 503, 503, 503, 503, 503]
    assert writer.sizes == [1, 5]  # the batch failed as a whole: nobody retried alone
    assert count(sessions, InboxEvent) == 1 and count(sessions, WebhookDelivery) == 1  # only the first
    assert intake_of(app).settle(2.0)


def test_one_delivery_the_database_refuses_does_not_refuse_the_rest_of_its_batch(app, sessions, monkeypatch):
    connect(sessions, TENANT)
    poison = event(resource_id="poison")
    raws = [body(event()), body(event()), body(poison), body(event())]
    writer = HeldWriter(monkeypatch)
    real_row = inbox._row

    def row(key, announced, *args):
        if announced.resource_id == "poison":  # as if the database refused its data
            values = list(real_row(key, announced, *args))
            values[inbox._EVENT_COLUMNS.index("tenant_id")] = None
            return tuple(values)
        return real_row(key, announced, *args)

    monkeypatch.setattr(inbox, "_row", row)

    statuses = deliver_concurrently(app, raws, writer)

    assert statuses == [200, 200, 503, 200]
    assert writer.sizes[:2] == [1, 3]  # the batch of 3 failed, then each was stored alone
    assert count(sessions, InboxEvent) == 3


def test_when_the_wake_fails_after_the_commit_the_events_stay_pending_for_the_relay(
    app, sessions, redis, monkeypatch
):
    connect(sessions, TENANT)

    def down(*_args, **_kwargs):
        raise RedisError("connection refused")

    monkeypatch.setattr(queue, "wake", down)
    response = post(app.test_client(), body(event(), event()))

    assert response.status_code == 200  # the commit is all the answer waits for
    rows = inbox_rows(sessions)
    assert [r.state for r in rows] == ["pending", "pending"] and jobs(redis) == []
    monkeypatch.undo()  # Redis is back
    assert inbox.relay(sessions, redis, now=rows[0].received_at + timedelta(seconds=10)) == 1
    assert {r.state for r in inbox_rows(sessions)} == {"enqueued"}


def test_the_waker_survives_an_unexpected_error_and_wakes_the_next_delivery(app, sessions, redis, monkeypatch):
    connect(sessions, TENANT)
    real_wake = queue.wake
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("a bug")
        return real_wake(*args, **kwargs)

    monkeypatch.setattr(queue, "wake", flaky)
    post(app.test_client(), body(event()))
    post(app.test_client(), body(event()))

    assert [r.state for r in inbox_rows(sessions)] == ["pending", "enqueued"]
    assert [job.args for job in jobs(redis)] == [(TENANT,)]


EXITING = """
import os, sys
from infra.settings import Settings
from tests.integration.test_webhook_intake import body, event, KEY
from webhook.signature import sign
from wsgi import create_app
app = create_app(Settings(database_url=sys.argv[1], redis_url=sys.argv[2], xero_webhook_key=KEY))
client = app.test_client()
for _ in range(5):
    raw = body(event(), event())
    response = client.post("/webhooks/xero", data=raw, content_type="application/json",
                           headers={"x-xero-signature": sign(raw, KEY)})
    assert response.status_code == 200
if sys.argv[3] == "kill":
    os._exit(0)  # as SIGKILL would: no atexit, whatever the waker had not done is not done
sys.exit(0)  # a gunicorn worker's normal exit: atexit lets the waker finish
"""


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_at_process_exit_accepted_events_are_enqueued_or_left_pending_for_the_relay(
    database_url, redis_url, sessions, redis, how
):
    connect(sessions, TENANT)
    done = subprocess.run([sys.executable, "-c", EXITING, database_url, redis_url, how], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]

    rows = inbox_rows(sessions)
    assert len(rows) == 10  # every answered delivery is committed
    if how == "exit":
        assert {r.state for r in rows} == {"enqueued"} and [j.args for j in jobs(redis)] == [(TENANT,)]
    else:
        assert {r.state for r in rows} <= {"pending", "enqueued"}
        inbox.relay(sessions, redis, now=max(r.received_at for r in rows) + timedelta(seconds=10))
        assert {r.state for r in inbox_rows(sessions)} == {"enqueued"}
        assert [j.args for j in jobs(redis)] == [(TENANT,)]


def test_store_many_gives_each_delivery_what_storing_it_alone_in_order_would(sessions):
    connect(sessions, TENANT)
    a, b_ = parse(body(event())), parse(body(event(), event()))
    engine = sessions.kw["bind"]
    with engine.begin() as conn:
        first = inbox.store_many(conn, [inbox.Delivery(NOW, a), inbox.Delivery(NOW, a + b_),
                                        inbox.Delivery(NOW, b_ + b_)])
    assert [(s.received, s.inserted, s.delivery_id is not None) for s in first] == [
        (1, 1, True), (3, 2, True), (4, 0, False)]
    with engine.begin() as conn:
        again = inbox.store_many(conn, [inbox.Delivery(NOW, a + b_)])
    assert [(s.inserted, s.delivery_id) for s in again] == [(0, None)]
    assert count(sessions, InboxEvent) == 3 and count(sessions, WebhookDelivery) == 2


def test_rows_the_intake_writes_straight_to_the_driver_read_back_as_the_orm_writes_them(sessions):
    """store_many binds its INSERTs' values itself (inbox._insert_rows): every column must come
    back through the ORM exactly as the same values written by the ORM do."""
    connect(sessions, TENANT)
    announced = parse(body(
        event(eventDateUtc="2026-11-25T10:59:58.123456+02:00"),  # an offset: stored as UTC
        event(category="CREDITNOTE", data={"Type": "ACCRECCREDIT", "Status": "AUTHORISED", "n": [1, "ü", None]}),
        event(category="SUBSCRIPTION", tenant_id=OTHER),  # not live: ignored
    ))
    received = NOW.replace(microsecond=654321)
    engine = sessions.kw["bind"]
    with engine.begin() as conn:
        [stored] = inbox.store_many(conn, [inbox.Delivery(received, announced)])
        [kept] = inbox.store_many(conn, [inbox.Delivery(received, body=b"\x00junk", error="not JSON")])
    columns = [c.key for c in InboxEvent.__table__.columns if c.key not in ("id", "delivery_id", "dedupe_key")]
    with sessions() as s:
        fast = {r.resource_id: r for r in s.scalars(select(InboxEvent))}
        delivery = s.get(WebhookDelivery, stored.delivery_id)
        malformed = s.get(WebhookDelivery, kept.delivery_id)
        assert (delivery.received_at, delivery.outcome, delivery.event_count, delivery.body) == (
            received, "accepted", 3, None)
        assert (malformed.received_at, malformed.outcome, malformed.body, malformed.error) == (
            received, "malformed", b"\x00junk", "not JSON")
        by_orm = [InboxEvent(**{c: getattr(r, c) for c in columns}, dedupe_key="orm" + r.dedupe_key[3:],
                             delivery_id=r.delivery_id) for r in fast.values()]
    with transaction_of(sessions) as s:
        s.add_all(by_orm)
    with sessions() as s:
        rows = list(s.scalars(select(InboxEvent)))
        orm = {r.resource_id: r for r in rows if r.dedupe_key.startswith("orm")}
        fast = {r.resource_id: r for r in rows if not r.dedupe_key.startswith("orm")}
        assert len(fast) == len(orm) == 3
        for resource_id, row in fast.items():
            assert {c: getattr(row, c) for c in columns} == {c: getattr(orm[resource_id], c) for c in columns}
        # and the values are the ones announced
        assert {(r.category, r.state, r.event_date_utc, r.received_at, r.data is None) for r in fast.values()} == {
            ("INVOICE", "pending", datetime(2026, 11, 25, 8, 59, 58, 123456, tzinfo=timezone.utc), received, True),
            ("CREDITNOTE", "pending", announced[1].event_date_utc, received, False),
            ("SUBSCRIPTION", "ignored", announced[2].event_date_utc, received, True)}
        assert [r.data for r in fast.values() if r.category == "CREDITNOTE"] == [
            {"Type": "ACCRECCREDIT", "Status": "AUTHORISED", "n": [1, "ü", None]}]
        # SQL NULL, not JSON 'null', where there is no data (the ORM's own insert would write 'null')
        nulls = select(func.count()).select_from(InboxEvent).where(
            InboxEvent.data.is_(None), InboxEvent.dedupe_key.not_like("orm%"))
        assert s.scalar(nulls) == 2


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def store_with(sessions, live: inbox.LiveTenants, *events: dict) -> list[str]:
    """Store one delivery through `live`; the states its events were kept in."""
    engine = sessions.kw["bind"]
    with engine.begin() as conn:
        [stored] = inbox.store_many(conn, [inbox.Delivery(NOW, parse(body(*events)))], live)
    with sessions() as s:
        return [s.get(InboxEvent, i).state for ids in stored.pending.values() for i in ids] or ["ignored"]


def test_a_tenant_connected_a_moment_ago_has_its_first_events_kept_pending(sessions):
    """"Not live" is never remembered: the intake asks again until the tenant is live."""
    live = inbox.LiveTenants(ttl=60, clock=Clock())
    assert store_with(sessions, live, event(TENANT)) == ["ignored"]
    connect(sessions, TENANT)
    assert store_with(sessions, live, event(TENANT)) == ["pending"]


def test_a_live_tenant_is_remembered_for_ttl_seconds_and_then_read_again(sessions):
    clock = Clock()
    live = inbox.LiveTenants(ttl=1.0, clock=clock)
    connect(sessions, TENANT)
    assert store_with(sessions, live, event(TENANT)) == ["pending"]
    with transaction_of(sessions) as s:  # removed: its sync job would settle what still comes as ignored
        for row in s.scalars(select(XeroConnection).where(XeroConnection.tenant_id == TENANT)):
            row.status = "disconnected"
    clock.now = 0.9
    assert store_with(sessions, live, event(TENANT)) == ["pending"]  # remembered
    clock.now = 1.0
    assert store_with(sessions, live, event(TENANT)) == ["ignored"]  # read again


def test_last_webhook_at_moves_at_most_once_a_second_through_the_remembered_tenants(sessions):
    live = inbox.LiveTenants(ttl=60, clock=Clock())
    connect(sessions, TENANT)
    engine = sessions.kw["bind"]

    def deliver(seconds: float, commit: bool = True) -> timedelta:
        conn = engine.connect()
        with conn:
            transaction = conn.begin()
            inbox.store_many(conn, [inbox.Delivery(NOW + timedelta(seconds=seconds), parse(body(event(TENANT))))],
                             live)
            transaction.commit() if commit else transaction.rollback()
        with sessions() as s:
            return s.get(SyncState, TENANT).last_webhook_at - NOW

    assert [deliver(t).total_seconds() for t in (0.0, 0.5, 1.0, 1.2, 2.5)] == [0.0, 0.0, 1.0, 1.0, 2.5]
    assert deliver(4.0, commit=False).total_seconds() == 2.5
    live.forget()  # what the intake does when a transaction rolls back: read the database again
    assert deliver(4.2).total_seconds() == 4.2


@pytest.mark.skipif(not POSTGRES, reason="PostgreSQL's pipeline and sequence-reserved delivery ids")
def test_on_postgresql_delivery_ids_are_reserved_a_block_ahead_and_rows_nothing_new_came_of_are_dropped(sessions):
    connect(sessions, TENANT)
    a, b_ = parse(body(event())), parse(body(event(), event()))
    ids = inbox.DeliveryIds(at_once=5)
    engine = sessions.kw["bind"]
    with engine.begin() as conn:
        first = inbox.store_many(conn, [inbox.Delivery(NOW, a), inbox.Delivery(NOW, a + b_)], None, ids)
        sequence_at = conn.exec_driver_sql(
            "SELECT last_value FROM webhook_deliveries_id_seq").scalar()
    assert [(s.inserted, s.delivery_id) for s in first] == [(1, 1), (2, 2)]
    assert sequence_at == 5  # one block reserved, two of it used
    with engine.begin() as conn:  # a redelivery: its row is dropped in the same flight
        again = inbox.store_many(conn, [inbox.Delivery(NOW, a + b_), inbox.Delivery(NOW, parse(body(event())))],
                                 None, ids)
    assert [(s.inserted, s.delivery_id) for s in again] == [(0, None), (1, 4)]  # 3 was reserved, then dropped
    with sessions() as s:
        assert sorted(s.scalars(select(WebhookDelivery.id))) == [1, 2, 4]
        assert {e.delivery_id for e in s.scalars(select(InboxEvent))} == {1, 2, 4}
    # a driver error comes out as SQLAlchemy's, and the batch is not kept
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.exec_driver_sql("SELECT setval('webhook_deliveries_id_seq', 1)")
        inbox.store_many(conn, [inbox.Delivery(NOW, parse(body(event())))], None, inbox.DeliveryIds(at_once=1))
    assert count(sessions, InboxEvent) == 4
