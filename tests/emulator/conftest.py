"""Fixtures for the emulator's tests: one seeded emulator per session, the SDK pointed at it.

Tenant 0 (`read_tenant`) is never mutated, so counts seeded there stay exact; mutating
tests use tenant 1 or 2 (`write_tenant`, `other_tenant`).
"""

from __future__ import annotations

import json

import pytest
from xero_python.api_client.oauth2 import TokenApi

from emulator.config import FaultSettings, Limits
from emulator.testing import run_emulator

from .http import bearer, call
from .sdk import Sdk, sdk_token

SEED = 11
INVOICES_PER_TENANT = 2500


@pytest.fixture(scope="session")
def xero():
    with run_emulator(
        seed=SEED,
        tenants=3,
        contacts=80,
        invoices=INVOICES_PER_TENANT,
        webhook_batch_seconds=0.05,
        webhook_retry_window=3.0,
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_limits_and_faults(xero):
    """Each test starts with Xero's default limits (none per tenant), empty rate windows and no faults."""
    state = xero.state
    state.set_limits(**vars(Limits()))
    state.clear_tenant_limits()
    state.reset_rate_limits()
    state.faults.configure(**vars(FaultSettings()))
    yield
    state.faults.configure(**vars(FaultSettings()))
    state.clear_tenant_limits()


@pytest.fixture
def read_tenant(xero) -> str:
    return xero.state.tenant_ids[0]


@pytest.fixture
def write_tenant(xero) -> str:
    return xero.state.tenant_ids[1]


@pytest.fixture
def other_tenant(xero) -> str:
    return xero.state.tenant_ids[2]


@pytest.fixture
def token_urls(xero, monkeypatch):
    """The SDK's token endpoints are class attributes: point them at the emulator."""
    monkeypatch.setattr(TokenApi, "refresh_token_url", f"{xero.identity_url}/connect/token")
    monkeypatch.setattr(TokenApi, "revoke_token_url", f"{xero.identity_url}/connect/revocation")
    monkeypatch.setattr(TokenApi, "client_credentials_token_url", f"{xero.identity_url}/connect/token")


@pytest.fixture
def sdk(xero, token_urls) -> Sdk:
    """The SDK with a custom-connection token (connected to every tenant)."""
    return Sdk(xero, sdk_token(xero.state.client_credentials_token()))


@pytest.fixture
def customer(xero, write_tenant) -> str:
    """A fresh customer contact in the write tenant."""
    return xero.state.create_contact(write_tenant, "Fixture Customer", "fixture@example.com")["ContactID"]


@pytest.fixture
def get(xero, read_tenant):
    """GET a path of the Accounting API as a client-credentials app; the JSON of its 200."""
    token = xero.state.client_credentials_token()["access_token"]

    def fetch(path: str, tenant: str = read_tenant):
        reply = call("GET", f"{xero.api_url}{path}", headers=bearer(token, tenant))
        assert reply.status == 200, reply.body[:300]
        return json.loads(reply.body)

    return fetch
