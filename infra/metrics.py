"""Counters and latency histograms kept in Redis, so every process adds to the same figures.

Gunicorn workers, RQ work horses and the CLI each count into Redis (HINCRBY); `GET /metrics`
reads the totals at scrape time. Recording never fails the caller: when Redis is unreachable
a process stops trying for a few seconds (so a webhook never waits on a dead Redis twice)
and the lost increments are simply not counted.

Keys (all under `xm:metrics:`):
- `c:{name}`: a hash of counters, one field per label set (`k=v|k=v`, labels sorted);
- `h:{name}`: a histogram, fields `{labels}#{bucket index}` (non-cumulative), `{labels}#count`,
  `{labels}#sum`;
- `reconcile:{tenant}`: what the tenant's last reconciliations found (see `reconciled`);
- `egress:{YYYYMMDD}`: Xero calls answered and bytes pulled per tenant on that UTC day, fields
  `{tenant}:calls` and `{tenant}:bytes` (tenant `-` for token and /connections calls made for
  no tenant), kept EGRESS_TTL (~40 days); `egress:total`: the same fields, never reset (the
  counters). This is the figure Xero bills integrations by since March 2026 (data egress).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from redis import Redis, RedisError

log = logging.getLogger(__name__)

PREFIX = "xm:metrics:"
QUIET_SECONDS = 10.0  # after a Redis error, skip recording for this long
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RECONCILE_TTL = 30 * 24 * 3600
EGRESS_TTL = 40 * 24 * 3600
EGRESS_WINDOW_DAYS = 30  # `calls_30d` / `bytes_30d`: today and the 29 UTC days before
NO_TENANT = "-"  # calls made for no tenant (a token or /connections call outside a tenant's job)

# counter names, and the label each one carries
# outcome: accepted | duplicate | bad_signature | malformed | too_large | db_unavailable
WEBHOOKS = "webhooks"
WEBHOOK_EVENTS = "webhook_events"  # outcome: new | duplicate
# kind; outcome: succeeded | failed | retried | rescheduled_429 | throttled | paused | busy | stopped
# | requeued (by `ops failed`)
JOBS = "jobs"
XERO_CALLS = "xero_calls"  # status: the HTTP status, or unreachable | transport_error
XERO_429 = "xero_429"  # problem: X-Rate-Limit-Problem (minute, day, appminute, concurrent, unknown)
READ_LATENCY = "read_api_latency_seconds"  # histogram; endpoint

_quiet_until: dict[tuple, float] = {}  # per process and Redis server: the breaker


def _client(source: Any) -> Redis | None:
    """A Redis client from a client, a runtime (anything with `.redis`), or None."""
    if source is None or isinstance(source, Redis):
        return source
    try:
        return source.redis
    except RuntimeError:  # REDIS_URL unset: nothing to record into
        return None


def _write(source: Any, commands: Iterable[tuple[str, tuple]]) -> None:
    redis = _client(source)
    if redis is None:
        return
    server = _server(redis)
    if time.monotonic() < _quiet_until.get(server, 0.0):
        return
    try:
        with redis.pipeline(transaction=False) as pipe:
            for method, args in commands:
                getattr(pipe, method)(*args)
            pipe.execute()
    except RedisError as error:
        _quiet_until[server] = time.monotonic() + QUIET_SECONDS
        log.warning("metrics not recorded: Redis unavailable", extra={"error": type(error).__name__})


def _server(redis: Redis) -> tuple:
    kwargs = redis.connection_pool.connection_kwargs
    return (kwargs.get("host"), kwargs.get("port"), kwargs.get("path"), kwargs.get("db"))


def labels_field(labels: Mapping[str, Any]) -> str:
    """`k=v|k=v`, sorted by key; `|` and `=` in values become `_`."""
    return "|".join(f"{k}={_clean(v)}" for k, v in sorted(labels.items()))


def parse_labels(field: str) -> dict[str, str]:
    if not field:
        return {}
    return dict(part.split("=", 1) for part in field.split("|"))


def _clean(value: Any) -> str:
    return str(value).replace("|", "_").replace("=", "_").replace("#", "_")


# --- recording -------------------------------------------------------------------------------


def count(source: Any, name: str, amount: int = 1, **labels: Any) -> None:
    """Add `amount` to counter `name` with these labels (never raises)."""
    if amount:
        _write(source, [("hincrby", (PREFIX + "c:" + name, labels_field(labels), amount))])


def webhook_stored(source: Any, new: int, duplicates: int) -> None:
    """A delivery stored: `accepted` if anything in it was new, else `duplicate`; and its events."""
    key = PREFIX + "c:"
    _write(source, [
        ("hincrby", (key + WEBHOOKS, labels_field({"outcome": "accepted" if new else "duplicate"}), 1)),
        ("hincrby", (key + WEBHOOK_EVENTS, labels_field({"outcome": "new"}), new)),
        ("hincrby", (key + WEBHOOK_EVENTS, labels_field({"outcome": "duplicate"}), duplicates)),
    ])


def webhooks_stored(source: Any, accepted: int, duplicate: int, new_events: int, duplicate_events: int) -> None:
    """Deliveries stored together (the intake's group commit), counted in one pipeline: those
    with anything new are `accepted`, the rest `duplicate`; and their events."""
    key = PREFIX + "c:"
    _write(source, [
        ("hincrby", (key + name, labels_field({"outcome": outcome}), amount))
        for name, outcome, amount in ((WEBHOOKS, "accepted", accepted), (WEBHOOKS, "duplicate", duplicate),
                                      (WEBHOOK_EVENTS, "new", new_events),
                                      (WEBHOOK_EVENTS, "duplicate", duplicate_events))
        if amount
    ])


def job(source: Any, kind: str, outcome: str) -> None:
    count(source, JOBS, kind=kind, outcome=outcome)


def observe(source: Any, name: str, seconds: float, **labels: Any) -> None:
    """Record one observation in histogram `name` (never raises)."""
    key, base = PREFIX + "h:" + name, labels_field(labels)
    bucket = next((i for i, bound in enumerate(LATENCY_BUCKETS) if seconds <= bound), len(LATENCY_BUCKETS))
    _write(source, [
        ("hincrby", (key, f"{base}#{bucket}", 1)),
        ("hincrby", (key, f"{base}#count", 1)),
        ("hincrbyfloat", (key, f"{base}#sum", seconds)),
    ])


def reconciled(source: Any, tenant_id: str, unannounced: int, now: datetime) -> None:
    """A reconciliation finished: keep when it ran and, if it found changes no webhook had
    announced, when and how many (the evidence that webhooks may have stopped)."""
    key = PREFIX + "reconcile:" + tenant_id
    fields = {"at": now.timestamp(), "last_unannounced": unannounced}
    if unannounced > 0:
        fields.update(unannounced_at=now.timestamp(), unannounced=unannounced)
    _write(source, [("hset", (key, None, None, fields)), ("expire", (key, RECONCILE_TTL))])


def egress_key(day: date | datetime) -> str:
    return f"{PREFIX}egress:{day.strftime('%Y%m%d')}"


EGRESS_TOTAL = PREFIX + "egress:total"


def egress(source: Any, tenant_id: str | None, nbytes: int, calls: int = 1, now: datetime | None = None) -> None:
    """One answer from Xero for this tenant (None: `-`), `nbytes` on the wire, counted under
    today's UTC day and in the running totals (never raises)."""
    tenant = _clean(tenant_id or NO_TENANT).replace(":", "_")
    day = egress_key(now or datetime.now(timezone.utc))
    commands: list[tuple[str, tuple]] = []
    for key in (day, EGRESS_TOTAL):
        if calls:
            commands.append(("hincrby", (key, f"{tenant}:calls", calls)))
        if nbytes:
            commands.append(("hincrby", (key, f"{tenant}:bytes", nbytes)))
    if commands:
        commands.append(("expire", (day, EGRESS_TTL)))
        _write(source, commands)


# --- reading (raises RedisError: the reader decides) -----------------------------------------


@dataclass(frozen=True)
class Histogram:
    labels: dict[str, str]
    buckets: list[tuple[float, int]]  # (upper bound, cumulative count), +Inf last
    count: int
    sum: float


@dataclass(frozen=True)
class ReconcileRecord:
    at: datetime | None
    last_unannounced: int
    unannounced_at: datetime | None
    unannounced: int


def counters(redis: Redis, name: str) -> list[tuple[dict[str, str], int]]:
    raw = redis.hgetall(PREFIX + "c:" + name)
    found = [(parse_labels(_text(k)), int(v)) for k, v in raw.items()]
    return sorted(found, key=lambda item: sorted(item[0].items()))


def histograms(redis: Redis, name: str) -> list[Histogram]:
    raw = {_text(k): _text(v) for k, v in redis.hgetall(PREFIX + "h:" + name).items()}
    series: dict[str, dict[str, str]] = {}
    for field, value in raw.items():
        base, _, part = field.rpartition("#")
        series.setdefault(base, {})[part] = value
    result = []
    for base, parts in sorted(series.items()):
        running, buckets = 0, []
        for index, bound in enumerate([*LATENCY_BUCKETS, float("inf")]):
            running += int(parts.get(str(index), 0))
            buckets.append((bound, running))
        result.append(Histogram(parse_labels(base), buckets, int(parts.get("count", running)),
                                float(parts.get("sum", 0.0))))
    return result


def reconcile_records(redis: Redis, tenant_ids: list[str]) -> dict[str, ReconcileRecord]:
    with redis.pipeline(transaction=False) as pipe:
        for tenant_id in tenant_ids:
            pipe.hgetall(PREFIX + "reconcile:" + tenant_id)
        answers = pipe.execute()
    records = {}
    for tenant_id, raw in zip(tenant_ids, answers):
        if not raw:
            continue
        data = {_text(k): _text(v) for k, v in raw.items()}
        records[tenant_id] = ReconcileRecord(
            at=_moment(data.get("at")),
            last_unannounced=int(float(data.get("last_unannounced", 0))),
            unannounced_at=_moment(data.get("unannounced_at")),
            unannounced=int(float(data.get("unannounced", 0))),
        )
    return records


@dataclass(frozen=True)
class Egress:
    calls: int = 0
    bytes: int = 0


def _egress_fields(raw: Mapping) -> dict[str, Egress]:
    found: dict[str, dict[str, int]] = {}
    for key, value in raw.items():
        tenant, _, what = _text(key).rpartition(":")
        if what in ("calls", "bytes"):
            found.setdefault(tenant, {})[what] = int(value)
    return {t: Egress(v.get("calls", 0), v.get("bytes", 0)) for t, v in found.items()}


def egress_days(redis: Redis, now: datetime, days: int = 1) -> list[dict[str, Egress]]:
    """Per tenant, calls and bytes on each of the last `days` UTC days, today first."""
    today = now.astimezone(timezone.utc).date()
    with redis.pipeline(transaction=False) as pipe:
        for back in range(days):
            pipe.hgetall(egress_key(today - timedelta(days=back)))
        answers = pipe.execute()
    return [_egress_fields(raw) for raw in answers]


def egress_today(redis: Redis, now: datetime) -> dict[str, Egress]:
    return egress_days(redis, now, 1)[0]


def egress_window(redis: Redis, now: datetime, days: int = EGRESS_WINDOW_DAYS) -> dict[str, Egress]:
    """Per tenant, calls and bytes summed over today and the `days - 1` UTC days before."""
    summed: dict[str, Egress] = {}
    for day in egress_days(redis, now, days):
        for tenant, e in day.items():
            was = summed.get(tenant, Egress())
            summed[tenant] = Egress(was.calls + e.calls, was.bytes + e.bytes)
    return summed


def egress_totals(redis: Redis) -> dict[str, Egress]:
    """Per tenant, calls and bytes since counting began (the counters)."""
    return _egress_fields(redis.hgetall(EGRESS_TOTAL))


def _moment(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(float(value), timezone.utc) if value else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
