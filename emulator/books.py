"""One organisation's books: its contacts, invoices and payments, and their change stamps."""

from __future__ import annotations

from datetime import datetime, timedelta

from .records import Contact, Invoice, Organisation, Payment

ONE_MS = timedelta(milliseconds=1)


class NotFound(KeyError):
    """No such record in this organisation."""


class TenantBooks:
    """Records of one tenant, in creation order, with strictly increasing UpdatedDateUTC stamps."""

    def __init__(self, org: Organisation) -> None:
        self.org = org
        self.contacts: dict[str, Contact] = {}
        self.invoices: dict[str, Invoice] = {}
        self.payments: dict[str, Payment] = {}
        self.last_stamp = org.created_utc
        self.invoice_counter = 0

    @property
    def tenant_id(self) -> str:
        return self.org.organisation_id

    def stamp(self, now: datetime) -> datetime:
        """A new UpdatedDateUTC: `now` to the millisecond, always later than every earlier stamp."""
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self.last_stamp = max(now, self.last_stamp + ONE_MS)
        return self.last_stamp

    def next_invoice_number(self) -> str:
        self.invoice_counter += 1
        return f"INV-{self.invoice_counter:04d}"

    def contact(self, contact_id: str) -> Contact:
        return _lookup(self.contacts, contact_id, "Contact")

    def invoice(self, key: str) -> Invoice:
        """By InvoiceID, or by InvoiceNumber as Xero also allows."""
        try:
            return _lookup(self.invoices, key, "Invoice")
        except NotFound:
            for invoice in self.invoices.values():
                if invoice.number and invoice.number.lower() == key.lower():
                    return invoice
            raise

    def payment(self, payment_id: str) -> Payment:
        return _lookup(self.payments, payment_id, "Payment")


def _lookup(table: dict, key: str, kind: str):
    record = table.get(str(key).lower())
    if record is None:
        raise NotFound(f"{kind} {key} not found")
    return record
