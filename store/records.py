"""The CRM records repository: contacts, accounts and deals, what links each to Xero, and pins.

A PUT replaces the record and its links in full. Links are record_links rows, each with
the reason it exists, so a wrong match can be explained and overridden:

- reason "email" (xero_contact_id NULL, tenant_id "*"): a standing rule, "this record
  matches Xero contacts by its email". It is resolved at query time by joining
  contacts.email_lower (the main EmailAddress, index ix_contacts_email) and contact_emails
  (its ContactPersons' addresses, index ix_contact_emails_email) in whichever tenant is
  live, so a Xero contact that appears later with the same address (in any capitalisation)
  is seen without re-linking, and nobody (the worker included) has to re-evaluate links
  when contacts change. The link says which address matched and whether it is the main one
  or a contact person's.
- A link to a contact that was merged away follows MergedToContactID to the survivor.
- reason "explicit" with xero_contact_id: linked to that Xero contact of the live tenant.
- reason "explicit" with invoice_id: linked to that one invoice.

Explicit links are the CRM's data: removing the organisation (store.lifecycle.purge) keeps
them, and they work again when the same organisation is connected again. While another is
connected they lead nowhere and `explicit_links` says so (their target is not found);
email matches are derived, recomputed against whichever organisation is live.

Overriding: `xero_contact_ids`, when given, replaces email matching unless `match_email`
is also set to true. So `{"xero_contact_ids": ["<right id>"]}` swaps a wrong email match
for the right contact, and `{"xero_contact_ids": []}` (or `"match_email": false`) unlinks
everything. Explicit links name tenant rows, so they need a live Xero connection
(`NotConnected` otherwise); the email rule does not.

What a record sees: a contact, its own links; an account, its own links plus those of
its contacts (CRM contacts whose account_id is the account's id); a deal, its explicit
links. Every record also sees the invoices pinned to it (that is how a deal collects
invoices). Of linked Xero contacts only customers (`is_customer`) have invoices listed;
an invoice linked or pinned one by one is listed whatever its contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import cast

from sqlalchemy import CursorResult, Integer, String, bindparam, delete, literal, null, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from infra.errors import NotFound
from store import mirror
from store.models import Contact, ContactEmail, CrmRecord, Invoice, Pin, RecordLink

KINDS = {"contacts": "contact", "accounts": "account", "deals": "deal"}
ANY_TENANT = "*"


class NotConnected(NotFound):
    """Explicit links were asked for, but the workspace has no live Xero connection."""


@dataclass(frozen=True)
class RecordInput:
    """What the CRM says about a record (see the module docstring for the defaults)."""

    name: str | None = None
    email: str | None = None
    account_id: str | None = None
    xero_contact_ids: tuple[str, ...] | None = None
    invoice_ids: tuple[str, ...] = ()
    match_email: bool | None = None

    @property
    def matches_email(self) -> bool:
        if self.match_email is not None:
            return self.match_email
        return self.xero_contact_ids is None


@dataclass(frozen=True)
class Record:
    id: int
    workspace_id: int
    kind: str  # contact | account | deal
    external_id: str
    name: str | None
    email: str | None
    account_id: str | None


@dataclass(frozen=True)
class Link:
    """A Xero contact a record sees, why, and through which CRM contact (for accounts)."""

    xero_contact_id: str
    reason: str  # email | explicit
    via_contact_id: str | None
    name: str | None
    email: str | None
    is_customer: bool | None  # None: not (yet) in the mirror
    matched_email: str | None = None  # reason email: the address that matched
    matched_by: str | None = None  # reason email: "main" (EmailAddress) or "contact_person"
    person_name: str | None = None  # matched_by contact_person: whose address it is
    merged_from: str | None = None  # the link named this contact, merged into xero_contact_id


@dataclass(frozen=True)
class Scope:
    """Which of a tenant's invoices a record sees."""

    tenant_id: str
    record_id: int
    contact_ids: tuple[str, ...]  # customers whose every invoice is seen
    invoice_ids: tuple[str, ...]  # invoices linked or pinned one by one
    pinned_ids: frozenset[str]

    @property
    def is_empty(self) -> bool:
        return not self.contact_ids and not self.invoice_ids


@dataclass(frozen=True)
class Resolved:
    scope: Scope
    links: tuple[Link, ...]


@dataclass(frozen=True)
class Stored:
    """A record's own settings as stored, for echoing back."""

    match_email: bool
    xero_contact_ids: tuple[str, ...]
    invoice_ids: tuple[str, ...]


def normalise_email(email: str | None) -> str | None:
    """Emails match case-insensitively; the worker lower-cases contacts.email_lower alike."""
    email = (email or "").strip().lower()
    return email or None


def find(session: Session, workspace_id: int, kind: str, external_id: str) -> Record | None:
    row = session.execute(_FIND, {"workspace": workspace_id, "kind": kind, "external_id": external_id}).one_or_none()
    return Record(*row) if row is not None else None


_FIND = select(  # built once: every read asks it; Record's fields in order
    CrmRecord.id,
    CrmRecord.workspace_id,
    CrmRecord.kind,
    CrmRecord.external_id,
    CrmRecord.name,
    CrmRecord.email_lower,
    CrmRecord.account_external_id,
).where(
    CrmRecord.workspace_id == bindparam("workspace"),
    CrmRecord.kind == bindparam("kind"),
    CrmRecord.external_id == bindparam("external_id"),
)


def upsert(
    session: Session,
    workspace_id: int,
    kind: str,
    external_id: str,
    data: RecordInput,
    tenant_id: str | None,
    now: datetime,
) -> Record:
    """Create or replace a record and all its links, in the caller's transaction."""
    explicit = tuple(dict.fromkeys(data.xero_contact_ids or ()))
    invoices = tuple(dict.fromkeys(data.invoice_ids))
    if (explicit or invoices) and tenant_id is None:
        raise NotConnected("the workspace has no live Xero connection to link to")
    email_lower = normalise_email(data.email)
    values = {
        "workspace_id": workspace_id,
        "kind": kind,
        "external_id": external_id,
        "name": data.name,
        "email_lower": email_lower,
        "account_external_id": data.account_id,
        "updated_at": now,
    }
    insert = _insert(session)(CrmRecord).values(**values)
    # The upsert takes the row lock, so two PUTs of one record replace its links in turn.
    record_id = session.execute(
        insert.on_conflict_do_update(
            index_elements=["workspace_id", "kind", "external_id"],
            set_={
                k: insert.excluded[k] for k in ("name", "email_lower", "account_external_id", "updated_at")
            },
        ).returning(CrmRecord.id)
    ).scalar_one()
    session.execute(delete(RecordLink).where(RecordLink.record_id == record_id))

    def link(reason: str, tenant: str, contact: str | None = None, invoice: str | None = None) -> RecordLink:
        return RecordLink(
            workspace_id=workspace_id,
            record_id=record_id,
            tenant_id=tenant,
            xero_contact_id=contact,
            invoice_id=invoice,
            reason=reason,
            created_at=now,
        )

    rows = [link("email", ANY_TENANT)] if kind != "deal" and data.matches_email else []
    if tenant_id is not None:  # else there are no explicit links (NotConnected above)
        rows += [link("explicit", tenant_id, contact=c) for c in explicit]
        rows += [link("explicit", tenant_id, invoice=i) for i in invoices]
    session.add_all(rows)
    session.flush()
    return Record(record_id, workspace_id, kind, external_id, data.name, email_lower, data.account_id)


def stored(session: Session, record: Record) -> Stored:
    rows = session.execute(
        select(RecordLink.reason, RecordLink.xero_contact_id, RecordLink.invoice_id)
        .where(RecordLink.record_id == record.id)
        .order_by(RecordLink.id)
    ).all()
    return Stored(
        match_email=any(r.reason == "email" for r in rows),
        xero_contact_ids=tuple(
            r.xero_contact_id for r in rows if r.reason == "explicit" and r.xero_contact_id
        ),
        invoice_ids=tuple(r.invoice_id for r in rows if r.reason == "explicit" and r.invoice_id),
    )


@dataclass(frozen=True)
class Explicit:
    """One explicit link the record holds (to a Xero contact or to one invoice), with the
    organisation it was made in and whether its target is in the live organisation's mirror."""

    xero_contact_id: str | None
    invoice_id: str | None
    tenant_id: str
    found: bool


def explicit_links(session: Session, record: Record, tenant_id: str | None) -> tuple[Explicit, ...]:
    """The record's own explicit links, those made while another organisation was connected
    included (a remove keeps them), each saying whether its target is in the mirror of the
    live organisation (`tenant_id`; None: none is connected, nothing is found)."""
    rows = session.execute(
        select(RecordLink.tenant_id, RecordLink.xero_contact_id, RecordLink.invoice_id)
        .where(RecordLink.record_id == record.id, RecordLink.reason == "explicit")
        .order_by(RecordLink.id)
    ).all()
    here = [r for r in rows if tenant_id is not None and r.tenant_id == tenant_id]
    contacts = _existing(session, Contact.contact_id, Contact.tenant_id, tenant_id,
                         {r.xero_contact_id for r in here if r.xero_contact_id})
    invoices = _existing(session, Invoice.invoice_id, Invoice.tenant_id, tenant_id,
                         {r.invoice_id for r in here if r.invoice_id})
    return tuple(
        Explicit(r.xero_contact_id, r.invoice_id, r.tenant_id,
                 r.tenant_id == tenant_id and (r.xero_contact_id in contacts or r.invoice_id in invoices))
        for r in rows
    )


def _existing(session: Session, column, tenant_column, tenant_id: str | None, ids: set[str]) -> set[str]:
    """Which of `ids` the live organisation's mirror holds in `column`."""
    if tenant_id is None or not ids:
        return set()
    return set(session.scalars(select(column).where(tenant_column == tenant_id, column.in_(sorted(ids)))))


def resolve(session: Session, record: Record, tenant_id: str) -> Resolved:
    """What the record sees in the live tenant: the invoices to list (as a Scope) and every
    Xero contact it is linked to, with the reason (customers or not: a link is explained
    even when it brings no invoices). One UNION query, after the account's contacts; a link
    to a contact merged away follows MergedToContactID to the survivor (one more query)."""
    family = _family(session, record)
    values = {"tenant": tenant_id, "pins_of": record.id, **{f"record_{i}": r for i, r in enumerate(family)}}
    rows = session.execute(_links_query(len(family)), values).all()
    invoices = {r.invoice_id for r in rows if r.invoice_id is not None}
    pinned = frozenset(r.invoice_id for r in rows if r.reason == "pin")
    linked = [r for r in rows if r.xero_contact_id is not None]
    merged = [r.xero_contact_id for r in linked if r.merged_to]
    moved = mirror.survivors(session, tenant_id, merged) if merged else {}
    found: dict[tuple, Link] = {}
    contacts: set[str] = set()
    survivors = _contacts(session, tenant_id, set(moved.values()))
    for r in linked:
        if r.is_customer:
            contacts.add(r.xero_contact_id)  # any invoice still filed under it
        survivor = moved.get(r.xero_contact_id)
        facts = survivors.get(survivor) if survivor else (r.name, r.email, r.is_customer)
        name, email, is_customer = facts or (None, None, None)
        contact_id = survivor or r.xero_contact_id
        if is_customer:
            contacts.add(contact_id)
        key = (r.record_id, contact_id, r.reason)
        if key in found:
            continue
        found[key] = Link(
            contact_id,
            r.reason,
            family[r.record_id] if r.record_id != record.id else None,
            name,
            email,
            is_customer,
            matched_email=r.matched_email,
            matched_by={"main": "main", "person": "contact_person"}.get(r.source or ""),
            person_name=r.person_name,
            merged_from=r.xero_contact_id if survivor else None,
        )
    return Resolved(
        Scope(tenant_id, record.id, tuple(sorted(contacts)), tuple(sorted(invoices)), pinned), tuple(found.values())
    )


def _contacts(session: Session, tenant_id: str, ids: set[str]) -> dict[str, tuple]:
    if not ids:
        return {}
    rows = session.execute(
        select(Contact.contact_id, Contact.name, Contact.email, Contact.is_customer).where(
            Contact.tenant_id == tenant_id, Contact.contact_id.in_(sorted(ids))
        )
    ).all()
    return {r.contact_id: (r.name, r.email, r.is_customer) for r in rows}


def shows(session: Session, record: Record, tenant_id: str, invoice_id: str) -> bool:
    """Whether the record's invoice list in the live tenant can hold this invoice: linked or
    pinned one by one, or filed under a customer the record sees (its Scope)."""
    scope = resolve(session, record, tenant_id).scope
    if invoice_id in scope.invoice_ids:
        return True
    contact_id = session.execute(
        select(Invoice.contact_id).where(Invoice.tenant_id == tenant_id, Invoice.invoice_id == invoice_id)
    ).scalar_one_or_none()
    return contact_id is not None and contact_id in scope.contact_ids


def pin(session: Session, record: Record, tenant_id: str | None, invoice_id: str, now: datetime, *,
        anywhere: bool) -> bool:
    """Pin an invoice of the live tenant to the record; False when there is no such invoice
    within reach: with `anywhere` (an admin key) any invoice of the tenant, else only one the
    record already shows, so a pin never widens what a record reaches."""
    if tenant_id is None or not _invoice_exists(session, tenant_id, invoice_id):
        return False
    if not anywhere and not shows(session, record, tenant_id, invoice_id):
        return False
    session.execute(
        _insert(session)(Pin)
        .values(
            workspace_id=record.workspace_id,
            record_id=record.id,
            tenant_id=tenant_id,
            invoice_id=invoice_id,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["record_id", "invoice_id"])
    )
    return True


def unpin(session: Session, record: Record, tenant_id: str | None, invoice_id: str, *,
          anywhere: bool) -> bool:
    """Unpin; False when the invoice is neither pinned here nor within reach (as for `pin`):
    the same False for an invoice out of reach whether it exists or not."""
    removed = cast(CursorResult, session.execute(delete(Pin).where(Pin.record_id == record.id,
                                                                    Pin.invoice_id == invoice_id)))
    if removed.rowcount:
        return True
    if tenant_id is None or not _invoice_exists(session, tenant_id, invoice_id):
        return False
    return anywhere or shows(session, record, tenant_id, invoice_id)


# --- helpers ---------------------------------------------------------------------------


def _record(row: CrmRecord) -> Record:
    return Record(
        row.id,
        row.workspace_id,
        row.kind,
        row.external_id,
        row.name,
        row.email_lower,
        row.account_external_id,
    )


def _family(session: Session, record: Record) -> dict[int, str]:
    """The records whose links this one sees: itself, and an account's contacts."""
    if record.kind != "account":
        return {record.id: record.external_id}
    rows = session.execute(
        select(CrmRecord.id, CrmRecord.external_id).where(
            CrmRecord.workspace_id == record.workspace_id,
            CrmRecord.account_external_id == record.external_id,
            CrmRecord.kind == "contact",
        )
    ).all()
    return {record.id: record.external_id, **{r.id: r.external_id for r in rows}}


@lru_cache(maxsize=64)
def _links_query(family_size: int):
    """One UNION ALL: explicit links, email matches resolved now (the contact's main address
    or any of its contact persons'), and the record's pins. Built once per size of family
    (building it cost more than running it), its values bound: `tenant`, `pins_of` (the
    record's id) and `record_0`… (the family's ids)."""
    tenant_id, pins_of = bindparam("tenant", type_=String), bindparam("pins_of", type_=Integer)
    ids = [bindparam(f"record_{i}", type_=Integer) for i in range(family_size)]
    explicit = (
        select(
            RecordLink.record_id,
            RecordLink.xero_contact_id,
            RecordLink.invoice_id,
            RecordLink.reason,
            Contact.name,
            Contact.email,
            Contact.is_customer,
            null().label("matched_email"),
            null().label("source"),
            null().label("person_name"),
            Contact.merged_to_contact_id.label("merged_to"),
        )
        .outerjoin(
            Contact,
            (Contact.tenant_id == RecordLink.tenant_id) & (Contact.contact_id == RecordLink.xero_contact_id),
        )
        .where(
            RecordLink.record_id.in_(ids), RecordLink.reason == "explicit", RecordLink.tenant_id == tenant_id
        )
    )
    by_email = (
        select(
            CrmRecord.id,
            Contact.contact_id,
            null(),
            literal("email"),
            Contact.name,
            Contact.email,
            Contact.is_customer,
            Contact.email_lower,
            literal("main"),
            null(),
            Contact.merged_to_contact_id,
        )
        .join(RecordLink, (RecordLink.record_id == CrmRecord.id) & (RecordLink.reason == "email"))
        .join(Contact, (Contact.tenant_id == tenant_id) & (Contact.email_lower == CrmRecord.email_lower))
        .where(CrmRecord.id.in_(ids))
    )
    by_person = (
        select(
            CrmRecord.id,
            Contact.contact_id,
            null(),
            literal("email"),
            Contact.name,
            Contact.email,
            Contact.is_customer,
            ContactEmail.email_lower,
            literal("person"),
            ContactEmail.person_name,
            Contact.merged_to_contact_id,
        )
        .join(RecordLink, (RecordLink.record_id == CrmRecord.id) & (RecordLink.reason == "email"))
        .join(
            ContactEmail,
            (ContactEmail.tenant_id == tenant_id) & (ContactEmail.email_lower == CrmRecord.email_lower),
        )
        .join(Contact, (Contact.tenant_id == tenant_id) & (Contact.contact_id == ContactEmail.contact_id))
        .where(CrmRecord.id.in_(ids))
    )
    pins = select(
        Pin.record_id, null(), Pin.invoice_id, literal("pin"), null(), null(), null(), null(), null(), null(), null()
    ).where(Pin.record_id == pins_of, Pin.tenant_id == tenant_id)
    # main addresses sort before contact persons', so a contact matched both ways says "main"
    return union_all(explicit, by_email, by_person, pins).order_by("record_id", "reason", "xero_contact_id", "source")


def _invoice_exists(session: Session, tenant_id: str, invoice_id: str) -> bool:
    found = session.execute(
        select(Invoice.invoice_id).where(Invoice.tenant_id == tenant_id, Invoice.invoice_id == invoice_id)
    ).first()
    return found is not None


def _insert(session: Session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
