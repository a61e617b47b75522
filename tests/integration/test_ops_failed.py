"""`ops failed`: RQ's failed-job registry listed with tenants and errors; requeue and drop."""
import json
from datetime import datetime, timedelta, timezone

from rq.job import Job
from rq.registry import FailedJobRegistry

from infra import queue
from tests.ops_support import customer_of, ops, run_worker, status_of
from tests.worker_support import announced, assert_mirror_equals_emulator, last_sequence, store_events
from worker import jobs


def fail_a_sync(emulator, runtime, tenant_id) -> str:
    """Xero answers 503 to everything and the job has no retries left: it fails into the registry."""
    emulator.state.set_faults(error_rate=1.0)
    queue.wake(runtime.redis, [tenant_id])
    run_worker(runtime.redis)
    [job_id] = FailedJobRegistry(queue.WEBHOOK_QUEUE, connection=runtime.redis).get_job_ids()
    return job_id


def test_failed_jobs_are_listed_dropped_and_requeued_until_the_mirror_converges(
    emulator, runtime, connected, app, monkeypatch
):
    t, state = connected, emulator.state
    monkeypatch.setenv("RETRY_ATTEMPTS", "0")  # the first 5xx fails the job (the e2e test retries first)
    jobs.backfill_tenant(t)
    mark = last_sequence(emulator)
    state.create_invoice(t, customer_of(emulator, t), "64.00")
    store_events(runtime.sessions, announced(emulator, mark))
    assert ops(app, "failed").stdout.strip() == "no failed jobs"

    doomed = fail_a_sync(emulator, runtime, t)
    listed = json.loads(ops(app, "failed", "--json").stdout)["failed"]
    assert [(j["id"], j["queue"], j["function"], j["tenant_id"]) for j in listed] == [
        (doomed, queue.WEBHOOK_QUEUE, "worker.jobs.sync_tenant", t)
    ]
    assert listed[0]["error"] == "xero.client.XeroUnavailable: Xero answered 503"
    failed_at = datetime.fromisoformat(listed[0]["failed_at"])
    assert timedelta(0) <= datetime.now(timezone.utc) - failed_at < timedelta(seconds=30)
    table = ops(app, "failed").stdout
    assert doomed in table and t in table and "XeroUnavailable: Xero answered 503" in table
    assert status_of(app, t)["jobs"]["failed"] == 1

    assert f"dropped {doomed}" in ops(app, "failed", "--drop", doomed).stdout
    assert not Job.exists(doomed, connection=runtime.redis)
    assert status_of(app, t)["changed_waiting"] == 1  # its events stay outstanding
    assert f"no job {doomed}" in ops(app, "failed", "--requeue", doomed, expect=1).output

    again = fail_a_sync(emulator, runtime, t)
    state.set_faults(error_rate=0.0)
    requeued = json.loads(ops(app, "failed", "--requeue-all", "--json").stdout)
    assert requeued == {"requeued": [again], "dropped": [], "failed": []}
    run_worker(runtime.redis)
    assert status_of(app, t)["changed_waiting"] == 0 and status_of(app, t)["jobs"]["failed"] == 0
    assert_mirror_equals_emulator(runtime.sessions, emulator, t)
    assert Job.fetch(again, connection=runtime.redis).get_status() == "finished"  # the same job, run again
    assert "not in the failed-job registry (it is finished)" in ops(app, "failed", "--requeue", again,
                                                                    expect=1).output
