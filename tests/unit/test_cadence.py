"""When reconciliation sweeps each kind: by the evidence of a tenant's webhooks and budget."""

from datetime import UTC, datetime, timedelta

from worker import cadence
from worker.cadence import Evidence

T0 = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)


def simulate_day(tenant_id, evidence_at, start=T0, step=timedelta(minutes=1)):
    """Sweeps a tenant gets in a day when each due kind is swept at once (what the ticker does)."""
    swept: dict[str, datetime | None] = dict.fromkeys(cadence.KINDS)
    sweeps = []
    now = start
    while now < start + timedelta(days=1):
        kinds = cadence.due(tenant_id, swept, evidence_at(now))
        for kind in kinds:
            swept[kind] = now
        sweeps += [(now, k) for k in kinds]
        now += step
    return sweeps


def test_an_idle_tenant_with_healthy_webhooks_costs_at_most_48_sweeps_a_day():
    sweeps = simulate_day("tenant-idle", lambda now: Evidence(now))
    counts = {k: sum(1 for _, kind in sweeps if kind == k) for k in cadence.KINDS}
    assert counts == {"invoices": 24, "payments": 12, "contacts": 6}
    assert len(sweeps) + 1 <= 48  # and one Organisation read a day


def test_a_lost_invoice_change_is_swept_within_the_hour_at_any_moment():
    sweeps = [at for at, kind in simulate_day("tenant-x", lambda now: Evidence(now)) if kind == "invoices"]
    gaps = [b - a for a, b in zip(sweeps, sweeps[1:])]
    assert max(gaps) <= timedelta(hours=1) and sweeps[0] - T0 <= timedelta(hours=1)


def test_broken_webhooks_tighten_invoices_to_five_minutes_until_a_webhook_arrives():
    found = T0 + timedelta(hours=2)
    healed = T0 + timedelta(hours=5)

    def evidence(now):  # while webhooks are lost, every sweep finds another change
        unannounced = None if now < found else min(now, healed - timedelta(minutes=1))
        webhook = healed if now >= healed else None
        return Evidence(now, last_webhook_at=webhook, unannounced_at=unannounced)

    sweeps = [at for at, kind in simulate_day("tenant-b", evidence) if kind == "invoices"]
    broken = [at for at in sweeps if found <= at < healed]
    assert len(broken) >= 3 * 12 - 1  # every 5 minutes for three hours
    assert max(b - a for a, b in zip(broken, broken[1:])) <= timedelta(minutes=5)
    after = [at for at in sweeps if at >= healed + timedelta(hours=1)]
    assert max(b - a for a, b in zip(after, after[1:])) == timedelta(hours=1)


def test_a_webhook_after_the_finding_means_the_finding_was_a_race():
    seen = Evidence(T0, last_webhook_at=T0 + timedelta(seconds=1), unannounced_at=T0)
    assert not cadence.webhooks_look_broken(seen)
    assert cadence.webhooks_look_broken(Evidence(T0, last_webhook_at=None, unannounced_at=T0))


def test_a_low_day_budget_stretches_the_cadence_and_an_empty_one_stops_it():
    now = T0 + timedelta(hours=12)
    assert cadence.interval("invoices", Evidence(now, day_left=900)) == timedelta(hours=1)
    stretched = cadence.interval("invoices", Evidence(now, day_left=110))
    assert stretched > timedelta(hours=1)
    assert cadence.interval("invoices", Evidence(now, day_left=50)) >= timedelta(days=1)


def test_tenants_sweep_at_their_own_offsets_not_all_at_once():
    never = dict.fromkeys(cadence.KINDS)
    per_minute = []
    for minute in range(60):
        now = T0 + timedelta(minutes=minute)
        per_minute.append(sum("invoices" in cadence.due(f"t-{n}", never, Evidence(now)) for n in range(2000)))
    # a tenant never swept is due from its offset in the hour on: 2,000 first sweeps spread over it
    first = [b - a for a, b in zip([0] + per_minute, per_minute)]
    assert per_minute[-1] >= 2000 * 0.97 and max(first) <= 2000 / 60 * 2.5  # about 33 a minute, no stampede


def test_one_finding_before_a_quiet_night_relaxes_after_an_hour():
    """The day's last change was lost and found at 19:00; nothing changes overnight, so no
    webhook comes either: an hour of 5-minute sweeps that find nothing, then hourly again."""
    found = T0 + timedelta(hours=19)
    sweeps = [at for at, kind in simulate_day("tenant-n", lambda now: Evidence(
        now, unannounced_at=found if now >= found else None)) if kind == "invoices"]
    tight = [at for at in sweeps if found <= at <= found + cadence.BROKEN_HOLD]
    assert len(tight) >= 11 and max(b - a for a, b in zip(tight, tight[1:])) <= timedelta(minutes=5)
    later = [at for at in sweeps if at > found + cadence.BROKEN_HOLD + timedelta(minutes=5)]
    assert later and all(b - a == timedelta(hours=1) for a, b in zip(later, later[1:]))
