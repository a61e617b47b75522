"""The mirror's repository: idempotent upserts that never go back in time.

A row is written only when the incoming `UpdatedDateUTC` is at least the stored one, decided
inside the database (INSERT ... ON CONFLICT DO UPDATE ... WHERE), so two workers racing with
different versions of one invoice always leave the newer. Batches of 1,000 go in one
statement on SQLite and PostgreSQL alike. Voided and deleted invoices and deleted payments
keep their rows, with their status; the views leave them out.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.orm import Session

from store.db import chunks, upsert_insert
from store.models import Allocation, BackfillStatus, Contact, ContactEmail, Invoice, Payment, SyncState

MERGE_HOPS = 5  # a contact merged into one that was merged in turn: follow at most this far


@dataclass(frozen=True)
class Upserted:
    """What a batch changed: ids that were new or strictly newer than the mirror held, and
    ids whose incoming version was at least the held one (so the mirror now holds it)."""

    received: int
    changed: frozenset[str]
    written: frozenset[str] = frozenset()



def _executemany(session: Session, stmt, rows: list[dict]) -> None:
    """One Core executemany on the session's connection. Through the ORM (`session.execute`
    with a mapped class) a list of rows is split into runs of rows with the same non-None
    columns, which is close to one statement a row; every row here has every column."""
    session.connection().execute(stmt, rows)


# The kinds reconciliation sweeps as summaries: their model and id column.
MODEL: dict[str, tuple[type[Any], str]] = {"invoices": (Invoice, "invoice_id"), "contacts": (Contact, "contact_id")}


def changed_between(session: Session, model: type[Any], tenant_id: str, after: datetime, upto: datetime) -> int:
    """How many of the tenant's objects the mirror holds with UpdatedDateUTC in (after, upto]."""
    return session.scalar(
        select(func.count()).select_from(model).where(
            model.tenant_id == tenant_id, model.updated_utc > after, model.updated_utc <= upto
        )
    ) or 0


def stored_versions(
    session: Session, model: type[Any], key: str, tenant_id: str, ids: list[str]
) -> dict[str, datetime]:
    """The UpdatedDateUTC the mirror holds for each of these ids (absent: not held)."""
    column = getattr(model, key)
    found: dict[str, datetime] = {}
    for chunk in chunks(ids):
        rows = session.execute(
            select(column, model.updated_utc).where(model.tenant_id == tenant_id, column.in_(chunk))
        )
        found.update({row[0]: row[1] for row in rows})
    return found


def _latest_per_id(rows: list[dict], key: str) -> list[dict]:
    """One row per id (the newest) so one statement never touches a row twice."""
    latest: dict[str, dict] = {}
    for row in rows:
        held = latest.get(row[key])
        if held is None or row["updated_utc"] >= held["updated_utc"]:
            latest[row[key]] = row
    return [latest[k] for k in sorted(latest)]  # one lock order for every writer: no deadlocks


def _upsert_versioned(
    session: Session, model: type[Any], key: str, tenant_id: str, rows: list[dict], now: datetime
) -> Upserted:
    if not rows:
        return Upserted(0, frozenset())
    rows = _latest_per_id(rows, key)
    stored = stored_versions(session, model, key, tenant_id, [r[key] for r in rows])
    changed = frozenset(
        r[key] for r in rows if r[key] not in stored or stored[r[key]] is None or r["updated_utc"] > stored[r[key]]
    )
    written = frozenset(
        r[key] for r in rows if r[key] not in stored or stored[r[key]] is None or r["updated_utc"] >= stored[r[key]]
    )
    insert = upsert_insert(session, model.__table__)
    columns = [c for c in rows[0] if c not in ("tenant_id", key)] + ["synced_at"]
    table = model.__table__
    stmt = insert.on_conflict_do_update(
        index_elements=["tenant_id", key],
        set_={c: insert.excluded[c] for c in columns},
        where=or_(table.c.updated_utc.is_(None), table.c.updated_utc <= insert.excluded.updated_utc),
    )
    _executemany(session, stmt, [{**r, "synced_at": now} for r in rows])
    return Upserted(len(rows), changed, written)


def upsert_contacts(
    session: Session, tenant_id: str, rows: list[dict], now: datetime, emails: Sequence[dict] = ()
) -> Upserted:
    """Upsert contacts; for those now held at the incoming version, replace the addresses they
    answer to (`emails`: store.models.ContactEmail rows) and move the invoices of any that
    was merged away to its survivor, as Xero does (whether Xero announces those invoices
    is not known, so the mirror does not wait to be told)."""
    result = _upsert_versioned(session, Contact, "contact_id", tenant_id, rows, now)
    written = sorted(result.written)
    for chunk in chunks(written):
        session.execute(
            delete(ContactEmail).where(ContactEmail.tenant_id == tenant_id, ContactEmail.contact_id.in_(chunk))
        )
    fresh = [e for e in emails if e["contact_id"] in result.written]
    if fresh:
        insert = upsert_insert(session, ContactEmail.__table__).on_conflict_do_nothing()
        _executemany(session, insert, fresh)
    merged = {r["contact_id"]: r["merged_to_contact_id"] for r in rows
              if r.get("merged_to_contact_id") and r["contact_id"] in result.written}
    for loser, survivor in sorted(merged.items()):
        _move_invoices(session, tenant_id, loser, survivor)
    return result


def _move_invoices(session: Session, tenant_id: str, loser: str, survivor: str) -> None:
    moved = session.execute(
        select(Invoice.type).where(Invoice.tenant_id == tenant_id, Invoice.contact_id == loser).distinct()
    ).scalars().all()
    if not moved:
        return
    session.execute(
        update(Invoice).where(Invoice.tenant_id == tenant_id, Invoice.contact_id == loser).values(contact_id=survivor)
    )
    if "ACCREC" in moved:
        mark_customers(session, tenant_id, [survivor])


def mark_customers(session: Session, tenant_id: str, contact_ids: Iterable[str]) -> None:
    """Xero makes a contact a customer once it has a sales invoice: so does the mirror,
    whichever path (webhook, reconciliation, backfill, a merge) brought the invoice."""
    for chunk in chunks(sorted(set(contact_ids))):
        session.execute(
            update(Contact)
            .where(Contact.tenant_id == tenant_id, Contact.contact_id.in_(chunk), Contact.is_customer.is_(False))
            .values(is_customer=True)
        )


def survivors(session: Session, tenant_id: str, contact_ids: Iterable[str]) -> dict[str, str]:
    """For each of these contacts that was merged away, the contact it lives on as (the
    end of the chain of MergedToContactID, at most MERGE_HOPS away)."""
    result: dict[str, str] = {}
    pending = {c: c for c in set(contact_ids)}  # original -> current hop
    for _ in range(MERGE_HOPS):
        if not pending:
            break
        hops: dict[str, str] = {}
        for chunk in chunks(sorted(set(pending.values()))):
            hops.update(
                (contact_id, survivor)
                for contact_id, survivor in session.execute(
                    select(Contact.contact_id, Contact.merged_to_contact_id).where(
                        Contact.tenant_id == tenant_id,
                        Contact.contact_id.in_(chunk),
                        Contact.merged_to_contact_id.is_not(None),
                    )
                )
                if survivor is not None  # the query's own condition, said again for the type
            )
        moved = {orig: hops[cur] for orig, cur in pending.items() if cur in hops}
        result.update(moved)
        pending = moved
    return result


def upsert_invoices(session: Session, tenant_id: str, rows: list[dict], now: datetime) -> Upserted:
    """Upsert invoices; `changed` are those now held at a newer version than before. The
    contacts of the sales invoices written are customers from now on."""
    result = _upsert_versioned(session, Invoice, "invoice_id", tenant_id, rows, now)
    sold_to = [
        r["contact_id"]
        for r in rows
        if r.get("type") == "ACCREC" and r.get("contact_id") and r["invoice_id"] in result.written
    ]
    mark_customers(session, tenant_id, sold_to)
    return result


def apply_allocations(
    session: Session, tenant_id: str, invoices: list[dict], allocations: list[dict], now: datetime
) -> None:
    """Replace the credit notes, prepayments and overpayments applied to each invoice whose
    snapshot is the one the mirror now holds (an allocation removed in Xero is gone from the
    invoice's lists, so it goes here too)."""
    if not invoices:
        return
    held = stored_versions(session, Invoice, "invoice_id", tenant_id, [r["invoice_id"] for r in invoices])
    current = sorted({r["invoice_id"] for r in invoices if held.get(r["invoice_id"]) == r["updated_utc"]})
    for chunk in chunks(current):
        session.execute(delete(Allocation).where(Allocation.tenant_id == tenant_id, Allocation.invoice_id.in_(chunk)))
    keep = set(current)
    fresh = {
        (a["invoice_id"], a["kind"], a["document_id"], a["seq"]): a for a in allocations if a["invoice_id"] in keep
    }
    if fresh:
        table = cast(Table, Allocation.__table__)
        session.execute(table.insert(), [{**fresh[k], "synced_at": now} for k in sorted(fresh)])


def refresh_last_settled(session: Session, tenant_id: str, invoice_ids: Iterable[str | None]) -> int:
    """Set each of these invoices' `last_settled_on` to the latest date of its live payments
    and its allocations as the mirror now holds them (None when it has neither). Called by
    every writer of payments or allocations after it wrote; returns how many changed."""
    changed = 0
    for chunk in chunks(sorted({i for i in invoice_ids if i})):
        latest: dict[str, date] = {}
        for model, live in ((Payment, Payment.status != "DELETED"), (Allocation, None)):
            where = [model.tenant_id == tenant_id, model.invoice_id.in_(chunk), model.date.is_not(None)]
            if live is not None:
                where.append(live)
            for invoice_id, day in session.execute(
                select(model.invoice_id, func.max(model.date)).where(*where).group_by(model.invoice_id)
            ):
                if invoice_id is not None and day is not None:
                    latest[invoice_id] = max(day, latest.get(invoice_id, day))
        held = session.execute(
            select(Invoice.invoice_id, Invoice.last_settled_on).where(
                Invoice.tenant_id == tenant_id, Invoice.invoice_id.in_(chunk)
            )
        ).all()
        moved = [
            {"tenant_id": tenant_id, "invoice_id": invoice_id, "last_settled_on": latest.get(invoice_id)}
            for invoice_id, before in held
            if latest.get(invoice_id) != before
        ]
        if moved:
            session.execute(update(Invoice), moved)
            changed += len(moved)
    return changed


def invoices_allocated_from(session: Session, tenant_id: str, document_ids: Iterable[str]) -> set[str]:
    """Invoices the mirror holds as settled (in part) by any of these documents."""
    found: set[str] = set()
    for chunk in chunks(sorted(set(document_ids))):
        found.update(
            session.scalars(
                select(Allocation.invoice_id).where(
                    Allocation.tenant_id == tenant_id, Allocation.document_id.in_(chunk)
                )
            )
        )
    return found


def upsert_payments(session: Session, tenant_id: str, rows: list[dict], now: datetime) -> Upserted:
    """Full payment records (GET /Payments). `changed`: new ones, or a status or amount that moved."""
    if not rows:
        return Upserted(0, frozenset())
    rows = _latest_per_id(rows, "payment_id")
    before = _payment_facts(session, tenant_id, [r["payment_id"] for r in rows])
    changed = frozenset(
        r["payment_id"] for r in rows if before.get(r["payment_id"]) != (r["status"], r["amount"])
    )
    _upsert_versioned(session, Payment, "payment_id", tenant_id, rows, now)
    return Upserted(len(rows), changed)


def _payment_facts(session: Session, tenant_id: str, ids: list[str]) -> dict[str, tuple]:
    found: dict[str, tuple] = {}
    for chunk in chunks(ids):
        rows = session.execute(
            select(Payment.payment_id, Payment.status, Payment.amount).where(
                Payment.tenant_id == tenant_id, Payment.payment_id.in_(chunk)
            )
        )
        found.update({r[0]: (r[1], r[2]) for r in rows})
    return found


def apply_installments(
    session: Session, tenant_id: str, invoices: list[dict], installments: list[dict], now: datetime
) -> None:
    """Reflect the payments invoices list, for invoices whose snapshot is the one the mirror holds.

    Listed payments are inserted if unknown; a known full record (it has an update time) is
    richer than the invoice's abbreviated copy, so it is left as it is. A payment the mirror
    holds as live but the invoice no longer lists was deleted in Xero, unless its own record
    is newer than the invoice snapshot.
    """
    if not invoices:
        return
    held = stored_versions(session, Invoice, "invoice_id", tenant_id, [r["invoice_id"] for r in invoices])
    current = {r["invoice_id"]: r["updated_utc"] for r in invoices if held.get(r["invoice_id"]) == r["updated_utc"]}
    listed = {p["payment_id"]: p for p in installments if p["invoice_id"] in current}
    if listed:
        insert = upsert_insert(session, Payment.__table__)
        refreshed = ("invoice_id", "date", "amount", "currency_rate", "reference", "raw", "synced_at")
        stmt = insert.on_conflict_do_update(
            index_elements=["tenant_id", "payment_id"],
            set_={c: insert.excluded[c] for c in refreshed},
            where=Payment.__table__.c.updated_utc.is_(None),
        )
        _executemany(session, stmt, [{**listed[k], "synced_at": now} for k in sorted(listed)])
    gone = sorted(
        payment_id
        for payment_id, invoice_id, updated in _live_payments_of(session, tenant_id, list(current))
        if payment_id not in listed and (updated is None or updated <= current[invoice_id])
    )
    for chunk in chunks(gone):
        session.execute(
            update(Payment)
            .where(Payment.tenant_id == tenant_id, Payment.payment_id.in_(chunk))
            .values(status="DELETED", synced_at=now)
        )


def _live_payments_of(session: Session, tenant_id: str, invoice_ids: list[str]) -> list[tuple]:
    found: list[tuple] = []
    for chunk in chunks(invoice_ids):
        found.extend(
            session.execute(
                select(Payment.payment_id, Payment.invoice_id, Payment.updated_utc).where(
                    Payment.tenant_id == tenant_id, Payment.invoice_id.in_(chunk), Payment.status != "DELETED"
                )
            ).all()
        )
    return found


def contacts_needing_refresh(session: Session, tenant_id: str, contact_ids: Iterable[str]) -> list[str]:
    """Of these contacts, those the mirror lacks (one it holds is marked a customer locally
    once it has a sales invoice: see mark_customers)."""
    wanted = sorted(set(contact_ids))
    known: set[str] = set()
    for chunk in chunks(wanted):
        known.update(
            session.scalars(
                select(Contact.contact_id).where(Contact.tenant_id == tenant_id, Contact.contact_id.in_(chunk))
            )
        )
    return [c for c in wanted if c not in known]


# --- sync state ----------------------------------------------------------------------


def sync_state(session: Session, tenant_id: str, *, lock: bool = False) -> SyncState:
    """The tenant's SyncState row, created on first use."""
    stmt = select(SyncState).where(SyncState.tenant_id == tenant_id)
    if lock:
        stmt = stmt.with_for_update()
    state = session.scalars(stmt).one_or_none()
    if state is None:
        session.execute(upsert_insert(session, SyncState).on_conflict_do_nothing(index_elements=["tenant_id"]), [
            {"tenant_id": tenant_id, "backfill_status": BackfillStatus.PENDING, "backfill_page": 0,
             "backfill_fetched": 0, "unannounced_changes": 0}
        ])
        state = session.scalars(stmt).one()
    return state


def counts(session: Session, tenant_id: str) -> dict[str, int]:
    """How many contacts, invoices and payments the mirror holds for a tenant."""
    return {
        name: session.scalar(select(func.count()).select_from(model).where(model.tenant_id == tenant_id)) or 0
        for name, model in (("contacts", Contact), ("invoices", Invoice), ("payments", Payment))
    }


def request_backfill(session: Session, tenant_id: str) -> None:
    """Ask for a (new) full load: the tenant's next backfill job starts from the first page."""
    state = sync_state(session, tenant_id, lock=True)
    state.backfill_status = BackfillStatus.PENDING
    state.backfill_phase = None
    state.backfill_page = 0
    state.backfill_fetched = 0
