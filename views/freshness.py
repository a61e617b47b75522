"""How fresh a tenant's mirror is, as the widget's summary says it: `fresh`, or `stale` and why.

The facts and rules are ops/status.py's (what `ops status` and /metrics report to an
operator), read here for one tenant per request and worded for a sales person:

- sync lag (`status.sync_lag`): the age of the oldest outstanding inbox event; over
  STALE_AFTER, changes made in Xero are waiting to be copied.
- webhook suspicion (`status.webhook_suspicion`): reconciliation found changes no webhook
  announced, and no webhook arrived since. Read from Redis (`metrics.reconcile_records`);
  when Redis cannot be read, nothing is claimed. The answer is kept SUSPICION_TTL seconds per
  tenant and process, so a poll never waits on an unreachable Redis more than once in a while.
- never synced: no successful sync yet (the first load is still running or failing).

The reasons are fixed sentences, never "N minutes ago": the summary's body (and so its ETag)
stays the same while nothing changes. One indexed query (`facts`), `judge` is pure.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from redis import RedisError
from sqlalchemy import String, bindparam, func, select
from sqlalchemy.orm import Session

from infra import metrics
from ops import status
from services.runtime import Runtime
from store.models import InboxEvent, SyncState

STALE_AFTER = timedelta(minutes=5)
SUSPICION_TTL = 30.0  # seconds

State = Literal["fresh", "stale"]
NEVER_SYNCED = "Not synced from Xero yet: these figures may be incomplete."
LAGGING = (
    f"Changes made in Xero have waited over {int(STALE_AFTER.total_seconds() // 60)} minutes to be copied "
    "here: these figures may be behind."
)
WEBHOOKS_BROKEN = (
    "Xero has stopped announcing changes (its webhooks look broken): these figures may be behind "
    "until the next full check."
)


@dataclass(frozen=True)
class Facts:
    last_success_at: datetime | None
    last_webhook_at: datetime | None
    oldest_outstanding: datetime | None  # the oldest pending or enqueued inbox event


@dataclass(frozen=True)
class Freshness:
    last_synced_at: datetime | None
    state: State
    reason: str | None


def facts(session: Session, tenant_id: str) -> Facts:
    """The tenant's sync facts in one statement (ix_inbox_tenant_state for the inbox)."""
    row = session.execute(_FACTS, {"tenant": tenant_id}).one()
    return Facts(row[0], row[1], row[2])


def _facts_statement():
    tenant_id = bindparam("tenant", type_=String)
    oldest = (
        select(func.min(InboxEvent.received_at))
        .where(InboxEvent.tenant_id == tenant_id, InboxEvent.state.in_(status.OUTSTANDING))
        .scalar_subquery()
    )
    success = select(SyncState.last_success_at).where(SyncState.tenant_id == tenant_id).scalar_subquery()
    webhook = select(SyncState.last_webhook_at).where(SyncState.tenant_id == tenant_id).scalar_subquery()
    return select(success, webhook, oldest)


_FACTS = _facts_statement()  # built once: every summary asks it


def judge(now: datetime, known: Facts, webhook_warning: str | None) -> Freshness:
    """Fresh, or stale with the first reason that holds (pure)."""
    if known.last_success_at is None:
        return Freshness(None, "stale", NEVER_SYNCED)
    if status.sync_lag(now, known.oldest_outstanding) > STALE_AFTER.total_seconds():
        return Freshness(known.last_success_at, "stale", LAGGING)
    if webhook_warning is not None:
        return Freshness(known.last_success_at, "stale", WEBHOOKS_BROKEN)
    return Freshness(known.last_success_at, "fresh", None)


def webhook_warning(rt: Runtime, tenant_id: str, known: Facts, now: datetime) -> str | None:
    """ops.status's webhook suspicion for the tenant; None when fine or when Redis is unread."""
    key = (id(rt), tenant_id)
    held = _held.get(key)
    clock = time.monotonic()
    if held is not None and held[0] > clock:
        record = held[1]
    else:
        try:
            record = metrics.reconcile_records(rt.redis, [tenant_id]).get(tenant_id)
        except (RedisError, RuntimeError):  # RuntimeError: REDIS_URL is unset
            record = None
        with _lock:
            _held[key] = (clock + SUSPICION_TTL, record)
    return status.webhook_suspicion(now, known.last_webhook_at, record)


def of(rt: Runtime, session: Session, tenant_id: str, now: datetime) -> Freshness:
    known = facts(session, tenant_id)
    return judge(now, known, webhook_warning(rt, tenant_id, known, now))


_held: dict[tuple[int, str], tuple[float, metrics.ReconcileRecord | None]] = {}
_lock = threading.Lock()


def forget() -> None:
    """Drop the remembered Redis answers (tests)."""
    with _lock:
        _held.clear()
