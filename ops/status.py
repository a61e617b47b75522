"""What an operator needs to see per workspace and tenant, read from the database and Redis.

Connection state, the last webhook and the last successful sync, the sync lag, the changed
ids waiting in the inbox, queued and failed jobs, the Xero rate budget left, the backfill's
progress, whether the tenant's webhooks look broken, and the organisation's time zone (and
so its today), with a warning when Xero's id for it is unknown and dates fall back to UTC,
and the Xero egress metered for it (calls answered and bytes pulled, today and over the last
30 UTC days: what Xero bills integrations by, see infra.metrics.egress).
Read-only; `ops status`, `GET /metrics` and the admin page all read it here. `sync_lag`,
`webhook_suspicion`, `timezone_warning` and `budget_left` are pure.

Definitions:
- sync lag: the age of the oldest outstanding (pending or enqueued) inbox event; 0 when none.
  `since_success` is the time since the last successful sync, reported beside it.
- webhook suspicion: the last reconciliation that found changes no webhook had announced ran
  within the last day, and no webhook has arrived for the tenant since. Xero stops delivering
  after a day of failed deliveries and disables the subscription; this is how it shows.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from redis import Redis, RedisError
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from infra import metrics, queue
from infra.settings import XeroLimits
from store.models import InboxEvent, SyncState, Workspace, XeroConnection
from xero import timezones

OUTSTANDING = ("pending", "enqueued")
SUSPICION_WINDOW = timedelta(hours=24)
JOB_STATES = ("queued", "scheduled", "running", "failed")
_FETCH_CHUNK = 500


@dataclass
class TenantStatus:
    workspace_id: int
    workspace_name: str
    tenant_id: str
    tenant_name: str | None
    connection: str
    connection_error: str | None
    last_webhook_at: datetime | None
    last_sync_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    sync_lag_seconds: float
    since_success_seconds: float | None
    inbox: dict[str, int]  # pending, enqueued, failed
    changed_waiting: int  # distinct resources with an outstanding event
    backfill: dict[str, Any]  # status, phase, page, fetched
    unannounced_changes: int
    timezone: str = timezones.FALLBACK  # IANA, what "today" is read in
    timezone_xero: str | None = None  # Organisation.Timezone as Xero sent it; None: not read yet
    timezone_mapped: bool = False
    timezone_warning: str | None = None  # set when Xero's id is unknown and dates use UTC
    today: date | None = None  # the organisation's date now
    organisation_checked_at: datetime | None = None
    jobs: dict[str, int] | None = None  # queued, scheduled, running, failed; None: Redis unread
    rate_budget: dict[str, Any] | None = None
    webhook_warning: str | None = None
    # Xero egress (infra.metrics.egress), per UTC day; None: Redis unread
    calls_today: int | None = None
    bytes_today: int | None = None
    calls_30d: int | None = None
    bytes_30d: int | None = None

    @property
    def webhook_suspect(self) -> bool:
        return self.webhook_warning is not None

    def as_json(self) -> dict[str, Any]:
        data = {k: _json_value(v) for k, v in self.__dict__.items()}
        data["webhook_suspect"] = self.webhook_suspect
        return data


@dataclass
class Report:
    now: datetime
    tenants: list[TenantStatus]
    queues: dict[str, dict[str, int]] | None = None
    redis_error: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Xero egress today and over 30 days of every tenant metered, `-` (no tenant) and
    # disconnected ones included: {tenant: {calls_today, bytes_today, calls_30d, bytes_30d}}
    egress: dict[str, dict[str, int]] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "redis": "ok" if self.redis_error is None else self.redis_error,
            "queues": self.queues,
            "tenants": [t.as_json() for t in self.tenants],
            "egress": self.egress,
            "warnings": self.warnings,
        }


# --- pure rules -------------------------------------------------------------------------------


def sync_lag(now: datetime, oldest_outstanding: datetime | None) -> float:
    """Seconds the oldest outstanding event has waited; 0 when nothing waits."""
    if oldest_outstanding is None:
        return 0.0
    return max(0.0, (now - oldest_outstanding).total_seconds())


def webhook_suspicion(
    now: datetime, last_webhook_at: datetime | None, record: metrics.ReconcileRecord | None
) -> str | None:
    """Why this tenant's webhooks look broken, or None when nothing says so."""
    if record is None or record.unannounced_at is None or now - record.unannounced_at > SUSPICION_WINDOW:
        return None
    if last_webhook_at is not None and last_webhook_at >= record.unannounced_at:
        return None  # a webhook arrived after: deliveries work (the finding was a race)
    heard = "no webhook was ever received" if last_webhook_at is None else (
        f"the last webhook arrived {_age(now - last_webhook_at)} ago")
    return (
        f"webhooks look broken: reconciliation found {record.unannounced} change(s) no webhook announced "
        f"{_age(now - record.unannounced_at)} ago, and {heard}. Xero disables a subscription after a day of "
        "failed deliveries: check the webhook's status in the Xero developer portal."
    )


def timezone_warning(zone: timezones.OrgZone) -> str | None:
    """What to say when Xero named a time zone we cannot map (dates then use UTC). A zone not
    read yet (a connection made while Xero did not answer, or before the column existed) is
    not warned about: reconciliation reads it soon, and the JSON says `timezone_xero: null`."""
    if zone.mapped or not zone.xero:
        return None
    return zone.warning()


def budget_left(
    limits: XeroLimits, minute_used: int, day_used: int, paused_until: float, now: float, learned_day: int | None = None
) -> dict[str, Any]:
    per_day = limits.per_day if limits.day_limit_set or not learned_day else learned_day
    return {
        "minute_left": max(0, limits.per_minute - minute_used),
        "minute_limit": limits.per_minute,
        "day_left": max(0, per_day - day_used),
        "day_limit": per_day,
        "paused_seconds": round(max(0.0, paused_until - now), 1),
    }


def _age(delta: timedelta) -> str:
    seconds = int(max(0, delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


# --- the database -----------------------------------------------------------------------------


def tenants(
    session: Session, now: datetime, tenant_id: str | None = None, include_disconnected: bool = False
) -> list[TenantStatus]:
    """One row per connection (live ones unless `include_disconnected`), with its sync facts."""
    stmt = (
        select(XeroConnection, Workspace.name, SyncState)
        .join(Workspace, Workspace.id == XeroConnection.workspace_id)
        .outerjoin(SyncState, SyncState.tenant_id == XeroConnection.tenant_id)
        .order_by(XeroConnection.workspace_id, XeroConnection.tenant_id, XeroConnection.id)
    )
    if not include_disconnected:
        stmt = stmt.where(XeroConnection.status != "disconnected")
    if tenant_id is not None:
        stmt = stmt.where(XeroConnection.tenant_id == tenant_id)
    rows = session.execute(stmt).all()
    inbox = _inbox_facts(session, tenant_id)
    result = []
    for connection, workspace_name, state in rows:
        facts = inbox.get(connection.tenant_id, {})
        zone = timezones.zone_for(connection.timezone)
        result.append(TenantStatus(
            workspace_id=connection.workspace_id,
            workspace_name=workspace_name,
            tenant_id=connection.tenant_id,
            tenant_name=connection.tenant_name,
            connection=connection.status,
            connection_error=connection.last_error,
            last_webhook_at=state.last_webhook_at if state else None,
            last_sync_at=state.last_sync_at if state else None,
            last_success_at=state.last_success_at if state else None,
            last_error=state.last_error if state else None,
            sync_lag_seconds=round(sync_lag(now, facts.get("oldest")), 3),
            since_success_seconds=_seconds_since(now, state.last_success_at if state else None),
            inbox={s: facts.get(s, 0) for s in ("pending", "enqueued", "failed")},
            changed_waiting=facts.get("changed", 0),
            backfill={
                "status": state.backfill_status if state else "pending",
                "phase": state.backfill_phase if state else None,
                "page": state.backfill_page if state else 0,
                "fetched": state.backfill_fetched if state else 0,
            },
            unannounced_changes=(state.unannounced_changes or 0) if state else 0,
            timezone=zone.iana,
            timezone_xero=connection.timezone,
            timezone_mapped=zone.mapped,
            timezone_warning=timezone_warning(zone),
            today=timezones.org_today(zone, now),
            organisation_checked_at=connection.organisation_checked_at,
        ))
    return result


def _seconds_since(now: datetime, moment: datetime | None) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 3)


def _inbox_facts(session: Session, tenant_id: str | None) -> dict[str, dict[str, Any]]:
    """Per tenant: counts of pending, enqueued and failed events, the oldest outstanding
    arrival, and how many distinct resources wait. Index-backed (tenant_id, state)."""
    wanted: list[ColumnElement[bool]] = [InboxEvent.state.in_((*OUTSTANDING, "failed"))]
    if tenant_id is not None:
        wanted.append(InboxEvent.tenant_id == tenant_id)
    facts: dict[str, dict[str, Any]] = {}
    for tenant, state, count, oldest in session.execute(
        select(InboxEvent.tenant_id, InboxEvent.state, func.count(), func.min(InboxEvent.received_at))
        .where(*wanted)
        .group_by(InboxEvent.tenant_id, InboxEvent.state)
    ):
        entry = facts.setdefault(tenant, {})
        entry[state] = count
        if state in OUTSTANDING and (entry.get("oldest") is None or oldest < entry["oldest"]):
            entry["oldest"] = oldest
    outstanding = [InboxEvent.state.in_(OUTSTANDING)] + wanted[1:]
    for tenant, changed in session.execute(
        select(InboxEvent.tenant_id, func.count(func.distinct(InboxEvent.resource_id)))
        .where(*outstanding)
        .group_by(InboxEvent.tenant_id)
    ):
        facts.setdefault(tenant, {})["changed"] = changed
    return facts


# --- Redis ------------------------------------------------------------------------------------


def governor_keys(tenant_id: str, now: float) -> tuple[str, str, str, str]:
    """The governor's keys for a tenant (worker/governor.py): minute window, today's count, pause,
    and the day limit Xero's headers showed."""
    day = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d")
    base = f"xm:gov:{tenant_id}:"
    return base + "minute", base + "day:" + day, base + "pause", base + "daylimit"


APP_PAUSE_KEY = "xm:gov:app:pause"


def rate_budgets(
    redis: Redis, tenant_ids: list[str], limits: XeroLimits, now: float
) -> dict[str, dict[str, Any]]:
    """The rate budget left per tenant this minute and today, as the governor counts it."""
    with redis.pipeline(transaction=False) as pipe:
        pipe.get(APP_PAUSE_KEY)
        for tenant_id in tenant_ids:
            minute, day, pause, learned = governor_keys(tenant_id, now)
            pipe.zcount(minute, f"({now - 60!r}", "+inf")
            pipe.get(day)
            pipe.get(pause)
            pipe.get(learned)
        answers = pipe.execute()
    app_pause = float(answers[0] or 0)
    budgets = {}
    for index, tenant_id in enumerate(tenant_ids):
        minute_used, day_used, pause, learned = answers[1 + 4 * index : 5 + 4 * index]
        paused_until = max(app_pause, float(pause or 0))
        budgets[tenant_id] = budget_left(
            limits, int(minute_used or 0), int(day_used or 0), paused_until, now, int(learned) if learned else None
        )
    return budgets


def jobs_by_tenant(redis: Redis) -> tuple[dict[str, Counter], dict[str, dict[str, int]]]:
    """Jobs per tenant (by the job's first argument) and per queue, in each state.

    Reads the registries without RQ's cleanup, so looking never moves a job."""
    ids_by_state: list[tuple[str, str, list[str]]] = []
    per_queue: dict[str, dict[str, int]] = {}
    for name in queue.PRIORITY_ORDER:
        q = Queue(name, connection=redis)
        found = {
            "queued": q.get_job_ids(),
            "scheduled": ScheduledJobRegistry(name, connection=redis).get_job_ids(cleanup=False),
            "running": StartedJobRegistry(name, connection=redis).get_job_ids(cleanup=False),
            "failed": FailedJobRegistry(name, connection=redis).get_job_ids(cleanup=False),
        }
        per_queue[name] = {state: len(ids) for state, ids in found.items()}
        ids_by_state += [(name, state, ids) for state, ids in found.items()]
    per_tenant: dict[str, Counter] = {}
    for _name, state, ids in ids_by_state:
        for tenant_id in tenants_of(redis, ids):
            if tenant_id is not None:
                per_tenant.setdefault(tenant_id, Counter())[state] += 1
    return per_tenant, per_queue


def queue_counts(redis: Redis) -> dict[str, dict[str, int]]:
    """Jobs per queue and state, counted without fetching a job (cheap enough for every scrape)."""
    counts = {}
    for name in queue.PRIORITY_ORDER:
        counts[name] = {
            "queued": Queue(name, connection=redis).count,
            "scheduled": ScheduledJobRegistry(name, connection=redis).get_job_count(cleanup=False),
            "running": StartedJobRegistry(name, connection=redis).get_job_count(cleanup=False),
            "failed": FailedJobRegistry(name, connection=redis).get_job_count(cleanup=False),
        }
    return counts


def tenants_of(redis: Redis, job_ids: list[str]) -> list[str | None]:
    """The tenant each job is for (its first argument), None for a job that is gone."""
    found: list[str | None] = []
    for start in range(0, len(job_ids), _FETCH_CHUNK):
        for job in Job.fetch_many(job_ids[start : start + _FETCH_CHUNK], connection=redis):
            found.append(str(job.args[0]) if job is not None and job.args else None)
    return found


def egress(redis: Redis, now: datetime) -> dict[str, dict[str, int]]:
    """Per metered tenant: Xero calls and bytes today (UTC) and over the last 30 UTC days."""
    days = metrics.egress_days(redis, now, metrics.EGRESS_WINDOW_DAYS)
    found: dict[str, dict[str, int]] = {}
    for back, day in enumerate(days):
        for tenant_id, e in day.items():
            entry = found.setdefault(
                tenant_id, {"calls_today": 0, "bytes_today": 0, "calls_30d": 0, "bytes_30d": 0})
            if back == 0:
                entry["calls_today"], entry["bytes_today"] = e.calls, e.bytes
            entry["calls_30d"] += e.calls
            entry["bytes_30d"] += e.bytes
    return dict(sorted(found.items()))


def add_redis_facts(report: Report, redis: Redis, limits: XeroLimits, jobs: bool = True) -> None:
    """Fill in jobs, budgets, egress and webhook warnings; on a Redis error, say so and leave them None."""
    ids = [t.tenant_id for t in report.tenants]
    try:
        budgets = rate_budgets(redis, ids, limits, report.now.timestamp())
        records = metrics.reconcile_records(redis, ids)
        metered_all = egress(redis, report.now)
        per_tenant, per_queue = jobs_by_tenant(redis) if jobs else ({}, None)
    except RedisError as error:
        report.redis_error = f"unreachable: {type(error).__name__}"
        report.warnings.append("Redis is unreachable: jobs, rate budgets and webhook health are unknown")
        return
    report.queues = per_queue
    report.egress = metered_all
    for tenant in report.tenants:
        tenant.rate_budget = budgets.get(tenant.tenant_id)
        metered = metered_all.get(tenant.tenant_id, {})
        tenant.calls_today = metered.get("calls_today", 0)
        tenant.bytes_today = metered.get("bytes_today", 0)
        tenant.calls_30d = metered.get("calls_30d", 0)
        tenant.bytes_30d = metered.get("bytes_30d", 0)
        if jobs:
            counted = per_tenant.get(tenant.tenant_id, Counter())
            tenant.jobs = {state: counted.get(state, 0) for state in JOB_STATES}
        if tenant.connection == "active":
            tenant.webhook_warning = webhook_suspicion(report.now, tenant.last_webhook_at,
                                                       records.get(tenant.tenant_id))


def collect(
    session: Session,
    redis: Redis | None,
    now: datetime,
    limits: XeroLimits,
    *,
    tenant_id: str | None = None,
    include_disconnected: bool = False,
    jobs: bool = True,
) -> Report:
    report = Report(now=now, tenants=tenants(session, now, tenant_id, include_disconnected))
    if redis is None:
        report.redis_error = "not configured (REDIS_URL is unset)"
        report.warnings.append("REDIS_URL is unset: jobs, rate budgets and webhook health are unknown")
    else:
        add_redis_facts(report, redis, limits, jobs)
    return report


def webhook_warning(session: Session, redis: Redis, tenant_id: str, now: datetime) -> str | None:
    """The warning for one tenant (the admin page's), or None; raises RedisError."""
    state = session.get(SyncState, tenant_id)
    record = metrics.reconcile_records(redis, [tenant_id]).get(tenant_id)
    return webhook_suspicion(now, state.last_webhook_at if state else None, record)


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value
