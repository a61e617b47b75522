"""The emulator's clock: real UTC time plus an offset that tests may advance."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime


class Clock:
    """Wall clock shared by tokens, rate limits and UpdatedDateUTC stamps."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def today(self) -> date:
        return self.now().date()

    def advance(self, seconds: float) -> None:
        """Move the emulator's notion of now forward (token expiry, rate windows...)."""
        with self._lock:
            self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset
