"""GET /metrics moves as webhooks arrive and syncs run; GET /healthz says what is unreachable."""
from dataclasses import replace

import pytest

from infra.redis_server import free_port
from tests.ops_support import admin_key, customer_of, post_webhook, run_worker, scrape, value, xero_body
from tests.worker_support import announced, last_sequence
from worker import jobs
from wsgi import close_app, create_app


def delta(after, before, name, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_metrics_change_as_webhooks_arrive_and_syncs_run(emulator, runtime, connected, app, settings):
    t, state = connected, emulator.state
    jobs.backfill_tenant(t)
    client = app.test_client()
    before = scrape(client)
    assert value(before, "xero_mirror_up", component="database") == 1
    assert value(before, "xero_mirror_up", component="redis") == 1
    assert value(before, "xero_mirror_inbox_backlog", tenant=t) == 0

    mark = last_sequence(emulator)
    invoice_id = state.create_invoice(t, customer_of(emulator, t), "120.00")["InvoiceID"]
    state.apply_payment(t, invoice_id, "20.00")
    body = xero_body(announced(emulator, mark))
    assert post_webhook(client, body, settings.xero_webhook_key).status_code == 200
    assert post_webhook(client, body, settings.xero_webhook_key).status_code == 200  # Xero redelivers
    assert post_webhook(client, body, "not-the-key").status_code == 401
    arrived = scrape(client)
    assert delta(arrived, before, "xero_mirror_webhooks_total", outcome="accepted") == 1
    assert delta(arrived, before, "xero_mirror_webhooks_total", outcome="duplicate") == 1
    assert delta(arrived, before, "xero_mirror_webhooks_total", outcome="bad_signature") == 1
    assert delta(arrived, before, "xero_mirror_webhook_events_total", outcome="new") == 2
    assert delta(arrived, before, "xero_mirror_webhook_events_total", outcome="duplicate") == 2
    assert value(arrived, "xero_mirror_inbox_backlog", tenant=t) == 2
    assert value(arrived, "xero_mirror_changed_ids_waiting", tenant=t) == 1
    assert value(arrived, "xero_mirror_sync_lag_seconds", tenant=t) > 0
    assert value(arrived, "xero_mirror_queue_jobs", queue="xm-webhook", state="queued") == 1

    run_worker(runtime.redis)
    synced = scrape(client)
    assert delta(synced, arrived, "xero_mirror_jobs_total", kind="sync", outcome="succeeded") == 1
    assert delta(synced, arrived, "xero_mirror_xero_calls_total", status="200") >= 1
    assert value(synced, "xero_mirror_inbox_backlog", tenant=t) == 0
    assert value(synced, "xero_mirror_sync_lag_seconds", tenant=t) == 0
    assert value(synced, "xero_mirror_queue_jobs", queue="xm-webhook", state="queued") == 0
    minute_left = value(synced, "xero_mirror_rate_budget_remaining", tenant=t, window="minute")
    assert 0 < minute_left < value(before, "xero_mirror_rate_budget_remaining", tenant=t, window="minute")
    assert value(synced, "xero_mirror_backfill_done", tenant=t) == 1


def test_read_api_latency_is_a_histogram_per_endpoint(emulator, runtime, connected, app):
    client = app.test_client()
    key = admin_key(runtime.sessions, connected)
    before = scrape(client)
    for _ in range(3):
        client.get("/api/v1/contacts/nobody/invoices", headers={"Authorization": f"Bearer {key}"})
    client.get("/webhooks/xero")  # not the read API: not timed
    after = scrape(client)
    name, endpoint = "xero_mirror_read_api_latency_seconds", "api.list_invoices"
    assert delta(after, before, f"{name}_count", endpoint=endpoint) == 3
    assert delta(after, before, f"{name}_bucket", endpoint=endpoint, le="+Inf") == 3
    assert 0 < delta(after, before, f"{name}_sum", endpoint=endpoint) < 3 * 5
    assert not [k for k in after if k[0] == f"{name}_count" and ("endpoint", "webhook.receive") in k[1]]


def test_a_429_counts_by_problem_and_reschedules(emulator, runtime, connected, app, settings):
    t, state = connected, emulator.state
    client = app.test_client()
    mark = last_sequence(emulator)
    state.create_invoice(t, customer_of(emulator, t), "42.00")
    before = scrape(client)
    post_webhook(client, xero_body(announced(emulator, mark)), settings.xero_webhook_key)
    state.set_faults(rate_limit_next=1, rate_limit_retry_after=30)
    assert jobs.sync_tenant(t).startswith("rescheduled")
    after = scrape(client)
    assert delta(after, before, "xero_mirror_xero_rate_limited_total", problem="minute") == 1
    assert delta(after, before, "xero_mirror_xero_calls_total", status="429") == 1
    assert delta(after, before, "xero_mirror_jobs_total", kind="sync", outcome="rescheduled_429") == 1
    assert value(after, "xero_mirror_queue_jobs", queue="xm-webhook", state="scheduled") == 1


def test_healthz_is_200_when_the_database_and_redis_answer(app):
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"ok": True, "database": "ok", "redis": "ok"}


@pytest.mark.parametrize("broken", ["redis", "database"])
def test_healthz_is_503_with_the_reason_when_one_is_unreachable(settings, tmp_path, broken):
    if broken == "redis":
        settings = replace(settings, redis_url=f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    else:
        settings = replace(settings, database_url=f"sqlite:///{tmp_path}/missing/dir/mirror.db")
    app = create_app(settings)
    try:
        client = app.test_client()
        response = client.get("/healthz")
        body = response.get_json()
        assert response.status_code == 503 and body["ok"] is False
        assert body[broken].startswith("unreachable: ")
        assert body["redis" if broken == "database" else "database"] == "ok"
        shown = response.get_data(as_text=True)
        assert "hunter2" not in shown and "missing" not in shown  # no password, no path
        metrics = client.get("/metrics")  # still answers, and says what is down
        assert metrics.status_code == 200
        assert f'xero_mirror_up{{component="{broken}"}} 0.0' in metrics.get_data(as_text=True)
    finally:
        close_app(app)
