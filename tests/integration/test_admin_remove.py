"""Removing Xero truly stops the flow: disconnected at Xero, jobs cancelled, mirror purged
(the CRM's links kept), later webhooks ignored, nobody else touched. And "needs reconnecting" keeps the mirror."""
from __future__ import annotations

from rq import Queue
from rq.job import Job
from sqlalchemy import select

from infra import queue
from store.db import transaction
from store.models import Contact, CrmRecord, InboxEvent, Invoice, Payment, Pin, RecordLink, SyncState, XeroConnection
from tests.integration.admin_flow import (  # noqa: F401  (fixtures)
    NOW,
    app,
    bearer,
    calls,
    confirm_remove,
    connect_and_save,
    count,
    csrf,
    dance,
    deliver_webhooks,
    emulator,
    last_sequence,
    new_workspace,
    redis,
    remove_with_key,
    run_worker,
    settings,
    shown,
    stored_token,
    tenant_calls,
    token_key,
)
from tests.worker_support import connect_client_credentials
from wsgi import close_app, create_app, runtime
from xero.identity import IdentityClient

MIRRORED = (Contact, Invoice, Payment, SyncState)


def customer(emulator, tenant_id: str) -> str:
    return next(c["ContactID"] for c in emulator.state.snapshot(tenant_id)["Contacts"] if c["IsCustomer"])


def pin_something(app, workspace_id: int, tenant_id: str) -> None:
    """A CRM record of the workspace, linked to a Xero contact, with a pinned invoice."""
    with transaction(runtime(app).sessions) as s:
        invoice = s.scalars(select(Invoice).where(Invoice.tenant_id == tenant_id)).first()
        record = CrmRecord(workspace_id=workspace_id, kind="contact", external_id=f"c-{tenant_id[:6]}",
                           updated_at=NOW)
        s.add(record)
        s.flush()
        s.add(RecordLink(workspace_id=workspace_id, record_id=record.id, tenant_id=tenant_id,
                         xero_contact_id=invoice.contact_id, reason="explicit", created_at=NOW))
        s.add(Pin(workspace_id=workspace_id, record_id=record.id, tenant_id=tenant_id, invoice_id=invoice.invoice_id,
                  created_at=NOW))


def held(app, tenant_id: str) -> dict[str, int]:
    return {m.__name__: count(app, m, tenant_id=tenant_id) for m in (*MIRRORED, Pin, RecordLink)}


def jobs_for(redis, tenant_id: str) -> list[str]:
    found = []
    for name in queue.PRIORITY_ORDER:
        q = Queue(name, connection=redis)
        found += [j.func_name for j in q.get_jobs() if j.args[:1] == (tenant_id,)]
        scheduled = [Job.fetch(jid, connection=redis) for jid in q.scheduled_job_registry.get_job_ids()]
        found += [j.func_name for j in scheduled if j.args[:1] == (tenant_id,)]
    return found


def test_remove_disconnects_at_xero_cancels_jobs_purges_the_mirror_and_leaves_other_workspaces_alone(
    app, emulator, redis, settings
):
    mine, theirs = emulator.state.tenant_ids[:2]
    client = app.test_client()
    ws = new_workspace(app)
    browser = connect_and_save(app, ws, mine)
    other_connection = connect_client_credentials(settings, runtime(app).sessions, theirs)
    queue.enqueue(redis, queue.BACKFILL, theirs)
    run_worker(redis)
    with runtime(app).sessions() as s:
        other_ws = s.get(XeroConnection, other_connection).workspace_id
    pin_something(app, ws.id, mine)
    pin_something(app, other_ws, theirs)
    assert all(held(app, mine).values()) and all(held(app, theirs).values())
    theirs_before = held(app, theirs)

    # work still waiting for my organisation: an announced change, a scheduled sweep
    seq = last_sequence(emulator)
    emulator.state.create_invoice(mine, customer(emulator, mine), "42.00")
    seq = deliver_webhooks(client, emulator, settings, seq)
    queue.enqueue(redis, queue.RECONCILE, mine, delay=300)
    assert len(jobs_for(redis, mine)) == 2 and queue.sync_queued(redis, mine)
    mine_calls = tenant_calls(emulator, mine)

    removed = confirm_remove(browser)
    assert removed.status_code == 303
    page = shown(browser)
    assert page["status"] == "Not connected" and "Removed" in page["message"] and "connect" in page

    assert calls(emulator, "POST /connect/revocation", 200) == 1
    assert calls(emulator, "DELETE /Connections/{id}", 204) == 1
    with runtime(app).sessions() as s:
        row = s.scalars(select(XeroConnection).where(XeroConnection.workspace_id == ws.id)).one()
        assert (row.status, row.token_ciphertext) == ("disconnected", None) and row.disconnected_at
        events = s.scalars(select(InboxEvent).where(InboxEvent.tenant_id == mine)).all()
    assert held(app, mine) == {**dict.fromkeys(held(app, mine), 0), "RecordLink": 1}, "the CRM's own link is kept"
    assert events and {e.state for e in events} <= {"ignored", "done"}, "history kept, nothing left to do"
    assert jobs_for(redis, mine) == [] and not queue.sync_queued(redis, mine)
    assert not any(queue.is_queued(redis, kind, mine) for kind in queue.QUEUE)

    # Xero keeps announcing changes: answered 200, ignored, and Xero hears nothing from us about it
    emulator.state.create_invoice(mine, customer(emulator, mine), "7.00")
    deliver_webhooks(client, emulator, settings, seq)
    run_worker(redis)
    assert tenant_calls(emulator, mine) == mine_calls
    with runtime(app).sessions() as s:
        assert {e.state for e in s.scalars(select(InboxEvent).where(InboxEvent.tenant_id == mine))} == {"ignored"}

    # the other workspace: untouched, still connected, still syncing
    assert held(app, theirs) == theirs_before
    with runtime(app).sessions() as s:
        assert s.get(XeroConnection, other_connection).status == "active"
    seq = last_sequence(emulator)
    emulator.state.create_invoice(theirs, customer(emulator, theirs), "99.00")
    deliver_webhooks(client, emulator, settings, seq)
    run_worker(redis)
    assert count(app, Invoice, tenant_id=theirs) == theirs_before["Invoice"] + 1


def test_reconnecting_after_remove_starts_a_fresh_backfill(app, emulator, redis):
    tenant = emulator.state.tenant_ids[0]
    ws = new_workspace(app)
    browser = connect_and_save(app, ws, tenant)
    run_worker(redis)
    assert confirm_remove(browser).status_code == 303
    assert count(app, Invoice, tenant_id=tenant) == 0

    connect_and_save(app, ws, tenant)
    assert count(app, SyncState, tenant_id=tenant) == 0
    assert [j.args for j in Queue(queue.BACKFILL_QUEUE, connection=redis).get_jobs()] == [(tenant,)]
    run_worker(redis)
    assert count(app, Invoice, tenant_id=tenant) == len(emulator.state.snapshot(tenant)["Invoices"])


def test_remove_spares_the_xero_access_another_workspace_gets_from_the_same_xero_user(app, emulator, redis):
    mine, theirs = emulator.state.tenant_ids[:2]
    mine_browser = connect_and_save(app, new_workspace(app, "Mine"), mine)
    connect_and_save(app, new_workspace(app, "Theirs"), theirs)

    assert confirm_remove(mine_browser).status_code == 303
    assert "not revoked" in shown(mine_browser)["message"]
    assert calls(emulator, "POST /connect/revocation") == 0
    assert calls(emulator, "DELETE /Connections/{id}", 204) == 1
    with IdentityClient(runtime(app).settings) as identity:
        assert [c.tenant_id for c in identity.connections(stored_token(app, theirs)["access_token"])] == [theirs]


def test_remove_when_xero_is_unreachable_still_disconnects_and_purges_and_says_so(app, emulator, redis, settings):
    tenant = emulator.state.tenant_ids[0]
    ws = new_workspace(app)
    connect_and_save(app, ws, tenant)
    run_worker(redis)
    offline = create_app(settings.__class__(**{**settings.__dict__, "xero_identity_url": "http://127.0.0.1:9",
                                               "xero_connections_url": "http://127.0.0.1:9/connections"}))
    answer = remove_with_key(offline.test_client(), ws.admin_key)
    close_app(offline)

    body = answer.get_json()
    assert answer.status_code == 200 and body["connection"] is None
    assert body["problems"] == ["Xero could not be reached to disconnect it there; remove the app in Xero's "
                                "Connected Apps."]
    assert count(app, Invoice, tenant_id=tenant) == 0
    assert calls(emulator, "POST /connect/revocation") == 0


def test_refused_refresh_shows_needs_reconnecting_keeps_the_mirror_and_reconnecting_resumes(
    app, emulator, redis, settings
):
    tenant = emulator.state.tenant_ids[0]
    client = app.test_client()
    ws = new_workspace(app)
    browser = connect_and_save(app, ws, tenant)
    run_worker(redis)
    mirrored = count(app, Invoice, tenant_id=tenant)

    # the user disconnects the app in Xero; the next sync's refresh is refused
    with IdentityClient(runtime(app).settings) as identity:
        identity.revoke(stored_token(app, tenant)["refresh_token"])
    seq = last_sequence(emulator)
    emulator.state.create_invoice(tenant, customer(emulator, tenant), "15.00")
    seq = deliver_webhooks(client, emulator, settings, seq)
    run_worker(redis)

    page = shown(browser)
    assert page["status"] == "Needs reconnecting"
    assert "connect" in page and "reauth-note" in page and "save" not in page
    assert count(app, Invoice, tenant_id=tenant) == mirrored

    assert dance(browser, [tenant]).status_code == 303
    assert shown(browser)["status"] == "Ready to save"
    assert browser.post("/admin/xero/save", data={"csrf": csrf(browser)}).status_code == 303
    run_worker(redis)
    assert shown(browser)["status"] == "Connected"
    assert count(app, Invoice, tenant_id=tenant) == mirrored + 1, "the change announced meanwhile arrived"
