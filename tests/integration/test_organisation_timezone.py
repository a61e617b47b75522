"""worker.organisation: the connection's copy of Xero's Organisation (its Timezone above all) is
read when it never was, and again once it is older than max_age, never more often."""
from datetime import timedelta

from store import connections
from store.models import XeroConnection
from worker import governor
from worker.organisation import refresh_if_stale
from xero import timezones


def _row(sessions, tenant_id):
    with sessions() as session:
        return connections.find(session, tenant_id)


def _never_read(sessions, tenant_id):
    """As a connection made before the time zone was kept (migration 0004) stands."""
    from sqlalchemy import update

    from store.db import transaction

    with transaction(sessions) as session:
        session.execute(
            update(XeroConnection)
            .where(XeroConnection.tenant_id == tenant_id)
            .values(timezone=None, organisation_checked_at=None)
        )


def _set_timezone(emulator, tenant_id, xero_timezone):
    """What Xero's Organisation will say from now on (set directly: unknown ids too)."""
    with emulator.state.lock:
        emulator.state.books[tenant_id].org.timezone = xero_timezone


def test_a_changed_time_zone_is_picked_up_after_max_age_not_before(emulator, runtime, connected):
    t = connected
    truth = emulator.state.snapshot(t)["Organisation"]
    _never_read(runtime.sessions, t)
    assert _row(runtime.sessions, t).organisation_checked_at is None
    start = runtime.now()

    api = runtime.api(t, governor.RECONCILE)
    assert refresh_if_stale(api, runtime.sessions, t, start) is True  # never read: read now
    assert api.calls == 1
    first = _row(runtime.sessions, t)
    assert first.timezone == truth["Timezone"] and first.organisation_checked_at == start
    assert timezones.zone_for(first.timezone).mapped

    _set_timezone(emulator, t, "PACIFICSTANDARDTIME")  # the organisation moves to Los Angeles

    api = runtime.api(t, governor.RECONCILE)
    for later in (timedelta(minutes=1), timedelta(hours=23, minutes=59)):
        assert refresh_if_stale(api, runtime.sessions, t, start + later) is False
    assert api.calls == 0  # fresh enough: Xero is not asked
    assert _row(runtime.sessions, t).timezone == truth["Timezone"]

    day_later = start + timedelta(hours=24)
    assert refresh_if_stale(api, runtime.sessions, t, day_later) is True
    assert api.calls == 1
    moved = _row(runtime.sessions, t)
    assert (moved.timezone, moved.organisation_checked_at) == ("PACIFICSTANDARDTIME", day_later)
    assert timezones.zone_for(moved.timezone).iana == "America/Los_Angeles"
    with runtime.sessions() as session:
        row = session.get(XeroConnection, moved.id)
        assert (row.short_code, row.base_currency, row.tenant_name) == (
            truth["ShortCode"], truth["BaseCurrency"], truth["Name"])

    # a shorter max_age asks again sooner
    an_hour_on = day_later + timedelta(hours=1)
    assert refresh_if_stale(api, runtime.sessions, t, an_hour_on, max_age=timedelta(hours=2)) is False
    assert refresh_if_stale(api, runtime.sessions, t, an_hour_on, max_age=timedelta(minutes=30)) is True
    assert api.calls == 2


def test_an_unknown_time_zone_is_kept_as_xero_sent_it_and_falls_back_to_utc(emulator, runtime, connected):
    t = connected
    _never_read(runtime.sessions, t)
    _set_timezone(emulator, t, "MARSSTANDARDTIME")
    api = runtime.api(t, governor.RECONCILE)
    assert refresh_if_stale(api, runtime.sessions, t, runtime.now()) is True
    kept = _row(runtime.sessions, t).timezone
    assert kept == "MARSSTANDARDTIME"
    zone = timezones.zone_for(kept)
    assert (zone.iana, zone.mapped) == ("UTC", False)


def test_nothing_is_asked_for_a_tenant_with_no_live_connection(runtime, emulator):
    t = emulator.state.tenant_ids[1]  # never connected
    api = runtime.api(t, governor.RECONCILE)
    assert refresh_if_stale(api, runtime.sessions, t, runtime.now()) is False
    assert api.calls == 0
