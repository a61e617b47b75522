"""The emulator's whole state and the Python face of its control API.

`EmulatorState` owns the seeded organisations (`books`), the identity service (`oauth`),
rate limits (`limits`), faults (`faults`), call counts (`calls`) and the webhook sender
(`webhooks`). Its mutation methods change the books as a Xero user would, move
UpdatedDateUTC and publish webhook events; all of them return Xero JSON (dicts).
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import date, timedelta
from decimal import Decimal

from . import ledger, xero_json
from .books import NotFound, TenantBooks
from .calls import CallLog
from .clock import Clock
from .config import EmulatorConfig
from .faults import Faults
from .oauth import AuthServer
from .ratelimit import RateLimiter
from .records import Allocation, Contact, ContactPerson, Credit, Invoice, LineItem, Payment
from .seed import seed_books
from .signing import Signer
from .timezones import TIMEZONES
from .webhooks import WebhookSender

DEFAULT_USER_SCOPE = (
    "openid profile email offline_access accounting.transactions.read "
    "accounting.contacts.read accounting.settings.read"
)
__all__ = ["EmulatorState", "LedgerError", "NotFound"]
LedgerError = ledger.LedgerError


class EmulatorState:
    """In-memory Xero: organisations, identity, limits, faults, call counts and webhooks."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        seed = self.config.seed
        self.clock = Clock()
        self.lock = threading.RLock()
        seeded = seed_books(
            seed,
            self.config.tenants,
            self.config.contacts,
            self.config.invoices,
            self.clock.now(),
            self.config.merge_moves_invoices_updated,
        )
        self.books: dict[str, TenantBooks] = {b.tenant_id: b for b in seeded}
        if self.config.timezone is not None:
            for books in self.books.values():
                books.org.timezone = _known_timezone(self.config.timezone)
        self.merge_moves_invoices_updated = bool(self.config.merge_moves_invoices_updated)
        self.unpaged_line_items = bool(self.config.unpaged_line_items)
        self._ids = random.Random(f"{seed}:new-records")
        self.base_url: str | None = None
        self.signer = Signer()
        self.oauth = AuthServer(
            self.config, self.clock, self.signer, self.tenant_names, random.Random(f"{seed}:identity")
        )
        self.limits = RateLimiter(self.clock, self.config.limits)
        fault_seed = self.config.fault_seed if self.config.fault_seed is not None else seed
        self.faults = Faults(self.config.faults, fault_seed)
        self.calls = CallLog()
        self.webhooks = WebhookSender(
            self.config.webhook_key,
            self.config.webhook_url,
            self.faults,
            random.Random(f"{seed}:webhooks"),
            batch_seconds=self.config.webhook_batch_seconds,
            max_batch=self.config.webhook_max_batch,
            retry_window=self.config.webhook_retry_window,
            timeout=self.config.webhook_timeout,
        )
        self.webhooks.start()

    # -- organisations --------------------------------------------------------------------
    @property
    def tenant_ids(self) -> list[str]:
        return list(self.books)

    def tenant_names(self) -> dict[str, str]:
        return {tid: b.org.name for tid, b in self.books.items()}

    def tenant(self, tenant_id: str) -> TenantBooks:
        books = self.books.get(str(tenant_id).lower())
        if books is None:
            raise NotFound(f"Tenant {tenant_id} not found")
        return books

    def tenants(self) -> list[dict]:
        with self.lock:
            return [
                {
                    "tenant_id": b.tenant_id,
                    "name": b.org.name,
                    "short_code": b.org.short_code,
                    "base_currency": b.org.base_currency,
                    "contacts": len(b.contacts),
                    "invoices": len(b.invoices),
                    "payments": len(b.payments),
                    "credit_notes": len(b.credit_notes),
                    "prepayments": len(b.prepayments),
                    "overpayments": len(b.overpayments),
                    "timezone": b.org.timezone,
                }
                for b in self.books.values()
            ]

    @property
    def api_url(self) -> str:
        return f"{(self.base_url or 'https://api.xero.com').rstrip('/')}/api.xro/2.0"

    # -- reads (Xero JSON) ----------------------------------------------------------------
    def invoice(self, tenant_id: str, invoice_id: str) -> dict:
        with self.lock:
            books = self.tenant(tenant_id)
            return xero_json.invoice_json(books.invoice(invoice_id), books, detail=True)

    def contact(self, tenant_id: str, contact_id: str) -> dict:
        with self.lock:
            return xero_json.contact_json(self.tenant(tenant_id).contact(contact_id), detail=True)

    def credit_note(self, tenant_id: str, credit_note_id: str) -> dict:
        return self._credit_read(tenant_id, "CreditNote", credit_note_id)

    def prepayment(self, tenant_id: str, prepayment_id: str) -> dict:
        return self._credit_read(tenant_id, "Prepayment", prepayment_id)

    def overpayment(self, tenant_id: str, overpayment_id: str) -> dict:
        return self._credit_read(tenant_id, "Overpayment", overpayment_id)

    def _credit_read(self, tenant_id: str, kind: str, key: str) -> dict:
        with self.lock:
            books = self.tenant(tenant_id)
            return xero_json.credit_json(books.credit(kind, key), books, detail=True)

    def payment(self, tenant_id: str, payment_id: str) -> dict:
        with self.lock:
            books = self.tenant(tenant_id)
            return xero_json.payment_json(books.payment(payment_id), books)

    def snapshot(self, tenant_id: str) -> dict:
        """The truth for convergence tests: every contact, invoice and payment (deleted ones too)."""
        with self.lock:
            books = self.tenant(tenant_id)
            return {
                "Organisation": xero_json.organisation_json(books.org),
                "Contacts": [xero_json.contact_json(c, detail=True) for c in books.contacts.values()],
                "Invoices": [xero_json.invoice_json(i, books, detail=True) for i in books.invoices.values()],
                "Payments": [xero_json.payment_json(p, books) for p in books.payments.values()],
                "CreditNotes": [
                    xero_json.credit_json(c, books, detail=True) for c in books.credit_notes.values()
                ],
                "Prepayments": [
                    xero_json.credit_json(c, books, detail=True) for c in books.prepayments.values()
                ],
                "Overpayments": [
                    xero_json.credit_json(c, books, detail=True) for c in books.overpayments.values()
                ],
            }

    # -- organisation and behaviour switches ----------------------------------------------
    def set_timezone(self, tenant_id: str, timezone: str, *, allow_unknown: bool = False) -> dict:
        """The organisation's Timezone: a value of Xero's TimeZone enum (NEWZEALANDSTANDARDTIME,
        PACIFICSTANDARDTIME, ...); any other text only with allow_unknown=True (to test fallbacks)."""
        with self.lock:
            books = self.tenant(tenant_id)
            books.org.timezone = _known_timezone(timezone, allow_unknown=bool(allow_unknown))
            return xero_json.organisation_json(books.org)

    def behaviour(self) -> dict:
        """Switches for what Xero does in ways nobody has verified (see the README)."""
        return {
            "merge_moves_invoices_updated": self.merge_moves_invoices_updated,
            "unpaged_line_items": self.unpaged_line_items,
        }

    def set_behaviour(
        self, *, merge_moves_invoices_updated: bool | None = None, unpaged_line_items: bool | None = None
    ) -> dict:
        changes = {"merge_moves_invoices_updated": merge_moves_invoices_updated,
                   "unpaged_line_items": unpaged_line_items}
        with self.lock:
            for name, value in changes.items():
                if value is None:
                    continue
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
                setattr(self, name, value)
            return self.behaviour()

    # -- contacts -------------------------------------------------------------------------
    def create_contact(
        self,
        tenant_id: str,
        name: str,
        email: str = "",
        *,
        is_customer: bool = True,
        is_supplier: bool = False,
        first_name: str = "",
        last_name: str = "",
        contact_persons: list[dict] | None = None,
    ) -> dict:
        """`contact_persons`: up to 5 of {first_name, last_name, email, include_in_emails} (or
        Xero's FirstName/LastName/EmailAddress/IncludeInEmails)."""
        with self.lock:
            books = self.tenant(tenant_id)
            persons = _contact_persons(contact_persons or [])
            contact = Contact(
                contact_id=self._uuid(),
                name=name,
                first_name=first_name,
                last_name=last_name,
                email=email or "",
                is_customer=bool(is_customer),
                is_supplier=bool(is_supplier),
                updated_utc=books.stamp(self.clock.now()),
                contact_persons=persons,
            )
            books.contacts[contact.contact_id] = contact
            self._publish(books, "CONTACT", "CREATE", contact.contact_id, contact.updated_utc, "Contacts")
            return xero_json.contact_json(contact, detail=True)

    def update_contact(
        self,
        tenant_id: str,
        contact_id: str,
        *,
        name: str | None = None,
        email: str | None = None,
        is_customer: bool | None = None,
        is_supplier: bool | None = None,
        status: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        contact_persons: list[dict] | None = None,
    ) -> dict:
        """Change what is given; `contact_persons` replaces the whole list (up to 5)."""
        with self.lock:
            books = self.tenant(tenant_id)
            contact = books.contact(contact_id)
            if contact_persons is not None:
                contact.contact_persons = _contact_persons(contact_persons)
            if status is not None and status not in ("ACTIVE", "ARCHIVED"):
                raise LedgerError(f"Unsupported ContactStatus {status!r}")
            changes = {
                "name": name,
                "email": email,
                "is_customer": is_customer,
                "is_supplier": is_supplier,
                "status": status,
                "first_name": first_name,
                "last_name": last_name,
            }
            for field_name, value in changes.items():
                if value is not None:
                    setattr(contact, field_name, bool(value) if field_name.startswith("is_") else value)
            self._touch_contact(books, contact)
            return xero_json.contact_json(contact, detail=True)

    def merge_contacts(self, tenant_id: str, merged_id: str, into_id: str) -> dict:
        """Merge `merged_id` into `into_id` as a Xero user does: the merged contact becomes ARCHIVED
        with MergedToContactID, its invoices and credit documents move to the survivor, and both
        contacts get a CONTACT UPDATE. With the `merge_moves_invoices_updated` switch on (default),
        each moved invoice also gets a new UpdatedDateUTC and an INVOICE UPDATE (each moved credit
        note a CREDITNOTE UPDATE); off, they keep their dates and nothing is sent for them."""
        with self.lock:
            books = self.tenant(tenant_id)
            merged, survivor = books.contact(merged_id), books.contact(into_id)
            if merged is survivor:
                raise LedgerError("A contact cannot be merged into itself")
            if merged.merged_to:
                raise LedgerError("This contact has already been merged")
            if survivor.merged_to or survivor.status != "ACTIVE":
                raise LedgerError("Contacts can only be merged into an ACTIVE contact")
            invoices, credits = books.move_records(merged, survivor)
            merged.status, merged.merged_to = "ARCHIVED", survivor.contact_id
            self._touch_contact(books, merged)
            self._touch_contact(books, survivor)
            if self.merge_moves_invoices_updated:
                for invoice in invoices:
                    invoice.updated_utc = books.stamp(self.clock.now())
                    self._publish(
                        books, "INVOICE", "UPDATE", invoice.invoice_id, invoice.updated_utc, "Invoices"
                    )
                for credit in credits:
                    credit.updated_utc = books.stamp(self.clock.now())
                    self._credit_event(books, credit, "UPDATE")
            return {
                "Contacts": [
                    xero_json.contact_json(merged, detail=True),
                    xero_json.contact_json(survivor, detail=True),
                ],
                "InvoiceIDs": [i.invoice_id for i in invoices],
                "CreditNoteIDs": [c.credit_id for c in credits if c.kind == "CreditNote"],
                "PrepaymentIDs": [c.credit_id for c in credits if c.kind == "Prepayment"],
                "OverpaymentIDs": [c.credit_id for c in credits if c.kind == "Overpayment"],
            }

    def _touch_contact(self, books: TenantBooks, contact: Contact) -> None:
        contact.updated_utc = books.stamp(self.clock.now())
        self._publish(books, "CONTACT", "UPDATE", contact.contact_id, contact.updated_utc, "Contacts")

    # -- invoices -------------------------------------------------------------------------
    def create_invoice(
        self,
        tenant_id: str,
        contact_id: str,
        total=None,
        *,
        type: str = "ACCREC",
        currency: str | None = None,
        currency_rate=None,
        date=None,
        due_date=None,
        status: str = "AUTHORISED",
        number: str | None = None,
        reference: str = "",
        line_amount_types: str = "Exclusive",
        line_items: list[dict] | None = None,
    ) -> dict:
        """A new invoice (number INV-0001... for ACCREC when not given). `total` is tax inclusive;
        or give `line_items` [{description, quantity, unit_amount}]. A PAID/VOIDED/DELETED status
        is reached the way a user would (authorise then pay in full / void; draft then delete)."""
        with self.lock:
            books = self.tenant(tenant_id)
            contact = books.contact(contact_id)
            if line_amount_types not in ("Exclusive", "Inclusive", "NoTax"):
                raise LedgerError(f"Unsupported LineAmountTypes {line_amount_types!r}")
            lines = self._lines(books, type, line_amount_types, total, line_items)
            sub_total, total_tax, invoice_total = ledger.totals(lines, line_amount_types)
            ledger.check_new_invoice(type, status, invoice_total)
            number = self._invoice_number(books, type, number)
            issued = _as_date(date) or self.clock.today()
            currency = currency or books.org.base_currency
            fx = ledger.rate(currency_rate if currency_rate is not None else 1)
            invoice = Invoice(
                invoice_id=self._uuid(),
                number=number,
                type=type,
                contact_id=contact.contact_id,
                date=issued,
                due_date=_as_date(due_date) or issued + timedelta(days=30),
                status={"PAID": "AUTHORISED", "VOIDED": "AUTHORISED", "DELETED": "DRAFT"}.get(status, status),
                currency_code=currency,
                currency_rate=fx,
                reference=reference or "",
                line_amount_types=line_amount_types,
                line_items=lines,
                sub_total=sub_total,
                total_tax=total_tax,
                total=invoice_total,
                updated_utc=books.stamp(self.clock.now()),
            )
            ledger.settle(invoice)
            books.invoices[invoice.invoice_id] = invoice
            self._publish(books, "INVOICE", "CREATE", invoice.invoice_id, invoice.updated_utc, "Invoices")
            self._mark_contact_role(books, contact, type)
            if status == "PAID" and invoice.amount_due > 0:
                self.apply_payment(tenant_id, invoice.invoice_id, date=issued)
            elif status in ("VOIDED", "DELETED"):
                self.set_invoice_status(tenant_id, invoice.invoice_id, status)
            return xero_json.invoice_json(invoice, books, detail=True)

    def _lines(
        self, books: TenantBooks, kind: str, amount_types: str, total, items: list[dict] | None
    ) -> list[LineItem]:
        org = books.org
        tax_type = (
            "NONE"
            if amount_types == "NoTax"
            else (org.sales_tax_type if kind == "ACCREC" else org.purchases_tax_type)
        )
        account = "200" if kind == "ACCREC" else "400"
        if items:
            specs = [
                (i.get("description", "Services"), i.get("quantity", 1), i["unit_amount"]) for i in items
            ]
        elif total is not None:
            net = ledger.net_of_tax(ledger.money(total), org.tax_rate, amount_types)
            specs = [("Services", 1, net)]
        else:
            raise LedgerError("Give a total or line_items")
        lines = []
        for description, quantity, unit in specs:
            quantity, unit = Decimal(str(quantity)).quantize(Decimal("0.0001")), ledger.money(unit)
            amount = ledger.money(quantity * unit)
            lines.append(
                LineItem(
                    self._uuid(),
                    description,
                    quantity,
                    unit,
                    amount,
                    ledger.line_tax(amount, org.tax_rate, amount_types),
                    account,
                    tax_type,
                )
            )
        if not items and amount_types == "Exclusive":
            lines[0].tax_amount = ledger.money(total) - lines[0].line_amount  # the total is exact
        return lines

    def _invoice_number(self, books: TenantBooks, kind: str, number: str | None) -> str:
        if number is None:
            return books.next_invoice_number() if kind == "ACCREC" else ""
        if kind == "ACCREC" and any(
            i.number == number and i.type == "ACCREC" for i in books.invoices.values()
        ):
            raise LedgerError(f"Invoice # must be unique ({number} exists)")
        return number

    def _mark_contact_role(self, books: TenantBooks, contact: Contact, kind: str) -> None:
        """Xero flags a contact as customer/supplier once it has a sale/bill."""
        role = "is_customer" if kind == "ACCREC" else "is_supplier"
        if not getattr(contact, role):
            setattr(contact, role, True)
            self._touch_contact(books, contact)

    def apply_payment(
        self,
        tenant_id: str,
        invoice_id: str,
        amount=None,
        *,
        date=None,
        reference: str = "",
        currency_rate=None,
    ) -> dict:
        """A payment against an AUTHORISED invoice (default: the whole amount due)."""
        with self.lock:
            books = self.tenant(tenant_id)
            invoice = books.invoice(invoice_id)
            value = ledger.money(amount) if amount is not None else invoice.amount_due
            ledger.check_payment(invoice, value)
            stamp = books.stamp(self.clock.now())
            payment = Payment(
                payment_id=self._uuid(),
                invoice_id=invoice.invoice_id,
                date=_as_date(date) or self.clock.today(),
                amount=value,
                currency_rate=ledger.rate(
                    currency_rate if currency_rate is not None else invoice.currency_rate
                ),
                reference=reference or "",
                payment_type=ledger.PAYMENT_TYPES[invoice.type],
                updated_utc=stamp,
                account_id=_bank_account(books),
                account_code="090",
            )
            books.payments[payment.payment_id] = payment
            invoice.payments.append(payment)
            self._invoice_changed(books, invoice, stamp)
            return xero_json.payment_json(payment, books)

    def delete_payment(self, tenant_id: str, payment_id: str) -> dict:
        """The payment stays listed with Status DELETED; its invoice reopens if it was PAID."""
        with self.lock:
            books = self.tenant(tenant_id)
            payment = books.payment(payment_id)
            if payment.status == "DELETED":
                raise LedgerError("Payment is already deleted")
            payment.status = "DELETED"
            payment.updated_utc = books.stamp(self.clock.now())
            self._invoice_changed(books, books.invoices[payment.invoice_id], payment.updated_utc)
            return xero_json.payment_json(payment, books)

    def set_invoice_status(self, tenant_id: str, invoice_id: str, status: str) -> dict:
        """SUBMITTED/AUTHORISED (approve a draft), VOIDED (authorised, unpaid), DELETED (draft/submitted)."""
        with self.lock:
            books = self.tenant(tenant_id)
            invoice = books.invoice(invoice_id)
            checks = {
                "VOIDED": ledger.check_void,
                "DELETED": ledger.check_delete,
                "SUBMITTED": lambda i: ledger.check_approve(i, "SUBMITTED"),
                "AUTHORISED": lambda i: ledger.check_approve(i, "AUTHORISED"),
            }
            if status not in checks:
                raise LedgerError(f"Cannot set status {status!r}")
            checks[status](invoice)
            invoice.status = status
            self._invoice_changed(books, invoice, books.stamp(self.clock.now()))
            return xero_json.invoice_json(invoice, books, detail=True)

    def void_invoice(self, tenant_id: str, invoice_id: str) -> dict:
        return self.set_invoice_status(tenant_id, invoice_id, "VOIDED")

    def delete_invoice(self, tenant_id: str, invoice_id: str) -> dict:
        return self.set_invoice_status(tenant_id, invoice_id, "DELETED")

    def set_due_date(self, tenant_id: str, invoice_id: str, due_date) -> dict:
        with self.lock:
            books = self.tenant(tenant_id)
            invoice = books.invoice(invoice_id)
            invoice.due_date = _as_date(due_date)
            self._invoice_changed(books, invoice, books.stamp(self.clock.now()))
            return xero_json.invoice_json(invoice, books, detail=True)

    def _invoice_changed(self, books: TenantBooks, invoice: Invoice, stamp) -> None:
        ledger.settle(invoice)
        invoice.updated_utc = stamp
        self._publish(books, "INVOICE", "UPDATE", invoice.invoice_id, stamp, "Invoices")

    # -- credit notes, prepayments, overpayments ------------------------------------------
    def create_credit_note(
        self,
        tenant_id: str,
        contact_id: str,
        total,
        *,
        type: str = "ACCRECCREDIT",
        status: str = "AUTHORISED",
        date=None,
        number: str | None = None,
        reference: str = "",
        currency: str | None = None,
        currency_rate=None,
        line_amount_types: str = "Exclusive",
    ) -> dict:
        """A credit note (CN-0001... for ACCRECCREDIT when no number is given); `total` is tax
        inclusive. VOIDED/DELETED are reached as a user would (authorise then void; draft then
        delete); PAID only by allocating it in full. Sends CREDITNOTE CREATE (and UPDATE)."""
        with self.lock:
            books = self.tenant(tenant_id)
            if type not in ledger.CREDIT_TYPES["CreditNote"]:
                raise LedgerError(f"Unsupported credit note type {type!r}")
            if status not in ledger.STATUSES or status == "PAID":
                raise LedgerError(
                    f"Cannot create a credit note as {status!r} (PAID comes from allocating it in full)"
                )
            if number is None:
                number = books.next_credit_note_number() if type == "ACCRECCREDIT" else ""
            elif type == "ACCRECCREDIT" and any(
                c.number == number and c.type == type for c in books.credit_notes.values()
            ):
                raise LedgerError(f"Credit Note # must be unique ({number} exists)")
            initial = {"VOIDED": "AUTHORISED", "DELETED": "DRAFT"}.get(status, status)
            credit = self._new_credit(
                books, "CreditNote", type, contact_id, total, initial, date, currency, currency_rate,
                reference, line_amount_types, number,
            )
            self._credit_event(books, credit, "CREATE")
            if status != initial:
                self.set_credit_note_status(tenant_id, credit.credit_id, status)
            return xero_json.credit_json(credit, books, detail=True)

    def set_credit_note_status(self, tenant_id: str, credit_note_id: str, status: str) -> dict:
        """SUBMITTED/AUTHORISED (approve a draft), DELETED (draft/submitted), VOIDED (unallocated)."""
        with self.lock:
            books = self.tenant(tenant_id)
            credit = books.credit("CreditNote", credit_note_id)
            ledger.check_credit_status(credit, status)
            credit.status = status
            credit.updated_utc = books.stamp(self.clock.now())
            self._credit_event(books, credit, "UPDATE")
            return xero_json.credit_json(credit, books, detail=True)

    def create_prepayment(
        self,
        tenant_id: str,
        contact_id: str,
        total,
        *,
        type: str = "RECEIVE-PREPAYMENT",
        date=None,
        currency: str | None = None,
        currency_rate=None,
        reference: str = "",
    ) -> dict:
        """Money received (RECEIVE-PREPAYMENT) or paid (SPEND-PREPAYMENT) before an invoice exists."""
        return self._create_payment_credit(
            "Prepayment", tenant_id, contact_id, total, type, date, currency, currency_rate, reference
        )

    def create_overpayment(
        self,
        tenant_id: str,
        contact_id: str,
        total,
        *,
        type: str = "RECEIVE-OVERPAYMENT",
        date=None,
        currency: str | None = None,
        currency_rate=None,
        reference: str = "",
    ) -> dict:
        """Money received (RECEIVE-OVERPAYMENT) or paid (SPEND-OVERPAYMENT) beyond what was owed."""
        return self._create_payment_credit(
            "Overpayment", tenant_id, contact_id, total, type, date, currency, currency_rate, reference
        )

    def _create_payment_credit(
        self, kind, tenant_id, contact_id, total, type, date, currency, currency_rate, reference
    ) -> dict:
        with self.lock:
            books = self.tenant(tenant_id)
            if type not in ledger.CREDIT_TYPES[kind]:
                raise LedgerError(f"Unsupported {kind} type {type!r}")
            credit = self._new_credit(
                books, kind, type, contact_id, total, "AUTHORISED", date, currency, currency_rate,
                reference, "NoTax", "",
            )
            return xero_json.credit_json(credit, books, detail=True)

    def _new_credit(
        self, books, kind, type, contact_id, total, status, date, currency, currency_rate, reference,
        line_amount_types, number,
    ) -> Credit:
        contact = books.contact(contact_id)
        if line_amount_types not in ("Exclusive", "Inclusive", "NoTax"):
            raise LedgerError(f"Unsupported LineAmountTypes {line_amount_types!r}")
        side = ledger.CREDIT_TARGETS[type]
        if total is None or ledger.money(total) <= 0:
            raise LedgerError("A credit's total must be greater than zero")
        lines = self._lines(books, side, line_amount_types, total, None)
        sub_total, total_tax, credit_total = ledger.totals(lines, line_amount_types)
        currency = currency or books.org.base_currency
        credit = Credit(
            credit_id=self._uuid(),
            kind=kind,
            type=type,
            number=number,
            contact_id=contact.contact_id,
            date=_as_date(date) or self.clock.today(),
            status=status,
            currency_code=currency,
            currency_rate=ledger.rate(currency_rate if currency_rate is not None else 1),
            reference=reference or "",
            line_amount_types=line_amount_types,
            line_items=lines,
            sub_total=sub_total,
            total_tax=total_tax,
            total=credit_total,
            updated_utc=books.stamp(self.clock.now()),
            sent_to_contact=kind == "CreditNote" and status == "AUTHORISED",
        )
        books.credits(kind)[credit.credit_id] = credit
        self._mark_contact_role(books, contact, side)
        return credit

    def allocate_credit_note(
        self, tenant_id: str, credit_note_id: str, invoice_id: str, amount=None, *, date=None
    ) -> dict:
        """Apply an AUTHORISED credit note to an AUTHORISED invoice of the same contact, type side
        and currency (default amount: the smaller of its remaining credit and the amount due).
        Returns the allocation with its CreditNote; sends INVOICE UPDATE and CREDITNOTE UPDATE."""
        return self._allocate("CreditNote", tenant_id, credit_note_id, invoice_id, amount, date)

    def allocate_prepayment(
        self, tenant_id: str, prepayment_id: str, invoice_id: str, amount=None, *, date=None
    ) -> dict:
        return self._allocate("Prepayment", tenant_id, prepayment_id, invoice_id, amount, date)

    def allocate_overpayment(
        self, tenant_id: str, overpayment_id: str, invoice_id: str, amount=None, *, date=None
    ) -> dict:
        return self._allocate("Overpayment", tenant_id, overpayment_id, invoice_id, amount, date)

    def _allocate(self, kind, tenant_id, credit_id, invoice_id, amount, date) -> dict:
        with self.lock:
            books = self.tenant(tenant_id)
            credit = books.credit(kind, credit_id)
            invoice = books.invoice(invoice_id)
            value = ledger.money(amount) if amount is not None else min(credit.remaining, invoice.amount_due)
            ledger.check_allocation(credit, invoice, value)
            allocation = Allocation(
                allocation_id=self._uuid(),
                kind=kind,
                credit_id=credit.credit_id,
                invoice_id=invoice.invoice_id,
                amount=value,
                date=_as_date(date) or self.clock.today(),
            )
            credit.allocations.append(allocation)
            invoice.allocations.append(allocation)
            books.allocations[allocation.allocation_id] = allocation
            self._allocation_changed(books, credit, invoice)
            return {
                **xero_json.allocation_json(allocation, books),
                kind: xero_json.credit_json(credit, books),
            }

    def remove_allocation(self, tenant_id: str, allocation_id: str) -> dict:
        """Undo an allocation: the invoice reopens (AUTHORISED) and the credit returns to its document."""
        with self.lock:
            books = self.tenant(tenant_id)
            allocation = books.allocation(allocation_id)
            credit = books.credit(allocation.kind, allocation.credit_id)
            invoice = books.invoices[allocation.invoice_id]
            credit.allocations.remove(allocation)
            invoice.allocations.remove(allocation)
            del books.allocations[allocation.allocation_id]
            self._allocation_changed(books, credit, invoice)
            return {
                **xero_json.allocation_json(allocation, books, deleted=True),
                allocation.kind: xero_json.credit_json(credit, books),
            }

    def _allocation_changed(self, books: TenantBooks, credit: Credit, invoice: Invoice) -> None:
        ledger.settle_credit(credit)
        stamp = books.stamp(self.clock.now())
        credit.updated_utc = stamp
        self._invoice_changed(books, invoice, stamp)
        self._credit_event(books, credit, "UPDATE")

    # -- helpers --------------------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _publish(
        self,
        books: TenantBooks,
        category: str,
        kind: str,
        resource_id: str,
        when,
        collection: str,
        data: dict | None = None,
    ) -> None:
        url = f"{self.api_url}/{collection}/{resource_id}"
        self.webhooks.publish(books.tenant_id, category, kind, resource_id, url, when, data)

    def _credit_event(self, books: TenantBooks, credit: Credit, kind: str) -> None:
        """CREDITNOTE CREATE/UPDATE with Xero's data {Type, Status}; prepayments and overpayments
        have no webhook category of their own."""
        if credit.kind == "CreditNote":
            data = {"Type": credit.type, "Status": credit.status}
            self._publish(
                books, "CREDITNOTE", kind, credit.credit_id, credit.updated_utc, "CreditNotes", data
            )

    # -- calls, limits, faults, webhooks, clock, tokens -----------------------------------
    def call_count(
        self, tenant_id: str | None = None, endpoint: str | None = None, status: int | None = None
    ) -> int:
        return self.calls.count(tenant_id, endpoint, status)

    def call_counts(self) -> list[dict]:
        return self.calls.rows()

    def bytes_sent(self, tenant_id: str | None = None, endpoint: str | None = None) -> int:
        """Response-body bytes sent on the wire (gzip size when compressed), as an egress meter."""
        return self.calls.bytes(tenant_id, endpoint)

    def bytes_uncompressed(self, tenant_id: str | None = None, endpoint: str | None = None) -> int:
        """The same bodies before any Content-Encoding."""
        return self.calls.bytes(tenant_id, endpoint, uncompressed=True)

    def reset_calls(self) -> None:
        self.calls.reset()

    def get_faults(self) -> dict:
        return self.faults.snapshot()

    def set_faults(self, **changes) -> dict:
        return self.faults.configure(**changes)

    def reset_faults(self) -> dict:
        return self.faults.reset()

    def get_limits(self) -> dict:
        return self.limits.settings()

    def set_limits(self, **changes) -> dict:
        return self.limits.configure(**changes)

    def reset_rate_limits(self) -> None:
        self.limits.reset()

    def set_tenant_limits(self, tenant_id: str, day: int | None = None) -> dict:
        """A tenant's own daily limit (Xero's tiers: 1,000 on Starter, 5,000 paid); None: the shared one."""
        return self.limits.set_tenant_limits(self.tenant(tenant_id).tenant_id, day)

    def tenant_limits(self, tenant_id: str) -> dict:
        """The limits that apply to one tenant (`day_override`: whether its day limit is its own)."""
        return self.limits.tenant_settings(self.tenant(tenant_id).tenant_id)

    def clear_tenant_limits(self) -> None:
        self.limits.clear_tenant_limits()

    def set_webhook_url(self, url: str | None) -> None:
        self.webhooks.set_url(url)

    def webhook_events(self) -> list[dict]:
        return self.webhooks.events()

    def webhook_deliveries(self) -> list[dict]:
        return self.webhooks.deliveries()

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        return self.webhooks.wait_idle(timeout)

    def intent_to_receive(self, url: str | None = None) -> dict:
        return self.webhooks.intent_to_receive(url)

    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def issuer(self) -> str:
        return self.config.issuer or (self.base_url or "https://identity.xero.com").rstrip("/")

    def client_credentials_token(self, scope: str | None = None) -> dict:
        """Xero's token response for a custom connection (connected to every organisation)."""
        return self.oauth.client_credentials(
            client_id=self.config.client_id, scope=scope, issuer=self.issuer()
        )

    def user_token(self, tenant_ids: list[str] | None = None, scope: str = DEFAULT_USER_SCOPE) -> dict:
        """Consent by the demo user for `tenant_ids` (default all) and the resulting token response."""
        return self.oauth.issue_user_token(tenant_ids, scope, self.issuer())

    def close(self) -> None:
        self.webhooks.stop()


def _as_date(value) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _known_timezone(value, *, allow_unknown: bool = False) -> str:
    text = str(value or "").strip()
    if not text:
        raise LedgerError("Give a timezone")
    if text.upper() in TIMEZONES:
        return text.upper()
    if not allow_unknown:
        raise LedgerError(f"{text!r} is not in Xero's TimeZone enum (allow_unknown=true forces it)")
    return text


def _contact_persons(items) -> list[ContactPerson]:
    """Up to 5 people, from {first_name, last_name, email, include_in_emails} or Xero's names."""
    items = list(items)
    if len(items) > 5:
        raise LedgerError("A contact can have at most 5 contact persons")
    people = []
    for item in items:
        if isinstance(item, ContactPerson):
            people.append(item)
            continue
        if not isinstance(item, dict):
            raise LedgerError("Each contact person is an object")

        def get(*names, default="", item=item):
            return next((item[n] for n in names if item.get(n) is not None), default)

        people.append(
            ContactPerson(
                first_name=str(get("first_name", "FirstName")),
                last_name=str(get("last_name", "LastName")),
                email=str(get("email", "email_address", "EmailAddress")),
                include_in_emails=bool(get("include_in_emails", "IncludeInEmails", default=False)),
            )
        )
    return people


def _bank_account(books: TenantBooks) -> str:
    existing = next(iter(books.payments.values()), None)
    return existing.account_id if existing else str(uuid.uuid5(uuid.NAMESPACE_URL, books.tenant_id))
