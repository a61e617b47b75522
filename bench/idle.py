"""Idle cost: Xero calls and bytes an idle, connected tenant costs in a simulated day.

The production defaults (RECONCILE_SECONDS 3600, the learned day limit, gzip asked for) run
against the emulator on an injected clock: every simulated minute the ticker's own rule
(`Ticker.due`) picks the tenants a sweep is due for, and each due tenant is reconciled as
its job would be (`jobs.due_kinds`, then `sync.reconcile`), while the emulator's clock moves
a minute too. Nothing changes in the organisation all day. The emulator counts the calls
and the bytes it sent.

Baseline, in the same run and on the same emulator: the reconciliation of the first release,
every 300 s a sweep of contacts, invoices and payments from each kind's newest change less
5 minutes (so every sweep fetches the newest records again).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bench import stack
from bench.postgres import Postgres
from bench.report import Goal, Section
from emulator.testing import run_emulator
from infra.redis_server import start_embedded
from infra.settings import Settings, WorkerOptions
from store import mirror
from store.db import transaction
from store.migrate import upgrade
from store.secrets import new_key
from worker import governor, jobs, sync
from worker.bootstrap import WorkerRuntime
from worker.ticker import Ticker
from xero import translate

DAY_MINUTES = 24 * 60
GOAL_CALLS = 48
GOAL_BYTES = 100_000


def _day(rt: WorkerRuntime, state, tenant_id: str, way: str, start: datetime) -> tuple[int, int]:
    """(calls, wire bytes) of one simulated idle day reconciled `way` ("ours" or "first release")."""
    state.reset_calls()
    ticker = Ticker(rt.sessions, rt.redis, WorkerOptions())
    base = timedelta(seconds=WorkerOptions().reconcile_seconds)
    clock = {"now": start}
    for gov in (rt.governor, ticker.governor):  # the governor's windows run on the simulated clock
        gov.clock = lambda: clock["now"].timestamp()
    for minute in range(DAY_MINUTES):
        now = clock["now"] = start + timedelta(minutes=minute)
        state.advance_clock(60)
        if way == "ours":
            for due_tenant in ticker.due(now, base):
                kinds = jobs.due_kinds(rt.sessions, rt.governor, due_tenant, now, base)
                sync.reconcile(due_tenant, api=rt.api(due_tenant, governor.RECONCILE), sessions=rt.sessions,
                               now=now, kinds=tuple(kinds))
        elif minute % 5 == 0:
            _first_release_sweep(rt, tenant_id)
    return state.call_count(tenant_id), state.bytes_sent(tenant_id)


def _first_release_sweep(rt: WorkerRuntime, tenant_id: str) -> None:
    """The first release's reconcile: from each kind's newest change less 5 minutes, every kind."""
    api = rt.api(tenant_id, governor.RECONCILE)
    with rt.sessions() as session:
        state = mirror.sync_state(session, tenant_id)
        marks = {kind: getattr(state, sync.HWM[kind]) for kind in sync.PHASES}
    for kind in sync.PHASES:
        page = getattr(api, kind)(modified_since=marks[kind] - sync.OVERLAP, page=1, page_size=sync.PAGE_SIZE,
                                  order=sync.SWEEP_ORDER)
        newest = max((translate.ms_datetime(r.get("UpdatedDateUTC")) for r in page.items), default=None)
        if newest is not None and newest > marks[kind]:
            with transaction(rt.sessions) as session:
                setattr(mirror.sync_state(session, tenant_id, lock=True), sync.HWM[kind], newest)


def run(pg: Postgres, quick: bool = False) -> Section:
    del pg  # SQLite is enough: the cost is Xero's, not the database's
    rows, goals = [], []
    redis = start_embedded()
    try:
        # access tokens that outlive the simulated day: the day's token refreshes are identity
        # calls, not Accounting API calls, and are not what this measures
        with run_emulator(seed=5, tenants=1, contacts=200, invoices=2000, access_token_ttl=3 * 86400) as emu:
            tenant_id = emu.state.tenant_ids[0]
            figures = {}
            for way in ("first release", "ours"):
                database = stack.sqlite_database(f"idle-{way.replace(' ', '-')}")
                upgrade(database)
                env = {**emu.env(), "DATABASE_URL": database, "REDIS_URL": redis.url, "TOKEN_KEYS": new_key()}
                settings = Settings.from_env(env)
                with WorkerRuntime(settings, WorkerOptions()) as rt:
                    rt.redis.flushdb()
                    stack.connect_tenants(settings, rt.sessions, [tenant_id], organisation=True)
                    sync.backfill(tenant_id, api=rt.api(tenant_id, governor.BACKFILL), sessions=rt.sessions,
                                  now=datetime.now(timezone.utc))
                    # the day starts when the backfill's marks are an hour old, as any later day would
                    start = datetime.now(timezone.utc) + timedelta(hours=1)
                    emu.state.advance_clock(3600)
                    figures[way] = _day(rt, emu.state, tenant_id, way, start)
                    emu.state.advance_clock(DAY_MINUTES * 60)
    finally:
        redis.stop()
    ours_calls, ours_bytes = figures["ours"]
    base_calls, base_bytes = figures["first release"]
    rows = [
        ["first release (every 300 s, 5-minute overlap)", f"{base_calls:,}", f"{base_bytes:,}", "1.00"],
        ["ours (worker.cadence, settled marks, gzip)", f"{ours_calls:,}", f"{ours_bytes:,}",
         f"{ours_calls / max(1, base_calls):.3f} calls, {ours_bytes / max(1, base_bytes):.3f} bytes"],
    ]
    goals = [
        Goal(f"≤ {GOAL_CALLS} calls a day", f"{ours_calls}", ours_calls <= GOAL_CALLS),
        Goal(f"≤ {GOAL_BYTES // 1000} KB a day", f"{ours_bytes / 1000:.1f} KB", ours_bytes <= GOAL_BYTES),
    ]
    return Section(
        "Idle cost",
        summary=("One connected tenant (2,000 invoices, 200 contacts) with no change all day: a simulated day "
                 "of the ticker and reconciliation on an injected clock against the emulator, calls and bytes "
                 "on the wire counted by the emulator."),
        header=["way", "Accounting API calls a day", "bytes a day (wire)", "ours / first release"],
        rows=rows,
        goals=goals,
        notes=[
            "Ours: invoices every hour, payments every 2 hours, contacts every 4 hours, the Organisation "
            "once a day; each sweep asks for what changed after a settled, exclusive mark, so it brings an "
            "empty page.",
            "Access tokens are made to outlive the day (emulator access_token_ttl): token refreshes are "
            "identity calls, not counted by Xero's Accounting API limits.",
            "The baseline runs through today's client, which asks for gzip: the first release did not, so its "
            "bytes are understated here.",
        ],
    )
