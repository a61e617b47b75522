"""The rate governor against a real Redis, with a clock the test moves."""
import pytest
import redis as redis_lib

from infra.settings import Settings
from worker.governor import BACKFILL, RECONCILE, WEBHOOK, Budget, Governor, Throttled
from xero.limits import Reported

T = "tenant-a"


class Clock:
    def __init__(self, start: float = 1_780_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def clock():
    return Clock()


def spend(gov: Governor, priority: str, n: int) -> int:
    """Take and release up to n leases; return how many were granted before Throttled."""
    for i in range(n):
        try:
            gov.acquire(T, priority).release()
        except Throttled:
            return i
    return n


def test_webhook_work_may_spend_the_usable_minute_but_backfill_stops_earlier(redis, clock):
    gov = Governor(redis, Budget(), clock)
    assert spend(gov, BACKFILL, 100) == 27  # half of the 55 usable (60 less headroom 5)
    assert spend(gov, RECONCILE, 100) == 33 - 27
    assert spend(gov, WEBHOOK, 100) == 55 - 33
    with pytest.raises(Throttled) as caught:
        gov.acquire(T, WEBHOOK)
    assert 0 < caught.value.retry_after <= 60


def test_the_minute_window_slides(redis, clock):
    gov = Governor(redis, Budget(per_minute=10, minute_headroom=0), clock)
    assert spend(gov, WEBHOOK, 5) == 5
    clock.now += 30
    assert spend(gov, WEBHOOK, 10) == 5
    with pytest.raises(Throttled) as caught:
        gov.acquire(T, WEBHOOK)
    assert caught.value.retry_after == pytest.approx(30)  # when the first five leave the window
    clock.now += 30.01
    assert spend(gov, WEBHOOK, 10) == 5


def test_no_more_than_the_concurrent_limit_in_flight_and_a_crashed_lease_expires(redis, clock):
    gov = Governor(redis, Budget(concurrent=2, lease_seconds=90), clock)
    first, second = gov.acquire(T, WEBHOOK), gov.acquire(T, WEBHOOK)
    with pytest.raises(Throttled, match="concurrent"):
        gov.acquire(T, WEBHOOK)
    first.release()
    third = gov.acquire(T, WEBHOOK)
    clock.now += 91  # `second` and `third` belonged to workers that died
    gov.acquire(T, WEBHOOK).release()
    del second, third


def test_a_429_pauses_the_tenant_for_every_worker_until_retry_after(redis, clock):
    gov = Governor(redis, Budget(), clock)
    other_worker = Governor(redis, Budget(), clock)
    gov.pause(T, 37, "minute")
    assert other_worker.paused_for(T) == pytest.approx(37)
    with pytest.raises(Throttled, match="paused") as caught:
        other_worker.acquire(T, WEBHOOK)
    assert caught.value.retry_after == pytest.approx(37)
    other_worker.acquire("tenant-b", WEBHOOK).release()  # other tenants are not held up
    clock.now += 37.1
    other_worker.acquire(T, WEBHOOK).release()


def test_an_app_minute_429_pauses_every_tenant(redis, clock):
    gov = Governor(redis, Budget(), clock)
    gov.pause(T, 5, "appminute")
    with pytest.raises(Throttled):
        gov.acquire("tenant-b", WEBHOOK)


def test_headers_saying_fewer_calls_remain_than_we_counted_are_believed(redis, clock):
    gov = Governor(redis, Budget(per_minute=60, minute_headroom=5), clock)
    gov.acquire(T, WEBHOOK).release()
    gov.observe(T, Reported(minute_remaining=10, day_remaining=4000))  # someone else spent 49 this minute
    assert spend(gov, WEBHOOK, 100) == 5  # 50 used, 55 usable
    assert spend(gov, BACKFILL, 1) == 0


def test_the_day_budget_keeps_a_share_for_webhooks_and_follows_the_header(redis, clock):
    budget = Budget(per_day=1000, day_limit_set=True, per_minute=10_000, minute_headroom=0)  # Starter, set
    gov = Governor(redis, budget, clock)
    gov.observe(T, Reported(day_remaining=1000 - 784))
    assert spend(gov, BACKFILL, 100) == budget.day_cap(BACKFILL) - 784 == 0
    assert spend(gov, RECONCILE, 100) == 0
    assert spend(gov, WEBHOOK, 1000) == budget.day_cap(WEBHOOK) - 784
    with pytest.raises(Throttled, match="day") as caught:
        gov.acquire(T, WEBHOOK)
    assert caught.value.retry_after <= 86400


def test_starter_tier_limit_comes_from_the_environment():
    starter, unset = (Budget.from_limits(Settings.from_env(env).xero_limits)
                      for env in ({"XERO_DAY_LIMIT": "1000"}, {}))
    assert starter.per_day == 1000
    assert starter.day_limit_set
    assert unset.per_day == 5000 and not unset.day_limit_set


def test_a_starter_app_is_learned_from_the_first_answer_with_no_setting(redis, clock):
    """Xero says 999 left after our first call: the limit is 1,000, not 5,000 with 4,001 used."""
    gov = Governor(redis, Budget(per_minute=10_000, minute_headroom=0), clock)
    gov.acquire(T, RECONCILE).release()
    gov.observe(T, Reported(day_remaining=999))
    assert gov.day_limit(T) == 1000 and gov.day_left(T) == 999
    budget = gov.budget
    assert spend(gov, RECONCILE, 2000) == budget.day_cap(RECONCILE, 1000) - 1  # 783 more: 784 of 1,000
    assert spend(gov, WEBHOOK, 2000) == budget.day_cap(WEBHOOK, 1000) - budget.day_cap(RECONCILE, 1000)


def test_a_paid_tier_is_learned_too_and_the_limit_never_shrinks_within_the_day(redis, clock):
    gov = Governor(redis, Budget(), clock)
    gov.acquire(T, WEBHOOK).release()
    gov.observe(T, Reported(day_remaining=4999))
    assert gov.day_limit(T) == 5000
    gov.observe(T, Reported(day_remaining=10))  # another app's calls: Xero counts more than we did
    assert gov.day_limit(T) == 5000 and gov.day_left(T) == 10


def test_xero_day_limit_overrides_what_the_headers_suggest(redis, clock):
    gov = Governor(redis, Budget(per_day=5000, day_limit_set=True), clock)
    gov.acquire(T, WEBHOOK).release()
    gov.observe(T, Reported(day_remaining=999))
    assert gov.day_limit(T) == 5000 and gov.day_left(T) == 999


def test_the_minute_header_from_xero_is_believed_for_every_priority_and_ages_out(redis, clock):
    """X-MinLimit-Remaining: calls Xero counted that we did not (another process, a call made
    outside the governor) fill our window, and leave it with the minute."""
    gov = Governor(redis, Budget(), clock)
    gov.acquire(T, WEBHOOK).release()
    gov.observe(T, Reported(minute_remaining=30))  # 30 used at Xero: 29 we never counted
    assert spend(gov, RECONCILE, 100) == 33 - 30
    assert spend(gov, WEBHOOK, 100) == 55 - 33
    clock.now += 60.01
    assert spend(gov, RECONCILE, 100) == 33


def test_the_app_minute_header_below_the_floor_pauses_every_tenant(redis, clock):
    """X-AppMinLimit-Remaining under 100: every tenant of the app waits, webhook work included."""
    gov = Governor(redis, Budget(), clock)
    gov.acquire(T, WEBHOOK).release()
    gov.observe(T, Reported(app_minute_remaining=99))
    assert gov.paused_for("tenant-b") == pytest.approx(10)
    with pytest.raises(Throttled, match="paused"):
        gov.acquire("tenant-b", WEBHOOK)
    clock.now += 10.01
    gov.acquire("tenant-b", WEBHOOK).release()


def test_reconciliation_and_backfill_leave_the_app_minute_to_webhook_work(redis, clock):
    """The app's 10,000 a minute are shared by priority as a tenant's minute is: background work
    waits while Xero's last answer says fewer than its reserve are left, webhook work does not."""
    budget = Budget()
    gov = Governor(redis, budget, clock)
    assert [budget.app_reserve(p) for p in (WEBHOOK, RECONCILE, BACKFILL)] == [0, 4000, 5000]
    gov.observe(T, Reported(app_minute_remaining=4500))
    gov.acquire("tenant-b", RECONCILE).release()  # the app counts, not the tenant
    with pytest.raises(Throttled, match="backfill app") as caught:
        gov.acquire("tenant-b", BACKFILL)
    assert caught.value.retry_after == pytest.approx(budget.app_seen_seconds)
    gov.observe(T, Reported(app_minute_remaining=3000))
    with pytest.raises(Throttled, match="reconcile app"):
        gov.acquire(T, RECONCILE)
    gov.acquire(T, WEBHOOK).release()
    clock.now += budget.app_seen_seconds + 0.01  # nothing heard since: the figure is no longer believed
    gov.acquire(T, BACKFILL).release()
    gov.observe(T, Reported(app_minute_remaining=9000))  # the window freed up
    gov.acquire(T, BACKFILL).release()


def test_xeros_rolling_day_count_inflates_neither_our_count_nor_the_learned_limit(redis, clock):
    """Xero counts a rolling 24 hours: after midnight UTC its count still holds yesterday's
    calls. Steady use of a third of a Starter limit must stay a third, day after day."""
    gov = Governor(redis, Budget(per_minute=10_000, minute_headroom=0), clock)
    window: list[float] = []  # when our calls were made, as Xero's rolling count sees them
    refused = 0
    for _ in range(4 * 333):  # four days, a call every 260 s (332 a day)
        clock.now += 260
        try:
            gov.acquire(T, RECONCILE).release()
        except Throttled:
            refused += 1
        else:
            window.append(clock.now)
            window = [t for t in window if t > clock.now - 86400]
            gov.observe(T, Reported(day_remaining=1000 - len(window)))
    assert refused == 0
    assert gov.day_limit(T) == 1000  # learned, not 1,000 plus yesterday's calls
    assert gov.day_left(T) == 1000 - len(window)  # Xero's count is believed while fresh
    clock.now += 3600  # an hour with no answer: back to our own count since midnight
    assert gov.day_left(T) >= 1000 - len(window)
