"""`GET /healthz` and `GET /metrics` (Prometheus text), and the read API's latency timing.

Neither shows a secret. /healthz needs no key and says whether the database and Redis answer
(200, or 503 with the reason). /metrics names every tenant, so when METRICS_TOKEN is set it
answers only `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise; production refuses to
start without the token unless METRICS_PUBLIC=1). It is built at scrape time from the counters
every process keeps in Redis (infra/metrics.py) and from the database, so gunicorn workers and
RQ workers report one set of figures whichever web process is scraped.
"""
from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, g, jsonify, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis import Redis, RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from infra import metrics
from ops import status
from services.runtime import Runtime

bp = Blueprint("health", __name__)

TIMED_BLUEPRINTS = ("api",)  # the CRM's read API
KNOWN = {  # label values always exported, at 0 until they happen
    metrics.WEBHOOKS: ("accepted", "duplicate", "bad_signature", "malformed", "too_large", "db_unavailable"),
    metrics.WEBHOOK_EVENTS: ("new", "duplicate"),
}


def _runtime() -> Runtime:
    return current_app.extensions["xm"]


# --- /healthz ---------------------------------------------------------------------------------


@bp.get("/healthz")
def healthz():
    rt = _runtime()
    checks = {"database": _database_ok(rt), "redis": _redis_ok(rt)}
    healthy = all(answer == "ok" for answer in checks.values())
    response = jsonify(ok=healthy, **checks)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def _database_ok(rt: Runtime) -> str:
    try:
        with rt.read_engine.connect() as connection:  # deferred BEGIN: never waits on a writer
            connection.execute(text("SELECT 1"))
        return "ok"
    except SQLAlchemyError as error:
        return f"unreachable: {type(getattr(error, 'orig', None) or error).__name__}"


def _redis_ok(rt: Runtime) -> str:
    try:
        rt.redis.ping()
        return "ok"
    except RuntimeError:
        return "not configured: REDIS_URL is unset"
    except RedisError as error:
        return f"unreachable: {type(error).__name__}"


# --- the read API's latency -------------------------------------------------------------------


@bp.before_app_request
def _start_timer() -> None:
    if request.blueprint in TIMED_BLUEPRINTS:
        g.xm_started = time.perf_counter()


@bp.after_app_request
def _record_latency(response: Response) -> Response:
    started = g.pop("xm_started", None)
    if started is not None:
        metrics.observe(_runtime(), metrics.READ_LATENCY, time.perf_counter() - started,
                        endpoint=request.endpoint or "unknown")
    return response


# --- /metrics ---------------------------------------------------------------------------------


@bp.get("/metrics")
def prometheus():
    token = _runtime().settings.metrics_token
    if token and not _bearer_is(token):
        return Response("a valid metrics token is required: Authorization: Bearer <METRICS_TOKEN>\n",
                        status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MirrorCollector(_runtime()))
    return Response(generate_latest(registry), mimetype=None, content_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})


def _bearer_is(token: str) -> bool:
    """Whether the request's bearer is `token`, compared in constant time."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class MirrorCollector:
    """Reads Redis counters and the database at scrape time (prometheus_client's Collector)."""

    def __init__(self, rt: Runtime):
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(timezone.utc)
        redis = self._redis()
        up = GaugeMetricFamily("xero_mirror_up", "Whether a backing service answered this scrape.",
                               labels=["component"])
        redis_ok = redis is not None and _redis_ok(self.rt) == "ok"
        up.add_metric(["redis"], 1 if redis_ok else 0)
        report = None
        try:
            with self.rt.read_sessions() as session:
                report = status.collect(session, redis if redis_ok else None, now,
                                        self.rt.settings.xero_limits, jobs=False)
            up.add_metric(["database"], 1)
        except SQLAlchemyError:
            up.add_metric(["database"], 0)
        yield up
        if redis_ok and redis is not None:
            try:
                yield from self._counters(redis)
                live = ([t.tenant_id for t in report.tenants if t.connection != "disconnected"]
                        if report else [])
                yield from self._egress(redis, now, live)
                yield from self._queues(redis)
            except RedisError:
                pass  # xero_mirror_up{component="redis"} said it a moment ago, or will next time
        if report is not None:
            yield from self._tenants(report)

    def _redis(self) -> Redis | None:
        try:
            return self.rt.redis
        except RuntimeError:
            return None

    def _counters(self, redis: Redis) -> Iterator[Metric]:
        specs = [
            (metrics.WEBHOOKS, "xero_mirror_webhooks", "Webhook deliveries by outcome.", ["outcome"]),
            (metrics.WEBHOOK_EVENTS, "xero_mirror_webhook_events",
             "Events in accepted deliveries: new ones, and duplicates of events already held.", ["outcome"]),
            (metrics.JOBS, "xero_mirror_jobs", "Sync, reconcile and backfill job runs by outcome.",
             ["kind", "outcome"]),
            (metrics.XERO_CALLS, "xero_mirror_xero_calls", "Calls to Xero by HTTP status.", ["status"]),
            (metrics.XERO_429, "xero_mirror_xero_rate_limited",
             "Xero's 429 answers by X-Rate-Limit-Problem.", ["problem"]),
        ]
        for key, name, doc, labels in specs:
            family = CounterMetricFamily(name, doc, labels=labels)
            seen = {}
            for label_values, value in metrics.counters(redis, key):
                seen[tuple(label_values.get(label, "") for label in labels)] = value
            for known in KNOWN.get(key, ()):
                seen.setdefault((known,), 0)
            for values, value in sorted(seen.items()):
                family.add_metric(list(values), value)
            yield family
        latency = HistogramMetricFamily("xero_mirror_read_api_latency_seconds",
                                        "Time to answer the CRM read API, by endpoint.", labels=["endpoint"])
        for series in metrics.histograms(redis, metrics.READ_LATENCY):
            buckets = [("+Inf" if bound == float("inf") else repr(bound), count)
                       for bound, count in series.buckets]
            latency.add_metric([series.labels.get("endpoint", "")], buckets, series.sum)
        yield latency

    def _egress(self, redis: Redis, now: datetime, live: list[str]) -> Iterator[Metric]:
        """Xero egress per tenant (`-`: token and /connections calls made for no tenant): the
        running totals, and today's UTC figures, which Xero's egress report bills by. Live
        tenants are exported at 0 until they make a call."""
        calls = CounterMetricFamily("xero_mirror_xero_calls_by_tenant",
                                    "Answers from Xero per tenant (token calls included).", labels=["tenant"])
        pulled = CounterMetricFamily("xero_mirror_xero_bytes",
                                     "Bytes pulled from Xero per tenant, on the wire (compressed size when "
                                     "gzipped).", labels=["tenant"])
        zero = {tenant_id: metrics.Egress() for tenant_id in live}
        for tenant_id, e in sorted({**zero, **metrics.egress_totals(redis)}.items()):
            calls.add_metric([tenant_id], e.calls)
            pulled.add_metric([tenant_id], e.bytes)
        calls_today = GaugeMetricFamily("xero_mirror_xero_calls_today",
                                        "Answers from Xero per tenant this UTC day.", labels=["tenant"])
        bytes_today = GaugeMetricFamily("xero_mirror_xero_bytes_today",
                                        "Bytes pulled from Xero per tenant this UTC day.", labels=["tenant"])
        for tenant_id, e in sorted({**zero, **metrics.egress_today(redis, now)}.items()):
            calls_today.add_metric([tenant_id], e.calls)
            bytes_today.add_metric([tenant_id], e.bytes)
        yield from (calls, pulled, calls_today, bytes_today)

    def _queues(self, redis: Redis) -> Iterator[Metric]:
        family = GaugeMetricFamily("xero_mirror_queue_jobs", "RQ jobs per queue and state.",
                                   labels=["queue", "state"])
        for name, counts in status.queue_counts(redis).items():
            for state, value in counts.items():
                family.add_metric([name, state], value)
        yield family

    def _tenants(self, report: status.Report) -> Iterator[Metric]:
        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=["tenant", *extra])

        backlog = gauge("xero_mirror_inbox_backlog", "Outstanding (pending or enqueued) inbox events.")
        failed = gauge("xero_mirror_inbox_failed_events", "Inbox events settled as failed.")
        waiting = gauge("xero_mirror_changed_ids_waiting", "Distinct changed ids with an outstanding event.")
        lag = gauge("xero_mirror_sync_lag_seconds",
                    "Age of the oldest outstanding inbox event (0 when none).")
        since = gauge("xero_mirror_seconds_since_last_success", "Seconds since the last successful sync.")
        budget = gauge("xero_mirror_rate_budget_remaining", "Xero calls left for the tenant in the window.",
                       ("window",))
        suspect = gauge("xero_mirror_webhook_suspect",
                        "1 when reconciliation found changes no webhook announced and none arrived since.")
        backfill = gauge("xero_mirror_backfill_done", "1 once the tenant's initial load is complete.")
        unannounced = CounterMetricFamily("xero_mirror_unannounced_changes",
                                          "Changes reconciliation found that no webhook had announced.",
                                          labels=["tenant"])
        for t in report.tenants:
            if t.connection == "disconnected":
                continue
            label = [t.tenant_id]
            backlog.add_metric(label, t.inbox["pending"] + t.inbox["enqueued"])
            failed.add_metric(label, t.inbox["failed"])
            waiting.add_metric(label, t.changed_waiting)
            lag.add_metric(label, t.sync_lag_seconds)
            if t.since_success_seconds is not None:
                since.add_metric(label, t.since_success_seconds)
            if t.rate_budget is not None:
                budget.add_metric([t.tenant_id, "minute"], t.rate_budget["minute_left"])
                budget.add_metric([t.tenant_id, "day"], t.rate_budget["day_left"])
            suspect.add_metric(label, 1 if t.webhook_suspect else 0)
            backfill.add_metric(label, 1 if t.backfill["status"] == "done" else 0)
            unannounced.add_metric(label, t.unannounced_changes)
        yield from (backlog, failed, waiting, lag, since, budget, suspect, backfill, unannounced)


# --- the admin page's warning -------------------------------------------------------------------


def webhook_warning(rt: Runtime, tenant_id: str) -> str | None:
    """The tenant's webhook warning for the admin page; None when fine or when Redis is down."""
    try:
        with rt.read_sessions() as session:
            return status.webhook_warning(session, rt.redis, tenant_id, datetime.now(timezone.utc))
    except (RedisError, RuntimeError):
        return None
