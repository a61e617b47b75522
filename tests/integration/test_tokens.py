"""Tokens: refreshed before expiry under a per-connection lock; a refusal needs re-authorisation."""
import threading
import time

import pytest
import redis as redis_lib
from sqlalchemy import select

from store import connections, workspaces
from store.db import transaction
from store.models import XeroConnection
from store.secrets import TokenBox
from worker import governor, jobs, sync
from worker.tokens import TokenKeeper, normalise
from worker.xero import ConnectionRevoked, XeroClient
from tests.worker_support import (  # noqa: F401  (fixtures)
    NOW,
    announced,
    emulator,
    last_sequence,
    mirror_rows,
    runtime,
    settings,
    store_events,
    tenant,
    token_keys,
    worker_env,
)


@pytest.fixture
def user_connection(emulator, settings, sessions, tenant):
    """A tenant connected by a person (authorization code): its refresh token rotates."""
    token = normalise(emulator.state.user_token([tenant]), time.time())
    with transaction(sessions) as session:
        ws = workspaces.create_workspace(session, "Acme", NOW)
        connections.connect(session, TokenBox(settings.token_keys), workspace_id=ws.id, tenant_id=tenant,
                            token=token, now=NOW, grant_type=connections.AUTHORIZATION_CODE)
    return token


def stored_token(settings, sessions, tenant) -> dict:
    with sessions() as session:
        return connections.load_token(session, TokenBox(settings.token_keys), tenant).token


def set_expiry(settings, sessions, tenant, expires_at: float) -> None:
    with transaction(sessions) as session:
        sealed = connections.load_token(session, TokenBox(settings.token_keys), tenant)
        connections.save_token(session, TokenBox(settings.token_keys), sealed.connection.id,
                               {**sealed.token, "expires_at": expires_at}, NOW)


def keeper(settings, sessions, redis_url) -> TokenKeeper:
    """What one worker process has: its own SDK client and Redis connection."""
    return TokenKeeper(sessions=sessions, redis=redis_lib.Redis.from_url(redis_url),
                       box=TokenBox(settings.token_keys), xero=XeroClient(settings))


def test_a_fresh_token_is_used_as_is_and_one_near_expiry_is_refreshed_first(
    emulator, settings, sessions, redis_url, tenant, user_connection
):
    state = emulator.state
    state.reset_calls()
    k = keeper(settings, sessions, redis_url)
    assert k.access_token(tenant) == user_connection["access_token"]
    assert state.call_count(endpoint="POST /connect/token") == 0

    set_expiry(settings, sessions, tenant, time.time() + 120)  # inside the five-minute margin
    refreshed = k.access_token(tenant)
    assert refreshed != user_connection["access_token"]
    assert state.call_count(endpoint="POST /connect/token") == 1
    stored = stored_token(settings, sessions, tenant)
    assert stored["refresh_token"] != user_connection["refresh_token"]  # rotated, and kept
    assert stored["expires_at"] > time.time() + 1700
    with sessions() as session:
        row = session.scalars(select(XeroConnection)).one()
    assert user_connection["refresh_token"].encode() not in row.token_ciphertext  # sealed at rest
    assert row.token_expires_at is not None


def test_concurrent_refreshers_spend_the_refresh_token_once(emulator, settings, sessions, redis_url, tenant,
                                                            user_connection):
    state = emulator.state
    set_expiry(settings, sessions, tenant, time.time() + 10)
    state.reset_calls()
    workers = [keeper(settings, sessions, redis_url) for _ in range(4)]
    start = threading.Barrier(len(workers))
    results: list[str] = []

    def refresh(k: TokenKeeper) -> None:
        start.wait()
        results.append(k.access_token(tenant))

    threads = [threading.Thread(target=refresh, args=(k,)) for k in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 4 and len(set(results)) == 1  # all use the one new token
    assert state.call_count(endpoint="POST /connect/token") == 1
    assert results[0] == stored_token(settings, sessions, tenant)["access_token"]


def test_a_refused_refresh_marks_the_connection_and_stops_syncing_keeping_the_data(
    emulator, settings, sessions, redis_url, runtime, tenant, user_connection
):
    state = emulator.state
    t = tenant
    sync.backfill(t, api=runtime.api(t, governor.BACKFILL), sessions=sessions, now=runtime.now())
    before = {k: len(v) for k, v in mirror_rows(sessions, t).items()}
    assert before["invoices"] > 0

    state.oauth.revoke(client_id=emulator.client_id, token=user_connection["refresh_token"])  # user disconnected us
    set_expiry(settings, sessions, t, time.time() + 10)
    with pytest.raises(ConnectionRevoked):
        keeper(settings, sessions, redis_url).access_token(t)
    with sessions() as session:
        row = session.scalars(select(XeroConnection)).one()
    assert row.status == "needs_reauth"
    assert "invalid_grant" in row.last_error and "re-authorised" in row.last_error
    assert user_connection["refresh_token"] not in row.last_error and user_connection["access_token"] not in row.last_error

    mark = last_sequence(emulator)
    invoice_id = state.create_invoice(t, next(iter(mirror_rows(sessions, t)["contacts"])), "10.00")["InvoiceID"]
    store_events(sessions, announced(emulator, mark))
    state.reset_calls()
    assert jobs.sync_tenant(t).startswith("stopped")
    assert state.call_count() == 0  # nobody keeps knocking
    assert {k: len(v) for k, v in mirror_rows(sessions, t).items()} == before  # nothing deleted
    assert invoice_id not in mirror_rows(sessions, t)["invoices"]


def test_a_token_xero_rejects_is_replaced_once_and_the_call_goes_through(emulator, settings, sessions, runtime,
                                                                         tenant):
    from tests.worker_support import connect_client_credentials

    connect_client_credentials(settings, sessions, tenant)
    emulator.state.advance_clock(3600)  # Xero thinks the token expired; our record does not know yet
    emulator.state.reset_calls()
    page = runtime.api(tenant, governor.WEBHOOK).invoices(page=1)
    assert page.items
    assert emulator.state.call_count(endpoint="GET /Invoices", status=401) == 1
    assert emulator.state.call_count(endpoint="POST /connect/token") == 1
    assert emulator.state.call_count(endpoint="GET /Invoices", status=200) == 1
