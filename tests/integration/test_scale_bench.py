"""bench/scale.py --quick: 10,000 idle tenants, the ticker's spread holds reconciliation under 5%
of the app's minute when every tenant is due at once, and the first release's rule does not."""
from bench import scale


def test_the_quick_scale_bench_keeps_reconciliation_within_five_percent_of_the_app_minute():
    section = scale.run(None, quick=True)

    assert [goal.met for goal in section.goals] == [True], section.markdown()
    ours, first_release = section.rows
    assert ours[0] == "ours, upgrade fleet" and first_release[0] == "first release"
    assert ours[6] == "0 / 0"  # nothing Throttled, no 429
    peak, base_peak = (int(row[2].split()[0].replace(",", "")) for row in (ours, first_release))
    assert 0 < peak <= 500 < base_peak
