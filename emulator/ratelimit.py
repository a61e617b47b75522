"""Xero's rate limits: per tenant per minute, per day and concurrent, and per app per minute."""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field

from .clock import Clock
from .config import Limits

MINUTE = 60.0
DAY = 86400.0


@dataclass
class Verdict:
    """The outcome of admitting one call: allowed, or the limit it broke and when to retry."""

    allowed: bool
    problem: str | None = None
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


class RateLimiter:
    """Sliding windows of call times; a refused call does not count against any limit."""

    def __init__(self, clock: Clock, limits: Limits) -> None:
        self.clock = clock
        self.limits = limits
        self._lock = threading.Lock()
        self._minute: dict[str, deque] = defaultdict(deque)
        self._day: dict[str, deque] = defaultdict(deque)
        self._app: deque = deque()
        self._in_flight: dict[str, int] = defaultdict(int)
        self._tenant_day: dict[str, int] = {}  # per-tenant daily limit (Xero's tiers), else limits.day

    def configure(self, **changes) -> dict:
        with self._lock:
            for name, value in changes.items():
                if not hasattr(self.limits, name):
                    raise ValueError(f"unknown limit {name!r}")
                setattr(self.limits, name, int(value))
            return asdict(self.limits)

    def settings(self) -> dict:
        return asdict(self.limits)

    def day_limit(self, tenant_id: str) -> int:
        """The tenant's own daily limit (e.g. 1,000 on Starter) or the shared `limits.day`."""
        return self._tenant_day.get(tenant_id, self.limits.day)

    def set_tenant_limits(self, tenant_id: str, day: int | None = None) -> dict:
        """Give one tenant its own daily limit; `day=None` makes it follow `limits.day` again."""
        with self._lock:
            if day is None:
                self._tenant_day.pop(tenant_id, None)
            else:
                day = int(day)
                if day < 0:
                    raise ValueError("day must be >= 0")
                self._tenant_day[tenant_id] = day
            return self._tenant_settings(tenant_id)

    def tenant_settings(self, tenant_id: str) -> dict:
        with self._lock:
            return self._tenant_settings(tenant_id)

    def _tenant_settings(self, tenant_id: str) -> dict:
        return {
            **asdict(self.limits),
            "day": self.day_limit(tenant_id),
            "day_override": tenant_id in self._tenant_day,
        }

    def clear_tenant_limits(self) -> None:
        """Every tenant back on the shared limits."""
        with self._lock:
            self._tenant_day.clear()

    def reset(self) -> None:
        """Forget all recorded calls (windows start empty); in-flight counts are kept."""
        with self._lock:
            self._minute.clear()
            self._day.clear()
            self._app.clear()

    def acquire(self, tenant_id: str) -> Verdict:
        """Admit a tenant call (remember to `release` it) or say which limit refuses it."""
        with self._lock:
            now = self.clock.time()
            minute, day = self._minute[tenant_id], self._day[tenant_id]
            _expire(minute, now - MINUTE)
            _expire(day, now - DAY)
            _expire(self._app, now - MINUTE)
            problem = self._problem(tenant_id, minute, day)
            if problem:
                window = {"day": (day, DAY), "minute": (minute, MINUTE), "appminute": (self._app, MINUTE)}
                retry = 1 if problem == "concurrent" else _retry_after(*window[problem], now)
                return Verdict(False, problem, retry, self._headers(tenant_id, minute, day))
            minute.append(now)
            day.append(now)
            self._app.append(now)
            self._in_flight[tenant_id] += 1
            return Verdict(True, headers=self._headers(tenant_id, minute, day))

    def _problem(self, tenant_id: str, minute: deque, day: deque) -> str | None:
        if len(day) >= self.day_limit(tenant_id):
            return "day"
        if len(minute) >= self.limits.minute:
            return "minute"
        if len(self._app) >= self.limits.app_minute:
            return "appminute"
        if self._in_flight[tenant_id] >= self.limits.concurrent:
            return "concurrent"
        return None

    def release(self, tenant_id: str) -> None:
        with self._lock:
            self._in_flight[tenant_id] = max(0, self._in_flight[tenant_id] - 1)

    def app_call(self) -> Verdict:
        """A tenant-less call (e.g. /connections): only the app-wide minute limit applies."""
        with self._lock:
            now = self.clock.time()
            _expire(self._app, now - MINUTE)
            if len(self._app) >= self.limits.app_minute:
                return Verdict(False, "appminute", _retry_after(self._app, MINUTE, now), self._app_header())
            self._app.append(now)
            return Verdict(True, headers=self._app_header())

    def _headers(self, tenant_id: str, minute: deque, day: deque) -> dict[str, str]:
        return {
            "X-DayLimit-Remaining": str(max(0, self.day_limit(tenant_id) - len(day))),
            "X-MinLimit-Remaining": str(max(0, self.limits.minute - len(minute))),
            **self._app_header(),
        }

    def _app_header(self) -> dict[str, str]:
        return {"X-AppMinLimit-Remaining": str(max(0, self.limits.app_minute - len(self._app)))}


def _expire(window: deque, horizon: float) -> None:
    while window and window[0] <= horizon:
        window.popleft()


def _retry_after(window: deque, span: float, now: float) -> int:
    if not window:
        return 1
    return max(1, math.ceil(window[0] + span - now))
