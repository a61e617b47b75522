"""Intake: signed webhook deliveries a second through gunicorn, every event durably in the inbox.

Three servers under the same gunicorn settings, the Procfile's (gthread workers: threads
share a process, so concurrent deliveries share a commit): the bare baseline (checks the
signature, stores nothing), our app on SQLite, our app on PostgreSQL. Each delivery is a different,
correctly signed Xero body with one event for one of ten connected tenants (so each event
is new, stored, and wakes its tenant's sync through Redis; no worker drains the queue).

1. Maximum rate: wrk, closed loop, 16 connections, interleaved across the servers and
   repeated; the median of the repeats.
2. Latency at 80% of each server's own maximum: an open-loop generator, wrk2's method
   (requests fall due on a fixed schedule whether or not earlier ones were answered, and go
   out over the same 16 keep-alive connections as wrk's maximum; latency counts from the
   moment a request fell due, so a stall or a wait for a free connection is not hidden),
   p50 and p99.
3. Stored equals sent: after each run the inbox holds exactly one row per event answered 200.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select

from bench import stack
from bench.postgres import Postgres
from bench.report import Goal, Section
from bench.stats import median, percentile
from store import connections, workspaces
from store.db import transaction
from store.models import InboxEvent
from store.redis_server import start_embedded
from store.secrets import TokenBox
from webhook.signature import sign

KEY = "bench-webhook-key-7cQ2vX9pL4"
TENANTS = [str(uuid.UUID(int=i + 1, version=4)) for i in range(10)]
LUA = Path(__file__).with_name("intake.lua")
CONNECTIONS = 16
KEYS = stack.token_keys()
# the Procfile's web settings (WEB_CONCURRENCY, WEB_THREADS), for the baseline and our app alike:
# gthread workers, whose threads share a process, so concurrent deliveries share a commit
# (webhook/batcher.py). INTAKE_WORKERS / INTAKE_THREADS try others.
WORKERS = int(os.environ.get("INTAKE_WORKERS", "1"))
THREADS = int(os.environ.get("INTAKE_THREADS", "16"))
MAX_RATE = 12_000  # deliveries/s the body files are sized for (every one distinct)


@dataclass
class Server:
    name: str
    gunicorn: stack.Gunicorn
    database_url: str | None  # None: the baseline stores nothing
    max_rates: list[float] = field(default_factory=list)
    wrk_p99: list[float] = field(default_factory=list)
    stored_ok: list[str] = field(default_factory=list)
    paced: dict | None = None


def bodies(count: int, stamp: datetime) -> list[tuple[str, bytes]]:
    out = []
    for i in range(count):
        resource = str(uuid.uuid4())
        body = json.dumps({
            "events": [{
                "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{resource}",
                "resourceId": resource,
                "eventDateUtc": (stamp + timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
                "eventType": "UPDATE",
                "eventCategory": "INVOICE",
                "tenantId": TENANTS[i % len(TENANTS)],
                "tenantType": "ORGANISATION",
            }],
            "firstEventSequence": i + 1,
            "lastEventSequence": i + 1,
            "entropy": uuid.uuid4().hex[:20].upper(),
        }, separators=(",", ":")).encode()
        out.append((sign(body, KEY), body))
    return out


def write_bodies(path: Path, items: list[tuple[str, bytes]]) -> None:
    with open(path, "wb") as f:
        for sig, body in items:
            f.write(sig.encode() + b"\t" + body + b"\n")


def wrk(url: str, path: Path, seconds: float) -> dict:
    argv = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(LUA),
            url, "--", str(path), "2"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON "):])
    raise RuntimeError(f"wrk said nothing usable:\n{done.stdout}\n{done.stderr}")


async def _paced(host: str, port: int, items: list[tuple[str, bytes]], rate: float,
                 connections: int = CONNECTIONS) -> list[tuple[int, float]]:
    """Send items[i] at start + i/rate, wrk2's way: over the same number of keep-alive connections
    as wrk's maximum, opened before the clock starts. A request due while every connection is
    busy waits for one, and its latency counts from when it was due, so a stall is never hidden
    (no coordinated omission)."""
    loop = asyncio.get_running_loop()
    due_now: asyncio.Queue[int | None] = asyncio.Queue()
    results: list[tuple[int, float]] = []

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bool]:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
        return int(head[9:12]), b"connection: close" not in head.lower()

    async def sender(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        while (i := await due_now.get()) is not None:
            sig, body = items[i]
            request = (f"POST /webhooks/xero HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                       f"x-xero-signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
            status = 0
            for _attempt in (1, 2):  # a connection the server closed meanwhile: once more, anew
                try:
                    connection = connection or await asyncio.open_connection(host, port)
                    status, keep = await exchange(*connection, request)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                    keep = False
                if not keep and connection is not None:
                    connection[1].close()
                    connection = None
                if status:
                    break
            results.append((status, loop.time() - (start + i / rate)))
        if connection is not None:
            connection[1].close()

    opened = await asyncio.gather(*(asyncio.open_connection(host, port) for _ in range(connections)))
    start = loop.time() + 0.2
    senders = [asyncio.create_task(sender(c)) for c in opened]
    for i in range(len(items)):
        wait = start + i / rate - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        due_now.put_nowait(i)
    for _ in senders:
        due_now.put_nowait(None)
    await asyncio.gather(*senders)
    return results


def paced(url: str, items: list[tuple[str, bytes]], rate: float) -> list[tuple[int, float]]:
    host, port = url.removeprefix("http://").split(":")
    return asyncio.run(_paced(host, int(port), items, rate))


def inbox_count(sessions) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent)) or 0


def connect(url: str) -> None:
    sessions = stack.sessions_for(url)
    box = TokenBox((KEYS,))
    now = datetime.now(timezone.utc)
    with transaction(sessions) as s:
        for tenant_id in TENANTS:
            ws = workspaces.create_workspace(s, f"intake {tenant_id[-4:]}", now)
            connections.connect(s, box, workspace_id=ws.id, tenant_id=tenant_id, token={"access_token": "x"}, now=now)



def run(pg: Postgres, quick: bool = False) -> Section:
    if shutil.which("wrk") is None:
        return Section("Intake", goals=[Goal("throughput, latency, stored = sent", "not measured", None)],
                       notes=["Skipped: wrk is not installed (Debian: `apt-get install -y wrk`)."])
    seconds = 4 if quick else 10
    repeats = 2 if quick else 3
    redis = start_embedded()
    servers: list[Server] = []
    try:
        env = {"XERO_WEBHOOK_KEY": KEY, "TOKEN_KEYS": KEYS, "REDIS_URL": redis.url,
               "WEB_THREADS": str(THREADS)}
        servers.append(Server("baseline (bare Flask, signature only)",
                              stack.Gunicorn("bench.bare_webhook:create_app()", env, "intake-baseline", WORKERS),
                              None))
        sqlite_url = stack.sqlite_database("intake")
        connect(sqlite_url)
        servers.append(Server("ours, SQLite", stack.Gunicorn("wsgi:create_app()", {**env, "DATABASE_URL": sqlite_url},
                                                              "intake-sqlite", WORKERS), sqlite_url))
        if pg.url:
            pg_url = pg.fresh()
            connect(pg_url)
            servers.append(Server("ours, PostgreSQL", stack.Gunicorn("wsgi:create_app()",
                                                                     {**env, "DATABASE_URL": pg_url}, "intake-pg",
                                                                     WORKERS),
                                  pg_url))
        with stack.temporary_dir("xm-intake-") as tmp:
            stamp = datetime(2026, 1, 1, tzinfo=timezone.utc)
            for rep in range(repeats):
                for server in servers:
                    items = bodies(int(seconds * MAX_RATE), stamp)
                    stamp += timedelta(days=1)
                    path = tmp / "bodies.txt"
                    write_bodies(path, items)
                    sessions = stack.sessions_for(server.database_url) if server.database_url else None
                    before = inbox_count(sessions) if sessions else 0
                    result = wrk(server.gunicorn.url, path, seconds)
                    answered = result["requests"] - result["status_errors"]
                    server.max_rates.append(answered / (result["duration_us"] / 1e6))
                    server.wrk_p99.append(result["p99_us"] / 1e6)
                    if sessions:
                        time.sleep(1.0)
                        stored = inbox_count(sessions) - before
                        # wrk stops with up to CONNECTIONS requests in flight: stored, never counted
                        ok = answered <= stored <= answered + CONNECTIONS and answered <= len(items)
                        server.stored_ok.append(f"{stored}/{answered}{'' if ok else ' MISMATCH'}")
                        sessions.kw["bind"].dispose()
                    time.sleep(1.0)
            for server in servers:
                rate = 0.8 * median(server.max_rates)
                if server.database_url is None and len(servers) > 1:
                    # the baseline's own 80% is beyond what one Python load generator can send on
                    # time: pace it like our SQLite server, for a latency floor at the same load
                    rate = 0.8 * median(servers[1].max_rates)
                items = bodies(int(rate * seconds), stamp)
                stamp += timedelta(days=1)
                sessions = stack.sessions_for(server.database_url) if server.database_url else None
                before = inbox_count(sessions) if sessions else 0
                started = time.monotonic()
                results = paced(server.gunicorn.url, items, rate)
                elapsed = time.monotonic() - started
                latencies = [lat for _, lat in results]
                statuses = {}
                for status, _ in results:
                    statuses[status] = statuses.get(status, 0) + 1
                stored = None
                if sessions:
                    time.sleep(0.5)
                    stored = inbox_count(sessions) - before
                    sessions.kw["bind"].dispose()
                server.paced = {
                    "rate": rate, "sent": len(items), "ok": statuses.get(200, 0), "statuses": statuses,
                    "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "stored": stored,
                    "seconds": elapsed,
                }
                time.sleep(1.0)
    finally:
        for server in servers:
            server.gunicorn.stop()
        redis.stop()
    return _section(servers, pg, seconds, repeats)


def _section(servers: list[Server], pg: Postgres, seconds: float, repeats: int) -> Section:
    base = median(servers[0].max_rates)
    section = Section(
        "Intake",
        summary=(f"Signed webhook deliveries (one event each) through gunicorn as the Procfile runs it: {WORKERS} "
                 f"gthread worker{'s' if WORKERS > 1 else ''} × {THREADS} threads, for the baseline and ours alike. "
                 f"Maximum: wrk, {CONNECTIONS} connections, {seconds:.0f} s, median of {repeats} interleaved runs. "
                 f"Latency: open-loop at 80% of each server's own maximum over the same {CONNECTIONS} "
                 "keep-alive connections (wrk2's method), measured from the moment each request fell due."),
        header=["server", "max deliveries/s (runs)", "ratio to baseline", "p50 at 80%", "p99 at 80%",
                "answered 200 at 80%", "events stored / answered"],
    )
    for s in servers:
        p = s.paced or {}
        stored = "n/a (stores nothing)" if s.database_url is None else (
            f"max runs: {', '.join(s.stored_ok)}; at 80%: {p.get('stored')}/{p.get('ok')}")
        section.rows.append([
            s.name,
            f"{median(s.max_rates):.0f} ({', '.join(f'{r:.0f}' for r in s.max_rates)})",
            f"{median(s.max_rates) / base:.2f}",
            f"{p.get('p50', 0) * 1000:.1f} ms", f"{p.get('p99', 0) * 1000:.1f} ms",
            f"{p.get('ok')}/{p.get('sent')} at {p.get('rate', 0):.0f}/s"
            + (" (ours' 80%)" if s.database_url is None else ""),
            stored,
        ])
    for s in servers[1:]:
        p = s.paced or {}
        ratio = median(s.max_rates) / base
        section.goals.append(Goal(f"{s.name}: throughput ≥ 0.6 × baseline", f"{ratio:.2f}", ratio >= 0.6))
        section.goals.append(Goal(f"{s.name}: p99 < 50 ms at 80% of max", f"{p.get('p99', 0) * 1000:.1f} ms",
                                  p.get("p99", 1) < 0.05))
        exact = p.get("stored") == p.get("ok") == p.get("sent") and not any("MISMATCH" in x for x in s.stored_ok)
        section.goals.append(Goal(f"{s.name}: events stored = events sent",
                                  f"{p.get('stored')} stored of {p.get('sent')} sent", exact))
    if not pg.url:
        section.goals.append(Goal("ours, PostgreSQL", "skipped", None))
        section.notes.append(f"PostgreSQL skipped: {pg.skip}")
    section.notes.append(
        "Every delivery is for a connected tenant, so each one is stored, wakes its tenant's sync through "
        "Redis and has its events marked enqueued: the whole production path. A request answers 200 once its "
        "own events are committed; the wake, the metrics and the log line follow in the background, once per "
        "batch (webhook/batcher.py).")
    section.notes.append(
        "Where the time goes (profiles and experiments outside this benchmark, SQLite): one web process is "
        "bound by its GIL, and every thread hand-off in it costs CPU in the kernel and in GIL contention "
        "(the baseline already switches threads 11 times a request; ours 23). Our request path alone, "
        "answering before any hand-off, reached 0.75 of the baseline; handing each delivery to the writer "
        "thread and back, still storing nothing, 0.67; with the commit, about 0.5. So 0.6 leaves the "
        "durable commit about a tenth of the baseline's cost, where SQLite's own work (about 24 WAL pages "
        "written a commit, the UPDATE that marks the previous batch enqueued) and SQLAlchemy's come to "
        "about 100 µs a delivery even on one thread alone. A leader/follower commit (the first waiting "
        "request thread commits, no writer thread) measured the same. Several web processes on SQLite take "
        "turns at the one write lock, and the baseline gains more from a second process than ours does: one "
        "process with threads gives the best ratio, hence the Procfile's default (raise WEB_CONCURRENCY with "
        "PostgreSQL and more cores).")
    section.notes.append(
        "Fixed while measuring: every delivery wrote sync_state.last_webhook_at, so on PostgreSQL each intake "
        "transaction of a tenant waited on that one row's lock (225 deliveries/s, p99 637 ms at 80% in an "
        "earlier run); it is now written at most once a second per tenant. Full garbage collections walked the "
        "120,000 objects the app is built of, a 60 ms pause several times a minute under load: "
        "gunicorn.conf.py now freezes them after the app is built (gc.freeze; the baseline runs with the same "
        "file). Random dedupe keys wrote a random page of the unique index per event; keys now begin with "
        "the event's time. Whether a tenant is connected is read once a second per process, not per commit.")
    section.notes.append(
        "The p99 at 80% used to swing between runs (17-23 ms in some, 130-470 ms in others). The sender then "
        "opened a new connection whenever none was idle, so a hiccup became a burst of connection setups the "
        "maximum (16 keep-alive connections) never paid, feeding the queue; it now paces over the same 16 "
        "connections, as wrk2 does. What remains is queueing at the writer, a serial stage at about 80% "
        "busy, so the p99 still varies run to run: in five runs on this machine SQLite's was 12.8-53.2 ms, "
        "PostgreSQL's 17.2-264.9 ms (its server shares the 2 cores with the web process and the sender).")
    section.notes.append(
        "Under wrk a run ends with requests in flight: those events are stored but not counted as answered, "
        f"so the max-rate check allows up to {CONNECTIONS} more stored than answered; the open-loop run "
        "waits for every answer and must match exactly.")
    return section
