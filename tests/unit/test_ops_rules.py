"""The pure rules behind `ops status` and /metrics: sync lag, webhook suspicion, budget left."""
from datetime import datetime, timedelta, timezone

from infra import metrics
from infra.settings import Settings, XeroLimits
from ops import status
from worker.governor import Budget

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


def found(minutes_ago: float, unannounced: int = 3) -> metrics.ReconcileRecord:
    at = NOW - timedelta(minutes=minutes_ago)
    return metrics.ReconcileRecord(at=at, last_unannounced=unannounced, unannounced_at=at,
                                   unannounced=unannounced)


def test_sync_lag_is_the_age_of_the_oldest_outstanding_event_and_zero_when_none():
    assert status.sync_lag(NOW, None) == 0
    assert status.sync_lag(NOW, NOW - timedelta(seconds=42.5)) == 42.5
    assert status.sync_lag(NOW, NOW + timedelta(seconds=3)) == 0  # a clock a little ahead is no lag


def test_unannounced_changes_with_no_webhook_since_make_the_tenant_suspect():
    warning = status.webhook_suspicion(NOW, NOW - timedelta(hours=30), found(minutes_ago=10))
    assert warning and "3 change(s) no webhook announced" in warning and "30h ago" in warning
    assert "no webhook was ever received" in status.webhook_suspicion(NOW, None, found(minutes_ago=10))


def test_a_webhook_after_the_finding_clears_the_suspicion():
    assert status.webhook_suspicion(NOW, NOW - timedelta(minutes=5), found(minutes_ago=10)) is None


def test_nothing_unannounced_or_a_finding_older_than_a_day_is_no_suspicion():
    assert status.webhook_suspicion(NOW, None, None) is None
    clean = metrics.ReconcileRecord(at=NOW, last_unannounced=0, unannounced_at=None, unannounced=0)
    assert status.webhook_suspicion(NOW, None, clean) is None
    assert status.webhook_suspicion(NOW, None, found(minutes_ago=25 * 60)) is None


def test_budget_left_counts_down_from_xeros_limits_and_never_below_zero():
    limits = XeroLimits(per_minute=60, per_day=5000)
    left = status.budget_left(limits, minute_used=12, day_used=5100, paused_until=105.0, now=100.0)
    assert left == {"minute_left": 48, "minute_limit": 60, "day_left": 0, "day_limit": 5000,
                    "paused_seconds": 5.0}


def test_status_limits_read_the_same_variables_as_the_governor():
    env = {"XERO_MINUTE_LIMIT": "600", "XERO_DAY_LIMIT": "1000"}
    for given in (env, {}):
        limits = Settings.from_env(given).xero_limits
        budget = Budget.from_limits(limits)
        assert (limits.per_minute, limits.per_day) == (budget.per_minute, budget.per_day)


def test_metric_labels_round_trip_and_cannot_break_the_encoding():
    field = metrics.labels_field({"status": "503", "kind": "a|b=c"})
    assert field == "kind=a_b_c|status=503"
    assert metrics.parse_labels(field) == {"kind": "a_b_c", "status": "503"}


def test_the_budget_shown_is_the_day_limit_xero_showed_unless_one_is_set():
    learned = status.budget_left(XeroLimits(), 0, 216, 0.0, 0.0, learned_day=1000)
    assert (learned["day_limit"], learned["day_left"]) == (1000, 784)
    assert status.budget_left(XeroLimits(), 0, 216, 0.0, 0.0)["day_limit"] == 5000  # nothing learned yet
    fixed = Settings.from_env({"XERO_DAY_LIMIT": "5000"}).xero_limits
    assert status.budget_left(fixed, 0, 216, 0.0, 0.0, learned_day=1000)["day_limit"] == 5000
