"""`flask --app wsgi xero connect-client-credentials`: a custom connection, sealed, backfill queued."""
import json
from datetime import datetime, timezone

import redis as redis_lib
from rq import Queue
from sqlalchemy import select

from infra import metrics, queue
from store import workspaces
from store.db import transaction
from store.models import SyncState, XeroConnection
from store.secrets import TokenBox
from tests.worker_support import NOW
from wsgi import close_app, create_app


def test_connect_client_credentials_stores_the_connection_and_queues_its_backfill(emulator, settings, sessions,
                                                                                  redis_url):
    with transaction(sessions) as session:
        workspace_id = workspaces.create_workspace(session, "Acme", NOW).id
    app = create_app(settings)
    runner = app.test_cli_runner()
    try:
        check_connect(app, runner, emulator, settings, sessions, redis_url, workspace_id)
    finally:
        close_app(app)


def check_connect(app, runner, emulator, settings, sessions, redis_url, workspace_id):
    tenant_id = emulator.state.tenant_ids[1]

    ambiguous = runner.invoke(args=["xero", "connect-client-credentials", "--workspace", str(workspace_id)])
    assert ambiguous.exit_code != 0 and "--tenant" in ambiguous.output  # the app reaches two organisations

    result = runner.invoke(args=["xero", "connect-client-credentials", "--workspace", str(workspace_id),
                                 "--tenant", tenant_id, "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["tenant_id"] == tenant_id and answer["backfill_queued"] is True

    truth = emulator.state.snapshot(tenant_id)["Organisation"]
    with sessions() as session:
        row = session.scalars(select(XeroConnection)).one()
        assert (row.workspace_id, row.status, row.grant_type) == (workspace_id, "active", "client_credentials")
        assert (row.tenant_name, row.short_code, row.base_currency) == (
            truth["Name"], truth["ShortCode"], truth["BaseCurrency"])
        assert row.timezone == truth["Timezone"] and row.organisation_checked_at is not None  # Xero's id, as sent
        assert TokenBox(settings.token_keys).open(row.token_ciphertext)["access_token"]
        assert session.get(SyncState, tenant_id).backfill_status == "pending"
    redis = redis_lib.Redis.from_url(redis_url)
    [job] = Queue(queue.BACKFILL_QUEUE, connection=redis).get_jobs()
    assert job.func_name == "worker.jobs.backfill_tenant" and job.args == (tenant_id,)
    # the Organisation read is Xero egress like any other: metered under the tenant
    pulled = metrics.egress_today(redis, datetime.now(timezone.utc))[tenant_id]
    assert pulled.calls == emulator.state.call_count(tenant_id) >= 1
    assert pulled.bytes == emulator.state.bytes_sent(tenant_id) > 0

    again = runner.invoke(args=["xero", "connect-client-credentials", "--workspace", "999", "--tenant", tenant_id])
    assert again.exit_code != 0 and "no workspace 999" in again.output
