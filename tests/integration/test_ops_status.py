"""`ops status`: lag, waiting ids, jobs, rate budget, backfill, and loud webhook warnings."""
import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from rq import Queue

from infra import queue
from tests.ops_support import admin_key, customer_of, ops, run_worker, scrape, status_of, value
from tests.worker_support import announced, last_sequence, store_events
from worker import governor, jobs
from worker.governor import Governor
from worker.organisation import refresh_if_stale
from wsgi import close_app


def test_status_lag_grows_while_no_worker_runs_and_falls_to_zero_when_one_does(
    emulator, runtime, connected, app
):
    t, state = connected, emulator.state
    jobs.backfill_tenant(t)
    mark = last_sequence(emulator)
    invoice_id = state.create_invoice(t, customer_of(emulator, t), "99.00")["InvoiceID"]
    state.apply_payment(t, invoice_id, "9.00")
    store_events(runtime.sessions, announced(emulator, mark))
    queue.wake(runtime.redis, [t])  # as intake does; no worker is running

    first = status_of(app, t)
    assert first["changed_waiting"] == 1 and first["inbox"]["pending"] == 2  # one invoice, two events
    assert first["jobs"] == {"queued": 1, "scheduled": 0, "running": 0, "failed": 0}
    time.sleep(1.5)
    second = status_of(app, t)
    assert second["sync_lag_seconds"] >= first["sync_lag_seconds"] + 1.4  # it grows while nobody syncs

    run_worker(runtime.redis)
    third = status_of(app, t)
    assert third["sync_lag_seconds"] == 0 and third["changed_waiting"] == 0
    assert third["jobs"]["queued"] == 0 and third["since_success_seconds"] < 5
    assert third["backfill"]["status"] == "done" and third["backfill"]["fetched"] > 0
    assert third["connection"] == "active" and third["webhook_suspect"] is False

    table = ops(app, "status").stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:3] == ["WORKSPACE", "TENANT", "ORGANISATION"] and t in row
    assert "WARNING" not in table


def test_the_rate_budget_is_what_the_governor_has_left(emulator, runtime, connected, app):
    t = connected
    g = Governor(runtime.redis)
    for _ in range(3):
        g.acquire(t, governor.WEBHOOK).release()
    g.pause(t, 30)
    budget = status_of(app, t)["rate_budget"]
    assert (budget["minute_left"], budget["day_left"]) == (57, 4997)
    assert (budget["minute_limit"], budget["day_limit"]) == (60, 5000)
    assert 28 <= budget["paused_seconds"] <= 30
    assert "57/4997 paused" in ops(app, "status").stdout


def test_changes_no_webhook_announced_warn_in_status_metrics_and_the_admin_page(
    emulator, runtime, connected, app
):
    t, state = connected, emulator.state
    jobs.backfill_tenant(t)
    mark = last_sequence(emulator)
    state.create_invoice(t, customer_of(emulator, t), "250.00")  # announced; the webhook never reaches us
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from store.db import transaction
    from store.models import SyncState

    with transaction(runtime.sessions) as session:  # an hour on: the invoices' sweep is due
        hour_ago = datetime.now(timezone.utc) - timedelta(hours=1, minutes=1)
        session.execute(update(SyncState).where(SyncState.tenant_id == t).values(invoices_swept_at=hour_ago))
    outcome = jobs.reconcile_tenant(t)
    assert re.search(r"[1-9]\d* changes no webhook announced", outcome), outcome

    suspect = status_of(app, t)
    assert suspect["webhook_suspect"] is True and "no webhook was ever received" in suspect["webhook_warning"]
    table = ops(app, "status").stdout
    assert f"WARNING {t}" in table and "webhooks look broken" in table
    client = app.test_client()
    assert value(scrape(client), "xero_mirror_webhook_suspect", tenant=t) == 1
    assert 'id="webhook-warning"' in admin_page(client, runtime.sessions, t)
    as_json = admin_json(client, runtime.sessions, t)  # the CRM's own admin screen, by API key
    assert as_json["connection"]["tenant_id"] == t and "no webhook was ever received" in as_json["webhook_warning"]

    store_events(runtime.sessions, announced(emulator, mark))  # a webhook arrives: deliveries work again
    assert status_of(app, t)["webhook_suspect"] is False
    assert "WARNING" not in ops(app, "status").stdout
    assert value(scrape(client), "xero_mirror_webhook_suspect", tenant=t) == 0
    assert 'id="webhook-warning"' not in admin_page(client, runtime.sessions, t)
    assert admin_json(client, runtime.sessions, t)["webhook_warning"] is None


def admin_page(client, sessions, tenant_id: str) -> str:
    """The admin page as a browser sees it, through the one-time session URL the CRM hands over."""
    key = admin_key(sessions, tenant_id)
    url = client.post("/admin/sessions", headers={"Authorization": f"Bearer {key}"}).get_json()["url"]
    page = client.get(url.split("localhost", 1)[-1], follow_redirects=True)
    assert page.status_code == 200
    return page.get_data(as_text=True)


def admin_json(client, sessions, tenant_id: str) -> dict:
    response = client.get("/admin/xero", headers={"Authorization": f"Bearer {admin_key(sessions, tenant_id)}"})
    assert response.status_code == 200
    return response.get_json()


def test_status_without_redis_still_shows_the_database_side(emulator, runtime, connected, settings):
    from dataclasses import replace

    from infra.redis_server import free_port
    from wsgi import create_app

    down = create_app(replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        report = ops(down, "status", "--json").stdout
        table = ops(down, "status").stdout
    finally:
        close_app(down)
    assert '"redis": "unreachable: ConnectionError"' in report and '"jobs": null' in report
    assert connected in table and "WARNING Redis is unreachable" in table
    assert Queue(queue.WEBHOOK_QUEUE, connection=runtime.redis).count == 0


def test_status_shows_the_organisations_time_zone_and_warns_when_xeros_id_is_unknown(
    emulator, runtime, connected, app
):
    t = connected
    name = emulator.state.snapshot(t)["Organisation"]["Name"]
    from sqlalchemy import update

    from store.db import transaction
    from store.models import XeroConnection

    with transaction(runtime.sessions) as session:  # as a connection made before migration 0004 stands
        session.execute(
            update(XeroConnection).where(XeroConnection.tenant_id == t)
            .values(timezone=None, organisation_checked_at=None)
        )
    unread = status_of(app, t)
    assert (unread["timezone"], unread["timezone_xero"], unread["timezone_mapped"]) == ("UTC", None, False)
    assert unread["timezone_warning"] is None and unread["organisation_checked_at"] is None
    assert "UTC (not read)" in ops(app, "status").stdout

    for xero_zone, iana in (("NEWZEALANDSTANDARDTIME", "Pacific/Auckland"),
                            ("PACIFICSTANDARDTIME", "America/Los_Angeles")):
        with emulator.state.lock:
            emulator.state.books[t].org.timezone = xero_zone
        assert refresh_if_stale(runtime.api(t, governor.RECONCILE), runtime.sessions, t, runtime.now(),
                                max_age=timedelta(0))
        known = status_of(app, t)
        assert (known["timezone"], known["timezone_xero"], known["timezone_mapped"]) == (iana, xero_zone, True)
        assert known["today"] == datetime.now(ZoneInfo(iana)).date().isoformat()
        assert known["timezone_warning"] is None and known["organisation_checked_at"]
        table = ops(app, "status").stdout
        header, row = table.splitlines()[:2]
        assert header.split()[3] == "TIMEZONE" and iana in row
        assert "WARNING" not in table

    with emulator.state.lock:
        emulator.state.books[t].org.timezone = "MARSSTANDARDTIME"
    refresh_if_stale(runtime.api(t, governor.RECONCILE), runtime.sessions, t, runtime.now(), max_age=timedelta(0))
    unknown = status_of(app, t)
    assert (unknown["timezone"], unknown["timezone_xero"], unknown["timezone_mapped"]) == (
        "UTC", "MARSSTANDARDTIME", False)
    assert unknown["timezone_warning"] == "Xero time zone 'MARSSTANDARDTIME' is unknown; dates use UTC"
    table = ops(app, "status").stdout
    assert "UTC (unknown)" in table
    assert f"WARNING {t} ({name}): Xero time zone 'MARSSTANDARDTIME' is unknown; dates use UTC" in table
