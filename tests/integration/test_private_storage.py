"""What the mirror keeps on disk (issue 19): SQLite files owner-only (0600), WAL and shared
memory included; raw Xero payloads stored without bank account details or tax numbers."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from infra.settings import Settings
from store import db as store_db
from store.db import transaction
from store.migrate import upgrade
from store.models import Contact, Invoice, Payment
from worker import sync
from wsgi import close_app, create_app

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
T = "tenant-private"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022): what SQLite would create world-readable without us."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def files_of(path: Path) -> list[Path]:
    return [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]


def test_a_new_database_and_its_wal_and_shm_are_owner_only(tmp_path, open_umask):
    path = tmp_path / "new.db"
    engine = store_db.make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        connection = engine.connect()  # held open: the WAL and shared memory stay
        try:
            assert all(p.exists() for p in files_of(path)), list(tmp_path.iterdir())
            assert {p.name: mode(p) for p in files_of(path)} == {p.name: 0o600 for p in files_of(path)}
        finally:
            connection.close()
    finally:
        engine.dispose()


def test_files_left_world_readable_are_narrowed(tmp_path, open_umask):
    path = tmp_path / "old.db"
    engine = store_db.make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = engine.connect()
    for p in files_of(path):
        os.chmod(p, 0o644)
    other = store_db.make_engine(f"sqlite:///{path}")
    try:
        assert {p.name: mode(p) for p in files_of(path)} == {p.name: 0o600 for p in files_of(path)}
    finally:
        holder.close()
        engine.dispose()
        other.dispose()


def test_migrations_and_the_app_create_owner_only_files(tmp_path, open_umask):
    migrated = tmp_path / "migrated.db"
    upgrade(f"sqlite:///{migrated}")
    assert mode(migrated) == 0o600
    fresh = tmp_path / "app.db"
    app = create_app(Settings(database_url=f"sqlite:///{fresh}"))
    try:
        app.test_client().get("/healthz")
        assert fresh.exists() and all(mode(p) == 0o600 for p in files_of(fresh) if p.exists())
    finally:
        close_app(app)


def test_an_in_memory_database_and_a_missing_directory_are_left_to_sqlite(tmp_path):
    engine = store_db.make_engine("sqlite://")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
    store_db.make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}").dispose()  # no error until used
    assert not (tmp_path / "no-such-dir").exists()


# --- raw payloads ------------------------------------------------------------------------------

BANK = "12-3456-7890123-00"
TAX = "GB 123 4567 89"
PRIVATE = {
    "BankAccountDetails": BANK,
    "TaxNumber": TAX,
    "BatchPayments": {"BankAccountNumber": BANK, "BankAccountName": "Ann Ltd", "Details": "inv",
                      "Code": "c", "Reference": "r"},
}


def contact_json() -> dict:
    return {"ContactID": "c-ann", "Name": "Ann Ltd", "EmailAddress": "ann@example.com", "IsCustomer": True,
            "ContactStatus": "ACTIVE", "UpdatedDateUTC": "/Date(1764000000000+0000)/", **PRIVATE,
            "Addresses": [{"AddressType": "POBOX", "City": "Wellington"}]}


def invoice_json() -> dict:
    return {"InvoiceID": "i-1", "InvoiceNumber": "INV-1", "Type": "ACCREC", "Status": "AUTHORISED",
            "Contact": {**contact_json()}, "Date": "/Date(1764000000000+0000)/", "CurrencyCode": "NZD",
            "Total": 100, "AmountDue": 60, "AmountPaid": 40, "AmountCredited": 0,
            "UpdatedDateUTC": "/Date(1764000000000+0000)/",
            "Payments": [{"PaymentID": "p-1", "Date": "/Date(1764000000000+0000)/", "Amount": 40,
                          "BatchPayment": {"BatchPaymentID": "b-1", "BankAccountNumber": BANK}}],
            "CreditNotes": [], "Prepayments": [], "Overpayments": []}


def payment_json() -> dict:
    return {"PaymentID": "p-2", "Date": "/Date(1764000000000+0000)/", "Amount": 10, "Status": "AUTHORISED",
            "UpdatedDateUTC": "/Date(1764000000000+0000)/",
            "Invoice": {"InvoiceID": "i-1", "Contact": contact_json()}}


def test_stored_raw_payloads_keep_no_bank_details_or_tax_numbers(sessions):
    with transaction(sessions) as s:
        sync.STORE["contacts"](s, T, [contact_json()], NOW)
        sync.STORE["invoices"](s, T, [invoice_json()], NOW)
        sync.STORE["payments"](s, T, [payment_json()], NOW)
    with sessions() as s:
        contact = s.scalars(select(Contact.raw)).one()
        invoice = s.scalars(select(Invoice.raw)).one()
        payments = list(s.scalars(select(Payment.raw)))
    stored = repr([contact, invoice, payments])
    for secret in (BANK, TAX, "BankAccountDetails", "TaxNumber", "BatchPayments", "BankAccountNumber",
                   "BankAccountName"):
        assert secret not in stored, secret
    # everything else is kept as Xero sent it
    assert contact["Addresses"] == [{"AddressType": "POBOX", "City": "Wellington"}]
    assert contact["Name"] == "Ann Ltd" and invoice["Contact"]["Name"] == "Ann Ltd"
    assert {p["PaymentID"] for p in payments} == {"p-1", "p-2"}
    assert {"BatchPaymentID": "b-1"} in [p.get("BatchPayment") for p in payments]


