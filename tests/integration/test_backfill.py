"""Backfill: everything at a fixed page size, progress saved with each page, resumable."""
import pytest

from emulator.testing import run_emulator
from store import mirror
from store.models import SyncState
from tests.worker_support import assert_mirror_equals_emulator
from worker import governor, sync

PAGE = 100


@pytest.fixture
def emulator():
    with run_emulator(seed=44, tenants=1, contacts=30, invoices=250) as running:
        yield running


class StopAfter:
    """A clock for `deadline`: reads 0 until `pages` heartbeats have passed, then 1."""

    def __init__(self, pages: int):
        self.left = pages

    def beat(self) -> None:
        self.left -= 1

    def __call__(self) -> float:
        return 0.0 if self.left > 0 else 1.0


def run(runtime, tenant_id, **kwargs):
    api = runtime.api(tenant_id, governor.BACKFILL)
    return sync.backfill(tenant_id, api=api, sessions=runtime.sessions, now=runtime.now(), page_size=PAGE, **kwargs)


def test_backfill_loads_every_contact_invoice_and_payment(emulator, runtime, connected):
    t = connected
    result = run(runtime, t)
    assert result.done
    truth = emulator.state.tenants()[0]
    with runtime.sessions() as session:
        live = sum(1 for p in emulator.state.snapshot(t)["Payments"] if p["Status"] == "AUTHORISED")
        assert live < truth["payments"]  # the seed deletes some: those need not be held
        assert mirror.counts(session, t) == {
            "contacts": truth["contacts"], "invoices": truth["invoices"], "payments": live
        }
        state = session.get(SyncState, t)
        assert (state.backfill_status, state.backfill_phase) == ("done", None)
        # no payments phase: the invoices' own lists brought every live payment
        assert state.backfill_fetched == truth["contacts"] + truth["invoices"]
        assert state.invoices_hwm is not None and state.payments_hwm == state.invoices_hwm == state.contacts_hwm
    assert_mirror_equals_emulator(runtime.sessions, emulator, t)


def test_an_interrupted_backfill_resumes_from_the_page_after_the_last_one_saved(emulator, runtime, connected):
    t, state = connected, emulator.state
    clock = StopAfter(pages=2)  # contacts page 1, invoices page 1
    first = run(runtime, t, deadline=0.5, clock=clock, heartbeat=clock.beat)
    assert (first.done, first.phase, first.page) == (False, "invoices", 1)
    with runtime.sessions() as session:
        assert mirror.counts(session, t)["invoices"] == PAGE
        saved = session.get(SyncState, t)
        assert (saved.backfill_status, saved.backfill_phase, saved.backfill_page) == ("running", "invoices", 1)

    second = run(runtime, t)  # as a new job would, after the first worker died
    assert second.done
    # pages 1, 2, 3, and page 2 once more: the clock jumped past the deadline with no
    # warning while page 1 was stored, so page 2 had been prefetched, and the slice dropped it
    assert state.call_count(t, "GET /Invoices") == 4
    assert state.call_count(t, "GET /Contacts") == 1
    assert_mirror_equals_emulator(runtime.sessions, emulator, t)


class Ticks:
    """A steady clock for `deadline`: one unit a page stored."""

    def __init__(self):
        self.now = 0.0

    def beat(self) -> None:
        self.now += 1.0

    def __call__(self) -> float:
        return self.now


def test_a_slice_fetches_no_page_it_will_not_store(emulator, runtime, connected):
    t, state = connected, emulator.state
    clock = Ticks()  # a page takes one unit: the second page stored ends the slice
    first = run(runtime, t, deadline=1.5, clock=clock, heartbeat=clock.beat)
    assert (first.done, first.phase, first.page) == (False, "invoices", 1)
    assert run(runtime, t).done
    assert state.call_count(t, "GET /Invoices") == 3  # pages 1, 2, 3: none fetched twice
    assert state.call_count(t, "GET /Contacts") == 1
    assert_mirror_equals_emulator(runtime.sessions, emulator, t)


def test_a_finished_backfill_is_not_repeated_until_asked(emulator, runtime, connected):
    t, state = connected, emulator.state
    run(runtime, t)
    state.reset_calls()
    assert run(runtime, t).done and state.call_count(t) == 0
    sync.start_backfill(runtime.sessions, t)
    assert run(runtime, t).done and state.call_count(t, "GET /Invoices") == 3
