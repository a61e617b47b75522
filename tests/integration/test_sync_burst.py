"""A burst of 1,000 invoice changes for one tenant: a handful of Xero calls, no 429."""
from datetime import date, timedelta

import pytest
from rq import SimpleWorker

from emulator.testing import run_emulator
from infra import queue
from tests.worker_support import announced, assert_mirror_equals_emulator, last_sequence, store_events
from worker import governor, sync


@pytest.fixture
def emulator():
    with run_emulator(seed=33, tenants=1, contacts=40, invoices=1200) as running:
        yield running


def test_a_burst_of_1000_invoice_changes_costs_at_most_25_calls_and_no_429(emulator, runtime, connected):
    t, state = connected, emulator.state
    sync.backfill(t, api=runtime.api(t, governor.BACKFILL), sessions=runtime.sessions, now=runtime.now())
    invoices = [i["InvoiceID"] for i in state.snapshot(t)["Invoices"]]
    assert len(invoices) >= 1000
    mark = last_sequence(emulator)
    for n, invoice_id in enumerate(invoices[:1000]):
        state.set_due_date(t, invoice_id, date(2027, 1, 1) + timedelta(days=n % 90))
    events = announced(emulator, mark)
    assert len(events) == 1000
    state.reset_calls()

    store_events(runtime.sessions, events)
    queue.wake(runtime.redis, [t])  # as intake does: one coalesced job
    SimpleWorker(queue.queues(runtime.redis), connection=runtime.redis).work(burst=True)

    calls = state.call_count(t)
    assert calls <= 25, state.call_counts()
    assert state.call_count(status=429) == 0
    assert_mirror_equals_emulator(runtime.sessions, emulator, t)
    print(f"\n1,000 invoice changes synced with {calls} Xero calls")


def test_a_burst_delivered_in_batches_of_100_is_fetched_once_not_once_per_batch(emulator, runtime, connected):
    """As Xero delivers a burst: 100 events a delivery, each drained before the next arrives.
    The first drain's If-Modified-Since sweep brings the whole burst; the later deliveries
    name invoices the mirror already holds at least as new, and cost nothing."""
    t, state = connected, emulator.state
    sync.backfill(t, api=runtime.api(t, governor.BACKFILL), sessions=runtime.sessions, now=runtime.now())
    invoices = [i["InvoiceID"] for i in state.snapshot(t)["Invoices"]][:1000]
    mark = last_sequence(emulator)
    for n, invoice_id in enumerate(invoices):
        state.set_due_date(t, invoice_id, date(2027, 3, 1) + timedelta(days=n % 60))
    events = announced(emulator, mark)
    state.reset_calls()
    current = 0
    for start in range(0, len(events), 100):
        store_events(runtime.sessions, events[start : start + 100])
        api = runtime.api(t, governor.WEBHOOK)
        current += sync.drain(t, api=api, sessions=runtime.sessions, now=runtime.now()).current

    assert state.call_count(t) <= 2, state.call_counts()  # one full page of 1,000, then an empty one
    assert current == 900
    assert_mirror_equals_emulator(runtime.sessions, emulator, t)
