"""Backfill: invoices a second from the emulator into the mirror, pageSize 1000, no latency.

The emulator runs as its own process (`python -m emulator`, limits lifted) so that serving
and syncing do not share one interpreter's lock. Ours: `worker.sync.backfill`, the code
the backfill job runs (contacts, then invoices, then payments, a page at a time, progress
committed with each page), timed per phase. Baseline: the emulator's own serving rate,
the same pages (`order=InvoiceID ASC`, pageSize 1000) fetched over HTTP and thrown away;
and the same through our xero-python adapter (fetched and parsed, not stored).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone

from bench import stack
from bench.postgres import Postgres
from bench.report import Goal, Section
from bench.stats import median
from emulator.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_WEBHOOK_KEY
from infra.redis_server import free_port, start_embedded
from infra.settings import Settings
from store.models import SyncState
from worker import governor, sync
from worker.bootstrap import WorkerRuntime
from xero.client import XeroClient
from xero.tokens import normalise

UNLIMITED = {"XERO_MINUTE_LIMIT": "1000000", "XERO_DAY_LIMIT": "10000000", "XERO_CONCURRENT_LIMIT": "100"}


class EmulatorProcess:
    def __init__(self, invoices: int, contacts: int, seed: int = 9):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {"XERO_CLIENT_ID": DEFAULT_CLIENT_ID, "XERO_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
                    "XERO_WEBHOOK_KEY": DEFAULT_WEBHOOK_KEY}
        log = open(stack.logs_dir() / "backfill-emulator.log", "ab")  # noqa: SIM115 (the emulator writes to it until stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port", str(self.port), "--seed", str(seed), "--tenants", "1",
             "--contacts", str(contacts), "--invoices", str(invoices), "--quiet", "--limit-minute", "1000000",
             "--limit-day", "10000000", "--limit-concurrent", "100", "--limit-app-minute", "10000000"],
            cwd=stack.ROOT, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                self.tenants = self.control("GET", "tenants")
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.2)

    def control(self, method: str, path: str):
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def xero_env(self) -> dict[str, str]:
        return {**self.env, "XERO_API_URL": f"{self.url}/api.xro/2.0", "XERO_IDENTITY_URL": self.url,
                "XERO_LOGIN_URL": self.url, "XERO_CONNECTIONS_URL": f"{self.url}/connections"}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


def serve_rate(em: EmulatorProcess, tenant_id: str, token: str, expected: int) -> float:
    """Invoices a second the emulator serves, pages fetched raw and discarded."""
    started, got, page = time.perf_counter(), 0, 1
    while True:
        request = urllib.request.Request(
            f"{em.url}/api.xro/2.0/Invoices?page={page}&pageSize=1000&order=InvoiceID%20ASC",
            headers={"Authorization": f"Bearer {token}", "xero-tenant-id": tenant_id, "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            n = len(json.loads(response.read())["Invoices"])
        got += n
        if n < 1000:
            break
        page += 1
    assert got == expected, (got, expected)
    return got / (time.perf_counter() - started)


def adapter_rate(settings: Settings, tenant_id: str, token: str) -> float:
    """Invoices a second through our adapter (xero-python, JSON parsed with Decimal), not stored."""
    client = XeroClient(settings)
    started, got, page = time.perf_counter(), 0, 1
    while True:
        n = len(client.invoices(tenant_id, token, page=page, page_size=1000, order="InvoiceID ASC").items)
        got += n
        if n < 1000:
            break
        page += 1
    return got / (time.perf_counter() - started)


def our_backfill(em: EmulatorProcess, tenant_id: str, database_url: str, redis_url: str) -> dict:
    env = {**em.xero_env(), "DATABASE_URL": database_url, "REDIS_URL": redis_url, "TOKEN_KEYS": stack.token_keys(),
           **UNLIMITED}
    settings = Settings.from_env(env)
    sessions = stack.sessions_for(database_url)
    stack.connect_tenants(settings, sessions, [tenant_id])
    marks: list[tuple[float, str | None, int]] = []

    def heartbeat() -> None:
        with sessions() as s:
            state = s.get(SyncState, tenant_id)
            marks.append((time.perf_counter(), state.backfill_phase, state.backfill_fetched))

    with WorkerRuntime(settings) as rt:
        sync.start_backfill(rt.sessions, tenant_id)
        started = time.perf_counter()
        result = sync.backfill(tenant_id, api=rt.api(tenant_id, governor.BACKFILL), sessions=rt.sessions,
                               now=datetime.now(timezone.utc), heartbeat=heartbeat)
        total = time.perf_counter() - started
    sessions.kw["bind"].dispose()
    assert result.done
    # phase spans from the heartbeats: each mark is the end of a page, labelled with the phase to come
    phases = {"contacts": [started, None], "invoices": [None, None], "payments": [None, None]}
    previous = started
    current = "contacts"
    for at, phase, _ in marks:
        if phase != current and phase is not None:
            phases[current][1] = at
            phases[phase][0] = at
            current = phase
        previous = at
    phases[current][1] = previous
    return {"seconds": total, "fetched": result.fetched,
            "invoice_seconds": phases["invoices"][1] - phases["invoices"][0]}


def run(pg: Postgres, quick: bool = False) -> Section:
    invoices, contacts = (5_000, 250) if quick else (20_000, 1_000)
    redis = start_embedded()
    em = EmulatorProcess(invoices, contacts)
    try:
        tenant = em.tenants[0]
        tenant_id = tenant["tenant_id"]
        settings = Settings.from_env(em.xero_env())
        token = normalise(XeroClient(settings).client_credentials_token(), time.time())["access_token"]
        serving = [serve_rate(em, tenant_id, token, invoices) for _ in range(3)]
        adapter = [adapter_rate(settings, tenant_id, token) for _ in range(3)]
        # the goal's run three times, a new database each, like the baseline: one run is one noisy draw
        sqlite_runs = [our_backfill(em, tenant_id, stack.sqlite_database("backfill"), redis.url)
                       for _ in range(1 if quick else 3)]
        ours = {"SQLite": sorted(sqlite_runs, key=lambda r: r["invoice_seconds"])[len(sqlite_runs) // 2]}
        if pg.url:
            ours["PostgreSQL"] = our_backfill(em, tenant_id, pg.fresh(), redis.url)
    finally:
        em.stop()
        redis.stop()
    base = median(serving)
    section = Section(
        "Backfill",
        summary=(f"{invoices:,} invoices, {contacts:,} contacts and {tenant['payments']:,} payments in one emulated "
                 "organisation (its own process, no latency, limits lifted), pageSize 1000."),
        header=["what", "invoices/s", "ratio to the emulator's serving rate", "whole backfill"],
        rows=[
            ["baseline: the emulator serving the pages (raw HTTP, discarded), median of 3",
             f"{base:,.0f} ({', '.join(f'{r:,.0f}' for r in serving)})", "1.00", ""],
            ["our adapter: fetched and parsed (Decimal), not stored, median of 3",
             f"{median(adapter):,.0f}", f"{median(adapter) / base:.2f}", ""],
        ],
    )
    for name, r in ours.items():
        rate = invoices / r["invoice_seconds"]
        runs = ""
        if name == "SQLite" and len(sqlite_runs) > 1:
            each = ", ".join(f"{invoices / x['invoice_seconds']:,.0f}" for x in sqlite_runs)
            runs = f"; median of {len(sqlite_runs)}: {each}"
        section.rows.append([f"ours into {name} (invoices phase{runs})", f"{rate:,.0f}", f"{rate / base:.2f}",
                             f"{r['fetched']:,} objects in {r['seconds']:.1f} s "
                             f"({r['fetched'] / r['seconds']:,.0f}/s)"])
        if name == "SQLite":
            section.goals.append(Goal("≥ 5,000 invoices/s on SQLite", f"{rate:,.0f}/s", rate >= 5000))
    if not pg.url:
        section.notes.append(f"PostgreSQL skipped: {pg.skip}")
    section.notes.append(
        "The emulator was the first limit: sorting a page serialized the whole organisation to JSON (3,787 "
        "invoices/s at 20,000 in this benchmark's first run); it now sorts on the records' own fields.")
    section.notes.append(
        "Storing an invoice on SQLite takes about 90 µs of our CPU (about 200 µs before: the ORM sent a page as "
        "runs of rows with the same non-None columns, close to one statement a row; it is one Core executemany "
        "now, and the raw column's exact-Decimal JSON is about twice as fast). The next page is fetched in a "
        "background thread while this one is stored (worker.prefetch), so the fetch (the emulator's serving plus "
        "our JSON parse) is the longer of the two.")
    section.notes.append(
        "The fetch's own share: the JSON parse (stdlib, parse_float=Decimal, one pass, no SDK model objects) is "
        "about 9 µs an invoice on a quiet machine (2 µs of it the Decimals), under a fifth of a quiet fetch. "
        "Each call's token read used to queue behind the page being stored (SQLite's BEGIN IMMEDIATE); "
        "the worker now holds the decrypted access token and only checks the "
        "connection's row on a read-only session, which never waits for the writer (the invoices phase went "
        "from 2,862-4,783/s to 5,726-6,415/s on SQLite over three runs each on a loaded machine).")
    return section
