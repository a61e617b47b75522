"""Pure: how long a record's unpaid sales invoices are overdue, and how late the customer pays; `today` passed in.

DESIGN.md "Ageing and payment behaviour". `today` is the organisation's date (its own time
zone), given by the caller; nothing here reads a clock.

Ageing, over the record's unpaid sales invoices (ACCREC, AUTHORISED, AmountDue > 0):

- `days_overdue` = today - due date in days, at least 0; 0 for an invoice without a due date
  and for any invoice that is not unpaid (a paid one owes nothing, so is overdue by nothing).
  A due date equal to today is not overdue (0 days), as in the saved views.
- Buckets by days overdue: `current` 0 (not yet due, or due today), `1-30`, `31-60`, `61-90`,
  `90+` (91 days or more), in that order. Each is the Unpaid total (views/totals.py) of its
  invoices, so the buckets add up to `unpaid` per currency exactly, and each bucket's
  base-currency figure is converted (and labelled) exactly as the other totals are.

Behaviour, over two sets of the record's sales invoices:

- settled: PAID, with a due date, whose settlement date (Xero's FullyPaidOnDate: the date of
  the payment or allocation that left nothing due) falls in the last 365 days: the 365 days
  ending today, today - 364 <= FullyPaidOnDate <= today. Days late = settlement - due date,
  negative when early, 0 when paid on the due date.
- still open: unpaid and past due (due date before today): counted with its days overdue so
  far, so a customer who stopped paying does not look punctual.

`counted` = both sets; `median_days_late` is their median, a Decimal: the middle value of an
odd count, the mean of the two middle values of an even count (so a whole number or a half,
e.g. 12.5); None when nothing is counted. `on_time_share` = settled on or before the due
date / counted (an open past-due invoice is never on time), a Decimal rounded to 4 places.

Trend: the same median over the 365 days before (invoices settled with today - 729 <=
FullyPaidOnDate <= today - 365; invoices still open count in the current year only, which is
where their lateness is happening). `later` when the current median is TREND_DAYS (5) or
more days above the year before's, `earlier` when 5 or more below, else `steady`; None (too
little history) when either year counts fewer than TREND_MIN (3) invoices.

Last payment: the latest settlement up to today of any of the record's AUTHORISED or PAID
sales invoices, payments (not DELETED ones) and allocations of credit notes, prepayments and
overpayments alike: its date, and the amount settled on that date in one currency (all of that day's
settlements in that currency added up, `count` of them; when a day has settlements in
several currencies, the first in alphabetical order, never a sum across currencies).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Protocol

from infra.errors import InputError
from views import totals
from views.saved_views import InvoiceLike, is_unpaid
from views.totals import Line, Total

BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
BUCKET_LABELS = {
    "current": "Current",
    "1-30": "1-30 days overdue",
    "31-60": "31-60 days overdue",
    "61-90": "61-90 days overdue",
    "90+": "Over 90 days overdue",
}
# days overdue each bucket holds, inclusive (None: unbounded)
BUCKET_DAYS: dict[str, tuple[int, int | None]] = {
    "current": (0, 0),
    "1-30": (1, 30),
    "31-60": (31, 60),
    "61-90": (61, 90),
    "90+": (91, None),
}
WINDOW_DAYS = 365
TREND_DAYS = 5  # medians this many days apart, or more: later / earlier
TREND_MIN = 3  # fewer counted invoices than this in either year: no trend
SHARE_PLACES = Decimal("0.0001")

Window = Literal["year", "year_before"]
Trend = Literal["later", "earlier", "steady"]


class UnknownBucket(InputError, ValueError):
    """An `overdue` that is not one of BUCKETS."""


class Settleable(InvoiceLike, Protocol):
    @property
    def type(self) -> str: ...
    @property
    def fully_paid_on(self) -> dt.date | None: ...


# --- ageing ------------------------------------------------------------------------------


def days_overdue(inv: InvoiceLike, today: date) -> int:
    """Whole days past the due date of an unpaid invoice; 0 when not yet due, or not unpaid."""
    if not is_unpaid(inv):
        return 0
    return days_past(inv.due_date, today)


def days_past(due: date | None, today: date) -> int:
    return max(0, (today - due).days) if due is not None else 0


def bucket_of(days: int) -> str:
    for name in BUCKETS:
        low, high = BUCKET_DAYS[name]
        if days >= low and (high is None or days <= high):
            return name
    return BUCKETS[0]  # negative days: not yet due


def parse_bucket(value: str | None) -> str | None:
    """The `overdue` filter asked for; None when absent."""
    if value is None or value == "":
        return None
    if value not in BUCKETS:
        raise UnknownBucket(f"overdue must be one of {', '.join(BUCKETS)}")
    return value


def due_range(bucket: str, today: date) -> tuple[date | None, date | None]:
    """The due dates of a bucket's unpaid invoices, inclusive (None: unbounded). `current`
    also holds the invoices without a due date (the caller adds them: they are never overdue)."""
    low, high = BUCKET_DAYS[bucket]
    latest = today - timedelta(days=low) if bucket != "current" else None
    earliest = today - timedelta(days=high) if high is not None else None
    return earliest, latest


@dataclass(frozen=True)
class Bucket:
    name: str
    label: str
    total: Total  # the Unpaid total of the bucket's invoices


def lines_for(invoices: Iterable[totals.InvoiceAmounts], today: date) -> list[Line]:
    """totals.lines_for with each unpaid line's bucket set (what the SQL's GROUP BY adds up)."""
    out = []
    for inv in invoices:
        for line in totals.lines_for([inv], today):
            out.append(replace(line, bucket=bucket_of(days_overdue(inv, today))) if line.unpaid else line)
    return out


def aging(lines: Iterable[Line], base_currency: str | None) -> tuple[Bucket, ...]:
    """The unpaid lines, bucket by bucket, each added up as totals' Unpaid block."""
    by_bucket: dict[str, list[Line]] = defaultdict(list)
    for line in lines:
        if line.unpaid:
            by_bucket[line.bucket or BUCKETS[0]].append(line)
    return tuple(
        Bucket(name, BUCKET_LABELS[name], totals.summarise(by_bucket[name], base_currency).unpaid)
        for name in BUCKETS
    )


# --- behaviour -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lateness:
    """`count` invoices of one year, settled or still open, `days_late` days after their due date."""

    window: Window
    settled: bool
    days_late: int
    count: int = 1


@dataclass(frozen=True)
class Settlement:
    """A payment or an allocation of one of the record's invoices, in the invoice's currency
    (or `count` of them the same day, `amount` their sum)."""

    date: dt.date
    currency: str
    amount: Decimal
    count: int = 1


@dataclass(frozen=True)
class LastPayment:
    date: dt.date
    amount: Decimal
    currency: str
    count: int  # settlements of that day and currency added up


@dataclass(frozen=True)
class Behaviour:
    since: date  # the first day of the year counted
    settled_count: int
    open_overdue_count: int
    counted: int
    on_time_count: int
    on_time_share: Decimal | None
    median_days_late: Decimal | None
    year_before_counted: int
    year_before_median_days_late: Decimal | None
    trend: Trend | None
    last_payment: LastPayment | None


def windows(today: date) -> tuple[date, date]:
    """(first day of the year counted, first day of the year before); each holds 365 days."""
    since = today - timedelta(days=WINDOW_DAYS - 1)
    return since, since - timedelta(days=WINDOW_DAYS)


def window_of(settled_on: date, today: date) -> Window | None:
    since, before = windows(today)
    if since <= settled_on <= today:
        return "year"
    if before <= settled_on < since:
        return "year_before"
    return None


def lateness_for(invoices: Iterable[Settleable], today: date) -> list[Lateness]:
    """One Lateness per invoice that counts (what the SQL's GROUP BY adds up)."""
    out = []
    for inv in invoices:
        if inv.type != totals.SALES or inv.due_date is None:
            continue
        if inv.status == "PAID" and inv.fully_paid_on is not None:
            window = window_of(inv.fully_paid_on, today)
            if window is not None:
                out.append(Lateness(window, True, (inv.fully_paid_on - inv.due_date).days))
        elif is_unpaid(inv) and inv.due_date < today:
            out.append(Lateness("year", False, (today - inv.due_date).days))
    return out


def median(counts: dict[int, int]) -> Decimal | None:
    """The median of values given as {value: how many}; an even count takes the mean of the two middle ones."""
    n = sum(counts.values())
    if n == 0:
        return None
    lower, upper = (n - 1) // 2, n // 2  # 0-based positions of the middle one or two
    low = high = None
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if low is None and seen > lower:
            low = value
        if seen > upper:
            high = value
            break
    assert low is not None and high is not None
    return (Decimal(low) + Decimal(high)) / 2


def trend(current: Decimal | None, n: int, before: Decimal | None, n_before: int) -> Trend | None:
    if current is None or before is None or n < TREND_MIN or n_before < TREND_MIN:
        return None
    if current - before >= TREND_DAYS:
        return "later"
    if before - current >= TREND_DAYS:
        return "earlier"
    return "steady"


def last_payment(settlements: Iterable[Settlement], today: date) -> LastPayment | None:
    latest: date | None = None
    day: dict[str, list] = {}
    for s in settlements:
        if s.date > today:  # not yet, in the organisation's calendar
            continue
        if latest is None or s.date > latest:
            latest, day = s.date, {}
        if s.date == latest:
            acc = day.setdefault(s.currency, [Decimal(0), 0])
            acc[0] += s.amount
            acc[1] += s.count
    if latest is None:
        return None
    currency = min(day)
    amount, count = day[currency]
    return LastPayment(latest, amount, currency, count)


def behaviour(lateness: Iterable[Lateness], settlements: Iterable[Settlement], today: date) -> Behaviour:
    year: dict[int, int] = defaultdict(int)
    year_before: dict[int, int] = defaultdict(int)
    settled = still_open = on_time = 0
    for item in lateness:
        if item.window == "year_before":
            year_before[item.days_late] += item.count
            continue
        year[item.days_late] += item.count
        if item.settled:
            settled += item.count
            on_time += item.count if item.days_late <= 0 else 0
        else:
            still_open += item.count
    counted, counted_before = settled + still_open, sum(year_before.values())
    current, before = median(year), median(year_before)
    share = (Decimal(on_time) / counted).quantize(SHARE_PLACES, ROUND_HALF_UP) if counted else None
    return Behaviour(
        since=windows(today)[0],
        settled_count=settled,
        open_overdue_count=still_open,
        counted=counted,
        on_time_count=on_time,
        on_time_share=share,
        median_days_late=current,
        year_before_counted=counted_before,
        year_before_median_days_late=before,
        trend=trend(current, counted, before, counted_before),
        last_payment=last_payment(settlements, today),
    )
