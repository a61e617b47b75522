"""views.freshness.judge: fresh, or stale with the first reason that holds (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from views.freshness import LAGGING, NEVER_SYNCED, STALE_AFTER, WEBHOOKS_BROKEN, Facts, judge

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SYNCED = NOW - timedelta(seconds=30)


def test_nothing_waiting_is_fresh():
    fresh = judge(NOW, Facts(SYNCED, SYNCED, None), None)
    assert (fresh.state, fresh.reason, fresh.last_synced_at) == ("fresh", None, SYNCED)


def test_a_change_waiting_up_to_the_threshold_is_fresh_and_past_it_stale():
    at_limit = Facts(SYNCED, SYNCED, NOW - STALE_AFTER)
    past = Facts(SYNCED, SYNCED, NOW - STALE_AFTER - timedelta(seconds=1))
    assert judge(NOW, at_limit, None).state == "fresh"
    assert (judge(NOW, past, None).state, judge(NOW, past, None).reason) == ("stale", LAGGING)


def test_broken_webhooks_are_stale_and_lag_is_said_first():
    assert judge(NOW, Facts(SYNCED, None, None), "webhooks look broken").reason == WEBHOOKS_BROKEN
    both = Facts(SYNCED, None, NOW - timedelta(hours=1))
    assert judge(NOW, both, "webhooks look broken").reason == LAGGING


def test_never_synced_is_stale_whatever_else():
    fresh = judge(NOW, Facts(None, None, None), None)
    assert (fresh.state, fresh.reason, fresh.last_synced_at) == ("stale", NEVER_SYNCED, None)


def test_the_reasons_hold_no_clock_reading():
    """The summary's ETag must not change while nothing changes: no "N minutes ago"."""
    later = NOW + timedelta(minutes=17)
    lagging = Facts(SYNCED, SYNCED, NOW - timedelta(minutes=6))
    assert judge(NOW, lagging, None) == judge(later, lagging, None)
