"""Pure: when reconciliation should next sweep each kind of a tenant, from the evidence.

Reconciliation exists to catch what webhooks did not bring, and every sweep costs a call
(Xero's Starter tier allows 1,000 a day; egress is billed). So its cadence follows the
evidence, not a fixed clock:

- Webhooks healthy (the usual case, idle tenants included): invoices every `base` (an hour
  by default: a change whose webhook was lost reaches the mirror within it; a payment or an
  allocation moves its invoice, so they ride along), payments every 2 x base (payment-only
  edits that do not move the invoice), contacts every 4 x base (a new customer is fetched
  with its first invoice; only edits wait for this). An idle tenant costs 24 + 12 + 6 calls
  a day, plus one Organisation read: 43.
- Webhooks look broken (a sweep found a change no webhook announced and no webhook has
  arrived since): invoices every 5 minutes, payments every 10, contacts every 30, until a
  webhook arrives again or an hour passes with no sweep finding another.
- The tenant's day budget runs low: intervals stretch so that what is left lasts until
  the day ends, keeping a reserve for webhook-driven syncs (the governor enforces it).

Each tenant's sweeps are offset within the interval by a hash of its id, so thousands of
tenants do not sweep in the same minute.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

KINDS = ("contacts", "invoices", "payments")
HEALTHY_FACTOR = {"invoices": 1, "payments": 2, "contacts": 4}
BROKEN = {"invoices": timedelta(minutes=5), "payments": timedelta(minutes=10), "contacts": timedelta(minutes=30)}
DEFAULT_BASE = timedelta(hours=1)
BROKEN_HOLD = timedelta(hours=1)  # broken-webhook cadence lasts this long after the last unannounced find
RESERVE = 100  # calls a day no sweep may take: webhook work comes first


@dataclass(frozen=True)
class Evidence:
    """What is known of the tenant's webhooks and budget at `now`."""

    now: datetime
    last_webhook_at: datetime | None = None
    unannounced_at: datetime | None = None  # a sweep last found a change no webhook announced
    day_left: int | None = None  # calls Xero says are left today (None: not known)


def webhooks_look_broken(evidence: Evidence) -> bool:
    """A sweep found what no webhook announced in the last BROKEN_HOLD, and no webhook arrived
    after it. (A night with no change sends no webhook either: an hour of sweeps that find
    nothing new is evidence enough to relax.)"""
    if evidence.unannounced_at is None or evidence.now - evidence.unannounced_at > BROKEN_HOLD:
        return False
    return evidence.last_webhook_at is None or evidence.last_webhook_at < evidence.unannounced_at


def interval(kind: str, evidence: Evidence, base: timedelta = DEFAULT_BASE) -> timedelta:
    """How long after its last sweep the kind is due again."""
    if webhooks_look_broken(evidence):
        chosen = min(BROKEN[kind], base * HEALTHY_FACTOR[kind])
    else:
        chosen = base * HEALTHY_FACTOR[kind]
    return chosen * _stretch(evidence, base)


def _stretch(evidence: Evidence, base: timedelta) -> int:
    """1, or more when the day's calls left would not cover this cadence until midnight (UTC)."""
    if evidence.day_left is None:
        return 1
    left = evidence.day_left - RESERVE
    midnight = (evidence.now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    hours = max((midnight - evidence.now).total_seconds() / 3600, 1 / 60)
    per_hour = sum(3600 / (BROKEN[k] if webhooks_look_broken(evidence) else base * HEALTHY_FACTOR[k]).total_seconds()
                   for k in KINDS)
    if left <= 0:
        return 24 * 12  # nothing to spare today: practically never, until the day turns
    needed = per_hour * hours
    return max(1, -(-int(needed) // int(left)))  # ceil(needed / left)


@lru_cache(maxsize=1 << 16)  # the ticker asks for every tenant's kinds each look
def offset(tenant_id: str, period: timedelta) -> timedelta:
    """Where in each period this tenant's sweeps fall (stable, spread evenly over tenants)."""
    fraction = int(hashlib.sha256(tenant_id.encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    return timedelta(seconds=int(period.total_seconds() * fraction))


def due(
    tenant_id: str,
    swept_at: dict[str, datetime | None],
    evidence: Evidence,
    base: timedelta = DEFAULT_BASE,
) -> list[str]:
    """The kinds whose next sweep is due at `evidence.now`, in sweep order.

    A kind never swept (a tenant just backfilled, or from before this rule) is due at its
    tenant's offset into the first period, counted from the start of the current period."""
    kinds = []
    for kind in KINDS:
        period = interval(kind, evidence, base)
        last = swept_at.get(kind)
        if last is None:
            epoch = datetime(2000, 1, 1, tzinfo=evidence.now.tzinfo)
            periods = (evidence.now - epoch) // period
            last = epoch + periods * period + offset(tenant_id, period) - period
        if evidence.now >= last + period:
            kinds.append(kind)
    return kinds


def due_for(tenant_id: str, state, now: datetime, day_left: int | None, base: timedelta = DEFAULT_BASE) -> list[str]:
    """`due` for a tenant's sync_state row (anything with `{kind}_swept_at`, `last_webhook_at`
    and `unannounced_at`), as the ticker and the reconcile job both ask it."""
    swept = {kind: getattr(state, f"{kind}_swept_at") for kind in KINDS}
    evidence = Evidence(now, state.last_webhook_at, state.unannounced_at, day_left)
    return due(tenant_id, swept, evidence, base)
