"""Secrets, checked the safe way end to end: every secret comparison at an HTTP edge is
constant-time (hmac.compare_digest, watched by a spy), and no token ever reaches a log line.

The webhook signature's own unit test (tests/unit/test_signature.py) spies on the pure check;
here the spy watches the real requests: the webhook, a workspace API key, an embed token.
Tokens in clear text: the database holds ciphertext (test_admin_connect, test_token_box);
here a backfill, a webhook-driven sync and a forced token refresh run with every logger at
DEBUG, and neither the access nor the refresh token appears in any record.
"""
from __future__ import annotations

import hmac
import logging
import time
from datetime import datetime, timezone

import pytest

from infra.settings import Settings
from store import connections, workspaces
from store.db import transaction
from store.secrets import TokenBox
from tests.worker_support import announced, last_sequence, store_events
from webhook.signature import sign
from worker import jobs
from wsgi import close_app, create_app
from xero.tokens import normalise

from .mirror_rows import workspace

KEY = "secret-checks-webhook-key"


@pytest.fixture
def compared(monkeypatch):
    """Every hmac.compare_digest call (a spy around the real one)."""
    calls: list[tuple] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return calls


@pytest.fixture
def app(database_url, redis_url):
    app = create_app(Settings(database_url=database_url, redis_url=redis_url, xero_webhook_key=KEY,
                              secret_key="embed-secret-for-tests"))
    yield app
    close_app(app)


@pytest.mark.parametrize("good", [True, False])
def test_the_webhook_signature_is_compared_in_constant_time(app, compared, good):
    body = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"X"}'
    signature = sign(body, KEY) if good else sign(body, KEY + "-wrong")
    response = app.test_client().post("/webhooks/xero", data=body, headers={"x-xero-signature": signature})
    assert response.status_code == (200 if good else 401)
    assert any(signature.encode() in pair for pair in compared)


@pytest.fixture
def ws(app, sessions):
    with transaction(sessions) as s:
        made = workspace(s, "Secrets", "tenant-s")
    return made


@pytest.mark.parametrize("tamper", [False, True])
def test_an_api_key_is_compared_in_constant_time(app, ws, compared, tamper):
    key = ws.read_key[:-1] + ("A" if ws.read_key[-1] != "A" else "B") if tamper else ws.read_key
    response = app.test_client().get("/api/v1/contacts/nobody/invoices", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == (401 if tamper else 404)
    if not tamper:  # a key that matches no hash is never compared with anything: there is nothing to compare
        assert compared, "the key's hash was not compared with compare_digest"


def test_an_embed_token_signature_is_compared_in_constant_time(app, ws, compared):
    client = app.test_client()
    assert client.put("/api/v1/contacts/c-1", json={"email": "c@s.test"},
                      headers={"Authorization": f"Bearer {ws.admin_key}"}).status_code == 200
    token = client.post("/api/v1/embed-tokens", json={"kind": "contacts", "id": "c-1"},
                        headers={"Authorization": f"Bearer {ws.read_key}"}).get_json()["token"]
    compared.clear()
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get("/api/v1/contacts/c-1/summary", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert compared, "the embed token's signature was not compared with compare_digest"
    compared.clear()
    assert client.get("/api/v1/contacts/c-1/summary", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert compared


def test_no_token_reaches_any_log_record(emulator, settings, sessions, tenant, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's and the SDK's included
    token = normalise(emulator.state.user_token([tenant]), time.time())
    now = datetime.now(timezone.utc)
    with transaction(sessions) as s:
        made = workspaces.create_workspace(s, "Logs", now)
        connections.connect(s, TokenBox(settings.token_keys), workspace_id=made.id, tenant_id=tenant, token=token,
                            now=now, grant_type=connections.AUTHORIZATION_CODE)
    jobs.backfill_tenant(tenant)
    mark = last_sequence(emulator)
    customer = emulator.state.create_contact(tenant, "Log Watcher", "watch@logs.test")["ContactID"]
    emulator.state.create_invoice(tenant, customer, "10.00")
    store_events(sessions, announced(emulator, mark))
    with transaction(sessions) as s:  # expire the token: the next sync refreshes it (a new pair)
        sealed = connections.load_token(s, TokenBox(settings.token_keys), tenant)
        connections.save_token(s, TokenBox(settings.token_keys), sealed.connection.id,
                               {**sealed.token, "expires_at": time.time() + 10}, now)
    jobs.sync_tenant(tenant)
    with sessions() as s:
        refreshed = connections.load_token(s, TokenBox(settings.token_keys), tenant).token
    assert refreshed["access_token"] != token["access_token"], "the sync did not refresh the token"
    secrets = {token["access_token"], token["refresh_token"], refreshed["access_token"], refreshed["refresh_token"],
               emulator.client_secret}
    assert caplog.records, "nothing was logged: the check would prove nothing"
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    leaked = [s[:12] + "…" for s in secrets if s and s in logged]
    assert not leaked, f"secrets in the logs: {leaked}"
