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
from tests.worker_support import NOW, announced, last_sequence, mirror_rows, store_events
from worker import governor, jobs, sync
from xero.client import ConnectionRevoked, XeroClient
from xero.tokens import TokenKeeper, normalise


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
    assert user_connection["refresh_token"] not in row.last_error
    assert user_connection["access_token"] not in row.last_error

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


# --- the access token held in memory --------------------------------------------------------


class CountingBox(TokenBox):
    """A TokenBox that counts decryptions: a held token is not decrypted again."""

    opened = 0

    def open(self, ciphertext):
        self.opened += 1
        return super().open(ciphertext)


def counting_keeper(settings, sessions, redis_url, **kwargs) -> TokenKeeper:
    return TokenKeeper(sessions=sessions, redis=redis_lib.Redis.from_url(redis_url),
                       box=CountingBox(settings.token_keys), xero=XeroClient(settings), **kwargs)


def test_a_token_is_held_between_calls_and_never_shown(settings, sessions, redis_url, tenant, user_connection):
    k = counting_keeper(settings, sessions, redis_url)
    tokens = {k.access_token(tenant) for _ in range(5)}
    assert tokens == {user_connection["access_token"]}
    assert k.box.opened == 1
    assert user_connection["access_token"] not in repr(k._held) + repr(vars(k))


def test_a_held_token_is_shared_safely_between_threads(settings, sessions, redis_url, tenant, user_connection):
    k = counting_keeper(settings, sessions, redis_url)
    start = threading.Barrier(4)
    results: list[str] = []

    def read() -> None:
        start.wait()
        results.extend(k.access_token(tenant) for _ in range(20))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 80
    assert set(results) == {user_connection["access_token"]}


def test_a_held_token_near_its_expiry_is_refreshed(emulator, settings, sessions, redis_url, tenant, user_connection):
    now = [time.time()]
    k = counting_keeper(settings, sessions, redis_url, clock=lambda: now[0])
    assert k.access_token(tenant) == user_connection["access_token"]
    emulator.state.reset_calls()
    now[0] = user_connection["expires_at"] - 120  # only our clock moved: the row is as it was
    assert k.access_token(tenant) != user_connection["access_token"]
    assert emulator.state.call_count(endpoint="POST /connect/token") == 1


def test_a_token_another_worker_saved_is_picked_up(emulator, settings, sessions, redis_url, tenant, user_connection):
    mine, theirs = keeper(settings, sessions, redis_url), keeper(settings, sessions, redis_url)
    assert mine.access_token(tenant) == user_connection["access_token"]
    rotated = theirs.replace_rejected(tenant, user_connection["access_token"])
    assert rotated != user_connection["access_token"]
    assert mine.access_token(tenant) == rotated == stored_token(settings, sessions, tenant)["access_token"]


def test_a_connection_marked_elsewhere_stops_the_held_token(settings, sessions, redis_url, tenant, user_connection):
    k = keeper(settings, sessions, redis_url)
    k.access_token(tenant)
    with transaction(sessions) as session:
        connections.mark_needs_reauth(session, connections.find(session, tenant).id, "refused", NOW)
    with pytest.raises(ConnectionRevoked):
        k.access_token(tenant)


def test_a_removed_connection_gets_no_call_with_a_held_token(emulator, settings, sessions, runtime, tenant):
    from store import lifecycle
    from tests.worker_support import connect_client_credentials

    connect_client_credentials(settings, sessions, tenant)
    api = runtime.api(tenant, governor.BACKFILL)
    assert api.invoices(page=1).items  # the token is held now
    with transaction(sessions) as session:
        workspace_id = connections.find(session, tenant).workspace_id
        assert lifecycle.detach(session, TokenBox(settings.token_keys), workspace_id, NOW) is not None
    emulator.state.reset_calls()
    with pytest.raises(connections.NoConnection):
        api.invoices(page=1)
    assert emulator.state.call_count() == 0


def test_a_rejected_token_is_dropped_and_its_replacement_used(emulator, settings, sessions, runtime, tenant):
    from tests.worker_support import connect_client_credentials

    connect_client_credentials(settings, sessions, tenant)
    api = runtime.api(tenant, governor.WEBHOOK)
    held = runtime.tokens.access_token(tenant)
    emulator.state.advance_clock(3600)  # Xero thinks the held token expired
    assert api.invoices(page=1).items
    replacement = stored_token(settings, sessions, tenant)["access_token"]
    assert replacement != held
    emulator.state.reset_calls()
    assert api.invoices(page=1).items
    assert runtime.tokens.access_token(tenant) == replacement
    assert emulator.state.call_count(endpoint="GET /Invoices", status=401) == 0
    assert emulator.state.call_count(endpoint="POST /connect/token") == 0


def test_reading_the_token_does_not_wait_for_a_writer(settings, sessions, redis_url, engine, tenant, user_connection):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write lock")
    k = keeper(settings, sessions, redis_url)
    writer = engine.connect()
    writer.begin()  # BEGIN IMMEDIATE: holds the write lock, as a page being stored does
    try:
        for _ in range(2):  # read from the database, then held
            started = time.monotonic()
            assert k.access_token(tenant) == user_connection["access_token"]
            assert time.monotonic() - started < 1.0
    finally:
        writer.rollback()
        writer.close()
