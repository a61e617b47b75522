"""Deterministic seed data: same seed, same ids, numbers and amounts (dates follow today)."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal

from . import ledger
from .books import TenantBooks
from .records import Allocation, Contact, ContactPerson, Credit, Invoice, LineItem, Organisation, Payment

# (Version, BaseCurrency, CountryCode, Timezone, tax rate, sales tax type, purchases tax type)
PROFILES = [
    ("NZ", "NZD", "NZ", "NEWZEALANDSTANDARDTIME", "0.15", "OUTPUT2", "INPUT2"),
    ("AU", "AUD", "AU", "AUSEASTERNSTANDARDTIME", "0.10", "OUTPUT", "INPUT"),
    ("UK", "GBP", "GB", "GMTSTANDARDTIME", "0.20", "OUTPUT2", "INPUT2"),
    ("US", "USD", "US", "EASTERNSTANDARDTIME", "0.08", "TAX001", "INPUT"),
    ("US", "USD", "US", "PACIFICSTANDARDTIME", "0.0725", "TAX001", "INPUT"),  # far west of UTC
]
UNITS_PER_USD = {"USD": 1.0, "NZD": 1.65, "AUD": 1.52, "GBP": 0.79, "EUR": 0.92}
ORG_WORDS = ["Harbourside", "Kowhai", "Summit", "Bluegum", "Riverbend", "Tasman", "Northwind", "Ironbark"]
ORG_KINDS = ["Coffee Roasters", "Joinery", "Design Studio", "Landscaping", "Electrical", "Print Co"]
FIRST = [
    "Aroha",
    "Ben",
    "Chloe",
    "Dev",
    "Emma",
    "Finn",
    "Grace",
    "Hemi",
    "Isla",
    "Jack",
    "Kiri",
    "Liam",
    "Maya",
    "Noah",
    "Olivia",
    "Priya",
    "Quinn",
    "Ruby",
    "Sam",
    "Tama",
    "Uma",
    "Wiremu",
]
LAST = [
    "Anderson",
    "Brown",
    "Chen",
    "Davies",
    "Edwards",
    "Fletcher",
    "Gray",
    "Harris",
    "Ngata",
    "Patel",
    "Smith",
    "Taylor",
    "Walker",
    "Wilson",
    "Young",
]
COMPANY_A = [
    "Acme",
    "Bright",
    "Coastal",
    "Delta",
    "Evergreen",
    "Foxton",
    "Golden",
    "Horizon",
    "Kauri",
    "Lakeside",
    "Metro",
    "Pioneer",
    "Southern",
    "Totara",
    "Vector",
    "Westpoint",
]
COMPANY_B = [
    "Builders",
    "Catering",
    "Dental",
    "Engineering",
    "Foods",
    "Motors",
    "Plumbing",
    "Consulting",
    "Logistics",
    "Florists",
    "Fitness",
    "Media",
    "Outfitters",
    "Vets",
]
PRODUCTS = [
    "Consulting hours",
    "Monthly retainer",
    "Site visit",
    "Design work",
    "Hardware supply",
    "Installation",
    "Maintenance plan",
    "Training session",
    "Freight",
    "Software licence",
]
REFERENCES = ["", "", "Direct credit", "Bank transfer", "Card payment", "Cheque"]


class Seeder:
    """Draws every random choice from one Random(seed), so the output is reproducible."""

    def __init__(self, seed: int, today: date, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.today = today
        self.now = now

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def pick(self, n: int) -> int:
        """0..n-1 with exactly one draw, so date spans that vary by day never shift later draws."""
        return min(int(self.rng.random() * n), n - 1) if n > 0 else 0

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def moment_after(self, day: date, limit_hours: int = 20) -> datetime:
        """A millisecond timestamp on/after `day`, never later than a minute before now."""
        start = datetime(day.year, day.month, day.day, tzinfo=self.now.tzinfo)
        stamp = start + timedelta(hours=1 + self.pick(limit_hours), milliseconds=self.pick(3_600_000))
        return min(stamp, self.now - timedelta(minutes=1, milliseconds=self.pick(60_000)))


def seed_books(
    seed: int,
    tenants: int,
    contacts: int,
    invoices: int,
    now: datetime,
    merge_moves_invoices_updated: bool = True,
) -> list[TenantBooks]:
    seeder = Seeder(seed, now.date(), now)
    made = [_seed_tenant(seeder, index, contacts, invoices) for index in range(tenants)]
    # Everything added since the first release draws from streams of its own, after the original
    # seeding, so every id, number and amount drawn above stays exactly what it was.
    credits = Seeder(f"{seed}:credits", now.date(), now)
    people = Seeder(f"{seed}:people", now.date(), now)
    merges = Seeder(f"{seed}:merges", now.date(), now)
    for books in made:
        _seed_credits(credits, books)
        _seed_contact_persons(people, books)
        _seed_merges(merges, books, merge_moves_invoices_updated)
        _restamp(books)
    return made


def _seed_tenant(s: Seeder, index: int, contact_count: int, invoice_count: int) -> TenantBooks:
    org = _organisation(s, index)
    books = TenantBooks(org)
    for _ in range(contact_count):
        contact = _contact(s, books)
        books.contacts[contact.contact_id] = contact
    bank_account = s.uuid()
    for invoice in _invoices(s, books, invoice_count):
        books.invoices[invoice.invoice_id] = invoice
        for payment in _payments(s, books, invoice, bank_account):
            books.payments[payment.payment_id] = payment
        _finish(s, invoice)
    stamps = [c.updated_utc for c in books.contacts.values()] + [
        i.updated_utc for i in books.invoices.values()
    ]
    books.last_stamp = max(stamps + [p.updated_utc for p in books.payments.values()] + [books.last_stamp])
    return books


def _organisation(s: Seeder, index: int) -> Organisation:
    version, currency, country, tz, tax, sales_tax, purchase_tax = PROFILES[index % len(PROFILES)]
    name = f"{s.rng.choice(ORG_WORDS)} {s.rng.choice(ORG_KINDS)} ({version})"
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789"
    short_code = "!" + "".join(s.rng.choice(alphabet) for _ in range(5))
    created = s.now - timedelta(days=900 + s.pick(900), milliseconds=s.pick(86_400_000))
    return Organisation(
        organisation_id=s.uuid(),
        name=name,
        short_code=short_code,
        base_currency=currency,
        country_code=country,
        version=version,
        timezone=tz,
        tax_rate=Decimal(tax),
        sales_tax_type=sales_tax,
        purchases_tax_type=purchase_tax,
        created_utc=created,
    )


def _contact(s: Seeder, books: TenantBooks) -> Contact:
    first, last = s.rng.choice(FIRST), s.rng.choice(LAST)
    if s.chance(0.6):
        name = f"{s.rng.choice(COMPANY_A)} {s.rng.choice(COMPANY_B)} {len(books.contacts) + 1}"
        domain = name.lower().replace(" ", "") + ".example.com"
        email = f"accounts@{domain}"
    else:
        name = f"{first} {last} {len(books.contacts) + 1}"
        email = f"{first}.{last}{len(books.contacts) + 1}@example.net".lower()
    role = s.rng.random()
    earlier = list(books.contacts.values())
    if earlier and s.chance(0.06):
        email = _recase(s, s.rng.choice(earlier).email or email)
    elif s.chance(0.05):
        email = ""
    updated = s.moment_after(s.today - timedelta(days=30 + s.pick(700)))
    return Contact(
        contact_id=s.uuid(),
        name=name,
        first_name=first,
        last_name=last,
        email=email,
        is_customer=role < 0.9,
        is_supplier=role >= 0.8,
        updated_utc=updated,
        status="ARCHIVED" if s.chance(0.02) else "ACTIVE",
        contact_number="",
        account_number="",
    )


def _recase(s: Seeder, email: str) -> str:
    """The same address with different capitalisation (Xero keeps what was typed)."""
    return "".join(ch.upper() if s.chance(0.5) else ch for ch in email) if email else email


def _invoices(s: Seeder, books: TenantBooks, count: int) -> list[Invoice]:
    customers = [c for c in books.contacts.values() if c.is_customer]
    suppliers = [c for c in books.contacts.values() if c.is_supplier]
    ages = sorted((s.pick(540) for _ in range(count)), reverse=True)
    made = []
    for age in ages:
        is_bill = suppliers and (not customers or s.chance(0.15))
        contact = s.rng.choice(suppliers if is_bill else customers) if (customers or suppliers) else None
        if contact is None:
            break
        made.append(_invoice(s, books, contact, "ACCPAY" if is_bill else "ACCREC", age))
    return made


def _invoice(s: Seeder, books: TenantBooks, contact: Contact, kind: str, age: int) -> Invoice:
    org = books.org
    currency = org.base_currency
    if s.chance(0.3):
        currency = s.rng.choice([c for c in UNITS_PER_USD if c != org.base_currency])
    fx = UNITS_PER_USD[currency] / UNITS_PER_USD[org.base_currency] * (0.97 + 0.06 * s.rng.random())
    amount_types = s.rng.choices(["Exclusive", "Inclusive", "NoTax"], weights=[85, 10, 5])[0]
    lines = [_line(s, org, kind, amount_types) for _ in range(1 + s.pick(4))]
    sub_total, total_tax, total = ledger.totals(lines, amount_types)
    status = s.rng.choices(
        ["DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED"], weights=[7, 3, 50, 30, 6, 4]
    )[0]
    issued = s.today - timedelta(days=age)
    terms = s.rng.choice([7, 14, 20, 30, 45])
    due = s.today if (status == "AUTHORISED" and s.chance(0.03)) else issued + timedelta(days=terms)
    if kind == "ACCREC":
        number = books.next_invoice_number()
    else:
        number = f"{s.rng.choice(['BILL', 'SI', 'PO'])}-{10000 + s.pick(90000)}"
    return Invoice(
        invoice_id=s.uuid(),
        number=number,
        type=kind,
        contact_id=contact.contact_id,
        date=issued,
        due_date=due,
        status=status,
        currency_code=currency,
        currency_rate=ledger.rate(1 if currency == org.base_currency else fx),
        reference=f"PO {1000 + s.pick(9000)}" if s.chance(0.4) else "",
        line_amount_types=amount_types,
        line_items=lines,
        sub_total=sub_total,
        total_tax=total_tax,
        total=total,
        updated_utc=s.moment_after(issued),
        sent_to_contact=status in ("AUTHORISED", "PAID"),
    )


def _line(s: Seeder, org: Organisation, kind: str, amount_types: str) -> LineItem:
    quantity = Decimal(1 + s.pick(12))
    unit = ledger.money(Decimal(500 + s.pick(250_000)) / 100)
    line_amount = ledger.money(quantity * unit)
    tax = ledger.line_tax(line_amount, org.tax_rate, amount_types)
    return LineItem(
        line_item_id=s.uuid(),
        description=s.rng.choice(PRODUCTS),
        quantity=quantity.quantize(Decimal("0.0001")),
        unit_amount=unit,
        line_amount=line_amount,
        tax_amount=tax,
        account_code="200" if kind == "ACCREC" else "400",
        tax_type="NONE"
        if amount_types == "NoTax"
        else (org.sales_tax_type if kind == "ACCREC" else org.purchases_tax_type),
    )


def _payments(s: Seeder, books: TenantBooks, invoice: Invoice, bank_account: str) -> list[Payment]:
    """Installments: all of the total for PAID, part of it for some AUTHORISED, plus a few deleted ones."""
    if invoice.status == "PAID":
        shares = _split(s, invoice.total, 1 + s.pick(3))
    elif invoice.status == "AUTHORISED" and s.chance(0.35) and invoice.total > 1:
        shares = [ledger.money(invoice.total * Decimal(10 + s.pick(30)) / 100) for _ in range(1 + s.pick(2))]
    else:
        shares = []
    deleted = bool(shares) and s.chance(0.08)
    if deleted:
        shares.append(ledger.money(invoice.total * Decimal(5 + s.pick(20)) / 100))
    span = max((min(s.today, invoice.due_date + timedelta(days=30)) - invoice.date).days, 0)
    offsets = sorted(s.pick(span + 1) for _ in shares)
    made = []
    for i, (share, offset) in enumerate(zip(shares, offsets)):
        paid_on = invoice.date + timedelta(days=offset)
        payment = Payment(
            payment_id=s.uuid(),
            invoice_id=invoice.invoice_id,
            date=paid_on,
            amount=share,
            currency_rate=invoice.currency_rate
            if invoice.currency_rate == 1
            else ledger.rate(invoice.currency_rate * Decimal(str(0.98 + 0.04 * s.rng.random()))),
            reference=s.rng.choice(REFERENCES),
            payment_type=ledger.PAYMENT_TYPES[invoice.type],
            updated_utc=s.moment_after(paid_on),
            account_id=bank_account,
            account_code="090",
            status="DELETED" if deleted and i == len(shares) - 1 else "AUTHORISED",
            is_reconciled=s.chance(0.5),
        )
        invoice.payments.append(payment)
        made.append(payment)
    return made


def _split(s: Seeder, total: Decimal, parts: int) -> list[Decimal]:
    shares = [ledger.money(total * Decimal(1 + s.pick(9)) / Decimal(10 * parts)) for _ in range(parts - 1)]
    return shares + [total - sum(shares, Decimal("0.00"))]


def _finish(s: Seeder, invoice: Invoice) -> None:
    """Apply the ledger rules and make the invoice's stamp follow its latest payment change."""
    target = invoice.status
    if target == "PAID":
        invoice.status = "AUTHORISED"
    ledger.settle(invoice)
    if target == "PAID" and invoice.status != "PAID":
        raise AssertionError("seeded installments must settle a PAID invoice")
    stamps = [invoice.updated_utc] + [p.updated_utc for p in invoice.payments]
    invoice.updated_utc = max(stamps)


# -- credit notes, prepayments, overpayments (stream "{seed}:credits") ------------------------
CREDIT_REFERENCES = ["", "", "Returned goods", "Pricing error", "Goodwill"]
CREDIT_SHARE = 0.08  # of AUTHORISED/PAID sales invoices: a credit note allocated
PREPAID_SHARE = 0.03  # of AUTHORISED/PAID sales invoices: a prepayment or overpayment allocated
BILL_CREDIT_SHARE = 0.05  # of AUTHORISED/PAID bills: a supplier credit note (or a spend prepayment)


def _seed_credits(s: Seeder, books: TenantBooks) -> None:
    invoices = list(books.invoices.values())
    sales = [i for i in invoices if i.type == "ACCREC" and i.status in ("AUTHORISED", "PAID")]
    bills = [i for i in invoices if i.type == "ACCPAY" and i.status in ("AUTHORISED", "PAID")]
    open_sales = [i for i in sales if i.status == "AUTHORISED" and i.amount_due > 0]
    share = min(0.6, len(sales) * CREDIT_SHARE / len(open_sales)) if open_sales else 0
    for invoice in open_sales:
        if not s.chance(share):
            continue
        due, roll = invoice.amount_due, s.rng.random()
        if invoice.amount_paid > 0 and roll < 0.5:
            amount = due  # part paid, settled by a credit note: PAID by a mix
        elif invoice.amount_paid == 0 and roll < 0.3 and invoice.due_date != s.today:
            amount = due  # settled by credit alone: PAID with AmountPaid 0
        else:
            amount = ledger.money(due * Decimal(10 + s.pick(60)) / 100)
        _credit_for(s, books, invoice, "CreditNote", "ACCRECCREDIT", amount)
    rest = [i for i in open_sales if not i.allocations and i.amount_due > 0]
    share = min(0.5, len(sales) * PREPAID_SHARE / len(rest)) if rest else 0
    for invoice in rest:
        if not s.chance(share):
            continue
        kind = "Prepayment" if s.chance(0.5) else "Overpayment"
        due = invoice.amount_due
        amount = due if s.chance(0.4) else ledger.money(due * Decimal(20 + s.pick(60)) / 100)
        _credit_for(s, books, invoice, kind, f"RECEIVE-{kind.upper()}", amount)
    open_bills = [i for i in bills if i.status == "AUTHORISED" and i.amount_due > 0]
    share = min(0.5, len(bills) * BILL_CREDIT_SHARE / len(open_bills)) if open_bills else 0
    for invoice in open_bills:
        if not s.chance(share):
            continue
        due = invoice.amount_due
        amount = due if s.chance(0.3) else ledger.money(due * Decimal(10 + s.pick(60)) / 100)
        if s.chance(0.8):
            _credit_for(s, books, invoice, "CreditNote", "ACCPAYCREDIT", amount)
        else:
            _credit_for(s, books, invoice, "Prepayment", "SPEND-PREPAYMENT", amount)
    _unallocated_credit_notes(s, books, len(sales))
    _number_credit_notes(books)


def _credit_for(s: Seeder, books: TenantBooks, invoice: Invoice, kind: str, kind_type: str, amount) -> None:
    """A credit document of the invoice's contact and currency, allocated (`amount`) to it."""
    if amount <= 0:
        return
    total = amount if s.chance(0.75) else ledger.money(amount * Decimal(110 + s.pick(60)) / 100)
    span = max((s.today - invoice.date).days, 0)
    if kind == "CreditNote":
        issued = invoice.date + timedelta(days=s.pick(min(span, 60) + 1))
        allocated_on = min(s.today, issued + timedelta(days=s.pick(4)))
    else:  # money received before the invoice (prepayment) or left over from an earlier one
        issued = invoice.date - timedelta(days=1 + s.pick(20 if kind == "Prepayment" else 90))
        allocated_on = invoice.date + timedelta(days=s.pick(min(span, 30) + 1))
    credit = _credit(s, books, kind, kind_type, invoice.contact_id, total, issued, "AUTHORISED", invoice)
    allocation = Allocation(s.uuid(), kind, credit.credit_id, invoice.invoice_id, amount, allocated_on)
    credit.allocations.append(allocation)
    invoice.allocations.append(allocation)
    books.allocations[allocation.allocation_id] = allocation
    ledger.settle(invoice)
    ledger.settle_credit(credit)
    stamp = s.moment_after(allocated_on)
    credit.updated_utc = max(credit.updated_utc, stamp)
    invoice.updated_utc = max(invoice.updated_utc, stamp)


def _credit(
    s: Seeder,
    books: TenantBooks,
    kind: str,
    kind_type: str,
    contact_id: str,
    total: Decimal,
    issued: date,
    status: str,
    invoice: Invoice | None = None,
) -> Credit:
    org = books.org
    side = ledger.CREDIT_TARGETS[kind_type]
    amount_types = "Exclusive" if kind == "CreditNote" else "NoTax"
    net = ledger.net_of_tax(total, org.tax_rate, amount_types)
    tax_type = org.sales_tax_type if side == "ACCREC" else org.purchases_tax_type
    tax_type = "NONE" if amount_types == "NoTax" else tax_type
    label = {"CreditNote": "Credit", "Prepayment": "Prepayment", "Overpayment": "Overpayment"}[kind]
    line = LineItem(
        line_item_id=s.uuid(),
        description=f"{label}: {s.rng.choice(PRODUCTS).lower()}",
        quantity=Decimal("1.0000"),
        unit_amount=net,
        line_amount=net,
        tax_amount=total - net,
        account_code="200" if side == "ACCREC" else "400",
        tax_type=tax_type,
    )
    number = ""
    if kind_type == "ACCPAYCREDIT":
        number = f"{s.rng.choice(['CR', 'SCN', 'ADJ'])}-{10000 + s.pick(90000)}"
    credit = Credit(
        credit_id=s.uuid(),
        kind=kind,
        type=kind_type,
        number=number,
        contact_id=contact_id,
        date=issued,
        status=status,
        currency_code=invoice.currency_code if invoice else org.base_currency,
        currency_rate=invoice.currency_rate if invoice else ledger.rate(1),
        reference=s.rng.choice(CREDIT_REFERENCES) if kind == "CreditNote" else "",
        line_amount_types=amount_types,
        line_items=[line],
        sub_total=net,
        total_tax=total - net,
        total=total,
        updated_utc=s.moment_after(issued),
        sent_to_contact=kind == "CreditNote" and status in ("AUTHORISED", "PAID"),
    )
    books.credits(kind)[credit.credit_id] = credit
    return credit


def _unallocated_credit_notes(s: Seeder, books: TenantBooks, sales: int) -> None:
    """A few DRAFT, SUBMITTED, VOIDED, DELETED and open AUTHORISED credit notes, none allocated."""
    customers = [c for c in books.contacts.values() if c.is_customer and c.status == "ACTIVE"]
    suppliers = [c for c in books.contacts.values() if c.is_supplier and c.status == "ACTIVE"]
    if not customers:
        return
    some = max(1, round(sales * 0.01))
    plan = ["DRAFT"] * some + ["VOIDED"] * some + ["AUTHORISED"] * some
    plan += ["SUBMITTED", "DELETED"] if sales >= 50 else []
    for status in plan:
        supplier = bool(suppliers) and s.chance(0.2)
        contact = s.rng.choice(suppliers if supplier else customers)
        total = ledger.money(Decimal(500 + s.pick(150_000)) / 100)
        issued = s.today - timedelta(days=s.pick(300))
        kind_type = "ACCPAYCREDIT" if supplier else "ACCRECCREDIT"
        _credit(s, books, "CreditNote", kind_type, contact.contact_id, total, issued, status)


def _number_credit_notes(books: TenantBooks) -> None:
    """CN-0001... in date order, and the table in that order too (as Xero would have made them)."""
    ordered = sorted(books.credit_notes.values(), key=lambda c: (c.date, c.updated_utc))
    books.credit_notes = {c.credit_id: c for c in ordered}
    for credit in ordered:
        if credit.type == "ACCRECCREDIT":
            credit.number = books.next_credit_note_number()


# -- contact persons (stream "{seed}:people") ---------------------------------------------------
def _seed_contact_persons(s: Seeder, books: TenantBooks) -> None:
    """About 30% of company contacts name 1-3 people with their own addresses."""
    for contact in books.contacts.values():
        company = not contact.name.startswith(f"{contact.first_name} {contact.last_name} ")
        if not company or not s.chance(0.3):
            continue
        domain = (
            contact.email.split("@", 1)[1].lower()
            if "@" in contact.email
            else contact.name.lower().replace(" ", "") + ".example.com"
        )
        for n in range(1 + s.pick(3)):
            first, last = s.rng.choice(FIRST), s.rng.choice(LAST)
            contact.contact_persons.append(
                ContactPerson(first, last, f"{first}.{last}@{domain}".lower(), n == 0 or s.chance(0.3))
            )


# -- merges (stream "{seed}:merges") --------------------------------------------------------------
def _seed_merges(s: Seeder, books: TenantBooks, moves_invoices_updated: bool) -> None:
    """About 1% of contacts were merged into another: ARCHIVED, MergedToContactID, records moved."""
    contacts = list(books.contacts.values())
    count = max(1, round(len(contacts) * 0.01)) if len(contacts) >= 20 else 0
    for _ in range(count):
        active = [c for c in contacts if c.status == "ACTIVE" and not c.merged_to]
        survivors = {c.merged_to for c in contacts if c.merged_to}
        candidates = [c for c in active if c.contact_id not in survivors]
        if len(candidates) < 2:
            return
        merged = s.rng.choice(candidates)
        same_side = [c for c in active if c is not merged and c.is_customer == merged.is_customer]
        survivor = s.rng.choice(same_side or [c for c in active if c is not merged])
        invoices, credits = books.move_records(merged, survivor)
        moment = s.moment_after(s.today - timedelta(days=1 + s.pick(60)))
        merged.status, merged.merged_to = "ARCHIVED", survivor.contact_id
        merged.updated_utc = max(merged.updated_utc, moment)
        survivor.updated_utc = max(survivor.updated_utc, moment)
        if moves_invoices_updated:
            for record in [*invoices, *credits]:
                record.updated_utc = max(record.updated_utc, moment)


def _restamp(books: TenantBooks) -> None:
    stamps = [books.last_stamp]
    tables = (books.contacts, books.invoices, books.payments)
    for table in (*tables, books.credit_notes, books.prepayments, books.overpayments):
        stamps += [record.updated_utc for record in table.values()]
    books.last_stamp = max(stamps)
