"""One organisation's books: contacts, invoices, payments, credit documents, and their change stamps."""

from __future__ import annotations

from datetime import datetime, timedelta

from .records import Allocation, Contact, Credit, Invoice, Organisation, Payment

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
        self.credit_notes: dict[str, Credit] = {}
        self.prepayments: dict[str, Credit] = {}
        self.overpayments: dict[str, Credit] = {}
        self.allocations: dict[str, Allocation] = {}  # live ones only
        self.last_stamp = org.created_utc
        self.invoice_counter = 0
        self.credit_note_counter = 0

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

    def next_credit_note_number(self) -> str:
        self.credit_note_counter += 1
        return f"CN-{self.credit_note_counter:04d}"

    def credits(self, kind: str) -> dict[str, Credit]:
        """The table of one kind: "CreditNote", "Prepayment" or "Overpayment"."""
        tables = {"CreditNote": self.credit_notes, "Prepayment": self.prepayments}
        tables["Overpayment"] = self.overpayments
        return tables[kind]

    def credit(self, kind: str, key: str) -> Credit:
        """By id (credit notes also by CreditNoteNumber, as for invoices)."""
        table = self.credits(kind)
        try:
            return _lookup(table, key, "Credit note" if kind == "CreditNote" else kind)
        except NotFound:
            for credit in table.values():
                if credit.number and credit.number.lower() == str(key).lower():
                    return credit
            raise

    def allocation(self, allocation_id: str) -> Allocation:
        return _lookup(self.allocations, allocation_id, "Allocation")

    def move_records(self, merged: Contact, survivor: Contact) -> tuple[list[Invoice], list[Credit]]:
        """A merge: every invoice and credit document of `merged` now belongs to `survivor`, which
        becomes a customer / supplier if what it receives says so. Returns what moved."""
        invoices = [i for i in self.invoices.values() if i.contact_id == merged.contact_id]
        credits = [
            c
            for table in (self.credit_notes, self.prepayments, self.overpayments)
            for c in table.values()
            if c.contact_id == merged.contact_id
        ]
        for record in [*invoices, *credits]:
            record.contact_id = survivor.contact_id
        sides = {i.type for i in invoices} | {
            "ACCPAY" if c.type in ("ACCPAYCREDIT", "SPEND-PREPAYMENT", "SPEND-OVERPAYMENT") else "ACCREC"
            for c in credits
        }
        survivor.is_customer = survivor.is_customer or "ACCREC" in sides
        survivor.is_supplier = survivor.is_supplier or "ACCPAY" in sides
        return invoices, credits

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
