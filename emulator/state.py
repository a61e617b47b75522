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
from .records import Contact, Invoice, LineItem, Payment
from .seed import seed_books
from .signing import Signer
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
            seed, self.config.tenants, self.config.contacts, self.config.invoices, self.clock.now()
        )
        self.books: dict[str, TenantBooks] = {b.tenant_id: b for b in seeded}
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
            return xero_json.contact_json(self.tenant(tenant_id).contact(contact_id))

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
                "Contacts": [xero_json.contact_json(c) for c in books.contacts.values()],
                "Invoices": [xero_json.invoice_json(i, books, detail=True) for i in books.invoices.values()],
                "Payments": [xero_json.payment_json(p, books) for p in books.payments.values()],
            }

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
    ) -> dict:
        with self.lock:
            books = self.tenant(tenant_id)
            contact = Contact(
                contact_id=self._uuid(),
                name=name,
                first_name=first_name,
                last_name=last_name,
                email=email or "",
                is_customer=bool(is_customer),
                is_supplier=bool(is_supplier),
                updated_utc=books.stamp(self.clock.now()),
            )
            books.contacts[contact.contact_id] = contact
            self._publish(books, "CONTACT", "CREATE", contact.contact_id, contact.updated_utc, "Contacts")
            return xero_json.contact_json(contact)

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
    ) -> dict:
        with self.lock:
            books = self.tenant(tenant_id)
            contact = books.contact(contact_id)
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
            return xero_json.contact_json(contact)

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

    # -- helpers --------------------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _publish(
        self, books: TenantBooks, category: str, kind: str, resource_id: str, when, collection: str
    ) -> None:
        url = f"{self.api_url}/{collection}/{resource_id}"
        self.webhooks.publish(books.tenant_id, category, kind, resource_id, url, when)

    # -- calls, limits, faults, webhooks, clock, tokens -----------------------------------
    def call_count(
        self, tenant_id: str | None = None, endpoint: str | None = None, status: int | None = None
    ) -> int:
        return self.calls.count(tenant_id, endpoint, status)

    def call_counts(self) -> list[dict]:
        return self.calls.rows()

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


def _bank_account(books: TenantBooks) -> str:
    existing = next(iter(books.payments.values()), None)
    return existing.account_id if existing else str(uuid.uuid5(uuid.NAMESPACE_URL, books.tenant_id))
