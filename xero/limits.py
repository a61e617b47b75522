"""What Xero's rate-limit headers said on an answer (pure)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reported:
    """The remaining-counts Xero sends on every response (None when a header is absent)."""

    minute_remaining: int | None = None
    day_remaining: int | None = None
    app_minute_remaining: int | None = None
