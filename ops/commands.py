"""The operators' tools behind `flask --app wsgi ops ...`: status, replay, resync, failed jobs.

Logic only: wsgi.py parses options and prints. Everything works on the real database, the
real Redis and RQ's own registries, so what an operator sees and does here is what the
workers see. Long operations take a `progress` wrapper (click.progressbar in the CLI).
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from redis import Redis, RedisError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session, sessionmaker

from infra import metrics, queue
from infra.errors import OperationError
from infra.settings import XeroLimits
from ops import status
from store import connections, inbox, mirror
from store.db import transaction
from store.models import InboxEvent, SyncState

REPLAYABLE = ("pending", "enqueued", "failed", "done", "ignored")
CHUNK = 500

Progress = Callable[..., AbstractContextManager[Iterable[Any]]]


def no_progress(items: Iterable[Any], **_options: Any) -> AbstractContextManager[Iterable[Any]]:
    return nullcontext(items)


class OpsError(OperationError):
    """An operation refused, with what to do instead."""


# --- status ------------------------------------------------------------------------------------


def tenant_status(
    sessions: sessionmaker[Session], redis: Redis | None, now: datetime, *, limits: XeroLimits,
    tenant_id: str | None = None, include_disconnected: bool = False,
) -> status.Report:
    with sessions() as session:
        return status.collect(session, redis, now, limits, tenant_id=tenant_id,
                              include_disconnected=include_disconnected)


def render_status(report: status.Report) -> str:
    """A table, one line per tenant, then one line per warning."""
    headers = ["WORKSPACE", "TENANT", "ORGANISATION", "TIMEZONE", "CONNECTION", "LAST WEBHOOK",
               "LAST SUCCESS", "LAG", "WAITING", "JOBS Q/R/F", "BUDGET MIN/DAY", "CALLS TODAY", "MB TODAY",
               "BACKFILL"]
    rows = []
    for t in report.tenants:
        jobs = "?"
        if t.jobs is not None:
            jobs = f"{t.jobs['queued'] + t.jobs['scheduled']}/{t.jobs['running']}/{t.jobs['failed']}"
        budget = "?"
        if t.rate_budget is not None:
            budget = f"{t.rate_budget['minute_left']}/{t.rate_budget['day_left']}"
        if t.rate_budget and t.rate_budget["paused_seconds"]:
            budget += f" paused {t.rate_budget['paused_seconds']:.0f}s"
        rows.append([
            f"{t.workspace_id} {t.workspace_name}"[:24],
            t.tenant_id,
            (t.tenant_name or "")[:24],
            _zone(t),
            t.connection + (" !" if t.webhook_suspect else ""),
            _ago(report.now, t.last_webhook_at),
            _ago(report.now, t.last_success_at),
            _seconds(t.sync_lag_seconds),
            f"{t.changed_waiting}" + (f" ({t.inbox['failed']} failed)" if t.inbox["failed"] else ""),
            jobs,
            budget,
            "?" if t.calls_today is None else str(t.calls_today),
            "?" if t.bytes_today is None else _mb(t.bytes_today),
            _backfill(t.backfill),
        ])
    lines = _table(headers, rows) if rows else ["no Xero connections"]
    lines.append("")
    lines.append(f"LAG: age of the oldest outstanding inbox event; WAITING: changed ids not yet synced; "
                 f"CALLS/MB TODAY: Xero answers and MB pulled this UTC day (`--egress`: 30 days). "
                 f"Redis: {'ok' if report.redis_error is None else report.redis_error}")
    for t in report.tenants:
        if t.webhook_warning:
            lines.append(f"WARNING {t.tenant_id} ({t.tenant_name or 'unnamed'}): {t.webhook_warning}")
        if t.timezone_warning:
            lines.append(f"WARNING {t.tenant_id} ({t.tenant_name or 'unnamed'}): {t.timezone_warning}")
        if t.connection == connections.NEEDS_REAUTH:
            lines.append(f"WARNING {t.tenant_id}: Xero refused the connection's grant; syncing has stopped "
                         "until the workspace admin reconnects it")
        if t.jobs and t.jobs["failed"]:
            lines.append(f"WARNING {t.tenant_id}: {t.jobs['failed']} failed job(s): "
                         f"flask --app wsgi ops failed --tenant {t.tenant_id}")
        if t.last_error:
            lines.append(f"last error {t.tenant_id}: {t.last_error}")
    lines += [f"WARNING {w}" for w in report.warnings]
    return "\n".join(lines)


def render_egress(report: status.Report) -> str:
    """Xero egress per tenant (what Xero bills by): calls and MB today (UTC) and over 30 days,
    every metered tenant included (`-`: token and /connections calls made for no tenant)."""
    if report.egress is None:
        return f"Xero egress unknown: Redis {report.redis_error}"
    names = {t.tenant_id: t for t in report.tenants}
    shown = set(names) | set(report.egress)
    rows, sums = [], [0, 0, 0, 0]
    for tenant_id in sorted(shown, key=lambda i: (i == "-", i)):
        e = report.egress.get(tenant_id, {})
        figures = [e.get(k, 0) for k in ("calls_today", "bytes_today", "calls_30d", "bytes_30d")]
        sums = [a + b for a, b in zip(sums, figures)]
        t = names.get(tenant_id)
        name = "(no tenant: token, /connections)" if tenant_id == "-" else (
            (t.tenant_name or "") if t else "(not listed: disconnected or filtered out)")
        rows.append([tenant_id, name[:40], str(figures[0]), _mb(figures[1]), str(figures[2]), _mb(figures[3])])
    rows.append(["TOTAL", "", str(sums[0]), _mb(sums[1]), str(sums[2]), _mb(sums[3])])
    lines = _table(["TENANT", "ORGANISATION", "CALLS TODAY", "MB TODAY", "CALLS 30D", "MB 30D"], rows)
    lines.append("")
    lines.append(f"Xero answers and bytes pulled on the wire (compressed size when gzipped), per UTC day "
                 f"(today {report.now.astimezone(timezone.utc):%Y-%m-%d}); 30D: today and the 29 days before.")
    return "\n".join(lines)


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1_000_000:.2f}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in [headers, *rows]]


def _ago(now: datetime, moment: datetime | None) -> str:
    return "never" if moment is None else f"{_seconds((now - moment).total_seconds())} ago"


def _seconds(value: float) -> str:
    if value < 100:
        return f"{value:.1f}s"
    if value < 6000:
        return f"{value / 60:.0f}m"
    if value < 172800:
        return f"{value / 3600:.0f}h"
    return f"{value / 86400:.0f}d"


def _zone(t: status.TenantStatus) -> str:
    """The zone the organisation's today is read in; UTC with the reason when it is a fallback."""
    if t.timezone_mapped:
        return t.timezone
    return f"{t.timezone} (unknown)" if t.timezone_xero else f"{t.timezone} (not read)"


def _backfill(backfill: dict[str, Any]) -> str:
    if backfill["status"] == "running":
        return f"running {backfill['phase']} p{backfill['page']} ({backfill['fetched']} fetched)"
    return f"{backfill['status']} ({backfill['fetched']} fetched)"


# --- replay ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which inbox events to replay; every given criterion must hold."""

    ids: tuple[int, ...] = ()
    tenant_id: str | None = None
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before
    states: tuple[str, ...] = ()  # default: every state but `ignored`

    def is_empty(self) -> bool:
        return not (self.ids or self.tenant_id or self.since or self.until or self.states)


@dataclass
class Replayed:
    dry_run: bool
    by_tenant: dict[str, Counter] = field(default_factory=dict)  # tenant -> state before -> events
    woken: list[str] = field(default_factory=list)  # tenants given a new sync job
    queue_error: str | None = None

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.by_tenant.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "events": self.total,
            "tenants": {t: dict(c) for t, c in sorted(self.by_tenant.items())},
            "woken": self.woken,
            "queue_error": self.queue_error,
        }


def select_events(session: Session, selection: Selection) -> list[tuple[int, str, str]]:
    """(id, tenant, state) of the events the selection names, oldest first."""
    if selection.is_empty():
        raise OpsError("name the events to replay: --id, --tenant, --since/--until or --state")
    states = selection.states or tuple(s for s in REPLAYABLE if s != "ignored")
    wanted: list[ColumnElement[bool]] = [InboxEvent.state.in_(states)]
    if selection.tenant_id:
        wanted.append(InboxEvent.tenant_id == selection.tenant_id)
    if selection.since:
        wanted.append(InboxEvent.received_at >= selection.since)
    if selection.until:
        wanted.append(InboxEvent.received_at < selection.until)
    found: list[tuple[int, str, str]] = []
    id_chunks: list[list[int] | None] = [
        list(selection.ids[i : i + CHUNK]) for i in range(0, len(selection.ids), CHUNK)
    ] or [None]
    for chunk in id_chunks:
        stmt = select(InboxEvent.id, InboxEvent.tenant_id, InboxEvent.state).where(*wanted)
        if chunk is not None:
            stmt = stmt.where(InboxEvent.id.in_(chunk))
        found += [(row[0], row[1], row[2]) for row in session.execute(stmt)]
    return sorted(found)


def replay(
    sessions: sessionmaker[Session], redis: Redis | None, selection: Selection, now: datetime, *,
    dry_run: bool = False, progress: Progress = no_progress,
) -> Replayed:
    """Set the selected events back to `pending` and wake their tenants' syncs.

    The sync fetches each object's current state from Xero, so replaying is idempotent: a
    second run fetches again and changes nothing more. A dry run only counts.
    """
    with sessions() as session:
        events = select_events(session, selection)
    result = Replayed(dry_run=dry_run)
    for _id, tenant_id, state in events:
        result.by_tenant.setdefault(tenant_id, Counter())[state] += 1
    if dry_run or not events:
        return result
    ids = [event_id for event_id, _tenant, _state in events]
    chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
    with progress(chunks, label="resetting events") as bar:
        for chunk in bar:
            with transaction(sessions) as session:
                session.execute(
                    update(InboxEvent).where(InboxEvent.id.in_(chunk))
                    .values(state="pending", enqueued_at=None, processed_at=None, error=None)
                )
    tenants = sorted(result.by_tenant)
    try:
        if redis is None:
            raise RedisError("REDIS_URL is not set")
        result.woken = queue.wake(redis, tenants)
    except RedisError as error:
        result.queue_error = f"{type(error).__name__}: {error}"[:200]
        return result  # the events are pending: the workers' relay queues them within seconds
    with transaction(sessions) as session:
        inbox.mark_enqueued(session, ids, now)
    return result


def render_replay(result: Replayed) -> str:
    if not result.total:
        return "no inbox events match: nothing to replay"
    verb = "would replay" if result.dry_run else "replayed"
    lines = [f"{verb} {result.total} events for {len(result.by_tenant)} tenants"
             + (" (dry run: nothing written)" if result.dry_run else "")]
    rows = [[t, str(sum(c.values())), ", ".join(f"{s} {n}" for s, n in sorted(c.items()))]
            for t, c in sorted(result.by_tenant.items())]
    lines += ["  " + line for line in _table(["TENANT", "EVENTS", "STATE BEFORE"], rows)]
    if result.dry_run:
        lines.append("each would be set back to pending and its tenant's sync woken; the sync fetches "
                     "current state from Xero, so replaying twice changes nothing more")
    elif result.queue_error:
        lines.append(f"the queue is unavailable ({result.queue_error}): the events are pending and the "
                     "workers' relay will queue them when Redis is back")
    else:
        woke = len(result.woken)
        lines.append(f"set back to pending; {woke} sync job(s) queued, "
                     f"{len(result.by_tenant) - woke} tenant(s) already had one queued")
    return "\n".join(lines)


# --- resync ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    tenant_id: str
    kind: str  # backfill | reconcile
    job_id: str | None
    requested_at: datetime
    newly_queued: bool


def _live(sessions: sessionmaker[Session], tenant_id: str) -> None:
    with sessions() as session:
        record = connections.find(session, tenant_id)
    if record is None:
        raise OpsError(f"no live Xero connection for tenant {tenant_id} (see `ops status --all`)")
    if record.status != connections.ACTIVE:
        raise OpsError(f"the connection of tenant {tenant_id} is {record.status}: "
                       "it must be re-authorised first")


def resync_from_scratch(
    sessions: sessionmaker[Session], redis: Redis, tenant_id: str, now: datetime
) -> Started:
    """Restart the tenant's backfill from the first page, as a job on the backfill queue."""
    _live(sessions, tenant_id)
    if queue.is_running(redis, queue.BACKFILL, tenant_id):
        raise OpsError(f"a backfill of {tenant_id} is running now: follow it with `ops status --tenant "
                       f"{tenant_id}` and resync when it is done")
    with transaction(sessions) as session:
        mirror.request_backfill(session, tenant_id)
    queued = queue.enqueue(redis, queue.BACKFILL, tenant_id)
    return Started(tenant_id, "backfill", _guarded_job(redis, queue.BACKFILL, tenant_id), now, queued)


LONG_AGO = datetime(2000, 1, 1, tzinfo=timezone.utc)


def resync_since(
    sessions: sessionmaker[Session], redis: Redis, tenant_id: str, since: datetime, now: datetime
) -> Started:
    """Sweep everything Xero changed since `since` (If-Modified-Since), as a reconcile job.

    The high-water marks are moved back to `since` (never forward), so the next reconciliation,
    queued here, sweeps from there; the marks then advance as it stores what it finds.
    """
    _live(sessions, tenant_id)
    if queue.is_running(redis, queue.RECONCILE, tenant_id):
        raise OpsError(f"a reconciliation of {tenant_id} is running now; try again in a moment")
    with transaction(sessions) as session:
        state = mirror.sync_state(session, tenant_id, lock=True)
        if state.backfill_status != "done":
            raise OpsError(f"the backfill of {tenant_id} is {state.backfill_status}: it loads everything "
                           f"anyway; use `ops resync {tenant_id}` to restart it")
        for mark in ("contacts_hwm", "invoices_hwm", "payments_hwm"):
            current = getattr(state, mark)
            setattr(state, mark, since if current is None else min(current, since))
        for swept in ("contacts_swept_at", "invoices_swept_at", "payments_swept_at"):
            setattr(state, swept, LONG_AGO)  # every kind is due now, whatever the cadence says
    queued = queue.enqueue(redis, queue.RECONCILE, tenant_id)
    return Started(tenant_id, "reconcile", _guarded_job(redis, queue.RECONCILE, tenant_id), now, queued)


def _guarded_job(redis: Redis, kind: str, tenant_id: str) -> str | None:
    """The id of the tenant's queued job of this kind (the guard key holds it)."""
    raw = redis.get(queue.guard_key(kind, tenant_id))
    return raw.decode() if isinstance(raw, bytes) else raw


@dataclass(frozen=True)
class Step:
    """One look at a running resync: how far (0..total) and what it is doing."""

    done: int
    total: int
    text: str
    finished: bool = False


def follow(
    sessions: sessionmaker[Session], redis: Redis, started: Started, *, poll: float = 0.5,
    timeout: float = 3600.0, sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Step]:
    """Yield progress until the resync finishes; OpsError if its job fails or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        step = _step(sessions, redis, started)
        yield step
        if step.finished:
            return
        if time.monotonic() > deadline:
            raise OpsError(f"still running after {timeout:.0f}s: {step.text}")
        sleep(poll)


def _step(sessions: sessionmaker[Session], redis: Redis, started: Started) -> Step:
    failure = _failed_since(redis, started)
    if failure:
        raise OpsError(f"the {started.kind} job failed: {failure} (see `ops failed`)")
    if started.kind == "backfill":
        with sessions() as session:
            state = session.get(SyncState, started.tenant_id)
        if state is None:
            return Step(0, 3, "waiting for a worker")
        if state.backfill_status == "done":
            return Step(3, 3, f"done: {state.backfill_fetched} fetched", finished=True)
        phases = ("contacts", "invoices", "payments")
        index = phases.index(state.backfill_phase) if state.backfill_phase in phases else 0
        if state.backfill_status == "pending":
            return Step(0, 3, "queued: waiting for a worker")
        where = f"{state.backfill_phase} page {state.backfill_page}"
        return Step(index, 3, f"{where}, {state.backfill_fetched} fetched")
    record = metrics.reconcile_records(redis, [started.tenant_id]).get(started.tenant_id)
    if record is not None and record.at is not None and record.at >= started.requested_at:
        return Step(1, 1, f"done: {record.last_unannounced} changes no webhook had announced", finished=True)
    running = queue.is_running(redis, queue.RECONCILE, started.tenant_id)
    return Step(0, 1, "sweeping" if running else "queued: waiting for a worker")


def _failed_since(redis: Redis, started: Started) -> str | None:
    """The error of a job of this tenant and kind that failed after the resync was asked for."""
    for job in failed_jobs(redis, started.tenant_id):
        ours = job.function == queue.JOB[started.kind]
        if ours and job.failed_at and job.failed_at >= started.requested_at:
            return job.error
    return None


# --- failed jobs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedJob:
    id: str
    queue: str
    function: str | None
    tenant_id: str | None
    failed_at: datetime | None
    error: str

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "failed_at": self.failed_at.isoformat() if self.failed_at else None}


def failed_jobs(redis: Redis, tenant_id: str | None = None) -> list[FailedJob]:
    """Every job in RQ's failed-job registries, oldest failure first."""
    found = []
    for name in queue.PRIORITY_ORDER:
        ids = FailedJobRegistry(name, connection=redis).get_job_ids(cleanup=False)
        for start in range(0, len(ids), CHUNK):
            for job in Job.fetch_many(ids[start : start + CHUNK], connection=redis):
                if job is None:
                    continue
                tenant = str(job.args[0]) if job.args else None
                if tenant_id is None or tenant == tenant_id:
                    failed_at = _utc(job.ended_at)
                    found.append(FailedJob(job.id, name, job.func_name, tenant, failed_at, _error(job)))
    return sorted(found, key=lambda j: (j.failed_at or datetime.min.replace(tzinfo=timezone.utc), j.id))


def _error(job: Job) -> str:
    result = job.latest_result()
    text = (result.exc_string if result is not None else None) or ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else "(no error recorded)"


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _failed_job(redis: Redis, job_id: str) -> tuple[Job, FailedJobRegistry]:
    try:
        job = Job.fetch(job_id, connection=redis)
    except (NoSuchJobError, ValueError):  # ValueError: not even a job id (RQ allows letters, digits, _ and -)
        raise OpsError(f"no job {job_id} (see `ops failed`)") from None
    registry = FailedJobRegistry(job.origin, connection=redis)
    if job_id not in registry.get_job_ids(cleanup=False):
        raise OpsError(f"job {job_id} is not in the failed-job registry (it is {job.get_status().value})")
    return job, registry


def requeue(redis: Redis, job_ids: list[str], progress: Progress = no_progress) -> list[str]:
    """Put failed jobs back on their queues, as they were; return their ids."""
    done = []
    with progress(job_ids, label="requeueing") as bar:
        for job_id in bar:
            job, registry = _failed_job(redis, job_id)
            try:
                registry.requeue(job)
            except InvalidJobOperation:
                raise OpsError(f"job {job_id} left the failed-job registry meanwhile") from None
            metrics.job(redis, _kind(job.func_name), "requeued")
            done.append(job_id)
    return done


def drop(redis: Redis, job_ids: list[str]) -> list[str]:
    """Delete failed jobs for good (their inbox events stay; the relay or a replay covers them)."""
    for job_id in job_ids:
        job, registry = _failed_job(redis, job_id)
        registry.remove(job, delete_job=True)
    return list(job_ids)


def _kind(function: str | None) -> str:
    return next((kind for kind, name in queue.JOB.items() if name == function), "other")


def render_failed(jobs: list[FailedJob]) -> str:
    if not jobs:
        return "no failed jobs"
    rows = [[j.id, j.queue, (j.function or "").rsplit(".", 1)[-1], j.tenant_id or "",
             j.failed_at.strftime("%Y-%m-%d %H:%M:%SZ") if j.failed_at else "", j.error] for j in jobs]
    lines = _table(["JOB", "QUEUE", "FUNCTION", "TENANT", "FAILED AT", "ERROR"], rows)
    lines.append(f"\n{len(jobs)} failed job(s): `ops failed --requeue ID` (or --requeue-all) puts them back, "
                 "`--drop ID` deletes one")
    return "\n".join(lines)
