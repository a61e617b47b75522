"""Real `python -m worker` processes against the emulator, the test database and Redis."""
import time

import pytest
import redis as redis_lib
from sqlalchemy import select

from emulator.config import Limits
from emulator.testing import run_emulator
from infra import queue
from infra.settings import Settings
from store import mirror
from store.models import InboxEvent, SyncState
from tests.e2e.worker_process import WorkerProcess
from tests.worker_support import (
    announced,
    assert_invoice_matches,
    assert_mirror_equals_emulator,
    last_sequence,
    mirror_rows,
    store_events,
    wait_until,
)


@pytest.fixture
def start_worker(worker_env, tmp_path):
    started: list[WorkerProcess] = []

    def start(**extra: str) -> WorkerProcess:
        process = WorkerProcess({**worker_env, **extra}, tmp_path / f"worker-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def sync_state(sessions, t):
    with sessions() as session:
        return session.get(SyncState, t)


def test_a_worker_process_backfills_then_syncs_what_the_inbox_announces(
    emulator, sessions, redis_url, connected, start_worker
):
    t, state = connected, emulator.state
    worker = start_worker()
    # nobody asked: the worker's ticker starts the backfill of a connected tenant by itself
    assert wait_until(lambda: (s := sync_state(sessions, t)) is not None and s.backfill_status == "done", 30), \
        worker.output()

    mark = last_sequence(emulator)
    customer = state.create_contact(t, "Tui Supplies", "accounts@tui.example")["ContactID"]
    invoice_id = state.create_invoice(t, customer, "321.00")["InvoiceID"]
    state.apply_payment(t, invoice_id, "21.00")
    events = announced(emulator, mark)
    store_events(sessions, events[:2])
    queue.wake(redis_lib.Redis.from_url(redis_url), [t])  # as intake does
    store_events(sessions, events[2:])  # no wake (Redis "was down"): the queued job or the relay takes them

    def synced() -> bool:
        held = mirror_rows(sessions, t)["invoices"].get(invoice_id)
        return held is not None and held.amount_paid == 21
    assert wait_until(synced, 20), worker.output()
    assert_invoice_matches(mirror_rows(sessions, t)["invoices"][invoice_id], state.invoice(t, invoice_id))
    def states() -> set[str]:
        with sessions() as session:  # short sessions: on SQLite each one holds the write lock
            return set(session.scalars(select(InboxEvent.state)))
    assert wait_until(lambda: states() == {"done"}, 10)
    assert_mirror_equals_emulator(sessions, emulator, t)


@pytest.fixture
def big_emulator():
    # Xero's minute limit raised (here and for the governor below): this test is about resuming,
    # and at 60 a minute the backfill's share would make it wait out minute windows.
    with run_emulator(seed=20_000, tenants=1, contacts=200, invoices=20_000, limits=Limits(minute=600)) as running:
        yield running


@pytest.mark.slow
def test_backfill_of_20000_invoices_survives_a_sigkilled_worker(big_emulator, worker_env, sessions, redis_url,
                                                                  start_worker):
    from tests.worker_support import connect_client_credentials

    emulator, state = big_emulator, big_emulator.state
    t = state.tenant_ids[0]
    env = {**emulator.env(), "XERO_MINUTE_LIMIT": "600"}
    connect_client_credentials(Settings.from_env({**worker_env, **env}), sessions, t)
    queue.enqueue(redis_lib.Redis.from_url(redis_url), queue.BACKFILL, t)  # as `xero connect` does

    started = time.monotonic()
    first = start_worker(**env)

    def mid_invoices() -> bool:
        s = sync_state(sessions, t)
        return s is not None and s.backfill_phase == "invoices" and s.backfill_page >= 6
    assert wait_until(mid_invoices, 120), first.output()
    first.kill()
    killed_at = sync_state(sessions, t)
    assert killed_at.backfill_status == "running" and killed_at.backfill_page >= 6

    second = start_worker(**env)
    assert wait_until(lambda: sync_state(sessions, t).backfill_status == "done", 300), second.output()
    print(f"\n20,000-invoice backfill with a SIGKILL: {time.monotonic() - started:.0f}s")
    truth = state.tenants()[0]
    live = sum(1 for p in state.snapshot(t)["Payments"] if p["Status"] == "AUTHORISED")
    with sessions() as session:  # the invoices' own lists bring every live payment
        assert mirror.counts(session, t) == {"contacts": truth["contacts"], "invoices": truth["invoices"],
                                             "payments": live}
    assert state.call_count(t, "GET /Payments", 200) == 0  # and nothing is downloaded twice
    # resumed, not restarted: 21 invoice pages in all (the 21st is empty), plus at most the two
    # pages the killed worker had fetched but not yet saved (the one it was storing, and the
    # next, fetched ahead meanwhile)
    assert 21 <= state.call_count(t, "GET /Invoices", 200) <= 23
    assert "backfill" in second.output()
