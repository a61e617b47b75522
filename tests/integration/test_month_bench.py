"""bench/month.py at its quick size: the three ways see the same changes, the pollers cost what
their schedules say, and every change whose webhook was lost reaches the mirror."""
import pytest

from bench import month


@pytest.mark.slow
def test_the_model_month_measures_three_ways_on_the_same_changes(redis_url):
    results, calendar = month.measure(month.QUICK, redis_url)
    section = month._section(month.QUICK, calendar, results)
    report = section.markdown()

    assert len({r.digest for r in results.values()}) == 1, report
    ours, hourly, breadwinner = results[month.OURS], results[month.HOURLY], results[month.BREADWINNER]
    assert sum(ours.changes.values()) > 0.95 * month.QUICK.days * (month.QUICK.invoice_changes
                                                                    + month.QUICK.payments), report
    # a poll is three kinds, one page each at this rate of change: the schedule alone sets the calls
    assert sum(hourly.tally.calls) == 3 * len(range(0, calendar.minutes, 60)), report
    assert sum(breadwinner.tally.calls) == 3 * len(range(0, calendar.minutes, 13)), report
    assert not any(r.tally.retries for r in results.values()), report
    assert ours.events > 0 and ours.lost, report
    assert all(lost.arrived is not None for lost in ours.lost), report
    assert ours.tally.by_activity["webhook syncs"][0] > 0, report
    assert sum(ours.tally.wire) > 0 and sum(hourly.tally.wire) > 0, report
