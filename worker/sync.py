"""Sync orchestration: drain a tenant's inbox, reconcile by If-Modified-Since, backfill.

Every function here takes a `TenantApi` (Xero through the governor and the token keeper) and
a sessionmaker, fetches, and writes through `store.mirror`. Transient Xero errors pass
through: the job layer (`worker.jobs`) decides whether they mean wait, retry or stop. A
permanent one while draining (Xero refuses the request, or sends an object we cannot read)
settles the events concerned as `failed`, with the reason. Progress is committed as it is
made, so a job stopped half-way loses nothing it finished.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session, sessionmaker

from store import backlog, connections, mirror
from store.db import transaction
from store.models import BackfillStatus, EventState
from worker import organisation
from worker.gateway import TenantApi
from worker.prefetch import Ahead
from xero import translate
from xero.client import XeroNotFound, XeroPage, XeroRequestError, credit_notes_where, is_xero_id

log = logging.getLogger(__name__)
PERMANENT = (XeroRequestError, XeroNotFound, translate.TranslationError)  # a list call's 404: the gateway refused it

IDS_PER_CALL = 50  # Xero's gateway refuses longer query strings (about 52 GUIDs)
CREDIT_NOTES_PER_CALL = 10  # ids in one `where` of ORs: about 40 characters each, well inside the gateway's limit
SWEEP_ABOVE = IDS_PER_CALL  # more dirty ids than one call takes: one If-Modified-Since page is cheaper
PAGE_SIZE = 1000
OVERLAP = timedelta(minutes=5)  # clocks and Xero's own indexing are not exact
SETTLE = timedelta(minutes=5)  # a change this recent may not be visible to a list yet: read it again


class Phase(StrEnum):
    """A kind of object the mirror holds: a backfill phase, a reconciliation sweep (stored as its
    value in sync_state.backfill_phase)."""

    CONTACTS = "contacts"
    INVOICES = "invoices"
    PAYMENTS = "payments"  # reconciliation only; a backfill begun by an older release may be in it


STABLE_ORDER = {Phase.CONTACTS: "ContactID ASC", Phase.INVOICES: "InvoiceID ASC", Phase.PAYMENTS: "PaymentID ASC"}
SWEEP_ORDER = "UpdatedDateUTC ASC"
PHASES = (Phase.CONTACTS, Phase.INVOICES, Phase.PAYMENTS)
# The backfill loads contacts and invoices only: each invoice lists its live payments, so a
# payments phase would download every one of them a second time. Reconciliation's payments
# sweep (from the backfill's start) then brings each payment's full record as it changes.
BACKFILL_PHASES = (Phase.CONTACTS, Phase.INVOICES)
# A call by IDs: invoices un-paged (Xero leaves line items out of un-paged lists and the
# mirror reads none; if it sends them anyway, only bytes differ), contacts paged (Xero
# returns MergedToContactID only on paged calls).
BY_IDS_PAGE: dict[str, int | None] = {"invoices": None, "contacts": 1}
# Reconciliation sweeps these kinds as summaries (summaryOnly: ids and UpdatedDateUTC are all
# it reads of them) and fetches in full only what the mirror does not hold at that version.
# Payments have no summaryOnly; a payment record is small.
SUMMARY_SWEEP = ("contacts", "invoices")

Heartbeat = Callable[[], None]


def _nothing() -> None:
    pass


@dataclass
class DrainResult:
    events: int = 0
    invoices: int = 0
    contacts: int = 0
    swept: bool = False
    ignored: int = 0
    current: int = 0  # events the mirror already reflected: settled without a call


@dataclass
class ReconcileResult:
    skipped: str | None = None
    fetched: dict[str, int] = field(default_factory=dict)
    unannounced: int = 0


@dataclass
class BackfillResult:
    done: bool
    phase: str | None
    page: int
    fetched: int


# --- writing what Xero sent -----------------------------------------------------------


def _store_invoices(session: Session, tenant_id: str, items: list[dict], now: datetime) -> mirror.Upserted:
    rows = [translate.invoice_row(tenant_id, raw) for raw in items]
    installments = [p for raw in items for p in translate.installment_rows(tenant_id, raw)]
    allocations = [a for raw in items for a in translate.allocation_rows(tenant_id, raw)]
    result = mirror.upsert_invoices(session, tenant_id, rows, now)
    # An answer that leaves an array out (Xero's summaries may) says nothing about what it
    # lists: only invoices that carry the arrays replace their installments and allocations.
    listing = [row for row, raw in zip(rows, items) if "Payments" in raw]
    mirror.apply_installments(session, tenant_id, listing, installments, now)
    crediting = [row for row, raw in zip(rows, items) if all(k in raw for k, _, _ in translate.ALLOCATION_ARRAYS)]
    mirror.apply_allocations(session, tenant_id, crediting, allocations, now)
    # every invoice written, not only those listing their arrays: payments stored before their
    # invoice (GET /Payments came first) count from the moment the invoice row exists
    mirror.refresh_last_settled(session, tenant_id, [row["invoice_id"] for row in rows])
    return result


def _store_contacts(session: Session, tenant_id: str, items: list[dict], now: datetime) -> mirror.Upserted:
    rows = [translate.contact_row(tenant_id, raw) for raw in items]
    emails = [e for raw in items for e in translate.contact_email_rows(tenant_id, raw)]
    return mirror.upsert_contacts(session, tenant_id, rows, now, emails)


def _store_payments(session: Session, tenant_id: str, items: list[dict], now: datetime) -> mirror.Upserted:
    rows = [translate.payment_row(tenant_id, raw) for raw in items]
    result = mirror.upsert_payments(session, tenant_id, rows, now)
    mirror.refresh_last_settled(session, tenant_id, [row.get("invoice_id") for row in rows])
    return result


STORE = {"contacts": _store_contacts, "invoices": _store_invoices, "payments": _store_payments}
ID_KEY = {"contacts": "ContactID", "invoices": "InvoiceID", "payments": "PaymentID"}


def _fetch(api: TenantApi, kind: str, **params) -> XeroPage:
    return getattr(api, kind)(**params)


def _by_ids(api: TenantApi, kind: str, ids: list[str]) -> XeroPage:
    """Up to IDS_PER_CALL objects by id, in the form BY_IDS_PAGE says."""
    return _fetch(api, kind, ids=ids, page=BY_IDS_PAGE[kind])


def _sweep(
    api: TenantApi, kind: str, since: datetime, heartbeat: Heartbeat, page_size: int = PAGE_SIZE,
    summary: bool = False,
) -> Iterator[XeroPage]:
    """Every object changed after `since`, a page of 1,000 at a time, oldest change first
    (as summaries when `summary`)."""
    page = 1
    extra = {"summary_only": True} if summary else {}
    while True:
        result = _fetch(api, kind, modified_since=since, page=page, page_size=page_size, order=SWEEP_ORDER, **extra)
        yield result
        heartbeat()
        if len(result.items) < page_size:
            return
        page += 1


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- drain: what the webhooks announced --------------------------------------------------


def drain(
    tenant_id: str,
    *,
    api: TenantApi,
    sessions: sessionmaker[Session],
    now: datetime,
    heartbeat: Heartbeat = _nothing,
) -> DrainResult:
    """Sync what the tenant's outstanding inbox events name, then settle those events.

    An event whose object the mirror already holds at least as new is settled with no call
    (a burst's later deliveries, after one sweep fetched the whole burst). The rest: invoices
    by IDs when one call of 50 takes them all, else by one If-Modified-Since sweep from the
    earliest event minus an overlap; contacts likewise. A credit-note event costs the credit
    note (by `where`, Xero documents no IDs there) and the invoices it was applied to, and
    nothing at all for a supplier's or a draft credit note.
    An event is settled only once its object is stored; events that arrive meanwhile are
    left for the follow-up job their own wake queued.
    """
    with sessions() as session:
        events = backlog.outstanding(session, tenant_id)
        connection = connections.find(session, tenant_id)
    result = DrainResult(events=len(events))
    if not events:
        _record_success(sessions, tenant_id, now)
        return result
    if connection is None or connection.status == connections.DISCONNECTED:
        with transaction(sessions) as session:
            result.ignored = backlog.settle(session, [e.id for e in events], EventState.IGNORED, now,
                                           "no live Xero connection")
        return result

    with transaction(sessions) as session:
        backlog.count_attempt(session, [e.id for e in events])
        unused = [e.id for e in events if e.category not in ("INVOICE", "CONTACT", "CREDITNOTE")]
        result.ignored = backlog.settle(session, unused, EventState.IGNORED, now, None)
        current = {e.id for e in backlog.already_current(session, tenant_id, events)}
        result.current = backlog.settle(session, current, EventState.DONE, now, None)
    by_category: dict[str, list[backlog.Event]] = {}
    for event in events:
        if event.id not in current:
            by_category.setdefault(event.category, []).append(event)

    run = _Drain(tenant_id, api, sessions, now, result, heartbeat)
    invoices = by_category.get("INVOICE", [])
    credited = run.credit_notes(by_category.get("CREDITNOTE", []))
    wanted = {e.resource_id for e in invoices} | credited
    big_burst = len(wanted) > SWEEP_ABOVE
    run.sync("invoices", invoices, sweep=invoices if big_burst else [], extra=sorted(credited))
    run.settle(run.credit_note_events)
    contacts = by_category.get("CONTACT", [])
    big_burst = len({e.resource_id for e in contacts}) > SWEEP_ABOVE
    # a new sale makes a contact a customer, and Xero may not announce that: fetch (two calls
    # at most) the customers the mirror lacks; reconciliation and the backfill bring any others
    extra = sorted(run.customers - {e.resource_id for e in contacts})[: 2 * IDS_PER_CALL]
    run.sync("contacts", contacts, sweep=contacts if big_burst else [], extra=extra)
    if run.survivors:  # contacts merged into one the mirror does not hold yet
        run.sync("contacts", [], sweep=[], extra=sorted(run.survivors)[: IDS_PER_CALL])
    _record_success(sessions, tenant_id, now)
    return result


@dataclass
class _Drain:
    tenant_id: str
    api: TenantApi
    sessions: sessionmaker[Session]
    now: datetime
    result: DrainResult
    heartbeat: Heartbeat
    customers: set[str] = field(default_factory=set)
    credit_note_events: list[int] = field(default_factory=list)  # settled once their invoices are stored
    survivors: set[str] = field(default_factory=set)
    changed: dict[str, set[str]] = field(default_factory=dict)  # per kind, ids stored at a newer version

    def credit_notes(self, events: list[backlog.Event]) -> set[str]:
        """The customer invoices these CREDITNOTE events may have changed: those the credit
        notes' allocations name and those the mirror holds as settled by them. A supplier
        credit note (ACCPAYCREDIT), or one that cannot have been applied yet (DRAFT,
        SUBMITTED, DELETED), costs no call: the event's `data` says so."""
        idle = [e.id for e in events if not _may_settle_invoices(e.data)]
        self.settle(idle)
        live = [e for e in events if _may_settle_invoices(e.data)]
        ids = list(dict.fromkeys(e.resource_id for e in live))
        failed = {i for i in ids if not is_xero_id(i)}
        for bad in sorted(failed):
            self.fail([e.id for e in live if e.resource_id == bad], f"not a Xero id: {bad!r}")
        invoices: set[str] = set()
        for chunk in _chunks([i for i in ids if i not in failed], CREDIT_NOTES_PER_CALL):
            try:
                # un-paged (at most CREDIT_NOTES_PER_CALL answers): Xero leaves the line items out
                page = _fetch(self.api, "credit_notes", where=credit_notes_where(chunk), page=None)
            except PERMANENT as exc:
                failed.update(chunk)
                self.fail([e.id for e in live if e.resource_id in chunk], exc)
                continue
            for note in page.items:
                if note.get("Type") == "ACCRECCREDIT":
                    invoices.update(
                        str(a["Invoice"]["InvoiceID"]).lower()
                        for a in note.get("Allocations") or []
                        if (a.get("Invoice") or {}).get("InvoiceID")
                    )
            self.heartbeat()
        with self.sessions() as session:
            # a removed allocation no longer names its invoice: the mirror remembers it
            invoices |= mirror.invoices_allocated_from(session, self.tenant_id, ids)
        self.credit_note_events = [e.id for e in live if e.resource_id not in failed]
        return invoices

    def sync(
        self, kind: str, events: list[backlog.Event], sweep: list[backlog.Event], extra: Sequence[str] = ()
    ) -> None:
        """Fetch what `events` name (and `extra` ids), store it, settle the events."""
        seen: set[str] = set()
        if sweep:
            self.result.swept = True
            since, covers = self.sweep_start(kind, min(e.event_date_utc for e in sweep) - OVERLAP, len(sweep))
            last: XeroPage | None = None
            before = set(self.changed.get(kind, ()))
            try:
                for last in _sweep(self.api, kind, since, self.heartbeat):
                    seen |= self.store(kind, last.items)
            except PERMANENT as exc:
                self.fail([e.id for e in sweep], exc)
            else:
                if covers and last is not None:
                    found = self.changed.get(kind, set()) - before
                    self.advance_mark(kind, last, found - {e.resource_id for e in events} - set(extra))
                named = {e.id for e in events}  # the rest (credit notes) asked for the sweep itself
                self.settle([e.id for e in events if e.resource_id in seen]
                            + [e.id for e in sweep if e.id not in named])
        wanted = [i for i in dict.fromkeys([e.resource_id for e in events] + list(extra)) if i not in seen]
        for chunk in _chunks(wanted, IDS_PER_CALL):
            self.by_ids(kind, chunk, [e for e in events if e.resource_id in chunk])
            self.heartbeat()

    def sweep_start(self, kind: str, since: datetime, burst: int) -> tuple[datetime, bool]:
        """Where a burst's sweep starts, and whether it covers reconciliation's mark.

        From the mark itself when that costs little more (the mirror holds at most a quarter
        as many changes between the mark and the burst as the burst has): the sweep then does
        the next reconciliation's work for that span, the mark moves past the burst, and no
        later sweep lists the burst again."""
        with self.sessions() as session:
            mark = getattr(mirror.sync_state(session, self.tenant_id), HWM[kind])
            if mark is None:
                return since, False
            if mark >= since:
                return since, True
            model, _ = mirror.MODEL[kind]
            between = mirror.changed_between(session, model, self.tenant_id, mark, since)
        return (mark, True) if between * 4 <= burst else (since, False)

    def advance_mark(self, kind: str, last: XeroPage, unnamed: set[str]) -> None:
        """After a complete sweep from reconciliation's mark: move the mark as reconciliation
        would, counting the changes no webhook announced."""
        with transaction(self.sessions) as session:
            unannounced = unnamed - backlog.awaiting_sync(session, self.tenant_id, CATEGORY[kind], unnamed)
            state = mirror.sync_state(session, self.tenant_id, lock=True)
            _advance_mark(state, kind, last, last=True)
            if unannounced:
                state.unannounced_changes = (state.unannounced_changes or 0) + len(unannounced)
                state.unannounced_at = self.now

    def by_ids(self, kind: str, ids: list[str], events: list[backlog.Event]) -> None:
        """One call for up to 50 ids; any id it leaves out (or all, if Xero refuses the call)
        is asked for alone, so one bad id cannot sink the others."""
        seen: set[str] = set()
        try:
            seen |= self.store(kind, _by_ids(self.api, kind, ids).items)
        except PERMANENT as exc:
            log.warning("%s by IDs refused (%s); asking one by one", kind, exc)
        failed: set[str] = set()
        for missing in [i for i in ids if i not in seen]:
            try:
                seen |= self.store(kind, _one(self.api, kind, missing))
            except PERMANENT as exc:
                failed.add(missing)
                self.fail([e.id for e in events if e.resource_id == missing], exc)
        absent = {i for i in ids if i not in seen and i not in failed}
        for resource_id in absent:
            self.fail([e.id for e in events if e.resource_id == resource_id], f"Xero has no such {kind[:-1]}")
        self.settle([e.id for e in events if e.resource_id in seen])

    def store(self, kind: str, items: list[dict]) -> set[str]:
        with transaction(self.sessions) as session:
            written = STORE[kind](session, self.tenant_id, items, self.now)
            self.changed.setdefault(kind, set()).update(written.changed)
            if kind == "invoices":
                self.customers.update(_sales_contacts_missing(session, self.tenant_id, items, written.changed))
            if kind == "contacts":
                merged_into = {m for raw in items if (m := translate.merged_to(raw)) is not None}
                self.survivors.update(mirror.contacts_needing_refresh(session, self.tenant_id, merged_into))
        setattr(self.result, kind, getattr(self.result, kind) + len(items))
        return {str(raw.get(ID_KEY[kind], "")).lower() for raw in items}

    def settle(self, event_ids: list[int]) -> None:
        _settle(self.sessions, event_ids, self.now)

    def fail(self, event_ids: list[int], reason: Exception | str) -> None:
        """Xero refused the request or sent an object we cannot read: retrying would fail the
        same way, so the events are settled `failed` with the reason, for a person to see."""
        if not event_ids:
            return
        text = f"{type(reason).__name__}: {reason}" if isinstance(reason, Exception) else reason
        log.warning("%d events failed: %s", len(event_ids), text)
        with transaction(self.sessions) as session:
            backlog.settle(session, event_ids, EventState.FAILED, self.now, text[:1000])


def _may_settle_invoices(data: dict | None) -> bool:
    """Whether a CREDITNOTE event's credit note can settle a customer's invoice."""
    if not data:
        return True  # nothing said: look
    kind, status = str(data.get("Type") or "").upper(), str(data.get("Status") or "").upper()
    return kind != "ACCPAYCREDIT" and status not in ("DRAFT", "SUBMITTED", "DELETED")


def _one(api: TenantApi, kind: str, resource_id: str) -> list[dict]:
    """One object by id ([] when Xero has none); lists may leave deleted ones out."""
    try:
        return getattr(api, kind[:-1])(**{f"{kind[:-1]}_id": resource_id}).items
    except XeroNotFound:
        return []


def _settle(sessions: sessionmaker[Session], event_ids: list[int], now: datetime) -> None:
    if event_ids:
        with transaction(sessions) as session:
            backlog.settle(session, event_ids, EventState.DONE, now)


def _record_success(sessions: sessionmaker[Session], tenant_id: str, now: datetime) -> None:
    with transaction(sessions) as session:
        state = mirror.sync_state(session, tenant_id)
        state.last_sync_at = now
        state.last_success_at = now
        state.last_error = None


def record_failure(sessions: sessionmaker[Session], tenant_id: str, now: datetime, error: str) -> None:
    with transaction(sessions) as session:
        state = mirror.sync_state(session, tenant_id)
        state.last_sync_at = now
        state.last_error = error[:1000]


# --- reconcile: what no webhook told us ----------------------------------------------------


HWM = {"contacts": "contacts_hwm", "invoices": "invoices_hwm", "payments": "payments_hwm"}
SWEPT = {"contacts": "contacts_swept_at", "invoices": "invoices_swept_at", "payments": "payments_swept_at"}
CATEGORY = {"contacts": "CONTACT", "invoices": "INVOICE"}


def reconcile(
    tenant_id: str,
    *,
    api: TenantApi,
    sessions: sessionmaker[Session],
    now: datetime,
    heartbeat: Heartbeat = _nothing,
    page_size: int = PAGE_SIZE,
    kinds: tuple[str, ...] = PHASES,
) -> ReconcileResult:
    """Sweep the `kinds` (default all) changed since each high-water mark and count the
    changes the mirror had not heard of from any webhook.

    The mark is exclusive (If-Modified-Since asks for what changed after it), so an idle
    sweep returns nothing. It is Xero's own clock (the answer's DateTimeUTC) less SETTLE
    once a sweep completes: a change stamped in the last minutes before the answer may not be
    visible yet (Xero's indexing), so those few minutes are read again by the next sweep and
    nothing older is; without a server time the mark stays at the newest change seen."""
    with sessions() as session:
        state = mirror.sync_state(session, tenant_id)
        status, marks = state.backfill_status, {kind: getattr(state, HWM[kind]) for kind in PHASES}
    if status != BackfillStatus.DONE:
        return ReconcileResult(skipped=f"backfill is {status}")
    organisation.refresh_if_stale(api, sessions, tenant_id, now)  # its time zone: at most once a day
    result = ReconcileResult()
    missing: set[str] = set()  # customers whose first sale came in a sweep: the mirror lacks them
    for kind in (k for k in PHASES if k in kinds):
        since = marks[kind] or now - SETTLE
        result.fetched[kind] = 0
        summary = kind in SUMMARY_SWEEP
        for page in _sweep(api, kind, since, heartbeat, page_size, summary=summary):
            items = _lacking(api, sessions, tenant_id, kind, page.items, heartbeat) if summary else page.items
            with transaction(sessions) as session:
                written = STORE[kind](session, tenant_id, items, now)
                unannounced = set(written.changed)
                if kind in CATEGORY:
                    unannounced -= backlog.awaiting_sync(session, tenant_id, CATEGORY[kind], unannounced)
                state = mirror.sync_state(session, tenant_id, lock=True)
                _advance_mark(state, kind, page, last=len(page.items) < page_size)
                state.unannounced_changes = (state.unannounced_changes or 0) + len(unannounced)
                if unannounced:
                    state.unannounced_at = now
                if len(page.items) < page_size:
                    setattr(state, SWEPT[kind], now)
                if kind == "invoices":
                    missing.update(_sales_contacts_missing(session, tenant_id, items))
            result.fetched[kind] += len(items)
            result.unannounced += len(unannounced)
    for chunk in list(_chunks(sorted(missing), IDS_PER_CALL))[:2]:
        with transaction(sessions) as session:
            STORE["contacts"](session, tenant_id, _by_ids(api, "contacts", chunk).items, now)
        heartbeat()
    _record_success(sessions, tenant_id, now)
    return result


def _lacking(
    api: TenantApi, sessions: sessionmaker[Session], tenant_id: str, kind: str, summaries: list[dict],
    heartbeat: Heartbeat,
) -> list[dict]:
    """The full objects of the summaries the mirror does not hold at their version, by IDs.

    An object a webhook announced and the drain has not fetched yet is left to the drain (its
    event is never lost); one the mirror holds at this version or newer costs nothing."""
    stamps: dict[str, datetime] = {}
    for raw in summaries:
        object_id, updated = str(raw.get(ID_KEY[kind]) or "").lower(), translate.ms_datetime(raw.get("UpdatedDateUTC"))
        if object_id and updated is not None:
            stamps[object_id] = max(updated, stamps.get(object_id, updated))
    model, key = mirror.MODEL[kind]
    with sessions() as session:
        held = mirror.stored_versions(session, model, key, tenant_id, sorted(stamps))
        wanted = [i for i in sorted(stamps) if held.get(i) is None or held[i] < stamps[i]]
        wanted = sorted(set(wanted) - backlog.awaiting_sync(session, tenant_id, CATEGORY[kind], wanted))
    items: list[dict] = []
    for chunk in _chunks(wanted, IDS_PER_CALL):
        found = _by_ids(api, kind, chunk).items
        got = {str(raw.get(ID_KEY[kind]) or "").lower() for raw in found}
        for absent in (i for i in chunk if i not in got):  # a list may leave some out: ask for each
            found = found + _one(api, kind, absent)
        items.extend(found)
        heartbeat()
    return items


def _advance_mark(state, kind: str, page: XeroPage, last: bool) -> None:
    """Move the kind's mark forward (never back): to the newest change of the page, capped at
    Xero's clock less SETTLE; to that cap itself once the sweep is complete."""
    stamps = [translate.ms_datetime(raw.get("UpdatedDateUTC")) for raw in page.items]
    newest = max((s for s in stamps if s is not None), default=None)
    cap = page.server_time - SETTLE if page.server_time is not None else newest
    candidates = [m for m in (newest, cap) if m is not None]
    if not candidates:
        return
    mark = cap if last and cap is not None else min(candidates)
    held = getattr(state, HWM[kind])
    if held is None or mark > held:
        setattr(state, HWM[kind], mark)


def _sales_contacts_missing(
    session: Session, tenant_id: str, items: list[dict], only: frozenset[str] | None = None
) -> list[str]:
    """Contacts of these sales invoices (of those in `only`, when given) the mirror lacks."""
    contacts = {
        str((raw.get("Contact") or {}).get("ContactID") or "").lower()
        for raw in items
        if raw.get("Type") == "ACCREC" and (only is None or str(raw.get("InvoiceID", "")).lower() in only)
    }
    return mirror.contacts_needing_refresh(session, tenant_id, contacts - {""})


# --- backfill: everything, resumably ------------------------------------------------------


def next_page(phase: Phase, page_no: int, count: int, page_size: int) -> tuple[Phase, int] | None:
    """Pure: where a backfill goes once the page after `page_no` (the pages of `phase` done)
    brought `count` objects: the next page of the phase while pages come full, else the first
    of the next phase; None when the last phase has ended."""
    if count >= page_size:
        return phase, page_no + 1
    index = BACKFILL_PHASES.index(phase)
    return (BACKFILL_PHASES[index + 1], 0) if index + 1 < len(BACKFILL_PHASES) else None


def start_backfill(sessions: sessionmaker[Session], tenant_id: str) -> None:
    """Ask for a (new) full load: the next backfill job starts from the first page."""
    with transaction(sessions) as session:
        mirror.request_backfill(session, tenant_id)


def _finish_backfill(state, now: datetime) -> None:
    state.backfill_status, state.backfill_phase = BackfillStatus.DONE, None
    state.last_success_at = now
    # the marks hold from the backfill's start: the first sweeps are due a period on
    state.contacts_swept_at = state.invoices_swept_at = state.payments_swept_at = now


def backfill(
    tenant_id: str,
    *,
    api: TenantApi,
    sessions: sessionmaker[Session],
    now: datetime,
    deadline: float | None = None,
    clock: Callable[[], float] | None = None,
    heartbeat: Heartbeat = _nothing,
    page_size: int = PAGE_SIZE,
) -> BackfillResult:
    """Load every contact and invoice at pageSize 1000, in a stable order (the invoices'
    own lists bring their payments and allocations: see BACKFILL_PHASES).

    Each page is written in one transaction with the progress (phase, page, fetched), so a
    worker killed at any moment resumes from the page after the last one it finished. The
    high-water marks are Xero's clock when the backfill began: reconciliation then catches
    whatever changed while it ran. `deadline` (a `clock()` value) ends a slice early so other
    queues get served; the caller queues the continuation.
    """
    with transaction(sessions) as session:
        state = mirror.sync_state(session, tenant_id, lock=True)
        if state.backfill_status == BackfillStatus.DONE:
            return BackfillResult(True, None, state.backfill_page, state.backfill_fetched)
        if state.backfill_status == BackfillStatus.RUNNING and state.backfill_phase == Phase.PAYMENTS:
            # begun by a release that had a payments phase: the invoices brought their payments
            _finish_backfill(state, now)
            return BackfillResult(True, None, state.backfill_page, state.backfill_fetched)
        if state.backfill_status != BackfillStatus.RUNNING or state.backfill_phase not in BACKFILL_PHASES:
            state.backfill_status, state.backfill_phase = BackfillStatus.RUNNING, BACKFILL_PHASES[0]
            state.backfill_page, state.backfill_fetched = 0, 0
            state.contacts_hwm = state.invoices_hwm = state.payments_hwm = None
        phase, page_no = Phase(state.backfill_phase), state.backfill_page

    # Page N+1 is fetched in a background thread while page N is stored. Every Xero call of
    # the backfill is made from that one thread (the SDK client is not thread-safe), one
    # page ahead at most; a fetched page not stored (the slice ended, an error) is fetched
    # again by the next job, which starts from the progress committed with the last page.
    def pages(phase: Phase, page_no: int) -> Iterator[tuple[Phase, int, XeroPage]]:
        while True:
            page = _fetch(api, phase, page=page_no + 1, page_size=page_size, order=STABLE_ORDER[phase])
            yield phase, page_no, page
            after = next_page(phase, page_no, len(page.items), page_size)
            if after is None:
                return
            phase, page_no = after

    spent = 0.0  # clock time the last page took to store: fetch no page this slice would drop

    def more() -> bool:
        return deadline is None or clock is None or clock() + spent < deadline

    with Ahead(pages(phase, page_no), more=more, name=f"backfill-{tenant_id}") as ahead:
        for page_phase, page_after, page in ahead:
            if (page_phase, page_after) != (phase, page_no):
                raise RuntimeError(f"prefetched {page_phase} {page_after + 1}, expected {phase} {page_no + 1}")
            began = clock() if clock is not None else 0.0
            with transaction(sessions) as session:
                STORE[phase](session, tenant_id, page.items, now)
                state = mirror.sync_state(session, tenant_id, lock=True)
                if state.backfill_phase != phase or state.backfill_page != page_no:
                    raise RuntimeError("another backfill of this tenant moved on: stopping this one")
                if state.contacts_hwm is None:
                    started = page.server_time or now
                    state.contacts_hwm = state.invoices_hwm = state.payments_hwm = started
                state.backfill_fetched += len(page.items)
                after = next_page(phase, page_no, len(page.items), page_size)
                if after is None:
                    state.backfill_page = page_no + 1
                    _finish_backfill(state, now)
                    return BackfillResult(True, None, page_no + 1, state.backfill_fetched)
                phase, page_no = state.backfill_phase, state.backfill_page = after
                fetched = state.backfill_fetched
            heartbeat()
            if deadline is not None and clock is not None:
                at = clock()
                spent = at - began
                if at >= deadline:
                    return BackfillResult(False, phase, page_no, fetched)
    raise RuntimeError("the pages ended before the last phase did")  # the last phase ends on a short page
