"""POST /webhooks/xero over Flask's test client, with a real database and a real Redis."""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder, run_wsgi_app

from infra import queue
from infra.settings import Settings
from store import inbox
from store.db import transaction
from store.models import InboxEvent, SyncState, WebhookDelivery, Workspace, XeroConnection
from webhook import batcher
from webhook.payload import parse
from webhook.signature import sign
from wsgi import close_app, create_app, runtime

KEY = "test-webhook-key"
MAX_BYTES = 64_000
TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
OTHER = "7f3c8a1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


# --- fixtures and helpers ----------------------------------------------------------------


def make_app(database_url: str, redis_url: str):
    settings = Settings(
        database_url=database_url, redis_url=redis_url, xero_webhook_key=KEY, webhook_max_bytes=MAX_BYTES
    )
    return create_app(settings)


@pytest.fixture
def app(database_url, redis_url):
    app = make_app(database_url, redis_url)
    yield app
    assert close_app(app)  # nothing still writing while the engine is disposed


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def redis(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    client.close()


def connect(sessions, tenant_id: str, status: str = "active") -> None:
    """A workspace connected to the Xero organisation `tenant_id`."""
    with transaction(sessions) as s:
        ws = Workspace(name=f"ws {tenant_id[:8]}", created_at=NOW)
        s.add(ws)
        s.flush()
        s.add(
            XeroConnection(
                workspace_id=ws.id, tenant_id=tenant_id, grant_type="client_credentials", status=status,
                created_at=NOW, updated_at=NOW, disconnected_at=NOW if status == "disconnected" else None,
            )
        )


def event(tenant_id: str = TENANT, category: str = "INVOICE", resource_id: str | None = None, **extra):
    resource_id = resource_id or str(uuid.uuid4())
    return {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{resource_id}",
        "resourceId": resource_id,
        "eventDateUtc": "2026-11-25T08:59:58.123",
        "eventType": "UPDATE",
        "eventCategory": category,
        "tenantId": tenant_id,
        "tenantType": "APPLICATION" if category == "SUBSCRIPTION" else "ORGANISATION",
        **extra,
    }


def body(*events: dict) -> bytes:
    n = len(events)
    return json.dumps(
        {"events": list(events), "firstEventSequence": min(n, 1), "lastEventSequence": n, "entropy": "x"}
    ).encode()


def post(client, raw: bytes, key: str | None = KEY, **headers):
    """POST a delivery; once answered, wait (briefly: it must be prompt) for the background wake."""
    if key is not None:
        headers["x-xero-signature"] = sign(raw, key)
    response = client.post("/webhooks/xero", data=raw, headers=headers, content_type="application/json")
    assert settled(client.application), "the wake after the commit took more than 2 s"
    return response


def settled(app, timeout: float = 2.0) -> bool:
    return batcher.for_app(app.extensions, runtime(app)).settle(timeout)


def jobs(redis) -> list:
    return Queue(queue.WEBHOOK_QUEUE, connection=redis).get_jobs()


def inbox_rows(sessions) -> list[InboxEvent]:
    with sessions() as s:
        return list(s.scalars(select(InboxEvent).order_by(InboxEvent.id)))


def count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def assert_empty_answer(response, status: int) -> None:
    assert response.status_code == status
    assert response.data == b""
    assert "Set-Cookie" not in response.headers


# --- a good delivery -----------------------------------------------------------------------


def test_signed_event_is_committed_and_wakes_one_sync_job(client, sessions, redis):
    connect(sessions, TENANT)
    sent = event(resource_id="11111111-2222-3333-4444-555555555555")

    assert_empty_answer(post(client, body(sent)), 200)

    (row,) = inbox_rows(sessions)
    assert (row.tenant_id, row.category, row.event_type, row.resource_id) == (
        TENANT, "INVOICE", "UPDATE", "11111111-2222-3333-4444-555555555555",
    )
    assert row.event_date_utc == datetime(2026, 11, 25, 8, 59, 58, 123000, tzinfo=timezone.utc)
    assert row.state == "enqueued" and row.enqueued_at is not None and row.delivery_id is not None
    (job,) = jobs(redis)
    assert job.func_name == "worker.jobs.sync_tenant" and job.args == (TENANT,)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", job.id)
    with sessions() as s:
        assert s.get(SyncState, TENANT).last_webhook_at is not None


def test_a_burst_of_100_events_for_one_tenant_queues_one_job(client, sessions, redis):
    connect(sessions, TENANT)
    for _ in range(10):
        assert_empty_answer(post(client, body(*(event() for _ in range(10)))), 200)

    rows = inbox_rows(sessions)
    assert len(rows) == 100 and {r.state for r in rows} == {"enqueued"}
    assert [job.args for job in jobs(redis)] == [(TENANT,)]


def test_two_tenants_get_one_job_each(client, sessions, redis):
    connect(sessions, TENANT)
    connect(sessions, OTHER)
    post(client, body(event(TENANT), event(OTHER), event(TENANT)))
    post(client, body(event(OTHER)))

    assert sorted(job.args for job in jobs(redis)) == sorted([(TENANT,), (OTHER,)])


def test_events_arriving_after_the_job_started_queue_one_follow_up(client, sessions, redis):
    connect(sessions, TENANT)
    post(client, body(event()))
    queue.clear_queued(redis, TENANT)  # as the worker does when the job starts
    post(client, body(event()))
    post(client, body(event()))

    assert len(jobs(redis)) == 2
    assert {r.state for r in inbox_rows(sessions)} == {"enqueued"}


# --- duplicates ----------------------------------------------------------------------------


def test_a_duplicate_delivery_adds_nothing_and_is_acknowledged(client, sessions, redis):
    connect(sessions, TENANT)
    raw = body(event(), event(category="CONTACT"))
    assert_empty_answer(post(client, raw), 200)
    before = (count(sessions, InboxEvent), count(sessions, WebhookDelivery))

    assert_empty_answer(post(client, raw), 200)

    assert (count(sessions, InboxEvent), count(sessions, WebhookDelivery)) == before == (2, 1)
    assert len(jobs(redis)) == 1


def test_a_redelivered_event_inside_a_new_delivery_is_stored_once(client, sessions):
    connect(sessions, TENANT)
    seen = event()
    post(client, body(seen))
    post(client, body(seen, event()))
    post(client, body(seen, seen))

    assert count(sessions, InboxEvent) == 2


def test_concurrent_identical_deliveries_store_each_event_once(sessions):
    connect(sessions, TENANT)
    events = parse(body(*(event() for _ in range(20))))
    start = threading.Barrier(8)
    results: list[inbox.Stored] = []
    errors: list[BaseException] = []

    def deliver():
        try:
            start.wait()
            with transaction(sessions) as s:
                results.append(inbox.store(s, events, NOW))
        except BaseException as error:  # noqa: BLE001 (surfaced by the assertion below)
            errors.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(r.inserted for r in results) == [0] * 7 + [20]
    assert count(sessions, InboxEvent) == 20
    assert count(sessions, WebhookDelivery) == 1


# --- refused deliveries --------------------------------------------------------------------


def test_closing_the_app_right_after_a_delivery_leaves_no_connection_open(database_url, redis_url, sessions):
    connect(sessions, TENANT)  # so that the events are woken and marked after the answer
    app = make_app(database_url, redis_url)
    engine = runtime(app).engine
    opened, closed = [], []
    sa_event.listen(engine, "connect", lambda dbapi_conn, _record: opened.append(dbapi_conn))
    sa_event.listen(engine, "close", lambda dbapi_conn, _record: closed.append(dbapi_conn))
    raw = body(event())
    answer = app.test_client().post("/webhooks/xero", data=raw, headers={"x-xero-signature": sign(raw, KEY)},
                                    content_type="application/json")  # not post(): it waits for the wake
    assert_empty_answer(answer, 200)  # the writer holds on to its connection, the waker is yet to mark
    assert close_app(app)
    time.sleep(3 * batcher.HOLD_SECONDS)  # by now the writer would have let go of it
    # a connection returned after the dispose would stay open in a pool nobody closes (on
    # PostgreSQL a ResourceWarning whenever the garbage collector finds it)
    assert opened and {id(c) for c in closed} == {id(c) for c in opened}


@pytest.mark.parametrize(
    "signed",
    [
        lambda raw: {},
        lambda raw: {"x-xero-signature": ""},
        lambda raw: {"x-xero-signature": "¡not base64!"},
        lambda raw: {"x-xero-signature": sign(raw, "not-" + KEY)},
        lambda raw: {"x-xero-signature": sign(raw + b" ", KEY)},
    ],
    ids=["missing", "empty", "junk", "another-key", "another-body"],
)
def test_a_bad_or_missing_signature_is_401_empty_and_nothing_is_stored(client, sessions, redis, signed):
    connect(sessions, TENANT)
    raw = body(event())

    assert_empty_answer(post(client, raw, key=None, **signed(raw)), 401)

    assert count(sessions, InboxEvent) == count(sessions, WebhookDelivery) == 0
    assert jobs(redis) == []


def test_an_oversize_body_is_refused_with_413_even_when_signed(client, sessions, redis):
    connect(sessions, TENANT)
    raw = body(*(event() for _ in range(400)))
    assert len(raw) > MAX_BYTES

    response = post(client, raw)

    assert response.status_code == 413 and response.data == b""
    assert count(sessions, InboxEvent) == count(sessions, WebhookDelivery) == 0


def test_an_oversize_body_without_content_length_is_cut_off_at_the_limit(app, sessions):
    raw = b"{" + b" " * (MAX_BYTES * 2) + b"}"
    taken: list[int] = []

    def chunks():
        for start in range(0, len(raw), 8192):
            taken.append(start)
            yield raw[start : start + 8192]

    signed = {"x-xero-signature": sign(raw, KEY)}
    environ = EnvironBuilder("/webhooks/xero", method="POST", headers=signed).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.update({"wsgi.input": _Stream(chunks()), "wsgi.input_terminated": True})  # as gunicorn does

    _, status, _ = run_wsgi_app(app, environ, buffered=True)

    assert status.startswith("413")
    assert len(taken) * 8192 < MAX_BYTES + 3 * 8192  # it stopped reading near the limit
    assert count(sessions, WebhookDelivery) == 0


class _Stream:
    """A request body of unknown length (like chunked transfer encoding)."""

    def __init__(self, chunks):
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"this is not json", "not JSON"),
        (b'{"events": "nope"}', "'events'"),
        (b'{"events": [{"tenantId": "t"}]}', "events[0]"),
    ],
)
def test_a_signed_body_that_is_not_xeros_shape_is_400_and_kept_as_malformed(
    client, sessions, redis, raw, error
):
    assert_empty_answer(post(client, raw), 400)

    with sessions() as s:
        (delivery,) = s.scalars(select(WebhookDelivery))
    assert delivery.outcome == "malformed" and delivery.body == raw and error in delivery.error
    assert count(sessions, InboxEvent) == 0 and jobs(redis) == []


# --- what is stored, and in which state ------------------------------------------------------


def test_intent_to_receive_is_acknowledged_and_enqueues_nothing(client, sessions, redis):
    itr = b'{"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "S0m3r4Nd0mt3xt"}'

    assert_empty_answer(post(client, itr), 200)
    assert_empty_answer(post(client, itr, key="wrong"), 401)

    assert count(sessions, InboxEvent) == count(sessions, WebhookDelivery) == 0
    assert jobs(redis) == []


def test_credit_note_and_subscription_events_are_stored_and_acknowledged(client, sessions, redis):
    connect(sessions, TENANT)
    credit = event(category="CREDITNOTE", data={"Type": "ACCRECCREDIT", "Status": "AUTHORISED"})
    subscription = event(tenant_id="a6a4e5f0-app-0000-0000-000000000000", category="SUBSCRIPTION")

    assert_empty_answer(post(client, body(credit, subscription)), 200)

    rows = {r.category: r for r in inbox_rows(sessions)}
    assert rows["CREDITNOTE"].state == "enqueued"
    assert rows["CREDITNOTE"].data == {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}
    assert rows["SUBSCRIPTION"].state == "ignored" and rows["SUBSCRIPTION"].tenant_type == "APPLICATION"
    assert [job.args for job in jobs(redis)] == [(TENANT,)]


def test_an_unknown_category_is_stored_ignored(client, sessions, redis):
    connect(sessions, TENANT)
    assert_empty_answer(post(client, body(event(category="BANKTRANSACTION"))), 200)

    assert [r.state for r in inbox_rows(sessions)] == ["ignored"]
    assert jobs(redis) == []


@pytest.mark.parametrize("status", [None, "disconnected"])
def test_events_for_a_tenant_with_no_live_connection_are_stored_ignored_without_a_job(
    client, sessions, redis, status
):
    if status:
        connect(sessions, TENANT, status=status)

    assert_empty_answer(post(client, body(event(), event(category="CONTACT"))), 200)

    assert [r.state for r in inbox_rows(sessions)] == ["ignored", "ignored"]
    assert jobs(redis) == []
    with sessions() as s:
        assert s.get(SyncState, TENANT) is None  # no sync state for a tenant we do not mirror


@pytest.mark.parametrize("status", ["pending", "active", "needs_reauth"])
def test_every_connection_short_of_disconnected_is_live(client, sessions, redis, status):
    connect(sessions, TENANT, status=status)
    post(client, body(event()))
    assert [r.state for r in inbox_rows(sessions)] == ["enqueued"]


# --- outages ---------------------------------------------------------------------------------


def test_with_redis_down_events_stay_pending_and_the_relay_enqueues_them(database_url, sessions, redis):
    connect(sessions, TENANT)
    connect(sessions, OTHER)
    app = make_app(database_url, "redis://127.0.0.1:1/0")  # nothing listens there
    try:
        started = time.monotonic()
        response = post(app.test_client(), body(event(TENANT), event(TENANT), event(OTHER)))
        elapsed = time.monotonic() - started
    finally:
        close_app(app)

    assert_empty_answer(response, 200)
    assert elapsed < 2.0
    assert [r.state for r in inbox_rows(sessions)] == ["pending"] * 3 and jobs(redis) == []

    received = inbox_rows(sessions)[0].received_at
    assert inbox.relay(sessions, redis, now=received + timedelta(seconds=1)) == 0  # too fresh: intake's own
    assert inbox.relay(sessions, redis, now=received + timedelta(seconds=10)) == 2

    assert sorted(job.args for job in jobs(redis)) == sorted([(TENANT,), (OTHER,)])
    assert {r.state for r in inbox_rows(sessions)} == {"enqueued"}
    assert inbox.relay(sessions, redis, now=received + timedelta(seconds=20)) == 0


def test_the_relay_joins_pending_events_to_an_already_queued_job(client, sessions, redis):
    connect(sessions, TENANT)
    post(client, body(event()))  # a job is queued
    with transaction(sessions) as s:  # an event whose own wake never happened
        inbox.store(s, parse(body(event())), NOW)

    assert inbox.relay(sessions, redis, now=NOW + timedelta(seconds=10)) == 1

    assert len(jobs(redis)) == 1
    assert {r.state for r in inbox_rows(sessions)} == {"enqueued"}


def test_the_relay_rewakes_tenants_whose_job_was_lost(client, sessions, redis):
    connect(sessions, TENANT)
    post(client, body(event()))
    enqueued_at = inbox_rows(sessions)[0].enqueued_at
    redis.flushdb()  # a Redis restart without persistence: the queued job is gone

    assert inbox.relay(sessions, redis, now=enqueued_at + timedelta(minutes=5)) == 0
    assert inbox.relay(sessions, redis, now=enqueued_at + timedelta(minutes=31)) == 1
    assert [job.args for job in jobs(redis)] == [(TENANT,)]
    assert inbox.relay(sessions, redis, now=enqueued_at + timedelta(minutes=32)) == 0  # not every run


def test_the_relay_leaves_done_and_ignored_events_alone(sessions, redis):
    connect(sessions, TENANT)
    with transaction(sessions) as s:
        inbox.store(s, parse(body(event(), event(category="SUBSCRIPTION"))), NOW)
        s.execute(InboxEvent.__table__.update().where(InboxEvent.category == "INVOICE").values(state="done"))

    assert inbox.relay(sessions, redis, now=NOW + timedelta(hours=2)) == 0
    assert jobs(redis) == []


@pytest.mark.parametrize(
    "unreachable",
    ["sqlite:////nonexistent-directory/for/xero-mirror.db", "postgresql+psycopg://app:app@127.0.0.1:1/app"],
)
def test_with_the_database_down_the_answer_is_503_so_xero_retries(redis_url, unreachable):
    app = make_app(unreachable, redis_url)
    try:
        client = app.test_client()
        assert_empty_answer(post(client, body(event())), 503)
        assert_empty_answer(post(client, b"signed garbage"), 503)  # cannot even keep it: let Xero retry
    finally:
        close_app(app)


def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not(client, sessions):
    connect(sessions, TENANT)
    compact = body(event())
    at_limit = compact[:-1] + b" " * (MAX_BYTES - len(compact)) + b"}"
    assert len(at_limit) == MAX_BYTES

    assert_empty_answer(post(client, at_limit), 200)
    assert post(client, at_limit[:-1] + b" }").status_code == 413


def test_a_delivery_of_1000_events_is_stored_whole(sessions):
    connect(sessions, TENANT)
    events = parse(body(*(event() for _ in range(1000))))
    with transaction(sessions) as s:
        stored = inbox.store(s, events, NOW)

    assert (stored.inserted, stored.tenant_ids, len(stored.pending_ids)) == (1000, [TENANT], 1000)
    assert count(sessions, InboxEvent) == 1000
