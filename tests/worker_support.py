"""Fixtures and helpers for the worker's tests: a seeded emulator over loopback, settings that
point every part at it and at the test database and Redis, a connected tenant, and inbox
events made from what the emulator announced.

The fixtures reach every test module through `pytest_plugins` in tests/conftest.py; import
only the helpers (`from tests.worker_support import announced, ...`).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from emulator.testing import RunningEmulator, run_emulator
from infra.settings import Settings
from store import connections, inbox, workspaces
from store.db import transaction
from store.models import Allocation, Contact, ContactEmail, Invoice, Payment
from store.secrets import TokenBox, new_key
from worker.bootstrap import WorkerRuntime
from xero import translate
from xero.client import XeroClient
from xero.tokens import normalise

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
FAST = {  # the worker's knobs, shortened so tests wait seconds, not minutes
    "RETRY_BASE_SECONDS": "0.2",
    "RETRY_MAX_SECONDS": "1",
    "BUSY_RETRY_SECONDS": "0.2",
    "RELAY_SECONDS": "0.5",
    "RECONCILE_SECONDS": "3600",
    "WORKER_LEASE_SECONDS": "10",
    "WORKER_MAINTENANCE_SECONDS": "5",
}


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with run_emulator(seed=21, tenants=2, contacts=12, invoices=40, webhook_batch_seconds=0.05) as running:
        yield running


@pytest.fixture
def token_keys() -> str:
    return new_key()


@pytest.fixture
def worker_env(emulator, database_url, redis_url, token_keys) -> dict[str, str]:
    """The environment a worker process gets: emulator URLs, the test database and Redis."""
    return {
        **emulator.env(),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TOKEN_KEYS": token_keys,
        **FAST,
    }


@pytest.fixture
def settings(worker_env, monkeypatch) -> Settings:
    """Settings for in-process jobs; os.environ carries the same, as `Settings.from_env()` reads it."""
    for name, value in worker_env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env(worker_env)


@pytest.fixture
def runtime(settings, worker_env) -> Iterator[WorkerRuntime]:
    with WorkerRuntime(settings) as rt:
        yield rt


@pytest.fixture
def tenant(emulator) -> str:
    return emulator.state.tenant_ids[0]


@pytest.fixture
def connected(settings, sessions, tenant) -> str:
    """The tenant, connected to a workspace with the client-credentials grant (as the CLI does)."""
    connect_client_credentials(settings, sessions, tenant)
    return tenant


def connect_client_credentials(settings: Settings, sessions: sessionmaker[Session], tenant_id: str) -> int:
    client = XeroClient(settings)
    requested = time.time()
    token = normalise(client.client_credentials_token(), requested)
    organisation = client.organisation(tenant_id, token["access_token"])  # as the CLI's connect reads it
    with transaction(sessions) as session:
        ws = workspaces.create_workspace(session, f"ws-{tenant_id[:8]}", NOW)
        record = connections.connect(
            session, TokenBox(settings.token_keys), workspace_id=ws.id, tenant_id=tenant_id, token=token, now=NOW
        )
        connections.note_organisation(session, record.id, organisation, datetime.now(timezone.utc))
        return record.id


# --- inbox events, as intake stores them ---------------------------------------------------


@dataclass(frozen=True)
class Announced:
    """A Xero event in the shape store.inbox.store takes (webhook.payload.Event has the same)."""

    tenant_id: str
    category: str
    event_type: str
    resource_id: str
    event_date_utc: datetime
    tenant_type: str = "ORGANISATION"
    data: dict | None = None
    replay: int = 0  # a replayed delivery with a new identity (a different dedupe key)

    @property
    def dedupe_key(self) -> str:
        import hashlib

        parts = (self.tenant_id, self.category, self.resource_id, self.event_type,
                 self.event_date_utc.isoformat(), str(self.replay))
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def announced(emulator: RunningEmulator, since_sequence: int = 0) -> list[Announced]:
    """Everything the emulator has announced (its webhook events) after a sequence number."""
    events = []
    for e in emulator.state.webhook_events():
        if e["sequence"] <= since_sequence:
            continue
        when = datetime.fromisoformat(e["eventDateUtc"]).replace(tzinfo=timezone.utc)
        events.append(
            Announced(e["tenantId"], e["eventCategory"], e["eventType"], e["resourceId"], when, data=e.get("data"))
        )
    return events


def last_sequence(emulator: RunningEmulator) -> int:
    events = emulator.state.webhook_events()
    return events[-1]["sequence"] if events else 0


def store_events(sessions: sessionmaker[Session], events: list[Announced], now: datetime | None = None) -> None:
    with transaction(sessions) as session:
        inbox.store(session, events, now or datetime.now(timezone.utc))


# --- comparing the mirror with the emulator's truth --------------------------------------


def mirror_rows(sessions: sessionmaker[Session], tenant_id: str) -> dict[str, dict[str, Any]]:
    with sessions() as session:
        def rows(model):
            return session.scalars(select(model).where(model.tenant_id == tenant_id))

        return {
            "contacts": {c.contact_id: c for c in rows(Contact)},
            "invoices": {i.invoice_id: i for i in rows(Invoice)},
            "payments": {p.payment_id: p for p in rows(Payment)},
        }


INVOICE_FIELDS = ("invoice_number", "type", "status", "contact_id", "date", "due_date", "currency_code",
                  "currency_rate", "total", "amount_due", "amount_paid", "amount_credited", "reference",
                  "fully_paid_on", "updated_utc")
CONTACT_FIELDS = ("name", "email", "email_lower", "is_customer", "is_supplier", "contact_status", "updated_utc")


def assert_invoice_matches(row: Invoice, truth: dict) -> None:
    """Field by field: the mirror row against the emulator's own JSON of the invoice."""
    expected = translate.invoice_row(row.tenant_id, truth)
    for name in INVOICE_FIELDS:
        assert getattr(row, name) == expected[name], f"{name}: mirror {getattr(row, name)!r} != Xero {expected[name]!r}"
    assert row.raw["InvoiceID"] == truth["InvoiceID"]
    assert isinstance(row.total, Decimal)


def assert_contact_matches(row: Contact, truth: dict) -> None:
    expected = translate.contact_row(row.tenant_id, truth)
    for name in CONTACT_FIELDS:
        assert getattr(row, name) == expected[name], f"{name}: mirror {getattr(row, name)!r} != Xero {expected[name]!r}"


def live_installments(sessions: sessionmaker[Session], tenant_id: str, invoice_id: str) -> dict[str, Decimal]:
    with sessions() as session:
        rows = session.scalars(
            select(Payment).where(Payment.tenant_id == tenant_id, Payment.invoice_id == invoice_id,
                                  Payment.status != "DELETED")
        )
        return {p.payment_id: p.amount for p in rows}


def truth_installments(truth_invoice: dict) -> dict[str, Decimal]:
    return {p["PaymentID"]: Decimal(str(p["Amount"])) for p in truth_invoice.get("Payments", [])}


def assert_mirror_equals_emulator(sessions: sessionmaker[Session], emulator: RunningEmulator, tenant_id: str) -> None:
    """Every contact, invoice and payment the emulator holds is in the mirror, as it holds it."""
    truth = emulator.state.snapshot(tenant_id)
    held = mirror_rows(sessions, tenant_id)
    assert set(held["invoices"]) == {i["InvoiceID"] for i in truth["Invoices"]}
    assert set(held["contacts"]) == {c["ContactID"] for c in truth["Contacts"]}
    for invoice in truth["Invoices"]:
        assert_invoice_matches(held["invoices"][invoice["InvoiceID"]], invoice)
    for contact in truth["Contacts"]:
        assert_contact_matches(held["contacts"][contact["ContactID"]], contact)
    for payment in truth["Payments"]:
        row = held["payments"].get(payment["PaymentID"])
        if payment["Status"] == "DELETED" and (row is None or row.status == "DELETED"):
            continue  # a payment deleted before the mirror saw it need not be held at all
        assert row is not None, f"payment {payment['PaymentID']} is not in the mirror"
        assert (row.status, row.amount, row.invoice_id) == (
            payment["Status"], Decimal(str(payment["Amount"])), payment["Invoice"]["InvoiceID"]
        )
    assert held_allocations(sessions, tenant_id) == truth_allocations(tenant_id, truth)
    assert held_person_emails(sessions, tenant_id) == truth_person_emails(tenant_id, truth)
    # each invoice's last settlement, kept by the writers, is its live payments' and allocations' latest
    settled: dict[str, Any] = {}
    dated = [(p["invoice_id"], p["date"]) for p in (translate.payment_row(tenant_id, raw) for raw in truth["Payments"])
             if p["status"] != "DELETED"]
    dated += [(a[0], a[4]) for a in truth_allocations(tenant_id, truth)]
    for invoice_id, day in dated:
        if day is not None:
            settled[invoice_id] = max(day, settled.get(invoice_id, day))
    for invoice_id, row in held["invoices"].items():
        assert row.last_settled_on == settled.get(invoice_id), f"{invoice_id}: last_settled_on {row.last_settled_on}"


def held_allocations(sessions: sessionmaker[Session], tenant_id: str) -> set[tuple]:
    with sessions() as session:
        return {
            (a.invoice_id, a.kind, a.document_id, a.seq, a.date, a.amount)
            for a in session.scalars(select(Allocation).where(Allocation.tenant_id == tenant_id))
        }


def truth_allocations(tenant_id: str, truth: dict) -> set[tuple]:
    return {
        (a["invoice_id"], a["kind"], a["document_id"], a["seq"], a["date"], a["amount"])
        for invoice in truth["Invoices"]
        for a in translate.allocation_rows(tenant_id, invoice)
    }


def held_person_emails(sessions: sessionmaker[Session], tenant_id: str) -> set[tuple]:
    with sessions() as session:
        return {
            (e.contact_id, e.email_lower)
            for e in session.scalars(select(ContactEmail).where(ContactEmail.tenant_id == tenant_id))
        }


def truth_person_emails(tenant_id: str, truth: dict) -> set[tuple]:
    return {
        (e["contact_id"], e["email_lower"])
        for contact in truth["Contacts"]
        for e in translate.contact_email_rows(tenant_id, contact)
    }


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())
