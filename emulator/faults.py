"""Seeded fault injection: latency, 5xx, 429 bursts, timeouts, and webhook delivery mischief."""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields

from .config import FaultSettings


@dataclass
class CallFault:
    """What to do to one API call: wait `delay` seconds, then maybe fail as `kind`."""

    delay: float = 0.0
    kind: str | None = None  # None, "error", "rate_limit", "timeout"


@dataclass
class DeliveryFault:
    drop: bool = False
    duplicate: bool = False
    delay: float = 0.0
    reorder: bool = False


class Faults:
    """Holds the settings and its own Random(seed), so a run's faults are reproducible."""

    def __init__(self, settings: FaultSettings, seed: int) -> None:
        self.settings = settings
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def configure(self, **changes) -> dict:
        with self._lock:
            names = {f.name: f.type for f in fields(FaultSettings)}
            for name, value in changes.items():
                if name not in names:
                    raise ValueError(f"unknown fault setting {name!r}")
                current = getattr(self.settings, name)
                setattr(self.settings, name, type(current)(value))
            return asdict(self.settings)

    def snapshot(self) -> dict:
        return asdict(self.settings)

    def reset(self) -> dict:
        with self._lock:
            self.settings = FaultSettings()
            return asdict(self.settings)

    def for_call(self) -> CallFault:
        with self._lock:
            s = self.settings
            fault = CallFault(delay=self._latency(s))
            if s.rate_limit_next > 0:
                s.rate_limit_next -= 1
                fault.kind = "rate_limit"
            elif self._hit(s.timeout_rate):
                fault.kind = "timeout"
            elif self._hit(s.error_rate):
                fault.kind = "error"
            elif self._hit(s.rate_limit_rate):
                fault.kind = "rate_limit"
            return fault

    def for_delivery(self) -> DeliveryFault:
        with self._lock:
            s = self.settings
            if self._hit(s.webhook_drop_rate):
                return DeliveryFault(drop=True)
            return DeliveryFault(
                duplicate=self._hit(s.webhook_duplicate_rate),
                delay=s.webhook_delay_seconds if self._hit(s.webhook_delay_rate) else 0.0,
                reorder=self._hit(s.webhook_reorder_rate),
            )

    def _latency(self, s: FaultSettings) -> float:
        jitter = self._rng.uniform(0, s.latency_jitter_ms) if s.latency_jitter_ms else 0.0
        return max(0.0, (s.latency_ms + jitter) / 1000.0)

    def _hit(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability
