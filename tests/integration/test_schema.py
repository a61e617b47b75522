from datetime import datetime, timezone
from decimal import Decimal

from alembic import command
from sqlalchemy import func, select

from store.db import transaction
from store.migrate import alembic_config
from store.models import ApiKey, Invoice
from store.workspaces import authenticate, create_workspace, issue_key

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


def test_migrations_match_the_models(database_url):
    command.check(alembic_config(database_url))  # raises if the models drifted from the migrations


def _invoice(n: int, total: str) -> Invoice:
    return Invoice(
        tenant_id="t1", invoice_id=f"i{n}", type="ACCREC", status="AUTHORISED", currency_code="USD",
        total=Decimal(total), amount_due=Decimal(total), amount_paid=Decimal(0), amount_credited=Decimal(0),
        updated_utc=NOW, raw={}, synced_at=NOW,
    )


def test_money_sums_are_exact_in_sql(sessions):
    with transaction(sessions) as s:
        s.add_all([_invoice(n, "0.10") for n in range(10)] + [_invoice(99, "0.20")])
    with sessions() as s:
        total = s.execute(select(func.sum(Invoice.total).cast(Invoice.total.type)).where(Invoice.tenant_id == "t1"))
        assert total.scalar_one() == Decimal("1.20")


def test_api_keys_are_stored_hashed_and_authenticate(sessions):
    with transaction(sessions) as s:
        ws = create_workspace(s, "Acme", NOW)
        key = issue_key(s, ws.id, "read", NOW)
    with sessions() as s:
        caller = authenticate(s, key)
        assert caller.workspace_id == ws.id and caller.scope == "read" and not caller.is_admin
        assert authenticate(s, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert authenticate(s, None) is None
        stored = s.execute(select(ApiKey.key_hash, ApiKey.prefix)).all()
        assert stored and all(key not in h and key != p for h, p in stored)
