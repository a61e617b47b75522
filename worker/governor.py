"""The rate governor: one per-tenant budget in Redis shared by every worker process.

Xero allows each tenant 60 calls a minute, 5 in flight and 5,000 a day (1,000 on the Starter
tier), and the app 10,000 a minute across tenants. Before every call a worker asks
`acquire(tenant, priority)`; the answer is a lease, or `Throttled(retry_after)` and the job
reschedules itself (it never sleeps). After the call it reports what Xero said:
`observe(...)` with the remaining-counts headers, `pause(...)` with a 429's Retry-After.

Priority: webhook-driven syncs may spend the whole usable minute and day budget;
reconciliation and backfill stop earlier, so a share is always left for webhook work. The
shares are of one counter per window, not separate budgets: reconciliation and backfill
together never pass the larger of their two shares (on Starter 784 of the 1,000 calls a day,
33 of the 55 usable a minute), and webhook work always has the rest. The app-wide minute is
shared the same way: reconciliation waits while Xero's last `X-AppMinLimit-Remaining`
(believed for `app_seen_seconds`) says fewer than 4,000 of the app's 10,000 are left, backfill
below 5,000, so thousands of tenants' sweeps or backfills cannot bring the app down to the
floor (100) at which every tenant, webhook work included, waits.

The day limit is learned, not assumed: Xero sends `X-DayLimit-Remaining` on every answer but
never the limit itself, so the limit a tenant has today is at least what Xero says is left
plus what we counted (1,000 on Starter, 5,000 on the paid tiers). The largest such figure is
kept per tenant (`xm:gov:{tenant}:daylimit`, two days); `XERO_DAY_LIMIT`, when set, overrides.
A call Xero counted and no governor did (the connect's Organisation read) leaves the figure
that many short, on the safe side: a Starter tenant connected today is learned as 999.
"""
from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from redis import Redis

from infra.errors import MirrorError
from infra.settings import XeroLimits
from xero.limits import Reported

WEBHOOK, RECONCILE, BACKFILL = "webhook", "reconcile", "backfill"
MINUTE = 60.0
APP_PAUSE = "xm:gov:app:pause"  # until when every tenant waits (a 429 or the app's floor)
XERO_USED_SECONDS = 120.0  # how long Xero's day count (from its last answer) is believed
APP_LEFT = "xm:gov:app:left"  # "calls-left until": the app's minute as Xero's last answer said


class Throttled(MirrorError):
    """Our own budget says no call now; try again in `retry_after` seconds."""

    def __init__(self, retry_after: float, reason: str):
        super().__init__(f"{reason}: retry in {retry_after:.1f}s")
        self.retry_after = retry_after
        self.reason = reason


@dataclass(frozen=True)
class Budget:
    """Xero's limits for one tenant, and how much of them each priority may use."""

    per_minute: int = 60
    concurrent: int = 5
    per_day: int = 5000  # assumed until Xero's headers say otherwise, unless `day_limit_set`
    day_limit_set: bool = False  # XERO_DAY_LIMIT was given: never learn another
    minute_headroom: int = 5  # never plan on the last calls of a minute
    day_headroom_share: float = 0.02
    # The share of the usable budget a priority may spend; the rest is kept for webhooks.
    minute_share: dict[str, float] = field(
        default_factory=lambda: {WEBHOOK: 1.0, RECONCILE: 0.6, BACKFILL: 0.5}
    )
    day_share: dict[str, float] = field(default_factory=lambda: {WEBHOOK: 1.0, RECONCILE: 0.8, BACKFILL: 0.8})
    app_per_minute: int = 10_000  # Xero's limit for the app across all tenants
    app_minute_floor: int = 100  # below this many app calls left, every tenant waits
    app_seen_seconds: float = 5.0  # how long Xero's last X-AppMinLimit-Remaining is believed
    lease_seconds: float = 90.0  # an in-flight lease a crashed worker leaves expires after this

    def minute_cap(self, priority: str) -> int:
        usable = max(1, self.per_minute - self.minute_headroom)
        return max(1, math.floor(usable * self.minute_share[priority]))

    def day_cap(self, priority: str, per_day: int | None = None) -> int:
        limit = self.per_day if per_day is None else per_day
        usable = max(1, limit - math.ceil(limit * self.day_headroom_share))
        return max(1, math.floor(usable * self.day_share[priority]))

    def app_reserve(self, priority: str) -> int:
        """App calls a minute this priority leaves to the ones above it: it waits while Xero
        says fewer are left (webhook work keeps only `app_minute_floor`, for every priority)."""
        return math.ceil(self.app_per_minute * (1.0 - self.minute_share[priority]))

    @classmethod
    def from_limits(cls, limits: XeroLimits) -> Budget:
        """The budget against the limits the settings give (XERO_MINUTE_LIMIT and the rest)."""
        return cls(per_minute=limits.per_minute, concurrent=limits.concurrent, per_day=limits.per_day,
                   day_limit_set=limits.day_limit_set)


@dataclass
class Lease:
    governor: Governor
    tenant_id: str
    lease_id: str

    def release(self) -> None:
        self.governor._release(self.tenant_id, self.lease_id)


# KEYS: minute zset, day counter, in-flight zset, tenant pause, app pause, learned day limit,
# app calls left (as Xero last said), Xero's day count (as its last answer said)
# ARGV: now, minute cap, day limit (or '' to use the learned one, else ARGV[8]), concurrent cap,
# lease id, lease expiry, day ttl seconds, default day limit, day headroom share, day share,
# app reserve (the day cap is Budget.day_cap's arithmetic, done here so the learned limit costs
# no round trip)
_ACQUIRE = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[3]) or tonumber(redis.call('GET', KEYS[6]) or ARGV[8])
local usable = math.max(1, limit - math.ceil(limit * tonumber(ARGV[9])))
local daycap = math.max(1, math.floor(usable * tonumber(ARGV[10])))
local pause = math.max(tonumber(redis.call('GET', KEYS[4]) or '0'), tonumber(redis.call('GET', KEYS[5]) or '0'))
if pause > now then return {'paused', tostring(pause - now)} end
local seen = redis.call('GET', KEYS[7])
if seen then
  local appleft, believed = string.match(seen, '^(%S+) (%S+)$')
  if tonumber(believed) > now and tonumber(appleft) < tonumber(ARGV[11]) then
    return {'app', tostring(tonumber(believed) - now)}
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60)
local used = redis.call('ZCARD', KEYS[1])
local cap = tonumber(ARGV[2])
if used >= cap then
  local oldest = redis.call('ZRANGE', KEYS[1], used - cap, used - cap, 'WITHSCORES')
  return {'minute', tostring(tonumber(oldest[2]) + 60 - now)}
end
local day = tonumber(redis.call('GET', KEYS[2]) or '0')
local xero = redis.call('GET', KEYS[8])
local xused, believed = nil, nil
if xero then
  xused, believed = string.match(xero, '^(%S+) (%S+)$')
  if tonumber(believed) > now then day = math.max(day, tonumber(xused)) else xused = nil end
end
if day >= daycap then
  return {'day', '0'}
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then return {'concurrent', '1'} end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('EXPIRE', KEYS[1], 120)
redis.call('INCR', KEYS[2])
if redis.call('TTL', KEYS[2]) < 0 then redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7])) end
if xused then  -- this call counts in Xero's figure too, until its answer says it again
  redis.call('SET', KEYS[8], tostring(tonumber(xused) + 1) .. ' ' .. believed, 'EX', 600)
end
redis.call('ZADD', KEYS[3], tonumber(ARGV[6]), ARGV[5])
redis.call('EXPIRE', KEYS[3], 600)
return {'ok', '0'}
"""

# KEYS: minute zset, our day counter, learned day limit, app calls left, Xero's day count; ARGV:
# now, per-minute limit, minute remaining (or ''), per-day limit, day remaining (or ''), day ttl
# seconds, '1' when the day limit is set, app minute remaining (or ''), until when to believe it,
# until when to believe Xero's day count.
# Our day counter counts only our own calls since UTC midnight; Xero's count (limit less what it
# says is left) is kept apart: Xero counts a rolling 24 hours, so it may include yesterday's
# calls, and copying it into our counter (or learning the limit from it) would inflate both a
# little more every day.
_OBSERVE = """
local now = tonumber(ARGV[1])
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[4], ARGV[8] .. ' ' .. ARGV[9], 'EX', 120)
end
if ARGV[3] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60)
  local missing = (tonumber(ARGV[2]) - tonumber(ARGV[3])) - redis.call('ZCARD', KEYS[1])
  for i = 1, missing do redis.call('ZADD', KEYS[1], now, 'xero:' .. now .. ':' .. i) end
  redis.call('EXPIRE', KEYS[1], 120)
end
if ARGV[5] ~= '' then
  local remaining = tonumber(ARGV[5])
  local own = tonumber(redis.call('GET', KEYS[2]) or '0')
  local limit = tonumber(ARGV[4])
  if ARGV[7] ~= '1' then
    local learned = math.max(tonumber(redis.call('GET', KEYS[3]) or '0'), remaining + own)
    redis.call('SET', KEYS[3], learned, 'EX', 172800)
    limit = learned
  end
  redis.call('SET', KEYS[5], tostring(math.max(0, limit - remaining)) .. ' ' .. ARGV[10], 'EX', 600)
end
return 1
"""

# KEYS: pause key; ARGV: until (epoch seconds), ttl seconds
_PAUSE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
end
return 1
"""


class Governor:
    def __init__(self, redis: Redis, budget: Budget | None = None, clock: Callable[[], float] = time.time):
        self.redis = redis
        self.budget = budget or Budget()
        self.clock = clock
        self._acquire = redis.register_script(_ACQUIRE)
        self._observe = redis.register_script(_OBSERVE)
        self._pause = redis.register_script(_PAUSE)

    # -- keys ----------------------------------------------------------------------------
    @staticmethod
    def _key(tenant_id: str, part: str) -> str:
        return f"xm:gov:{tenant_id}:{part}"

    def _day_key(self, tenant_id: str, now: float) -> str:
        return self._key(tenant_id, "day:" + datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d"))

    @staticmethod
    def _seconds_to_midnight(now: float) -> int:
        moment = datetime.fromtimestamp(now, timezone.utc)
        midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return max(1, math.ceil((midnight - moment).total_seconds()))

    def day_limit(self, tenant_id: str) -> int:
        """The tenant's daily call limit: XERO_DAY_LIMIT when set, else what Xero's headers
        have shown it to be, else the default until the first answer."""
        if self.budget.day_limit_set:
            return self.budget.per_day
        learned = self.redis.get(self._key(tenant_id, "daylimit"))
        return int(learned) if learned else self.budget.per_day

    def day_left(self, tenant_id: str) -> int:
        """Calls left today for this tenant, as far as we know (Xero's count or ours)."""
        now = self.clock()
        own, xero, learned = self.redis.mget(
            [self._day_key(tenant_id, now), self._key(tenant_id, "xeroused"), self._key(tenant_id, "daylimit")]
        )  # one round trip: the ticker asks this of every due tenant
        limit = self.budget.per_day if self.budget.day_limit_set or not learned else int(learned)
        used = int(own or 0)
        if xero:
            xero_used, believed = (xero.decode() if isinstance(xero, bytes) else xero).split()
            if float(believed) > now:
                used = max(used, int(xero_used))
        return max(0, limit - used)

    # -- the calls a worker makes ---------------------------------------------------------
    def acquire(self, tenant_id: str, priority: str) -> Lease:
        """A lease for one call now, or Throttled with how long to wait."""
        now = self.clock()
        lease_id = uuid.uuid4().hex
        verdict, wait = self._acquire(
            keys=[
                self._key(tenant_id, "minute"),
                self._day_key(tenant_id, now),
                self._key(tenant_id, "inflight"),
                self._key(tenant_id, "pause"),
                APP_PAUSE,
                self._key(tenant_id, "daylimit"),
                APP_LEFT,
                self._key(tenant_id, "xeroused"),
            ],
            args=[
                repr(now),
                self.budget.minute_cap(priority),
                self.budget.per_day if self.budget.day_limit_set else "",
                self.budget.concurrent,
                lease_id,
                repr(now + self.budget.lease_seconds),
                self._seconds_to_midnight(now) + 3600,
                self.budget.per_day,
                repr(self.budget.day_headroom_share),
                repr(self.budget.day_share[priority]),
                self.budget.app_reserve(priority),
            ],
        )
        verdict = verdict.decode() if isinstance(verdict, bytes) else verdict
        if verdict != "ok":
            seconds = float(wait)
            if verdict == "day":  # our day window is the UTC day
                seconds = self._seconds_to_midnight(now)
            raise Throttled(max(0.5, seconds), f"{priority} {verdict} budget")
        return Lease(self, tenant_id, lease_id)

    def _release(self, tenant_id: str, lease_id: str) -> None:
        self.redis.zrem(self._key(tenant_id, "inflight"), lease_id)

    def observe(self, tenant_id: str, reported: Reported) -> None:
        """Trust Xero's remaining-counts when they say we have used more than we counted."""
        now = self.clock()
        self._observe(
            keys=[
                self._key(tenant_id, "minute"),
                self._day_key(tenant_id, now),
                self._key(tenant_id, "daylimit"),
                APP_LEFT,
                self._key(tenant_id, "xeroused"),
            ],
            args=[
                repr(now),
                self.budget.per_minute,
                "" if reported.minute_remaining is None else reported.minute_remaining,
                self.budget.per_day,
                "" if reported.day_remaining is None else reported.day_remaining,
                self._seconds_to_midnight(now) + 3600,
                "1" if self.budget.day_limit_set else "0",
                "" if reported.app_minute_remaining is None else reported.app_minute_remaining,
                repr(now + self.budget.app_seen_seconds),
                repr(now + XERO_USED_SECONDS),
            ],
        )
        app_left = reported.app_minute_remaining
        if app_left is not None and app_left < self.budget.app_minute_floor:
            self._set_pause(APP_PAUSE, now + 10)

    def pause(self, tenant_id: str, seconds: float, problem: str | None = None) -> None:
        """A 429: nobody calls this tenant (or, for the app-wide limit, anybody) until it passes."""
        now = self.clock()
        key = APP_PAUSE if (problem or "").lower() in ("appminute", "app") else self._key(tenant_id, "pause")
        self._set_pause(key, now + max(0.0, seconds))

    def _set_pause(self, key: str, until: float) -> None:
        self._pause(keys=[key], args=[repr(until), max(1, math.ceil(until - self.clock()) + 1)])

    def paused_for(self, tenant_id: str) -> float:
        """Seconds until this tenant may be called again (0 when it may)."""
        now = self.clock()
        values = self.redis.mget([self._key(tenant_id, "pause"), APP_PAUSE])
        until = max(float(v) for v in [b"0", *[v for v in values if v]])
        return max(0.0, until - now)
