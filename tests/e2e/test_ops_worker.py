"""The ops tools against a real `python -m worker` process, the emulator, the database and Redis."""
import json
import os
import subprocess
import sys
import time

import pytest
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from infra import queue
from store.models import SyncState, XeroConnection
from store.secrets import TokenBox
from tests.e2e.worker_process import ROOT, WorkerProcess
from tests.ops_support import customer_of, ops, post_webhook, scrape, status_of, value, xero_body
from tests.worker_support import announced, assert_mirror_equals_emulator, last_sequence, mirror_rows, wait_until


@pytest.fixture
def worker(worker_env, tmp_path):
    """One worker process, as production runs it; a failing job gets one retry, then fails."""
    process = WorkerProcess({**worker_env, "RETRY_ATTEMPTS": "1"}, tmp_path / "worker.log")
    yield process
    process.stop()


def backfilled(sessions, tenant_id) -> bool:
    with sessions() as session:
        state = session.get(SyncState, tenant_id)
        return state is not None and state.backfill_status == "done"


def flask_cli(env: dict[str, str], *args: str) -> str:
    """`flask --app wsgi ARGS` as an operator types it, in its own process."""
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_job_failed_beyond_its_retries_is_listed_requeued_and_the_mirror_converges(
    emulator, runtime, connected, app, settings, worker_env, worker
):
    t, state = connected, emulator.state
    assert wait_until(lambda: backfilled(runtime.sessions, t), 30), worker.output()
    client = app.test_client()
    before = scrape(client)

    state.set_faults(error_rate=1.0)  # Xero answers 503 to every call
    mark = last_sequence(emulator)
    invoice_id = state.create_invoice(t, customer_of(emulator, t), "512.00")["InvoiceID"]
    state.apply_payment(t, invoice_id, "12.00")
    delivery = xero_body(announced(emulator, mark))
    assert post_webhook(client, delivery, settings.xero_webhook_key).status_code == 200
    failed = FailedJobRegistry(queue.WEBHOOK_QUEUE, connection=runtime.redis)
    assert wait_until(lambda: failed.count == 1, 20), worker.output()

    [job] = json.loads(flask_cli(worker_env, "ops", "failed", "--json"))["failed"]
    assert (job["tenant_id"], job["function"], job["queue"]) == (t, "worker.jobs.sync_tenant", queue.WEBHOOK_QUEUE)
    assert job["error"] == "xero.client.XeroUnavailable: Xero answered 503"
    waiting = status_of(app, t)
    assert waiting["jobs"]["failed"] == 1 and waiting["changed_waiting"] == 1
    assert f"WARNING {t}: 1 failed job(s): flask --app wsgi ops failed --tenant {t}" in ops(app, "status").stdout
    time.sleep(1.0)
    assert status_of(app, t)["sync_lag_seconds"] >= waiting["sync_lag_seconds"] + 0.9  # nothing drains it

    state.set_faults(error_rate=0.0)
    assert f"requeued {job['id']}" in ops(app, "failed", "--requeue", job["id"]).stdout

    def converged() -> bool:
        held = mirror_rows(runtime.sessions, t)["invoices"].get(invoice_id)
        return held is not None and held.amount_paid == 12 and status_of(app, t)["changed_waiting"] == 0
    assert wait_until(converged, 20), worker.output()
    assert_mirror_equals_emulator(runtime.sessions, emulator, t)
    healthy = status_of(app, t)
    assert healthy["sync_lag_seconds"] == 0 and healthy["jobs"]["failed"] == 0 and failed.count == 0

    # what the worker process counted is on the web app's /metrics (both go through Redis)
    after = scrape(client)
    assert value(after, "xero_mirror_xero_calls_total", status="503") - value(
        before, "xero_mirror_xero_calls_total", status="503") >= 2
    for outcome in ("retried", "failed", "succeeded"):
        assert value(after, "xero_mirror_jobs_total", kind="sync", outcome=outcome) >= 1, outcome
    assert value(after, "xero_mirror_jobs_total", kind="sync", outcome="requeued") == 1

    # and the worker logged it as JSON lines, with the job and tenant, and no token
    lines = [json.loads(line) for line in worker.log_path.read_text().splitlines() if line.startswith("{")]
    retry = [line for line in lines if "retry 1" in line["message"]]
    assert retry and retry[0]["tenant_id"] == t and retry[0]["job_id"].startswith("sync-")
    assert any(line["level"] == "ERROR" and "failed after 2 attempts" in line["message"] for line in lines)
    with runtime.sessions() as session:
        sealed = session.scalars(
            select(XeroConnection.token_ciphertext).where(XeroConnection.tenant_id == t)
        ).one()
    assert TokenBox(settings.token_keys).open(sealed)["access_token"] not in worker.log_path.read_text()


def test_resync_wait_follows_a_real_worker_to_the_end_with_a_progress_bar(
    emulator, runtime, connected, app, worker
):
    t = connected

    def finished() -> bool:  # a resync refuses while a backfill job still holds the tenant
        running = queue.is_running(runtime.redis, queue.BACKFILL, t)
        return backfilled(runtime.sessions, t) and not running
    assert wait_until(finished, 30), worker.output()
    with runtime.sessions() as session:
        loaded = session.get(SyncState, t).backfill_fetched

    result = ops(app, "resync", t, "--wait", "--timeout", "30")
    assert f"full backfill of {t}: job backfill-" in result.stdout
    assert f"backfill of {t} done: {loaded} fetched" in result.stdout
    assert f"backfill {t[:8]}" in result.output  # the progress bar's label (on stderr)
    assert_mirror_equals_emulator(runtime.sessions, emulator, t)

    emulator.state.set_faults(error_rate=1.0)  # the next one fails beyond its retry: --wait says so
    assert wait_until(finished, 10), worker.output()
    refused = ops(app, "resync", t, "--wait", "--timeout", "30", expect=1).output
    assert "the backfill job failed: xero.client.XeroUnavailable: Xero answered 503 (see `ops failed`)" in refused
