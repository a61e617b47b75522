"""Convergence under chaos, small: bench/chaos.py's run at a size the suite can afford.

300 random changes over 2 tenants while webhooks are dropped, duplicated and reordered,
Xero answers 5xx, 429 and time-outs, a worker is SIGKILLed and Redis restarted; after
reconciliation the mirror equals the emulator's truth and no delivered event is missing
from the inbox. (`make chaos` runs 10,000 changes over 3 tenants with three SIGKILLs.)
"""
import pytest

from bench.chaos import Plan, markdown, run_chaos

SMALL = Plan(
    changes=300, tenants=2, rate=30.0, kills=1, redis_restarts=1, workers=1, timeout_seconds=1.0,
    contacts=20, invoices=60, settle_timeout=60.0, minute_limit=600,
)


@pytest.mark.slow
def test_mirror_converges_to_xero_through_faults_kills_and_a_redis_restart(database_url):
    out = run_chaos(SMALL, database_url, log=lambda _: None)
    report = markdown(out, 0, "the test database")
    assert len(out.kills) == 1 and len(out.redis_restarts) == 1, report
    assert out.delivered_events > 0 and out.lost_events == 0, report
    assert out.differing == {"invoices": 0, "payments": 0, "contacts": 0}, report
    assert out.truth["invoices"] > 60 and out.truth["payments"] > 0, report
    assert set(out.inbox_states) <= {"done", "ignored"}, report
